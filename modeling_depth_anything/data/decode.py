"""Decoding with skip-and-count: raw rows (encoded files, arrays, `datasets` image dicts) -> decoded samples.

One decoder for every stream of the project (labelled, unlabelled, RGB-D folders, pseudo-labels) and for the
evaluation's RGB-D reader: `decode_image` turns any encoded image into an upright 8-bit RGB PIL image with the same
conversions as the `depth-anything` CLI (`image_processing_depth_anything.to_rgb_float`: 16-bit grey scaled by 65535,
not clipped at 255; CMYK, palette and alpha images converted; EXIF orientation applied), and `Decoder` turns a row into
a sample, or, when anything about the row is bad, records the reason and skips it.

Decoded sample: ``id`` (str), ``image`` (PIL RGB), and with a label ``depth`` ((H, W) float32, NaN = invalid),
``depth_kind`` ("depth" | "disparity"), ``sky_mask`` ((H, W) bool or None); plus ``skipped``, the (id, reason) pairs
of the bad rows this decoder dropped just before it (so counts survive `datasets.map` in DataLoader workers).

Bad input raises `BadSampleError(reason, detail, sample_id)`: ``reason`` is a short category used for counting
("corrupt image", "truncated image", "zero-size image", "image too small", "image too large", "missing file",
"unreadable depth", "8-bit depth PNG", "depth shape mismatch", "all-invalid depth", ...), ``detail`` names the file
and the problem. The evaluation's benchmark loaders raise the same class.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..image_processing_depth_anything import MIN_IMAGE_SIDE, to_rgb_float

logger = logging.getLogger(__name__)

# PIL modes with more than 8 bits per channel: PIL's own convert("RGB") clips them at 255 (a 16-bit grey photo turns
# almost white), so they go through the CLI's `to_rgb_float`, which scales by the type's range.
_HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
# EXIF orientation -> the PIL transposition that makes the image upright (the table of `ImageOps.exif_transpose`)
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_BOMB_SIZE = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+) pixels")


# ----------------------------------------------------------------------------------------------------------------------
# Bad input


class BadSampleError(ValueError):
    """A sample that cannot be used: `reason` is a short category (for counting), `detail` names the file and the
    problem, `sample_id` names the sample when known. `str(error)` is ``"<reason>: <detail>"``."""

    def __init__(self, reason: str, detail: str = "", sample_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.sample_id = sample_id


class NoValidSampleError(RuntimeError):
    """A whole pass over a stream produced no valid sample."""


@dataclass
class SampleStats:
    """Counters of one stream's decoding: samples seen, valid, skipped per reason, and the last skipped ids."""

    name: str = "stream"
    seen: int = 0
    valid: int = 0
    skipped: Counter = field(default_factory=Counter)
    skipped_ids: deque = field(default_factory=lambda: deque(maxlen=1000))

    def record_bad(self, sample_id: str, reason: str, detail: str = "") -> None:
        self.add_skipped([(sample_id, reason)])
        logger.warning("%s: skipping sample %r (%s%s)", self.name, sample_id, reason, f": {detail}" if detail else "")

    def record_valid(self) -> None:
        self.seen += 1
        self.valid += 1

    def add_skipped(self, skipped: Iterable[tuple[str, str]]) -> None:
        """Count bad samples (also those reported by a decoder running elsewhere, e.g. a DataLoader worker)."""
        for sample_id, reason in skipped:
            self.seen += 1
            self.skipped[reason] += 1
            self.skipped_ids.append((sample_id, reason))

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict:
        return {"seen": self.seen, "valid": self.valid, "skipped": dict(self.skipped)}

    def __str__(self) -> str:
        first = ", ".join(f"{i!r} ({r})" for i, r in list(self.skipped_ids)[:5])
        return f"{self.name}: {self.valid}/{self.seen} valid, skipped {dict(self.skipped)}" + (
            f"; e.g. {first}" if first else ""
        )


# ----------------------------------------------------------------------------------------------------------------------
# Images and depth maps


