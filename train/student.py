"""Stage 3: the student learns from labelled + pseudo-labelled images (Depth Anything V1 Sec. 3, V2 Sec. 4).

    python train/student.py --config train/configs/tiny_student.yaml --pseudo_labels runs/pseudo_labels \
        --output_dir runs/student
    torchrun --nproc_per_node 2 train/student.py ...      # 2 processes on CPU; `accelerate launch` on GPUs

V1 mode: every batch is labelled : pseudo-labelled = 1 : 2 (`ratio`); the pseudo-labelled images get strong
perturbations (colour jitter, grayscale, blur) and CutMix, while their labels come from the teacher on the clean
image; the CutMix loss compares the box with the partner's label and the rest with the image's own; the feature
alignment loss pulls the student encoder's patch features (`out.patch_features`, no second student pass) towards a
frozen DINOv2 of the same size, with tolerance margin 0.85. Total: L_labelled + L_pseudo + w * L_feat.
V2 mode (`--mode v2`): pseudo-labelled images only, top-10 % loss trimming, gradient matching with weight 2
(`gradient_weight`; the authors, V1 repository issue 198: teacher and student both use the affine-invariant and the
gradient-matching losses), no feature alignment (the V2 configs set its weight to 0). Online-teacher mode
(`--online_teacher FOLDER --unlabelled ...`): the teacher labels the clean unlabelled images on the fly instead of
reading stored pseudo-labels.

The student starts from DINOv2 (`--encoder_init facebook/dinov2-small` or a local folder), never from the teacher.
"""

from __future__ import annotations

import torch

from modeling_depth_anything import DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.data import MixedBatchStream, open_source, open_sources, stage_stream
from modeling_depth_anything.data.augment import StrongPerturbation, cutmix
from modeling_depth_anything.losses import cutmix_gradient_loss, cutmix_loss, depth_loss, feature_alignment_loss
from modeling_depth_anything.training import TrainingRun, build_frozen_encoder, build_model, setup_training_accelerator
from modeling_depth_anything.training.args import (
    DataArguments,
    ModelArguments,
    StudentArguments,
    TrainArguments,
    parse_args,
)


def build_stream(data_args, student_args, train_args, rank: int, world: int) -> tuple[MixedBatchStream, str]:
    """The batch stream: parts "labelled" and "pseudo" at `ratio` in V1 mode with labelled sources, else "pseudo" only.

    In online-teacher mode the second part is "unlabelled" (the teacher labels it in the loss). Returns the stream and
    the name of that part.
    """
    if student_args.online_teacher:
        if not data_args.unlabelled:
            raise ValueError("online-teacher mode needs --unlabelled sources")
        name, sources = "unlabelled", open_sources(data_args.unlabelled, "unlabelled", data_args, seed_offset=1)
    else:
        if not data_args.pseudo_labels:
            raise ValueError("give --pseudo_labels <folder written by pseudo_label.py> or --online_teacher <model>")
        name, sources = "pseudo", [open_source(data_args.pseudo_labels, "pseudo", data_args)]
    parts, ratio = {name: sources}, {name: 1}
    if student_args.mode == "v1" and student_args.ratio[0] > 0 and data_args.labelled:
        parts["labelled"] = open_sources(data_args.labelled, "labelled", data_args)
        ratio = {"labelled": student_args.ratio[0], name: student_args.ratio[1]}
    batch_size, seed = train_args.per_device_batch_size, train_args.seed
    return stage_stream(parts, ratio, data_args, batch_size, seed, rank, world), name


def main(argv: list[str] | None = None) -> None:
    model_args, data_args, train_args, student_args = parse_args(
        ModelArguments, DataArguments, TrainArguments, StudentArguments, argv=argv
    )
    accelerator = setup_training_accelerator(train_args, data_args)
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
        stream, pseudo_part = build_stream(
            data_args, student_args, train_args, accelerator.process_index, accelerator.num_processes
        )
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
            pseudo, labelled = batch[pseudo_part], batch.get("labelled")
            clean = pseudo["pixel_values"]  # (num_pseudo, 3, S, S), normalised
            if teacher is not None:  # online teacher: label the clean image now
                with torch.no_grad(), accelerator.autocast():
                    labels = teacher(pixel_values=clean).predicted_depth.float()  # (num_pseudo, S, S)
                valid = torch.ones_like(labels, dtype=torch.bool)
            else:
                labels, valid = pseudo["disparity"], pseudo["valid_mask"]
            images = perturb(clean) if perturb is not None else clean
            images, box, pairing = cutmix(images, p=student_args.cutmix_prob)
            num_labelled = labelled["pixel_values"].shape[0] if labelled is not None else 0
            student_input = torch.cat([labelled["pixel_values"], images]) if labelled is not None else images
            outputs = model(pixel_values=student_input)  # one pass over labelled + perturbed pseudo-labelled
            prediction = outputs.predicted_depth  # (batch, S, S)
            mixed_valid = torch.where(box, valid[pairing], valid)  # (num_pseudo, S, S)
            loss = cutmix_loss(
                prediction[num_labelled:], labels[pairing], labels, box, mixed_valid, trim=student_args.trim
            )
            logs = {"loss_pseudo": loss.item()}
            if student_args.gradient_weight > 0:  # V2 (facts §5): ssi : gm = 1 : 2, trimming on the ssi term only
                loss_gradient = cutmix_gradient_loss(
                    prediction[num_labelled:], labels[pairing], labels, box, mixed_valid
                )
                loss = loss + student_args.gradient_weight * loss_gradient
                logs["loss_gradient"] = loss_gradient.item()
            if labelled is not None:
                loss_labelled = depth_loss(
                    prediction[:num_labelled],
                    labelled["disparity"],
                    labelled["valid_mask"],
                    gradient_weight=student_args.gradient_weight,
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

        run.train(stream.next_batch, compute_loss)
        run.save_final(DepthAnythingImageProcessor(size=model_args.processor_size))
    finally:
        accelerator.end_training()


if __name__ == "__main__":
    main()
