"""Training losses of Depth Anything V1/V2 as pure, masked, batch-vectorised functions.

Every function takes disparity-like maps of shape `(batch, height, width)` (the model's `predicted_depth`), an
optional boolean validity mask of the same shape (`None` means every pixel is valid), and returns a scalar tensor
unless `reduction="none"` is asked for. Conventions shared by all of them:

- Non-finite target values (NaN, +-inf) are always treated as invalid, whatever the mask says, so broken labels
  never poison the loss. Non-finite *prediction* values at valid pixels are not masked: they make the loss NaN on
  purpose (with `reduction="none"`, the affected samples' entries), so that a diverging run is noticed and stopped by
  the training loop. Trimming never drops them, and neither does a pixel without valid neighbours in the
  gradient-matching term.
- Statistics are computed in float32 (float64 inputs stay float64), so the functions are safe under bf16/fp16
  autocast; the returned loss has that computation dtype.
- A sample without a valid pixel contributes 0 and gets finite (zero) gradients; a batch without a valid pixel
  returns a 0 that still carries a `grad_fn` to `prediction`, so `loss.backward()` always works.

References: facts §5 (Depth Anything V1 paper Sec. 3, V2 paper Sec. 4 and Appendix), MiDaS (Ranftl et al., TPAMI
2020) for the median / mean-absolute-deviation normalisation and the multi-scale gradient-matching term.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "cutmix_gradient_loss",
    "cutmix_loss",
    "depth_loss",
    "feature_alignment_loss",
    "gradient_matching_loss",
    "normalize_disparity",
    "scale_and_shift_invariant_loss",
    "silog_loss",
]

# Lower bound of the per-image scale s(d) (facts §5): keeps constant maps and empty samples away from 0/0.
_MIN_SCALE = 1e-6


# ---------------------------------------------------------------------------------------------------------------------
# Input checks and shared helpers
# ---------------------------------------------------------------------------------------------------------------------


def _computation_dtype(tensor: torch.Tensor) -> torch.dtype:
    """float32 for half/bfloat16/integer inputs, float64 stays float64."""
    if tensor.is_floating_point():
        return torch.promote_types(tensor.dtype, torch.float32)
    return torch.float32


def _check_depth_maps(prediction: torch.Tensor, *targets: torch.Tensor) -> None:
    if prediction.dim() != 3:
        raise ValueError(
            f"prediction must have shape (batch, height, width), got shape {tuple(prediction.shape)}"
            " (squeeze a channel dimension of size 1 first)"
        )
    for target in targets:
        if target.shape != prediction.shape:
            raise ValueError(
                f"target shape {tuple(target.shape)} does not match prediction shape {tuple(prediction.shape)}"
            )


def _as_bool_mask(mask: torch.Tensor | None, reference: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """A bool mask of `reference`'s shape on its device; `None` means all valid, non-bool masks mean `!= 0`."""
    if mask is None:
        return torch.ones(reference.shape, dtype=torch.bool, device=reference.device)
    if mask.shape != reference.shape:
        raise ValueError(f"{name} shape {tuple(mask.shape)} does not match prediction shape {tuple(reference.shape)}")
    mask = mask.to(device=reference.device)
    return mask if mask.dtype == torch.bool else mask != 0