def read_bytes(value: Any, what: str = "image") -> tuple[bytes, str | None]:
    """Bytes of an encoded file given as bytes, a path, or a `datasets` {"bytes", "path"} dict; and its path."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), None
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return bytes(value["bytes"]), value.get("path")
        value = value.get("path")
    if isinstance(value, (str, Path)):
        try:
            return Path(value).read_bytes(), str(value)
        except OSError as error:
            raise BadSampleError("missing file", f"{what} {str(value)!r}: {error}") from error
    raise BadSampleError(f"unreadable {what}", f"unsupported value of type {type(value).__name__}")


def _open_encoded(data: bytes, name: str) -> Image.Image:
    """Open (header only) and check the size, then decode fully; every failure is a `BadSampleError`."""
    if len(data) == 0:
        raise BadSampleError("zero-size image", f"{name}: empty file")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        match = _BOMB_SIZE.search(str(error))
        size = f"{int(match[1]):,} pixels, over the limit of {int(match[2]):,}" if match else str(error)
        raise BadSampleError(
            "image too large",
            f"{name}: {size} (PIL's decompression-bomb guard, 2 x PIL.Image.MAX_IMAGE_PIXELS; raise "
            "PIL.Image.MAX_IMAGE_PIXELS in your script to accept such images)",
        ) from error
    except UnidentifiedImageError as error:  # PIL's message names its BytesIO object, not the file
        raise BadSampleError("corrupt image", f"{name}: not an image file PIL can read") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise BadSampleError("corrupt image", f"{name}: {error}") from error
    _check_size(image, name)  # before the full decode: a tiny or empty image is rejected without decoding it
    _load(image, name)
    return image


def _load(image: Image.Image, name: str) -> None:
    try:
        image.load()  # PIL opens lazily: truncated files fail only now
    except (OSError, SyntaxError, ValueError) as error:
        reason = "truncated image" if "truncated" in str(error).lower() else "corrupt image"
        raise BadSampleError(reason, f"{name}: {error}") from error


def _check_size(image: Image.Image, name: str) -> None:
    width, height = image.size
    if width == 0 or height == 0:
        raise BadSampleError("zero-size image", f"{name}: size {width}x{height}")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise BadSampleError(
            "image too small",
            f"{name}: {width}x{height} pixels, smaller than one {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} patch",
        )


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright as stored, 2-8 = flipped/rotated); 1 when there is none."""
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except (OSError, ValueError, SyntaxError, TypeError):
        return 1  # an unreadable EXIF block is ignored, as `ImageOps.exif_transpose` would fail on it too


