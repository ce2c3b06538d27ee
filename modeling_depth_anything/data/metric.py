"""Metric depth data: sources whose ground truth is depth in metres, as `datasets` streams, and the transform that
keeps the metres (V2's `metric_depth` recipe: Hypersim indoors, Virtual KITTI 2 outdoors).

Source specs (`DataArguments.labelled` of `train/metric.py`), each ``KIND[:PATH][?key=value&...]``:

| spec | layout read | depth |
|---|---|---|
| ``synthetic`` | procedural indoor rooms of `data/synthetic.py` (seed `synthetic_seed`) | exact z-depth, <= ~16 m |
| ``hypersim:PATH`` | ``<scene>/images/scene_cam_XX_final_preview/frame.NNNN.tonemap.jpg`` + ``scene_cam_XX_geometry_hdf5/frame.NNNN.depth_meters.hdf5`` (key ``dataset``) | HDF5 *distance* to the camera centre -> planar depth with the focal length (886.81 px at 1024 px wide, `?focal_length=` to change) |
| ``vkitti2:PATH`` | ``<Scene>/<variation>/frames/rgb/Camera_N/rgb_NNNNN.jpg`` + ``frames/depth/Camera_N/depth_NNNNN.png`` | 16-bit PNG, centimetres (65535 = sky, beyond any max_depth) |
| ``rgbd:PATH`` (or a plain folder) | ``<sample>/image.{png,jpg}`` + ``depth.png`` (uint16 millimetres, 0 = none) or ``depth.npy`` (metres) | the shipped `assets/rgbd` |

``hypersim`` and ``vkitti2`` also take ``?split=FILE``: a text file of ``image_path depth_path`` lines relative to
PATH (V2's split files), instead of scanning the folder.

`open_metric_source` returns a `sources.Source` (raw rows + the one `decode.Decoder`, whose label reader here is
`MetricDepthLabel`), so `mixing.MixedBatchStream` shuffles, decodes in workers and resumes it like any other source.
Decoded samples are the data engine's (``id``, ``image`` PIL RGB, ``depth`` (H, W) float32 metres with NaN on invalid
pixels, ``depth_kind`` "depth", ``sky_mask`` None). `MetricDepthTransform` turns them into ``pixel_values`` +
``depth`` (metres) + ``valid_mask``; `metric_stream` is the training stage's batch stream.

Bad input is skipped and counted with the file named: unreadable files, size mismatches, and depth maps in the wrong
unit. A map whose measured values all lie outside [min_depth, max_depth] (millimetres read as metres: every value
> max_depth) is skipped as "depth out of range" with its file and median, never trained on; when at least half of
the first samples of a stream are like that, one warning says the whole stream looks mis-scaled.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import torch

from .decode import BadSampleError, Decoder, SampleStats, orient_like
from .rgbd import list_rgbd_samples, read_rgbd_depth
from .sources import Source
from .synthetic import SyntheticConfig, synthetic_stream
from .transforms import DepthTransform

logger = logging.getLogger(__name__)

METRIC_SOURCE_KINDS = ("synthetic", "hypersim", "vkitti2", "rgbd")
# Hypersim renders at 1024 x 768 with a 60 degree horizontal field of view: f = 512 / tan(30 deg) = 886.81 px (V2's
# `hypersim_distance_to_depth` hard-codes this value).
HYPERSIM_FOCAL_LENGTH = 886.81
HYPERSIM_WIDTH = 1024
OUT_OF_RANGE = "depth out of range"
# A stream is reported as mis-scaled once this many samples were read and at least half were out of range.
MISSCALE_WARNING_AFTER = 8
MAX_SHARDS = 1024  # file lists are cut into at most this many shards (processes and workers take whole shards)


# ----------------------------------------------------------------------------------------------------------------------
# Depth readers (metres, NaN or 0 = no measurement)


def distance_to_planar_depth(distance: np.ndarray, focal_length: float) -> np.ndarray:
    """Euclidean distance to the camera centre -> planar (z) depth, pinhole camera with the principal point centred.

    z = distance * f / sqrt(x^2 + y^2 + f^2), with (x, y) the pixel centre's offset from the image centre in pixels
    (V2's `hypersim_distance_to_depth`, with the focal length a parameter instead of Hypersim's 886.81).
    """
    if not focal_length > 0:
        raise ValueError(f"focal_length must be positive, got {focal_length!r}")
    height, width = distance.shape
    x = np.arange(width, dtype=np.float64) + 0.5 - width / 2  # (W,)
    y = np.arange(height, dtype=np.float64) + 0.5 - height / 2  # (H,)
    ray_norm = np.sqrt(x[None, :] ** 2 + y[:, None] ** 2 + focal_length**2)  # (H, W)
    return (distance.astype(np.float64) * focal_length / ray_norm).astype(np.float32)


def read_hypersim_depth(path: str | Path, focal_length: float | None = None) -> np.ndarray:
    """A Hypersim ``frame.NNNN.depth_meters.hdf5`` (distance in metres, NaN where nothing was hit) as planar depth.

    Args:
        path: the HDF5 file; its ``dataset`` key holds the (H, W) distances.
        focal_length (`float`, *optional*): pixels at this map's width; default 886.81 x width / 1024.
    """
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "dataset" not in handle:
                raise BadSampleError("unreadable depth", f"{path}: no 'dataset' key in the HDF5 file ({list(handle)})")
            distance = np.asarray(handle["dataset"], dtype=np.float32)
    except OSError as error:  # missing or damaged file
        raise BadSampleError("unreadable depth", f"{path}: {error}") from error
    if distance.ndim != 2 or distance.size == 0:
        raise BadSampleError("unreadable depth", f"{path}: expected a (H, W) distance map, got shape {distance.shape}")
    focal = focal_length if focal_length is not None else HYPERSIM_FOCAL_LENGTH * distance.shape[1] / HYPERSIM_WIDTH
    return distance_to_planar_depth(distance, focal)


def read_vkitti2_depth(path: str | Path) -> np.ndarray:
    """A Virtual KITTI 2 ``depth_NNNNN.png``: uint16 centimetres (V2: ``/ 100``); 655.35 m is the sky. Read with the
    RGB-D folder reader (`rgbd.read_rgbd_depth`: rejects 8-bit PNGs, names the file) at 0.01 m per unit."""
    return read_rgbd_depth(str(path), depth_scale=0.01)


# ----------------------------------------------------------------------------------------------------------------------
# Unit check and the label reader


def check_metric_range(depth: np.ndarray, min_depth: float, max_depth: float, where: str) -> np.ndarray:
    """Marks pixels outside [min_depth, max_depth] invalid (NaN); a map with none inside is a unit error.

    Args:
        depth: (H, W) float32 metres, NaN (or <= 0) = no measurement.
        where: the file (or sample) named in the error.

    Returns:
        (H, W) float32 metres, NaN outside the range.

    Raises:
        BadSampleError: "all-invalid depth" without any measurement; "depth out of range" when measurements exist
        but none lies in the range (e.g. millimetres read as metres: every value > max_depth).
    """
    with np.errstate(invalid="ignore"):
        measured = np.isfinite(depth) & (depth > 0)
        inside = measured & (depth >= min_depth) & (depth <= max_depth)
    if not measured.any():
        raise BadSampleError("all-invalid depth", f"{where}: no valid depth value")
    if not inside.any():
        median = float(np.median(depth[measured]))
        raise BadSampleError(
            OUT_OF_RANGE,
            f"{where}: no depth inside [{min_depth:g}, {max_depth:g}] m (median {median:.4g}); wrong unit? "
            "(millimetres or centimetres read as metres, or a max_depth too small for this data)",
        )
    return np.where(inside, depth, np.float32(np.nan)).astype(np.float32)


class MetricDepthLabel:
    """The label reader of metric sources for `decode.Decoder`: reads the row's ``depth`` file into metres with
    `reader`, checks the unit range (`check_metric_range`) and aligns the map with the upright image.

    Counts the maps it read and those out of range; once at least half of the first `MISSCALE_WARNING_AFTER` or more
    were out of range, one warning says the whole stream looks mis-scaled.
    """

    def __init__(self, reader: Callable[[str], np.ndarray], min_depth: float, max_depth: float, name: str) -> None:
        self.reader, self.min_depth, self.max_depth, self.name = reader, min_depth, max_depth, name
        self.read = self.out_of_range = 0
        self.warned = False

    def __call__(self, row: dict, orientation: int) -> dict:
        path = row.get("depth")
        if path is None:
            raise BadSampleError("missing depth", "no depth file for this image")
        self.read += 1
        try:
            depth = check_metric_range(self.reader(path), self.min_depth, self.max_depth, str(path))
        except BadSampleError as error:
            if error.reason == OUT_OF_RANGE:
                self.out_of_range += 1
                self._maybe_warn(str(error))
            raise
        return {"depth": orient_like(depth, orientation), "depth_kind": "depth", "sky_mask": None}

    def _maybe_warn(self, example: str) -> None:
        if not self.warned and self.read >= MISSCALE_WARNING_AFTER and 2 * self.out_of_range >= self.read:
            self.warned = True
            logger.warning(
                "%s: %d of the first %d depth maps have no value inside [%g, %g] m: the whole stream looks "
                "mis-scaled (check the source's unit and max_depth). E.g. %s",
                self.name,
                self.out_of_range,
                self.read,
                self.min_depth,
                self.max_depth,
                example,
            )


# ----------------------------------------------------------------------------------------------------------------------
# Layouts


def hypersim_pairs(root: Path) -> list[tuple[str, str]]:
    """(image, depth) paths of a Hypersim tree: every ``*_final_preview/frame.N.tonemap.jpg`` and its
    ``*_geometry_hdf5/frame.N.depth_meters.hdf5`` (which may be missing: reported when read)."""
    pairs = []
    for image in sorted(root.glob("**/images/scene_cam_*_final_preview/frame.*.tonemap.jpg")):
        folder = image.parent.name.replace("_final_preview", "_geometry_hdf5")
        depth = image.parent.parent / folder / image.name.replace(".tonemap.jpg", ".depth_meters.hdf5")
        pairs.append((str(image), str(depth)))
    return pairs


def vkitti2_pairs(root: Path) -> list[tuple[str, str]]:
    """(image, depth) paths of a Virtual KITTI 2 tree: ``.../frames/rgb/Camera_N/rgb_K.jpg`` and
    ``.../frames/depth/Camera_N/depth_K.png``."""
    pairs = []
    for image in sorted(root.glob("**/frames/rgb/Camera_*/rgb_*.jpg")):
        camera = image.parent
        depth = camera.parent.parent / "depth" / camera.name / image.name.replace("rgb_", "depth_", 1)
        pairs.append((str(image), str(depth.with_suffix(".png"))))
    return pairs


def split_file_pairs(root: Path, split_file: str) -> list[tuple[str, str]]:
    """(image, depth) paths from a V2-style split file: ``image_path depth_path`` per line, relative to `root`."""
    path = Path(split_file) if Path(split_file).is_absolute() else root / split_file
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} not found")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{path}:{number}: expected 'image_path depth_path', got {line!r}")
        pairs.append(tuple(str(p if Path(p).is_absolute() else root / p) for p in fields[:2]))
    return pairs


def _rows_generator(chunks: list[list[tuple[str, str, str | None]]]):
    for chunk in chunks:
        for sample_id, image, depth in chunk:
            yield {"id": sample_id, "image": {"path": image, "bytes": None}, "depth": depth}


def pairs_source(
    name: str,
    root: Path,
    pairs: list[tuple[str, str | None]],
    reader: Callable[[str], np.ndarray],
    min_depth: float,
    max_depth: float,
    stats: SampleStats | None = None,
) -> Source:
    """(image, depth) file pairs -> a `Source` (raw rows + the one `Decoder` with a `MetricDepthLabel`); ids are the
    image paths relative to `root`."""
    import datasets

    if not pairs:
        raise ValueError(f"{name}: no (image, depth) pairs found under {str(root)!r} (see data/metric.py for layouts)")
    rows = []
    for image, depth in pairs:
        try:
            sample_id = str(Path(image).relative_to(root))
        except ValueError:
            sample_id = image
        rows.append((sample_id, image, depth))
    size = max(1, math.ceil(len(rows) / MAX_SHARDS))
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]  # one shard per chunk (split_dataset_by_node)
    generated = datasets.IterableDataset.from_generator(_rows_generator, gen_kwargs={"chunks": chunks})
    label = MetricDepthLabel(reader, min_depth, max_depth, name)
    return Source(name, generated, Decoder("image", label, "id", stats, name=name))


def _synthetic_in_range(example: dict, min_depth: float, max_depth: float) -> dict:
    depth = example["depth"]
    with np.errstate(invalid="ignore"):
        inside = (depth >= min_depth) & (depth <= max_depth)  # sky (0) and anything beyond max_depth: invalid
    return {"depth": np.where(inside, depth, np.float32(np.nan)).astype(np.float32), "sky_mask": None, "skipped": []}


def synthetic_metric_stream(
    seed: int = 0,
    size: tuple[int, int] = (256, 256),
    num_shards: int = 8,
    min_depth: float = 1e-3,
    max_depth: float = 20.0,
    samples_per_shard: int | None = None,
):
    """Procedural indoor rooms with exact z-depth in metres (the indoor-like scale of V2's Hypersim recipe: rooms of
    3-12 m, so depth stays under ~16 m); pixels outside [min_depth, max_depth] are invalid (NaN). Decoded samples."""
    stream = synthetic_stream(
        seed=seed,
        size=size,
        num_shards=num_shards,
        samples_per_shard=samples_per_shard,
        config=SyntheticConfig(scene_kinds=("room",)),
    )
    return stream.map(_synthetic_in_range, fn_kwargs={"min_depth": min_depth, "max_depth": max_depth})


def parse_metric_source(spec: str) -> tuple[str, str, dict[str, str]]:
    """``KIND[:PATH][?key=value&...]`` -> (kind, path, options); a plain folder path is an rgbd folder."""
    head, _, query = spec.partition("?")
    kind, sep, path = head.partition(":")
    if not sep:
        kind, path = ("synthetic", "") if head == "synthetic" else ("rgbd", head)
    if kind not in METRIC_SOURCE_KINDS:
        raise ValueError(f"unknown metric source kind {kind!r} in {spec!r}; known: {METRIC_SOURCE_KINDS}")
    if kind != "synthetic" and not path:
        raise ValueError(f"metric source {spec!r} needs a path: {kind}:PATH")
    return kind, path, dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))


def open_metric_source(
    spec: str,
    min_depth: float,
    max_depth: float,
    synthetic_seed: int = 0,
    synthetic_size: tuple[int, int] = (256, 256),
    synthetic_num_shards: int = 8,
    stats: SampleStats | None = None,
) -> Source:
    """A metric `Source` for one spec (module docstring): raw rows and their decoder (`Source.decoded()` gives the
    decoded stream; `mixing.MixedBatchStream` takes the `Source` as it is).

    Raises:
        ValueError / FileNotFoundError: an unknown kind or option, a missing folder, a layout without samples.
    """
    kind, path, options = parse_metric_source(spec)
    if kind == "synthetic":
        if options:
            raise ValueError(f"{spec}: the synthetic source takes no options, got {sorted(options)}")
        rows = synthetic_metric_stream(synthetic_seed, synthetic_size, synthetic_num_shards, min_depth, max_depth)
        return Source(f"synthetic rooms (seed={synthetic_seed})", rows, None, False)  # random already: no shuffle
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{spec}: folder {root} does not exist")
    split = options.pop("split", None)
    focal_length = float(options.pop("focal_length")) if "focal_length" in options else None
    if focal_length is not None and kind != "hypersim":
        raise ValueError(f"{spec}: focal_length applies to hypersim only")
    if split is not None and kind == "rgbd":
        raise ValueError(f"{spec}: split applies to hypersim and vkitti2 only")
    if options:
        raise ValueError(f"{spec}: unknown option(s) {sorted(options)}")
    if kind == "rgbd":  # the one RGB-D reader: millimetre PNGs (or .npy metres); ids are the sample folders
        entries = list_rgbd_samples(root)
        pairs = [(str(e.image), None if e.depth is None else str(e.depth)) for e in entries]
        source = pairs_source(spec, root, pairs, read_rgbd_depth, min_depth, max_depth, stats)
        return source
    finders = {"hypersim": hypersim_pairs, "vkitti2": vkitti2_pairs}
    pairs = split_file_pairs(root, split) if split is not None else finders[kind](root)
    readers: dict[str, Callable[[str], np.ndarray]] = {
        "hypersim": functools.partial(read_hypersim_depth, focal_length=focal_length),
        "vkitti2": read_vkitti2_depth,
    }
    return pairs_source(spec, root, pairs, readers[kind], min_depth, max_depth, stats)


def open_metric_sources(specs: list[str], **kwargs) -> list[Source]:
    """`open_metric_source` for each spec (a mixed part reads them round-robin, `mixing.MixedBatchStream`)."""
    if not specs:
        raise ValueError("no metric source given")
    return [open_metric_source(spec, **kwargs) for spec in specs]


# ----------------------------------------------------------------------------------------------------------------------
# Transform


@dataclass
class MetricDepthTransform(DepthTransform):
    """Joint transform for metric training: `DepthTransform`'s crop and flip (same random choices for the same
    (seed, epoch, id), so a resumed stream gets identical crops), but the depth keeps its metres (nearest-neighbour
    resizing, as V2's target resize) instead of becoming a per-image normalised disparity.

    Returns from `__call__(sample, epoch=0)`: ``pixel_values`` (3, size, size) float32 (ImageNet-normalised),
    ``depth`` (size, size) float32 metres (0 on invalid pixels), ``valid_mask`` (size, size) bool, ``id``.
    """

    def target(self, depth: np.ndarray, sky: np.ndarray | None, sample: dict) -> dict:
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(depth) & (depth > 0)
        return {
            "depth": torch.from_numpy(np.where(valid, depth, 0.0).astype(np.float32)),
            "valid_mask": torch.from_numpy(valid),
        }


def median_depth(stream: Any, num_samples: int) -> float:
    """Median of the valid depth pixels of the first `num_samples` decoded samples of `stream` (metres): the
    constant predictor a metric model must beat."""
    values = []
    for index, sample in enumerate(stream):
        if index >= num_samples:
            break
        depth = sample["depth"]
        values.append(depth[np.isfinite(depth)])
    if not values:
        raise ValueError("median_depth: the stream yielded no sample")
    return float(np.median(np.concatenate(values)))
