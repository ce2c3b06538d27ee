"""Strong perturbations and CutMix: shapes, seeding, probabilities, box geometry, pairing."""

import pytest
import torch

from modeling_depth_anything.data.augment import CutMixResult, StrongPerturbation, cutmix, mix_targets


def _batch(size=4, side=28):
    return torch.randn(size, 3, side, side)


def test_perturbation_keeps_shape_dtype_and_changes_images():
    pixels = _batch()
    out = StrongPerturbation(seed=0, jitter_p=1.0)(pixels)
    assert out.shape == pixels.shape and out.dtype == pixels.dtype
    assert not torch.allclose(out, pixels)
    assert torch.isfinite(out).all()


def test_perturbation_is_reproducible_with_a_seed_and_leaves_global_rng_alone():
    pixels = _batch()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = StrongPerturbation(seed=7)(pixels)
    after = torch.rand(1)
    torch.testing.assert_close(before, after)  # the global RNG did not move
    torch.testing.assert_close(StrongPerturbation(seed=7)(pixels), first)
    perturb = StrongPerturbation(seed=7)
    state = perturb.get_rng_state()
    one = perturb(pixels)
    perturb.set_rng_state(state)
    torch.testing.assert_close(perturb(pixels), one)
    assert not torch.allclose(perturb(pixels), one)  # successive calls differ


def test_perturbation_with_all_probabilities_zero_is_identity_up_to_clamping():
    pixels = _batch().clamp(-1.5, 1.5)
    out = StrongPerturbation(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, seed=0)(pixels)
    torch.testing.assert_close(out, pixels, atol=1e-5, rtol=1e-5)


def test_grayscale_makes_channels_equal_in_pixel_space():
    perturb = StrongPerturbation(jitter_p=0.0, grayscale_p=1.0, blur_p=0.0, seed=0)
    out = perturb(_batch())
    images = out * perturb.std + perturb.mean  # back to [0, 1]
    torch.testing.assert_close(images[:, 0], images[:, 1], atol=1e-5, rtol=0)


def test_perturbation_validates_arguments():
    with pytest.raises(ValueError, match="1.5"):
        StrongPerturbation(blur_p=1.5)
    with pytest.raises(ValueError, match="0.9"):
        StrongPerturbation(hue=0.9)
    with pytest.raises(ValueError, match=r"\(2, 28, 28\)"):
        StrongPerturbation()(torch.zeros(2, 28, 28))


def test_cutmix_always_mixing_pairs_and_boxes():
    pixels = _batch(6, 40)
    result = cutmix(pixels, p=1.0, generator=torch.Generator().manual_seed(0))
    assert isinstance(result, CutMixResult)
    mixed, box, pair = result
    assert mixed.shape == pixels.shape and box.shape == (6, 40, 40) and box.dtype == torch.bool
    assert pair.dtype == torch.long and sorted(pair.tolist()) == list(range(6))  # a permutation
    assert (pair != torch.arange(6)).all()  # nobody pastes into itself
    area = box.float().mean(dim=(1, 2))
    assert ((area > 0.01) & (area < 0.45)).all()
    for index in range(6):
        rows, cols = box[index].nonzero(as_tuple=True)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert box[index].sum() == height * width  # one axis-aligned rectangle
    expected = torch.where(box.unsqueeze(1), pixels[pair], pixels)
    torch.testing.assert_close(mixed, expected)


def test_cutmix_probability_and_reproducibility():
    pixels = _batch(8)
    none = cutmix(pixels, p=0.0)
    assert not none.box_mask.any() and torch.equal(none.pair_index, torch.arange(8))
    torch.testing.assert_close(none.mixed, pixels)
    first = cutmix(pixels, p=0.5, generator=torch.Generator().manual_seed(3))
    second = cutmix(pixels, p=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first.box_mask, second.box_mask) and torch.equal(first.pair_index, second.pair_index)
    mixed_share = torch.stack([cutmix(pixels, p=0.5).box_mask.flatten(1).any(1) for _ in range(50)]).float().mean()
    assert 0.35 < mixed_share < 0.65
    single = cutmix(pixels[:1], p=1.0)
    assert not single.box_mask.any()  # a batch of one has nothing to mix with


def test_mix_targets_matches_the_mixed_image_layout():
    targets = torch.arange(4, dtype=torch.float32).view(4, 1, 1).expand(4, 14, 14).clone()
    result = cutmix(torch.randn(4, 3, 14, 14), p=1.0, generator=torch.Generator().manual_seed(1))
    mixed_targets = mix_targets(targets, result.box_mask, result.pair_index)
    inside = result.box_mask
    assert torch.equal(mixed_targets[inside], targets[result.pair_index][inside])
    assert torch.equal(mixed_targets[~inside], targets[~inside])
    with pytest.raises(ValueError, match="same shape"):
        mix_targets(targets[:, :7], result.box_mask, result.pair_index)


def test_cutmix_validates_arguments():
    with pytest.raises(ValueError, match="2.0"):
        cutmix(_batch(), p=2.0)
    with pytest.raises(ValueError, match="area"):
        cutmix(_batch(), area=(0.5, 0.1))
