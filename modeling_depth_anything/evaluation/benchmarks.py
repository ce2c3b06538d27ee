"""Benchmark adapters: on-disk layouts, standard crops and depth caps, and DA-2K.

A benchmark is named ``KIND:PATH`` with optional ``?key=value&...`` options, e.g. ``nyu:data/nyu``,
``diode:data/diode/val?split=indoors``, ``rgbd:assets/rgbd?max_depth=20``, ``hf:user/dataset?split=test``.
Options every depth benchmark takes: ``min_depth``, ``max_depth`` (metres), ``limit`` (first N samples).

| kind | layout read | crop | range (m) |
|---|---|---|---|
| ``rgbd`` | ``<sample>/image.png`` + ``<sample>/depth.png`` (uint16 mm, 0 = none) or ``depth.npy`` (float metres) | — | 1e-3–inf |
| ``nyu`` | BTS/ZoeDepth ``official_splits/test/<scene>/rgb_N.jpg`` + ``sync_depth_N.png`` (mm), or ``rgb_N.png`` + ``depth_N.png`` (Marigold) | Eigen: rows 45:471, cols 41:601 of 480×640 | 1e-3–10 |
| ``kitti`` | split file ``eigen_test_files_with_gt.txt`` (``image gt focal`` per line; ``None`` gt lines are dropped) with images under ``PATH`` or ``PATH/raw`` and ground truth (uint16 / 256) under ``PATH``, ``PATH/gt`` or ``PATH/data_depth_annotated/{train,val}`` | Garg | 1e-3–80 |
| ``eth3d`` | ``<scene>/images/dslr_images*/X.JPG`` + ``<scene>/ground_truth_depth/dslr_images/X.JPG`` (raw float32, inf = none); a ``rgb/``→``depth/`` split tree also works | — | 1e-3–inf |
| ``diode`` | ``{indoors,outdoor}/scene_*/scan_*/X.png`` + ``X_depth.npy`` + ``X_depth_mask.npy``; ``split=indoors|outdoor`` | — | 0.6–350 |
| ``sintel`` | ``training/{final,clean}/<scene>/frame_N.png`` + ``training/depth/<scene>/frame_N.dpt``; ``pass=final|clean`` | — | 1e-3–70 |
| ``hf`` | a ``datasets`` dataset (Hub id or ``save_to_disk`` folder); options ``split``, ``image``, ``depth``, ``mask`` (column names), ``depth_scale``, ``crop`` (``eigen``/``garg``) | optional | 1e-3–inf |
| ``da2k`` | ``annotations.json`` = {image_path: [{"point1": [h, w], "point2": [h, w], "closer_point": "point1"}]} with images relative to ``PATH`` | — | pairwise |
| ``synthetic`` | no files: procedural scenes with exact depth rendered on the fly (``data.synthetic``), e.g. ``synthetic:?count=64&seed=777001&height=126&width=168``; the sky is excluded | — | 1e-3–inf |

Samples are loaded lazily; a sample whose files are missing or inconsistent raises :class:`BadSampleError` (the data
path's, `data/decode.py`: a reason, the file and the problem, the sample id) and evaluation loops skip and count it.
RGB-D folders are read by the data path's one reader of that layout (`data/rgbd.py`), which is also the reader of
16-bit PNG depth for ``nyu`` and ``kitti``: an 8-bit PNG is refused, never read as millimetres. A benchmark with no samples at all raises ``ValueError`` at load time.
Crops are applied to the validity mask, never to the image, so the model sees the full frame.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import numpy as np
from PIL import Image

from ..data.decode import BadSampleError, read_npy_depth
from ..data.rgbd import list_rgbd_samples, read_rgbd_depth
from .readers import (
    eigen_crop_mask,
    eigen_kitti_crop_mask,
    garg_crop_mask,
    read_eth3d_depth,
    read_rgb,
    read_sintel_dpt,
)

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]  # a checkout (editable install): relative specs fall back to it
DEFAULT_BENCHMARK = "rgbd:assets/rgbd"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class Sample(NamedTuple):
    """One RGB-D evaluation sample.

    Attributes:
        image (`np.ndarray`, `(H, W, 3)` uint8): the RGB input.
        depth (`np.ndarray`, `(H, W)` float32): ground-truth depth in metres; 0, NaN and inf are invalid.
        mask (`np.ndarray`, `(H, W)` bool): validity mask including the benchmark's crop and range.
        id (`str`): sample name, unique inside the benchmark.
    """

    image: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    id: str


# ----------------------------------------------------------------------------------------------------------------------
# Depth benchmarks
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class Entry:
    """Files of one sample (resolved lazily; ``depth`` may point at a missing file, reported when loaded)."""

    id: str
    image: Path | None
    depth: Path | None
    mask: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DepthBenchmark:
    """A list of RGB-D samples with a depth range and an optional crop.

    Args:
        kind (`str`): adapter name (``rgbd``, ``nyu``, ...).
        path (`str`): where it was read from.
        entries (`list[Entry]`): the samples, in a fixed order.
        loader (`Callable[[Entry], tuple]`): reads ``(image (H, W, 3) uint8, depth (H, W) float32 m, mask | None)``.
        min_depth, max_depth (`float`): valid ground-truth range in metres (``max_depth`` may be inf).
        crop (`Callable[[int, int], np.ndarray]`, *optional*): `(H, W)` bool mask of the evaluated region.
        display_name (`str`): name for tables and model cards (e.g. ``"NYUv2"``).
        split (`str`): split name for model cards.
    """

    kind: str
    path: str
    entries: list[Entry]
    loader: Callable[[Entry], tuple[np.ndarray, np.ndarray, np.ndarray | None]]
    min_depth: float = 1e-3
    max_depth: float = math.inf
    crop: Callable[[int, int], np.ndarray] | None = None
    display_name: str = ""
    split: str = "test"

    def __post_init__(self) -> None:
        if not (self.min_depth > 0 and self.max_depth > self.min_depth):
            raise ValueError(
                f"{self.kind}:{self.path}: need 0 < min_depth < max_depth, got {self.min_depth!r}, {self.max_depth!r}"
            )
        if not self.entries:
            raise ValueError(f"{self.kind}:{self.path}: empty benchmark, no samples found (see the layouts in modeling_depth_anything/evaluation/benchmarks.py)")
        self.display_name = self.display_name or self.kind

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Sample:
        """Loads sample ``index``; raises :class:`BadSampleError` naming the file when it is missing or broken."""
        entry = self.entries[index]
        try:
            image, depth, mask = self.loader(entry)
        except BadSampleError as error:
            error.sample_id = error.sample_id or entry.id
            raise
        except (OSError, ValueError, KeyError) as error:
            raise BadSampleError(
                "unreadable sample", f"{self.kind}:{self.path}: sample {entry.id}: {error}", entry.id
            ) from error
        if image.ndim != 3 or image.shape[2] != 3:
            raise BadSampleError(
                "corrupt image", f"{entry.image}: expected an RGB image, got shape {image.shape}", entry.id
            )
        if depth.shape != image.shape[:2]:
            raise BadSampleError(
                "depth shape mismatch",
                f"{entry.depth}: depth size {depth.shape[0]}x{depth.shape[1]} does not match image size "
                f"{image.shape[0]}x{image.shape[1]} ({entry.image})",
                entry.id,
            )
        valid = np.isfinite(depth) & (depth >= self.min_depth) & (depth <= self.max_depth) & (depth > 0)
        if mask is not None:
            if mask.shape != depth.shape:
                raise BadSampleError(
                    "mask shape mismatch",
                    f"{entry.mask}: mask shape {mask.shape} does not match depth {depth.shape}",
                    entry.id,
                )
            valid &= mask.astype(bool)
        if self.crop is not None:
            try:
                valid &= self.crop(*depth.shape)
            except ValueError as error:
                raise BadSampleError("crop does not apply", f"{entry.image}: {error}", entry.id) from error
        if not valid.any():
            raise BadSampleError(
                "all-invalid depth",
                f"{entry.depth}: no valid depth in [{self.min_depth}, {self.max_depth}] m after crop and masks",
                entry.id,
            )
        return Sample(image=image, depth=depth, mask=valid, id=entry.id)

    def iter_samples(self) -> Iterator[Sample | BadSampleError]:
        """Yields every sample in order; a broken one is yielded as its :class:`BadSampleError` (skip and count)."""
        for index in range(len(self)):
            try:
                yield self[index]
            except BadSampleError as error:
                yield error


def _require_dir(path: Path, kind: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{kind}: benchmark folder {path} does not exist")
    return path


def _first_existing(candidates: list[Path]) -> Path:
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[0]


def _image_and_png_depth(scale: float) -> Callable[[Entry], tuple[np.ndarray, np.ndarray, None]]:
    def load(entry: Entry) -> tuple[np.ndarray, np.ndarray, None]:
        if entry.depth is None or not entry.depth.is_file():
            raise BadSampleError(
                "missing depth", f"missing ground-truth depth file {entry.depth} for image {entry.image}", entry.id
            )
        return read_rgb(entry.image), read_rgbd_depth(entry.depth, scale), None  # 16-bit PNG x scale, or .npy metres

    return load


def rgbd_folder(path: Path, options: dict[str, str]) -> DepthBenchmark:
    """Generic RGB-D folder: one sub-folder per sample with ``image.{png,jpg}`` and ``depth.png`` (uint16 millimetres,
    scaled by ``depth_scale``, default 0.001) or ``depth.npy`` (float metres). Sub-folders without an image are
    ignored; a missing depth file is a bad sample."""
    root = _require_dir(path, "rgbd")
    entries = [  # a missing depth file is reported (when loaded) under the name the layout expects
        Entry(id=sample.id, image=sample.image, depth=sample.depth or sample.image.parent / "depth.png")
        for sample in list_rgbd_samples(root)
    ]
    scale = float(options.pop("depth_scale", 0.001))
    return DepthBenchmark("rgbd", str(path), entries, _image_and_png_depth(scale), display_name="RGB-D folder")


def nyu(path: Path, options: dict[str, str]) -> DepthBenchmark:
    """NYUv2 test set (654 images) in the BTS/ZoeDepth ``rgb_N.jpg`` + ``sync_depth_N.png`` or Marigold
    ``rgb_N.png`` + ``depth_N.png`` layout (uint16 millimetres), Eigen crop, 1e-3–10 m."""
    root = _require_dir(path, "nyu")
    entries = []
    for image in sorted(p for p in root.rglob("rgb_*") if p.suffix.lower() in IMAGE_SUFFIXES):
        number = image.stem[len("rgb_") :]
        depth = _first_existing([image.with_name(f"sync_depth_{number}.png"), image.with_name(f"depth_{number}.png")])
        entries.append(Entry(id=str(image.relative_to(root).with_suffix("")), image=image, depth=depth))
    return DepthBenchmark(
        "nyu", str(path), entries, _image_and_png_depth(0.001), 1e-3, 10.0, eigen_crop_mask, display_name="NYUv2"
    )


def kitti(path: Path, options: dict[str, str]) -> DepthBenchmark:
    """KITTI Eigen split (652 images with ground truth), Garg crop (``?crop=eigen`` for the Eigen crop), ≤ 80 m; see
    the module table for the layout."""
    root = _require_dir(path, "kitti")
    crops = {"garg": garg_crop_mask, "eigen": eigen_kitti_crop_mask}
    crop_name = options.pop("crop", "garg")
    if crop_name not in crops:
        raise ValueError(f"kitti: crop must be one of {sorted(crops)}, got {crop_name!r}")
    split_file = Path(options.pop("split", "eigen_test_files_with_gt.txt"))
    split_file = split_file if split_file.is_absolute() else root / split_file
    if not split_file.is_file():
        raise FileNotFoundError(f"kitti: split file {split_file} not found (pass ?split=FILE)")
    entries = []
    for line_number, line in enumerate(split_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{split_file}:{line_number}: expected 'image_path gt_path [focal]', got {line!r}")
        image_rel, gt_rel = fields[0], fields[1]
        if gt_rel == "None":  # Eigen lines without projected ground truth: not part of the 652
            continue
        image = _first_existing([root / image_rel, root / "raw" / image_rel])
        gt = _first_existing(
            [root / gt_rel, root / "gt" / gt_rel]
            + [root / "data_depth_annotated" / part / gt_rel for part in ("train", "val")]
        )
        entries.append(Entry(id=image_rel, image=image, depth=gt))

    def load(entry: Entry) -> tuple[np.ndarray, np.ndarray, None]:
        if not entry.image.is_file():
            raise BadSampleError("missing file", f"missing image file {entry.image}", entry.id)
        return _image_and_png_depth(1.0 / 256.0)(entry)

    name = "KITTI Eigen" if crop_name == "garg" else "KITTI Eigen (Eigen crop)"
    return DepthBenchmark("kitti", str(path), entries, load, 1e-3, 80.0, crops[crop_name], display_name=name)


def eth3d(path: Path, options: dict[str, str]) -> DepthBenchmark:
    """ETH3D high-res multi-view training DSLR images (454) with raw float32 depth; infinite depth is invalid."""
    root = _require_dir(path, "eth3d")
    entries = []
    for image in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        if not (image.parent.name.startswith("dslr_images") and image.parent.parent.name == "images"):
            continue
        scene_dir = image.parents[2]
        candidates = [scene_dir / "ground_truth_depth" / "dslr_images" / image.name]
        parts = list(scene_dir.relative_to(root).parts)
        if parts and parts[0] == "rgb":
            rest = parts[1:]  # rgb/<scene> -> depth/<scene> or depth/<scene>_dslr_depth/<scene>
            candidates.append(root.joinpath("depth", *rest, "ground_truth_depth", "dslr_images", image.name))
            if rest:
                candidates.append(
                    root.joinpath(
                        "depth", f"{rest[0]}_dslr_depth", *rest, "ground_truth_depth", "dslr_images", image.name
                    )
                )
        entries.append(Entry(id=str(image.relative_to(root)), image=image, depth=_first_existing(candidates)))

    def load(entry: Entry) -> tuple[np.ndarray, np.ndarray, None]:
        if not entry.depth.is_file():
            raise BadSampleError(
                "missing depth", f"missing ground-truth depth file {entry.depth} for image {entry.image}", entry.id
            )
        image = read_rgb(entry.image)
        return image, read_eth3d_depth(entry.depth, *image.shape[:2]), None

    return DepthBenchmark("eth3d", str(path), entries, load, 1e-3, math.inf, display_name="ETH3D")


def diode(path: Path, options: dict[str, str]) -> DepthBenchmark:
    """DIODE val (771 = 325 indoors + 446 outdoor), ``X.png`` + ``X_depth.npy`` + ``X_depth_mask.npy``, 0.6–350 m."""
    root = _require_dir(path, "diode")
    split = options.pop("split", "all")
    if split not in ("all", "indoors", "outdoor"):
        raise ValueError(f"diode: split must be 'all', 'indoors' or 'outdoor', got {split!r}")
    entries = []
    for image in sorted(root.rglob("*.png")):
        relative = image.relative_to(root)
        if split != "all" and split not in relative.parts:
            continue
        depth = image.with_name(f"{image.stem}_depth.npy")
        entries.append(
            Entry(
                id=str(relative.with_suffix("")),
                image=image,
                depth=depth,
                mask=image.with_name(f"{image.stem}_depth_mask.npy"),
            )
        )

    def load(entry: Entry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        for needed in (entry.depth, entry.mask):
            if not needed.is_file():
                raise BadSampleError(
                    "missing depth", f"missing ground-truth file {needed} for image {entry.image}", entry.id
                )
        mask = np.load(entry.mask, allow_pickle=False) > 0
        return read_rgb(entry.image), read_npy_depth(entry.depth), mask

    name = "DIODE" if split == "all" else f"DIODE {split}"
    return DepthBenchmark("diode", str(path), entries, load, 0.6, 350.0, display_name=name, split="val")


def sintel(path: Path, options: dict[str, str]) -> DepthBenchmark:
    """MPI Sintel training set: ``training/<pass>/<scene>/frame_N.png`` + ``training/depth/<scene>/frame_N.dpt``,
    ≤ 70 m (pass ``final`` by default)."""
    root = _require_dir(path, "sintel")
    render_pass = options.pop("pass", "final")
    base = root / "training" if (root / "training").is_dir() else root
    pass_dir = _require_dir(base / render_pass, "sintel")
    entries = []
    for image in sorted(pass_dir.rglob("*.png")):
        relative = image.relative_to(pass_dir)
        entries.append(
            Entry(id=str(relative.with_suffix("")), image=image, depth=(base / "depth" / relative).with_suffix(".dpt"))
        )

    def load(entry: Entry) -> tuple[np.ndarray, np.ndarray, None]:
        if not entry.depth.is_file():
            raise BadSampleError(
                "missing depth", f"missing ground-truth depth file {entry.depth} for image {entry.image}", entry.id
            )
        return read_rgb(entry.image), read_sintel_dpt(entry.depth), None

    return DepthBenchmark("sintel", str(path), entries, load, 1e-3, 70.0, display_name="Sintel", split="train")


def hf_dataset(path: str, options: dict[str, str]) -> DepthBenchmark:
    """A ``datasets`` source: a Hub id (needs network or cache) or a ``save_to_disk`` folder. Options: ``split``
    (default ``test``), ``image``/``depth``/``mask`` column names (default ``image``, ``depth``, none), ``depth_scale``
    (default 1.0; e.g. 0.001 for millimetre PNGs), ``crop`` (``eigen`` or ``garg``, e.g. NYUv2 or KITTI from the Hub).
    Set ``min_depth``/``max_depth`` to the dataset's range (e.g. ``max_depth=10`` for NYUv2)."""
    import datasets

    crops = {"none": None, "eigen": eigen_crop_mask, "garg": garg_crop_mask}
    crop_name = options.pop("crop", "none")
    if crop_name not in crops:
        raise ValueError(f"hf:{path}: crop must be one of {sorted(crops)}, got {crop_name!r}")

    split = options.pop("split", "test")
    image_column = options.pop("image", "image")
    depth_column = options.pop("depth", "depth")
    mask_column = options.pop("mask", None)
    scale = float(options.pop("depth_scale", 1.0))
    local = Path(path)
    if local.is_dir() and ((local / "dataset_dict.json").is_file() or (local / "state.json").is_file()):
        dataset = datasets.load_from_disk(str(local))
        if isinstance(dataset, datasets.DatasetDict):
            if split not in dataset:
                raise ValueError(f"hf:{path}: split {split!r} not found, available: {list(dataset)}")
            dataset = dataset[split]
    else:
        dataset = datasets.load_dataset(path, split=split)
    for column in (image_column, depth_column, mask_column):
        if column is not None and column not in dataset.column_names:
            raise ValueError(f"hf:{path}: column {column!r} not found, available: {dataset.column_names}")
    entries = [
        Entry(id=f"{split}/{index}", image=None, depth=None, extra={"index": index}) for index in range(len(dataset))
    ]

    def load(entry: Entry) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        row = dataset[entry.extra["index"]]
        image = row[image_column]
        image = (
            np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image, dtype=np.uint8)
        )
        depth = np.asarray(row[depth_column], dtype=np.float32) * np.float32(scale)
        mask = None if mask_column is None else np.asarray(row[mask_column]).astype(bool)
        if depth.ndim == 3 and depth.shape[-1] == 1:
            depth = depth[..., 0]  # (H, W, 1) -> (H, W)
        return image, depth, mask

    return DepthBenchmark("hf", path, entries, load, crop=crops[crop_name], display_name=path, split=split)


