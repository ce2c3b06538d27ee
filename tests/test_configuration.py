"""Config presets, validation and serialisation (including plain-transformers compatibility)."""

import json

import pytest
import transformers

from modeling_depth_anything import PRESETS, DepthAnythingConfig, DepthAnythingForDepthEstimation

PARAMS_MILLIONS = {"v1-small": 24.8, "v2-small": 24.8, "v1-base": 97.5, "v2-base": 97.5}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_round_trip(name, tmp_path):
    config = DepthAnythingConfig.from_preset(name)
    config.save_pretrained(tmp_path)
    loaded = DepthAnythingConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "depth_anything"
    assert saved["auto_map"]["AutoConfig"].endswith("DepthAnythingConfig")
    # Plain transformers reads the same file into its built-in config.
    builtin = transformers.DepthAnythingConfig.from_pretrained(tmp_path)
    assert list(builtin.backbone_config.out_indices) == list(config.backbone_config.out_indices)


def test_preset_architecture_table():
    assert DepthAnythingConfig.from_preset("v2-small").backbone_config.out_indices == [3, 6, 9, 12]
    assert DepthAnythingConfig.from_preset("v1-large").backbone_config.out_indices == [21, 22, 23, 24]
    assert DepthAnythingConfig.from_preset("v2-large").backbone_config.out_indices == [5, 12, 18, 24]
    giant = DepthAnythingConfig.from_preset("v2-giant")
    assert giant.backbone_config.use_swiglu_ffn and giant.fusion_hidden_size == 384
    assert giant.backbone_config.out_indices == [10, 20, 30, 40]


@pytest.mark.parametrize("name", sorted(PARAMS_MILLIONS))
def test_parameter_counts_match_the_papers(name):
    model = DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset(name))
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == PARAMS_MILLIONS[name]


def test_metric_config_writes_integral_max_depth_for_plain_transformers(tmp_path):
    config = DepthAnythingConfig.from_preset("v2-small", depth_estimation_type="metric", max_depth=20.0)
    config.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["max_depth"] == 20
    assert transformers.DepthAnythingConfig.from_pretrained(tmp_path).max_depth == 20


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depth_estimation_type="absolute"), "'absolute'"),
        (dict(position_embedding_interpolation="nearest"), "'nearest'"),
        (dict(max_depth=-1), "-1"),
        (dict(max_depth=float("nan")), "nan"),
        (dict(reassemble_factors=[4, 2, 1, 0.3]), "0.3"),
        (dict(neck_hidden_sizes=[48, 96, 192]), r"\[48, 96, 192\]"),
    ],
)
def test_invalid_values_raise_quoting_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DepthAnythingConfig.from_preset("v2-small", **kwargs)


def test_unknown_preset_and_mismatched_backbone():
    with pytest.raises(ValueError, match="'v3-small'"):
        DepthAnythingConfig.from_preset("v3-small")
    with pytest.raises(ValueError, match="reassemble_hidden_size"):
        DepthAnythingConfig.from_preset("v2-small", reassemble_hidden_size=768)
    with pytest.raises(ValueError, match="out_indices"):
        DepthAnythingConfig.from_preset("v2-small", out_indices=[3, 6, 9])
