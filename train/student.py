"""Stage 3: the student learns from labelled + pseudo-labelled images (Depth Anything V1 Sec. 3, V2 Sec. 4).

    python train/student.py --config train/configs/tiny_student.yaml --pseudo_labels runs/pseudo_labels \
        --output_dir runs/student
    torchrun --nproc_per_node 2 train/student.py ...      # 2 processes on CPU; `accelerate launch` on GPUs

V1 mode: every batch is labelled : pseudo-labelled = 1 : 2 (`labelled_share`); the pseudo-labelled images get strong
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

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # train/ is a script folder
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root

import torch  # noqa: E402
from args import DataArguments, ModelArguments, StudentArguments, TrainArguments, parse_args  # noqa: E402
from common import TrainingRun, build_frozen_encoder, build_model, setup_accelerator  # noqa: E402
from stage_data import (  # noqa: E402
    SampleStream,
    cutmix,
    normalize_image,
    prepare_labelled,
    prepare_unlabelled,
    raw_source,
    strong_perturbations,
)

from modeling_depth_anything import DepthAnythingForDepthEstimation, DepthAnythingImageProcessor  # noqa: E402
from modeling_depth_anything.losses import cutmix_loss, depth_loss, feature_alignment_loss  # noqa: E402


def build_streams(data_args, student_args, seed: int, rank: int, world: int) -> dict[str, SampleStream]:
    """The pseudo-labelled (or, online, unlabelled) stream, plus the labelled stream in V1 mode."""
    streams = {}
    if student_args.online_teacher:
        if not data_args.unlabelled:
            raise ValueError("online-teacher mode needs --unlabelled sources")
        sources = [raw_source(spec, data_args, False, rank, world, seed_offset=1) for spec in data_args.unlabelled]
        streams["pseudo"] = SampleStream(sources, prepare_unlabelled, data_args, seed=seed + 1, name="unlabelled")
    else:
        if not data_args.pseudo_labels:
            raise ValueError("give --pseudo_labels <folder written by pseudo_label.py> or --online_teacher <model>")
        sources = [raw_source(f"pseudo:{data_args.pseudo_labels}", data_args, True, rank, world)]
        streams["pseudo"] = SampleStream(sources, prepare_labelled, data_args, seed=seed + 1, name="pseudo")
    if student_args.mode == "v1" and student_args.labelled_share > 0 and data_args.labelled:
        sources = [raw_source(spec, data_args, True, rank, world) for spec in data_args.labelled]
        streams["labelled"] = SampleStream(sources, prepare_labelled, data_args, seed=seed + 2, name="labelled")
    return streams


def main(argv: list[str] | None = None) -> None:
    model_args, data_args, train_args, student_args = parse_args(
        ModelArguments, DataArguments, TrainArguments, StudentArguments, argv=argv
    )
    accelerator = setup_accelerator(train_args.output_dir, train_args.mixed_precision,
                                    train_args.gradient_accumulation_steps, train_args.report_to, train_args.seed)
    try:
        rank, world = accelerator.process_index, accelerator.num_processes
        model = build_model(model_args)
        frozen = None
        if student_args.mode == "v1" and student_args.feature_alignment_weight > 0:
            frozen = build_frozen_encoder(student_args.frozen_encoder or model_args.encoder_init, model)
            frozen.to(accelerator.device)
        teacher = None
        if student_args.online_teacher:
            teacher = DepthAnythingForDepthEstimation.from_pretrained(student_args.online_teacher)
            teacher.eval().requires_grad_(False).to(accelerator.device)
        streams = build_streams(data_args, student_args, train_args.seed * 1000 + rank * 10, rank, world)
        batch_size = train_args.per_device_batch_size
        num_labelled = round(batch_size * student_args.labelled_share) if "labelled" in streams else 0
        num_pseudo = batch_size - num_labelled
        if num_pseudo < 1:
            raise ValueError(f"per_device_batch_size {batch_size} leaves no pseudo-labelled sample")
        run = TrainingRun(accelerator, model, train_args, [model_args, data_args, train_args, student_args],
                          streams, stage="student")

        def next_batch() -> dict:
            batch = {f"pseudo.{k}": v for k, v in streams["pseudo"].next_batch(num_pseudo).items()}
            if num_labelled:
                batch.update({f"labelled.{k}": v for k, v in streams["labelled"].next_batch(num_labelled).items()})
            batch["batch_size"] = batch_size
            return batch

        def compute_loss(model, batch):
            images = batch["pseudo.images"]  # (num_pseudo, 3, H, W) in [0, 1], clean
            if teacher is not None:
                with torch.no_grad(), accelerator.autocast():
                    labels = teacher(pixel_values=normalize_image(images)).predicted_depth.float()  # (num_pseudo, H, W)
                valid = torch.ones_like(labels, dtype=torch.bool)
            else:
                labels, valid = batch["pseudo.labels"], batch["pseudo.valid_mask"]
            if student_args.strong_perturbations:
                images = strong_perturbations(images)
            images, box, pairing = cutmix(images, student_args.cutmix_prob)
            student_input = normalize_image(images)
            if num_labelled:
                student_input = torch.cat([batch["labelled.pixel_values"], student_input])  # (batch, 3, H, W)
            outputs = model(pixel_values=student_input)
            prediction = outputs.predicted_depth  # (batch, H, W)
            loss_pseudo = cutmix_loss(prediction[num_labelled:], labels[pairing], labels, box,
                                      torch.where(box, valid[pairing], valid), trim=student_args.trim)
            logs = {"loss_pseudo": loss_pseudo.item()}
            loss = loss_pseudo
            if num_labelled:
                loss_labelled = depth_loss(prediction[:num_labelled], batch["labelled.labels"],
                                           batch["labelled.valid_mask"])
                loss = loss + loss_labelled
                logs["loss_labelled"] = loss_labelled.item()
            if frozen is not None:
                with accelerator.autocast():
                    frozen_features = frozen(normalize_image(images))  # (num_pseudo, patches, hidden)
                loss_feature = feature_alignment_loss(outputs.patch_features[num_labelled:], frozen_features,
                                                      margin=student_args.feature_margin)
                loss = loss + student_args.feature_alignment_weight * loss_feature
                logs["loss_feature"] = loss_feature.item()
            return loss, logs

        run.train(next_batch, compute_loss)
        run.save_final(DepthAnythingImageProcessor(size=model_args.processor_size))
    finally:
        accelerator.end_training()


if __name__ == "__main__":
    main()
