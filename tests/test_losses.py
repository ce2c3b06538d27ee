"""Unit tests of modeling_depth_anything/losses.py: tiny tensors, CPU, well under a second each."""

import math

import pytest
import torch

from modeling_depth_anything.losses import (
    cutmix_gradient_loss,
    cutmix_loss,
    depth_loss,
    feature_alignment_loss,
    gradient_matching_loss,
    normalize_disparity,
    scale_and_shift_invariant_loss,
    silog_loss,
)

# 1 x 2 x 2 maps computed by hand (lower median, as torch.median):
#   prediction [1, 2, 3, 4]: t = 2, s = (1 + 0 + 1 + 2) / 4 = 1   -> [-1, 0, 1, 2]
#   target     [1, 2, 3, 8]: t = 2, s = (1 + 0 + 1 + 6) / 4 = 2   -> [-0.5, 0, 0.5, 3]
#   |difference| = [0.5, 0, 0.5, 1] -> mean 0.5
#   residual R = [[-0.5, 0], [0.5, -1]]: |dx| = 0.5 + 1.5, |dy| = 1 + 1 -> 4 / 4 pixels = 1.0 at scale 0;
#   scale 1 (stride 2) is a single pixel without neighbours -> 0.
HAND_PREDICTION = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], dtype=torch.float64)
HAND_TARGET = torch.tensor([[[1.0, 2.0], [3.0, 8.0]]], dtype=torch.float64)


def random_maps(batch=2, height=6, width=7, dtype=torch.float64):
    prediction = torch.rand(batch, height, width, dtype=dtype) + 0.1
    target = torch.rand(batch, height, width, dtype=dtype) + 0.1
    return prediction, target


def random_mask(batch=2, height=6, width=7, keep=0.7):
    return torch.rand(batch, height, width) < keep


# --- hand-computed values ---------------------------------------------------------------------------------------------


def test_normalize_disparity_hand_values():
    normalized = normalize_disparity(HAND_PREDICTION)
    torch.testing.assert_close(normalized, torch.tensor([[[-1.0, 0.0], [1.0, 2.0]]], dtype=torch.float64))
    mask = torch.tensor([[[True, True], [True, False]]])
    normalized = normalize_disparity(HAND_TARGET, mask)  # [1, 2, 3]: t = 2, s = 2/3; invalid pixel -> 0
    torch.testing.assert_close(normalized, torch.tensor([[[-1.5, 0.0], [1.5, 0.0]]], dtype=torch.float64))


def test_ssi_hand_value():
    loss = scale_and_shift_invariant_loss(HAND_PREDICTION, HAND_TARGET)
    torch.testing.assert_close(loss, torch.tensor(0.5, dtype=torch.float64))


def test_ssi_batch_average_is_pixel_weighted():
    # Sample 0: the hand pair (4 valid pixels, loss 0.5). Sample 1: 2 valid pixels, perfect match (loss 0).
    prediction = torch.cat([HAND_PREDICTION, HAND_PREDICTION])
    target = torch.cat([HAND_TARGET, HAND_PREDICTION])
    mask = torch.tensor([[[True, True], [True, True]], [[True, True], [False, False]]])
    loss = scale_and_shift_invariant_loss(prediction, target, mask)
    torch.testing.assert_close(loss, torch.tensor(0.5 * 4 / 6, dtype=torch.float64))
    per_sample = scale_and_shift_invariant_loss(prediction, target, mask, reduction="none")
    torch.testing.assert_close(per_sample, torch.tensor([0.5, 0.0], dtype=torch.float64))


def test_gradient_matching_hand_value():
    torch.testing.assert_close(
        gradient_matching_loss(HAND_PREDICTION, HAND_TARGET, None, scales=1), torch.tensor(1.0, dtype=torch.float64)
    )
    torch.testing.assert_close(
        gradient_matching_loss(HAND_PREDICTION, HAND_TARGET, None, scales=2), torch.tensor(1.0, dtype=torch.float64)
    )


