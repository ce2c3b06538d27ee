"""`OutputWriter`: the CLI's output formats of a `DepthPrediction` written under a folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .estimator import DepthPrediction
from .geometry import (
    depth_to_points,
    focal_length_from_exif,
    focal_length_from_fov,
    relative_disparity_to_depth,
    write_ply,
)
from .visualize import colorize, depth_to_png16, display_map, robust_range, side_by_side, to_uint8

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = ("color", "png16", "npy", "side_by_side", "ply")


def prepare_output_folder(path: str | os.PathLike) -> Path:
    """Create the output folder now and check that files can be written in it, so a bad `--output` fails in one line
    before a model is loaded or anything is computed.

    Raises:
        ValueError: naming the folder and the problem: it (or a folder above it) is a regular file, it cannot be
            created, or it is not writable.
    """
    folder = Path(path).expanduser()
    for parent in [folder, *folder.parents]:
        if parent.exists() and not parent.is_dir():
            where = "it" if parent == folder else f"{parent} above it"
            raise ValueError(f"{folder}: cannot use this output folder: {where} is a regular file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{folder}: cannot create the output folder ({error.strerror or error})") from error
    probe = folder / f".depth_anything_write_test_{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"{folder}: the output folder is not writable ({error.strerror or error})") from error
    return folder


@dataclass
class OutputWriter:
    """Writes the chosen `formats` of each prediction under `output_dir`.

    Args:
        output_dir: folder to write into (created).
        formats: subset of `OUTPUT_FORMATS`.
        cmap: matplotlib colormap for `color` and `side_by_side`.
        focal_length: pixels at the input's resolution for `ply`; None estimates it (EXIF, else a 60° field of view).
        depth_ratio: far/near ratio assumed when turning a relative disparity into depth for `ply`.
        ply_stride: keep every n-th pixel in each direction for `ply`.
    """

    output_dir: Path
    formats: Sequence[str] = ("color",)
    cmap: str = "Spectral_r"
    focal_length: float | None = None
    depth_ratio: float = 10.0
    ply_stride: int = 1

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        unknown = [name for name in self.formats if name not in OUTPUT_FORMATS]
        if unknown or not self.formats:
            raise ValueError(f"formats must be a non-empty subset of {OUTPUT_FORMATS}, got {list(self.formats)!r}")
        colorize(np.zeros((1, 1), np.float32), self.cmap)  # fail early on an unknown colormap
        if self.focal_length is not None and not self.focal_length > 0:
            raise ValueError(f"focal_length must be positive (pixels), got {self.focal_length!r}")
        if not self.depth_ratio > 1:
            raise ValueError(f"depth_ratio must be > 1, got {self.depth_ratio!r}")
        if not isinstance(self.ply_stride, int) or self.ply_stride < 1:
            raise ValueError(f"ply_stride must be a positive integer, got {self.ply_stride!r}")

    def write(
        self,
        prediction: DepthPrediction,
        stem: str | os.PathLike,
        value_range: tuple[float, float] | None = None,
        source: str | os.PathLike | None = None,
    ) -> list[Path]:
        """Write every format for one prediction as `output_dir/stem_*`; returns the written paths.

        `value_range` fixes the normalisation of `color`, `side_by_side` and the relative `png16` (videos pass the
        window's range); default: the map's own robust 2-98 % range for colours and min/max for `png16`.
        """
        base = self.output_dir / Path(stem)
        base.parent.mkdir(parents=True, exist_ok=True)
        written = []
        shown = display_map(prediction)
        color_range = value_range or robust_range(shown)
        colored = colorize(shown, self.cmap, color_range) if {"color", "side_by_side"} & set(self.formats) else None
        if "color" in self.formats:
            written.append(self._save_image(colored, f"{base}_depth.png"))
        if "png16" in self.formats:
            written.append(self._save_image(depth_to_png16(prediction, value_range), f"{base}_depth16.png"))
        if "npy" in self.formats:
            np.save(f"{base}_depth.npy", prediction.depth.astype(np.float32))
            written.append(Path(f"{base}_depth.npy"))
        if "side_by_side" in self.formats:
            written.append(self._save_image(side_by_side(prediction.image, colored), f"{base}_side_by_side.png"))
        if "ply" in self.formats:
            written.append(self.write_point_cloud(prediction, f"{base}.ply", source))
        return written

    def write_point_cloud(
        self, prediction: DepthPrediction, path: str | os.PathLike, source: str | os.PathLike | None = None
    ) -> Path:
        """Coloured point cloud: metres for metric models, units of the nearest depth for relative ones."""
        height, width = prediction.depth.shape
        focal = self.focal_length
        if focal is None and source is not None:
            focal = focal_length_from_exif(source, width, height)
        if focal is None:
            focal = focal_length_from_fov(width)
        depth = (
            prediction.depth
            if prediction.is_metric
            else relative_disparity_to_depth(prediction.depth, self.depth_ratio)
        )
        points, pixels = depth_to_points(depth, focal, self.ply_stride)
        colors = to_uint8(prediction.image)[pixels[:, 0], pixels[:, 1]]
        write_ply(path, points, colors)
        return Path(path)

    @staticmethod
    def _save_image(array: np.ndarray, path: str) -> Path:
        Image.fromarray(array).save(path)
        return Path(path)
