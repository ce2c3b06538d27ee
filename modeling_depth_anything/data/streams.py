"""The data engine: labelled, unlabelled, synthetic and pseudo-labelled `datasets` streams -> model-ready batches.

One code path for 50 local images on a laptop and 62M Hub images on many GPUs: every source becomes a
`datasets.IterableDataset` (streaming, lazily decoded), sharded across processes with
`datasets.distributed.split_dataset_by_node`, transformed per sample, and mixed into batches by `MixedBatchStream`,
whose `state_dict()` resumes mid-stream.

API (stable; imported by teacher.py, pseudo_label.py, student.py)::

    # sources -> IterableDataset of *decoded samples* (see below)
    load_labelled(source, image_column="image", depth_column="depth", depth_kind="depth", depth_scale=1.0,
                  split="train", streaming=True, min_depth=None, max_depth=None, invalid_value=0.0,
                  sky_column=None, id_column=None, data_files=None, stats=None)
    load_rgbd_folder(path, stats=None)                        # <path>/<sample>/{image.png, depth.png (uint16 mm)}
    load_unlabelled(source, image_column=None, split="train", streaming=True, id_column=None, data_files=None,
                    stats=None)                               # image folder, parquet/webdataset shards, Hub id
    synthetic_stream(seed=0, size=(256, 256), num_shards=8, samples_per_shard=None)   # from synthetic.py
    load_pseudo_labels(path_or_repo, split="train", streaming=True, stats=None)       # from pseudo_label_format.py
    shard_for_process(dataset, rank, world_size)              # = datasets.distributed.split_dataset_by_node

    # per-sample transform and batching
    DepthTransform(size=518, random_crop=True, hflip=True, seed=0)   # sample -> tensors (short-side resize, crop, flip)
    collate(samples) -> batch dict
    MixedBatchStream(labelled, unlabelled=None, labelled_transform=..., unlabelled_transform=None,
                     batch_size=6, ratio=(1, 2), rank=0, world_size=1)
        iter -> {"labelled": batch, "unlabelled": batch}; .state_dict() / .load_state_dict(); .stats
    iter_valid(dataset, name) -> iterator of decoded samples; raises NoValidSampleError on a stream with none

    # bad input
    SampleStats (counters: seen, valid, skipped[reason], skipped_ids), NoValidSampleError

    # elsewhere: strong perturbations + CutMix in augment.py; the pseudo-label writer/reader in pseudo_label_format.py

Example (student stage, one process of N)::

    transform = DepthTransform(size=518)
    stream = MixedBatchStream(load_labelled("user/labelled-depth"), load_pseudo_labels("runs/pseudo"),
                              transform, transform, batch_size=12, ratio=(1, 2), rank=rank, world_size=world_size)
    for step, batch in zip(range(start_step, max_steps), stream):
        labelled, unlabelled = batch["labelled"], batch["unlabelled"]   # dicts of tensors, see below
    checkpoint["data"] = stream.state_dict()            # later: stream.load_state_dict(checkpoint["data"])

Decoded sample (what the sources yield): ``id`` (str), ``image`` (PIL RGB), and for labelled sources ``depth``
((H, W) float32, NaN = invalid; metres or raw units times `depth_scale`), ``depth_kind`` ("depth" | "disparity"),
``sky_mask`` ((H, W) bool or None). `synthetic_stream` yields the same keys but marks sky with depth 0 (and
``sky_mask``); `DepthTransform` treats depth <= 0 as invalid as well, so both conventions work. Every sample also carries ``skipped``: the (id, reason) pairs of bad samples the
decoder dropped just before it, so counts survive DataLoader worker processes; `MixedBatchStream` and `iter_valid`
add them up.

Bad samples (corrupt, truncated or zero-size image, missing file, unreadable depth, depth of the wrong shape,
all-invalid depth) are skipped, counted in `SampleStats` and logged with their ids; a pass over a stream that yields no
valid sample raises `NoValidSampleError` naming the stream and the reasons.

Batches (`collate` of `DepthTransform` outputs): ``pixel_values`` (B, 3, S, S) float32 ImageNet-normalised,
``disparity`` (B, S, S) float32 in [0, 1] per map (labelled only), ``valid_mask`` (B, S, S) bool (labelled only),
``ids`` (list of B str).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..image_processing_depth_anything import IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
PATCH_SIZE = 14

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BadSampleError",
    "DepthTransform",
    "MixedBatchStream",
    "NoValidSampleError",
    "SampleStats",
    "collate",
    "decode_depth",
    "decode_image",
    "iter_valid",
    "load_labelled",
    "load_rgbd_folder",
    "load_unlabelled",
    "shard_for_process",
]


# ----------------------------------------------------------------------------------------------------------------------
# Bad input


class BadSampleError(ValueError):
    """A sample that cannot be used; `reason` is a short category used for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


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
        self.seen += 1
        self.skipped[reason] += 1
        self.skipped_ids.append((sample_id, reason))
        logger.warning("%s: skipping sample %r (%s%s)", self.name, sample_id, reason, f": {detail}" if detail else "")

    def record_valid(self) -> None:
        self.seen += 1
        self.valid += 1

    def add_skipped(self, skipped: Iterable[tuple[str, str]]) -> None:
        """Count bad samples reported by a decoder running elsewhere (e.g. a DataLoader worker)."""
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
# Decoding


