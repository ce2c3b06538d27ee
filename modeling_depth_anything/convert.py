"""Convert the official Depth Anything checkpoints to this package's (= transformers') format.

    python -m modeling_depth_anything.convert --checkpoint depth_anything_v2_vits.pth --output Depth-Anything-V2-Small

Accepts the original `.pth` files (V1 S/B/L, V2 S/B/L/G, V2 metric indoor/outdoor, optionally wrapped in `model.` /
`module.` prefixes or a `{"model": ...}` / `{"state_dict": ...}` dict), a transformers-format `.safetensors` file, or a
transformers-format folder. The size comes from the weights' shapes. V1 and V2, and relative and metric, have
identical keys and shapes (only the tapped blocks and the final activation differ), so those come from the file name
(`depth_anything_vits14` = V1, `depth_anything_v2_*` = V2, `*metric_hypersim*` = metric indoor, max 20 m,
`*metric_vkitti*` = metric outdoor, max 80 m); `--preset` (and `--metric`/`--max-depth`) override. An explicit
`--preset` replaces the detection of size and version altogether, so it also converts widths no release has (e.g.
`--preset tiny`, 192 wide). Every key of the input must be consumed and every parameter of the model filled, with
the shape the architecture needs, or the conversion fails listing the offenders under the checkpoint's own key names
(the first 10 of each kind, and how many there are). `.pth` files are read with `torch.load(weights_only=True)`: no
code in them runs. Unreadable files fail with a one-line error that names the file (exit status 2 from the CLI).

Key mapping (facts §2): `attn.qkv` splits row-wise into query/key/value; `refinenet k` <-> fusion layer `4 - k`;
`layerK_rn` <-> `neck.convs.K-1`; `output_conv2.0/.2` <-> `head.conv2/conv3`; `ls*.gamma` <-> `layer_scale*.lambda1`;
giant `mlp.w12` <-> `mlp.weights_in` (gate rows first), `mlp.w3` <-> `mlp.weights_out`.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .configuration_depth_anything import PRESETS, DepthAnythingConfig
from .image_processing_depth_anything import DepthAnythingImageProcessor
from .modeling_depth_anything import DepthAnythingForDepthEstimation

logger = logging.getLogger(__name__)

WIDTH_TO_SIZE = {384: "small", 768: "base", 1024: "large", 1536: "giant"}
POSITION_EMBEDDING_KEYS = ("pretrained.pos_embed", "backbone.embeddings.position_embeddings")
MAX_LISTED = 10  # offenders listed per kind in a mismatch error (their number is always given)
# Licences of the released weights (facts §7); V1 was released under Apache-2.0 for all sizes.
LICENSES = {"v1": "apache-2.0", "v2-small": "apache-2.0", "v2-base": "cc-by-nc-4.0", "v2-large": "cc-by-nc-4.0",
            "v2-giant": "cc-by-nc-4.0"}

# Fixed (non-per-block) original -> transformers-file names.
_FIXED = {
    "pretrained.cls_token": "backbone.embeddings.cls_token",
    "pretrained.mask_token": "backbone.embeddings.mask_token",
    "pretrained.pos_embed": "backbone.embeddings.position_embeddings",
    "pretrained.patch_embed.proj.weight": "backbone.embeddings.patch_embeddings.projection.weight",
    "pretrained.patch_embed.proj.bias": "backbone.embeddings.patch_embeddings.projection.bias",
    "pretrained.norm.weight": "backbone.layernorm.weight",
    "pretrained.norm.bias": "backbone.layernorm.bias",
    "depth_head.scratch.output_conv1.weight": "head.conv1.weight",
    "depth_head.scratch.output_conv1.bias": "head.conv1.bias",
    "depth_head.scratch.output_conv2.0.weight": "head.conv2.weight",
    "depth_head.scratch.output_conv2.0.bias": "head.conv2.bias",
    "depth_head.scratch.output_conv2.2.weight": "head.conv3.weight",
    "depth_head.scratch.output_conv2.2.bias": "head.conv3.bias",
}
# Per-block / per-stage renames as (original regex, transformers-file template).
_PATTERNS = [
    (r"pretrained\.blocks\.(\d+)\.norm(\d)\.(weight|bias)", "backbone.encoder.layer.{0}.norm{1}.{2}"),
    (r"pretrained\.blocks\.(\d+)\.attn\.proj\.(weight|bias)", "backbone.encoder.layer.{0}.attention.output.dense.{1}"),
    (r"pretrained\.blocks\.(\d+)\.ls(\d)\.gamma", "backbone.encoder.layer.{0}.layer_scale{1}.lambda1"),
    (r"pretrained\.blocks\.(\d+)\.mlp\.fc(\d)\.(weight|bias)", "backbone.encoder.layer.{0}.mlp.fc{1}.{2}"),
    (r"pretrained\.blocks\.(\d+)\.mlp\.w12\.(weight|bias)", "backbone.encoder.layer.{0}.mlp.weights_in.{1}"),
    (r"pretrained\.blocks\.(\d+)\.mlp\.w3\.(weight|bias)", "backbone.encoder.layer.{0}.mlp.weights_out.{1}"),
    (r"depth_head\.projects\.(\d)\.(weight|bias)", "neck.reassemble_stage.layers.{0}.projection.{1}"),
    (r"depth_head\.resize_layers\.(\d)\.(weight|bias)", "neck.reassemble_stage.layers.{0}.resize.{1}"),
]
# transformers-file -> in-memory names (transformers 5 renames DINOv2's attention/MLP weights when loading).
_FILE_TO_MEMORY = [
    ("attention.attention.query", "attention.q_proj"),
    ("attention.attention.key", "attention.k_proj"),
    ("attention.attention.value", "attention.v_proj"),
    ("attention.output.dense", "attention.o_proj"),
    ("mlp.weights_out", "mlp.down_proj"),
]


def _rename_original(key: str) -> str | None:
    if key in _FIXED:
        return _FIXED[key]
    for pattern, template in _PATTERNS:
        match = re.fullmatch(pattern, key)
        if match:
            return template.format(*match.groups())
    match = re.fullmatch(r"depth_head\.scratch\.layer(\d)_rn\.weight", key)
    if match:
        return f"neck.convs.{int(match.group(1)) - 1}.weight"
    match = re.fullmatch(r"depth_head\.scratch\.refinenet(\d)\.(out_conv|resConfUnit(\d)\.conv(\d))\.(weight|bias)", key)
    if match:
        stage = 4 - int(match.group(1))
        if match.group(2) == "out_conv":
            return f"neck.fusion_stage.layers.{stage}.projection.{match.group(5)}"
        unit, conv = match.group(3), match.group(4)
        return f"neck.fusion_stage.layers.{stage}.residual_layer{unit}.convolution{conv}.{match.group(5)}"
    return None


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Unwrap `{"model": sd}` / `{"state_dict": sd}` and `model.` / `module.` key prefixes."""
    return _split_prefix(state_dict)[1]


