"""Conversion of original-layout checkpoints (random weights, keys built here from the published key names)."""

import re

import pytest
import torch

from modeling_depth_anything import DepthAnythingConfig
from modeling_depth_anything.convert import (
    convert,
    convert_state_dict,
    detect_preset,
    load_checkpoint,
    main,
    original_to_transformers,
    transformers_to_original,
)


def original_state_dict(width, depth, neck, fusion, swiglu=False, mlp_ratio=4, prefix=""):
    """A random state dict in the authors' key layout (facts §2), shapes from the architecture table."""
    g = torch.Generator().manual_seed(0)
    sd = {}

    def put(key, *shape):
        sd[prefix + key] = torch.randn(*shape, generator=g) * 0.02

    put("pretrained.cls_token", 1, 1, width)
    put("pretrained.mask_token", 1, width)
    put("pretrained.pos_embed", 1, 37 * 37 + 1, width)
    put("pretrained.patch_embed.proj.weight", width, 3, 14, 14)
    put("pretrained.patch_embed.proj.bias", width)
    hidden = width * mlp_ratio
    if swiglu:
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
    for n in range(depth):
        b = f"pretrained.blocks.{n}."
        for norm in ("norm1", "norm2"):
            put(b + norm + ".weight", width)
            put(b + norm + ".bias", width)
        put(b + "attn.qkv.weight", 3 * width, width)
        put(b + "attn.qkv.bias", 3 * width)
        put(b + "attn.proj.weight", width, width)
        put(b + "attn.proj.bias", width)
        put(b + "ls1.gamma", width)
        put(b + "ls2.gamma", width)
        if swiglu:
            put(b + "mlp.w12.weight", 2 * hidden, width)
            put(b + "mlp.w12.bias", 2 * hidden)
            put(b + "mlp.w3.weight", width, hidden)
            put(b + "mlp.w3.bias", width)
        else:
            put(b + "mlp.fc1.weight", hidden, width)
            put(b + "mlp.fc1.bias", hidden)
            put(b + "mlp.fc2.weight", width, hidden)
            put(b + "mlp.fc2.bias", width)
    put("pretrained.norm.weight", width)
    put("pretrained.norm.bias", width)
    for i, channels in enumerate(neck):
        put(f"depth_head.projects.{i}.weight", channels, width, 1, 1)
        put(f"depth_head.projects.{i}.bias", channels)
        put(f"depth_head.scratch.layer{i + 1}_rn.weight", fusion, channels, 3, 3)
    put("depth_head.resize_layers.0.weight", neck[0], neck[0], 4, 4)  # ConvTranspose: (in, out, k, k)
    put("depth_head.resize_layers.0.bias", neck[0])
    put("depth_head.resize_layers.1.weight", neck[1], neck[1], 2, 2)
    put("depth_head.resize_layers.1.bias", neck[1])
    put("depth_head.resize_layers.3.weight", neck[3], neck[3], 3, 3)
    put("depth_head.resize_layers.3.bias", neck[3])
    for k in range(1, 5):
        r = f"depth_head.scratch.refinenet{k}."
        put(r + "out_conv.weight", fusion, fusion, 1, 1)
        put(r + "out_conv.bias", fusion)
        for unit in (1, 2):
            for conv in (1, 2):
                put(r + f"resConfUnit{unit}.conv{conv}.weight", fusion, fusion, 3, 3)
                put(r + f"resConfUnit{unit}.conv{conv}.bias", fusion)
    put("depth_head.scratch.output_conv1.weight", fusion // 2, fusion, 3, 3)
    put("depth_head.scratch.output_conv1.bias", fusion // 2)
    put("depth_head.scratch.output_conv2.0.weight", 32, fusion // 2, 3, 3)
    put("depth_head.scratch.output_conv2.0.bias", 32)
    put("depth_head.scratch.output_conv2.2.weight", 1, 32, 1, 1)
    put("depth_head.scratch.output_conv2.2.bias", 1)
    return sd


SMALL = {"width": 384, "depth": 12, "neck": [48, 96, 192, 384], "fusion": 64}


@pytest.mark.parametrize(
    "filename, prefix, preset, metric",
    [
        ("depth_anything_v2_vits.pth", "", "v2-small", None),
        ("depth_anything_vits14.pth", "module.", "v1-small", None),
        ("depth_anything_vits14.pth", "model.", "v1-small", None),
        ("depth_anything_v2_metric_hypersim_vits.pth", "", "v2-small", 20),
        ("depth_anything_v2_metric_vkitti_vits.pth", "", "v2-small", 80),
    ],
)
def test_original_small_checkpoints_convert_exactly(filename, prefix, preset, metric):
    sd = original_state_dict(**SMALL, prefix=prefix)
    name, overrides = detect_preset({k[len(prefix):]: v for k, v in sd.items()}, filename)
    assert name == preset
    model = convert_state_dict(sd, filename=filename)
    assert model.config.depth_estimation_type == ("metric" if metric else "relative")
    if metric:
        assert model.config.max_depth == metric
    # Original -> ours -> original is the identity, key for key and bit for bit.
    file_sd = original_to_transformers(sd)
    back = transformers_to_original(file_sd)
    plain = {k[len(prefix):]: v for k, v in sd.items()}
    assert set(back) == set(plain)
    for key in plain:
        assert torch.equal(back[key], plain[key]), key


def test_qkv_split_and_refinenet_order():
    sd = original_state_dict(**SMALL)
    file_sd = original_to_transformers(sd)
    q = file_sd["backbone.encoder.layer.3.attention.attention.query.weight"]
    v = file_sd["backbone.encoder.layer.3.attention.attention.value.weight"]
    assert torch.equal(q, sd["pretrained.blocks.3.attn.qkv.weight"][:384])
    assert torch.equal(v, sd["pretrained.blocks.3.attn.qkv.weight"][768:])
    assert torch.equal(file_sd["neck.fusion_stage.layers.0.projection.weight"], sd["depth_head.scratch.refinenet4.out_conv.weight"])
    assert torch.equal(file_sd["neck.convs.0.weight"], sd["depth_head.scratch.layer1_rn.weight"])
    assert torch.equal(file_sd["head.conv3.weight"], sd["depth_head.scratch.output_conv2.2.weight"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset, kwargs",
    [
        ("v1-base", {"width": 768, "depth": 12, "neck": [96, 192, 384, 768], "fusion": 128}),
        ("v2-large", {"width": 1024, "depth": 24, "neck": [256, 512, 1024, 1024], "fusion": 256}),
        ("v2-giant", {"width": 1536, "depth": 40, "neck": [1536] * 4, "fusion": 384, "swiglu": True}),
    ],
)
def test_large_original_checkpoints_convert(preset, kwargs):
    sd = original_state_dict(**kwargs)
    filename = "depth_anything_vitb14.pth" if preset.startswith("v1") else f"depth_anything_v2_{preset}.pth"
    model = convert_state_dict(sd, filename=filename, preset=preset)
    assert model.config.backbone_config.hidden_size == kwargs["width"]
    back = transformers_to_original(original_to_transformers(sd))
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_giant_swiglu_layout_at_reduced_depth():
    """V2-G's SwiGLU keys (w12 -> gate/up halves, w3 -> down) convert and run, at 4 blocks to stay fast."""
    kwargs = {"width": 1536, "depth": 4, "neck": [1536] * 4, "fusion": 384, "swiglu": True}
    sd = original_state_dict(**kwargs)
    model = convert_state_dict(sd, filename="depth_anything_v2_vitg.pth", preset="v2-giant", num_hidden_layers=4,
                               out_indices=[1, 2, 3, 4])
    mlp = model.backbone.encoder.layer[0].mlp
    hidden = mlp.gate_proj.weight.shape[0]
    assert torch.equal(mlp.gate_proj.weight, sd["pretrained.blocks.0.mlp.w12.weight"][:hidden])
    assert torch.equal(mlp.up_proj.weight, sd["pretrained.blocks.0.mlp.w12.weight"][hidden:])
    assert torch.equal(mlp.down_proj.weight, sd["pretrained.blocks.0.mlp.w3.weight"])
    back = transformers_to_original(original_to_transformers(sd))
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_unconsumed_and_missing_keys_are_all_listed():
    sd = original_state_dict(**SMALL)
    sd["pretrained.extra_token"] = torch.zeros(1)
    sd["depth_head.readout.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"2 checkpoint keys.*pretrained.extra_token, depth_head.readout.weight"):
        convert_state_dict(sd, filename="depth_anything_v2_vits.pth")
    sd = original_state_dict(**SMALL)
    del sd["pretrained.norm.weight"], sd["depth_head.scratch.refinenet1.out_conv.bias"]
    # Named as the checkpoint names them (original layout), not by the model's parameter names.
    with pytest.raises(ValueError, match=r"2 weights missing.*: pretrained.norm.weight, .*refinenet1.out_conv.bias"):
        convert_state_dict(sd, filename="depth_anything_v2_vits.pth")


def test_cli_writes_a_loadable_folder_from_pth_and_from_safetensors(tmp_path):
    from safetensors.torch import save_file

    sd = original_state_dict(**SMALL)
    pth = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(sd, pth)
    out = tmp_path / "converted"
    assert main(["--checkpoint", str(pth), "--output", str(out)]) == 0
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md"):
        assert (out / name).exists(), name
    assert "license: apache-2.0" in (out / "README.md").read_text()
    model = load_checkpoint(out)
    reference = convert_state_dict(sd, filename=pth.name)
    x = torch.randn(1, 3, 56, 70)
    with torch.no_grad():
        torch.testing.assert_close(model(x).predicted_depth, reference(x).predicted_depth, rtol=0, atol=0)
    # A transformers-format .safetensors file converts too (V2 by name, architecture from the shapes).
    st = tmp_path / "depth-anything-v2-small.safetensors"
    save_file(original_to_transformers(sd), st)
    again = convert(st, tmp_path / "again")
    assert (again / "config.json").exists()


def test_unsafe_or_bad_files_fail_clearly(tmp_path):
    bad = tmp_path / "depth_anything_v2_vits.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read as a weights-only"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="no position embedding"):
        convert_state_dict({"foo": torch.zeros(1)})


def test_preset_override_beats_detection():
    sd = original_state_dict(**SMALL)
    model = convert_state_dict(sd, filename="weights.pth", preset="v1-small")
    assert list(model.config.backbone_config.out_indices) == [9, 10, 11, 12]
    assert isinstance(model.config, DepthAnythingConfig)


# The "tiny" preset: no release is this wide.
TINY = {"width": 192, "depth": 4, "neck": [24, 48, 96, 192], "fusion": 32}


def run_main(argv, capsys):
    """convert's CLI: (exit status, stderr); errors must be one line, never a traceback."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    if status != 0:
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return status, err


def test_explicit_preset_converts_a_width_no_release_has(tmp_path, capsys):
    """Issue 12 item 5: the width detection ran first and asked for the --preset that had been passed."""
    pth = tmp_path / "depth_anything_v2_custom.pth"
    torch.save(original_state_dict(**TINY), pth)
    status, err = run_main(["--checkpoint", str(pth), "--output", str(tmp_path / "none")], capsys)
    assert status == 2 and "encoder width 192 matches no released model; pass --preset" in err and "tiny" in err
    assert run_main(["--checkpoint", str(pth), "--output", str(tmp_path / "out"), "--preset", "tiny"], capsys)[0] == 0
    model = load_checkpoint(tmp_path / "out")
    backbone = model.config.backbone_config
    assert backbone.hidden_size == 192 and list(backbone.out_indices) == [1, 2, 3, 4]
    expected = original_state_dict(**TINY)["depth_head.scratch.output_conv2.2.weight"]
    assert torch.equal(model.head.conv3.weight, expected)


def test_explicit_preset_is_checked_against_the_weights(tmp_path, capsys):
    """A preset that does not fit: the error names the checkpoint's own keys with both shapes, in one line."""
    pth = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(original_state_dict(**SMALL, prefix="module."), pth)
    status, err = run_main(["--checkpoint", str(pth), "--output", str(tmp_path / "out"), "--preset", "tiny"], capsys)
    assert status == 2 and "(384 wide, 12 blocks) does not fit preset tiny (192 wide, 4 blocks" in err
    assert "module.pretrained.cls_token is (1, 1, 384), the model needs (1, 1, 192)" in err
    assert "module.pretrained.blocks.0.attn.qkv.weight is (1152, 384), the model needs (576, 192)" in err
    assert re.search(r"\d+ weights of the wrong shape: .*\(\d+ more\)", err)
    assert "checkpoint keys have no place in the model: module.pretrained.blocks.4." in err  # blocks 4-11
    assert not (tmp_path / "out").exists()


def test_wrong_shapes_of_a_transformers_format_file_use_its_key_names(tmp_path):
    from safetensors.torch import save_file

    file_sd = original_to_transformers(original_state_dict(**SMALL))
    file_sd["head.conv1.weight"] = torch.zeros(16, 64, 3, 3)
    st = tmp_path / "depth-anything-v2-small.safetensors"
    save_file(file_sd, st)
    with pytest.raises(ValueError, match=r"1 weights of the wrong shape: head.conv1.weight is \(16, 64, 3, 3\), "
                                         r"the model needs \(32, 64, 3, 3\)"):
        load_checkpoint(st)


def test_unreadable_safetensors_give_a_one_line_error(tmp_path, capsys):
    """Issue 12 item 5: a garbage .safetensors gave a SafetensorError traceback instead of the exit-2 error."""
    garbage = tmp_path / "model.safetensors"
    garbage.write_bytes(b"this is not a safetensors file at all")
    status, err = run_main(["--checkpoint", str(garbage), "--output", str(tmp_path / "out")], capsys)
    assert status == 2 and f"{garbage}: not a readable .safetensors file" in err
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    status, err = run_main(["--checkpoint", str(folder), "--output", str(tmp_path / "out")], capsys)
    assert status == 2 and f"{folder / 'model.safetensors'}: not a readable .safetensors file" in err


def test_in_memory_state_dicts_convert_and_are_checked_in_their_own_names():
    """`torch.save(model.state_dict())` of transformers 5 holds the in-memory names (q_proj, ...)."""
    from modeling_depth_anything import DepthAnythingForDepthEstimation

    source = DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny"))
    model = convert_state_dict(source.state_dict(), preset="tiny")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.state_dict().values(), strict=True))
    broken = dict(source.state_dict())
    broken["backbone.encoder.layer.0.attention.q_proj.weight"] = torch.zeros(192, 190)
    with pytest.raises(ValueError, match=r"in-memory keys: 1 weights of the wrong shape: "
                                         r"backbone.encoder.layer.0.attention.q_proj.weight is \(192, 190\)"):
        convert_state_dict(broken, preset="tiny")
