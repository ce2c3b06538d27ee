"""Conformance of `DepthAnythingForDepthEstimation` with transformers' PreTrainedModel contract.

transformers checks every model class with `ModelTesterMixin` (tests/test_modeling_common.py of its source tree,
which the installed package does not ship). That file is ~7,000 lines and imports the generation and exporter test
suites, so it is not vendored here. Instead:

- the fast tests below reproduce, on a tiny model, the behaviours of the mixin this class once failed (issue 12
  item 8) and the ones it relies on: attentions asked for through the config, `output_hidden_states` as a list of
  layer indices, the tuple form equal to `ModelOutput.to_tuple()`, gradients through returned hidden states and
  attentions, eager/SDPA dispatch, gradient checkpointing switches, batching, save/load;
- `tests/transformers_common/run_model_tester_mixin.py` runs the whole mixin against this class from a transformers
  source distribution (see its docstring); `test_full_model_tester_mixin` below does that when `TRANSFORMERS_SRC`
  names one (marked slow; nothing is fetched at run time).
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from transformers import Dinov2Config
from transformers.modeling_layers import GradientCheckpointingLayer

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation

BATCH, IMAGE, LAYERS, HEADS = 2, 28, 2, 2
SEQUENCE = (IMAGE // 14) ** 2 + 1  # patch tokens + CLS


def micro_config(**overrides) -> DepthAnythingConfig:
    """The size of transformers' own DepthAnythingModelTester: 8 wide, 2 blocks, 2 heads, 28x28 inputs."""
    backbone = Dinov2Config(image_size=IMAGE, patch_size=14, hidden_size=8, num_hidden_layers=LAYERS,
                            num_attention_heads=HEADS, intermediate_size=16, out_indices=[1, 2],
                            reshape_hidden_states=False, apply_layernorm=True, layerscale_value=1.0)
    return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=8, neck_hidden_sizes=[4, 8],
                               reassemble_factors=[2, 1], fusion_hidden_size=6, head_hidden_size=4, **overrides)


@pytest.fixture
def pixel_values():
    return torch.rand(BATCH, 3, IMAGE, IMAGE)


@pytest.fixture
def labels():
    return torch.rand(BATCH, IMAGE, IMAGE)


def eager_model(config=None):
    config = config or micro_config()
    return DepthAnythingForDepthEstimation._from_config(config, attn_implementation="eager").eval()


def assert_same(first, second):
    """Exact equality of nested outputs (tensors, tuples, None)."""
    if isinstance(first, (tuple, list)):
        assert isinstance(second, (tuple, list)) and len(first) == len(second), (type(second), len(second))
        for a, b in zip(first, second, strict=True):
            assert_same(a, b)
    elif first is None:
        assert second is None
    else:
        torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_attentions_follow_the_config_as_well_as_the_argument(pixel_values):
    """Issue 12 item 8 (mixin: test_attention_outputs): forward ignored `config.output_attentions`."""
    model = eager_model()
    assert model(pixel_values).attentions is None
    explicit = model(pixel_values, output_attentions=True).attentions
    model.config.output_attentions = True  # the top-level config alone, as a user would set it
    from_config = model(pixel_values).attentions
    assert len(explicit) == len(from_config) == LAYERS
    for attention in from_config:
        assert attention.shape == (BATCH, HEADS, SEQUENCE, SEQUENCE)
    assert_same(from_config, explicit)
    assert model(pixel_values, output_attentions=False).attentions is None  # the argument wins over the config


def test_hidden_states_can_be_selected_by_layer_index(pixel_values):
    """Issue 12 item 8 (mixin: test_can_capture_specific_layers_hidden_states): a list of indices became True."""
    model = eager_model()
    every = model(pixel_values, output_hidden_states=True).hidden_states
    assert len(every) == LAYERS + 1  # embeddings, then one per block
    for request, kept in [([0, 2], {0, 2}), ([-1], {2}), (1, {1}), ([0, -3], {0}), ([7, -9], set())]:
        selected = model(pixel_values, output_hidden_states=request).hidden_states
        assert len(selected) == len(every), request
        for index, hidden in enumerate(selected):
            if index in kept:
                torch.testing.assert_close(hidden, every[index], rtol=0, atol=0)
            else:
                assert hidden is None, (request, index)
    model.config.output_hidden_states = True
    assert_same(model(pixel_values).hidden_states, every)
    assert model(pixel_values, output_hidden_states=False).hidden_states is None
    with pytest.raises(ValueError, match="output_hidden_states must be a bool, an int or a list of ints, got 'all'"):
        model(pixel_values, output_hidden_states="all")


@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("hidden, attentions", [(False, False), (True, False), (False, True), (True, True)])
def test_tuple_form_equals_to_tuple(pixel_values, labels, with_labels, hidden, attentions):
    """Issue 12 item 8 (mixin: test_model_outputs_equivalence): `return_dict=False` gave (depth, None, None,
    patch_features) while `to_tuple()` drops the Nones, so an index meant different things in the two forms."""
    model = eager_model()
    kwargs = {"output_hidden_states": hidden, "output_attentions": attentions}
    if with_labels:
        kwargs["labels"] = labels
    as_dict = model(pixel_values, return_dict=True, **kwargs)
    as_tuple = model(pixel_values, return_dict=False, **kwargs)
    assert isinstance(as_tuple, tuple) and None not in as_tuple
    assert_same(as_tuple, as_dict.to_tuple())
    names = [name for name in ("loss", "predicted_depth", "hidden_states", "attentions", "patch_features")
             if getattr(as_dict, name) is not None]
    assert list(as_dict.keys()) == names
    assert_same(as_tuple[names.index("patch_features")], as_dict.patch_features)
    model.config.return_dict = False  # the config's default follows the same rule
    assert_same(model(pixel_values, **kwargs), as_tuple)


