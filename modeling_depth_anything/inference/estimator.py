"""The one predictor: load a model with the fast path, batch images by resized size, post-process back.

Used by the `depth-anything` CLI, pseudo-labelling, evaluation and the experiments."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..image_processing_depth_anything import (
    DepthAnythingImageProcessor,
    resize_output_size,
    to_rgb_float,
)
from ..modeling_depth_anything import DepthAnythingForDepthEstimation
from .attention import MATMUL_ATTENTION, set_attention
from .precision import resolve_device, resolve_precision

logger = logging.getLogger(__name__)


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
        logger.info(
            "model on %s in %s (fast path %s)",
            torch_device,
            str(dtype).removeprefix("torch."),
            "on" if fast else "off",
        )
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

    def predict_arrays(
        self, images: Sequence[np.ndarray], names: Sequence[str] | None = None
    ) -> list[DepthPrediction]:
        """Predict for float (height, width, 3) RGB images in [0, 1]; returns results in input order."""
        names = list(names) if names is not None else [f"image {index}" for index in range(len(images))]
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            height, width = image.shape[:2]
            key = (
                resize_output_size(
                    height, width, self.processor.size, self.processor.ensure_multiple_of, self.processor.resize_policy
                )
                if self.processor.do_resize
                else (height, width)
            )
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
        names = [
            os.fspath(image) if isinstance(image, (str, os.PathLike)) else f"image {i}"
            for i, image in enumerate(images)
        ]
        return self.predict_arrays(arrays, names)
