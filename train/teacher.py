"""Stage 1: train the teacher on labelled and/or synthetic depth (V1: real labelled, affine-invariant loss; V2:
synthetic only, affine-invariant + 2 x gradient matching).

    python train/teacher.py --config train/configs/tiny_teacher.yaml --output_dir runs/teacher          # 1 process
    torchrun --nproc_per_node 2 train/teacher.py --config train/configs/tiny_teacher.yaml ...            # 2 on CPU
    accelerate launch train/teacher.py --config train/configs/v2_teacher_vitg_synthetic.yaml             # GPUs

Writes `<output_dir>/final` (a `from_pretrained` folder), checkpoints, `losses.jsonl` and the logs of the trackers
named in `--report_to` (TensorBoard by default, under `<output_dir>/logs`). Options: `--help`, and train/README.md.
"""

from __future__ import annotations

from modeling_depth_anything import DepthAnythingImageProcessor
from modeling_depth_anything.data import open_sources, stage_stream
from modeling_depth_anything.losses import depth_loss
from modeling_depth_anything.training import TrainingRun, build_model, setup_training_accelerator
from modeling_depth_anything.training.args import (
    DataArguments,
    ModelArguments,
    TeacherArguments,
    TrainArguments,
    parse_args,
)


def main(argv: list[str] | None = None) -> None:
    model_args, data_args, train_args, teacher_args = parse_args(
        ModelArguments, DataArguments, TrainArguments, TeacherArguments, argv=argv
    )
    if not data_args.labelled:
        raise ValueError("the teacher needs at least one labelled source: --labelled synthetic and/or a folder")
    accelerator = setup_training_accelerator(train_args, data_args)
    try:
        stream = stage_stream(
            {"labelled": open_sources(data_args.labelled, "labelled", data_args)},
            {"labelled": 1},
            data_args,
            train_args.per_device_batch_size,
            seed=train_args.seed,
            rank=accelerator.process_index,
            world_size=accelerator.num_processes,
        )
        run = TrainingRun(
            accelerator,
            build_model(model_args),
            train_args,
            [model_args, data_args, train_args, teacher_args],
            {"labelled": stream},
            stage="teacher",
        )

        def compute_loss(model, batch):
            labelled = batch["labelled"]
            prediction = model(pixel_values=labelled["pixel_values"]).predicted_depth  # (batch, S, S)
            loss = depth_loss(
                prediction,
                labelled["disparity"],
                labelled["valid_mask"],
                gradient_weight=teacher_args.gradient_weight,
            )
            return loss, {}

        run.train(stream.next_batch, compute_loss)
        run.save_final(DepthAnythingImageProcessor(size=model_args.processor_size))
    finally:
        accelerator.end_training()


if __name__ == "__main__":
    main()