# Held out by default: the training stages render seed `synthetic_seed` (0) and pseudo-labelling `synthetic_seed + 1000`.
SYNTHETIC_EVAL_SEED = 777_001


def synthetic_scenes(path: str, options: dict[str, str]) -> DepthBenchmark:
    """Procedural synthetic scenes with exact depth (``data.synthetic.render_sample``), rendered when loaded: the same
    scenes for the same options on every machine. Options: ``count`` (64), ``seed`` (777001, a seed no training stage
    renders), ``height`` and ``width`` (126, 168: multiples of 14, so a 126-px processor predicts them unresized),
    ``scenes`` (comma-separated families of ``data.synthetic.SCENE_KINDS``, default all; ``scenes=room`` for the indoor
    rooms metric models are fine-tuned on, with ``max_depth=20``). Sky pixels (infinitely far) are excluded. ``PATH``
    must be empty: ``synthetic:?count=64``."""
    from ..data.synthetic import SCENE_KINDS, SyntheticConfig, render_sample

    if path:
        raise ValueError(f"synthetic:{path}: synthetic scenes take no path, only options (synthetic:?count=64&seed=1)")
    try:
        count = int(options.pop("count", 64))
        seed = int(options.pop("seed", SYNTHETIC_EVAL_SEED))
        scenes = tuple(options.pop("scenes", ",".join(SCENE_KINDS)).split(","))
        config = SyntheticConfig(
            height=int(options.pop("height", 126)), width=int(options.pop("width", 168)), scene_kinds=scenes
        )
    except ValueError as error:
        raise ValueError(f"synthetic: bad option ({error})") from error
    if count < 1:
        raise ValueError(f"synthetic: count must be >= 1, got {count}")
    entries = [
        Entry(id=f"synthetic-{seed}-{index}", image=None, depth=None, extra={"index": index}) for index in range(count)
    ]

    def load(entry: Entry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scene = render_sample(seed, entry.extra["index"], config=config)
        return scene["image"], scene["depth"], ~scene["sky_mask"]

    kinds = "" if set(scenes) == set(SCENE_KINDS) else f"{'/'.join(scenes)}, "
    name = f"synthetic scenes ({kinds}seed {seed}, {config.height}x{config.width})"
    return DepthBenchmark("synthetic", "", entries, load, display_name=name, split=f"seed-{seed}")


# ----------------------------------------------------------------------------------------------------------------------
# DA-2K
# ----------------------------------------------------------------------------------------------------------------------


class DA2KSample(NamedTuple):
    """One DA-2K image: `(H, W, 3)` uint8 ``image``, its annotated ``pairs`` and its ``id`` (the annotation key)."""

    image: np.ndarray
    pairs: list[dict[str, Any]]
    id: str


@dataclass
class DA2KBenchmark:
    """DA-2K relative-depth pairs: ``annotations.json`` = {image_path: [{"point1": [h, w], "point2": [h, w],
    "closer_point": "point1"}]}, images relative to the folder. Scene type = first path component of the key."""

    path: str
    annotations: dict[str, list[dict[str, Any]]]
    kind: str = "da2k"
    display_name: str = "DA-2K"
    split: str = "test"

    def __post_init__(self) -> None:
        if not self.annotations:
            raise ValueError(f"da2k:{self.path}: empty benchmark, annotations.json has no images")
        self.keys = sorted(self.annotations)

    def __len__(self) -> int:
        return len(self.keys)

    @staticmethod
    def scene_type(key: str) -> str:
        parts = Path(key).parts
        return parts[0] if len(parts) > 1 else "(root)"

    def __getitem__(self, index: int) -> DA2KSample:
        key = self.keys[index]
        image_path = Path(self.path) / key
        if not image_path.is_file():
            raise BadSampleError("missing file", f"da2k:{self.path}: missing image file {image_path}", key)
        try:
            image = read_rgb(image_path)
        except OSError as error:
            raise BadSampleError("corrupt image", f"{image_path}: unreadable image: {error}", key) from error
        return DA2KSample(image=image, pairs=self.annotations[key], id=key)

    def iter_samples(self) -> Iterator[DA2KSample | BadSampleError]:
        for index in range(len(self)):
            try:
                yield self[index]
            except BadSampleError as error:
                yield error


def da2k(path: Path, options: dict[str, str]) -> DA2KBenchmark:
    root = _require_dir(path, "da2k")
    annotation_file = root / options.pop("annotations", "annotations.json")
    if not annotation_file.is_file():
        raise FileNotFoundError(f"da2k: {annotation_file} not found")
    try:
        annotations = json.loads(annotation_file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{annotation_file}: invalid JSON: {error}") from error
    if not isinstance(annotations, dict) or not all(isinstance(v, list) for v in annotations.values()):
        raise ValueError(f"{annotation_file}: expected {{image_path: [pair, ...]}}, got {type(annotations).__name__}")
    return DA2KBenchmark(str(path), annotations)


# ----------------------------------------------------------------------------------------------------------------------
# Registry and spec parsing
# ----------------------------------------------------------------------------------------------------------------------

ADAPTERS: dict[str, Callable[..., DepthBenchmark | DA2KBenchmark]] = {
    "rgbd": rgbd_folder,
    "nyu": nyu,
    "kitti": kitti,
    "eth3d": eth3d,
    "diode": diode,
    "sintel": sintel,
    "hf": hf_dataset,
    "da2k": da2k,
    "synthetic": synthetic_scenes,
}
NO_PATH_KINDS = ("synthetic",)  # generated, not read: `KIND:` or `KIND:?options`


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Splits ``KIND:PATH?key=value&...`` into ``(kind, path, options)``."""
    kind, sep, rest = spec.partition(":")
    if not sep or not (rest or kind.strip().lower() in NO_PATH_KINDS):
        raise ValueError(f"benchmark must look like KIND:PATH (kinds: {sorted(ADAPTERS)}), got {spec!r}")
    kind = kind.strip().lower()
    if kind not in ADAPTERS:
        raise ValueError(f"unknown benchmark kind {kind!r} in {spec!r}; known kinds: {sorted(ADAPTERS)}")
    path, _, query = rest.partition("?")
    return kind, path, dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))


def load_benchmark(spec: str) -> DepthBenchmark | DA2KBenchmark:
    """Builds a benchmark from ``KIND:PATH[?options]``.

    A relative PATH is tried from the working directory, then from the repository root (so the shipped default
    ``rgbd:assets/rgbd`` works from anywhere). Common options: ``min_depth``, ``max_depth``, ``limit``.

    Raises:
        ValueError: bad spec, unknown option, empty benchmark. FileNotFoundError: missing folder or split file.
    """
    kind, path, options = parse_spec(spec)
    overrides = {key: float(options.pop(key)) for key in ("min_depth", "max_depth") if key in options}
    limit = int(options.pop("limit")) if "limit" in options else None
    if kind in ("hf", *NO_PATH_KINDS):
        benchmark = ADAPTERS[kind](path, options)
    else:
        local = Path(path).expanduser()
        if not local.is_absolute() and not local.exists() and (REPO_ROOT / local).exists():
            local = REPO_ROOT / local
        benchmark = ADAPTERS[kind](local, options)
    if options:
        raise ValueError(f"{spec}: unknown option(s) {sorted(options)} for kind {kind!r}")
    if isinstance(benchmark, DepthBenchmark):
        for key, value in overrides.items():
            setattr(benchmark, key, value)
        if limit is not None:
            benchmark.entries = benchmark.entries[:limit]
        benchmark.__post_init__()  # re-validate range and emptiness after the overrides
    elif overrides or limit is not None:
        if overrides:
            raise ValueError(f"{spec}: min_depth/max_depth do not apply to DA-2K")
        benchmark.keys = benchmark.keys[:limit]
    logger.info("benchmark %s: %d samples", spec, len(benchmark))
    return benchmark
