"""Depth Anything (V1 and V2): transformers' DINOv2 encoder, a DPT reassemble/fusion neck and a depth head.

Read top to bottom: position-embedding interpolation, reassemble, fusion, neck, head, then the model. Parameter names
match the transformers-format checkpoints (`backbone.*`, `neck.reassemble_stage.*`, `neck.convs.*`,
`neck.fusion_stage.*`, `head.conv{1,2,3}`), so official `*-hf` checkpoints load with no missing or unexpected keys.

Adapted from https://github.com/DepthAnything/Depth-Anything-V2/blob/main/depth_anything_v2/dpt.py (DPTHead,
FeatureFusionBlock) and transformers' models/depth_anything/modeling_depth_anything.py; deviations are commented.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import Dinov2Backbone, PreTrainedModel
from transformers.modeling_outputs import DepthEstimatorOutput
from transformers.models.dinov2.modeling_dinov2 import Dinov2Embeddings

from .configuration_depth_anything import DepthAnythingConfig
from .losses import scale_and_shift_invariant_loss


@dataclass
class DepthAnythingDepthEstimatorOutput(DepthEstimatorOutput):
    r"""
    `DepthEstimatorOutput` plus the encoder's final patch features.

    patch_features (`torch.FloatTensor` of shape `(batch_size, num_patches, hidden_size)`):
        Final layer-normed patch tokens of the encoder (CLS token dropped), as DINOv2's `x_norm_patchtokens`. The
        feature-alignment loss compares them with a frozen DINOv2's, without a second encoder pass.
    """

    patch_features: torch.FloatTensor | None = None


class DepthAnythingEmbeddings(Dinov2Embeddings):
    """DINOv2 embeddings whose position-grid interpolation follows `config.position_embedding_interpolation`."""

    def __init__(self, config: DepthAnythingConfig) -> None:
        super().__init__(config.backbone_config)
        self.interpolation = config.position_embedding_interpolation

    def interpolate_pos_encoding(self, embeddings: torch.Tensor, height: int, width: int) -> torch.Tensor:
        if self.interpolation == "transformers":
            return super().interpolate_pos_encoding(embeddings, height, width)
        # The authors' DINOv2 (dinov2/models/vision_transformer.py, interpolate_offset=0.1): bicubic with
        # scale_factor=(h + 0.1) / grid. The offset avoids a floor() rounding down; the scale_factor (not size=)
        # also sets the sampling grid, which is why this differs from the "transformers" mode by ~4e-3 relative.
        num_patches = embeddings.shape[1] - 1
        num_positions = self.position_embeddings.shape[1] - 1
        if not torch.jit.is_tracing() and num_patches == num_positions and height == width:
            return self.position_embeddings
        class_pos_embed = self.position_embeddings[:, :1]
        patch_pos_embed = self.position_embeddings[:, 1:]
        dim = embeddings.shape[-1]
        grid = int(math.sqrt(num_positions))
        patch_height, patch_width = height // self.patch_size, width // self.patch_size
        patch_pos_embed = patch_pos_embed.reshape(1, grid, grid, dim).permute(0, 3, 1, 2)  # (1, dim, grid, grid)
        patch_pos_embed = nn.functional.interpolate(
            patch_pos_embed.float(),  # bicubic in half precision shifts the embeddings
            scale_factor=((patch_height + 0.1) / grid, (patch_width + 0.1) / grid),
            mode="bicubic",
            align_corners=False,
        ).to(self.position_embeddings.dtype)  # (1, dim, patch_height, patch_width)
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).reshape(1, -1, dim)  # (1, patch_h * patch_w, dim)
        return torch.cat((class_pos_embed, patch_pos_embed), dim=1)


class DepthAnythingReassembleLayer(nn.Module):
    """1x1 projection to the stage width, then resize: x4/x2 transposed conv, identity, or x0.5 strided conv."""

    def __init__(self, config: DepthAnythingConfig, channels: int, factor: float) -> None:
        super().__init__()
        self.projection = nn.Conv2d(config.reassemble_hidden_size, channels, kernel_size=1)
        if factor > 1:
            self.resize = nn.ConvTranspose2d(channels, channels, kernel_size=int(factor), stride=int(factor))
        elif factor == 1:
            self.resize = nn.Identity()
        else:
            self.resize = nn.Conv2d(channels, channels, kernel_size=3, stride=round(1 / factor), padding=1)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        return self.resize(self.projection(hidden_state))


class DepthAnythingReassembleStage(nn.Module):
    """Turns the tapped token sequences into image-like maps at four resolutions (CLS dropped, no readout)."""

    def __init__(self, config: DepthAnythingConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DepthAnythingReassembleLayer(config, channels, factor)
            for channels, factor in zip(config.neck_hidden_sizes, config.reassemble_factors, strict=True)
        )

    def forward(self, hidden_states: list[torch.Tensor], patch_height: int, patch_width: int) -> list[torch.Tensor]:
        maps = []
        for layer, hidden_state in zip(self.layers, hidden_states, strict=True):
            hidden_state = hidden_state[:, 1:]  # (batch, patch_h * patch_w, hidden): drop CLS
            batch_size, _, channels = hidden_state.shape
            hidden_state = hidden_state.reshape(batch_size, patch_height, patch_width, channels)
            hidden_state = hidden_state.permute(0, 3, 1, 2).contiguous()  # (batch, hidden, patch_h, patch_w)
            maps.append(layer(hidden_state))
        return maps


class DepthAnythingPreActResidualLayer(nn.Module):
    """RefineNet residual conv unit: ReLU -> conv3x3 -> ReLU -> conv3x3, plus the input."""

    def __init__(self, config: DepthAnythingConfig) -> None:
        super().__init__()
        width = config.fusion_hidden_size
        self.activation1 = nn.ReLU()
        self.convolution1 = nn.Conv2d(width, width, kernel_size=3, padding=1)
        self.activation2 = nn.ReLU()
        self.convolution2 = nn.Conv2d(width, width, kernel_size=3, padding=1)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        residual = hidden_state
        hidden_state = self.convolution1(self.activation1(hidden_state))
        hidden_state = self.convolution2(self.activation2(hidden_state))
        return hidden_state + residual


class DepthAnythingFeatureFusionLayer(nn.Module):
    """RefineNet fusion block: add the (refined) skip map, refine, upsample to the next map's size, 1x1 project."""

    def __init__(self, config: DepthAnythingConfig) -> None:
        super().__init__()
        self.projection = nn.Conv2d(config.fusion_hidden_size, config.fusion_hidden_size, kernel_size=1)
        self.residual_layer1 = DepthAnythingPreActResidualLayer(config)
        self.residual_layer2 = DepthAnythingPreActResidualLayer(config)

    def forward(
        self, hidden_state: torch.Tensor, residual: torch.Tensor | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        if residual is not None:
            # Shapes always agree: the previous block upsampled to exactly this map's size.
            hidden_state = hidden_state + self.residual_layer1(residual)
        hidden_state = self.residual_layer2(hidden_state)
        resize = {"scale_factor": 2} if size is None else {"size": size}
        hidden_state = nn.functional.interpolate(
            hidden_state, **resize, mode="bilinear", align_corners=True
        )  # (batch, fusion, next_h, next_w)
        return self.projection(hidden_state)


class DepthAnythingFeatureFusionStage(nn.Module):
    """Four fusion blocks, deepest map first; each output is upsampled to the next (finer) map's size."""

    def __init__(self, config: DepthAnythingConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DepthAnythingFeatureFusionLayer(config) for _ in config.neck_hidden_sizes)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        features = features[::-1]  # deepest (coarsest) first
        fused_maps, fused = [], None
        for index, (feature, layer) in enumerate(zip(features, self.layers, strict=True)):
            size = features[index + 1].shape[2:] if index + 1 < len(features) else None
            fused = layer(feature, size=size) if fused is None else layer(fused, feature, size=size)
            fused_maps.append(fused)
        return fused_maps


class DepthAnythingNeck(nn.Module):
    """DPT neck: reassemble the tapped tokens, 3x3 conv each map to the fusion width, fuse coarse to fine."""

    def __init__(self, config: DepthAnythingConfig) -> None:
        super().__init__()
        self.reassemble_stage = DepthAnythingReassembleStage(config)
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, config.fusion_hidden_size, kernel_size=3, padding=1, bias=False)
            for channels in config.neck_hidden_sizes
        )
        self.fusion_stage = DepthAnythingFeatureFusionStage(config)

    def forward(self, hidden_states: list[torch.Tensor], patch_height: int, patch_width: int) -> list[torch.Tensor]:
        maps = self.reassemble_stage(hidden_states, patch_height, patch_width)
        features = [conv(feature) for conv, feature in zip(self.convs, maps, strict=True)]
        return self.fusion_stage(features)


