"""Readers of the benchmarks' ground-truth file formats and their standard evaluation crops (NYU Eigen, KITTI
Garg / Eigen). Used by `benchmarks.py`'s adapters; RGB-D and 16-bit PNG depth are read by `data/rgbd.py`, .npy depth by
`data/decode.py`'s `read_npy_depth`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# ----------------------------------------------------------------------------------------------------------------------
# File readers
# ----------------------------------------------------------------------------------------------------------------------


def read_rgb(path: Path) -> np.ndarray:
    """Reads an image file as `(H, W, 3)` uint8 RGB."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def read_sintel_dpt(path: Path) -> np.ndarray:
    """Reads an MPI Sintel ``.dpt`` depth file (float tag 202021.25, int32 width, int32 height, float32 data)."""
    with open(path, "rb") as handle:
        tag = np.fromfile(handle, dtype="<f4", count=1)
        if tag.size != 1 or abs(float(tag[0]) - 202021.25) > 1e-3:
            raise ValueError(f"{path}: not a Sintel .dpt file (bad tag {tag})")
        width, height = (int(v) for v in np.fromfile(handle, dtype="<i4", count=2))
        data = np.fromfile(handle, dtype="<f4", count=width * height)
    if data.size != width * height:
        raise ValueError(f"{path}: truncated .dpt file ({data.size} of {width * height} values)")
    return data.reshape(height, width)  # (H*W,) -> (H, W)


def read_eth3d_depth(path: Path, height: int, width: int) -> np.ndarray:
    """Reads an ETH3D raw float32 ground-truth depth file of the image's size (inf = no measurement)."""
    data = np.fromfile(path, dtype="<f4")
    if data.size != height * width:
        raise ValueError(f"{path}: {data.size} depth values do not match the {height}x{width} image")
    return data.reshape(height, width)  # (H*W,) -> (H, W)


# ----------------------------------------------------------------------------------------------------------------------
# Crops (applied to the validity mask)
# ----------------------------------------------------------------------------------------------------------------------


def eigen_crop_mask(height: int, width: int) -> np.ndarray:
    """NYUv2 Eigen crop: rows 45:471 and columns 41:601 of a 480×640 frame, as a `(H, W)` bool mask."""
    if (height, width) != (480, 640):
        raise ValueError(f"the NYUv2 Eigen crop needs a 480x640 frame, got {height}x{width}")
    mask = np.zeros((height, width), dtype=bool)
    mask[45:471, 41:601] = True
    return mask


def eigen_kitti_crop_mask(height: int, width: int) -> np.ndarray:
    """KITTI Eigen crop (fractions of the frame, as BTS/ZoeDepth's ``eigen_crop``), as a `(H, W)` bool mask."""
    mask = np.zeros((height, width), dtype=bool)
    top, bottom = int(0.3324324 * height), int(0.91351351 * height)
    left, right = int(0.0359477 * width), int(0.96405229 * width)
    mask[top:bottom, left:right] = True
    return mask


def garg_crop_mask(height: int, width: int) -> np.ndarray:
    """KITTI Garg crop (fractions of the frame, as in BTS/ZoeDepth), as a `(H, W)` bool mask."""
    mask = np.zeros((height, width), dtype=bool)
    top, bottom = int(0.40810811 * height), int(0.99189189 * height)
    left, right = int(0.03594771 * width), int(0.96405229 * width)
    mask[top:bottom, left:right] = True
    return mask
