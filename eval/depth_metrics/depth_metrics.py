"""Depth metrics as a Hugging Face `evaluate` module: ``evaluate.load("eval/depth_metrics")``.

Computes the zero-shot depth metrics of `modeling_depth_anything.evaluation.metrics`, imported from the installed
package (the one implementation, also behind `eval/evaluate_model.py` / `depth-anything evaluate`): AbsRel, SqRel,
RMSE, RMSE-log, log10, SILog, V2's metric SILog (``silog_v2``) and δ1/δ2/δ3, after per-image least-squares scale and
shift alignment (``alignment="none"`` for metric models), under the ``disparity`` (Depth Anything authors) or
``depth`` (MiDaS / Marigold) protocol.

Example:
    >>> import evaluate
    >>> depth_metrics = evaluate.load("eval/depth_metrics")
    >>> depth_metrics.compute(predictions=[disparity_map], references=[depth_map_in_metres], protocol="depth",
    ...                       max_depth=10.0)  # {"abs_rel": ..., "delta1": ..., "num_evaluated": 1, "num_skipped": 0, ...}
"""

import math

import datasets
import evaluate
import numpy as np

from modeling_depth_anything.evaluation.metrics import METRIC_NAMES, PROTOCOLS, evaluate_predictions

_DESCRIPTION = __doc__
_CITATION = """\
@inproceedings{yang2024depthv2,
  title={Depth Anything V2}, author={Yang, Lihe and Kang, Bingyi and Huang, Zilong and Zhao, Zhen and Xu, Xiaogang
  and Feng, Jiashi and Zhao, Hengshuang}, booktitle={NeurIPS}, year={2024}
}
"""
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of `(H, W)` float arrays): model outputs at the ground truth's size (relative disparity, or
        metres with `prediction_type="depth"`).
    references (list of `(H, W)` float arrays): ground-truth depth in metres; 0, NaN and inf are invalid.
    masks (list of `(H, W)` bool arrays, *optional*): extra validity masks (crops).
    protocol (`str`, defaults to "disparity"): "disparity" or "depth".
    min_depth (`float`, defaults to 1e-3), max_depth (`float`, defaults to inf): valid depth range in metres.
    prediction_type (`str`, defaults to "disparity"), alignment (`str`, defaults to "scale_shift").
Returns:
    dict with the mean of every per-image metric (abs_rel, sq_rel, rmse, rmse_log, log10, silog, silog_v2, delta1,
    delta2, delta3), `protocol`, `num_evaluated`, `num_skipped` and `skipped` (id and reason of each unscorable sample).
Raises:
    ValueError: when no sample can be scored.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DepthMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
                    "references": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
                }
            ),
        )

    def _compute(
        self,
        predictions,
        references,
        masks=None,
        protocol="disparity",
        min_depth=1e-3,
        max_depth=math.inf,
        prediction_type="disparity",
        alignment="scale_shift",
    ):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        predictions = [np.asarray(p, dtype=np.float64) for p in predictions]
        # references may contain NaN or inf for missing depth; float32 storage keeps them.
        references = [np.asarray(r, dtype=np.float64) for r in references]
        masks = None if masks is None else [np.asarray(m, dtype=bool) for m in masks]
        summary = evaluate_predictions(
            predictions, references, masks, protocol, min_depth, max_depth, prediction_type, alignment
        )
        if summary["metrics"] is None:
            reasons = "; ".join(f"{s['id']}: {s['reason']}" for s in summary["skipped"])
            raise ValueError(f"no sample could be scored ({reasons})")
        result = {name: summary["metrics"][name] for name in METRIC_NAMES}
        result.update(
            protocol=protocol,
            num_evaluated=summary["num_evaluated"],
            num_skipped=summary["num_skipped"],
            skipped=summary["skipped"],
        )
        return result
