"""Configuration of metric fine-tuning (`train/metric.py`, Depth Anything V2's `metric_depth` recipe).

The run is configured by the shared dataclasses (`ModelArguments`, `DataArguments`, `TrainArguments` of `args.py`)
plus `MetricArguments` below, from one YAML and command-line overrides (`args.parse_args`). The shared fields carry
the recipe's other settings: `init_from` (the relative model whose encoder and decoder are fine-tuned), `labelled`
(metric sources, `data/metric.py`), `max_depth` (metres: the head's sigmoid scale, and the largest valid ground
truth, as V2 uses one `--max-depth` for both), `crop_size`, `hflip`, `encoder_lr` (decoder x `decoder_lr_multiplier`),
`weight_decay`, `lr_schedule: poly` with `poly_power: 0.9`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HEAD_INITS = ("auto", "reset", "keep")
# Held-out synthetic scenes: a seed no training stage renders (training streams use `synthetic_seed`, 0 by default,
# and pseudo-labelling `synthetic_seed + 1000`).
HELDOUT_SEED = 777_001


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


@dataclass
class MetricArguments:
    """Metric fine-tuning: SiLog in metres on a sigmoid x `max_depth` head (V2 `metric_depth/train.py`).

    Args:
        min_depth (`float`, defaults to 1e-3): ground truth below this (metres) is invalid (V2's `--min-depth`).
        silog_lambda (`float`, defaults to 0.5): lambda of the SiLog loss, in [0, 1] (V2: 0.5).
        head_init (`str`, defaults to `"auto"`): the head's last convolution (32 features -> 1 value before the
            sigmoid): `"reset"` re-initialises it (zero weights, bias from `init_depth`; a relative model's last layer
            maps features to *disparity*, which through a sigmoid would put near things far); `"keep"` keeps it
            (continuing from a metric model); `"auto"`: keep for a metric `init_from` with the same `max_depth`, else
            reset.
        init_depth (`float`, *optional*): what a reset head predicts everywhere at first, in metres (its bias is
            `logit(init_depth / max_depth)`); default `max_depth / 2` (bias 0, as V2's freshly initialised head).
        heldout_scenes (`int`, defaults to 64): held-out synthetic rooms scored in metres without alignment before
            and after training (the untrained metric head, the fine-tuned model, and a constant prediction equal to
            the training data's median depth); only with a `synthetic` source; 0 disables.
        heldout_seed (`int`, defaults to 777001): seed of the held-out scenes (a seed no training stream renders).
        median_samples (`int`, defaults to 32): training samples whose median depth is the constant baseline.
    """

    min_depth: float = 1e-3
    silog_lambda: float = 0.5
    head_init: str = "auto"
    init_depth: float | None = None
    heldout_scenes: int = 64
    heldout_seed: int = HELDOUT_SEED
    median_samples: int = 32

    def __post_init__(self) -> None:
        if not _number("min_depth", self.min_depth) > 0:
            raise ValueError(f"min_depth must be > 0 metres, got {self.min_depth!r}")
        if not 0.0 <= _number("silog_lambda", self.silog_lambda) <= 1.0:
            raise ValueError(f"silog_lambda must be in [0, 1], got {self.silog_lambda!r}")
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"head_init must be one of {HEAD_INITS}, got {self.head_init!r}")
        if self.init_depth is not None and not _number("init_depth", self.init_depth) > 0:
            raise ValueError(f"init_depth must be > 0 metres, got {self.init_depth!r}")
        _count("heldout_scenes", self.heldout_scenes)
        _count("median_samples", self.median_samples)
        if self.heldout_scenes and not self.median_samples:
            raise ValueError("median_samples must be >= 1 when heldout_scenes > 0 (the constant baseline needs it)")


def check_metric_setup(model_args: Any, data_args: Any, metric_args: MetricArguments) -> float:
    """Checks what metric fine-tuning needs from the shared configs; returns `max_depth` in metres.

    Raises:
        ValueError: no `init_from`, no source, no `max_depth`, a `max_depth` that is not a whole number of metres
            (transformers' built-in config only takes an integer), or an `init_depth` outside (0, max_depth).
    """
    if not model_args.init_from:
        raise ValueError("metric fine-tuning starts from a Depth Anything model: pass --init_from FOLDER_OR_HUB_ID")
    if not data_args.labelled:
        raise ValueError(
            "metric fine-tuning needs at least one metric source: --labelled synthetic, hypersim:PATH, ..."
        )
    max_depth = data_args.max_depth
    if max_depth is None:
        raise ValueError("metric fine-tuning needs --max_depth (metres: 20 indoors, 80 outdoors)")
    if _number("max_depth", max_depth) <= metric_args.min_depth or not float(max_depth).is_integer():
        raise ValueError(
            f"max_depth must be a whole number of metres above min_depth={metric_args.min_depth!r} (transformers' "
            f"built-in config only loads an integer max_depth), got {max_depth!r}"
        )
    if metric_args.init_depth is not None and not metric_args.init_depth < max_depth:
        raise ValueError(f"init_depth must be below max_depth={max_depth!r}, got {metric_args.init_depth!r}")
    return float(max_depth)