def test_depth_loss_combines_terms():
    prediction, target = random_maps()
    mask = random_mask()
    expected = scale_and_shift_invariant_loss(prediction, target, mask) + 2.0 * gradient_matching_loss(
        prediction, target, mask
    )
    torch.testing.assert_close(depth_loss(prediction, target, mask, gradient_weight=2.0), expected)
    torch.testing.assert_close(
        depth_loss(prediction, target, mask, trim=0.1),
        scale_and_shift_invariant_loss(prediction, target, mask, trim=0.1),
    )


# --- invariances ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "shift"), [(3.7, -2.0), (0.01, 5.0), (250.0, 0.0)])
def test_ssi_invariant_to_affine_prediction(scale, shift):
    prediction, target = random_maps()
    mask = random_mask()
    reference = scale_and_shift_invariant_loss(prediction, target, mask)
    assert reference > 0.1
    transformed = scale_and_shift_invariant_loss(scale * prediction + shift, target, mask)
    assert abs(transformed.item() - reference.item()) < 1e-6
    # the target side too
    transformed = scale_and_shift_invariant_loss(prediction, scale * target + shift, mask)
    assert abs(transformed.item() - reference.item()) < 1e-6


def test_affine_equivalent_pair_gives_zero():
    prediction, _ = random_maps()
    mask = random_mask()
    target = 0.3 * prediction + 4.0
    assert scale_and_shift_invariant_loss(prediction, target, mask).item() < 1e-12
    assert gradient_matching_loss(prediction, target, mask).item() < 1e-12
    assert gradient_matching_loss(prediction, target, None, scales=4).item() < 1e-12


def test_gradient_matching_positive_and_affine_invariant():
    prediction, target = random_maps(height=16, width=16)
    reference = gradient_matching_loss(prediction, target)
    assert reference > 0.1
    assert abs(gradient_matching_loss(5.0 * prediction - 1.0, target).item() - reference.item()) < 1e-6


# --- trimming ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(7, 7), (7, 10), (3, 3)])
def test_trimming_keeps_ceil_share_of_pixels(height, width):
    # 7x10 = 70 pixels is the float trap: (1 - 0.1) * 70 == 63.00000000000001, yet exactly 63 must be kept.
    prediction, target = random_maps(batch=1, height=height, width=width)
    residual = (normalize_disparity(prediction) - normalize_disparity(target)).abs().flatten()
    sorted_residual = residual.sort().values
    n = residual.numel()
    kept = math.ceil(round(0.9 * n, 9))
    loss = scale_and_shift_invariant_loss(prediction, target, trim=0.1)
    torch.testing.assert_close(loss, sorted_residual[:kept].mean())
    for wrong in (kept - 1, kept + 1):
        if 0 < wrong <= n:
            assert not torch.allclose(loss, sorted_residual[:wrong].mean())


def test_trimming_is_per_sample_and_respects_mask():
    prediction, target = random_maps(batch=3, height=5, width=6)
    mask = random_mask(batch=3, height=5, width=6, keep=0.6)
    mask[2] = False  # an empty sample on the way
    sums, counts = 0.0, 0
    for index in range(3):
        valid = mask[index]
        n = int(valid.sum())
        if n == 0:
            continue
        residual = (
            normalize_disparity(prediction[index : index + 1], mask[index : index + 1])
            - normalize_disparity(target[index : index + 1], mask[index : index + 1])
        ).abs()[0][valid]
        kept = n - math.floor(0.25 * n + 1e-9)  # ceil(0.75 n)
        sums += residual.sort().values[:kept].sum().item()
        counts += kept
    loss = scale_and_shift_invariant_loss(prediction, target, mask, trim=0.25)
    assert abs(loss.item() - sums / counts) < 1e-12


def test_trim_zero_equals_untrimmed():
    prediction, target = random_maps()
    mask = random_mask()
    torch.testing.assert_close(
        scale_and_shift_invariant_loss(prediction, target, mask, trim=0.0),
        scale_and_shift_invariant_loss(prediction, target, mask),
    )


# --- CutMix -----------------------------------------------------------------------------------------------------------


