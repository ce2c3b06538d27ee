"""Device and precision: the one precision policy of training, pseudo-labelling, evaluation and inference.

`choose_precision("auto", device)` picks, from the hardware:

- CUDA: bf16 where the GPU supports it, else fp16;
- CPU: bf16 where the CPU multiplies bf16 natively (`avx512_bf16` or `amx_bf16` in its flags), else fp32;
- anything else (MPS, ...): fp32.

Why the CPU flags decide (measured with torch 2.13, V2-S matmul peaks on one core, facts §8): bf16 runs 2.2x fp32 on
an AVX-512-bf16 Zen 4 and 6.7x on an AMX Xeon, but is *emulated* on an AVX2-only Zen 3: 0.8 GFLOP/s against 50 GFLOP/s
in fp32, a 60x slow-down. An explicit bf16 on such a CPU still runs (the user asked), with a warning quoting that.
The aarch64 `bf16` feature is not taken as native: not measured here.

oneDNN (which runs torch's CPU bf16 matmuls) can be capped below the hardware with `ONEDNN_MAX_CPU_ISA` (or the
older `DNNL_MAX_CPU_ISA`); below `AVX512_CORE_BF16` bf16 is emulated again (measured on this Zen 4 with the cap
`AVX2`: bf16 matmul 1.9 GFLOP/s against 77 in fp32; `AVX512_CORE`: 37 against 66), so the flags such a cap
removes are not counted. `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2` thereby
emulates an AVX2-only CPU on a newer one, policy included.

Names: the torch spellings (`"float32"`, `"bfloat16"`, `"float16"`, used by inference) and Accelerate's
(`"no"`, `"bf16"`, `"fp16"`, used by training configs) are both accepted; `accelerate_mixed_precision(dtype)` maps
back.
Each decision is logged once per process, with its reason (the flags found).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
ALIASES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "no": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}  # short names, in logs
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# Measured on an AMD EPYC Zen 3 (AVX2, no AVX-512), torch 2.13, one core: fp32 matmul 50 GFLOP/s, bf16 0.8 GFLOP/s.
EMULATED_BF16_SLOWDOWN = (
    "about 60x slower than fp32 (measured on an AVX2-only AMD EPYC: bf16 matmul 0.8 GFLOP/s, fp32 50 GFLOP/s)"
)

# oneDNN's ISA names, lowest first (oneDNN's `dnnl_cpu_isa_t`); bf16 is native from AVX512_CORE_BF16, AMX from
# AVX10_1_512_AMX (`onednn_capped_flags`).
ONEDNN_ISAS = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16",
    "AVX10_1_512",
    "AVX512_CORE_FP16",
    "AVX10_1_512_AMX",
    "AVX512_CORE_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX512_CORE_AMX_FP16",
)
ONEDNN_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")

_logged: set[str] = set()


@dataclass(frozen=True)
class PrecisionChoice:
    """The outcome of the policy.

    Args:
        dtype (`torch.dtype`): weights/autocast dtype (`torch.float32` means no reduced precision).
        reason (`str`): why, in words (the device, the flags that decided, or "requested").
    """

    dtype: torch.dtype
    reason: str

    @property
    def mixed_precision(self) -> str:
        """Accelerate's name for `dtype`: `"no"`, `"bf16"` or `"fp16"`."""
        return accelerate_mixed_precision(self.dtype)


