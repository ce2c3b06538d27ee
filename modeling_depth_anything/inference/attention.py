"""The CPU attention kernel of the fast path and the switch between attention implementations."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

MATMUL_ATTENTION = "depth_anything_matmul"


def matmul_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention as matmul -> softmax -> matmul per (image, head), for bf16 on CPU (a transformers attention function).

    query, key, value: (batch, heads, tokens, head_dim). Returns ((batch, tokens, heads, head_dim), None).
    On CPUs with AVX-512-bf16, torch's fused SDPA kernel runs bf16 no faster than fp32 (37 ms vs 35 ms per V2-S
    layer at 518x518, one core), while bf16 matmuls run near the matmul peak. One (image, head) at a time keeps the
    (tokens x tokens) scores small enough to stay in cache: per V2-S layer, one core, this takes 25 ms at 518x518
    (SDPA 37), 47 ms at 518x686 (SDPA 65, all heads at once 79), 106 ms for 4 images at 518x518 (SDPA 149).
    The scale is applied to the query (tokens x head_dim) rather than to the scores (tokens x tokens).

    Under `torch.compile` (the `compile` backend) all heads go at once: dynamo cannot trace `mm(..., out=)` into a
    non-contiguous slice (a graph break per layer), and inductor fuses the scale and softmax into one kernel; with
    inductor freezing in bf16 at 518x518, one core, the whole model took 0.741 s this way, 0.762 s with a per-head
    loop and `torch.stack`, 1.022 s with SDPA.
    """
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    query = query * scaling
    if attention_mask is not None or torch.compiler.is_compiling():  # DINOv2 passes no mask
        scores = torch.matmul(query, key.transpose(-1, -2))  # (batch, heads, tokens, tokens)
        if attention_mask is not None:
            scores = scores + attention_mask
        output = torch.matmul(torch.softmax(scores, dim=-1), value)  # (batch, heads, tokens, head_dim)
        return output.transpose(1, 2).contiguous(), None
    output = torch.empty_like(query)  # (batch, heads, tokens, head_dim)
    for image in range(query.shape[0]):
        for head in range(query.shape[1]):
            scores = torch.mm(query[image, head], key[image, head].transpose(0, 1))  # (tokens, tokens)
            torch.mm(torch.softmax(scores, dim=-1), value[image, head], out=output[image, head])
    return output.transpose(1, 2).contiguous(), None  # (batch, tokens, heads, head_dim)


def _register_matmul_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(MATMUL_ATTENTION, matmul_attention)


def set_attention(model: torch.nn.Module, implementation: str) -> None:
    """Switch the DINOv2 encoder's attention to `implementation` with transformers' `set_attn_implementation`.

    Addressed to the `backbone_config` sub-config: the Depth Anything config itself takes no attention implementation
    (`"sdpa"` on it raises, facts §8); ours and transformers' built-in class both accept this form.
    """
    if implementation == MATMUL_ATTENTION:
        _register_matmul_attention()
    model.set_attn_implementation({"backbone_config": implementation})