def test_cutmix_equals_area_weighted_region_losses():
    batch, height, width = 2, 8, 9
    prediction, target_a = random_maps(batch, height, width)
    target_b = torch.rand(batch, height, width, dtype=torch.float64)
    box = torch.zeros(batch, height, width, dtype=torch.bool)
    box[0, 1:4, 2:7] = True  # 15 / 72 of the image
    box[1, 3:8, 0:3] = True  # 15 / 72
    box[1, 0:2, 0:2] = True  # + 4 / 72
    valid = random_mask(batch, height, width, keep=0.8)
    for trim in (0.0, 0.1):
        inside = scale_and_shift_invariant_loss(prediction, target_a, valid & box, trim=trim, reduction="none")
        outside = scale_and_shift_invariant_loss(prediction, target_b, valid & ~box, trim=trim, reduction="none")
        area = torch.tensor([15 / 72, 19 / 72], dtype=torch.float64)
        expected = area * inside + (1 - area) * outside
        per_sample = cutmix_loss(prediction, target_a, target_b, box, valid, trim=trim, reduction="none")
        torch.testing.assert_close(per_sample, expected)
        torch.testing.assert_close(cutmix_loss(prediction, target_a, target_b, box, valid, trim=trim), expected.mean())


def test_cutmix_uses_target_a_inside_and_target_b_outside():
    prediction, target_b = random_maps(batch=1, height=6, width=6)
    box = torch.zeros(1, 6, 6, dtype=torch.bool)
    box[0, :3] = True
    # Perfect labels in their own regions, garbage in the other one: the loss must be 0.
    target_a = torch.where(box, 2 * prediction + 1, torch.full_like(prediction, float("nan")))
    target_b = torch.where(box, torch.rand_like(prediction), 0.5 * prediction - 3)
    assert cutmix_loss(prediction, target_a, target_b, box).item() < 1e-12


# --- feature alignment ------------------------------------------------------------------------------------------------


def test_feature_alignment_hand_value():
    student = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]], dtype=torch.float64)
    frozen = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]], dtype=torch.float64)
    # cos = 1 (excluded, > 0.85), 0, -1/sqrt(2) -> mean(1 - 0, 1 + 1/sqrt(2))
    expected = (1.0 + 1.0 + 1.0 / math.sqrt(2.0)) / 2
    assert abs(feature_alignment_loss(student, frozen).item() - expected) < 1e-12
    # without the margin, all three tokens count
    assert abs(feature_alignment_loss(student, frozen, margin=1.5).item() - (expected * 2) / 3) < 1e-12


def test_feature_alignment_excluded_tokens_contribute_nothing():
    frozen = torch.randn(2, 5, 8, dtype=torch.float64)
    student = torch.randn(2, 5, 8, dtype=torch.float64)
    student[0, 1] = frozen[0, 1] * 2.0 + 0.01 * torch.randn(8, dtype=torch.float64)  # cos ~ 1 > 0.85
    student[1, 3] = frozen[1, 3]  # cos = 1
    student.requires_grad_(True)
    loss = feature_alignment_loss(student, frozen)
    loss.backward()
    assert torch.all(student.grad[0, 1] == 0) and torch.all(student.grad[1, 3] == 0)
    assert student.grad.abs().sum() > 0
    # Moving an excluded token elsewhere above the margin does not change the loss.
    moved = student.detach().clone()
    moved[0, 1] = frozen[0, 1] * 7.0
    torch.testing.assert_close(feature_alignment_loss(moved, frozen), loss.detach())


def test_feature_alignment_all_excluded_is_zero_with_grad():
    frozen = torch.randn(2, 4, 6)
    student = (frozen * 3.0).requires_grad_(True)
    loss = feature_alignment_loss(student, frozen)
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert torch.isfinite(student.grad).all()


