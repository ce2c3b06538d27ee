"""Tiny-config unit tests of the model: shapes, outputs, save/load, gradients, precision, errors."""

import pytest
import torch

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation


@pytest.fixture
def tiny_model():
    return DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny")).eval()


def test_output_shapes_and_patch_features(tiny_model):
    x = torch.randn(2, 3, 56, 84)
    out = tiny_model(x)
    assert out.predicted_depth.shape == (2, 56, 84)
    assert (out.predicted_depth >= 0).all()
    assert out.patch_features.shape == (2, 4 * 6, 192)
    # The patch features are the final layer-normed tokens, computed in the same pass.
    hidden = tiny_model.backbone(x, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(out.patch_features, tiny_model.backbone.layernorm(hidden)[:, 1:])


def test_patch_features_when_last_block_is_not_tapped():
    config = DepthAnythingConfig.from_preset("tiny", out_indices=[1, 2, 3, 4], num_hidden_layers=5)
    model = DepthAnythingForDepthEstimation(config).eval()
    x = torch.randn(1, 3, 28, 28)
    out = model(x)
    hidden = model.backbone(x, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(out.patch_features, model.backbone.layernorm(hidden)[:, 1:])


def test_loss_with_labels_and_mask(tiny_model):
    x = torch.randn(2, 3, 28, 28)
    labels = torch.rand(2, 28, 28)
    mask = torch.ones(2, 28, 28, dtype=torch.bool)
    mask[1] = False
    out = tiny_model(x, labels=labels, valid_mask=mask)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    with pytest.raises(ValueError, match="labels must have shape"):
        tiny_model(x, labels=torch.rand(2, 14, 14))


def test_metric_head_is_bounded_by_max_depth():
    config = DepthAnythingConfig.from_preset("tiny", depth_estimation_type="metric", max_depth=20.0)
    model = DepthAnythingForDepthEstimation(config).eval()
    depth = model(torch.randn(1, 3, 28, 28)).predicted_depth
    assert (depth > 0).all() and (depth < 20).all()


def test_save_load_round_trip_is_exact(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    loaded = DepthAnythingForDepthEstimation.from_pretrained(tmp_path).eval()
    for (name, a), (_, b) in zip(tiny_model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    x = torch.randn(1, 3, 42, 56)
    torch.testing.assert_close(loaded(x).predicted_depth, tiny_model(x).predicted_depth, rtol=0, atol=0)
    assert loaded.config.position_embedding_interpolation == "original"


def test_gradients_reach_every_trainable_parameter(tiny_model):
    tiny_model.train()
    out = tiny_model(torch.randn(2, 3, 28, 42), labels=torch.rand(2, 28, 42))
    (out.loss + out.patch_features.pow(2).mean()).backward()
    # Unused by design, kept for checkpoint compatibility: mask_token (masked-image pretraining) and the deepest
    # fusion block's first residual unit (it has no skip input; the original refinenet4.resConfUnit1 is unused too).
    unused = ("mask_token", "fusion_stage.layers.0.residual_layer1.")
    missing = [n for n, p in tiny_model.named_parameters() if p.grad is None and not any(u in n for u in unused)]
    assert not missing


def test_gradient_checkpointing_matches(tiny_model):
    x, labels = torch.randn(1, 3, 28, 28), torch.rand(1, 28, 28)
    tiny_model.train()
    tiny_model(x, labels=labels).loss.backward()
    reference = {n: p.grad.clone() for n, p in tiny_model.named_parameters() if p.grad is not None}
    tiny_model.zero_grad()
    tiny_model.activation_checkpointing_enable() if hasattr(tiny_model, "activation_checkpointing_enable") else tiny_model.gradient_checkpointing_enable()
    tiny_model(x, labels=labels).loss.backward()
    for name, grad in reference.items():
        torch.testing.assert_close(dict(tiny_model.named_parameters())[name].grad, grad, rtol=1e-4, atol=1e-6)


def test_bf16_autocast_forward_and_backward(tiny_model):
    x = torch.randn(1, 3, 56, 56)
    reference = tiny_model(x).predicted_depth
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny_model(x, labels=torch.rand(1, 56, 56))
    assert torch.isfinite(out.loss)
    scale = reference.max() - reference.min()
    assert (out.predicted_depth.float() - reference).abs().max() <= 0.1 * scale + 1e-3
    out.loss.backward()


def test_return_tuple(tiny_model):
    out = tiny_model(torch.randn(1, 3, 28, 28), return_dict=False)
    assert out[0].shape == (1, 28, 28)


@pytest.mark.parametrize("shape, message", [((1, 3, 30, 28), "multiples of 14"), ((3, 28, 28), r"\(batch, 3"),
                                             ((1, 1, 28, 28), r"\(batch, 3")])
def test_wrong_shaped_input_is_rejected(tiny_model, shape, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(torch.randn(*shape))


def test_sdpa_is_used_and_eager_agrees(tmp_path):
    config = DepthAnythingConfig.from_preset("tiny")
    model = DepthAnythingForDepthEstimation(config).eval()
    assert model.backbone.config._attn_implementation == "sdpa"
    model.save_pretrained(tmp_path)
    eager = DepthAnythingForDepthEstimation.from_pretrained(tmp_path, attn_implementation={"backbone_config": "eager"})
    x = torch.randn(1, 3, 28, 42)
    torch.testing.assert_close(eager.eval()(x).predicted_depth, model(x).predicted_depth, rtol=1e-4, atol=1e-5)