def _read_bytes(value: Any, what: str) -> tuple[bytes, str | None]:
    """Bytes of an encoded file given as bytes, a path, or a `datasets` {"bytes", "path"} dict."""
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


def decode_image(value: Any) -> Image.Image:
    """Decode an image given as PIL, (H, W[, 3]) uint8 array, bytes, path or {"bytes", "path"}; returns PIL RGB.

    Raises `BadSampleError` with reason "zero-size image", "truncated image" or "corrupt image".
    """
    if isinstance(value, np.ndarray):
        if value.size == 0:
            raise BadSampleError("zero-size image", f"array of shape {value.shape}")
        image = Image.fromarray(value.astype(np.uint8) if value.dtype != np.uint8 else value)
    elif isinstance(value, Image.Image):
        image = value
        try:
            image.load()  # PIL opens lazily: a truncated file given as an open image fails only now
        except (OSError, SyntaxError, ValueError) as error:
            reason = "truncated image" if "truncated" in str(error).lower() else "corrupt image"
            raise BadSampleError(reason, f"{getattr(image, 'filename', '') or 'PIL image'}: {error}") from error
    else:
        data, path = _read_bytes(value, "image")
        if len(data) == 0:
            raise BadSampleError("zero-size image", f"empty file {path!r}" if path else "empty bytes")
        try:
            image = Image.open(io.BytesIO(data))
            image.load()  # forces the full decode: truncated files fail here
        except UnidentifiedImageError as error:
            raise BadSampleError("corrupt image", f"{path or 'bytes'}: {error}") from error
        except (OSError, SyntaxError, ValueError) as error:
            reason = "truncated image" if "truncated" in str(error).lower() else "corrupt image"
            raise BadSampleError(reason, f"{path or 'bytes'}: {error}") from error
    if image.width == 0 or image.height == 0:
        raise BadSampleError("zero-size image", f"size {image.size}")
    return image.convert("RGB") if image.mode != "RGB" else image


def _depth_array(value: Any) -> np.ndarray:
    """Raw depth values as a 2-D float array from an array/list, PIL image, .npy or image bytes/path."""
    if isinstance(value, Image.Image):
        return np.asarray(value, dtype=np.float64 if value.mode in ("I", "F") else np.float32)
    if isinstance(value, (np.ndarray, list, tuple)):
        return np.asarray(value, dtype=np.float32)
    data, path = _read_bytes(value, "depth")
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
    raw = _depth_array(value)
    if raw.ndim == 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]  # (H, W, 1) -> (H, W)
    if raw.ndim != 2 or raw.size == 0:
        raise BadSampleError("unreadable depth", f"expected a 2-D map, got shape {raw.shape}")
    invalid = ~np.isfinite(raw)
    if invalid_value is not None:
        invalid |= raw == invalid_value
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


