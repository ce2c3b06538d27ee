"""Depth metrics, per-image least-squares alignment and the two zero-shot evaluation protocols.

Everything here is plain numpy on float64 (torch tensors are accepted and converted), vectorised over the pixels of
an image and, where the maps share a size, over a batch: arrays are ``(..., H, W)`` with a boolean mask of the same
shape, and per-image results come back with shape ``(...)``.

Protocols (docs/facts.md §6); every result dict records which one was used:

* ``disparity`` — the Depth Anything authors' protocol: the predicted disparity is aligned to the ground-truth
  disparity ``1 / depth`` by a per-image least-squares scale and shift on valid pixels, and scored in disparity.
* ``depth`` — the MiDaS / Marigold protocol: align in disparity as above, invert to depth, clamp to the dataset's depth
  range and score in depth.

Decisions (UNCERTAIN upstream, written down here):

* Aligned predictions are clamped to the dataset's range in both protocols (in disparity ``[1/max_depth, 1/min_depth]``,
  which is the same as clamping depth to ``[min_depth, max_depth]``). Without the clamp, a least-squares fit can give
  zero or negative disparities, for which δ and the log metrics are undefined. Where a dataset has no upper cap
  (``max_depth=inf``, e.g. ETH3D) the image's largest valid ground-truth depth is used as the cap.
* A ground-truth pixel is valid when it is finite, ``min_depth <= depth <= max_depth`` and inside the mask.
* A degenerate fit (fewer than two valid pixels, or a constant prediction) falls back to scale 0 and the mean target
  as shift, which is the least-squares solution of smallest norm; it never yields NaN.
* Benchmark scores are the mean of per-image metrics (as MiDaS, Marigold and ZoeDepth report them).

Metric definitions follow ZoeDepth's ``compute_errors`` (SILog is ``100 * sqrt(var(log error))``); ``silog_v2`` is
Depth Anything V2's metric-depth SILog, ``sqrt(mean(d^2) - 0.5 * mean(d)^2)`` of the log error ``d`` (its
``metric_depth/util/metric.py``), so metric models can be compared with the V2 paper's tables.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

PROTOCOLS = ("disparity", "depth")
PREDICTION_TYPES = ("disparity", "depth")
ALIGNMENTS = ("scale_shift", "none")
METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "silog_v2", "delta1", "delta2", "delta3")
# Lower is better for every metric but the δ accuracies.
HIGHER_IS_BETTER = {"delta1", "delta2", "delta3", "accuracy"}
MIN_VALID_PIXELS = 2
PROTOCOL_DESCRIPTIONS = {
    "disparity": "per-image least-squares scale and shift in disparity; scored in disparity (Depth Anything authors)",
    "depth": "per-image least-squares scale and shift in disparity, inverted to depth, clamped to the dataset range; "
    "scored in depth (MiDaS / Marigold)",
}


class InvalidSampleError(ValueError):
    """A sample that cannot be scored (size mismatch, no valid pixels, ...); evaluation loops skip and count it."""


def _to_numpy(array: Any, dtype=np.float64) -> np.ndarray:
    """Converts a numpy array, torch tensor or nested sequence to a numpy array of ``dtype``."""
    if hasattr(array, "detach"):  # torch.Tensor, without importing torch
        array = array.detach().cpu()
        try:
            array = array.numpy()
        except TypeError:  # bfloat16 has no numpy dtype
            array = array.float().numpy()
    return np.asarray(array, dtype=dtype)


def _same_shape_arrays(prediction: Any, target: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 prediction and target and a bool mask, which must all have one shape."""
    prediction = _to_numpy(prediction)
    target = _to_numpy(target)
    mask = _to_numpy(mask, dtype=bool)
    if not prediction.shape == target.shape == mask.shape:
        raise InvalidSampleError(
            f"prediction, target and mask must have the same shape, got {prediction.shape}, {target.shape}, {mask.shape}"
        )
    return prediction, target, mask


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")


# ----------------------------------------------------------------------------------------------------------------------
# Alignment
# ----------------------------------------------------------------------------------------------------------------------