def _split_prefix(state_dict: dict[str, torch.Tensor]) -> tuple[str, dict[str, torch.Tensor]]:
    """(the key prefix stripped, e.g. "module.", the unwrapped state dict); see `strip_prefixes`."""
    for wrapper in ("model", "state_dict", "module"):
        if isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
    stripped = ""
    for prefix in ("module.", "model."):
        if state_dict and all(key.startswith(prefix) for key in state_dict):
            state_dict = {key[len(prefix):]: value for key, value in state_dict.items()}
            stripped += prefix
    return stripped, state_dict


def encoder_width(state_dict: dict[str, torch.Tensor], filename: str = "") -> int:
    """The encoder width, read from the position embedding (the last dimension)."""
    for key in POSITION_EMBEDDING_KEYS:
        if key in state_dict:
            return int(state_dict[key].shape[-1])
    raise ValueError(f"{filename or 'checkpoint'}: no position embedding found; is this a Depth Anything checkpoint?")


def metric_overrides(filename: str = "") -> dict:
    """Config overrides for a metric head, from the file name (`*hypersim*`/`*indoor*`, `*vkitti*`/`*outdoor*`)."""
    name = os.path.basename(str(filename)).lower()
    if "hypersim" in name or "indoor" in name:
        return {"depth_estimation_type": "metric", "max_depth": 20}
    if "vkitti" in name or "outdoor" in name:
        return {"depth_estimation_type": "metric", "max_depth": 80}
    return {}