def _content_id(value: Any) -> str:
    """A stable id from the encoded image bytes when the source has no id column (sha1, 16 hex digits)."""
    try:
        data, _ = _read_bytes(value, "image")
    except BadSampleError:
        return "unknown"
    return "sha1:" + hashlib.sha1(data).hexdigest()[:16]


def _sample_id(example: dict, id_column: str | None, image_value: Any) -> str:
    for column in (id_column, "id", "__key__"):
        if column and example.get(column) is not None:
            return str(example[column])
    if isinstance(image_value, dict) and image_value.get("path"):
        return str(image_value["path"])
    return _content_id(image_value)


class _Decoder:
    """Turns raw rows into decoded samples (see module docstring); bad rows become {"image": None, ...} and are
    filtered out after the map, with their (id, reason) attached to the next valid sample."""

    def __init__(self, stats: SampleStats, image_column: str, id_column: str | None, depth: dict | None) -> None:
        self.stats = stats
        self.image_column = image_column
        self.id_column = id_column
        self.depth = depth  # None for unlabelled; else depth_column, depth_kind, sky_column and decode_depth kwargs
        self.pending: list[tuple[str, str]] = []

    def __call__(self, example: dict) -> dict:
        image_value = example.get(self.image_column)
        sample_id = _sample_id(example, self.id_column, image_value)
        try:
            if image_value is None:
                raise BadSampleError("missing image", f"column {self.image_column!r} is empty or absent")
            image = decode_image(image_value)
            sample = {"id": sample_id, "image": image}
            if self.depth is not None:
                sample.update(self._decode_depth(example, image))
        except Exception as error:  # a long job skips and counts whatever breaks one sample
            reason = error.reason if isinstance(error, BadSampleError) else f"unexpected {type(error).__name__}"
            self.stats.record_bad(sample_id, reason, str(error))
            self.pending.append((sample_id, reason))
            return {"id": sample_id, "image": None, "skipped": []}
        self.stats.record_valid()
        sample["skipped"], self.pending = self.pending, []
        return sample

    def _decode_depth(self, example: dict, image: Image.Image) -> dict:
        options = dict(self.depth)
        column, sky_column = options.pop("depth_column"), options.pop("sky_column")
        if example.get(column) is None:
            raise BadSampleError("missing depth", f"column {column!r} is empty or absent")
        depth = decode_depth(example[column], **options)
        if depth.shape != (image.height, image.width):
            raise BadSampleError("depth shape mismatch", f"depth {depth.shape} vs image {(image.height, image.width)}")
        sky = None
        if sky_column and example.get(sky_column) is not None:
            sky = np.asarray(example[sky_column]).astype(bool)
            if sky.shape != depth.shape:
                raise BadSampleError("sky mask shape mismatch", f"sky mask {sky.shape} vs depth {depth.shape}")
        return {"depth": depth, "depth_kind": options["depth_kind"], "sky_mask": sky}


def _is_valid(sample: dict) -> bool:
    return sample["image"] is not None


# ----------------------------------------------------------------------------------------------------------------------
# Sources


def _files_generator(files: list[str], root: str):
    for path in files:
        yield {"id": str(Path(path).relative_to(root)), "image": {"path": path, "bytes": None}}


def _rgbd_generator(samples: list[str]):
    for folder in samples:
        path = Path(folder)
        yield {
            "id": path.name,
            "image": {"path": str(path / "image.png"), "bytes": None},
            "depth": {"path": str(path / "depth.png"), "bytes": None},
        }


def _image_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _is_rgbd_folder(path: Path, probe: int = 32) -> bool:
    """Whether one of the first `probe` sub-folders holds image.png + depth.png (cheap on huge folders)."""
    if not path.is_dir():
        return False
    children = (child for child in path.iterdir() if child.is_dir())
    return any((child / "depth.png").exists() and (child / "image.png").exists() for child in islice(children, probe))


def _builder_for_files(files: list[str]) -> str | None:
    suffixes = {Path(f).suffix.lower() for f in files}
    if suffixes <= {".parquet"}:
        return "parquet"
    if suffixes <= {".tar"}:
        return "webdataset"
    if suffixes <= {".arrow"}:
        return "arrow"
    return None


