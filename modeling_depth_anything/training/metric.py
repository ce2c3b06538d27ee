"""Metric fine-tuning pieces used by `train/metric.py`: the metric model built from a relative one, and its scoring
in metres on held-out synthetic rooms (before and after training, against a constant baseline)."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from typing import Any

import numpy as np
import torch

from ..modeling_depth_anything import DepthAnythingForDepthEstimation
from .loop import write_json
from .metric_args import MetricArguments

logger = logging.getLogger(__name__)

HELDOUT_METRICS = ("abs_rel", "delta1", "rmse", "silog")


def build_metric_model(
    model: DepthAnythingForDepthEstimation, max_depth: float, metric_args: MetricArguments
) -> DepthAnythingForDepthEstimation:
    """A metric Depth Anything model (`depth_estimation_type="metric"`, sigmoid x `max_depth`) carrying `model`'s
    encoder and decoder (same parameter names), with the head's last convolution reset or kept (`head_init`).

    Args:
        model: the `init_from` model (relative, or metric to continue from).
        max_depth: metres, a whole number (see `check_metric_setup`).
        metric_args: `head_init`, `init_depth`.
    """
    source = model.config
    keep = metric_args.head_init == "keep" or (
        metric_args.head_init == "auto"
        and source.depth_estimation_type == "metric"
        and float(source.max_depth) == float(max_depth)
    )
    config = copy.deepcopy(source)
    config.depth_estimation_type = "metric"
    config.max_depth = int(max_depth)  # transformers' built-in config only loads an integer (facts §8)
    metric = DepthAnythingForDepthEstimation(config)
    metric.load_state_dict(model.state_dict(), strict=True)
    for name, parameter in model.named_parameters():  # frozen parameters stay frozen (build_model's choices)
        metric.get_parameter(name).requires_grad_(parameter.requires_grad)
    if not keep:
        init_depth = metric_args.init_depth if metric_args.init_depth is not None else max_depth / 2
        last = metric.head.conv3
        with torch.no_grad():
            # Zero weights, not PyTorch's default init: the trained decoder's features entering this layer are large
            # (mean 23, max 258 measured on the tiny teacher), so random weights put the pre-activation at +-40 and
            # pin the sigmoid at 0 or max_depth, where it has no gradient. With zero weights every pixel starts at
            # sigmoid(bias) * max_depth = init_depth, and the first Adam steps learn the weights.
            last.weight.zero_()
            last.bias.fill_(math.log(init_depth / (max_depth - init_depth)))
        logger.info(f"Metric head: last convolution reset, starting near {init_depth:g} m (max_depth {max_depth:g} m)")
    else:
        logger.info(f"Metric head: kept from the initial model (max_depth {max_depth:g} m)")
    return metric


def heldout_rooms(seed: int, count: int, height: int, width: int, min_depth: float, max_depth: float) -> list[tuple]:
    """`count` procedural indoor rooms of a held-out seed, as the evaluation's ``synthetic:?scenes=room`` benchmark
    renders them: `(image (H, W, 3) uint8, depth (H, W) m, valid, id)`, valid = not sky and within the range."""
    from ..evaluation.benchmarks import load_benchmark

    benchmark = load_benchmark(
        f"synthetic:?scenes=room&seed={seed}&count={count}&height={height}&width={width}"
        f"&min_depth={min_depth!r}&max_depth={max_depth!r}"
    )
    return [tuple(benchmark[index]) for index in range(len(benchmark))]


def predict_metres(
    model: DepthAnythingForDepthEstimation, processor: Any, images: list[np.ndarray], batch_size: int = 16
) -> list[np.ndarray]:
    """The model's depth in metres at each image's size (the processor's resize and post-processing), float32, through
    the one predictor (`inference.DepthEstimator`), which runs the model as it is (device, dtype) in eval mode and
    hands it back in its training mode."""
    from ..inference import DepthEstimator

    estimator = DepthEstimator.from_model(model, processor, batch_size=batch_size)
    return [prediction.depth for prediction in estimator.predict_arrays(images)]  # (H, W) metres each


def score_metres(predictions: list[np.ndarray], scenes: list[tuple], min_depth: float, max_depth: float) -> dict:
    """Metric-depth scores in metres, no alignment (scale 1, shift 0), depth protocol: the mean of per-image metrics
    (`evaluation.metrics.evaluate_predictions`)."""
    from ..evaluation.metrics import evaluate_predictions

    summary = evaluate_predictions(
        predictions,
        [scene[1] for scene in scenes],
        [scene[2] for scene in scenes],
        protocol="depth",
        min_depth=min_depth,
        max_depth=max_depth,
        prediction_type="depth",
        alignment="none",
        ids=[scene[3] for scene in scenes],
    )
    if summary["metrics"] is None:
        raise ValueError(f"no held-out scene could be scored: {summary['skipped'][:3]}")
    return {"num_scored": summary["num_evaluated"], **summary["metrics"]}


def heldout_results(scores: dict, metric_args: MetricArguments, size: tuple[int, int]) -> dict:
    """Held-out scores in the evaluation runner's metrics.json form (`model_card.update_model_card` takes it)."""
    seed, (height, width) = metric_args.heldout_seed, size
    return {
        "protocol": "depth",
        "alignment": "none",
        "benchmarks": {
            "synthetic_rooms": {
                "kind": "synthetic",
                "display_name": f"synthetic scenes (room, seed {seed}, {height}x{width})",
                "split": f"seed-{seed}",
                "metrics": scores,
            }
        },
    }


def heldout_table(results: dict[str, dict]) -> str:
    """Markdown table of `{row name: scores}` (AbsRel, δ1, RMSE in metres, SILog)."""
    lines = ["| model | AbsRel ↓ | δ1 ↑ | RMSE (m) ↓ | SILog ↓ |", "|---|---|---|---|---|"]
    for name, scores in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{scores[m]:.3f}" for m in HELDOUT_METRICS) + " |")
    return "\n".join(lines)


def load_or_compute(path: str, compute) -> Any:
    """The JSON at `path` if a previous (killed) run already wrote it, else `compute()` written there first."""
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    value = compute()
    write_json(path, value)
    return value