def _check_trim(trim: float) -> None:
    if not (isinstance(trim, (int, float)) and 0.0 <= trim < 1.0):
        raise ValueError(f"trim must be a number in [0, 1), got {trim!r}")


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _prepare(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checks shapes, casts to the computation dtype and folds non-finite targets into the mask.

    Returns:
        `(prediction, target, valid)`, each `(batch, height, width)`; `valid` is bool.
    """
    _check_depth_maps(prediction, target)
    valid = _as_bool_mask(mask, prediction)
    dtype = _computation_dtype(prediction)
    target = target.to(device=prediction.device, dtype=dtype)
    valid = valid & torch.isfinite(target)
    return prediction.to(dtype), target, valid


def _nan_if_non_finite(
    loss: torch.Tensor, prediction: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """`loss` made NaN where `prediction` is non-finite at a valid pixel (module docstring); `None` = all valid.

    Per sample for a `(batch,)` loss, for the whole batch for a scalar one. The NaN is *added*, so the gradients that
    `loss` carries are unchanged (they are NaN themselves wherever the prediction is).
    """
    non_finite = ~torch.isfinite(prediction)
    bad = (non_finite if valid is None else valid & non_finite).flatten(1).any(dim=1)  # (batch,)
    if loss.dim() == 0:
        bad = bad.any()
    nan = torch.full((), float("nan"), dtype=loss.dtype, device=loss.device)
    return loss + torch.where(bad, nan, torch.zeros((), dtype=loss.dtype, device=loss.device))


def _normalize(disparity: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(d - t(d)) / s(d) per image over the valid pixels; invalid pixels are set to 0.

    t(d) is the median of the valid pixels (the lower of the two middle values for an even count, as `torch.median`
    and MiDaS), s(d) the mean absolute deviation from it, clamped to >= 1e-6. Both keep their gradients (MiDaS does
    too). Invalid pixels are replaced *before* any arithmetic (with `torch.where`, whose backward never multiplies),
    so NaN/inf there can neither leak into the forward pass nor into the gradients.

    Args:
        disparity: `(batch, height, width)` floating tensor.
        valid: `(batch, height, width)` bool tensor.

    Returns:
        `(batch, height, width)` normalised map, 0 at invalid pixels and everywhere in samples without valid pixels.
    """
    batch_size = disparity.shape[0]
    clean = torch.where(valid, disparity, torch.zeros((), dtype=disparity.dtype, device=disparity.device))
    valid_flat = valid.reshape(batch_size, -1)  # (batch, height * width)
    count = valid_flat.sum(dim=1)  # (batch,)

    # Masked median: invalid pixels become NaN and nanmedian skips them. A sample without valid pixels yields NaN,
    # which the torch.where replaces by 0 (its gradient path then carries exact zeros).
    nan = torch.full((), float("nan"), dtype=disparity.dtype, device=disparity.device)
    with_nans = torch.where(valid, clean, nan).reshape(batch_size, -1)  # (batch, height * width)
    shift = torch.nanmedian(with_nans, dim=1).values  # (batch,)
    shift = torch.where(count > 0, shift, torch.zeros_like(shift))
    shift = shift.view(batch_size, 1, 1)  # (batch, 1, 1)

    centred = clean - shift  # (batch, height, width)
    deviation = torch.where(valid, centred.abs(), torch.zeros_like(centred))
    scale = deviation.sum(dim=(1, 2)) / count.clamp(min=1)  # (batch,)
    scale = scale.clamp(min=_MIN_SCALE).view(batch_size, 1, 1)  # (batch, 1, 1)
    return torch.where(valid, centred / scale, torch.zeros_like(centred))


def _kept_sums(pixel_loss: torch.Tensor, valid: torch.Tensor, trim: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample sum and count of the pixel losses kept after top-`trim` trimming.

    With N valid pixels in a sample, exactly ceil((1 - trim) * N) pixels with the smallest losses are kept (at least
    one when N > 0). Ties are broken by `torch.sort`, which does not change the sum.

    Args:
        pixel_loss: `(batch, height, width)` non-negative per-pixel losses (finite at invalid pixels).
        valid: `(batch, height, width)` bool.
        trim: share in [0, 1) of each sample's valid pixels to drop, the largest losses first.

    Returns:
        `(sums, counts)`, both `(batch,)`; `counts` has the dtype of `pixel_loss`.
    """
    batch_size = pixel_loss.shape[0]
    loss_flat = pixel_loss.reshape(batch_size, -1)  # (batch, height * width)
    valid_flat = valid.reshape(batch_size, -1)  # (batch, height * width)
    count = valid_flat.sum(dim=1)  # (batch,) int64
    if trim == 0.0:
        sums = torch.where(valid_flat, loss_flat, torch.zeros_like(loss_flat)).sum(dim=1)
        return sums, count.to(pixel_loss.dtype)

    # ceil((1 - trim) * N) == N - floor(trim * N); the 1e-6 absorbs float error in trim * N (0.1 * 70 is
    # 7.000000000000001 in float64, and (1 - 0.1) * 70 is 63.00000000000001, which a plain ceil turns into 64).
    dropped = torch.floor(trim * count.to(torch.float64) + 1e-6).to(torch.int64)
    kept = torch.maximum(count - dropped, count.clamp(max=1))  # (batch,)
    # Sort keys: invalid pixels last (+inf), non-finite losses at valid pixels first (-inf), so that trimming can
    # never drop them: a NaN sorts last and would be trimmed away, leaving a finite loss over NaN gradients.
    infinity = torch.full((), float("inf"), dtype=pixel_loss.dtype, device=pixel_loss.device)
    keys = torch.where(torch.isfinite(loss_flat), loss_flat, -infinity)
    keys = torch.where(valid_flat, keys, infinity)  # (batch, height * width)
    order = keys.argsort(dim=1)  # (batch, height * width) ascending
    sorted_loss = torch.where(valid_flat, loss_flat, torch.zeros_like(loss_flat)).gather(1, order)
    rank = torch.arange(sorted_loss.shape[1], device=pixel_loss.device)  # (height * width,)
    keep = rank.unsqueeze(0) < kept.unsqueeze(1)  # (batch, height * width)
    sums = torch.where(keep, sorted_loss, torch.zeros_like(sorted_loss)).sum(dim=1)
    return sums, kept.to(pixel_loss.dtype)


def _reduce(sums: torch.Tensor, counts: torch.Tensor, reduction: str) -> torch.Tensor:
    """'mean': total over the batch's kept pixels; 'none': per-sample mean `(batch,)`; 0 where nothing is kept."""
    if reduction == "none":
        return sums / counts.clamp(min=1)
    return sums.sum() / counts.sum().clamp(min=1)


def _gradient_matching(
    prediction_normalized: torch.Tensor, target_normalized: torch.Tensor, valid: torch.Tensor, scales: int
) -> torch.Tensor:
    """MiDaS multi-scale gradient matching on already normalised maps; see `gradient_matching_loss`."""
    residual = prediction_normalized - target_normalized  # (batch, height, width), 0 at invalid pixels
    total = residual.new_zeros(())
    for scale in range(scales):
        step = 2**scale
        residual_s = residual[:, ::step, ::step]  # (batch, ceil(height / step), ceil(width / step))
        valid_s = valid[:, ::step, ::step]  # (batch, ceil(height / step), ceil(width / step))
        valid_x = valid_s[:, :, 1:] & valid_s[:, :, :-1]  # (batch, h_s, w_s - 1): both neighbours valid
        valid_y = valid_s[:, 1:, :] & valid_s[:, :-1, :]  # (batch, h_s - 1, w_s)
        grad_x = (residual_s[:, :, 1:] - residual_s[:, :, :-1]).abs()
        grad_y = (residual_s[:, 1:, :] - residual_s[:, :-1, :]).abs()
        grad_sum = (
            torch.where(valid_x, grad_x, torch.zeros_like(grad_x)).sum()
            + torch.where(valid_y, grad_y, torch.zeros_like(grad_y)).sum()
        )
        total = total + grad_sum / valid_s.sum().clamp(min=1)
    return total


# ---------------------------------------------------------------------------------------------------------------------
# Public losses
# ---------------------------------------------------------------------------------------------------------------------


def normalize_disparity(disparity: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image affine normalisation d_hat = (d - t(d)) / s(d) over the valid pixels (facts §5).

    t(d) = median of the valid pixels (lower median for an even count), s(d) = mean |d - t(d)| over the valid pixels,
    clamped to >= 1e-6. Non-finite values of `disparity` count as invalid.

    Args:
        disparity (`torch.Tensor` of shape `(batch, height, width)`): disparity maps (any floating dtype).
        mask (`torch.Tensor` of shape `(batch, height, width)`, *optional*): bool validity mask; `None` = all valid.

    Returns:
        `torch.Tensor` of shape `(batch, height, width)` in float32 (float64 for float64 input); 0 at invalid pixels.
    """
    _check_depth_maps(disparity)
    valid = _as_bool_mask(mask, disparity)
    disparity = disparity.to(_computation_dtype(disparity))
    return _normalize(disparity, valid & torch.isfinite(disparity))


def scale_and_shift_invariant_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    trim: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Affine-invariant mean absolute error between disparity maps (V1 Eq. 1, V2; facts §5).

    Prediction and target are each normalised per image with `normalize_disparity` over the valid pixels; the loss
    is |d_hat_prediction - d_hat_target| averaged over the batch's valid pixels (pixel-weighted, not image-weighted,
    as MiDaS' batch-based reduction). Invariant to prediction -> a * prediction + b for a > 0 (up to the 1e-6 scale
    clamp).

    Args:
        prediction (`torch.Tensor` of shape `(batch, height, width)`): predicted disparity.
        target (`torch.Tensor` of shape `(batch, height, width)`): label disparity; NaN/inf pixels are ignored.
        mask (`torch.Tensor` of shape `(batch, height, width)`, *optional*): bool validity mask; `None` = all valid.
        trim (`float`, *optional*, defaults to 0.0): V2 top-n% trimming for pseudo-labels, in [0, 1) (the recipe
            uses 0.1). Per sample, only the ceil((1 - trim) * N) smallest of its N valid pixel losses are kept.
            The normalisation statistics still use all N valid pixels.
        reduction (`str`, *optional*, defaults to `"mean"`): `"mean"` gives a scalar averaged over all kept pixels
            of the batch; `"none"` gives the per-sample means, shape `(batch,)` (0 for a sample without valid pixel).

    Returns:
        `torch.Tensor`: scalar, or `(batch,)` for `reduction="none"`; float32 (float64 for float64 input).
    """
    _check_trim(trim)
    _check_reduction(reduction)
    prediction, target, valid = _prepare(prediction, target, mask)
    pixel_loss = (_normalize(prediction, valid) - _normalize(target, valid)).abs()  # (batch, height, width)
    sums, counts = _kept_sums(pixel_loss, valid, trim)
    return _nan_if_non_finite(_reduce(sums, counts, reduction), prediction, valid)


def gradient_matching_loss(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, scales: int = 4
) -> torch.Tensor:
    """Multi-scale gradient-matching loss on the normalised residual (V2, MiDaS Eq. 11; facts §5).

    With R = d_hat_prediction - d_hat_target (both normalised per image as in `scale_and_shift_invariant_loss`),
    at every scale k = 0 .. scales - 1 the maps and the mask are subsampled with stride 2^k and the loss adds
    sum(|R[x+1] - R[x]| + |R[y+1] - R[y]|) over neighbour pairs whose both pixels are valid, divided by the batch's
    valid pixel count at that scale. The terms of the scales are summed (as MiDaS). It is 0 for affine-equivalent
    pairs; V2 weighs it 2 : 1 against the affine-invariant loss (teacher and students).

    Args:
        prediction (`torch.Tensor` of shape `(batch, height, width)`): predicted disparity.
        target (`torch.Tensor` of shape `(batch, height, width)`): label disparity; NaN/inf pixels are ignored.
        mask (`torch.Tensor` of shape `(batch, height, width)`, *optional*): bool validity mask; `None` = all valid.
        scales (`int`, *optional*, defaults to 4): number of scales.

    Returns:
        `torch.Tensor`: scalar, float32 (float64 for float64 input).
    """
    if isinstance(scales, bool) or not isinstance(scales, int) or scales < 1:
        raise ValueError(f"scales must be a positive integer, got {scales!r}")
    prediction, target, valid = _prepare(prediction, target, mask)
    loss = _gradient_matching(_normalize(prediction, valid), _normalize(target, valid), valid, scales)
    return _nan_if_non_finite(loss, prediction, valid)


def depth_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    gradient_weight: float = 0.0,
    trim: float = 0.0,
) -> torch.Tensor:
    """`scale_and_shift_invariant_loss + gradient_weight * gradient_matching_loss`, normalising only once.

    V1 (teacher and student) uses `gradient_weight=0`; V2 uses `gradient_weight=2.0` for the teacher on synthetic
    labels and for the students (which add `trim=0.1` on pseudo-labels; facts §5). Trimming applies to the
    affine-invariant term only.

    Args:
        prediction (`torch.Tensor` of shape `(batch, height, width)`): predicted disparity.
        target (`torch.Tensor` of shape `(batch, height, width)`): label disparity; NaN/inf pixels are ignored.
        mask (`torch.Tensor` of shape `(batch, height, width)`, *optional*): bool validity mask; `None` = all valid.
        gradient_weight (`float`, *optional*, defaults to 0.0): weight of the gradient-matching term (>= 0).
        trim (`float`, *optional*, defaults to 0.0): top-n% trimming share of the affine-invariant term, in [0, 1).

    Returns:
        `torch.Tensor`: scalar, float32 (float64 for float64 input).
    """
    if not (isinstance(gradient_weight, (int, float)) and math.isfinite(gradient_weight) and gradient_weight >= 0):
        raise ValueError(f"gradient_weight must be a finite number >= 0, got {gradient_weight!r}")
    _check_trim(trim)
    prediction, target, valid = _prepare(prediction, target, mask)
    prediction_normalized = _normalize(prediction, valid)
    target_normalized = _normalize(target, valid)
    pixel_loss = (prediction_normalized - target_normalized).abs()  # (batch, height, width)
    loss = _reduce(*_kept_sums(pixel_loss, valid, trim), reduction="mean")
    if gradient_weight > 0:
        loss = loss + gradient_weight * _gradient_matching(prediction_normalized, target_normalized, valid, scales=4)
    return _nan_if_non_finite(loss, prediction, valid)


def cutmix_loss(
    prediction: torch.Tensor,
    target_a: torch.Tensor,
    target_b: torch.Tensor,
    box_mask: torch.Tensor,
    valid_mask: torch.Tensor | None = None,
    trim: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Affine-invariant loss on a CutMix-ed image (V1 Sec. 3.2, facts §5).

    The student saw image b with a box of image a pasted in (`box_mask` True inside the box). Per sample, the loss is
    `area * L(inside, target_a) + (1 - area) * L(outside, target_b)` with `area = sum(M) / (H * W)` of the box alone,
    where each region loss is `scale_and_shift_invariant_loss(..., reduction="none")` restricted to that region (its
    own median/scale normalisation, its own trimming). A region without valid pixels contributes 0.

    Args:
        prediction (`torch.Tensor` of shape `(batch, height, width)`): student disparity on the mixed image.
        target_a (`torch.Tensor` of shape `(batch, height, width)`): teacher disparity on image a (used inside).
        target_b (`torch.Tensor` of shape `(batch, height, width)`): teacher disparity on image b (used outside).
        box_mask (`torch.Tensor` of shape `(batch, height, width)`): bool, True inside the pasted box.
        valid_mask (`torch.Tensor` of shape `(batch, height, width)`, *optional*): bool; `None` = all valid.
        trim (`float`, *optional*, defaults to 0.0): top-n% trimming share, in [0, 1), applied per region.
        reduction (`str`, *optional*, defaults to `"mean"`): `"mean"` averages the per-sample losses over the samples
            that have at least one valid pixel; `"none"` returns them, shape `(batch,)`.

    Returns:
        `torch.Tensor`: scalar, or `(batch,)` for `reduction="none"`; float32 (float64 for float64 input).
    """
    _check_trim(trim)
    _check_reduction(reduction)
    _check_depth_maps(prediction, target_a, target_b)
    box = _as_bool_mask(box_mask, prediction, name="box_mask")
    valid = _as_bool_mask(valid_mask, prediction, name="valid_mask")
    loss_inside = scale_and_shift_invariant_loss(prediction, target_a, valid & box, trim=trim, reduction="none")
    loss_outside = scale_and_shift_invariant_loss(prediction, target_b, valid & ~box, trim=trim, reduction="none")
    area = box.reshape(box.shape[0], -1).to(loss_inside.dtype).mean(dim=1)  # (batch,) = sum(M) / (H * W)
    per_sample = area * loss_inside + (1 - area) * loss_outside  # (batch,)
    if reduction == "none":
        return per_sample
    target_a_valid = torch.isfinite(target_a.to(prediction.device))
    target_b_valid = torch.isfinite(target_b.to(prediction.device))
    has_valid = (valid & torch.where(box, target_a_valid, target_b_valid)).flatten(1).any(dim=1)  # (batch,)
    return torch.where(has_valid, per_sample, torch.zeros_like(per_sample)).sum() / has_valid.sum().clamp(min=1)


def cutmix_gradient_loss(
    prediction: torch.Tensor,
    target_a: torch.Tensor,
    target_b: torch.Tensor,
    box_mask: torch.Tensor,
    valid_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gradient matching on a CutMix-ed image, region by region as `cutmix_loss`: inside the box against `target_a`,
    outside against `target_b`, each region normalised on its own (pixel pairs across the box edge are never
    compared); the two terms are weighted by their valid pixels, so without a box this is `gradient_matching_loss`.

    All tensors `(batch, height, width)`; `box_mask` and `valid_mask` bool (`valid_mask` `None` = all valid).
    """
    box = _as_bool_mask(box_mask, prediction, name="box_mask")
    valid = _as_bool_mask(valid_mask, prediction, name="valid_mask")
    inside, outside = valid & box, valid & ~box
    count_inside, count_outside = inside.sum(), outside.sum()
    loss_inside = gradient_matching_loss(prediction, target_a, inside)
    loss_outside = gradient_matching_loss(prediction, target_b, outside)
    return (count_inside * loss_inside + count_outside * loss_outside) / (count_inside + count_outside).clamp(min=1)


def feature_alignment_loss(
    student_features: torch.Tensor, frozen_features: torch.Tensor, margin: float = 0.85
) -> torch.Tensor:
    """Feature-alignment loss with a tolerance margin (V1 Sec. 3.3, facts §5).

    Per patch token, 1 - cos(f, f') between the student encoder's feature f and the frozen DINOv2 feature f'.
    Tokens whose cosine similarity is already above `margin` (alpha) are excluded: they add nothing to the loss and
    receive no gradient. The loss is the mean over the remaining tokens of the whole batch, and 0 (with a `grad_fn`)
    when none remains; NaN if any student feature is non-finite (module docstring). `frozen_features` is detached.
    Cosine uses eps 1e-8 on the norms, computed in float32.

    Args:
        student_features (`torch.Tensor` of shape `(batch, num_tokens, channels)`): student patch tokens (no CLS).
        frozen_features (`torch.Tensor` of shape `(batch, num_tokens, channels)`): frozen encoder patch tokens.
        margin (`float`, *optional*, defaults to 0.85): the tolerance alpha.

    Returns:
        `torch.Tensor`: scalar, float32 (float64 for float64 input).
    """
    if student_features.dim() != 3:
        raise ValueError(
            f"student_features must have shape (batch, num_tokens, channels), got {tuple(student_features.shape)}"
        )
    if frozen_features.shape != student_features.shape:
        raise ValueError(
            f"frozen_features shape {tuple(frozen_features.shape)} does not match student_features shape "
            f"{tuple(student_features.shape)}"
        )
    if not (isinstance(margin, (int, float)) and math.isfinite(margin)):
        raise ValueError(f"margin must be a finite number, got {margin!r}")
    dtype = _computation_dtype(student_features)
    student = student_features.to(dtype)
    frozen = frozen_features.detach().to(device=student.device, dtype=dtype)
    eps = 1e-8
    dot = (student * frozen).sum(dim=-1)  # (batch, num_tokens)
    norms = student.norm(dim=-1).clamp(min=eps) * frozen.norm(dim=-1).clamp(min=eps)  # (batch, num_tokens)
    cosine = dot / norms  # (batch, num_tokens)
    keep = cosine.detach() <= margin  # (batch, num_tokens); NaN cosines are kept so they surface in the loss
    keep = keep | torch.isnan(cosine.detach())
    token_loss = torch.where(keep, 1 - cosine, torch.zeros_like(cosine))
    loss = token_loss.sum() / keep.sum().clamp(min=1)
    return _nan_if_non_finite(loss, student)  # non-finite student features: NaN, even where the cosine would not be


def silog_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    min_depth: float = 1e-3,
    max_depth: float = math.inf,
    lambd: float = 0.5,
    reduction: str = "mean",
) -> torch.Tensor:
    """Scale-invariant log loss of metric depth in metres (Eigen et al. 2014; Depth Anything V2 `metric_depth`).

    Exactly V2's `SiLogLoss` as its `train.py` calls it: on the valid pixels (mask, finite target and
    `min_depth <= target <= max_depth`), `d = log(target) - log(prediction)` and
    `loss = sqrt(mean(d ** 2) - lambd * mean(d) ** 2)`, the means taken over all valid pixels of the batch (V2
    flattens the batch; `reduction="none"` gives the per-sample values instead). With `lambd=1` the loss is the
    standard deviation of the log error (fully scale invariant), with `lambd=0` the RMSE of log depth; V2 uses 0.5,
    which also penalises a wrong global scale.

    Unlike the affine-invariant losses, the prediction must be positive metres: a valid pixel whose prediction is
    NaN, infinite, 0 or negative makes the loss NaN (on purpose: the training loop stops on it). Invalid pixels, and
    their predictions, never reach a logarithm, so whatever they hold neither shows in the value nor in the gradients.
    The square root is taken only of a positive radicand: a perfect prediction (radicand 0) or a batch without a valid
    pixel gives 0 with zero (finite) gradients rather than sqrt'(0) = inf.

    Args:
        prediction (`torch.Tensor` of shape `(batch, height, width)`): predicted depth in metres (a metric head's
            `predicted_depth`: sigmoid x max_depth).
        target (`torch.Tensor` of shape `(batch, height, width)`): ground-truth depth in metres; NaN/inf, and values
            outside [`min_depth`, `max_depth`], are invalid.
        mask (`torch.Tensor` of shape `(batch, height, width)`, *optional*): bool validity mask; `None` = all valid.
        min_depth (`float`, *optional*, defaults to 1e-3): smallest valid ground-truth depth (V2's `--min-depth`).
        max_depth (`float`, *optional*, defaults to inf): largest valid ground-truth depth (V2: the head's max_depth,
            20 m indoors, 80 m outdoors).
        lambd (`float`, *optional*, defaults to 0.5): weight of the squared mean log error, in [0, 1].
        reduction (`str`, *optional*, defaults to `"mean"`): `"mean"` pools the batch's valid pixels (V2); `"none"`
            gives one value per sample, shape `(batch,)` (0 for a sample without valid pixels).

    Returns:
        `torch.Tensor`: scalar, or `(batch,)` for `reduction="none"`; float32 (float64 for float64 input).
    """
    _check_reduction(reduction)
    if isinstance(lambd, bool) or not isinstance(lambd, (int, float)) or not 0.0 <= lambd <= 1.0:
        raise ValueError(f"lambd must be a number in [0, 1], got {lambd!r}")
    if not (isinstance(min_depth, (int, float)) and isinstance(max_depth, (int, float)) and 0 < min_depth < max_depth):
        raise ValueError(f"need 0 < min_depth < max_depth, got min_depth={min_depth!r}, max_depth={max_depth!r}")
    _check_depth_maps(prediction, target)
    valid = _as_bool_mask(mask, prediction)
    dtype = _computation_dtype(prediction)
    prediction = prediction.to(dtype)
    target = target.to(device=prediction.device, dtype=dtype)
    valid = valid & torch.isfinite(target) & (target >= min_depth) & (target <= max_depth)
    one = torch.ones((), dtype=dtype, device=prediction.device)
    # log of 1 at invalid pixels: they add 0 to the sums, and `torch.where`'s backward sends them exact zeros.
    log_error = torch.log(torch.where(valid, target, one)) - torch.log(torch.where(valid, prediction, one))
    dims = (1, 2) if reduction == "none" else (0, 1, 2)
    count = valid.sum(dim=dims).clamp(min=1)  # (batch,) or ()
    mean_square = (log_error**2).sum(dim=dims) / count
    mean = log_error.sum(dim=dims) / count
    radicand = mean_square - lambd * mean**2
    positive = radicand > 0
    loss = torch.where(positive, torch.sqrt(torch.where(positive, radicand, one)), torch.zeros_like(radicand))
    return torch.where(torch.isnan(radicand), radicand, loss)  # NaN (bad prediction) must not turn into 0