def _open_source(source: Any, split: str, streaming: bool, data_files: Any = None, **load_kwargs):
    """Any source -> (IterableDataset of raw rows, kind) with kind in {"rows", "folder", "rgbd"}."""
    import datasets

    if isinstance(source, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if split not in source:
            raise ValueError(f"split {split!r} not in the dataset's splits {list(source)}")
        source = source[split]
    if isinstance(source, datasets.Dataset):
        return source.to_iterable_dataset(num_shards=max(1, min(len(source), 64))), "rows"
    if isinstance(source, datasets.IterableDataset):
        return source, "rows"
    if not isinstance(source, (str, Path)):
        raise TypeError(
            f"source must be a path, a Hub id or a datasets (Iterable)Dataset, got {type(source).__name__}"
        )
    path = Path(source)
    if data_files is None and path.is_dir():
        if _is_rgbd_folder(path):
            return _rgbd_source(path), "rgbd"
        files = [str(p) for p in sorted(path.rglob("*")) if p.is_file()]
        if not files:
            raise ValueError(f"{str(path)!r} is empty: no image files and no dataset files in it")
        builder = _builder_for_files([f for f in files if not Path(f).name.startswith((".", "README"))])
        if (
            builder is None
            and _image_files(path)
            and not any(f.endswith((".parquet", ".tar", ".csv", ".jsonl")) for f in files)
        ):
            return _folder_source(path), "folder"
    if data_files is None and (path.is_file() or any(ch in str(source) for ch in "*?[")):
        import glob

        matches = sorted(glob.glob(str(source))) if not path.is_file() else [str(path)]
        builder = _builder_for_files(matches) if matches else None
        if builder is None:
            raise ValueError(
                f"cannot read {str(source)!r}: expected .parquet, .tar (webdataset) or .arrow files, got {matches[:3]}"
            )
        source, data_files = builder, matches
    try:
        ds = datasets.load_dataset(str(source), data_files=data_files, split=split, streaming=streaming, **load_kwargs)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"no dataset at {str(source)!r} (not a local folder/file, and no Hub dataset with that id): {error}"
        ) from error
    if not streaming:
        ds = ds.to_iterable_dataset(num_shards=max(1, min(len(ds), 64)))
    return ds, "rows"


def _chunks(items: list[str], max_shards: int = 1024) -> list[list[str]]:
    """Split a file list into at most `max_shards` contiguous chunks (shards)."""
    size = max(1, math.ceil(len(items) / max_shards))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _folder_source(folder: Path):
    import datasets

    files = _image_files(folder)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {str(folder)!r}")
    return datasets.IterableDataset.from_generator(
        _flat_files_generator, gen_kwargs={"chunks": _chunks(files), "root": str(folder)}
    )


def _flat_files_generator(chunks: list[list[str]], root: str):
    for chunk in chunks:
        yield from _files_generator(chunk, root)


def _rgbd_source(folder: Path):
    import datasets

    samples = sorted(str(child) for child in folder.iterdir() if child.is_dir())
    if not samples:
        raise ValueError(f"no sample folders under {str(folder)!r}")
    return datasets.IterableDataset.from_generator(_rgbd_generator, gen_kwargs={"samples": samples})


def _undecoded(ds, columns: list[str]):
    """Make `datasets.Image` columns yield raw {"bytes", "path"} so that bad files reach our decoder."""
    import datasets

    features = ds.features
    for column in columns:
        if features is not None and column in features and isinstance(features[column], datasets.Image):
            ds = ds.cast_column(column, datasets.Image(decode=False))
    return ds


def _auto_image_column(ds, preferred: str | None) -> str:
    import datasets

    if preferred:
        return preferred
    features = ds.features or {}
    for name, feature in features.items():
        if isinstance(feature, datasets.Image):
            return name
    for name in ("image", "jpg", "jpeg", "png", "webp"):
        if name in features:
            return name
    return "image"


def _source_name(source: Any) -> str:
    return str(source) if isinstance(source, (str, Path)) else type(source).__name__


def _decoded_stream(ds, decoder: _Decoder):
    return ds.map(decoder).filter(_is_valid)


