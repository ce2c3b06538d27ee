"""Strong perturbations for the student's unlabelled images (Depth Anything V1 Sec. 3.2): colour jitter, random
grayscale, Gaussian blur, and CutMix. Batched tensor ops (kornia) on whatever device the batch lives on, seedable.

The teacher labels the clean image; the student sees the perturbed one. Settings follow the first author's UniMatch
code (facts §5, marked UNCERTAIN there; decided here): ColorJitter(0.5, 0.5, 0.5, 0.25) with p 0.8, grayscale p 0.2,
blur p 0.5 with sigma in [0.1, 2]; CutMix with p 0.5, box 2-40 % of the area, aspect (h/w) 0.3-3.3 (log-uniform).

API::

    perturb = StrongPerturbation(seed=0)              # nn.Module without parameters
    perturbed = perturb(pixel_values)                 # (B, 3, H, W) ImageNet-normalised in and out
    mixed, box_mask, pair_index = cutmix(perturbed, p=0.5, generator=torch.Generator().manual_seed(0))
    # mixed[i] = pixel_values[i] outside the box and pixel_values[pair_index[i]] inside it (box_mask[i] True)
    loss = cutmix_loss(prediction, target_a=teacher[pair_index], target_b=teacher, box_mask=box_mask)  # losses.py

Samples not mixed (probability 1 - p, or a batch of one) have an all-False box and ``pair_index[i] == i``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..image_processing_depth_anything import IMAGENET_MEAN, IMAGENET_STD


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max <= {high}, got {value!r}")


def _check_batch(pixel_values: torch.Tensor) -> None:
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
        shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
        raise ValueError(f"pixel_values must be a (batch, 3, height, width) tensor, got {shape}")


class StrongPerturbation(nn.Module):
    """Colour jitter, random grayscale and Gaussian blur on a normalised batch.

    Args:
        brightness, contrast, saturation (`float`, default 0.5), hue (`float`, default 0.25): ColorJitter strengths.
        jitter_p (`float`, default 0.8), grayscale_p (`float`, default 0.2), blur_p (`float`, default 0.5):
            per-sample probabilities.
        blur_sigma (`tuple[float, float]`, default (0.1, 2.0)): Gaussian sigma range in pixels.
        mean, std (`tuple[float, float, float]`): normalisation of the input and output (ImageNet by default).
        seed (`int`, *optional*): seeds a private generator; each call draws its own seed from it, so a run is
            reproducible without touching the global RNG. None = use the global torch RNG.

    Shapes: (B, 3, H, W) float in, the same shape and dtype out.
    """

    def __init__(
        self,
        brightness: float = 0.5,
        contrast: float = 0.5,
        saturation: float = 0.5,
        hue: float = 0.25,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: float = 0.5,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        import kornia.augmentation as kornia_aug

        for name, value in (("jitter_p", jitter_p), ("grayscale_p", grayscale_p), ("blur_p", blur_p)):
            _check_probability(name, value)
        _check_range("blur_sigma", blur_sigma, 1e-3, 50.0)
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue!r}")
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        kernel = 2 * math.ceil(3 * blur_sigma[1]) + 1  # covers +-3 sigma of the widest blur
        self.ops = nn.Sequential(
            kornia_aug.ColorJitter(brightness, contrast, saturation, hue, p=jitter_p),
            kornia_aug.RandomGrayscale(p=grayscale_p),
            kornia_aug.RandomGaussianBlur((kernel, kernel), sigma=blur_sigma, p=blur_p),
        )
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        _check_batch(pixel_values)
        dtype = pixel_values.dtype
        mean, std = self.mean.to(pixel_values.device), self.std.to(pixel_values.device)
        images = (pixel_values.float() * std + mean).clamp(0.0, 1.0)  # (B, 3, H, W) in [0, 1]
        if self.generator is None:
            images = self.ops(images)
        else:
            call_seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
            devices = [pixel_values.device.index or 0] if pixel_values.is_cuda else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(call_seed)
                images = self.ops(images)
        return ((images.clamp(0.0, 1.0) - mean) / std).to(dtype)  # (B, 3, H, W) normalised

    def get_rng_state(self) -> torch.Tensor | None:
        """State of the private generator (for checkpoints); None without a seed."""
        return None if self.generator is None else self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        if self.generator is None:
            raise ValueError("this StrongPerturbation has no private generator (seed=None)")
        self.generator.set_state(state)


class CutMixResult(NamedTuple):
    """mixed (B, 3, H, W); box_mask (B, H, W) bool, True inside the pasted box; pair_index (B,) long."""

    mixed: torch.Tensor
    box_mask: torch.Tensor
    pair_index: torch.Tensor


def cutmix(
    pixel_values: torch.Tensor,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.4),
    aspect: tuple[float, float] = (0.3, 1 / 0.3),
    generator: torch.Generator | None = None,
) -> CutMixResult:
    """Paste a random box of another image of the batch into each image with probability `p`.

    Args:
        pixel_values (`torch.Tensor` of shape `(B, 3, H, W)`): the (already perturbed) batch.
        p (`float`, defaults to 0.5): per-sample probability of mixing.
        area (`tuple[float, float]`): box area as a share of the image, uniform in this range.
        aspect (`tuple[float, float]`): box height / width (in units of image height / width), log-uniform.
        generator (`torch.Generator`, *optional*): CPU generator for reproducible boxes and pairs.

    Returns:
        `CutMixResult(mixed, box_mask, pair_index)`: ``mixed[i] = where(box_mask[i], pixel_values[pair_index[i]],
        pixel_values[i])``. Pairs form one random cycle over the batch, so every image is pasted exactly once when all
        samples mix and no image is paired with itself (for B > 1).
    """
    _check_batch(pixel_values)
    _check_probability("p", p)
    _check_range("area", area, 0.0, 1.0)
    _check_range("aspect", aspect, 1e-3, 1e3)
    batch, _, height, width = pixel_values.shape
    device = pixel_values.device
    order = torch.randperm(batch, generator=generator)
    pair_index = torch.empty(batch, dtype=torch.long)
    pair_index[order] = order.roll(-1)  # a single cycle: order[k] takes its box from order[k + 1]
    apply = torch.rand(batch, generator=generator) < p
    if batch < 2:
        apply[:] = False
    pair_index = torch.where(apply, pair_index, torch.arange(batch))
    areas = area[0] + (area[1] - area[0]) * torch.rand(batch, generator=generator)
    log_low, log_high = math.log(aspect[0]), math.log(aspect[1])
    ratios = torch.exp(log_low + (log_high - log_low) * torch.rand(batch, generator=generator))
    box_h = (torch.sqrt(areas * ratios) * height).round().clamp(1, height).long()  # (B,) pixels
    box_w = (torch.sqrt(areas / ratios) * width).round().clamp(1, width).long()
    top = (torch.rand(batch, generator=generator) * (height - box_h + 1)).floor().long()
    left = (torch.rand(batch, generator=generator) * (width - box_w + 1)).floor().long()
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    inside_rows = (rows >= top.view(-1, 1, 1)) & (rows < (top + box_h).view(-1, 1, 1))  # (B, H, 1)
    inside_cols = (cols >= left.view(-1, 1, 1)) & (cols < (left + box_w).view(-1, 1, 1))  # (B, 1, W)
    box_mask = (inside_rows & inside_cols & apply.view(-1, 1, 1)).to(device)  # (B, H, W)
    pair_index = pair_index.to(device)
    mixed = torch.where(box_mask.unsqueeze(1), pixel_values[pair_index], pixel_values)  # (B, 3, H, W)
    return CutMixResult(mixed, box_mask, pair_index)


def mix_targets(targets: torch.Tensor, box_mask: torch.Tensor, pair_index: torch.Tensor) -> torch.Tensor:
    """The target map matching a CutMix-ed batch: (B, H, W) -> where(box_mask, targets[pair_index], targets).

    For a region-split loss use `losses.cutmix_loss(prediction, targets[pair_index], targets, box_mask)` instead;
    this is for visualisation and for losses that need one map.
    """
    if targets.shape != box_mask.shape:
        raise ValueError(
            f"targets {tuple(targets.shape)} and box_mask {tuple(box_mask.shape)} must have the same shape"
        )
    return torch.where(box_mask, targets[pair_index], targets)
