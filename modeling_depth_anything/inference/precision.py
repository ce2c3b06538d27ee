"""Device and precision: where the model runs and in which dtype, decided from the hardware."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def resolve_device(device: str = "auto") -> torch.device:
    """`"auto"` picks CUDA, then MPS, then CPU; any other string is passed to `torch.device`."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r} ({error})") from error


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matmul (AVX-512-bf16 or AMX), where bf16 is ~4x faster than fp32.

    Read from /proc/cpuinfo (Linux); `torch.backends.cpu.get_cpu_capability()` reports only the vector ISA
    ("AVX512"), not the bf16 extension, except for "AMX" builds/CPUs.
    """
    capability = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else ""
    if "AMX" in capability.upper():
        return True
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Weight and activation dtype: `"auto"` gives bf16 where the hardware runs it natively, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_supports_bf16():
            return torch.bfloat16
        return torch.float32
    if precision == "float16" and device.type == "cpu":
        raise ValueError("precision 'float16' is slow or unsupported on CPU; use 'bfloat16' or 'float32'")
    return getattr(torch, precision)
