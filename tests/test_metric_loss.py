"""silog_loss: V2's metric-depth SiLog (hand-computed, against the reference formula, masks, range, NaN safety)."""

from __future__ import annotations

import math

import pytest
import torch

from modeling_depth_anything.losses import silog_loss


def reference_silog(prediction, target, valid, lambd=0.5):
    """Depth Anything V2 `metric_depth/util/loss.py` SiLogLoss, as its train.py calls it (flattened batch)."""
    diff_log = torch.log(target[valid]) - torch.log(prediction[valid])
    return torch.sqrt(torch.pow(diff_log, 2).mean() - lambd * torch.pow(diff_log.mean(), 2))


def test_hand_computed():
    # Valid pixels: prediction 1 m vs 2 m (d = ln 2) and 2 m vs 2 m (d = 0). The third pixel is masked out and the
    # fourth lies beyond max_depth: neither may count, whatever the prediction there.
    prediction = torch.tensor([[[1.0, 2.0, 0.0, float("nan")]]])
    target = torch.tensor([[[2.0, 2.0, 3.0, 25.0]]])
    mask = torch.tensor([[[True, True, False, True]]])
    loss = silog_loss(prediction, target, mask, max_depth=20.0)
    # mean(d^2) = ln2^2 / 2, mean(d)^2 = ln2^2 / 4 -> radicand = ln2^2 (1/2 - 1/8) = 3/8 ln2^2
    assert loss.item() == pytest.approx(math.log(2) * math.sqrt(3 / 8), rel=1e-6)
    assert silog_loss(prediction, target, mask, max_depth=20.0, lambd=1.0).item() == pytest.approx(math.log(2) / 2)


def test_matches_reference_formula_on_a_batch():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(3, 17, 19, generator=generator, dtype=torch.float64) * 30.0  # some pixels beyond 20 m
    prediction = target * torch.exp(0.3 * torch.randn(3, 17, 19, generator=generator, dtype=torch.float64)) + 0.1
    mask = torch.rand(3, 17, 19, generator=generator) > 0.2
    valid = mask & (target >= 1e-3) & (target <= 20.0)
    for lambd in (0.0, 0.5, 0.85, 1.0):
        ours = silog_loss(prediction, target, mask, min_depth=1e-3, max_depth=20.0, lambd=lambd)
        assert ours.dtype == torch.float64
        torch.testing.assert_close(ours, reference_silog(prediction, target, valid, lambd), rtol=1e-12, atol=0)
    per_sample = silog_loss(prediction, target, mask, max_depth=20.0, reduction="none")
    assert per_sample.shape == (3,)
    for index in range(3):
        expected = reference_silog(prediction[index], target[index], valid[index])
        torch.testing.assert_close(per_sample[index], expected, rtol=1e-12, atol=0)


def test_scale_behaviour():
    target = torch.rand(2, 8, 8, dtype=torch.float64) * 5 + 0.5
    prediction = target * (1 + 0.1 * torch.randn(2, 8, 8, dtype=torch.float64)).abs()
    # lambd = 1 is fully scale invariant; V2's 0.5 is not: a global scale error of 2x must cost something.
    torch.testing.assert_close(
        silog_loss(3 * prediction, target, lambd=1.0), silog_loss(prediction, target, lambd=1.0)
    )
    assert silog_loss(2 * target, target).item() == pytest.approx(math.log(2) * math.sqrt(0.5), rel=1e-9)


def test_perfect_and_empty_give_zero_with_finite_gradients():
    target = torch.rand(2, 5, 5) * 10 + 1
    prediction = target.clone().requires_grad_(True)
    loss = silog_loss(prediction, target)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(prediction.grad).all() and (prediction.grad == 0).all()

    prediction = torch.full((2, 5, 5), float("nan"), requires_grad=True)  # nothing valid: NaN predictions unseen
    loss = silog_loss(prediction, target, mask=torch.zeros(2, 5, 5, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and loss.grad_fn is not None and torch.isfinite(prediction.grad).all()


def test_nan_safety():
    target = torch.rand(1, 4, 4) * 10 + 1
    target[0, 0, 0] = float("nan")  # a broken label pixel: invalid, ignored
    target[0, 0, 1] = float("inf")
    prediction = (target.nan_to_num(1.0, posinf=1.0) * 1.1).requires_grad_(True)
    loss = silog_loss(prediction, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(prediction.grad).all()
    assert prediction.grad[0, 0, 0] == 0 and prediction.grad[0, 0, 1] == 0
    # A non-finite or non-positive prediction on a valid pixel makes the loss NaN, so the run stops instead of
    # silently learning from it.
    for bad in (float("nan"), float("inf"), 0.0, -1.0):
        broken = prediction.detach().clone()
        broken[0, 2, 2] = bad
        assert torch.isnan(silog_loss(broken, target)), bad
        assert torch.isnan(silog_loss(broken, target, reduction="none")[0]), bad


def test_low_precision_input_is_computed_in_float32():
    target = torch.rand(2, 6, 6) * 10 + 1
    loss = silog_loss((target * 1.2).bfloat16(), target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(math.log(1.2) * math.sqrt(0.5), rel=1e-2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lambd": 1.5}, "lambd must be a number in \\[0, 1\\], got 1.5"),
        ({"min_depth": 0.0}, "min_depth=0.0"),
        ({"min_depth": 5.0, "max_depth": 2.0}, "max_depth=2.0"),
        ({"reduction": "sum"}, "'sum'"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    maps = torch.ones(1, 2, 2)
    with pytest.raises(ValueError, match=message):
        silog_loss(maps, maps, **kwargs)
    with pytest.raises(ValueError, match="does not match"):
        silog_loss(maps, torch.ones(1, 2, 3))
