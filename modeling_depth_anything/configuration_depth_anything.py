"""Depth Anything configuration: a DINOv2 backbone config plus the DPT neck and head hyperparameters.

The field names and `model_type` are those of transformers' built-in `DepthAnythingConfig`, so a `config.json` saved
from here loads in plain transformers (built-in classes) as well as through `trust_remote_code` (our classes, via
`auto_map`). The one extra field, `position_embedding_interpolation`, is ignored by the built-in class.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from transformers import AutoConfig, Dinov2Config, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# Size variants are data. `out_indices` counts transformers' backbone stages, where stage 0 is the embeddings, so the
# original code's 0-based tapped blocks [2, 5, 8, 11] (V2-S) become [3, 6, 9, 12] here (facts §1).
PRESETS: dict[str, dict[str, Any]] = {
    "v1-small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, out_indices=[9, 10, 11, 12],
                     neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64),
    "v1-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, out_indices=[9, 10, 11, 12],
                    neck_hidden_sizes=[96, 192, 384, 768], fusion_hidden_size=128),
    "v1-large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, out_indices=[21, 22, 23, 24],
                     neck_hidden_sizes=[256, 512, 1024, 1024], fusion_hidden_size=256),
    "v2-small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, out_indices=[3, 6, 9, 12],
                     neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64),
    "v2-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, out_indices=[3, 6, 9, 12],
                    neck_hidden_sizes=[96, 192, 384, 768], fusion_hidden_size=128),
    "v2-large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, out_indices=[5, 12, 18, 24],
                     neck_hidden_sizes=[256, 512, 1024, 1024], fusion_hidden_size=256),
    # V2-G was never released; DINOv2-g uses a SwiGLU MLP whose hidden size transformers derives from mlp_ratio=4.
    "v2-giant": dict(hidden_size=1536, num_hidden_layers=40, num_attention_heads=24, out_indices=[10, 20, 30, 40],
                     neck_hidden_sizes=[1536, 1536, 1536, 1536], fusion_hidden_size=384, use_swiglu_ffn=True),
    # Not a release: a ~2M-parameter model for tests and CPU-scale training runs.
    "tiny": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, out_indices=[1, 2, 3, 4],
                 neck_hidden_sizes=[24, 48, 96, 192], fusion_hidden_size=32),
}

# Keys of a preset (or of `from_preset` overrides) that belong to the DINOv2 backbone config.
BACKBONE_KEYS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "out_indices", "use_swiglu_ffn", "mlp_ratio",
    "image_size", "layerscale_value", "drop_path_rate", "layer_norm_eps",
)
INTERPOLATION_MODES = ("original", "transformers")


def _dinov2_config(**kwargs) -> Dinov2Config:
    """DINOv2 backbone config as the Depth Anything releases use it: 518 px (37x37 grid), raw tapped tokens."""
    defaults = dict(image_size=518, patch_size=14, layerscale_value=1.0, reshape_hidden_states=False,
                    apply_layernorm=True, hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                    out_indices=[3, 6, 9, 12])
    defaults.update(kwargs)
    return Dinov2Config(**defaults)


class DepthAnythingConfig(PreTrainedConfig):
    r"""
    Configuration of a Depth Anything (V1 or V2) model: DINOv2 encoder, DPT reassemble/fusion neck, depth head.

    Defaults give the V2-Small architecture; use `DepthAnythingConfig.from_preset(name, **overrides)` for the others.

    Args:
        backbone_config (`dict` or `Dinov2Config`, *optional*):
            The DINOv2 encoder; `out_indices` selects the tapped blocks (1-based, 0 = embeddings). Defaults to ViT-S/14.
        patch_size (`int`, *optional*, defaults to 14):
            Patch size of the encoder; input height and width must be multiples of it.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the truncated normal initialiser.
        reassemble_hidden_size (`int`, *optional*, defaults to 384):
            Channels of the tapped encoder tokens (the encoder width).
        reassemble_factors (`list[float]`, *optional*, defaults to `[4, 2, 1, 0.5]`):
            Resize factor of each reassemble layer (transposed conv up, identity, strided conv down).
        neck_hidden_sizes (`list[int]`, *optional*, defaults to `[48, 96, 192, 384]`):
            Channels of each reassembled feature map.
        fusion_hidden_size (`int`, *optional*, defaults to 64):
            Channels of the fusion blocks.
        head_in_index (`int`, *optional*, defaults to -1):
            Which fused map feeds the head (the last, finest one).
        head_hidden_size (`int`, *optional*, defaults to 32):
            Channels of the head's second convolution.
        depth_estimation_type (`str`, *optional*, defaults to `"relative"`):
            `"relative"` (ReLU output: affine-invariant disparity) or `"metric"` (Sigmoid x `max_depth`: metres).
        max_depth (`float`, *optional*, defaults to 1):
            Scale of the metric head's sigmoid; 20 for indoor (Hypersim) and 80 for outdoor (VKITTI2) models.
        position_embedding_interpolation (`str`, *optional*, defaults to `"original"`):
            How the 37x37 position grid is resized for other inputs: `"original"` (the authors' bicubic with
            `scale_factor=(h + 0.1) / 37`) or `"transformers"` (bicubic with `size=(h, w)`). They differ by ~4e-3
            relative on non-518 inputs; use `"original"` to match the released models' numbers.
    """

    model_type = "depth_anything"
    sub_configs_defaults: ClassVar = {
        "backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="dinov2",
                                         init_kwargs=_dinov2_config().to_dict()),
    }

    backbone_config: dict | PreTrainedConfig | None = None
    patch_size: int = 14
    initializer_range: float = 0.02
    reassemble_hidden_size: int = 384
    reassemble_factors: list[int | float] | tuple[int | float, ...] = (4, 2, 1, 0.5)
    neck_hidden_sizes: list[int] | tuple[int, ...] = (48, 96, 192, 384)
    fusion_hidden_size: int = 64
    head_in_index: int = -1
    head_hidden_size: int = 32
    depth_estimation_type: str = "relative"
    max_depth: int | float = 1
    position_embedding_interpolation: str = "original"

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.reassemble_factors = list(self.reassemble_factors)
        self.neck_hidden_sizes = list(self.neck_hidden_sizes)
        self._validate()

    def _validate(self) -> None:
        if self.depth_estimation_type not in ("relative", "metric"):
            raise ValueError(f"depth_estimation_type must be 'relative' or 'metric', got {self.depth_estimation_type!r}")
        if self.position_embedding_interpolation not in INTERPOLATION_MODES:
            raise ValueError(
                f"position_embedding_interpolation must be one of {INTERPOLATION_MODES}, "
                f"got {self.position_embedding_interpolation!r}"
            )
        if not isinstance(self.max_depth, (int, float)) or isinstance(self.max_depth, bool) or not (
            math.isfinite(self.max_depth) and self.max_depth > 0
        ):
            raise ValueError(f"max_depth must be a positive finite number, got {self.max_depth!r}")
        if len(self.neck_hidden_sizes) != len(self.reassemble_factors):
            raise ValueError(
                f"neck_hidden_sizes {self.neck_hidden_sizes} and reassemble_factors {self.reassemble_factors} "
                "must have the same length"
            )
        for factor in self.reassemble_factors:
            if not (factor == 1 or (factor > 1 and float(factor).is_integer()) or (0 < factor < 1 and (1 / factor).is_integer())):
                raise ValueError(f"reassemble_factors must be integers >= 1 or 1/n, got {factor!r}")
        backbone = self.backbone_config
        if getattr(backbone, "model_type", None) != "dinov2":
            raise ValueError(f"backbone_config must be a DINOv2 config, got model_type {getattr(backbone, 'model_type', None)!r}")
        if len(backbone.out_indices) != len(self.neck_hidden_sizes):
            raise ValueError(
                f"backbone out_indices {list(backbone.out_indices)} must tap one block per neck stage "
                f"({len(self.neck_hidden_sizes)})"
            )
        if backbone.hidden_size != self.reassemble_hidden_size:
            raise ValueError(
                f"reassemble_hidden_size ({self.reassemble_hidden_size}) must equal the backbone width "
                f"({backbone.hidden_size})"
            )
        if backbone.patch_size != self.patch_size:
            raise ValueError(f"patch_size ({self.patch_size}) must equal the backbone's ({backbone.patch_size})")
        if backbone.hidden_size % backbone.num_attention_heads:
            raise ValueError(
                f"hidden_size {backbone.hidden_size} is not divisible by num_attention_heads {backbone.num_attention_heads}"
            )

    @classmethod
    def from_preset(cls, name: str, **overrides) -> DepthAnythingConfig:
        """Build the config of a released architecture (`PRESETS`), with any field overridden.

        Overrides named in `BACKBONE_KEYS` go to the DINOv2 backbone config; the rest to this config. Example:
        `DepthAnythingConfig.from_preset("v2-small", depth_estimation_type="metric", max_depth=20)`.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        values = {**PRESETS[name], **overrides}
        backbone = {key: values.pop(key) for key in BACKBONE_KEYS if key in values}
        values.setdefault("reassemble_hidden_size", backbone["hidden_size"])
        return cls(backbone_config=_dinov2_config(**backbone), **values)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        # The built-in config is a strict dataclass that rejects a float max_depth (facts §8): write 20, not 20.0.
        if isinstance(output.get("max_depth"), float) and output["max_depth"].is_integer():
            output["max_depth"] = int(output["max_depth"])
        return output


__all__ = ["DepthAnythingConfig", "PRESETS"]
