"""Per-sample transform and batching: decoded sample -> model-ready tensors -> nested batches.

`DepthTransform` (short side -> `size`, random square crop, random flip; image -> ImageNet-normalised tensor, depth ->
disparity normalised to [0, 1] per map with a valid mask) and `collate` (samples -> one part's batch dict).

A batch of the training stages is *nested*: one `collate` dict per named part of the mix, e.g.
``batch["labelled"]["pixel_values"]`` (B, 3, S, S) float32, ``["disparity"]`` (B, S, S) float32 in [0, 1] (parts with
depth), ``["valid_mask"]`` (B, S, S) bool (parts with depth), ``["ids"]`` (list of B str). `batch_to_device` moves such
a batch, `batch_num_images` counts its images.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..image_processing_depth_anything import IMAGENET_MEAN, IMAGENET_STD

PATCH_SIZE = 14


def normalized_pixels(image: Image.Image) -> torch.Tensor:
    """PIL RGB (S, S) -> (3, S, S) float32, scaled to [0, 1] then ImageNet-normalised."""
    array = np.asarray(image, dtype=np.float32) / 255.0  # (S, S, 3)
    array = (array - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))  # (3, S, S)


def nearest_resize(array: np.ndarray, size: int) -> np.ndarray:
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
        out = {"pixel_values": normalized_pixels(crop), "id": sample["id"]}
        if sample.get("depth") is not None:

            def crop_map(array: np.ndarray) -> np.ndarray:  # (H, W) -> (size, size), the image's crop and flip
                array = nearest_resize(array[top : top + side, left : left + side], self.size)
                return np.ascontiguousarray(array[:, ::-1] if flip else array)

            sky = sample.get("sky_mask")
            out.update(self.target(crop_map(sample["depth"]), None if sky is None else crop_map(sky), sample))
        return out

    def target(self, depth: np.ndarray, sky: np.ndarray | None, sample: dict) -> dict:
        """The training target from the cropped (size, size) map: disparity normalised to [0, 1] and its valid mask
        (a subclass keeps other units, e.g. `metric.MetricDepthTransform` keeps metres)."""
        disparity, valid = disparity_from_depth(depth, sample.get("depth_kind", "depth"), sky)
        return {"disparity": torch.from_numpy(disparity), "valid_mask": torch.from_numpy(valid)}


def collate(samples: list[dict]) -> dict:
    """Stack transformed samples: tensors -> (B, ...) tensors, ``id`` -> ``ids`` list."""
    if not samples:
        raise ValueError("collate got an empty list of samples")
    batch = {"ids": [sample["id"] for sample in samples]}
    for key, value in samples[0].items():
        if isinstance(value, torch.Tensor):
            batch[key] = torch.stack([sample[key] for sample in samples])
    return batch


def batch_to_device(batch: Any, device: torch.device | str) -> Any:
    """Move every tensor of a (nested) batch to `device`; other values (ids) are kept as they are."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: batch_to_device(value, device) for key, value in batch.items()}
    return batch


def batch_num_images(batch: dict) -> int:
    """Images in a batch: the first dimension of ``pixel_values``, summed over the parts of a nested batch."""
    if "pixel_values" in batch:
        return int(batch["pixel_values"].shape[0])
    return sum(batch_num_images(part) for part in batch.values() if isinstance(part, dict))
