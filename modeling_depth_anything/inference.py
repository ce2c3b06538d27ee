"""Inference building blocks: load a model with the fast path, batch images by size, write outputs, process videos.

What the model predicts. A relative model (every V1/V2 release but the metric ones) predicts *affine-invariant
inverse depth*: `disparity = a / depth + b` for an unknown scale `a > 0` and shift `b` per image. Large values are
near. It is not depth, and not even inverse depth until `a` and `b` are known (from a few metric points, a stereo
pair, or a metric model). A metric model (`config.depth_estimation_type == "metric"`) predicts depth in metres.

Outputs (`OUTPUT_FORMATS`), per image `name`:
- `color`: `name_depth.png`, the map through a matplotlib colormap (Spectral_r by default: red = near).
- `png16`: `name_depth16.png`, 16-bit grey. Relative models: the disparity normalised to 0..65535 over the map's
  robust range (white = near). Metric models: depth in millimetres (65535 = 65.5 m or farther).
- `npy`: `name_depth.npy`, float32 (height, width), the raw prediction at the input's size (disparity, or metres).
- `side_by_side`: `name_side_by_side.png`, the input and the colourised map next to each other.
- `ply`: `name.ply`, a coloured point cloud in the camera frame (x right, y down, z forward), see `depth_to_points`
  and `relative_disparity_to_depth` for how a relative disparity becomes a (scaled) depth.

Fast path (`resolve_precision`): bf16 weights on GPUs that support bf16 and on CPUs with AVX-512-bf16 or AMX, plus
channels-last convolutions and SDPA attention (DINOv2's default); `torch.compile` on request. Videos share one
normalisation range over a sliding window of frames (`VideoRangeTracker`) so the colours do not flicker.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .image_processing_depth_anything import (
    MIN_IMAGE_SIDE,
    DepthAnythingImageProcessor,
    load_image,
    resize_output_size,
    to_rgb_float,
)
from .modeling_depth_anything import DepthAnythingForDepthEstimation

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = ("color", "png16", "npy", "side_by_side", "ply")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
DEFAULT_FIELD_OF_VIEW = 60.0  # degrees, horizontal; a typical phone/webcam lens when nothing better is known
ROBUST_PERCENTILES = (2.0, 98.0)


# --------------------------------------------------------------------------------------------------------------------
# Device and precision


def resolve_device(device: str = "auto") -> torch.device:
    """`"auto"` picks CUDA, then MPS, then CPU; any other string is passed to `torch.device`."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r} ({error})") from error


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matmul (AVX-512-bf16 or AMX), where bf16 is ~4x faster than fp32.

    Read from /proc/cpuinfo (Linux); `torch.backends.cpu.get_cpu_capability()` reports only the vector ISA
    ("AVX512"), not the bf16 extension, except for "AMX" builds/CPUs.
    """
    capability = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else ""
    if "AMX" in capability.upper():
        return True
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Weight and activation dtype: `"auto"` gives bf16 where the hardware runs it natively, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_supports_bf16():
            return torch.bfloat16
        return torch.float32
    if precision == "float16" and device.type == "cpu":
        raise ValueError("precision 'float16' is slow or unsupported on CPU; use 'bfloat16' or 'float32'")
    return getattr(torch, precision)


# --------------------------------------------------------------------------------------------------------------------
# Model loading


def load_model_and_processor(
    name_or_path: str | os.PathLike, input_size: int | None = None
) -> tuple[DepthAnythingForDepthEstimation, DepthAnythingImageProcessor]:
    """Load our model class and processor from a `save_pretrained` folder or a Hub id (e.g. the `*-hf` releases).

    Raises `FileNotFoundError` naming the path when a local folder is missing or holds no `config.json`, and
    `OSError` with the Hub's reason when a Hub id cannot be resolved (offline, unknown repository).
    A folder without `preprocessor_config.json` gets the default processor (518, the authors' resizing).
    """
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        if not path.is_dir():
            raise FileNotFoundError(f"{name}: model folder not found (give a save_pretrained folder or a Hub id)")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{name}: no config.json in this folder; is it a save_pretrained model folder?")
        name = str(path)
    try:
        model = DepthAnythingForDepthEstimation.from_pretrained(name)
    except OSError as error:
        raise OSError(f"{name}: cannot load the model ({error})") from error
    processor_file = path / "preprocessor_config.json" if path.is_dir() else None
    try:
        if processor_file is None or processor_file.is_file():
            processor = DepthAnythingImageProcessor.from_pretrained(name)
        else:
            processor = DepthAnythingImageProcessor()
    except OSError:
        logger.warning("%s: no preprocessor_config.json; using the default processor (size 518)", name)
        processor = DepthAnythingImageProcessor()
    if input_size is not None:
        if input_size < 14:
            raise ValueError(f"input_size must be >= 14, got {input_size}")
        processor.size = int(input_size)
    return model, processor


MATMUL_ATTENTION = "depth_anything_matmul"


def matmul_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention as matmul -> softmax -> matmul per (image, head), for bf16 on CPU (a transformers attention function).

    query, key, value: (batch, heads, tokens, head_dim). Returns ((batch, tokens, heads, head_dim), None).
    On CPUs with AVX-512-bf16, torch's fused SDPA kernel runs bf16 no faster than fp32 (37 ms vs 35 ms per V2-S
    layer at 518x518, one core), while bf16 matmuls run near the matmul peak. One (image, head) at a time keeps the
    (tokens x tokens) scores small enough to stay in cache: per V2-S layer, one core, this takes 25 ms at 518x518
    (SDPA 37), 47 ms at 518x686 (SDPA 65, all heads at once 79), 106 ms for 4 images at 518x518 (SDPA 149).
    The scale is applied to the query (tokens x head_dim) rather than to the scores (tokens x tokens).
    """
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    query = query * scaling
    if attention_mask is not None:  # not used by DINOv2; kept general with the all-heads-at-once form
        scores = torch.matmul(query, key.transpose(-1, -2)) + attention_mask  # (batch, heads, tokens, tokens)
        output = torch.matmul(torch.softmax(scores, dim=-1), value)  # (batch, heads, tokens, head_dim)
        return output.transpose(1, 2).contiguous(), None
    output = torch.empty_like(query)  # (batch, heads, tokens, head_dim)
    for image in range(query.shape[0]):
        for head in range(query.shape[1]):
            scores = torch.mm(query[image, head], key[image, head].transpose(0, 1))  # (tokens, tokens)
            torch.mm(torch.softmax(scores, dim=-1), value[image, head], out=output[image, head])
    return output.transpose(1, 2).contiguous(), None  # (batch, tokens, heads, head_dim)


def _register_matmul_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(MATMUL_ATTENTION, matmul_attention)


def set_attention(model: torch.nn.Module, implementation: str) -> None:
    """Point every sub-config's `_attn_implementation` (the DINOv2 layers read it at call time) to `implementation`."""
    if implementation == MATMUL_ATTENTION:
        _register_matmul_attention()
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation") and getattr(config, "model_type", "") == "dinov2":
            config._attn_implementation = implementation


def prepare_model(
    model: DepthAnythingForDepthEstimation,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = True,
    compile: bool = False,
    attention: str = "auto",
) -> torch.nn.Module:
    """Move the model to `device`/`dtype` for inference: eval mode, channels-last convolutions, attention choice,
    optional compile.

    bf16 *weights* are used rather than autocast: on CPU autocast re-casts every weight on every call, and the
    position-embedding interpolation already runs in fp32 inside the model. `attention="auto"` keeps SDPA except for
    reduced precision on CPU, where `matmul_attention` is faster; `"sdpa"`, `"eager"` or `MATMUL_ATTENTION` force one.
    """
    model = model.eval().to(device=device, dtype=dtype)
    if attention == "auto":
        attention = MATMUL_ATTENTION if device.type == "cpu" and dtype != torch.float32 else None
    if attention is not None:
        set_attention(model, attention)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model = torch.compile(model)  # recompiles once per new input size, then marks sizes dynamic
    return model


# --------------------------------------------------------------------------------------------------------------------
# Prediction


@dataclass
class DepthPrediction:
    """One image's result.

    Attributes:
        depth: float32 (height, width) at the input's size: relative disparity (large = near) or metres.
        image: float32 (height, width, 3) RGB input in [0, 1] (for side-by-side and point-cloud colours).
        is_metric: whether `depth` is metric depth in metres.
        name: the input's name (file path or a label).
    """

    depth: np.ndarray
    image: np.ndarray
    is_metric: bool
    name: str = ""


@dataclass
class DepthEstimator:
    """Runs a prepared model on images: resize, batch images of equal resized size together, post-process back.

    Images that resize to the same size share a batch, so nothing is padded and every prediction is the one the
    image would get alone. Use `DepthEstimator.from_pretrained(...)` for the usual set-up.
    """

    model: torch.nn.Module
    processor: DepthAnythingImageProcessor
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    batch_size: int = 4
    interpolation: str | None = None
    channels_last: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        device: str = "auto",
        precision: str = "auto",
        fast: bool = True,
        compile: bool = False,
        batch_size: int = 4,
        input_size: int | None = None,
        interpolation: str | None = None,
    ) -> DepthEstimator:
        """Load a folder or Hub id. `fast=False` gives the plain fp32, contiguous-memory model."""
        torch_device = resolve_device(device)
        dtype = resolve_precision(precision if fast else "float32", torch_device)
        model, processor = load_model_and_processor(name_or_path, input_size=input_size)
        model = prepare_model(model, torch_device, dtype, channels_last=fast, compile=compile)
        logger.info("model on %s in %s (fast path %s)", torch_device, str(dtype).removeprefix("torch."),
                    "on" if fast else "off")
        return cls(model, processor, torch_device, dtype, batch_size, interpolation, channels_last=fast)

    @property
    def is_metric(self) -> bool:
        model = getattr(self.model, "_orig_mod", self.model)
        return model.config.depth_estimation_type == "metric"

    @torch.inference_mode()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(batch, 3, height, width) normalised pixels -> (batch, height, width) float32 predictions."""
        pixel_values = pixel_values.to(self.device, self.dtype)
        if self.channels_last:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        return self.model(pixel_values=pixel_values).predicted_depth.float()

    def predict_arrays(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None) -> list[DepthPrediction]:
        """Predict for float (height, width, 3) RGB images in [0, 1]; returns results in input order."""
        names = list(names) if names is not None else [f"image {index}" for index in range(len(images))]
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            height, width = image.shape[:2]
            key = resize_output_size(height, width, self.processor.size, self.processor.ensure_multiple_of,
                                     self.processor.resize_policy) if self.processor.do_resize else (height, width)
            groups.setdefault(key, []).append(index)
        results: list[DepthPrediction | None] = [None] * len(images)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                inputs = self.processor([images[index] for index in chunk], return_tensors="pt")
                predicted = self.forward(inputs["pixel_values"])  # (chunk, height, width)
                sizes = [images[index].shape[:2] for index in chunk]
                maps = self.processor.post_process_depth_estimation(
                    predicted.cpu(), target_sizes=sizes, interpolation=self.interpolation
                )
                for index, output in zip(chunk, maps, strict=True):
                    results[index] = DepthPrediction(
                        depth=output["predicted_depth"].numpy().astype(np.float32, copy=False),
                        image=images[index],
                        is_metric=self.is_metric,
                        name=names[index],
                    )
        return results  # type: ignore[return-value]

    def predict(self, images: Sequence) -> list[DepthPrediction]:
        """Predict for images given as paths, PIL images, arrays or tensors (anything `to_rgb_float` takes)."""
        arrays = [to_rgb_float(image) for image in images]
        names = [os.fspath(image) if isinstance(image, (str, os.PathLike)) else f"image {i}" for i, image in enumerate(images)]
        return self.predict_arrays(arrays, names)


# --------------------------------------------------------------------------------------------------------------------
# Collecting inputs


@dataclass
class InputItem:
    """A file to process. `relative` is the output name stem (subfolders kept for folder inputs); `explicit` is
    True for files the user named (their failure is an error) and False for files found in a folder or glob."""

    path: Path
    relative: Path
    explicit: bool

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_EXTENSIONS


def collect_inputs(inputs: Iterable[str], recursive: bool = False) -> list[InputItem]:
    """Expand files, folders and glob patterns into input items, in a stable order.

    Raises `FileNotFoundError` naming the path when a named file or folder does not exist or a pattern matches
    nothing. Folders contribute their image and video files (by extension); other files in them are ignored.
    """
    import glob

    items: list[InputItem] = []
    known = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    for entry in inputs:
        path = Path(entry).expanduser()
        if any(char in entry for char in "*?["):
            matches = sorted(Path(match) for match in glob.glob(os.path.expanduser(entry), recursive=True))
            files = [match for match in matches if match.is_file() and match.suffix.lower() in known]
            if not files:
                raise FileNotFoundError(f"{entry}: the pattern matches no image or video files")
            items.extend(InputItem(match, Path(match.stem), explicit=False) for match in files)
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(match for match in path.glob(pattern) if match.is_file() and match.suffix.lower() in known)
            if not files:
                logger.warning("%s: no image or video files in this folder", entry)
            items.extend(InputItem(match, match.relative_to(path).with_suffix(""), explicit=False) for match in files)
        elif path.is_file():
            items.append(InputItem(path, Path(path.stem), explicit=True))
        else:
            raise FileNotFoundError(f"{entry}: no such file or folder")
    seen: dict[Path, int] = {}
    for item in items:  # two inputs with the same name (e.g. a.jpg and a.png) must not overwrite each other
        count = seen.get(item.relative, 0)
        seen[item.relative] = count + 1
        if count:
            item.relative = item.relative.with_name(f"{item.relative.name}_{count}")
    return items


# --------------------------------------------------------------------------------------------------------------------
# Output writers


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


def colorize(values: np.ndarray, cmap: str = "Spectral_r", value_range: tuple[float, float] | None = None) -> np.ndarray:
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
    vertex = np.empty(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                          ("red", "u1"), ("green", "u1"), ("blue", "u1")])
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
    count = next(int(line.split()[-1]) for line in data[:end].decode("ascii").splitlines() if line.startswith("element vertex"))
    vertex = np.frombuffer(data[end:], dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                              ("red", "u1"), ("green", "u1"), ("blue", "u1")], count=count)
    points = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
    return points, np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1)


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
        depth = prediction.depth if prediction.is_metric else relative_disparity_to_depth(prediction.depth, self.depth_ratio)
        points, pixels = depth_to_points(depth, focal, self.ply_stride)
        colors = to_uint8(prediction.image)[pixels[:, 0], pixels[:, 1]]
        write_ply(path, points, colors)
        return Path(path)

    @staticmethod
    def _save_image(array: np.ndarray, path: str) -> Path:
        Image.fromarray(array).save(path)
        return Path(path)


# --------------------------------------------------------------------------------------------------------------------
# Video


class VideoRangeTracker:
    """One normalisation range per frame, shared over a centred window of frames, so colours do not flicker.

    Each frame's robust range is its (2 %, 98 %) percentile pair; frame t is shown with the median of the lows and
    of the highs over frames [t - window // 2, t + window // 2]. Per-frame min-max normalisation (what most demos
    do) rescales every frame on its own and makes the colours of static objects pulse. Frames are buffered until
    `window // 2` later frames are known; `push` returns the frames that are ready, `flush` the rest.
    """

    def __init__(self, window: int = 32) -> None:
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer (frames), got {window!r}")
        self.half = window // 2
        self.ranges: deque[tuple[float, float]] = deque()
        self.pending: deque[tuple[int, object]] = deque()
        self.first_index = 0  # frame index of ranges[0]
        self.count = 0

    def _range(self, index: int) -> tuple[float, float]:
        start, stop = index - self.half - self.first_index, index + self.half + 1 - self.first_index
        window = list(self.ranges)[max(start, 0) : stop]
        low = float(np.median([value[0] for value in window]))
        high = float(np.median([value[1] for value in window]))
        return low, high if high > low else low + 1.0

    def push(self, values: np.ndarray, payload: object) -> list[tuple[object, tuple[float, float]]]:
        """Add a frame's display map (high = near) with any payload; returns [(payload, range)] ready to write."""
        self.ranges.append(robust_range(values))
        self.pending.append((self.count, payload))
        self.count += 1
        ready = []
        while self.pending and self.pending[0][0] + self.half < self.count:
            ready.append(self._pop())
        return ready

    def flush(self) -> list[tuple[object, tuple[float, float]]]:
        return [self._pop() for _ in range(len(self.pending))]

    def _pop(self) -> tuple[object, tuple[float, float]]:
        index, payload = self.pending.popleft()
        value_range = self._range(index)
        while self.first_index < index - self.half:  # ranges older than any future window
            self.ranges.popleft()
            self.first_index += 1
        return payload, value_range