# --- masks and bad labels ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_name", ["ssi", "ssi_trim", "gradient", "depth"])
def test_masked_out_pixels_do_not_matter(loss_name):
    losses = {
        "ssi": lambda p, t, m: scale_and_shift_invariant_loss(p, t, m),
        "ssi_trim": lambda p, t, m: scale_and_shift_invariant_loss(p, t, m, trim=0.1),
        "gradient": lambda p, t, m: gradient_matching_loss(p, t, m),
        "depth": lambda p, t, m: depth_loss(p, t, m, gradient_weight=2.0, trim=0.1),
    }
    loss_fn = losses[loss_name]
    prediction, target = random_maps(height=8, width=8)
    mask = random_mask(height=8, width=8)
    prediction.requires_grad_(True)
    reference = loss_fn(prediction, target, mask)
    reference.backward()
    assert torch.all(prediction.grad[~mask] == 0)
    changed_prediction = torch.where(mask, prediction.detach(), torch.full_like(target, 1e6))
    changed_target = torch.where(mask, target, torch.full_like(target, -3.0))
    torch.testing.assert_close(loss_fn(changed_prediction, changed_target, mask), reference.detach())


def test_non_finite_targets_are_ignored():
    prediction, target = random_maps()
    mask = random_mask()
    broken = target.clone()
    broken[0, 0, 0], broken[0, 2, 3], broken[1, 4, 4] = float("nan"), float("inf"), -float("inf")
    explicit = mask & torch.isfinite(broken)
    prediction.requires_grad_(True)
    for loss_fn in (
        lambda t, m: scale_and_shift_invariant_loss(prediction, t, m, trim=0.1),
        lambda t, m: depth_loss(prediction, t, m, gradient_weight=2.0),
    ):
        loss = loss_fn(broken, mask)
        assert torch.isfinite(loss)
        torch.testing.assert_close(loss, loss_fn(target, explicit))
        (grad,) = torch.autograd.grad(loss, prediction)
        assert torch.isfinite(grad).all()
    assert torch.isfinite(scale_and_shift_invariant_loss(prediction, broken)).item()  # mask=None
    assert torch.isfinite(normalize_disparity(broken)).all()


@pytest.mark.parametrize("trim", [0.0, 0.1])
def test_all_invalid_sample_is_finite_with_finite_gradients(trim):
    prediction, target = random_maps(batch=3)
    mask = random_mask(batch=3)
    mask[1] = False
    target[2] = float("nan")  # invalid through its labels
    prediction.requires_grad_(True)
    per_sample = scale_and_shift_invariant_loss(prediction, target, mask, trim=trim, reduction="none")
    assert per_sample[1].item() == 0.0 and per_sample[2].item() == 0.0
    losses = [
        scale_and_shift_invariant_loss(prediction, target, mask, trim=trim),
        gradient_matching_loss(prediction, target, mask),
        depth_loss(prediction, target, mask, gradient_weight=2.0, trim=trim),
        cutmix_loss(prediction, target, target, torch.zeros_like(mask), mask, trim=trim),
    ]
    for loss in losses:
        assert torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, prediction)
        assert torch.isfinite(grad).all()
        assert torch.all(grad[1:] == 0)
    # sample 0 alone gives the same batch loss: empty samples neither add pixels nor loss
    torch.testing.assert_close(losses[0], scale_and_shift_invariant_loss(prediction[:1], target[:1], mask[:1], trim))


def test_empty_batch_returns_zero_with_grad_fn():
    prediction, target = random_maps()
    prediction.requires_grad_(True)
    empty = torch.zeros(prediction.shape, dtype=torch.bool)
    for loss in (
        scale_and_shift_invariant_loss(prediction, target, empty, trim=0.1),
        gradient_matching_loss(prediction, target, empty),
        depth_loss(prediction, target, empty, gradient_weight=2.0),
        cutmix_loss(prediction, target, target, empty, empty),
        scale_and_shift_invariant_loss(prediction, torch.full_like(target, float("nan"))),
    ):
        assert loss.item() == 0.0 and loss.grad_fn is not None
        (grad,) = torch.autograd.grad(loss, prediction)
        assert torch.all(grad == 0)


def test_nan_prediction_is_not_hidden():
    prediction, target = random_maps()
    prediction[0, 1, 1] = float("nan")
    assert torch.isnan(scale_and_shift_invariant_loss(prediction, target, trim=0.1))


