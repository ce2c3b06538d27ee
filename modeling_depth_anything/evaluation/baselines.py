"""Baseline "models": predictors without weights that the runner evaluates like any model (`--model baseline:NAME`).

A predictor is anything with `predict_arrays(images, names) -> list[DepthPrediction]`, `is_metric` and `batch_size`,
as `inference.DepthEstimator` has; evaluation (`metrics.evaluate_model`, `runner`) only talks to that interface.

Baselines:
- `baseline:vertical`: disparity rising linearly from the top row (0) to the bottom row (1), "the ground comes closer".
  On outdoor and street scenes this prior alone scores far better than an untrained network; a trained model must
  beat it to have learned more than the image's vertical position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..inference.estimator import DepthPrediction, as_rgb_float

BASELINE_PREFIX = "baseline:"


def vertical_gradient(height: int, width: int) -> np.ndarray:
    """(height, width) float32 disparity rising linearly from 0 (top row) to 1 (bottom row)."""
    return np.repeat(np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None], width, axis=1)  # (H, 1) -> (H, W)


BASELINES: dict[str, Callable[[int, int], np.ndarray]] = {"vertical": vertical_gradient}


@dataclass
class BaselinePredictor:
    """A weightless predictor: `function(height, width)` gives each image's relative disparity map.

    Args:
        name (`str`): one of `BASELINES`.
        batch_size (`int`, defaults to 4): accepted for the predictor interface (images are independent).
    """

    name: str
    batch_size: int = 4

    def __post_init__(self) -> None:
        if self.name not in BASELINES:
            raise ValueError(f"unknown baseline {self.name!r}; known: {sorted(BASELINES)}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")

    is_metric = False

    @property
    def spec(self) -> str:
        return f"{BASELINE_PREFIX}{self.name}"

    def predict_arrays(self, images: Sequence, names: Sequence[str] | None = None) -> list[DepthPrediction]:
        names = list(names) if names is not None else [f"image {index}" for index in range(len(images))]
        results = []
        for image, name in zip(images, names, strict=True):
            array = as_rgb_float(image)
            results.append(DepthPrediction(BASELINES[self.name](*array.shape[:2]), array, False, name))
        return results


def is_baseline(spec: str) -> bool:
    return str(spec).startswith(BASELINE_PREFIX)


def load_baseline(spec: str, batch_size: int = 4) -> BaselinePredictor:
    """`baseline:NAME` -> its predictor; `ValueError` naming the known baselines for an unknown name."""
    if not is_baseline(spec):
        raise ValueError(f"a baseline looks like {BASELINE_PREFIX}NAME (known: {sorted(BASELINES)}), got {spec!r}")
    return BaselinePredictor(spec[len(BASELINE_PREFIX) :], batch_size)