def read_video(path: str | os.PathLike) -> tuple[Iterator[np.ndarray], float, int]:
    """Open a video with PyAV: (iterator of uint8 (height, width, 3) RGB frames, frames per second, frame count
    or 0 when the container does not say). Raises `ValueError` naming the file when it is not a readable video."""
    try:
        import av
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError("video needs PyAV: pip install 'depth-anything-hf[video]'") from error
    path = os.fspath(path)
    try:
        container = av.open(path)
        stream = container.streams.video[0]
    except (av.error.FFmpegError, IndexError, OSError) as error:
        raise ValueError(f"{path}: not a readable video ({error})") from error
    fps = float(stream.average_rate or stream.guessed_rate or 25)
    frames = int(stream.frames or 0)

    def iterate() -> Iterator[np.ndarray]:
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as error:
            raise ValueError(f"{path}: video decoding failed ({error})") from error
        finally:
            container.close()

    return iterate(), fps, frames


class VideoWriter:
    """Writes uint8 RGB frames to an .mp4 (H.264 when available, else MPEG-4 Part 2) with PyAV."""

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        import av

        self.path = os.fspath(path)
        self.container = av.open(self.path, mode="w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=max(1, round(fps)))
        self.stream.pix_fmt = "yuv420p"
        self.opened = False

    def write(self, frame: np.ndarray) -> None:
        import av

        if not self.opened:
            # yuv420p needs even sizes: crop a trailing odd row/column
            self.stream.height, self.stream.width = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
            self.opened = True
        frame = np.ascontiguousarray(frame[: self.stream.height, : self.stream.width])
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self.container.mux(packet)

    def close(self) -> None:
        if self.opened:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()


def predict_video(
    estimator: DepthEstimator,
    path: str | os.PathLike,
    writer: OutputWriter,
    stem: str | os.PathLike,
    window: int = 32,
    max_frames: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, object]:
    """Depth for every frame of a video, frames batched, one normalisation range per window (no flicker).

    Writes `stem_depth.mp4` (format `color`) and `stem_side_by_side.mp4` (`side_by_side`); `png16`, `npy` and
    `ply` go per frame into the folder `stem_frames/` as `frame_000000_*`. Returns {"frames", "fps", "outputs"}.
    """
    frames, fps, _ = read_video(path)
    base = writer.output_dir / Path(stem)
    base.parent.mkdir(parents=True, exist_ok=True)
    videos = {name: VideoWriter(f"{base}_{suffix}.mp4", fps)
              for name, suffix in (("color", "depth"), ("side_by_side", "side_by_side")) if name in writer.formats}
    per_frame = [name for name in writer.formats if name in ("png16", "npy", "ply")]
    frame_writer = OutputWriter(Path(f"{base}_frames"), per_frame, writer.cmap, writer.focal_length,
                                writer.depth_ratio, writer.ply_stride) if per_frame else None
    tracker = VideoRangeTracker(window)
    count = 0

    def emit(ready: list[tuple[object, tuple[float, float]]]) -> None:
        for (index, prediction), value_range in ready:
            shown = display_map(prediction)
            colored = colorize(shown, writer.cmap, value_range)
            if "color" in videos:
                videos["color"].write(colored)
            if "side_by_side" in videos:
                videos["side_by_side"].write(side_by_side(prediction.image, colored))
            if frame_writer is not None:
                png_range = None if prediction.is_metric else value_range
                frame_writer.write(prediction, f"frame_{index:06d}", png_range)

    def run(batch: list[np.ndarray], first: int) -> None:
        arrays = [frame.astype(np.float32) / 255.0 for frame in batch]
        for offset, prediction in enumerate(estimator.predict_arrays(arrays)):
            emit(tracker.push(display_map(prediction), (first + offset, prediction)))
        if progress is not None:
            progress(len(batch))

    try:
        batch: list[np.ndarray] = []
        for frame in frames:
            if max_frames is not None and count >= max_frames:
                break
            batch.append(frame)
            count += 1
            if len(batch) == estimator.batch_size:
                run(batch, count - len(batch))
                batch = []
        if batch:
            run(batch, count - len(batch))
        emit(tracker.flush())
    finally:
        for video in videos.values():
            video.close()
    if count == 0:
        raise ValueError(f"{os.fspath(path)}: the video has no frames")
    outputs = [Path(video.path) for video in videos.values()] + ([frame_writer.output_dir] if frame_writer else [])
    return {"frames": count, "fps": fps, "outputs": outputs}


def image_iterator(items: Sequence[InputItem]) -> Iterator[tuple[InputItem, np.ndarray | Exception]]:
    """Load images one by one; yields (item, float RGB array) or (item, the exception that made it unreadable)."""
    for item in items:
        try:
            array = to_rgb_float(load_image(item.path))
        except (ValueError, OSError) as error:
            yield item, error
            continue
        height, width = array.shape[:2]
        if min(height, width) < MIN_IMAGE_SIDE:
            yield item, ValueError(f"{item.path}: {width}x{height} pixels is too small (at least "
                                   f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE})")
        else:
            yield item, array


__all__ = [
    "DepthEstimator",
    "DepthPrediction",
    "OutputWriter",
    "OUTPUT_FORMATS",
    "VideoRangeTracker",
    "collect_inputs",
    "colorize",
    "cpu_supports_bf16",
    "depth_to_points",
    "load_model_and_processor",
    "predict_video",
    "prepare_model",
    "relative_disparity_to_depth",
    "resolve_precision",
    "write_ply",
]