def orient_like(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an image's EXIF transposition to a map stored in the image's raw pixel grid ((H, W) float or bool), so
    that it stays aligned with the upright image `decode_image` returns. Lossless (PIL transposes copy values)."""
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    if method is None:
        return array
    if array.dtype == bool:
        return np.asarray(Image.fromarray(array.astype(np.uint8)).transpose(method)).astype(bool)
    return np.asarray(Image.fromarray(array.astype(np.float32), mode="F").transpose(method))


def decode_image_oriented(value: Any, name: str | None = None) -> tuple[Image.Image, int]:
    """`decode_image`, also returning the EXIF orientation that was applied (for aligning maps with the image)."""
    if isinstance(value, np.ndarray):
        if value.size == 0:
            raise BadSampleError("zero-size image", f"{name or 'array'}: shape {value.shape}")
        try:
            array = to_rgb_float(value)  # uint8 / uint16 / float arrays, HW or HWC
        except (TypeError, ValueError) as error:
            raise BadSampleError("corrupt image", f"{name or 'array'}: {error}") from error
        image, orientation = Image.fromarray(np.round(array * 255).astype(np.uint8)), 1
        _check_size(image, name or "array")
        return image, orientation
    if isinstance(value, Image.Image):
        image = value
        name = name or getattr(image, "filename", "") or "PIL image"
        _check_size(image, name)
        _load(image, name)
    else:
        data, path = read_bytes(value, "image")
        name = name or path or "bytes"
        image = _open_encoded(data, name)
    orientation = exif_orientation(image)
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        array = to_rgb_float(image)  # (H, W, 3) in [0, 1], upright: the CLI's scaling of 16-bit and float images
        return Image.fromarray(np.round(array * 255).astype(np.uint8)), orientation
    if orientation in _ORIENTATION_TRANSPOSE:
        image = ImageOps.exif_transpose(image)
    return (image if image.mode == "RGB" else image.convert("RGB")), orientation


def decode_image(value: Any, name: str | None = None) -> Image.Image:
    """Decode an image given as PIL, a uint8/uint16/float array, bytes, a path or a {"bytes", "path"} dict into an
    upright 8-bit RGB PIL image (conversions as the CLI's; module docstring).

    Raises `BadSampleError` with reason "zero-size image", "image too small" (a side below one 14-pixel patch),
    "image too large" (over PIL's decompression-bomb limit; the detail gives the size and the limit), "truncated image",
    "corrupt image" or "missing file". `name` is used in messages (default: the path).
    """
    return decode_image_oriented(value, name)[0]


def read_npy_depth(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """A depth map saved with ``np.save`` (a path or the file's bytes; no pickles) -> `(H, W)` float32, a trailing
    channel of 1 squeezed. `ValueError` naming the file when it is not a 2-D map."""
    name = name or (os.fspath(source) if not isinstance(source, bytes) else "depth bytes")
    try:
        array = np.load(io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]  # (H, W, 1) -> (H, W)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a (H, W) depth array, got shape {array.shape}")
    return array.astype(np.float32)


def depth_array(value: Any) -> np.ndarray:
    """Raw depth values as a float array from an array/list, PIL image, .npy or image bytes/path."""
    if isinstance(value, Image.Image):
        return np.asarray(value, dtype=np.float64 if value.mode in ("I", "F") else np.float32)
    if isinstance(value, (np.ndarray, list, tuple)):
        return np.asarray(value, dtype=np.float32)
    data, path = read_bytes(value, "depth")
    if data[:6] == b"\x93NUMPY":
        return np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise BadSampleError("unreadable depth", f"{path or 'bytes'}: {error}") from error
    return np.asarray(image, dtype=np.float64 if image.mode in ("I", "F", "I;16") else np.float32)


def decode_depth(
    value: Any,
    depth_kind: str = "depth",
    depth_scale: float = 1.0,
    invalid_value: float | None = 0.0,
    min_depth: float | None = None,
    max_depth: float | None = None,
) -> np.ndarray:
    """Decode a depth or disparity map to float32 (H, W) with NaN on invalid pixels.

    Invalid: raw value == `invalid_value` (0 for 16-bit PNGs), NaN/inf, depth <= 0 or disparity < 0, and values
    (after multiplying by `depth_scale`) outside [`min_depth`, `max_depth`] (same units as the scaled values).
    Raises `BadSampleError` ("unreadable depth", "all-invalid depth") on unusable maps.
    """
    raw = value if isinstance(value, np.ndarray) else depth_array(value)
    raw = np.asarray(raw, dtype=np.float64 if raw.dtype == np.float64 else np.float32)
    if raw.ndim == 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]  # (H, W, 1) -> (H, W)
    if raw.ndim != 2 or raw.size == 0:
        raise BadSampleError("unreadable depth", f"expected a 2-D map, got shape {raw.shape}")
    invalid = ~np.isfinite(raw)
    if invalid_value is not None:
        invalid |= raw == invalid_value
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = (raw * depth_scale).astype(np.float32)
        invalid |= scaled <= 0 if depth_kind == "depth" else scaled < 0
        if min_depth is not None:
            invalid |= scaled < min_depth
        if max_depth is not None:
            invalid |= scaled > max_depth
    if invalid.all():
        raise BadSampleError("all-invalid depth", f"no valid pixel in a {raw.shape} map")
    scaled[invalid] = np.nan
    return scaled


# ----------------------------------------------------------------------------------------------------------------------
# The decoder


@dataclass
class DepthLabel:
    """How a `Decoder` reads a depth or disparity column (see `decode_depth` for the validity rules).

    Args:
        column (`str`): the column with the map (array, 16-bit PNG, .npy bytes or path).
        kind (`str`): "depth" or "disparity".
        scale, invalid_value, min_depth, max_depth: as in `decode_depth`.
        sky_column (`str`, *optional*): a bool (H, W) sky-mask column.
        reader (`Callable`, *optional*): reads the column's value into a raw array instead of `depth_array` (e.g. the
            RGB-D folder reader, which checks the PNG's bit depth).
    """

    column: str = "depth"
    kind: str = "depth"
    scale: float = 1.0
    invalid_value: float | None = 0.0
    min_depth: float | None = None
    max_depth: float | None = None
    sky_column: str | None = None
    reader: Callable[[Any], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("depth", "disparity"):
            raise ValueError(f"depth_kind must be 'depth' or 'disparity', got {self.kind!r}")
        if not self.scale > 0:
            raise ValueError(f"depth_scale must be > 0, got {self.scale!r}")
        if self.min_depth is not None and self.max_depth is not None and self.min_depth >= self.max_depth:
            raise ValueError(f"min_depth must be < max_depth, got {self.min_depth!r} >= {self.max_depth!r}")

    def __call__(self, row: dict, orientation: int) -> dict:
        """The label of `row` in the upright image's frame (depth maps are stored in the raw pixel grid)."""
        if row.get(self.column) is None:
            raise BadSampleError("missing depth", f"column {self.column!r} is empty or absent")
        raw = self.reader(row[self.column]) if self.reader is not None else row[self.column]
        depth = decode_depth(raw, self.kind, self.scale, self.invalid_value, self.min_depth, self.max_depth)
        sky = None
        if self.sky_column and row.get(self.sky_column) is not None:
            sky = np.asarray(row[self.sky_column]).astype(bool)
            if sky.shape != depth.shape:
                raise BadSampleError("sky mask shape mismatch", f"sky mask {sky.shape} vs depth {depth.shape}")
            sky = orient_like(sky, orientation)
        return {"depth": orient_like(depth, orientation), "depth_kind": self.kind, "sky_mask": sky}


class Decoder:
    """Raw rows -> decoded samples (module docstring), with skip-and-count: the one decoder of every stream.

    Args:
        image_column (`str`): the column with the encoded image.
        label (`Callable[[dict, int], dict]`, *optional*): reads the row's label given the image's EXIF orientation
            and returns ``depth``, ``depth_kind``, ``sky_mask`` (+ any extra keys); `DepthLabel` for depth columns,
            `pseudo_labels.PseudoLabel` for pseudo-label rows; None for unlabelled images.
        id_column (`str`, *optional*): the sample id column; default "id", "__key__", the file path or a content hash.
        stats (`SampleStats`, *optional*): counters to fill (a new one named `name` otherwise).
        name (`str`): the stream's name in logs.

    `decode(row)` returns a sample or raises `BadSampleError`; `decode_or_skip(row)` returns `(sample, None)` or
    `(None, (id, reason, detail))` after counting and logging; calling the decoder (what `datasets.map` does) returns
    the sample with ``skipped`` attached, or a marker that `Decoder.is_valid` filters out.
    """

    def __init__(
        self,
        image_column: str = "image",
        label: Callable[[dict, int], dict] | None = None,
        id_column: str | None = None,
        stats: SampleStats | None = None,
        name: str = "stream",
    ) -> None:
        self.image_column = image_column
        self.label = label
        self.id_column = id_column
        self.stats = stats if stats is not None else SampleStats(name=name)
        self.pending: list[tuple[str, str]] = []

    def sample_id(self, row: dict) -> str:
        """The row's id, without decoding it: the id column, "id", "__key__", the file path or a content hash."""
        for column in (self.id_column, "id", "__key__", "source_id"):
            if column and row.get(column) is not None:
                return str(row[column])
        value = row.get(self.image_column)
        if isinstance(value, dict) and value.get("path"):
            return str(value["path"])
        try:
            data, _ = read_bytes(value, "image")
        except BadSampleError:
            return "unknown"
        return "sha1:" + hashlib.sha1(data).hexdigest()[:16]

    def decode(self, row: dict) -> dict:
        sample_id = self.sample_id(row)
        try:
            value = row.get(self.image_column)
            if value is None:
                raise BadSampleError("missing image", f"column {self.image_column!r} is empty or absent")
            path = value.get("path") if isinstance(value, dict) else None
            image, orientation = decode_image_oriented(value, name=path or sample_id)
            sample = {"id": sample_id, "image": image}
            if self.label is not None:
                sample.update(self.label(row, orientation))
                height, width = sample["depth"].shape
                if (height, width) != (image.height, image.width):
                    raise BadSampleError(
                        "depth shape mismatch",
                        f"{sample_id}: depth {height}x{width} vs image {image.height}x{image.width}",
                    )
        except BadSampleError as error:
            error.sample_id = sample_id
            raise
        except Exception as error:  # a long job skips and counts whatever breaks one sample
            raise BadSampleError(f"unexpected {type(error).__name__}", f"{sample_id}: {error}", sample_id) from error
        return sample

    def decode_or_skip(self, row: dict) -> tuple[dict | None, tuple[str, str, str] | None]:
        try:
            sample = self.decode(row)
        except BadSampleError as error:
            self.stats.record_bad(error.sample_id, error.reason, error.detail)
            return None, (error.sample_id, error.reason, error.detail)
        self.stats.record_valid()
        return sample, None

    def __call__(self, row: dict) -> dict:
        sample, bad = self.decode_or_skip(row)
        if sample is None:
            self.pending.append(bad[:2])
            return {"id": bad[0], "image": None, "skipped": []}
        sample["skipped"], self.pending = self.pending, []
        return sample

    @staticmethod
    def is_valid(sample: dict) -> bool:
        """Whether a `__call__` output is a sample (not the marker of a skipped row)."""
        return sample["image"] is not None
