"""Depth Anything image processor: load, resize keeping aspect to multiples of 14, normalise; post-process back.

Two resize policies, each reproducing a reference implementation exactly:
- `"lower_bound"` (default, the authors' code): the short side becomes at least `size`, float bicubic resize
  (`torch` bicubic, a = -0.75, no antialiasing: cv2.INTER_CUBIC's kernel, which the original code uses).
- `"minimal"` (transformers' DPTImageProcessor): the scale closest to 1 of the two sides, PIL bicubic on uint8.
Example: a 300x200 (W x H) image becomes 518x784 (H x W) with "lower_bound" and 350x518 with "minimal".

Saved as `preprocessor_config.json` with `image_processor_type: "DPTImageProcessor"` plus an `auto_map`: plain
transformers then loads its DPT processor ("minimal" policy) and `trust_remote_code=True` loads this class (facts §8).
`save_pretrained` also writes an empty `video_preprocessor_config.json`: without it, transformers'
`AutoVideoProcessor` (which `pipeline()` always tries) reads `preprocessor_config.json`, derives a remote
`DepthAnythingVideoProcessor` from the `AutoImageProcessor` entry of its `auto_map`, and asks "Do you wish to run the
custom code? [y/N]" on the plain route (transformers 5.24, `video_processing_auto.py`). The video lookup reads that
file first, finds neither a class nor an `auto_map`, and fails quietly, as it does for transformers' own DPT folders.

Float images must hold intensities in [0, 1] (uint8 covers 0-255, uint16 0-65535); a float image outside that range
(e.g. 0-255 values in a float array, or already normalised pixels) is rejected with a `ValueError`. Unlike
transformers' `DPTImageProcessor`, which divides every input by 255 when `do_rescale=True` and warns only about
inputs that look already rescaled, the scale of an input here follows from its dtype alone.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers.image_processing_base import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor
from transformers.utils import VIDEO_PROCESSOR_NAME

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_POLICIES = ("lower_bound", "minimal")
INTERPOLATIONS = ("bilinear", "nearest", "bicubic")
MIN_IMAGE_SIDE = 14  # one patch: anything smaller carries no depth information
# Float images hold intensities in [0, 1]; this much rounding error (e.g. from a float resize) is tolerated.
FLOAT_RANGE_TOLERANCE = 1e-3


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as an upright PIL image (EXIF orientation applied), with errors that name the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such image file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty")
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: not a readable image ({error})") from error


def to_rgb_float(image: Any) -> np.ndarray:
    """Any supported image to a float32 (height, width, 3) RGB array in [0, 1].

    Handles PIL modes 1/L/LA/P/PA/RGBA/CMYK/I;16/I/F, EXIF orientation (for PIL images), uint8/uint16/float numpy
    arrays in HWC or HW layout, and torch tensors in CHW or HWC layout. Alpha is dropped (composited on black would
    invent depth edges; the colour under transparent pixels is kept).
    """
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    if isinstance(image, Image.Image):
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            array = np.asarray(image, dtype=np.float32)
            scale = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
            array = np.clip(array / scale, 0.0, 1.0)
            return np.repeat(array[..., None], 3, axis=2)
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.is_floating_point() and image.dtype not in (torch.float16, torch.float32, torch.float64):
            image = image.float()  # bfloat16 and the float8 types have no numpy counterpart
        if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
            image = image.permute(1, 2, 0)  # (height, width, channels)
        image = image.numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"unsupported image type {type(image).__name__}; pass a PIL image, numpy array, tensor or path")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"image array must be (height, width[, 1|3|4]), got shape {image.shape}")
    if image.dtype == np.uint8:
        array = image.astype(np.float32) / 255.0
    elif image.dtype == np.uint16:
        array = image.astype(np.float32) / 65535.0
    elif np.issubdtype(image.dtype, np.floating):
        array = image.astype(np.float32)
        if not np.isfinite(array).all():
            raise ValueError("image array contains NaN or inf")
        low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        if low < -FLOAT_RANGE_TOLERANCE or high > 1 + FLOAT_RANGE_TOLERANCE:
            raise ValueError(
                f"float image values must be in [0, 1], got [{low:.4g}, {high:.4g}]; pass 0-255 images as uint8 "
                "(or divide by 255), 0-65535 as uint16, and raw (not normalised) pixels"
            )
    else:
        raise ValueError(f"unsupported image dtype {image.dtype}; use uint8, uint16 or float in [0, 1]")
    array = array[..., :3]  # drop alpha
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


def _constrain(value: float, multiple: int, min_value: int = 0) -> int:
    rounded = round(value / multiple) * multiple
    return math.ceil(value / multiple) * multiple if rounded < min_value else int(rounded)


def resize_output_size(height: int, width: int, size: int, multiple: int, policy: str) -> tuple[int, int]:
    """Output (height, width) for an input of (height, width): aspect kept, both sides multiples of `multiple`."""
    scale_height, scale_width = size / height, size / width
    if policy == "lower_bound":
        scale = max(scale_height, scale_width)
        return _constrain(scale * height, multiple, size), _constrain(scale * width, multiple, size)
    # "minimal": scale as little as possible (transformers' DPT `keep_aspect_ratio`)
    scale = scale_width if abs(1 - scale_width) < abs(1 - scale_height) else scale_height
    return _constrain(scale * height, multiple), _constrain(scale * width, multiple)


class DepthAnythingImageProcessor(BaseImageProcessor):
    r"""
    Args:
        size (`int` or `dict`, *optional*, defaults to 518):
            Target short side (`"lower_bound"`) or target size (`"minimal"`); a `{"height", "width"}` dict is read
            for compatibility with DPT configs (the smaller value is used).
        resize_policy (`str`, *optional*, defaults to `"lower_bound"`):
            `"lower_bound"` (the authors') or `"minimal"` (transformers'); see the module docstring.
        ensure_multiple_of (`int`, *optional*, defaults to 14):
            Both output sides are multiples of it (the patch size).
        image_mean, image_std (`tuple[float]`, *optional*, default to ImageNet's):
            Normalisation after scaling to [0, 1].
        do_resize, do_rescale, do_normalize (`bool`, *optional*, default to `True`):
            Switch the steps off (e.g. for inputs already resized to multiples of 14).
        post_process_interpolation (`str`, *optional*, defaults to `"bilinear"`):
            Default resampling back to the input size: `"bilinear"` (align_corners=True, as V2's code),
            `"nearest"` (sharp depth edges) or `"bicubic"` (transformers'; clamped at 0).
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        size: int | dict = 518,
        resize_policy: str = "lower_bound",
        ensure_multiple_of: int = 14,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        do_resize: bool = True,
        do_rescale: bool = True,
        do_normalize: bool = True,
        post_process_interpolation: str = "bilinear",
        **kwargs,
    ) -> None:
        for key in ("image_processor_type", "processor_class", "keep_aspect_ratio", "resample", "rescale_factor",
                    "do_pad", "size_divisor", "do_reduce_labels"):
            kwargs.pop(key, None)  # DPT-compatibility fields this class writes but derives from its own
        super().__init__(**kwargs)
        if isinstance(size, dict):
            size = min(size.get("height", 518), size.get("width", 518))
        if not isinstance(size, int) or size < MIN_IMAGE_SIDE:
            raise ValueError(f"size must be an integer >= {MIN_IMAGE_SIDE}, got {size!r}")
        if resize_policy not in RESIZE_POLICIES:
            raise ValueError(f"resize_policy must be one of {RESIZE_POLICIES}, got {resize_policy!r}")
        if post_process_interpolation not in INTERPOLATIONS:
            raise ValueError(f"post_process_interpolation must be one of {INTERPOLATIONS}, got {post_process_interpolation!r}")
        if not isinstance(ensure_multiple_of, int) or ensure_multiple_of < 1:
            raise ValueError(f"ensure_multiple_of must be a positive integer, got {ensure_multiple_of!r}")
        self.size = size
        self.resize_policy = resize_policy
        self.ensure_multiple_of = ensure_multiple_of
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.do_resize = do_resize
        self.do_rescale = do_rescale
        self.do_normalize = do_normalize
        self.post_process_interpolation = post_process_interpolation

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        # Written so that transformers' DPTImageProcessor, which plain loading picks, reproduces "minimal" resizing.
        output.update(
            image_processor_type="DPTImageProcessor",
            size={"height": self.size, "width": self.size},
            keep_aspect_ratio=True,
            resample=3,  # PIL bicubic
            rescale_factor=1 / 255,
            do_pad=False,
        )
        return output

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs) -> list[str]:
        """`BaseImageProcessor.save_pretrained` plus an empty `video_preprocessor_config.json` (module docstring).

        An existing `video_preprocessor_config.json` (a real video processor saved to the same folder) is kept.
        """
        if push_to_hub:
            # Upload after every file is written (the base class would snapshot the folder before the stub exists).
            repo_id = kwargs.pop("repo_id", os.fspath(save_directory).rstrip(os.sep).split(os.sep)[-1])
            files = self.save_pretrained(save_directory)
            self.push_to_hub(repo_id, **kwargs)
            return files
        files = super().save_pretrained(save_directory, **kwargs)
        stub = os.path.join(save_directory, VIDEO_PROCESSOR_NAME)
        if os.path.exists(stub):
            logger.info("%s exists; kept (no video-processor stub written)", stub)
        else:
            with open(stub, "w", encoding="utf-8") as file:
                file.write("{}\n")
            files.append(stub)
        return files

    def resize_image(self, image: np.ndarray) -> np.ndarray:
        """Resize one float (height, width, 3) image according to `resize_policy`."""
        height, width = image.shape[:2]
        new_height, new_width = resize_output_size(height, width, self.size, self.ensure_multiple_of, self.resize_policy)
        if (new_height, new_width) == (height, width):
            return image
        if self.resize_policy == "minimal":
            # As DPTImageProcessor: PIL bicubic on the uint8 image (exact for 8-bit inputs).
            pil = Image.fromarray(np.round(image * 255.0).clip(0, 255).astype(np.uint8))
            return np.asarray(pil.resize((new_width, new_height), Image.BICUBIC), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]  # (1, 3, height, width)
        tensor = torch.nn.functional.interpolate(tensor, size=(new_height, new_width), mode="bicubic", align_corners=False)
        return tensor[0].permute(1, 2, 0).numpy()  # (new_height, new_width, 3)

    def preprocess(self, images: Any, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        """Images (one or a list; PIL, numpy, tensors or paths) to `pixel_values` (batch, 3, height, width).

        Images that resize to different sizes are padded bottom/right with zeros (the normalised mean colour) to
        a common size; `resized_sizes` gives each image's own region, which `post_process_depth_estimation` crops
        before resizing back. Padding changes predictions slightly: batch images of one size where it matters.
        """
        for key, value in kwargs.items():
            if key in ("do_resize", "do_rescale", "do_normalize", "size", "resize_policy"):
                raise ValueError(f"pass {key} when creating the processor, not per call (got {key}={value!r})")
        if isinstance(images, (list, tuple)):
            if len(images) == 0:
                raise ValueError("no images given")
        else:
            images = [images]
        arrays, original_sizes = [], []
        for index, image in enumerate(images):
            array = to_rgb_float(image)
            height, width = array.shape[:2]
            if min(height, width) < MIN_IMAGE_SIDE:
                name = f"{image}" if isinstance(image, (str, os.PathLike)) else f"image {index}"
                raise ValueError(f"{name} is {width}x{height} pixels; depth estimation needs at least "
                                 f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}")
            original_sizes.append((height, width))
            arrays.append(self.resize_image(array) if self.do_resize else array)
        tensors = []
        mean, std = torch.tensor(self.image_mean).view(3, 1, 1), torch.tensor(self.image_std).view(3, 1, 1)
        for array in arrays:
            tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)  # (3, height, width)
            if not self.do_rescale:
                tensor = tensor * 255.0
            if self.do_normalize:
                tensor = (tensor - mean) / std
            tensors.append(tensor)
        resized_sizes = [tuple(tensor.shape[1:]) for tensor in tensors]
        max_height, max_width = max(size[0] for size in resized_sizes), max(size[1] for size in resized_sizes)
        pixel_values = torch.zeros(len(tensors), 3, max_height, max_width)
        for index, tensor in enumerate(tensors):
            pixel_values[index, :, : tensor.shape[1], : tensor.shape[2]] = tensor
        data = {"pixel_values": pixel_values}
        if len(set(resized_sizes)) > 1:
            data["resized_sizes"] = torch.tensor(resized_sizes)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def post_process_depth_estimation(
        self,
        outputs: Any,
        target_sizes: Sequence[tuple[int, int]] | torch.Tensor | None = None,
        interpolation: str | None = None,
        resized_sizes: Sequence[tuple[int, int]] | torch.Tensor | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """Predicted maps back to each input's size.

        Args:
            outputs: the model output (`predicted_depth` of shape (batch, height, width)) or that tensor itself.
            target_sizes: one (height, width) per image, usually the original sizes; None keeps the model's size.
            interpolation: `"bilinear"` (default from the config), `"nearest"` or `"bicubic"`.
            resized_sizes: each image's un-padded region (the processor's `resized_sizes`) for padded batches.
        Returns:
            One `{"predicted_depth": (height, width) tensor}` per image; values are never negative.
        """
        interpolation = interpolation or self.post_process_interpolation
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        predicted = outputs if isinstance(outputs, torch.Tensor) else outputs.predicted_depth
        if target_sizes is not None and len(target_sizes) != len(predicted):
            raise ValueError(f"got {len(target_sizes)} target sizes for {len(predicted)} predicted maps")
        results = []
        for index, depth in enumerate(predicted):
            if resized_sizes is not None:
                height, width = (int(v) for v in resized_sizes[index])
                depth = depth[:height, :width]
            if target_sizes is not None:
                size = tuple(int(v) for v in target_sizes[index])
                options = {} if interpolation == "nearest" else {"align_corners": interpolation == "bilinear"}
                depth = torch.nn.functional.interpolate(
                    depth[None, None].float(), size=size, mode=interpolation, **options
                )[0, 0]  # (target_height, target_width)
            results.append({"predicted_depth": depth.clamp(min=0)})
        return results


__all__ = ["DepthAnythingImageProcessor", "IMAGENET_MEAN", "IMAGENET_STD", "load_image", "to_rgb_float"]