def test_gradients_reach_returned_hidden_states_and_attentions(pixel_values):
    """Mixin: test_retain_grad_hidden_states_attentions (failed: no attentions from the config)."""
    config = micro_config()
    config.output_hidden_states = True
    config.output_attentions = True
    model = DepthAnythingForDepthEstimation._from_config(config, attn_implementation="eager")
    outputs = model(pixel_values)
    hidden, attention = outputs.hidden_states[0], outputs.attentions[0]
    hidden.retain_grad()
    attention.retain_grad()
    outputs[0].flatten()[0].backward(retain_graph=True)
    assert hidden.grad is not None and attention.grad is not None


def test_attention_implementation_dispatch(tmp_path, pixel_values):
    """SDPA by default; `attn_implementation="eager"` reaches the DINOv2 attention layers, and both agree."""
    model = DepthAnythingForDepthEstimation(micro_config()).eval()
    assert model.backbone.config._attn_implementation == "sdpa"
    model.save_pretrained(tmp_path)
    eager = DepthAnythingForDepthEstimation.from_pretrained(tmp_path, attn_implementation="eager").eval()
    attention_configs = [m.config for n, m in eager.named_modules() if n.endswith("attention") and hasattr(m, "config")]
    assert attention_configs and all(c._attn_implementation == "eager" for c in attention_configs)
    torch.testing.assert_close(eager(pixel_values).predicted_depth, model(pixel_values).predicted_depth,
                               rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_switches(pixel_values, labels):
    """Mixin: test_gradient_checkpointing_enable_disable, plus equal gradients with checkpointing on."""
    model = DepthAnythingForDepthEstimation(micro_config()).train()
    assert model.supports_gradient_checkpointing and not model.is_activation_checkpointing
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert len(layers) == LAYERS
    model(pixel_values, labels=labels).loss.backward()
    reference = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing and all(m.gradient_checkpointing for m in layers)
    model(pixel_values, labels=labels).loss.backward()
    for name, parameter in model.named_parameters():
        if name in reference:
            torch.testing.assert_close(parameter.grad, reference[name], rtol=1e-5, atol=1e-7)
    model.activation_checkpointing_disable()
    assert not model.is_activation_checkpointing and not any(m.gradient_checkpointing for m in layers)


def test_batching_and_determinism(pixel_values):
    """Mixin: test_batching_equivalence and test_determinism, on every output."""
    model = eager_model()
    kwargs = {"output_hidden_states": True, "output_attentions": True, "return_dict": False}
    batched = model(pixel_values, **kwargs)
    assert_same(model(pixel_values, **kwargs), batched)
    for row in range(BATCH):
        single = model(pixel_values[row : row + 1], **kwargs)
        for batched_value, single_value in zip(batched, single, strict=True):
            pairs = zip(batched_value, single_value, strict=True) if isinstance(batched_value, tuple) else [
                (batched_value, single_value)
            ]
            for batched_tensor, single_tensor in pairs:  # (batch, ...) against (1, ...)
                torch.testing.assert_close(single_tensor, batched_tensor[row : row + 1], rtol=1e-5, atol=1e-5)


def test_save_and_load_keep_every_output(tmp_path, pixel_values, labels):
    """Mixin: test_save_load (tuple and dict forms, no missing or unexpected keys)."""
    model = eager_model(micro_config(depth_estimation_type="metric", max_depth=20))
    model.save_pretrained(tmp_path)
    loaded, info = DepthAnythingForDepthEstimation.from_pretrained(
        tmp_path, attn_implementation="eager", output_loading_info=True
    )
    assert all(not keys for keys in (info["missing_keys"], info["unexpected_keys"], info["mismatched_keys"]))
    loaded.eval()
    kwargs = {"labels": labels, "output_hidden_states": True, "output_attentions": True}
    assert_same(loaded(pixel_values, return_dict=False, **kwargs), model(pixel_values, return_dict=False, **kwargs))
    assert loaded.config.max_depth == 20 and loaded.config.depth_estimation_type == "metric"


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TRANSFORMERS_SRC"), reason="set TRANSFORMERS_SRC to a transformers sdist")
def test_full_model_tester_mixin():
    """transformers' whole ModelTesterMixin against this class (tests/transformers_common/run_model_tester_mixin.py)."""
    script = Path(__file__).parent / "transformers_common" / "run_model_tester_mixin.py"
    with tempfile.TemporaryDirectory() as work_dir:
        result = subprocess.run(
            [sys.executable, str(script), "--transformers-src", os.environ["TRANSFORMERS_SRC"], "--work-dir", work_dir],
            capture_output=True, text=True, timeout=1800,
        )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
