"""The papers' evaluation protocol: metrics (per-image scale-and-shift alignment, AbsRel, δ1–3, ...), benchmark
readers (NYU, KITTI, ETH3D, DIODE, Sintel, RGB-D folders, `datasets`, DA-2K, held-out synthetic scenes), the runner
behind `eval/evaluate_model.py`, reports (tables, picture grids, model-card `model-index`) and the speed benchmark.
"""

from .benchmarks import DA2KBenchmark, DepthBenchmark, load_benchmark
from .metrics import (
    METRIC_NAMES,
    MetricAccumulator,
    align_scale_shift,
    compute_depth_metrics,
    evaluate_model,
    evaluate_predictions,
    evaluate_sample,
)

__all__ = [
    "METRIC_NAMES",
    "DA2KBenchmark",
    "DepthBenchmark",
    "MetricAccumulator",
    "align_scale_shift",
    "compute_depth_metrics",
    "evaluate_model",
    "evaluate_predictions",
    "evaluate_sample",
    "load_benchmark",
]