def load_labelled(
    source: Any,
    image_column: str = "image",
    depth_column: str = "depth",
    depth_kind: str = "depth",
    depth_scale: float = 1.0,
    split: str = "train",
    streaming: bool = True,
    min_depth: float | None = None,
    max_depth: float | None = None,
    invalid_value: float | None = 0.0,
    sky_column: str | None = None,
    id_column: str | None = None,
    data_files: Any = None,
    stats: SampleStats | None = None,
    **load_kwargs,
):
    """A labelled stream: any `datasets` source with an image column and a depth or disparity column.

    Args:
        source: a Hub dataset id, a local dataset folder (parquet/webdataset/imagefolder with metadata), a parquet or
            .tar file or glob, an "rgbd folder" (`load_rgbd_folder`), or a `datasets` (Iterable)Dataset(Dict).
        image_column (`str`): column with the RGB image (PIL, bytes, path or `datasets.Image`).
        depth_column (`str`): column with the map: float array (H, W), a 16-bit PNG (`datasets.Image`, bytes or
            path), or .npy bytes.
        depth_kind (`str`): "depth" (z-depth or distance) or "disparity" (inverse depth, any scale).
        depth_scale (`float`): multiplies the raw values (e.g. 0.001 for millimetre PNGs).
        split (`str`): split to read from Hub/local datasets.
        streaming (`bool`): stream (True) or download and convert to an iterable (False); same output either way.
        min_depth, max_depth (`float`, *optional*): valid range of the scaled values.
        invalid_value (`float`, *optional*): raw value marking missing measurements (0 by default; None = none).
        sky_column (`str`, *optional*): bool (H, W) sky mask column; sky gets disparity 0 in `DepthTransform`.
        id_column (`str`, *optional*): sample id column; default "id", "__key__", the file path or a content hash.
        data_files: passed to `datasets.load_dataset`.
        stats (`SampleStats`, *optional*): counters to fill; a new one is made otherwise (see `stream.stats`).

    Returns:
        `datasets.IterableDataset` of decoded samples (module docstring); its decoder's counters are in the
        returned `SampleStats` object, reachable as `stats` if you passed one.
    """
    if depth_kind not in ("depth", "disparity"):
        raise ValueError(f"depth_kind must be 'depth' or 'disparity', got {depth_kind!r}")
    if not depth_scale > 0:
        raise ValueError(f"depth_scale must be > 0, got {depth_scale!r}")
    if min_depth is not None and max_depth is not None and min_depth >= max_depth:
        raise ValueError(f"min_depth must be < max_depth, got {min_depth!r} >= {max_depth!r}")
    ds, kind = _open_source(source, split, streaming, data_files, **load_kwargs)
    if kind == "folder":
        raise ValueError(f"{str(source)!r} is a folder of images without depth; use load_unlabelled for it")
    if kind == "rgbd":
        image_column, depth_column, depth_scale, invalid_value, depth_kind = "image", "depth", 0.001, 0.0, "depth"
    ds = _undecoded(ds, [image_column, depth_column])
    stats = stats if stats is not None else SampleStats(name=_source_name(source))
    depth = {
        "depth_column": depth_column,
        "sky_column": sky_column,
        "depth_kind": depth_kind,
        "depth_scale": depth_scale,
        "invalid_value": invalid_value,
        "min_depth": min_depth,
        "max_depth": max_depth,
    }
    return _decoded_stream(ds, _Decoder(stats, image_column, id_column, depth))


def load_rgbd_folder(path: str | Path, stats: SampleStats | None = None, **kwargs):
    """The "rgbd folder" layout: ``<path>/<sample>/{image.png, depth.png (uint16 millimetres, 0 = invalid)}``.

    One shard per sample folder; ids are the folder names. Extra keyword arguments go to `load_labelled`
    (e.g. `max_depth=10.0` in metres).
    """
    path = Path(path)
    if not _is_rgbd_folder(path):
        raise ValueError(
            f"{str(path)!r} is not an rgbd folder: expected <sample>/image.png and <sample>/depth.png inside"
        )
    return load_labelled(path, stats=stats or SampleStats(name=str(path)), **kwargs)


