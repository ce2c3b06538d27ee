"""Parity with transformers' built-in DepthAnythingForDepthEstimation on identical weights ("transformers" mode).

Tolerance: max |ours - built-in| <= 1e-5 x the output's range (the issue's bound); in practice the two are equal.
"""

import pytest
import torch
import transformers

from modeling_depth_anything import PRESETS, DepthAnythingConfig, DepthAnythingForDepthEstimation

SIZES = [(518, 518), (364, 504)]


def tiny_width(name):
    """The preset's architecture (depth, tapped blocks, MLP kind, neck ratios) at 1/8 of its width."""
    preset = PRESETS[name]
    return DepthAnythingConfig.from_preset(
        name,
        hidden_size=preset["hidden_size"] // 8,
        num_attention_heads=2 if name != "v2-giant" else 3,
        neck_hidden_sizes=[c // 8 for c in preset["neck_hidden_sizes"]],
        fusion_hidden_size=preset["fusion_hidden_size"] // 8,
        position_embedding_interpolation="transformers",
    )


def assert_parity(config, sizes, depth_type="relative"):
    ours = DepthAnythingForDepthEstimation(config).eval()
    builtin = transformers.DepthAnythingForDepthEstimation(transformers.DepthAnythingConfig.from_dict(config.to_dict()))
    result = builtin.load_state_dict(ours.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    builtin.eval()
    for height, width in sizes:
        x = torch.randn(1, 3, height, width)
        with torch.no_grad():
            a, b = ours(x).predicted_depth, builtin(x).predicted_depth
        assert a.shape == (1, height, width)
        span = (b.max() - b.min()).item()
        assert span > 0
        assert (a - b).abs().max().item() <= 1e-5 * span, (height, width)


@pytest.mark.parametrize("name", [n for n in sorted(PRESETS) if n != "tiny"])
def test_every_preset_architecture_at_tiny_width(name):
    assert_parity(tiny_width(name), SIZES)


def test_metric_head_parity():
    config = DepthAnythingConfig.from_preset("tiny", depth_estimation_type="metric", max_depth=80,
                                             position_embedding_interpolation="transformers")
    assert_parity(config, [(126, 168)])


def test_original_interpolation_differs_only_off_518():
    config = DepthAnythingConfig.from_preset("tiny")
    model = DepthAnythingForDepthEstimation(config).eval()
    other = DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny", position_embedding_interpolation="transformers"))
    other.load_state_dict(model.state_dict())
    other.eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 518, 518)
        assert torch.equal(model(x).predicted_depth, other(x).predicted_depth)
        x = torch.randn(1, 3, 364, 504)
        assert not torch.equal(model(x).predicted_depth, other(x).predicted_depth)


@pytest.mark.slow
def test_full_size_v2_small():
    config = DepthAnythingConfig.from_preset("v2-small", position_embedding_interpolation="transformers")
    assert_parity(config, [(518, 518), (518, 686)])


def authors_interpolation(pos_embed, height, width, patch=14):
    """The authors' DINOv2 `interpolate_pos_encoding` (interpolate_offset=0.1), written out independently."""
    import math

    n = pos_embed.shape[1] - 1
    m = int(math.sqrt(n))
    h0, w0 = height // patch + 0.1, width // patch + 0.1
    patch_pos = pos_embed[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
    patch_pos = torch.nn.functional.interpolate(patch_pos, scale_factor=(h0 / m, w0 / m), mode="bicubic")
    assert int(h0) == patch_pos.shape[-2] and int(w0) == patch_pos.shape[-1]
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, pos_embed.shape[-1])
    return torch.cat((pos_embed[:, :1], patch_pos), dim=1)


@pytest.mark.parametrize("height, width", [(364, 504), (518, 686), (280, 280)])
def test_original_mode_matches_the_authors_formula(height, width):
    model = DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny")).eval()
    embeddings = model.backbone.embeddings
    tokens = torch.zeros(1, 1 + (height // 14) * (width // 14), 192)
    ours = embeddings.interpolate_pos_encoding(tokens, height, width)
    torch.testing.assert_close(ours, authors_interpolation(embeddings.position_embeddings, height, width), rtol=0, atol=1e-7)
