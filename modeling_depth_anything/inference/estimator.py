"""The one predictor: load a model with the fast path, batch images by resized size, post-process back.

Used by the `depth-anything` CLI, pseudo-labelling, evaluation (`evaluation.runner`, `evaluation.metrics`), the demo
and the main job. Processor -> model -> post-process is written here and nowhere else; so is model loading
(`load_model_and_processor`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..image_processing_depth_anything import (
    MIN_IMAGE_SIDE,
    DepthAnythingImageProcessor,
    resize_output_size,
    to_rgb_float,
)
from ..modeling_depth_anything import DepthAnythingForDepthEstimation
from .attention import MATMUL_ATTENTION, set_attention
from .backends import OnnxRuntimeEngine, check_backend, compile_model, default_onnx_cache, model_cache_key
from .precision import resolve_device, resolve_precision

logger = logging.getLogger(__name__)

PROCESSOR_FILE = "preprocessor_config.json"


def _is_local(name: str, path: Path) -> bool:
    """A local folder rather than a Hub id (`owner/name`): it exists, or it cannot be a Hub id."""
    return path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1


def _read_json_file(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; `ValueError` naming the file and the JSON problem (line and column)."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON ({error})") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a UTF-8 text file ({error})") from error
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(content).__name__}")
    return content


def load_model_and_processor(
    name_or_path: str | os.PathLike, input_size: int | None = None
) -> tuple[torch.nn.Module, Any]:
    """Load a model and its processor from a `save_pretrained` folder or a Hub id (e.g. the `*-hf` releases).

    Depth Anything checkpoints (`model_type: "depth_anything"`) load with this package's classes; any other depth
    model (DPT, ZoeDepth, ...) with transformers' `AutoModelForDepthEstimation` / `AutoImageProcessor`.

    Errors name the folder or file: `FileNotFoundError` when a local folder is missing or holds no `config.json`;
    `ValueError` for a `config.json` or `preprocessor_config.json` that is not valid JSON (with the JSON problem) or
    holds a bad value; `OSError` with the Hub's reason when a Hub id cannot be resolved (offline, unknown repository).
    A folder without `preprocessor_config.json` gets the default processor (518, the authors' resizing), with a
    warning.
    """
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    local = _is_local(name, path)
    if local:
        if not path.is_dir():
            raise FileNotFoundError(f"{name}: model folder not found (give a save_pretrained folder or a Hub id)")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{name}: no config.json in this folder; is it a save_pretrained model folder?")
        name = str(path)
        model_type = _read_json_file(path / "config.json").get("model_type")
        if (path / PROCESSOR_FILE).is_file():
            _read_json_file(path / PROCESSOR_FILE)  # a malformed file is an error, never silently the defaults
    else:
        from transformers import PretrainedConfig

        try:  # the raw dict: no config class (and none of the built-in class's strict validation) is involved
            model_type = PretrainedConfig.get_config_dict(name)[0].get("model_type")
        except OSError as error:
            raise OSError(f"{name}: cannot load the model ({error})") from error
    where = f"{name}/config.json" if local else name
    if model_type != "depth_anything":
        return _load_other_depth_model(name, where, input_size)
    try:
        model = DepthAnythingForDepthEstimation.from_pretrained(name)
    except (ValueError, TypeError) as error:  # a bad value in config.json (the config validates on creation)
        raise ValueError(f"{where}: {error}") from error
    except OSError as error:
        raise OSError(f"{name}: cannot load the model ({error})") from error
    processor_where = f"{name}/{PROCESSOR_FILE}" if local else f"{name} ({PROCESSOR_FILE})"
    try:
        if local and not (path / PROCESSOR_FILE).is_file():
            logger.warning("%s: no %s; using the default processor (size 518)", name, PROCESSOR_FILE)
            processor = DepthAnythingImageProcessor()
        else:
            processor = DepthAnythingImageProcessor.from_pretrained(name)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{processor_where}: {error}") from error
    except OSError as error:  # Hub repositories without a processor file
        logger.warning("%s: no usable %s (%s); using the default processor (size 518)", name, PROCESSOR_FILE, error)
        processor = DepthAnythingImageProcessor()
    if input_size is not None:
        if input_size < MIN_IMAGE_SIDE:
            raise ValueError(f"input_size must be >= {MIN_IMAGE_SIDE}, got {input_size}")
        processor.size = int(input_size)
    return model, processor


def _load_other_depth_model(name: str, where: str, input_size: int | None) -> tuple[torch.nn.Module, Any]:
    """A non-Depth-Anything depth model through transformers' Auto classes (evaluation compares against them)."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    try:
        model = AutoModelForDepthEstimation.from_pretrained(name)
        processor = AutoImageProcessor.from_pretrained(name)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{where}: not a depth-estimation model transformers can load ({error})") from error
    if input_size is not None:
        size = getattr(processor, "size", None)
        if isinstance(size, dict) and "shortest_edge" in size:
            processor.size = {"shortest_edge": input_size}
        else:  # DPT-style {"height", "width"} (keep_aspect_ratio scales to fit)
            processor.size = {"height": input_size, "width": input_size}
    logger.info("loaded %s with %s (transformers' classes)", type(model).__name__, type(processor).__name__)
    return model, processor


def prepare_model(
    model: torch.nn.Module,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = True,
    compile: bool = False,
    attention: str = "auto",
) -> torch.nn.Module:
    """Move the model to `device`/`dtype` for inference: eval mode, channels-last convolutions, attention choice,
    optional compile (`backends.compile_model`: inductor with freezing, one graph per input shape).

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
        model = compile_model(model)
    return model


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


def as_rgb_float(image: Any) -> np.ndarray:
    """float32 (height, width, 3) in [0, 1]; arrays already in that form are used as they are (no copy)."""
    if isinstance(image, np.ndarray) and image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3:
        return image
    return to_rgb_float(image)


@dataclass
class DepthEstimator:
    """Runs a prepared model on images: resize, batch images of equal resized size together, post-process back.

    Images that resize to the same size share a batch, so nothing is padded and every prediction is the one the
    image would get alone. `DepthEstimator.from_pretrained(...)` loads and sets up the fast path;
    `DepthEstimator.from_model(model, processor)` wraps a model already in memory (e.g. during training) as it is.
    `runner`, when set (the onnxruntime backend), replaces the model call in `forward`; nothing else changes.
    """

    model: torch.nn.Module
    processor: Any
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    batch_size: int = 4
    interpolation: str | None = None
    channels_last: bool = True
    backend: str = "torch"
    runner: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        check_backend(self.backend)
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
        backend: str = "torch",
        onnx_cache: str | os.PathLike | None = "default",
    ) -> DepthEstimator:
        """Load a folder or Hub id. `precision="auto"` follows the hardware (`inference.precision`); `fast=False`
        gives the plain fp32, contiguous-memory model.

        `backend` (`inference.backends`): `"torch"` (eager), `"compile"` (`torch.compile` with inductor freezing;
        `compile=True` is the older spelling of it) or `"onnxruntime"` (CPU, float32 whatever `precision` says
        unless it names another dtype, which is an error; .onnx files cached per input size under `onnx_cache`:
        `"default"` = `$HF_HOME/depth_anything/onnx`, `None` = no files kept).
        """
        check_backend(backend)
        if compile and backend not in ("torch", "compile"):
            raise ValueError(f"compile=True is backend 'compile'; it cannot be combined with backend {backend!r}")
        backend = "compile" if compile else backend
        torch_device = resolve_device(device)
        if backend == "onnxruntime":
            if torch_device.type != "cpu":
                raise ValueError(f"backend 'onnxruntime' runs on the CPU, got device {str(torch_device)!r}")
            if precision not in ("auto", "float32", "fp32", "no"):
                raise ValueError(f"backend 'onnxruntime' runs float32, got precision {precision!r}")
            precision = "float32"
        dtype = resolve_precision(precision if fast else "float32", torch_device)
        model, processor = load_model_and_processor(name_or_path, input_size=input_size)
        runner = None
        if backend == "onnxruntime":
            model = model.eval().float()
            cache = None
            if onnx_cache is not None:
                root = default_onnx_cache() if onnx_cache == "default" else Path(onnx_cache).expanduser()
                cache = root / model_cache_key(name_or_path, model)
            runner = OnnxRuntimeEngine(model, cache)
        else:
            model = prepare_model(model, torch_device, dtype, channels_last=fast, compile=backend == "compile")
        logger.info(
            "model on %s in %s (fast path %s, backend %s)",
            torch_device,
            str(dtype).removeprefix("torch."),
            "on" if fast else "off",
            backend,
        )
        channels_last = fast and backend != "onnxruntime"
        return cls(model, processor, torch_device, dtype, batch_size, interpolation, channels_last, backend, runner)

    @classmethod
    def from_model(
        cls, model: torch.nn.Module, processor: Any, batch_size: int = 4, interpolation: str | None = None
    ) -> DepthEstimator:
        """Wrap a model in memory without moving or converting it: it runs on its own device and dtype."""
        parameter = next(iter(model.parameters()), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
        return cls(model, processor, device, dtype, batch_size, interpolation, channels_last=False)

    @property
    def is_metric(self) -> bool:
        model = getattr(self.model, "_orig_mod", self.model)
        return getattr(getattr(model, "config", None), "depth_estimation_type", "relative") == "metric"

    @torch.inference_mode()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(batch, 3, height, width) normalised pixels -> (batch, height, width) float32 predictions."""
        pixel_values = pixel_values.to(self.device, self.dtype)
        if self.runner is not None:
            return self.runner(pixel_values).float()
        if self.channels_last:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        was_training = getattr(self.model, "training", False)
        if was_training:  # a model wrapped from training: predict without dropout, then hand it back as it was
            self.model.eval()
        try:
            return self.model(pixel_values=pixel_values).predicted_depth.float()
        finally:
            if was_training:
                self.model.train()

    def _resized_size(self, height: int, width: int) -> tuple[int, int] | None:
        """The model's input size for an image (images sharing it share a batch); None for other processors."""
        processor = self.processor
        if not isinstance(processor, DepthAnythingImageProcessor):
            return None
        if not processor.do_resize:
            return height, width
        return resize_output_size(height, width, processor.size, processor.ensure_multiple_of, processor.resize_policy)

    def preprocess(self, image: Any) -> torch.Tensor | None:
        """One image's (1, 3, height, width) model input, made ahead of `predict_arrays` (pseudo-labelling prepares the
        next images in its prefetch thread while the model runs); `None` where the processor is not this package's
        or the image cannot be processed (`predict_arrays` then processes it, and names the problem)."""
        if not isinstance(self.processor, DepthAnythingImageProcessor):
            return None
        try:
            return self.processor(as_rgb_float(image), return_tensors="pt")["pixel_values"]
        except ValueError:
            return None

    def _predict_chunk(
        self, images: list[np.ndarray], prepared: list[torch.Tensor | None] | None = None
    ) -> list[np.ndarray]:
        """Images of one input size -> float32 (height, width) maps at each image's own size."""
        sizes = [image.shape[:2] for image in images]
        if isinstance(self.processor, DepthAnythingImageProcessor):
            if prepared is not None and all(pixels is not None for pixels in prepared):
                pixel_values = torch.cat(prepared)  # (chunk, 3, height, width): one size, as the processor stacks
            else:
                pixel_values = self.processor(images, return_tensors="pt")["pixel_values"]
            predicted = self.forward(pixel_values).cpu()  # (chunk, height, width)
            maps = self.processor.post_process_depth_estimation(
                predicted, target_sizes=sizes, interpolation=self.interpolation
            )
        else:  # transformers' processors rescale uint8 themselves and post-process a model output
            from transformers.modeling_outputs import DepthEstimatorOutput

            uint8 = [np.round(image * 255.0).clip(0, 255).astype(np.uint8) for image in images]
            inputs = self.processor(images=uint8, return_tensors="pt")
            predicted = self.forward(inputs["pixel_values"]).cpu()
            maps = self.processor.post_process_depth_estimation(
                DepthEstimatorOutput(predicted_depth=predicted), target_sizes=sizes
            )
        return [output["predicted_depth"].float().numpy().astype(np.float32, copy=False) for output in maps]

    def predict_arrays(
        self,
        images: Sequence[Any],
        names: Sequence[str] | None = None,
        prepared: Sequence[torch.Tensor | None] | None = None,
    ) -> list[DepthPrediction]:
        """Predict for RGB images given as arrays (float32 (height, width, 3) in [0, 1] are used as they are; uint8,
        uint16, grey and RGBA arrays and PIL images are converted). Returns results in input order. `prepared`: each
        image's `preprocess` output, made ahead (`None` entries are processed here).

        Raises `ValueError` naming the image when one is smaller than a patch (nothing is predicted then).
        """
        names = list(names) if names is not None else [f"image {index}" for index in range(len(images))]
        arrays = [as_rgb_float(image) for image in images]
        groups: dict[Any, list[int]] = {}
        for index, image in enumerate(arrays):
            height, width = image.shape[:2]
            if min(height, width) < MIN_IMAGE_SIDE:
                raise ValueError(
                    f"{names[index]}: {width}x{height} pixels is too small (at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE})"
                )
            key = self._resized_size(height, width)
            groups.setdefault(key if key is not None else ("alone", index), []).append(index)
        results: list[DepthPrediction | None] = [None] * len(arrays)
        is_metric = self.is_metric
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                ready = None if prepared is None else [prepared[index] for index in chunk]
                maps = self._predict_chunk([arrays[index] for index in chunk], ready)
                for index, depth in zip(chunk, maps, strict=True):
                    results[index] = DepthPrediction(depth, arrays[index], is_metric, names[index])
        return results  # type: ignore[return-value]

    def predict(self, images: Sequence) -> list[DepthPrediction]:
        """Predict for images given as paths, PIL images, arrays or tensors (anything `to_rgb_float` takes)."""
        arrays = [to_rgb_float(image) for image in images]
        names = [
            os.fspath(image) if isinstance(image, (str, os.PathLike)) else f"image {i}"
            for i, image in enumerate(images)
        ]
        return self.predict_arrays(arrays, names)