class DepthAnythingDepthEstimationHead(nn.Module):
    """conv3x3 (F -> F/2), bilinear to the input size, conv3x3 (-> 32), ReLU, conv1x1 (-> 1), then ReLU (relative
    disparity) or Sigmoid x max_depth (metric depth in metres)."""

    def __init__(self, config: DepthAnythingConfig) -> None:
        super().__init__()
        self.head_in_index = config.head_in_index
        self.patch_size = config.patch_size
        self.metric = config.depth_estimation_type == "metric"
        self.max_depth = float(config.max_depth)
        width = config.fusion_hidden_size
        self.conv1 = nn.Conv2d(width, width // 2, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(width // 2, config.head_hidden_size, kernel_size=3, padding=1)
        self.activation1 = nn.ReLU()
        self.conv3 = nn.Conv2d(config.head_hidden_size, 1, kernel_size=1)
        self.activation2 = nn.Sigmoid() if self.metric else nn.ReLU()

    def forward(self, fused_maps: list[torch.Tensor], patch_height: int, patch_width: int) -> torch.Tensor:
        hidden_state = self.conv1(fused_maps[self.head_in_index])
        hidden_state = nn.functional.interpolate(
            hidden_state,
            size=(patch_height * self.patch_size, patch_width * self.patch_size),
            mode="bilinear",
            align_corners=True,
        )  # (batch, fusion / 2, height, width)
        hidden_state = self.conv3(self.activation1(self.conv2(hidden_state)))
        depth = self.activation2(hidden_state)
        if self.metric:
            # transformers' built-in also multiplies relative outputs by max_depth; relative models here ignore it.
            depth = depth * self.max_depth
        return depth.squeeze(1)  # (batch, height, width)


class DepthAnythingPreTrainedModel(PreTrainedModel):
    config_class = DepthAnythingConfig
    config: DepthAnythingConfig
    base_model_prefix = "depth_anything"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["Dinov2Layer"]


class DepthAnythingForDepthEstimation(DepthAnythingPreTrainedModel):
    """Depth Anything: DINOv2 encoder -> DPT neck -> depth head, predicting relative disparity (or metric depth)."""

    def __init__(self, config: DepthAnythingConfig) -> None:
        super().__init__(config)
        self.backbone = _build_backbone(config)
        self.neck = DepthAnythingNeck(config)
        self.head = DepthAnythingDepthEstimationHead(config)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        valid_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | int | Sequence[int] | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> DepthAnythingDepthEstimatorOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
                ImageNet-normalised images; height and width multiples of `config.patch_size` (the image processor
                makes them so).
            labels (`torch.FloatTensor` of shape `(batch_size, height, width)`, *optional*):
                Ground-truth disparity (any scale and shift); gives `loss`, the affine-invariant MAE.
            valid_mask (`torch.BoolTensor` of shape `(batch_size, height, width)`, *optional*):
                Pixels of `labels` to use; non-finite labels are always ignored.
            output_attentions (`bool`, *optional*, defaults to `config.output_attentions`):
                Return the encoder's attention maps (needs eager attention: load with
                `attn_implementation={"backbone_config": "eager"}`).
            output_hidden_states (`bool`, `int` or `list[int]`, *optional*, defaults to `config.output_hidden_states`):
                Return the encoder's hidden states (embeddings, then one per block). Indices (negative ones count from
                the end) return only those, with `None` in the other places, as transformers' output capturing does.
            return_dict (`bool`, *optional*, defaults to `config.return_dict`):
                `False` returns `output.to_tuple()`: the fields that are not `None`, in order (loss first if any).
        """
        self._check_pixel_values(pixel_values)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        # The backbone computes every hidden state anyway (its feature maps are taken from them); asking for all of
        # them costs nothing and gives the last block's output when it is not tapped. The selection happens below.
        outputs = self.backbone(pixel_values, output_hidden_states=True, output_attentions=output_attentions)
        feature_maps = outputs.feature_maps  # each (batch, 1 + patch_h * patch_w, hidden), layer-normed
        backbone = self.backbone.config
        # The last tapped block is the last block in every release; otherwise the last block's output is normed here.
        last_is_tapped = backbone.out_indices[-1] == backbone.num_hidden_layers
        last = feature_maps[-1] if last_is_tapped else self.backbone.layernorm(outputs.hidden_states[-1])
        patch_features = last[:, 1:]  # (batch, patch_h * patch_w, hidden)

        patch_height = pixel_values.shape[2] // self.config.patch_size
        patch_width = pixel_values.shape[3] // self.config.patch_size
        fused_maps = self.neck(list(feature_maps), patch_height, patch_width)
        predicted_depth = self.head(fused_maps, patch_height, patch_width)  # (batch, height, width)

        loss = None
        if labels is not None:
            if labels.shape != predicted_depth.shape:
                raise ValueError(f"labels must have shape {tuple(predicted_depth.shape)}, got {tuple(labels.shape)}")
            loss = scale_and_shift_invariant_loss(predicted_depth, labels, valid_mask)

        output = DepthAnythingDepthEstimatorOutput(
            loss=loss,
            predicted_depth=predicted_depth,
            hidden_states=_select_hidden_states(outputs.hidden_states, output_hidden_states),
            attentions=outputs.attentions if output_attentions else None,
            patch_features=patch_features,
        )
        # One definition of the tuple form: the same as `output.to_tuple()` (Nones dropped), so that an index means
        # the same thing whichever way the caller got the tuple.
        return output if return_dict else output.to_tuple()

    def _check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        patch = self.config.patch_size
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            shape = (
                tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
            )
            raise ValueError(f"pixel_values must be a (batch, 3, height, width) tensor, got {shape}")
        height, width = pixel_values.shape[2:]
        if height % patch or width % patch or height == 0 or width == 0:
            raise ValueError(
                f"pixel_values height and width must be positive multiples of {patch}, got {height}x{width}; "
                "resize with DepthAnythingImageProcessor"
            )


def _select_hidden_states(
    hidden_states: tuple[torch.Tensor, ...], request: bool | int | Sequence[int] | None
) -> tuple[torch.Tensor | None, ...] | None:
    """`output_hidden_states` applied to all the encoder's hidden states: all, none, or the listed indices.

    Indices keep their place (the others become `None`); negative ones count from the end and out-of-range ones
    select nothing, as in transformers' `resolve_hidden_states_indices`.
    """
    if request is None or isinstance(request, bool):
        return tuple(hidden_states) if request else None
    try:
        indices = (
            [operator.index(request)] if not isinstance(request, Sequence) else [operator.index(i) for i in request]
        )
    except TypeError as error:
        raise ValueError(f"output_hidden_states must be a bool, an int or a list of ints, got {request!r}") from error
    count = len(hidden_states)
    selected = {index % count for index in indices if -count <= index < count}
    return tuple(hidden if index in selected else None for index, hidden in enumerate(hidden_states))


def _build_backbone(config: DepthAnythingConfig) -> Dinov2Backbone:
    """transformers' DINOv2 backbone, with embeddings that honour `position_embedding_interpolation`."""
    backbone = Dinov2Backbone(config.backbone_config)
    backbone.embeddings = DepthAnythingEmbeddings(config)  # same parameter names; initialised by post_init
    return backbone


__all__ = ["DepthAnythingForDepthEstimation", "DepthAnythingPreTrainedModel", "DepthAnythingDepthEstimatorOutput"]
