"""The one reader of the RGB-D folder layout, used by the training data path (`load_rgbd_folder`, `open_source`) and by
the evaluation's ``rgbd:`` benchmark::

    <folder>/<sample>/image.png   (or image.jpg / image.jpeg)   the RGB image
    <folder>/<sample>/depth.png   uint16 millimetres, 0 = no measurement   (or depth.npy: float32 metres)

Sample ids are the sub-folder names, in sorted order. A sub-folder without an image is not a sample; one without a
depth file is a sample whose depth is missing (reported when it is read). An 8-bit ``depth.png`` cannot hold
millimetres (255 mm at most): it is rejected with a `BadSampleError` naming the file, never read as millimetres.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .decode import BadSampleError, read_bytes, read_npy_depth

IMAGE_NAMES = ("image.png", "image.jpg", "image.jpeg")
DEPTH_NAMES = ("depth.png", "depth.npy")
MILLIMETRES = 0.001  # metres per unit of a depth.png


@dataclass(frozen=True)
class RgbdEntry:
    """One sample folder: ``id`` (the folder name), ``image`` path, ``depth`` path (None when there is none)."""

    id: str
    image: Path
    depth: Path | None


def _first_file(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / name for name in names if (folder / name).is_file()), None)


def is_rgbd_folder(path: str | Path, probe: int = 32) -> bool:
    """Whether one of the first `probe` sub-folders holds an image and a depth file (cheap on huge folders)."""
    path = Path(path)
    if not path.is_dir():
        return False
    children = (child for child in path.iterdir() if child.is_dir())
    return any(
        _first_file(child, IMAGE_NAMES) is not None and _first_file(child, DEPTH_NAMES) is not None
        for child in islice(children, probe)
    )


def list_rgbd_samples(folder: str | Path) -> list[RgbdEntry]:
    """The samples of an RGB-D folder, sorted by id (sub-folders without an image are not samples)."""
    entries = []
    for child in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        image = _first_file(child, IMAGE_NAMES)
        if image is not None:
            entries.append(RgbdEntry(child.name, image, _first_file(child, DEPTH_NAMES)))
    return entries


def read_rgbd_depth(value: Any, depth_scale: float = MILLIMETRES) -> np.ndarray:
    """A depth file of the layout -> (H, W) float32 metres, 0 where there is no measurement.

    `value` is a path, bytes or a {"bytes", "path"} dict; a PNG is multiplied by `depth_scale` (millimetres by
    default), a .npy is taken as metres. Raises `BadSampleError` naming the file: "missing depth" (no file),
    "8-bit depth PNG" (cannot be millimetres), "unreadable depth" (anything else that is not a 2-D map).
    """
    if value is None:
        raise BadSampleError("missing depth", "no depth.png or depth.npy in the sample folder")
    try:
        data, path = read_bytes(value, "depth")
    except BadSampleError as error:
        raise BadSampleError("missing depth", error.detail) from error
    name = path or "depth bytes"
    if data[:6] == b"\x93NUMPY":
        try:
            return read_npy_depth(data, name)
        except ValueError as error:
            raise BadSampleError("unreadable depth", str(error)) from error
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode, array = image.mode, np.asarray(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise BadSampleError("unreadable depth", f"{name}: {error}") from error
    if mode in ("L", "P", "1"):
        raise BadSampleError(
            "8-bit depth PNG",
            f"{name}: an 8-bit PNG cannot hold millimetres (at most 255 mm); the RGB-D layout needs uint16 "
            "millimetres, or depth.npy in metres",
        )
    if array.ndim != 2:
        raise BadSampleError(
            "unreadable depth", f"{name}: expected a single-channel 16-bit depth PNG, got mode {mode} {array.shape}"
        )
    return array.astype(np.float32) * np.float32(depth_scale)