def load_unlabelled(
    source: Any,
    image_column: str | None = None,
    split: str = "train",
    streaming: bool = True,
    id_column: str | None = None,
    data_files: Any = None,
    stats: SampleStats | None = None,
    **load_kwargs,
):
    """An unlabelled image stream: an image folder (recursive; ids = relative paths), parquet or webdataset (.tar)
    shards, a Hub id, or a `datasets` object. `image_column` defaults to the first `datasets.Image` column
    ("jpg"/"png" in webdatasets). Yields decoded samples without depth."""
    ds, kind = _open_source(source, split, streaming, data_files, **load_kwargs)
    if kind == "rgbd":
        ds = _rgbd_source(Path(source))
    image_column = "image" if kind != "rows" else _auto_image_column(ds, image_column)
    ds = _undecoded(ds, [image_column])
    stats = stats if stats is not None else SampleStats(name=_source_name(source))
    return _decoded_stream(ds, _Decoder(stats, image_column, id_column, None))


def shard_for_process(dataset, rank: int, world_size: int):
    """This process's part of a stream: whole shards when `dataset.num_shards % world_size == 0`, else every
    `world_size`-th sample. Together the processes see every sample exactly once (`split_dataset_by_node`)."""
    from datasets.distributed import split_dataset_by_node

    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank!r}, world_size={world_size!r}")
    return dataset if world_size == 1 else split_dataset_by_node(dataset, rank=rank, world_size=world_size)


def iter_valid(dataset, name: str = "stream", stats: SampleStats | None = None) -> Iterator[dict]:
    """Iterate a decoded stream once, counting bad samples into `stats`; raise `NoValidSampleError` if none was valid."""
    stats = stats if stats is not None else SampleStats(name=name)
    count = 0
    for sample in dataset:
        stats.add_skipped(sample.get("skipped", ()))
        stats.record_valid()
        count += 1
        yield sample
    if count == 0:
        raise NoValidSampleError(f"{name}: the stream yielded no valid sample ({stats})")


# ----------------------------------------------------------------------------------------------------------------------
# Transforms


def _normalized_pixels(image: Image.Image) -> torch.Tensor:
    """PIL RGB (S, S) -> (3, S, S) float32, scaled to [0, 1] then ImageNet-normalised."""
    array = np.asarray(image, dtype=np.float32) / 255.0  # (S, S, 3)
    array = (array - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))  # (3, S, S)


