"""Stage 3: the student learns from labelled + pseudo-labelled images (Depth Anything V1 Sec. 3, V2 Sec. 4).

    python train/student.py --config train/configs/tiny_student.yaml --pseudo_labels runs/pseudo_labels \
        --output_dir runs/student
    torchrun --nproc_per_node 2 train/student.py ...      # 2 processes on CPU; `accelerate launch` on GPUs

V1 mode: every batch is labelled : pseudo-labelled = 1 : 2 (`ratio`); the pseudo-labelled images get strong
perturbations (colour jitter, grayscale, blur) and CutMix, while their labels come from the teacher on the clean
image; the CutMix loss compares the box with the partner's label and the rest with the image's own; the feature
alignment loss pulls the student encoder's patch features (`out.patch_features`, no second student pass) towards a
frozen DINOv2 of the same size, with tolerance margin 0.85. Total: L_labelled + L_pseudo + w * L_feat.
V2 mode (`--mode v2`): pseudo-labelled images only, top-10 % loss trimming, no feature alignment (the V2 configs set
its weight to 0). Online-teacher mode (`--online_teacher FOLDER --unlabelled ...`): the teacher labels the clean
unlabelled images on the fly instead of reading stored pseudo-labels.

The student starts from DINOv2 (`--encoder_init facebook/dinov2-small` or a local folder), never from the teacher.
"""

from __future__ import annotations

import torch

from modeling_depth_anything import DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.data.augment import StrongPerturbation, cutmix
from modeling_depth_anything.data.stage import BatchSource, flatten, open_pseudo_labels, open_sources
from modeling_depth_anything.losses import cutmix_loss, depth_loss, feature_alignment_loss
from modeling_depth_anything.training import TrainingRun, build_frozen_encoder, build_model, setup_training_accelerator
from modeling_depth_anything.training.args import (
    DataArguments,
    ModelArguments,
    StudentArguments,
    TrainArguments,
    parse_args,
)


def build_stream(data_args, student_args, train_args, rank: int, world: int) -> tuple[BatchSource, bool]:
    """The batch stream: (labelled, pseudo) at `ratio` in V1 mode with labelled sources, else pseudo only.

    The pseudo part is the stored pseudo-labels, or, in online-teacher mode, the unlabelled images. Returns the
    stream and whether its batches have a labelled part.
    """
    if student_args.online_teacher:
        if not data_args.unlabelled:
            raise ValueError("online-teacher mode needs --unlabelled sources")
        pseudo = open_sources(data_args.unlabelled, data_args, labelled=False, seed_offset=1)
    else:
        if not data_args.pseudo_labels:
            raise ValueError("give --pseudo_labels <folder written by pseudo_label.py> or --online_teacher <model>")
        pseudo = open_pseudo_labels(data_args.pseudo_labels)
    with_labelled = student_args.mode == "v1" and student_args.ratio[0] > 0 and bool(data_args.labelled)
    batch_size, seed = train_args.per_device_batch_size, train_args.seed
    if with_labelled:
        labelled = open_sources(data_args.labelled, data_args, labelled=True)
        stream = BatchSource(labelled, pseudo, data_args, batch_size, tuple(student_args.ratio), seed, rank, world)
    else:
        stream = BatchSource(pseudo, None, data_args, batch_size, (1, 0), seed, rank, world)
    return stream, with_labelled


def main(argv: list[str] | None = None) -> None:
    model_args, data_args, train_args, student_args = parse_args(
        ModelArguments, DataArguments, TrainArguments, StudentArguments, argv=argv
    )
    accelerator = setup_training_accelerator(train_args)
    try:
        model = build_model(model_args)
        frozen = None
        if student_args.mode == "v1" and student_args.feature_alignment_weight > 0:
            frozen = build_frozen_encoder(student_args.frozen_encoder or model_args.encoder_init, model)
            frozen.to(accelerator.device)
        teacher = None
        if student_args.online_teacher:
            teacher = DepthAnythingForDepthEstimation.from_pretrained(student_args.online_teacher)
            teacher.eval().requires_grad_(False).to(accelerator.device)
        stream, with_labelled = build_stream(
            data_args, student_args, train_args, accelerator.process_index, accelerator.num_processes
        )
        pseudo_part = "second" if with_labelled else "first"
        perturb = StrongPerturbation().to(accelerator.device) if student_args.strong_perturbations else None
        run = TrainingRun(
            accelerator,
            model,
            train_args,
            [model_args, data_args, train_args, student_args],
            {"batches": stream},
            stage="student",
        )

        def compute_loss(model, batch):
            clean = batch[f"{pseudo_part}.pixel_values"]  # (num_pseudo, 3, S, S), normalised
            if teacher is not None:  # online teacher: label the clean image now
                with torch.no_grad(), accelerator.autocast():
                    labels = teacher(pixel_values=clean).predicted_depth.float()  # (num_pseudo, S, S)
                valid = torch.ones_like(labels, dtype=torch.bool)
            else:
                labels, valid = batch[f"{pseudo_part}.disparity"], batch[f"{pseudo_part}.valid_mask"]
            images = perturb(clean) if perturb is not None else clean
            images, box, pairing = cutmix(images, p=student_args.cutmix_prob)
            num_labelled = batch["first.pixel_values"].shape[0] if with_labelled else 0
            student_input = torch.cat([batch["first.pixel_values"], images]) if with_labelled else images
            outputs = model(pixel_values=student_input)  # one pass over labelled + perturbed pseudo-labelled
            prediction = outputs.predicted_depth  # (batch, S, S)
            loss = cutmix_loss(
                prediction[num_labelled:],
                labels[pairing],
                labels,
                box,
                torch.where(box, valid[pairing], valid),
                trim=student_args.trim,
            )
            logs = {"loss_pseudo": loss.item()}
            if with_labelled:
                loss_labelled = depth_loss(
                    prediction[:num_labelled], batch["first.disparity"], batch["first.valid_mask"]
                )
                loss = loss + loss_labelled
                logs["loss_labelled"] = loss_labelled.item()
            if frozen is not None:
                with accelerator.autocast():
                    frozen_features = frozen(images)  # (num_pseudo, patches, hidden), same input as the student's
                loss_feature = feature_alignment_loss(
                    outputs.patch_features[num_labelled:], frozen_features, margin=student_args.feature_margin
                )
                loss = loss + student_args.feature_alignment_weight * loss_feature
                logs["loss_feature"] = loss_feature.item()
            return loss, logs

        run.train(lambda: flatten(stream.next_batch()), compute_loss)
        run.save_final(DepthAnythingImageProcessor(size=model_args.processor_size))
    finally:
        accelerator.end_training()


if __name__ == "__main__":
    main()