def accelerate_mixed_precision(dtype: torch.dtype) -> str:
    """`torch.float32` -> `"no"`, `torch.bfloat16` -> `"bf16"`, `torch.float16` -> `"fp16"` (Accelerate's names)."""
    return {torch.float32: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


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


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask on Linux, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def read_cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (the `flags` line of `/proc/cpuinfo` on Linux x86; empty where there is none).

    `torch.backends.cpu.get_cpu_capability()` names only the vector ISA ("AVX512"), not the bf16 extension, so the
    kernel's flags are read instead. An "AMX" capability (torch builds that report it) counts as `amx_bf16`.
    """
    flags: set[str] = set()
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    capability = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else ""
    if cpuinfo == "/proc/cpuinfo" and "AMX" in capability.upper():
        flags.add("amx_bf16")
    if cpuinfo == "/proc/cpuinfo":
        flags -= onednn_capped_flags()
    return frozenset(flags)


def onednn_capped_flags(environ: dict[str, str] | None = None) -> frozenset[str]:
    """The bf16 flags a oneDNN ISA cap (`ONEDNN_MAX_CPU_ISA`, `DNNL_MAX_CPU_ISA`) takes away: both below
    `AVX512_CORE_BF16`, `amx_bf16` below the AMX levels, none for `ALL`, an unset or an unknown value."""
    environ = os.environ if environ is None else environ
    for variable in ONEDNN_CAP_VARIABLES:
        cap = environ.get(variable, "").strip().upper()
        if cap in ONEDNN_ISAS:
            level = ONEDNN_ISAS.index(cap)
            if level < ONEDNN_ISAS.index("AVX512_CORE_BF16"):
                return NATIVE_BF16_CPU_FLAGS
            if level < ONEDNN_ISAS.index("AVX10_1_512_AMX"):
                return frozenset({"amx_bf16"})
            return frozenset()
    return frozenset()


def cpu_supports_bf16(cpu_flags: Iterable[str] | None = None) -> bool:
    """Whether the CPU multiplies bf16 natively (`avx512_bf16` or `amx_bf16`); `cpu_flags` defaults to this CPU's."""
    flags = read_cpu_flags() if cpu_flags is None else frozenset(cpu_flags)
    return bool(flags & NATIVE_BF16_CPU_FLAGS)


def _bf16_flags_found(flags: frozenset[str]) -> str:
    found = sorted(flags & NATIVE_BF16_CPU_FLAGS)
    if found:
        return f"CPU flags {', '.join(found)}"
    capped = onednn_capped_flags()
    if capped:
        caps = ", ".join(f"{name}={os.environ[name]}" for name in ONEDNN_CAP_VARIABLES if name in os.environ)
        return f"{caps} caps oneDNN below {' / '.join(sorted(capped))}"
    return "no avx512_bf16 / amx_bf16 in the CPU flags"


def choose_precision(
    precision: str = "auto", device: torch.device | str = "cpu", cpu_flags: Iterable[str] | None = None
) -> PrecisionChoice:
    """The one precision policy (module docstring).

    Args:
        precision (`str`, defaults to `"auto"`): `"auto"`, or an explicit `"float32"`/`"no"`/`"fp32"`,
            `"bfloat16"`/`"bf16"`, `"float16"`/`"fp16"`.
        device (`torch.device` or `str`): where the model runs.
        cpu_flags (iterable of `str`, *optional*): the CPU's flags; defaults to `read_cpu_flags()` (tests inject them).

    Raises:
        ValueError: an unknown precision, or fp16 on a CPU.
    """
    if precision not in ("auto", *ALIASES):
        raise ValueError(f"precision must be 'auto' or one of {sorted(ALIASES)}, got {precision!r}")
    device = torch.device(device)
    flags = None
    if device.type == "cpu":
        flags = read_cpu_flags() if cpu_flags is None else frozenset(cpu_flags)
    if precision == "auto":
        if device.type == "cuda":
            if torch.cuda.is_bf16_supported():
                return PrecisionChoice(torch.bfloat16, "auto: the CUDA device supports bf16")
            return PrecisionChoice(torch.float16, "auto: the CUDA device lacks bf16, fp16 instead")
        if device.type == "cpu":
            if flags & NATIVE_BF16_CPU_FLAGS:
                return PrecisionChoice(torch.bfloat16, f"auto: native bf16 on this CPU ({_bf16_flags_found(flags)})")
            return PrecisionChoice(torch.float32, f"auto: fp32, bf16 would be emulated ({_bf16_flags_found(flags)})")
        return PrecisionChoice(torch.float32, f"auto: fp32 on {device.type}")
    dtype = ALIASES[precision]
    if device.type == "cpu" and dtype == torch.float16:
        raise ValueError(f"precision {precision!r} (fp16) is slow or unsupported on CPU; use 'bfloat16' or 'float32'")
    if device.type == "cpu" and dtype == torch.bfloat16 and not flags & NATIVE_BF16_CPU_FLAGS:
        _log_once(
            logging.WARNING,
            f"bf16 was requested on a CPU without native bf16 ({_bf16_flags_found(flags)}): it runs, but "
            f"{EMULATED_BF16_SLOWDOWN}. Use precision 'auto' (fp32 here) unless bf16 numerics are the point.",
        )
    return PrecisionChoice(dtype, f"requested {precision!r}")


def resolve_precision(
    precision: str, device: torch.device | str, cpu_flags: Iterable[str] | None = None
) -> torch.dtype:
    """Weight and activation dtype from `choose_precision`, logging the decision and its reason once per process."""
    choice = choose_precision(precision, device, cpu_flags)
    log_choice(choice, torch.device(device))
    return choice.dtype


def log_choice(choice: PrecisionChoice, device: torch.device | str, what: str = "precision") -> None:
    """Log `choice` once per process (the same decision is made by every model a process loads)."""
    name = DTYPE_NAMES[choice.dtype]
    _log_once(logging.INFO, f"{what} {name} on {torch.device(device).type}: {choice.reason}")


def _log_once(level: int, message: str) -> None:
    key = f"{os.getpid()}:{message}"
    if key not in _logged:
        _logged.add(key)
        logger.log(level, message)
