"""Metric fine-tuning (Depth Anything V2 `metric_depth`): a relative model's encoder and decoder, a sigmoid x
`max_depth` head, the SiLog loss in metres on metric data (Hypersim indoors, Virtual KITTI 2 outdoors, synthetic rooms).

    python train/metric.py --config train/configs/tiny_metric.yaml --init_from runs/teacher/final --output_dir OUT
    accelerate launch train/metric.py --config train/configs/metric_hypersim_vitl.yaml \\
        --init_from depth-anything/Depth-Anything-V2-Large-hf --labelled hypersim:data/hypersim

The recipe (V2 `metric_depth/train.py`): AdamW (encoder at `encoder_lr`, decoder x 10, weight decay 0.01), poly
decay with power 0.9, horizontal flips, random square crops at `crop_size` after resizing the short side to it.
Same machinery as the other stages (`modeling_depth_anything.training`): resume, checkpoints, NaN stop, logging,
`<output_dir>/final` (a metric `from_pretrained` folder with its model card) and `--push_to_hub`.

With a `synthetic` source, held-out synthetic rooms are scored in metres without alignment before and after
training, next to a constant prediction of the training data's median depth: `<output_dir>/heldout_eval.json`,
printed at the end and written into the model card.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from modeling_depth_anything import DepthAnythingImageProcessor
from modeling_depth_anything.data import stage_stream
from modeling_depth_anything.data.metric import (
    MetricDepthTransform,
    median_depth,
    open_metric_sources,
    synthetic_metric_stream,
)
from modeling_depth_anything.hub import push_folder
from modeling_depth_anything.losses import silog_loss
from modeling_depth_anything.model_card import update_model_card
from modeling_depth_anything.training import TrainingRun, build_model, setup_training_accelerator
from modeling_depth_anything.training.args import DataArguments, ModelArguments, TrainArguments, parse_args
from modeling_depth_anything.training.metric import (
    build_metric_model,
    heldout_results,
    heldout_rooms,
    heldout_table,
    load_or_compute,
    predict_metres,
    score_metres,
)
from modeling_depth_anything.training.metric_args import MetricArguments, check_metric_setup


def main(argv: list[str] | None = None) -> None:
    model_args, data_args, train_args, metric_args = parse_args(
        ModelArguments, DataArguments, TrainArguments, MetricArguments, argv=argv
    )
    max_depth = check_metric_setup(model_args, data_args, metric_args)
    accelerator = setup_training_accelerator(train_args, data_args)
    try:
        depth_range = {"min_depth": metric_args.min_depth, "max_depth": max_depth}
        synthetic_size = (data_args.synthetic_height, data_args.synthetic_width)
        sources = open_metric_sources(
            data_args.labelled,
            synthetic_seed=data_args.synthetic_seed,
            synthetic_size=synthetic_size,
            synthetic_num_shards=data_args.synthetic_num_shards,
            **depth_range,
        )
        stream = stage_stream(
            {"labelled": sources},
            {"labelled": 1},
            data_args,
            train_args.per_device_batch_size,
            seed=train_args.seed,
            rank=accelerator.process_index,
            world_size=accelerator.num_processes,
            transform=MetricDepthTransform(
                data_args.crop_size, random_crop=True, hflip=data_args.hflip, seed=train_args.seed
            ),
        )
        model = build_metric_model(build_model(model_args), max_depth, metric_args)
        if model_args.channels_last:
            model = model.to(memory_format=torch.channels_last)  # as build_model: faster convolutions
        processor = DepthAnythingImageProcessor(size=model_args.processor_size)

        heldout = None
        if metric_args.heldout_scenes and "synthetic" in data_args.labelled:
            heldout = heldout_rooms(
                metric_args.heldout_seed, metric_args.heldout_scenes, *synthetic_size, **depth_range
            )
        results: dict[str, dict] = {}
        if heldout is not None and accelerator.is_main_process:
            os.makedirs(train_args.output_dir, exist_ok=True)

            def constant_baseline() -> dict:
                training_stream = synthetic_metric_stream(data_args.synthetic_seed, synthetic_size, **depth_range)
                median = median_depth(training_stream, metric_args.median_samples)
                constant = [np.full(scene[1].shape, median, np.float32) for scene in heldout]
                return {"median_m": median, **score_metres(constant, heldout, **depth_range)}

            # Computed before training and kept, so a resumed run scores the same untrained model.
            results["untrained metric head"] = load_or_compute(
                os.path.join(train_args.output_dir, "heldout_untrained.json"),
                lambda: score_metres(
                    predict_metres(model, processor, [s[0] for s in heldout]), heldout, **depth_range
                ),
            )
            baseline = load_or_compute(os.path.join(train_args.output_dir, "heldout_constant.json"), constant_baseline)
            results[f"constant {baseline['median_m']:.2f} m (training median)"] = baseline
        accelerator.wait_for_everyone()

        run = TrainingRun(
            accelerator,
            model,
            train_args,
            [model_args, data_args, train_args, metric_args],
            {"labelled": stream},
            "metric",
        )

        def compute_loss(model, batch):
            labelled = batch["labelled"]
            prediction = model(pixel_values=labelled["pixel_values"]).predicted_depth  # (batch, S, S) metres
            loss = silog_loss(
                prediction, labelled["depth"], labelled["valid_mask"], lambd=metric_args.silog_lambda, **depth_range
            )
            return loss, {}

        run.train(stream.next_batch, compute_loss)

        notes = ""
        if heldout is not None and accelerator.is_main_process:
            trained = accelerator.unwrap_model(run.model)
            results[f"fine-tuned ({run.global_step} steps)"] = score_metres(
                predict_metres(trained, processor, [s[0] for s in heldout]), heldout, **depth_range
            )
            table = heldout_table(results)
            with open(os.path.join(train_args.output_dir, "heldout_eval.json"), "w", encoding="utf-8") as handle:
                json.dump({"scenes": metric_args.heldout_scenes, "seed": metric_args.heldout_seed, **results}, handle)
            notes = (
                f"\n\nHeld-out synthetic rooms ({metric_args.heldout_scenes}, seed {metric_args.heldout_seed}, "
                f"{synthetic_size[0]}x{synthetic_size[1]}), metres, no alignment, depth protocol, "
                f"{metric_args.min_depth:g}-{max_depth:g} m:\n\n{table}\n"
            )
            print(table)
        final = run.save_final(processor, card_notes=notes)
        if heldout is not None and accelerator.is_main_process:
            # The fine-tuned model's held-out scores into the card's model-index (as the evaluation runner writes
            # them), then the card pushed again so that the Hub copy carries them too.
            key = f"fine-tuned ({run.global_step} steps)"
            update_model_card(
                os.path.join(final, "README.md"), heldout_results(results[key], metric_args, synthetic_size)
            )
            if train_args.push_to_hub:
                push_folder(final, train_args.hub_model_id, repo_type="model", private=train_args.hub_private)
    finally:
        accelerator.end_training()


if __name__ == "__main__":
    main()
