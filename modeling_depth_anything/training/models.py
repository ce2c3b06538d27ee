"""The models a stage trains or consults: build from a preset or a folder, DINOv2 encoder init, the frozen encoder
of the feature-alignment loss."""

from __future__ import annotations

import json
import logging
import os

import torch

from ..configuration_depth_anything import DepthAnythingConfig
from ..modeling_depth_anything import DepthAnythingForDepthEstimation

logger = logging.getLogger(__name__)


def _is_depth_anything(spec: str) -> bool:
    """Whether `spec` (a folder or Hub id) holds a Depth Anything model rather than a plain DINOv2."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(spec, trust_remote_code=False) if not os.path.isdir(spec) else None
    if config is None:
        path = os.path.join(spec, "config.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{spec}: no config.json (need a from_pretrained folder)")
        with open(path, encoding="utf-8") as handle:
            return json.load(handle).get("model_type") == "depth_anything"
    return config.model_type == "depth_anything"


def load_encoder_state(spec: str) -> dict[str, torch.Tensor]:
    """DINOv2 encoder weights from a Hub id or folder (`Dinov2Model`), or from a Depth Anything model's encoder.

    Returns a state dict with the key names of `Dinov2Model` / `Dinov2Backbone` (`embeddings.*`, `encoder.*`,
    `layernorm.*`).
    """
    from transformers import Dinov2Model

    if _is_depth_anything(spec):
        return DepthAnythingForDepthEstimation.from_pretrained(spec).backbone.state_dict()
    return Dinov2Model.from_pretrained(spec).state_dict()


def copy_encoder_weights(model: DepthAnythingForDepthEstimation, state: dict[str, torch.Tensor], source: str) -> None:
    """Load DINOv2 weights into `model.backbone`; every backbone tensor must be provided, with the right shape."""
    own = model.backbone.state_dict()
    missing = sorted(set(own) - set(state))
    wrong = sorted(k for k in own if k in state and own[k].shape != state[k].shape)
    if missing or wrong:
        raise ValueError(
            f"{source}: encoder weights do not fit the model's backbone (missing {missing[:5]}, "
            f"wrong shape {[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in wrong[:5]]}); "
            "pick a DINOv2 of the same size as the preset"
        )
    model.backbone.load_state_dict({k: state[k] for k in own}, strict=True)


def build_model(model_args) -> DepthAnythingForDepthEstimation:
    """The model to train: `init_from` a full model, or `preset` with the encoder from `encoder_init`."""
    if model_args.init_from:
        logger.info(f"Initialising the whole model from {model_args.init_from}")
        model = DepthAnythingForDepthEstimation.from_pretrained(model_args.init_from)
    else:
        model = DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset(model_args.preset))
        if model_args.decoder_init == "pytorch":
            reset_decoder(model)
        if model_args.encoder_init != "random":
            logger.info(f"Initialising the encoder from {model_args.encoder_init}")
            copy_encoder_weights(model, load_encoder_state(model_args.encoder_init), model_args.encoder_init)
    freeze_unused_parameters(model)
    if model_args.channels_last:
        model = model.to(memory_format=torch.channels_last)  # faster convolutions (1.4x measured on CPU, bf16)
    return model


def reset_decoder(model: DepthAnythingForDepthEstimation) -> None:
    """PyTorch's default init for every convolution of the neck and head (the original DPT code's decoder init)."""
    for module in [*model.neck.modules(), *model.head.modules()]:
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            module.reset_parameters()


# Parameters that exist in the checkpoints but take no part in depth estimation: DINOv2's mask token (masked image
# modelling only) and the first residual unit of the deepest fusion block, which has no previous map to refine
# (as in the original DPT). Left trainable they break DDP ("parameters that were not used in producing loss") and
# weight decay would shrink them for nothing.
UNUSED_PARAMETER_PREFIXES = ("backbone.embeddings.mask_token", "neck.fusion_stage.layers.0.residual_layer1.")


def freeze_unused_parameters(model: torch.nn.Module) -> None:
    """Set `requires_grad=False` on the parameters named in `UNUSED_PARAMETER_PREFIXES`."""
    for name, parameter in model.named_parameters():
        if name.startswith(UNUSED_PARAMETER_PREFIXES):
            parameter.requires_grad_(False)


class FrozenEncoder(torch.nn.Module):
    """A frozen DINOv2 (transformers' `Dinov2Backbone`) returning its final layer-normed patch tokens.

    The counterpart of the student's `out.patch_features` for the feature-alignment loss. It is built as the encoder
    of a Depth Anything model of the student's config, so the position grid is interpolated exactly as in the student
    (`position_embedding_interpolation`; transformers' `Dinov2Model` formula differs a lot at small inputs).
    """

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenEncoder:
        return super().train(False)  # always in eval mode

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (batch, 3, H, W) -> patch features (batch, H/14 * W/14, hidden)."""
        outputs = self.encoder(pixel_values, output_hidden_states=True)
        last = self.encoder.layernorm(outputs.hidden_states[-1])  # (batch, 1 + patches, hidden)
        return last[:, 1:]  # (batch, patches, hidden): CLS dropped


def build_frozen_encoder(spec: str, model: DepthAnythingForDepthEstimation) -> FrozenEncoder:
    """The frozen DINOv2 for feature alignment: a Hub id/folder, a Depth Anything folder's encoder, or `"random"`
    (a copy of `model`'s current encoder: in tests the student's random init stands in for DINOv2)."""
    holder = DepthAnythingForDepthEstimation(model.config)
    state = model.backbone.state_dict() if spec == "random" else load_encoder_state(spec)
    copy_encoder_weights(holder, state, spec)
    return FrozenEncoder(holder.backbone)