MAP_LOSSES = {
    "ssi": lambda p, t, m: scale_and_shift_invariant_loss(p, t, m),
    "ssi_trim": lambda p, t, m: scale_and_shift_invariant_loss(p, t, m, trim=0.1),
    "ssi_trim_none": lambda p, t, m: scale_and_shift_invariant_loss(p, t, m, trim=0.1, reduction="none")[0],
    "gradient": lambda p, t, m: gradient_matching_loss(p, t, m),
    "depth": lambda p, t, m: depth_loss(p, t, m, gradient_weight=2.0),
    "depth_trim": lambda p, t, m: depth_loss(p, t, m, gradient_weight=2.0, trim=0.1),
    "cutmix_trim_inside": lambda p, t, m: cutmix_loss(p, t, t * 2, _box(p), m, trim=0.1),
    "cutmix_trim_outside": lambda p, t, m: cutmix_loss(p, t * 2, t, ~_box(p), m, trim=0.1),
    "cutmix_trim_none": lambda p, t, m: cutmix_loss(p, t, t * 2, _box(p), m, trim=0.1, reduction="none")[0],
    "silog": lambda p, t, m: silog_loss(p, t, m),
    "silog_lambda0_none": lambda p, t, m: silog_loss(p, t, m, lambd=0.0, reduction="none")[0],
}


def _box(prediction):
    """A CutMix box around pixel (0, 2, 3), the pixel the tests below break."""
    box = torch.zeros(prediction.shape, dtype=torch.bool)
    box[:, 1:4, 2:5] = True
    return box


@pytest.mark.parametrize("value", [float("inf"), -float("inf"), float("nan")])
@pytest.mark.parametrize("loss_name", sorted(MAP_LOSSES))
def test_non_finite_prediction_at_a_valid_pixel_makes_every_loss_nan(loss_name, value):
    """Issue 12 item 7: with trim 0.1, a +-inf prediction at one valid pixel gave a finite loss (its inf/inf = NaN
    pixel loss sorted last and was trimmed away) over NaN gradients, so the run went on with broken weights."""
    prediction, target = random_maps(height=8, width=8)
    mask = torch.ones(prediction.shape, dtype=torch.bool)
    prediction[0, 2, 3] = value
    prediction.requires_grad_(True)
    loss = MAP_LOSSES[loss_name](prediction, target, mask)
    assert torch.isnan(loss), f"{loss_name} with {value} at a valid pixel gave {loss.item()}"


@pytest.mark.parametrize("loss_name", sorted(MAP_LOSSES))
def test_non_finite_prediction_at_an_invalid_pixel_changes_nothing(loss_name):
    prediction, target = random_maps(height=8, width=8)
    mask = torch.ones(prediction.shape, dtype=torch.bool)
    mask[0, 2, 3] = False
    reference = MAP_LOSSES[loss_name](prediction, target, mask)
    broken = prediction.clone()
    broken[0, 2, 3] = float("inf")
    broken.requires_grad_(True)
    loss = MAP_LOSSES[loss_name](broken, target, mask)
    torch.testing.assert_close(loss, reference)
    (grad,) = torch.autograd.grad(loss, broken)
    assert torch.isfinite(grad).all()


def test_non_finite_prediction_makes_only_its_own_sample_nan_per_sample():
    prediction, target = random_maps(batch=3, height=8, width=8)
    prediction[1, 0, 0] = float("inf")
    per_sample = scale_and_shift_invariant_loss(prediction, target, trim=0.1, reduction="none")
    assert torch.isnan(per_sample[1]) and torch.isfinite(per_sample[[0, 2]]).all()
    per_sample = cutmix_loss(prediction, target, target, _box(prediction), trim=0.1, reduction="none")
    assert torch.isnan(per_sample[1]) and torch.isfinite(per_sample[[0, 2]]).all()


def test_gradient_matching_sees_a_non_finite_pixel_without_valid_neighbours():
    """A valid pixel whose neighbours are all invalid enters no gradient pair; its inf must still show."""
    prediction, target = random_maps(height=8, width=8)
    mask = torch.ones(prediction.shape, dtype=torch.bool)
    mask[0, 1:6, 1:6] = False
    mask[0, 3, 3] = True  # isolated at every scale
    prediction[0, 3, 3] = float("inf")
    assert torch.isnan(gradient_matching_loss(prediction, target, mask))


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_student_features_make_feature_alignment_nan(value):
    frozen = torch.randn(2, 5, 8)
    for margin in (0.85, -2.0):  # tokens kept, and every token excluded by the margin
        student = (frozen * 3.0).clone()
        student[1, 2, 4] = value
        assert torch.isnan(feature_alignment_loss(student, frozen, margin=margin))


