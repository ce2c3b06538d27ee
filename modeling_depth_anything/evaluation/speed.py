"""Inference speed benchmark: transformers' built-in Depth Anything vs ours (default, and the fast path on each backend).

Everything runs in one process on identical random V2-S weights (seed 0), so the ratios are meaningful even on a
busy machine: the variants are timed round-robin (one call each, repeated), and medians are compared.

Printed per input size and batch: median and best latency, images/s, peak memory (CUDA: max allocated; CPU: peak growth of
the process's resident memory while the variant runs, sampled every millisecond), max error against the fp32
reference (ours default) as a fraction of the reference's value range, speed-up over the built-in, and each variant's
share of this machine's own measured matmul peak in the variant's dtype (model FLOPs counted with
`torch.utils.flop_counter`).

"ours fast" is built by `DepthEstimator.from_pretrained` with its defaults, so it is exactly the fast path users get
on this machine: its precision comes from the one precision policy (bf16 only where the hardware multiplies bf16
natively, fp32 elsewhere). Each other backend (`inference.backends`: `compile`, `onnxruntime`) is built the same way
with only `backend=` changed, so the table says which engine is fastest here; "warm-up s" is its first call (the
compile or the ONNX export included). Matmul peaks are measured only for the dtypes the machine runs natively: emulated bf16
(AVX2-only CPUs, about 60x slower than fp32) would take minutes and measure nothing useful; so are the bf16 ablation
variants.

    python eval/speed.py --quick                  # 518x518, batch 1, 5 repeats, every backend (a few minutes)
    python eval/speed.py                          # 518x518 and 518x686, batch 1 and 8, 10 repeats
    python eval/speed.py --quick --ablation       # + the bf16 fast path's parts (native-bf16 machines only)
    python eval/speed.py --quick --no-compile     # without the compile backend (its first call compiles)
    python eval/speed.py --json speed.json        # also write the results
    python eval/speed.py --quick --threads 1 --clock cpu   # one core, CPU time: stable ratios on a busy machine
"""

from __future__ import annotations

import argparse
import atexit
import copy
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from ..inference.precision import DTYPE_NAMES

logger = logging.getLogger("speed")


@dataclass
class Result:
    variant: str
    size: str
    batch: int
    median_s: float
    best_s: float
    images_per_s: float
    peak_memory_mb: float
    max_error: float  # max |output - reference| / (reference max - min)
    speedup: float | None = None  # built-in median / this median
    achieved_flops: float | None = None  # model FLOPs / median latency
    dtype: str = "float32"  # the variant's compute dtype
    matmul_fraction: float | None = None  # achieved FLOP/s / this machine's measured matmul peak in `dtype`
    warmup_s: float = 0.0  # the first call: includes compiling or exporting where the backend does it


