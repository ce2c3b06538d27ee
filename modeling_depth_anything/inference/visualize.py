"""Pictures of a prediction: robust value ranges, colour maps, 16-bit PNG, side-by-side."""

from __future__ import annotations

import logging

import numpy as np

from .estimator import DepthPrediction

logger = logging.getLogger(__name__)

ROBUST_PERCENTILES = (2.0, 98.0)


def robust_range(depth: np.ndarray, percentiles: tuple[float, float] = ROBUST_PERCENTILES) -> tuple[float, float]:
    """(low, high) percentiles of the finite values; a constant map gets a unit-width range (never NaN)."""
    finite = depth[np.isfinite(depth)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = (float(value) for value in np.percentile(finite, percentiles))
    if not high > low:
        high = low + 1.0
    return low, high


def normalize(depth: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Map values to [0, 1] with `value_range` (default: the map's min and max); clipped, constant maps give 0."""
    low, high = value_range if value_range is not None else (float(np.nanmin(depth)), float(np.nanmax(depth)))
    scale = high - low if high > low else 1.0
    return np.clip((depth - low) / scale, 0.0, 1.0)


def display_map(prediction: DepthPrediction) -> np.ndarray:
    """The map to colour so that near is high: disparity as is, metric depth inverted (1 / metres)."""
    if prediction.is_metric:
        return 1.0 / np.maximum(prediction.depth, 1e-3)
    return prediction.depth


def colorize(
    values: np.ndarray, cmap: str = "Spectral_r", value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """(height, width) values -> uint8 (height, width, 3) RGB through a matplotlib colormap (high = red for
    Spectral_r). `value_range` defaults to the map's min/max."""
    from matplotlib import colormaps

    if cmap not in colormaps:
        raise ValueError(f"unknown matplotlib colormap {cmap!r}; e.g. Spectral_r, viridis, magma, inferno, gray")
    rgba = colormaps[cmap](normalize(values, value_range), bytes=True)  # (height, width, 4) uint8
    return np.ascontiguousarray(rgba[..., :3])


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def depth_to_png16(prediction: DepthPrediction, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """uint16 (height, width): metric depth in millimetres (clipped at 65535), or relative disparity scaled to
    0..65535 over `value_range` (default: the map's min/max)."""
    if prediction.is_metric:
        return np.clip(np.round(prediction.depth * 1000.0), 0, 65535).astype(np.uint16)
    return np.round(normalize(prediction.depth, value_range) * 65535.0).astype(np.uint16)


def side_by_side(image: np.ndarray, colored: np.ndarray, gap: int = 8) -> np.ndarray:
    """uint8 (height, 2 * width + gap, 3): the input, a white gap, the colourised map."""
    height, width = colored.shape[:2]
    canvas = np.full((height, 2 * width + gap, 3), 255, dtype=np.uint8)
    canvas[:, :width] = to_uint8(image) if image.dtype != np.uint8 else image
    canvas[:, width + gap :] = colored
    return canvas