def _nearest_resize(array: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a square (N, N) map to (size, size); depth is never interpolated across edges."""
    index = ((np.arange(size) + 0.5) * array.shape[0] / size).astype(np.int64)  # (size,) source rows/cols
    return array[index[:, None], index[None, :]]  # (size, size)


def disparity_from_depth(
    depth: np.ndarray, depth_kind: str, sky_mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) depth or disparity, NaN (or depth <= 0) invalid -> (disparity in [0, 1] over valid pixels, valid mask).

    Depth becomes 1/depth. Sky pixels get disparity 0 and count as valid (V2: sky = zero disparity); they take part
    in the min-max normalisation, so with sky the map's minimum is 0. Invalid pixels are 0 and masked out.
    """
    with np.errstate(invalid="ignore"):
        # NaN marks invalid pixels; 0 depth (the raw-file / synthetic-sky convention) is invalid too
        valid = np.isfinite(depth) & ((depth > 0) if depth_kind == "depth" else (depth >= 0))
    disparity = np.zeros(depth.shape, np.float32)
    if depth_kind == "depth":
        disparity[valid] = 1.0 / depth[valid]
    else:
        disparity[valid] = depth[valid]
    if sky_mask is not None:
        disparity[sky_mask] = 0.0
        valid = valid | sky_mask
    if valid.any():
        low, high = disparity[valid].min(), disparity[valid].max()
        if high > low:
            disparity = np.where(valid, (disparity - low) / (high - low), 0.0).astype(np.float32)
        else:
            disparity = np.zeros_like(disparity)
    return disparity, valid


@dataclass
class DepthTransform:
    """Joint transform of a decoded sample: resize the short side to `size`, random square crop `size` x `size`,
    random horizontal flip; image -> normalised tensor, depth -> normalised disparity and valid mask.

    The random choices are a pure function of (`seed`, `epoch`, sample id), so a resumed stream gets identical crops.
    For evaluation-like use set `random_crop=False` (centre crop) and `hflip=False`.

    Args:
        size (`int`, defaults to 518): output side; must be a multiple of 14 (the ViT patch size).
        random_crop (`bool`, defaults to True): random crop position along the long side (else centre).
        hflip (`bool`, defaults to True): flip with probability 0.5.
        seed (`int`, defaults to 0): seed of the random choices.

    Returns from `__call__(sample, epoch=0)`: ``pixel_values`` (3, size, size) float32, ``id``, and for samples with
    depth ``disparity`` (size, size) float32 in [0, 1] and ``valid_mask`` (size, size) bool.
    """

    size: int = 518
    random_crop: bool = True
    hflip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size <= 0 or self.size % PATCH_SIZE:
            raise ValueError(f"size must be a positive multiple of {PATCH_SIZE}, got {self.size!r}")

    def __call__(self, sample: dict, epoch: int = 0) -> dict:
        image: Image.Image = sample["image"]
        rng = np.random.default_rng([self.seed, epoch, zlib.crc32(str(sample["id"]).encode())])
        width, height = image.size
        side = min(width, height)
        # crop a square of the short side in original pixels, then resize: same as resize-then-crop, cheaper
        top = int(rng.integers(0, height - side + 1)) if self.random_crop else (height - side) // 2
        left = int(rng.integers(0, width - side + 1)) if self.random_crop else (width - side) // 2
        flip = bool(self.hflip and rng.random() < 0.5)
        crop = image.crop((left, top, left + side, top + side)).resize((self.size, self.size), Image.BICUBIC)
        if flip:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        out = {"pixel_values": _normalized_pixels(crop), "id": sample["id"]}
        if sample.get("depth") is not None:
            depth = _nearest_resize(sample["depth"][top : top + side, left : left + side], self.size)  # (size, size)
            sky = sample.get("sky_mask")
            if sky is not None:
                sky = _nearest_resize(sky[top : top + side, left : left + side], self.size)  # (size, size)
            if flip:
                depth = depth[:, ::-1]
                sky = sky[:, ::-1] if sky is not None else None
            disparity, valid = disparity_from_depth(depth, sample.get("depth_kind", "depth"), sky)
            out["disparity"] = torch.from_numpy(np.ascontiguousarray(disparity))
            out["valid_mask"] = torch.from_numpy(np.ascontiguousarray(valid))
        return out


def collate(samples: list[dict]) -> dict:
    """Stack transformed samples: tensors -> (B, ...) tensors, ``id`` -> ``ids`` list."""
    if not samples:
        raise ValueError("collate got an empty list of samples")
    batch = {"ids": [sample["id"] for sample in samples]}
    for key, value in samples[0].items():
        if isinstance(value, torch.Tensor):
            batch[key] = torch.stack([sample[key] for sample in samples])
    return batch


# ----------------------------------------------------------------------------------------------------------------------
# Mixing


class _Stream:
    """One endless, resumable pass-by-pass view of a finite or endless decoded stream."""

    def __init__(self, name: str, dataset, transform: Callable, per_batch: int) -> None:
        self.name, self.dataset, self.transform, self.per_batch = name, dataset, transform, per_batch
        self.epoch = 0
        self.stats = SampleStats(name=name)
        self._iterator: Iterator | None = None
        self._yielded_this_pass = 0
        self._resume_state: dict | None = None
        self._resume_yielded = 0

    def _start_pass(self) -> None:
        self.dataset.set_epoch(self.epoch)
        self._yielded_this_pass = 0
        if self._resume_state is not None:
            self.dataset.load_state_dict(self._resume_state)
            self._yielded_this_pass = self._resume_yielded
            self._resume_state = None
        self._iterator = iter(self.dataset)

    def next_samples(self) -> list[dict]:
        samples = []
        while len(samples) < self.per_batch:
            if self._iterator is None:
                self._start_pass()
            try:
                sample = next(self._iterator)
            except StopIteration:
                if self._yielded_this_pass == 0:
                    raise NoValidSampleError(
                        f"{self.name}: a full pass yielded no valid sample ({self.stats})"
                    ) from None
                self.epoch += 1
                self._iterator = None
                continue
            self._yielded_this_pass += 1
            self.stats.add_skipped(sample.get("skipped", ()))
            self.stats.record_valid()
            samples.append(self.transform(sample, epoch=self.epoch))
        return samples

    def state_dict(self) -> dict:
        # not started (or between passes): resume from the stored state, else the live `datasets` position
        dataset_state = self._resume_state if self._iterator is None else self.dataset.state_dict()
        return {"epoch": self.epoch, "dataset": dataset_state, "yielded_this_pass": self._yielded_this_pass}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self._resume_state = state["dataset"]
        self._resume_yielded = int(state.get("yielded_this_pass", 0))
        self._iterator = None


class MixedBatchStream:
    """Endless batches mixing a labelled and an unlabelled stream at a fixed per-batch ratio.

    Streams of unknown length are restarted when exhausted (``epoch`` + 1, `set_epoch` for shuffled streams), so a
    training loop runs on steps. With `world_size` > 1 each stream is first split with `shard_for_process`.

    Args:
        labelled: decoded labelled stream (e.g. `load_labelled`, `synthetic_stream`, `load_pseudo_labels`).
        unlabelled (*optional*): decoded stream for the second part of each batch (unlabelled images, or
            pseudo-labelled images); None = labelled-only batches.
        labelled_transform, unlabelled_transform: per-sample transforms, e.g. `DepthTransform(size)`.
        batch_size (`int`, defaults to 6): samples per batch and process, both streams together.
        ratio (`tuple[int, int]`, defaults to (1, 2)): labelled : unlabelled; `batch_size` must split exactly.
        rank, world_size (`int`): this process and the number of processes.

    Yields ``{"labelled": collate(...), "unlabelled": collate(...)}`` (the second key only with an unlabelled stream).
    `state_dict()` after a batch + `load_state_dict()` on a fresh object (same arguments) gives the same next
    batches as an uninterrupted run. `stats` maps stream name -> `SampleStats` (bad samples reported by decoders).
    """

    def __init__(
        self,
        labelled,
        unlabelled=None,
        labelled_transform: Callable | None = None,
        unlabelled_transform: Callable | None = None,
        batch_size: int = 6,
        ratio: tuple[int, int] = (1, 2),
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        if unlabelled is None:
            per_batch = {"labelled": batch_size}
        else:
            if len(ratio) != 2 or min(ratio) < 0 or sum(ratio) == 0:
                raise ValueError(f"ratio must be two non-negative integers, not both 0, got {ratio!r}")
            if (batch_size * ratio[0]) % sum(ratio):
                raise ValueError(f"batch_size {batch_size!r} does not split exactly at ratio {ratio!r}")
            labelled_count = batch_size * ratio[0] // sum(ratio)
            per_batch = {"labelled": labelled_count, "unlabelled": batch_size - labelled_count}
        transforms = {
            "labelled": labelled_transform or DepthTransform(),
            "unlabelled": unlabelled_transform or DepthTransform(),
        }
        sources = {"labelled": labelled, "unlabelled": unlabelled}
        self.streams = {
            name: _Stream(name, shard_for_process(sources[name], rank, world_size), transforms[name], count)
            for name, count in per_batch.items()
            if count > 0
        }
        self.batches = 0

    @property
    def stats(self) -> dict[str, SampleStats]:
        return {name: stream.stats for name, stream in self.streams.items()}

    def __iter__(self) -> Iterator[dict]:
        while True:
            batch = {name: collate(stream.next_samples()) for name, stream in self.streams.items()}
            self.batches += 1
            yield batch

    def state_dict(self) -> dict:
        """Position after the last yielded batch: per stream its epoch and `datasets` state, and the batch count."""
        return {
            "batches": self.batches,
            "streams": {name: stream.state_dict() for name, stream in self.streams.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        if set(state["streams"]) != set(self.streams):
            raise ValueError(f"state has streams {sorted(state['streams'])}, this mixer has {sorted(self.streams)}")
        self.batches = int(state["batches"])
        for name, stream_state in state["streams"].items():
            self.streams[name].load_state_dict(stream_state)