def measure_matmul_peak(
    dtype: torch.dtype,
    device: torch.device,
    size: int = 2048,
    repeats: int = 10,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Best FLOP/s of a square (size x size) @ (size x size) matmul in `dtype`."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for index in range(repeats + 2):
        _sync(device)
        start = clock()
        a @ b
        _sync(device)
        if index >= 2:
            best = min(best, clock() - start)
    return 2 * size**3 / best


def count_flops(model: torch.nn.Module, pixel_values: torch.Tensor) -> float:
    """FLOPs of one forward (matmuls, convolutions and attention, as torch.utils.flop_counter counts them).

    Counted on a copy with eager attention: the counter has no formula for the CPU SDPA kernel, so with SDPA the
    attention's two matmuls (V2-S at 518x518: 34.6 of 115.3 GFLOP) went uncounted and every share of peak was low.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from modeling_depth_anything.inference.attention import set_attention

    model = copy.deepcopy(model)
    set_attention(model, "eager")
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(pixel_values)
    return float(counter.get_total_flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _set_malloc(measuring_memory: bool) -> None:
    """glibc heap policy (Linux; a no-op elsewhere).

    While measuring memory: M_MMAP_THRESHOLD = 64 KiB puts every tensor of note in its own mapping, returned to the
    OS on free, and malloc_trim(0) releases what is left, so resident memory tracks live tensors (otherwise a
    variant's peak hides in memory an earlier variant left in the heap). While timing: a 32 MiB mmap threshold and
    a 512 MiB trim threshold, glibc's steady state in a long-running process, so that freed activations are reused
    instead of being page-faulted in again on every call (the 64 KiB setting slowed fp32 by ~6 %, bf16 by ~1 %).
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        if measuring_memory:
            libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
            libc.malloc_trim(0)
        else:
            libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
            libc.mallopt(-1, 512 * 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


class _RssSampler:
    """Peak resident-memory growth (bytes) of this process while active, sampled from /proc/self/statm."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.peak = 0
        self.running = False

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as handle:
                return int(handle.read().split()[1]) * self.page
        except OSError:
            return 0

    def _loop(self) -> None:
        while self.running:
            self.peak = max(self.peak, self._rss() - self.base)
            time.sleep(0.001)

    def __enter__(self) -> _RssSampler:
        _set_malloc(measuring_memory=True)
        self.base, self.peak, self.running = self._rss(), 0, True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()
        _set_malloc(measuring_memory=False)


def native_dtypes(device: torch.device) -> list[torch.dtype]:
    """The dtypes this device multiplies natively (fp32 always; bf16 or fp16 where the precision policy picks them)."""
    from modeling_depth_anything.inference import resolve_precision

    fast = resolve_precision("auto", device)
    return [torch.float32] if fast == torch.float32 else [torch.float32, fast]


def _temporary_folder(prefix: str) -> str:
    """A folder removed when the process exits (the V2-S weights and its .onnx file are ~100 MB each)."""
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def build_models(
    device: torch.device, compile: bool, ablation: bool, preset: str = "v2-small", onnx: bool = True
) -> tuple[dict[str, tuple[Callable, torch.dtype]], torch.nn.Module]:
    """name -> (callable(pixel_values float32 on device) -> float32 (batch, height, width) depth, compute dtype),
    all on the same random weights, and the fp32 reference model."""
    import transformers

    from modeling_depth_anything import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        DepthAnythingImageProcessor,
    )
    from modeling_depth_anything.inference import DepthEstimator, prepare_model

    torch.manual_seed(0)
    ours = DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset(preset)).eval().to(device)
    folder = _temporary_folder("speed_model_")
    ours.save_pretrained(folder)
    DepthAnythingImageProcessor(size=518).save_pretrained(folder)
    # Plain transformers loads the built-in class from our config.json (model_type "depth_anything").
    builtin = transformers.DepthAnythingForDepthEstimation.from_pretrained(folder).eval().to(device)

    def runner(model: torch.nn.Module, dtype: torch.dtype = torch.float32, autocast: bool = False) -> Callable:
        def run(pixel_values: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=autocast):
                return model(pixel_values=pixel_values.to(dtype)).predicted_depth.float()

        return run

    models: dict[str, tuple[Callable, torch.dtype]] = {
        "transformers built-in (fp32)": (runner(builtin), torch.float32),
        "ours default (fp32)": (runner(ours), torch.float32),
    }
    # The fast path exactly as users get it: DepthEstimator.from_pretrained's defaults on this device.
    fast = DepthEstimator.from_pretrained(folder, device=str(device))
    models["ours fast"] = (fast.forward, fast.dtype)
    if ablation and torch.bfloat16 in native_dtypes(device):
        bf16 = torch.bfloat16
        models["ours bf16 autocast"] = (runner(ours, autocast=True), bf16)
        models["ours bf16 weights (SDPA)"] = (runner(copy.deepcopy(ours).to(bf16), bf16), bf16)
        sdpa = prepare_model(copy.deepcopy(ours), device, bf16, channels_last=True, attention="sdpa")
        models["ours bf16 + channels-last (SDPA)"] = (_channels_last_runner(sdpa, bf16), bf16)
    elif ablation:
        logger.info("--ablation: the bf16 variants are skipped, this CPU has no native bf16")
    # The other backends, built the same way with only `backend` changed (inference.backends).
    if compile:
        compiled = DepthEstimator.from_pretrained(folder, device=str(device), backend="compile")
        models["ours fast, backend compile"] = (compiled.forward, compiled.dtype)
    if onnx and device.type == "cpu":
        cache = _temporary_folder("speed_onnx_")  # a fresh export: its time shows in the warm-up column
        ort = DepthEstimator.from_pretrained(folder, device="cpu", backend="onnxruntime", onnx_cache=cache)
        models["backend onnxruntime (fp32)"] = (ort.forward, ort.dtype)
    return models, ours


def _channels_last_runner(model: torch.nn.Module, dtype: torch.dtype) -> Callable:
    def run(pixel_values: torch.Tensor) -> torch.Tensor:
        pixel_values = pixel_values.to(dtype).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return model(pixel_values=pixel_values).predicted_depth.float()

    return run


def benchmark(args: argparse.Namespace) -> list[Result]:
    device = torch.device(args.device)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    logger.info(
        "torch %s, %d threads, device %s, CPU capability %s",
        torch.__version__,
        torch.get_num_threads(),
        device,
        torch.backends.cpu.get_cpu_capability(),
    )
    # On a shared machine, the process's CPU time with one thread is what an idle core would take: time spent
    # descheduled does not count. (With several threads, CPU time would add up the threads and their spin-waits.)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.clock == "cpu" and torch.get_num_threads() != 1:
        raise SystemExit("--clock cpu needs --threads 1")
    dtypes = native_dtypes(device)
    peaks = {dtype: measure_matmul_peak(dtype, device, args.matmul_size, clock=clock) for dtype in dtypes}
    models, reference = build_models(device, not args.no_compile, args.ablation, args.preset, onnx=not args.no_onnx)
    print(f"ours fast: {DTYPE_NAMES[models['ours fast'][1]]} (the precision policy's choice on this {device.type})")
    results: list[Result] = []
    for size in args.sizes:
        height, width = (int(value) for value in size.split("x"))
        flops_per_image = count_flops(reference, torch.randn(1, 3, height, width, device=device))
        print(f"\n{size}: {flops_per_image / 1e9:.1f} GFLOP per image (torch.utils.flop_counter)")
        for batch in args.batch_sizes:
            results.extend(
                run_case(models, reference, device, height, width, batch, args.repeats, flops_per_image, clock)
            )
            # The peaks are re-measured around every case and the best kept: other processes slow them too.
            for dtype in dtypes:
                peaks[dtype] = max(peaks[dtype], measure_matmul_peak(dtype, device, args.matmul_size, clock=clock))
    shown = ", ".join(f"{DTYPE_NAMES[dtype]} {peak / 1e12:.3f} TFLOP/s" for dtype, peak in peaks.items())
    print(f"\nmeasured matmul peak (best over the run, {args.matmul_size}^2 matmul), native dtypes only: {shown}")
    print("share of the measured matmul peak in each variant's dtype (model FLOPs / median latency / peak):")
    for result in results:
        dtype = getattr(torch, result.dtype)
        if dtype in peaks and result.achieved_flops is not None:
            result.matmul_fraction = result.achieved_flops / peaks[dtype]
            print(
                f"  {result.variant:36s} {result.size} batch {result.batch}: {result.achieved_flops / 1e12:.3f} "
                f"TFLOP/s = {result.matmul_fraction:.1%} of the {DTYPE_NAMES[dtype]} peak"
            )
    print_backend_summary(results)
    return results


BACKEND_VARIANTS = {
    "torch": "ours fast",
    "compile": "ours fast, backend compile",
    "onnxruntime": "backend onnxruntime (fp32)",
}


def print_backend_summary(results: list[Result]) -> None:
    """One line per case: each backend's speed-up over the built-in and share of its dtype's peak; the fastest."""
    print("\nbackends (DepthEstimator(backend=...)): speed-up over the built-in, share of the measured peak")
    for size, batch in dict.fromkeys((result.size, result.batch) for result in results):
        case = {result.variant: result for result in results if (result.size, result.batch) == (size, batch)}
        measured = {name: case[variant] for name, variant in BACKEND_VARIANTS.items() if variant in case}
        parts = []
        for name, result in measured.items():
            share = f", {result.matmul_fraction:.0%} of peak" if result.matmul_fraction is not None else ""
            parts.append(f"{name} {result.speedup:.2f}x ({DTYPE_NAMES[getattr(torch, result.dtype)]}{share})")
        fastest = max(measured, key=lambda name: measured[name].speedup)
        print(f"  {size} batch {batch}: {'; '.join(parts)}; fastest: {fastest}")


def run_case(
    variants: dict[str, tuple[Callable, torch.dtype]],
    reference: torch.nn.Module,
    device: torch.device,
    height: int,
    width: int,
    batch: int,
    repeats: int,
    flops_per_image: float,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Result]:
    torch.manual_seed(1)
    pixel_values = torch.randn(batch, 3, height, width, device=device)  # normalised-image statistics
    with torch.inference_mode():
        expected = reference(pixel_values).predicted_depth.float()  # (batch, height, width) fp32 reference
    value_range = float(expected.max() - expected.min()) or 1.0
    times: dict[str, list[float]] = {name: [] for name in variants}
    errors, memory, warmup = {}, {}, {}
    for name, (run, _) in variants.items():  # warm-up (and compile or export), error and memory
        with _RssSampler() as sampler:
            start = clock()
            output = run(pixel_values)
            _sync(device)
            warmup[name] = clock() - start
        errors[name] = float((output.to(expected.device) - expected).abs().max()) / value_range
        memory[name] = sampler.peak / 2**20
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            run(pixel_values)
            memory[name] = torch.cuda.max_memory_allocated() / 2**20
    for _ in range(repeats):  # round-robin, so load from other processes hits every variant alike
        for name, (run, _) in variants.items():
            _sync(device)
            start = clock()
            run(pixel_values)
            _sync(device)
            times[name].append(clock() - start)
    builtin = statistics.median(times["transformers built-in (fp32)"])
    builtin_best = min(times["transformers built-in (fp32)"])
    results = []
    print(
        f"\n{height}x{width} batch {batch} ({repeats} repeats; error = max |out - fp32 ref| / ref range {value_range:.3g})"
    )
    print(
        f"{'variant':36s} {'median s':>9s} {'best s':>7s} {'img/s':>7s} {'peak MB':>8s} {'max err':>9s} "
        f"{'speed-up':>8s} {'(best)':>7s} {'TFLOP/s':>8s} {'warm-up s':>9s}"
    )
    for name in variants:
        median, best = statistics.median(times[name]), min(times[name])
        achieved = flops_per_image * batch / median
        result = Result(
            name,
            f"{height}x{width}",
            batch,
            median,
            best,
            batch / median,
            memory[name],
            errors[name],
            builtin / median,
            achieved,
            str(variants[name][1]).removeprefix("torch."),
            warmup_s=warmup[name],
        )
        results.append(result)
        print(
            f"{name:36s} {median:9.3f} {best:7.3f} {batch / median:7.2f} {memory[name]:8.0f} {errors[name]:9.2e} "
            f"{builtin / median:7.2f}x {builtin_best / best:6.2f}x {achieved / 1e12:8.3f} {warmup[name]:9.1f}"
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="518x518, batch 1, 5 repeats")
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=None,
        help="HEIGHTxWIDTH, multiples of 14 (default 518x518 518x686; 518x518 with --quick)",
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default 1 8 (1 with --quick)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed calls per variant (default 10; 5 with --quick)"
    )
    parser.add_argument("--matmul-size", type=int, default=2048, help="square matmul size for the peak (2048)")
    parser.add_argument("--preset", default="v2-small", help="architecture (random weights); 'tiny' for smoke tests")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall time, or process CPU time (with --threads 1: robust to other processes' load)",
    )
    parser.add_argument(
        "--ablation", action="store_true", help="also time bf16 autocast and bf16 weights alone (native bf16 only)"
    )
    parser.add_argument("--compile", action="store_true", help="(the default now; kept for old command lines)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile backend (it compiles first)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime backend")
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args(argv)
    args.batch_sizes = args.batch_sizes or ([1] if args.quick else [1, 8])
    args.sizes = args.sizes or (["518x518"] if args.quick else ["518x518", "518x686"])
    args.repeats = args.repeats or (5 if args.quick else 10)
    for size in args.sizes:
        parts = size.split("x")
        if len(parts) != 2 or not all(part.isdigit() and int(part) % 14 == 0 and int(part) > 0 for part in parts):
            parser.error(f"--sizes: expected HEIGHTxWIDTH with positive multiples of 14, got {size!r}")
    if args.repeats < 1 or min(args.batch_sizes) < 1:
        parser.error(f"--repeats and --batch-sizes must be positive, got {args.repeats} and {args.batch_sizes}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    results = benchmark(args)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([asdict(result) for result in results], handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