def detect_preset(state_dict: dict[str, torch.Tensor], filename: str = "") -> tuple[str, dict]:
    """(preset name, config overrides) from the weights' shapes and the file name; see the module docstring."""
    width = encoder_width(state_dict, filename)
    if width not in WIDTH_TO_SIZE:
        same_width = [name for name, values in PRESETS.items() if values["hidden_size"] == width]
        hint = f" (presets {width} wide: {', '.join(same_width)})" if same_width else ""
        raise ValueError(
            f"{filename or 'checkpoint'}: encoder width {width} matches no released model; pass --preset{hint}"
        )
    name = os.path.basename(str(filename)).lower()
    version = "v1" if re.search(r"depth_anything_vit[sbl]14|depth-anything-(small|base|large)", name) else "v2"
    if version == "v2" and not re.search(r"v2", name):
        logger.warning("%s: cannot tell V1 from V2 by the file name; assuming V2 (pass --preset to choose)", name)
    size = WIDTH_TO_SIZE[width]
    if version == "v1" and size == "giant":
        raise ValueError(f"{filename}: V1 has no giant model")
    return f"{version}-{size}", metric_overrides(filename)


def original_to_transformers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original `.pth` keys -> transformers-format file keys; fails listing every key it cannot place."""
    state_dict = strip_prefixes(state_dict)
    converted, unconsumed = {}, []
    for key, value in state_dict.items():
        qkv = re.fullmatch(r"pretrained\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)", key)
        if qkv:
            block, kind = qkv.groups()
            for name, chunk in zip(("query", "key", "value"), value.chunk(3, dim=0), strict=True):  # rows: q, k, v
                converted[f"backbone.encoder.layer.{block}.attention.attention.{name}.{kind}"] = chunk.clone()
            continue
        new_key = _rename_original(key)
        if new_key is None:
            unconsumed.append(key)
        else:
            converted[new_key] = value
    if unconsumed:
        raise ValueError(f"{len(unconsumed)} checkpoint keys have no place in the model: {sorted(unconsumed)}")
    return converted


def transformers_to_original(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `original_to_transformers` (file keys -> original keys), e.g. to run the authors' code."""
    originals: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        match = re.fullmatch(r"backbone\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)", key)
        if match:
            qkv.setdefault((match.group(1), match.group(3)), {})[match.group(2)] = value
        else:
            originals[_invert_key(key)] = value
    for (block, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise ValueError(f"layer {block} {kind}: incomplete query/key/value set {sorted(parts)}")
        originals[f"pretrained.blocks.{block}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    return originals


def _invert_key(key: str) -> str:
    for original, new in _FIXED.items():
        if new == key:
            return original
    rules = [
        (r"backbone\.encoder\.layer\.(\d+)\.norm(\d)\.(weight|bias)", "pretrained.blocks.{0}.norm{1}.{2}"),
        (r"backbone\.encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", "pretrained.blocks.{0}.attn.proj.{1}"),
        (r"backbone\.encoder\.layer\.(\d+)\.layer_scale(\d)\.lambda1", "pretrained.blocks.{0}.ls{1}.gamma"),
        (r"backbone\.encoder\.layer\.(\d+)\.mlp\.fc(\d)\.(weight|bias)", "pretrained.blocks.{0}.mlp.fc{1}.{2}"),
        (r"backbone\.encoder\.layer\.(\d+)\.mlp\.weights_in\.(weight|bias)", "pretrained.blocks.{0}.mlp.w12.{1}"),
        (r"backbone\.encoder\.layer\.(\d+)\.mlp\.weights_out\.(weight|bias)", "pretrained.blocks.{0}.mlp.w3.{1}"),
        (r"neck\.reassemble_stage\.layers\.(\d)\.projection\.(weight|bias)", "depth_head.projects.{0}.{1}"),
        (r"neck\.reassemble_stage\.layers\.(\d)\.resize\.(weight|bias)", "depth_head.resize_layers.{0}.{1}"),
    ]
    for pattern, template in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return template.format(*match.groups())
    match = re.fullmatch(r"neck\.convs\.(\d)\.weight", key)
    if match:
        return f"depth_head.scratch.layer{int(match.group(1)) + 1}_rn.weight"
    match = re.fullmatch(r"neck\.fusion_stage\.layers\.(\d)\.(projection|residual_layer(\d)\.convolution(\d))\.(weight|bias)", key)
    if match:
        refinenet = 4 - int(match.group(1))
        if match.group(2) == "projection":
            return f"depth_head.scratch.refinenet{refinenet}.out_conv.{match.group(5)}"
        return f"depth_head.scratch.refinenet{refinenet}.resConfUnit{match.group(3)}.conv{match.group(4)}.{match.group(5)}"
    raise ValueError(f"no original name for key {key!r}")


def memory_to_file(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `file_to_memory`: transformers 5's in-memory names -> the transformers-format file keys."""
    files, gates = {}, {}
    for key, value in state_dict.items():
        if ".mlp.gate_proj." in key or ".mlp.up_proj." in key:
            gates.setdefault(key.replace("mlp.gate_proj", "mlp.weights_in").replace("mlp.up_proj", "mlp.weights_in"),
                             {})["gate" if ".mlp.gate_proj." in key else "up"] = value
            continue
        for old, new in _FILE_TO_MEMORY:
            key = key.replace(new, old)
        files[key] = value
    for key, parts in gates.items():
        files[key] = torch.cat([parts["gate"], parts["up"]])  # gate rows first, as DINOv2's w12
    return files


def file_to_memory(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers-format file keys -> the in-memory names of transformers 5 (q_proj, gate_proj, ...)."""
    memory = {}
    for key, value in state_dict.items():
        if ".mlp.weights_in." in key:
            gate, up = value.chunk(2, dim=0)  # DINOv2's SwiGLU: silu(first half) * second half
            memory[key.replace("mlp.weights_in", "mlp.gate_proj")] = gate
            memory[key.replace("mlp.weights_in", "mlp.up_proj")] = up
            continue
        for old, new in _FILE_TO_MEMORY:
            key = key.replace(old, new)
        memory[key] = value
    return memory


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a `.pth`/`.pt`/`.bin` (weights only), a `.safetensors` file, or a folder of safetensors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise ValueError(f"{path}: folder holds no .safetensors weights")
        state_dict = {}
        for file in files:
            state_dict.update(_load_safetensors(file))
        return state_dict
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for unreadable / unsafe files
        raise ValueError(f"{path}: cannot read as a weights-only PyTorch checkpoint ({error})") from error
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(state_dict).__name__}")
    return state_dict


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except SafetensorError as error:
        raise ValueError(f"{path}: not a readable .safetensors file ({error})") from error


def convert_state_dict(
    state_dict: dict[str, torch.Tensor], filename: str = "", preset: str | None = None, **overrides
) -> DepthAnythingForDepthEstimation:
    """In memory: an original or transformers-format state dict -> a loaded `DepthAnythingForDepthEstimation`.

    Without `preset`, size and version are detected (`detect_preset`); with it, the preset alone defines the
    architecture (the file name still marks metric heads) and the weights are checked against it.
    """
    prefix, state_dict = _split_prefix(state_dict)
    name = filename or "checkpoint"
    encoder_width(state_dict, filename)  # fails early on something that is no Depth Anything checkpoint at all
    if preset is None:
        preset, detected_overrides = detect_preset(state_dict, filename)
    else:
        detected_overrides = metric_overrides(filename)
    config = DepthAnythingConfig.from_preset(preset, **{**detected_overrides, **overrides})
    model = DepthAnythingForDepthEstimation(config)
    block_key = re.compile(r"(?:pretrained\.blocks|backbone\.encoder\.layer)\.(\d+)\.")
    blocks = {match.group(1) for key in state_dict if (match := block_key.match(key))}
    headline = (
        f"{name} ({encoder_width(state_dict)} wide, {len(blocks)} blocks) does not fit preset {preset} "
        f"({config_name(config)})"
    )
    _check_fits(state_dict, model, headline, prefix)
    if any(key.startswith("pretrained.") for key in state_dict):
        state_dict = original_to_transformers(state_dict)
    model.load_state_dict(file_to_memory(state_dict), strict=True)
    return model.eval()


def _check_fits(state_dict: dict[str, torch.Tensor], model: torch.nn.Module, headline: str, prefix: str = "") -> None:
    """Compares the checkpoint with what `model` needs, in the checkpoint's own layout and key names.

    Raises a `ValueError` listing keys without a place in the model, weights the model needs but the checkpoint
    lacks, and weights of the wrong shape (checkpoint shape and needed shape), each with its count.
    """
    expected = {key: value.shape for key, value in model.state_dict().items()}  # in-memory names
    layout = "in-memory"
    if not any(".q_proj." in key or ".gate_proj." in key for key in state_dict):
        expected = {key: value.shape for key, value in memory_to_file(model.state_dict()).items()}
        layout = "transformers-format"
        if any(key.startswith("pretrained.") for key in state_dict):
            expected = {key: value.shape for key, value in transformers_to_original(memory_to_file(
                model.state_dict())).items()}
            layout = "original"
    # In the checkpoint's order (the model's for missing keys): embeddings first, where a width mismatch shows.
    unexpected = [key for key in state_dict if key not in expected]
    missing = [key for key in expected if key not in state_dict]
    wrong = [
        f"{prefix}{key} is {tuple(state_dict[key].shape)}, the model needs {tuple(expected[key])}"
        for key in state_dict
        if key in expected and tuple(state_dict[key].shape) != tuple(expected[key])
    ]
    problems = []
    if unexpected:
        problems.append(f"{len(unexpected)} checkpoint keys have no place in the model: {_listed(unexpected, prefix)}")
    if missing:
        problems.append(f"{len(missing)} weights missing from the checkpoint: {_listed(missing, prefix)}")
    if wrong:
        problems.append(f"{len(wrong)} weights of the wrong shape: {_listed(wrong)}")
    if problems:
        raise ValueError(f"{headline}; {layout} keys: " + "; ".join(problems))


def _listed(items: list[str], prefix: str = "") -> str:
    shown = ", ".join(f"{prefix}{item}" for item in items[:MAX_LISTED])
    return shown + (f", ... ({len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else "")


def config_name(config: DepthAnythingConfig) -> str:
    backbone = config.backbone_config
    out_indices = list(backbone.out_indices)
    return f"{backbone.hidden_size} wide, {backbone.num_hidden_layers} blocks, out_indices {out_indices}"


def preset_of(config: DepthAnythingConfig) -> str:
    """The preset whose encoder width and tapped blocks match `config` ("custom" if none)."""
    backbone = config.backbone_config
    for name, values in PRESETS.items():
        if values["hidden_size"] == backbone.hidden_size and values["out_indices"] == list(backbone.out_indices):
            return name
    return "custom"


def load_checkpoint(path: str | os.PathLike, preset: str | None = None, **overrides) -> DepthAnythingForDepthEstimation:
    """Any supported checkpoint (see the module docstring) -> a loaded model in eval mode."""
    path = Path(path)
    if path.is_dir() and (path / "config.json").exists() and preset is None and not overrides:
        return DepthAnythingForDepthEstimation.from_pretrained(path).eval()
    return convert_state_dict(read_checkpoint(path), filename=path.name, preset=preset, **overrides)


def convert(
    checkpoint: str | os.PathLike, output_dir: str | os.PathLike, preset: str | None = None, **overrides
) -> Path:
    """Convert `checkpoint` and write a `from_pretrained` folder: safetensors, config, processor, model card."""
    from .model_card import card_model_name, make_model_card

    model = load_checkpoint(checkpoint, preset=preset, **overrides)
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    processor = DepthAnythingImageProcessor()
    processor.save_pretrained(output_dir)
    name = preset_of(model.config)
    license_id = LICENSES.get(name, LICENSES.get(name.split("-")[0], "other"))
    card = make_model_card(
        model.config,
        license=license_id,
        model_name=card_model_name(output_dir),
        processor=processor,
        source=f"Converted from `{Path(checkpoint).name}`.",
    )
    card.save(output_dir / "README.md")
    logger.info("wrote %s", output_dir)
    return output_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeling_depth_anything.convert", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="original .pth, transformers .safetensors, or folder")
    parser.add_argument("--output", required=True, help="folder to write (from_pretrained layout)")
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS),
                        help="the architecture, instead of detecting it (e.g. v1-small, or tiny for a 192-wide model)")
    parser.add_argument("--metric", choices=["indoor", "outdoor"], default=None, help="force a metric head")
    parser.add_argument("--max-depth", type=float, default=None, help="metric head's maximum depth in metres")
    parser.add_argument("--interpolation", choices=["original", "transformers"], default=None,
                        help="position-embedding interpolation written into the config (default: original)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    overrides: dict = {}
    if args.metric:
        overrides = {"depth_estimation_type": "metric", "max_depth": 20 if args.metric == "indoor" else 80}
    if args.max_depth is not None:
        overrides.update(depth_estimation_type="metric", max_depth=args.max_depth)
    if args.interpolation:
        overrides["position_embedding_interpolation"] = args.interpolation
    try:
        convert(args.checkpoint, args.output, preset=args.preset, **overrides)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