# --- dtypes and input validation --------------------------------------------------------------------------------------


def test_bf16_autocast_computes_in_float32():
    prediction, target = random_maps(dtype=torch.float32)
    mask = random_mask()
    reference = depth_loss(prediction, target, mask, gradient_weight=2.0)
    prediction_bf16 = prediction.to(torch.bfloat16).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = depth_loss(prediction_bf16, target.to(torch.bfloat16), mask, gradient_weight=2.0)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, reference, atol=0.05, rtol=0.05)
    loss.backward()
    assert prediction_bf16.grad.dtype == torch.bfloat16 and torch.isfinite(prediction_bf16.grad.float()).all()


def test_invalid_arguments_raise_value_error():
    prediction, target = random_maps()
    with pytest.raises(ValueError, match="1.0"):
        scale_and_shift_invariant_loss(prediction, target, trim=1.0)
    with pytest.raises(ValueError, match="'sum'"):
        scale_and_shift_invariant_loss(prediction, target, reduction="sum")
    with pytest.raises(ValueError, match=r"\(2, 1, 6, 7\)"):
        scale_and_shift_invariant_loss(prediction.unsqueeze(1), target.unsqueeze(1))
    with pytest.raises(ValueError, match=r"\(2, 6, 6\)"):
        scale_and_shift_invariant_loss(prediction, target[:, :, :6])
    with pytest.raises(ValueError, match=r"\(6, 7\)"):
        scale_and_shift_invariant_loss(prediction, target, torch.ones(6, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="0"):
        gradient_matching_loss(prediction, target, scales=0)
    with pytest.raises(ValueError, match="-1"):
        depth_loss(prediction, target, gradient_weight=-1.0)
    with pytest.raises(ValueError, match=r"\(2, 5, 8\)"):
        feature_alignment_loss(torch.randn(2, 4, 8), torch.randn(2, 5, 8))


def test_cutmix_gradient_loss_compares_each_region_with_its_own_target():
    """No box: gradient matching against target b; all box: against target a; a box: the pixel-weighted mix of the
    two regions, each normalised on its own, so a jump at the box edge is never compared."""
    generator = torch.Generator().manual_seed(0)
    prediction, target_a, target_b = (torch.rand(2, 16, 16, generator=generator) for _ in range(3))
    valid = torch.rand(2, 16, 16, generator=generator) > 0.2
    none = torch.zeros(2, 16, 16, dtype=torch.bool)
    assert torch.allclose(
        cutmix_gradient_loss(prediction, target_a, target_b, none, valid),
        gradient_matching_loss(prediction, target_b, valid),
    )
    assert torch.allclose(
        cutmix_gradient_loss(prediction, target_a, target_b, ~none, valid),
        gradient_matching_loss(prediction, target_a, valid),
    )
    box = none.clone()
    box[:, 4:12, 4:12] = True
    inside, outside = valid & box, valid & ~box
    expected = (
        inside.sum() * gradient_matching_loss(prediction, target_a, inside)
        + outside.sum() * gradient_matching_loss(prediction, target_b, outside)
    ) / valid.sum()
    assert torch.allclose(cutmix_gradient_loss(prediction, target_a, target_b, box, valid), expected)
    # The prediction equal to the mixed target gives 0: edges between the two maps are not penalised.
    mixed = torch.where(box, target_a, target_b)
    assert cutmix_gradient_loss(mixed, target_a, target_b, box, valid).item() < 1e-6
    prediction[0, 5, 5] = float("inf")  # NaN-safe like every loss: a non-finite valid prediction gives NaN
    assert torch.isnan(cutmix_gradient_loss(prediction, target_a, target_b, box, torch.ones_like(valid)))