def align_scale_shift(prediction: Any, target: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-image least-squares scale and shift so that ``scale * prediction + shift ≈ target`` on ``mask``.

    Solves the 2×2 normal equations in float64 in closed form, vectorised over leading batch dimensions.

    Args:
        prediction (`array`, shape `(..., H, W)`): values to align (e.g. predicted disparity).
        target (`array`, shape `(..., H, W)`): reference values (e.g. ground-truth disparity).
        mask (`bool array`, shape `(..., H, W)`): pixels that take part in the fit.

    Returns:
        `(scale, shift)`, each a float64 array of shape `(...)`. Degenerate images (fewer than 2 valid pixels or a
        constant prediction) get scale 0 and shift = mean target (NaN only when the mask is empty).
    """
    prediction, target, mask = _same_shape_arrays(prediction, target, mask)
    weights = mask.astype(np.float64)
    prediction = np.where(mask, prediction, 0.0)
    target = np.where(mask, target, 0.0)
    axes = (-2, -1)
    count = weights.sum(axis=axes)
    sum_p = prediction.sum(axis=axes)
    sum_t = target.sum(axis=axes)
    sum_pp = (prediction * prediction).sum(axis=axes)
    sum_pt = (prediction * target).sum(axis=axes)
    determinant = count * sum_pp - sum_p * sum_p
    # Relative test: the determinant is n² · var(p), compare with the scale of n · Σp².
    degenerate = (count < MIN_VALID_PIXELS) | (determinant <= 1e-12 * np.maximum(count * sum_pp, 1e-300))
    safe_det = np.where(degenerate, 1.0, determinant)
    scale = np.where(degenerate, 0.0, (count * sum_pt - sum_p * sum_t) / safe_det)
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(count > 0, (sum_t - scale * sum_p) / np.maximum(count, 1.0), np.nan)
    return scale, shift


def align_prediction(prediction: Any, target: Any, mask: Any) -> np.ndarray:
    """Returns ``scale * prediction + shift`` with the per-image least-squares fit of :func:`align_scale_shift`.

    Args:
        prediction, target, mask: arrays of shape `(..., H, W)`.

    Returns:
        float64 array of shape `(..., H, W)`.
    """
    prediction = _to_numpy(prediction)
    scale, shift = align_scale_shift(prediction, target, mask)
    return (
        scale[..., None, None] * prediction + shift[..., None, None]
    )  # (...) -> (..., 1, 1), broadcast to (..., H, W)


# ----------------------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------------------


def compute_depth_metrics(prediction: Any, target: Any, mask: Any) -> dict[str, np.ndarray]:
    """Standard depth metrics on valid pixels, per image (ZoeDepth definitions).

    Both inputs must be positive on the mask (depths, or disparities); the caller clamps beforehand.

    Args:
        prediction (`array`, shape `(..., H, W)`): aligned prediction in the scoring space.
        target (`array`, shape `(..., H, W)`): ground truth in the same space.
        mask (`bool array`, shape `(..., H, W)`): valid pixels.

    Returns:
        dict ``name -> float64 array of shape (...)`` for every name in :data:`METRIC_NAMES`, plus ``valid_pixels``.
        Images with an empty mask get NaN (callers skip them, see :class:`MetricAccumulator`).
    """
    prediction, target, mask = _same_shape_arrays(prediction, target, mask)
    if np.any(mask & ~(prediction > 0)) or np.any(mask & ~(target > 0)):
        raise InvalidSampleError("prediction and target must be positive and finite on valid pixels (clamp first)")
    # Safe values outside the mask so that logs and divisions never warn; they are zero-weighted below.
    prediction = np.where(mask, prediction, 1.0)
    target = np.where(mask, target, 1.0)
    axes = (-2, -1)
    count = mask.sum(axis=axes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):

        def masked_mean(values: np.ndarray) -> np.ndarray:
            return np.where(mask, values, 0.0).sum(axis=axes) / count

        ratio = np.maximum(prediction / target, target / prediction)
        difference = prediction - target
        log_error = np.log(prediction) - np.log(target)
        mean_log_error = masked_mean(log_error)
        metrics = {
            "abs_rel": masked_mean(np.abs(difference) / target),
            "sq_rel": masked_mean(difference**2 / target),
            "rmse": np.sqrt(masked_mean(difference**2)),
            "rmse_log": np.sqrt(masked_mean(log_error**2)),
            "log10": masked_mean(np.abs(np.log10(prediction) - np.log10(target))),
            # max(0, ·) guards against a tiny negative variance from rounding.
            "silog": 100.0 * np.sqrt(np.maximum(masked_mean(log_error**2) - mean_log_error**2, 0.0)),
            # Depth Anything V2's metric_depth/util/metric.py: lambda 0.5 and no factor 100 (the SiLog loss's value)
            "silog_v2": np.sqrt(np.maximum(masked_mean(log_error**2) - 0.5 * mean_log_error**2, 0.0)),
            "delta1": masked_mean((ratio < 1.25).astype(np.float64)),
            "delta2": masked_mean((ratio < 1.25**2).astype(np.float64)),
            "delta3": masked_mean((ratio < 1.25**3).astype(np.float64)),
        }
    metrics["valid_pixels"] = count
    return metrics


def valid_depth_mask(depth: Any, mask: Any | None = None, min_depth: float = 1e-3, max_depth: float = math.inf):
    """Boolean mask of usable ground-truth pixels: finite, ``min_depth <= depth <= max_depth`` and inside ``mask``.

    Args:
        depth (`array`, shape `(..., H, W)`): ground-truth depth in metres (0, NaN or inf mark missing values).
        mask (`bool array`, shape `(..., H, W)`, *optional*): extra validity mask (crop, dataset mask).
        min_depth, max_depth (`float`): the dataset's range (``max_depth`` may be ``inf``).
    """
    depth = _to_numpy(depth)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth >= min_depth) & (depth <= max_depth) & (depth > 0)
    if mask is not None:
        mask = _to_numpy(mask, dtype=bool)
        if mask.shape != depth.shape:
            raise InvalidSampleError(f"mask shape {mask.shape} does not match depth shape {depth.shape}")
        valid &= mask
    return valid


def evaluate_sample(
    prediction: Any,
    gt_depth: Any,
    mask: Any | None = None,
    protocol: str = "disparity",
    min_depth: float = 1e-3,
    max_depth: float = math.inf,
    prediction_type: str = "disparity",
    alignment: str = "scale_shift",
    return_maps: bool = False,
):
    """Scores one prediction against metric ground truth under a protocol.

    Args:
        prediction (`array`, shape `(H, W)`): the model output at the ground truth's size; relative disparity when
            ``prediction_type="disparity"`` (Depth Anything relative models), metres when ``"depth"`` (metric models).
        gt_depth (`array`, shape `(H, W)`): ground-truth depth in metres; 0, NaN and inf are invalid.
        mask (`bool array`, shape `(H, W)`, *optional*): extra validity mask (crop, dataset mask).
        protocol (`str`, defaults to ``"disparity"``): ``"disparity"`` or ``"depth"`` (see module docstring).
        min_depth, max_depth (`float`): the dataset's depth range, used for validity and for clamping.
        prediction_type (`str`, defaults to ``"disparity"``): space of ``prediction``; alignment happens in it.
        alignment (`str`, defaults to ``"scale_shift"``): ``"scale_shift"`` (per-image least squares) or ``"none"``
            (metric models scored as they are).
        return_maps (`bool`): also return ``{"prediction", "target", "mask"}`` maps in the scoring space (for plots).

    Returns:
        dict of floats (every name in :data:`METRIC_NAMES`, ``valid_pixels``, ``scale``, ``shift``), or
        ``(metrics, maps)`` with ``return_maps=True``.

    Raises:
        InvalidSampleError: shapes differ or fewer than :data:`MIN_VALID_PIXELS` valid pixels.
    """
    _check_protocol(protocol)
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    if not (min_depth > 0 and max_depth > min_depth):
        raise ValueError(f"need 0 < min_depth < max_depth, got min_depth={min_depth!r}, max_depth={max_depth!r}")
    prediction = _to_numpy(prediction)
    gt_depth = _to_numpy(gt_depth)
    if prediction.ndim != 2 or prediction.shape != gt_depth.shape:
        raise InvalidSampleError(
            f"prediction shape {prediction.shape} does not match ground-truth shape {gt_depth.shape} (need (H, W))"
        )
    valid = valid_depth_mask(gt_depth, mask, min_depth, max_depth)
    num_valid = int(valid.sum())
    if num_valid < MIN_VALID_PIXELS:
        raise InvalidSampleError(f"only {num_valid} valid ground-truth pixels in [{min_depth}, {max_depth}] m")
    if not np.all(np.isfinite(prediction[valid])):
        raise InvalidSampleError("prediction has NaN or inf values on valid pixels")
    cap = max_depth if math.isfinite(max_depth) else float(gt_depth[valid].max())
    cap = max(cap, min_depth * (1 + 1e-6))
    safe_gt = np.where(valid, gt_depth, 1.0)
    # Reference in the prediction's space, for the fit.
    reference = 1.0 / safe_gt if prediction_type == "disparity" else safe_gt
    if alignment == "scale_shift":
        scale, shift = align_scale_shift(prediction, reference, valid)
        scale, shift = float(scale), float(shift)
    else:
        scale, shift = 1.0, 0.0
    aligned = scale * prediction + shift
    if prediction_type == "disparity":
        aligned_disparity = np.clip(aligned, 1.0 / cap, 1.0 / min_depth)
        aligned_depth = 1.0 / aligned_disparity
    else:
        aligned_depth = np.clip(aligned, min_depth, cap)
        aligned_disparity = 1.0 / aligned_depth
    if protocol == "disparity":
        scored, target = aligned_disparity, 1.0 / safe_gt
    else:
        scored, target = aligned_depth, safe_gt
    per_image = compute_depth_metrics(scored, target, valid)
    result = {name: float(value) for name, value in per_image.items()}
    result.update(scale=scale, shift=shift)
    bad = [name for name in METRIC_NAMES if not math.isfinite(result[name])]
    if bad:
        raise InvalidSampleError(f"non-finite metrics {bad}")
    if return_maps:
        return result, {"prediction": scored, "target": np.where(valid, target, np.nan), "mask": valid}
    return result


@dataclass
class MetricAccumulator:
    """Collects per-image metrics and skipped samples; :meth:`summary` averages over the scored images.

    Args:
        protocol (`str`): the protocol the per-image results were computed with (recorded in the summary).
    """

    protocol: str = "disparity"
    per_sample: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_protocol(self.protocol)

    def add(self, sample_id: str, metrics: dict[str, float]) -> None:
        self.per_sample[str(sample_id)] = metrics

    def skip(self, sample_id: str, reason: str) -> None:
        logger.warning("skipping sample %s: %s", sample_id, reason)
        self.skipped.append({"id": str(sample_id), "reason": str(reason)})

    def summary(self) -> dict[str, Any]:
        """Returns ``{"protocol", "num_evaluated", "num_skipped", "skipped", "metrics"}``.

        ``metrics`` is ``None`` when no image could be scored (never NaN); callers treat that as an error.
        """
        metrics = None
        if self.per_sample:
            metrics = {
                name: float(np.mean([sample[name] for sample in self.per_sample.values()])) for name in METRIC_NAMES
            }
        return {
            "protocol": self.protocol,
            "num_evaluated": len(self.per_sample),
            "num_skipped": len(self.skipped),
            "skipped": list(self.skipped),
            "metrics": metrics,
        }


def evaluate_predictions(
    pred_disparities: Sequence[Any],
    gt_depths: Sequence[Any],
    masks: Sequence[Any] | None = None,
    protocol: str = "disparity",
    min_depth: float = 1e-3,
    max_depth: float = math.inf,
    prediction_type: str = "disparity",
    alignment: str = "scale_shift",
    ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Scores a set of predictions (e.g. held-out synthetic scenes during training) in affine-aligned metrics.

    Args:
        pred_disparities (sequence of `(H_i, W_i)` arrays or a `(B, H, W)` array/tensor): model outputs at the
            ground truth's size (disparity for relative models; see ``prediction_type``).
        gt_depths (same layout): ground-truth depth in metres; 0, NaN and inf are invalid.
        masks (same layout, *optional*): extra boolean validity masks.
        protocol, min_depth, max_depth, prediction_type, alignment: see :func:`evaluate_sample`.
        ids (*optional*): sample names for the skip list; defaults to indices.

    Returns:
        :meth:`MetricAccumulator.summary` dict (``metrics["abs_rel"]`` is the affine-aligned AbsRel), plus
        ``per_sample``.
    """
    if len(pred_disparities) != len(gt_depths):
        raise ValueError(f"got {len(pred_disparities)} predictions but {len(gt_depths)} ground-truth maps")
    if masks is not None and len(masks) != len(gt_depths):
        raise ValueError(f"got {len(masks)} masks but {len(gt_depths)} ground-truth maps")
    accumulator = MetricAccumulator(protocol)
    for index in range(len(gt_depths)):
        sample_id = str(ids[index]) if ids is not None else str(index)
        try:
            metrics = evaluate_sample(
                pred_disparities[index],
                gt_depths[index],
                None if masks is None else masks[index],
                protocol=protocol,
                min_depth=min_depth,
                max_depth=max_depth,
                prediction_type=prediction_type,
                alignment=alignment,
            )
        except InvalidSampleError as error:
            accumulator.skip(sample_id, str(error))
            continue
        accumulator.add(sample_id, metrics)
    return {**accumulator.summary(), "per_sample": accumulator.per_sample}


# ----------------------------------------------------------------------------------------------------------------------
# DA-2K pairwise accuracy
# ----------------------------------------------------------------------------------------------------------------------


def pairwise_accuracy(disparity: Any, pairs: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Counts DA-2K pairs ordered correctly: the closer point must have the larger predicted disparity.

    Args:
        disparity (`array`, shape `(H, W)`): predicted disparity at the image's original size.
        pairs: DA-2K annotations ``{"point1": [h, w], "point2": [h, w], "closer_point": "point1" | "point2"}``;
            points are ``[row, column]`` pixel indices. Ties count as wrong.

    Returns:
        `(correct, total)`.

    Raises:
        InvalidSampleError: a malformed pair or a point outside the image.
    """
    disparity = _to_numpy(disparity)
    height, width = disparity.shape
    correct = total = 0
    for pair in pairs:
        try:
            point1, point2, closer = pair["point1"], pair["point2"], pair["closer_point"]
            (h1, w1), (h2, w2) = (int(round(v)) for v in point1), (int(round(v)) for v in point2)
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidSampleError(f"malformed DA-2K pair {pair!r}: {error}") from error
        if closer not in ("point1", "point2"):
            raise InvalidSampleError(f"closer_point must be 'point1' or 'point2', got {closer!r}")
        for h, w in ((h1, w1), (h2, w2)):
            if not (0 <= h < height and 0 <= w < width):
                raise InvalidSampleError(f"point [h={h}, w={w}] lies outside the {height}x{width} image")
        first, second = disparity[h1, w1], disparity[h2, w2]
        correct += bool(first > second) if closer == "point1" else bool(second > first)
        total += 1
    return correct, total


# ----------------------------------------------------------------------------------------------------------------------
# Model evaluation: a predictor (inference.DepthEstimator, or a baseline) on (image, depth, mask, id) samples
# ----------------------------------------------------------------------------------------------------------------------


def predictor_output_type(predictor: Any) -> str:
    """``"depth"`` for predictors of metric depth (``predictor.is_metric``), else ``"disparity"``."""
    return "depth" if getattr(predictor, "is_metric", False) else "disparity"


def evaluate_model(
    predictor: Any,
    samples: Iterable[Any],
    protocol: str = "disparity",
    min_depth: float = 1e-3,
    max_depth: float = math.inf,
    alignment: str = "scale_shift",
    progress: bool = True,
    keep_examples: int = 0,
    total: int | None = None,
) -> dict[str, Any]:
    """Scores a predictor on ``(image, depth, mask, id)`` samples (held-out scenes or a benchmark) in aligned metrics.

    Args:
        predictor: an ``inference.DepthEstimator`` (``DepthEstimator.from_pretrained(folder)``, or
            ``DepthEstimator.from_model(model, processor)`` for a model in memory) or an ``evaluation.baselines``
            predictor: anything with ``predict_arrays(images, names)``, ``is_metric`` and ``batch_size`` (images per
            forward pass). Images that resize to the same size share a batch.
        samples: iterable of ``(image, depth, mask, id)``: image PIL or `(H, W, 3)` uint8, depth `(H, W)` metres,
            mask `(H, W)` bool or ``None``. An item may also be an ``Exception`` (a sample that failed to load): it
            is skipped and counted.
        protocol, min_depth, max_depth, alignment: see :func:`evaluate_sample`.
        progress (`bool`): show a tqdm progress bar.
        keep_examples (`int`): keep that many ``(image, maps, metrics, id)`` tuples under ``"examples"`` for plots.
        total (`int`, *optional*): number of samples, for the progress bar.

    Returns:
        :meth:`MetricAccumulator.summary` dict plus ``per_sample``, ``prediction_type``, ``alignment`` and
        ``examples``.
    """
    from tqdm.auto import tqdm

    from ..image_processing_depth_anything import MIN_IMAGE_SIDE
    from ..inference.estimator import as_rgb_float

    _check_protocol(protocol)
    batch_size = getattr(predictor, "batch_size", 4)
    prediction_type = predictor_output_type(predictor)
    accumulator = MetricAccumulator(protocol)
    examples: list[tuple[Any, dict[str, np.ndarray], dict[str, float], str]] = []

    def flush(batch: list[Any]) -> None:
        usable = []
        for image, depth, mask, sample_id in batch:
            try:
                array = as_rgb_float(image)
            except (TypeError, ValueError) as error:
                accumulator.skip(sample_id, f"unusable image: {error}")
                continue
            if min(array.shape[:2]) < MIN_IMAGE_SIDE:
                accumulator.skip(
                    sample_id, f"image of {array.shape[1]}x{array.shape[0]} pixels is smaller than a patch"
                )
            elif array.shape[:2] != np.shape(depth):
                accumulator.skip(
                    sample_id, f"image size {array.shape[:2]} does not match depth size {np.shape(depth)}"
                )
            else:
                usable.append((image, array, depth, mask, sample_id))
        if not usable:
            return
        predictions = predictor.predict_arrays([item[1] for item in usable], [str(item[4]) for item in usable])
        for (image, _, depth, mask, sample_id), prediction in zip(usable, predictions, strict=True):
            try:
                metrics, maps = evaluate_sample(
                    prediction.depth, depth, mask, protocol, min_depth, max_depth, prediction_type, alignment, True
                )
            except InvalidSampleError as error:
                accumulator.skip(sample_id, str(error))
                continue
            accumulator.add(sample_id, metrics)
            if len(examples) < keep_examples:
                examples.append((image, maps, metrics, str(sample_id)))

    batch: list[Any] = []
    for item in tqdm(samples, total=total, desc="evaluating", disable=not progress, unit="img"):
        if isinstance(item, Exception):
            accumulator.skip(getattr(item, "sample_id", "?"), str(item))
            continue
        batch.append(tuple(item))
        if len(batch) == 4 * batch_size:  # a few forward passes' worth; the predictor batches by size inside
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    return {
        **accumulator.summary(),
        "prediction_type": prediction_type,
        "alignment": alignment,
        "per_sample": accumulator.per_sample,
        "examples": examples,
    }
