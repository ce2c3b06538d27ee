"""Camera geometry: focal length from EXIF or a field of view, depth to points, PLY files."""

from __future__ import annotations

import logging
import math
import os

import numpy as np
from PIL import Image

from .visualize import normalize, robust_range

logger = logging.getLogger(__name__)

DEFAULT_FIELD_OF_VIEW = 60.0  # degrees, horizontal; a typical phone/webcam lens when nothing better is known


def focal_length_from_exif(path: str | os.PathLike, width: int, height: int) -> float | None:
    """Focal length in pixels from EXIF `FocalLengthIn35mmFilm` (35 mm-equivalent, defined on the 43.27 mm
    diagonal of a 36x24 mm frame), or None when the file has none."""
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            value = exif.get_ifd(0x8769).get(0xA405) or exif.get(0xA405)
    except (OSError, ValueError, SyntaxError):
        return None
    if not value:
        return None
    return float(value) * math.hypot(width, height) / math.hypot(36.0, 24.0)


def focal_length_from_fov(width: int, field_of_view: float = DEFAULT_FIELD_OF_VIEW) -> float:
    """Focal length in pixels for a horizontal field of view in degrees: f = (width / 2) / tan(fov / 2)."""
    if not 0 < field_of_view < 180:
        raise ValueError(f"field_of_view must be in (0, 180) degrees, got {field_of_view!r}")
    return (width / 2.0) / math.tan(math.radians(field_of_view) / 2.0)


def relative_disparity_to_depth(disparity: np.ndarray, depth_ratio: float = 10.0) -> np.ndarray:
    """Turn a relative (affine-invariant) disparity into a plausible depth, up to scale, for visualisation.

    The model gives `disparity = a / depth + b` with unknown `a` and `b`, so depth cannot be recovered exactly;
    `1 / disparity` alone is wrong wherever `b != 0` and infinite where the disparity is 0 (sky). Instead:
    1. normalise the disparity to [0, 1] over its robust 2-98 % range: `d = clip((disparity - p2) / (p98 - p2))`;
    2. choose the shift so that the farthest point is `depth_ratio` times the nearest one:
       `depth = (1 + t) / (d + t)` with `t = 1 / (depth_ratio - 1)`, so `d = 1` (nearest) gives depth 1 and
       `d = 0` (farthest, sky) gives depth `depth_ratio`.
    The result is in units of the nearest depth. With a known metric scale (`depth_near` in metres) multiply by it;
    for true geometry use a metric model, whose output is already in metres.
    """
    if not depth_ratio > 1:
        raise ValueError(f"depth_ratio must be > 1, got {depth_ratio!r}")
    normalized = normalize(disparity, robust_range(disparity))
    shift = 1.0 / (depth_ratio - 1.0)
    return ((1.0 + shift) / (normalized + shift)).astype(np.float32)


def depth_to_points(depth: np.ndarray, focal_length: float, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Back-project a (height, width) depth map through a pinhole camera with the principal point at the centre.

    x = (u - cx) * z / f, y = (v - cy) * z / f, z = depth (OpenCV camera frame: x right, y down, z forward).
    Returns points (N, 3) float32 and the (N, 2) integer (row, column) pixel each came from; non-finite or
    non-positive depths are dropped.
    """
    if not focal_length > 0:
        raise ValueError(f"focal_length must be positive, got {focal_length!r}")
    height, width = depth.shape
    rows, columns = np.mgrid[0:height:stride, 0:width:stride]  # each (height / stride, width / stride)
    z = depth[rows, columns]
    keep = np.isfinite(z) & (z > 0)
    rows, columns, z = rows[keep], columns[keep], z[keep]
    x = (columns + 0.5 - width / 2.0) * z / focal_length
    y = (rows + 0.5 - height / 2.0) * z / focal_length
    return np.stack([x, y, z], axis=1).astype(np.float32), np.stack([rows, columns], axis=1)


def write_ply(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray) -> None:
    """Binary little-endian PLY with float x, y, z and uchar red, green, blue per vertex."""
    if points.ndim != 2 or points.shape[1] != 3 or colors.shape != points.shape:
        raise ValueError(f"points and colors must both be (N, 3), got {points.shape} and {colors.shape}")
    vertex = np.empty(
        len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    )
    vertex["x"], vertex["y"], vertex["z"] = points[:, 0], points[:, 1], points[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = colors[:, 0], colors[:, 1], colors[:, 2]
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment depth-anything-hf point cloud (camera frame: x right, y down,"
        f" z forward)\nelement vertex {len(points)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    with open(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(vertex.tobytes())


def read_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read back a PLY written by `write_ply`: points (N, 3) float32 and colours (N, 3) uint8."""
    with open(path, "rb") as handle:
        data = handle.read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    count = next(
        int(line.split()[-1]) for line in data[:end].decode("ascii").splitlines() if line.startswith("element vertex")
    )
    vertex = np.frombuffer(
        data[end:],
        dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
        count=count,
    )
    points = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
    return points, np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1)
