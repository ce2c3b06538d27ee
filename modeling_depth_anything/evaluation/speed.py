"""Inference speed benchmark: transformers' built-in Depth Anything vs ours (default and fast) vs ONNX Runtime.

Everything runs in one process on identical random V2-S weights (seed 0), so the ratios are meaningful even on a
busy machine: the variants are timed round-robin (one call each, repeated), and medians are compared.

Printed per input size and batch: median and best latency, images/s, peak memory (CUDA: max allocated; CPU: peak growth of
the process's resident memory while the variant runs, sampled every millisecond), max error against the fp32
reference (ours default) as a fraction of the reference's value range, speed-up over the built-in, and for the fast
path the fraction of this machine's measured bf16 matmul throughput it reaches (model FLOPs counted with
`torch.utils.flop_counter`).

    python eval/speed.py --quick                  # 518x518 and 518x686, batch 1, 5 repeats (~2-3 minutes on 2 cores)
    python eval/speed.py                          # + batch 8, 10 repeats (fp32 batch 8 is slow on CPU)
    python eval/speed.py --quick --ablation       # + the fast path's parts: autocast, bf16 weights, channels-last, SDPA
    python eval/speed.py --quick --compile        # + torch.compile of the fast path
    python eval/speed.py --json speed.json        # also write the results
    python eval/speed.py --quick --threads 1 --clock cpu   # one core, CPU time: stable ratios on a busy machine
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

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
    achieved_flops: float | None = None  # model FLOPs / median latency (reduced-precision variants)
    matmul_fraction: float | None = None  # achieved FLOP/s / measured bf16 matmul FLOP/s


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
    """FLOPs of one forward (matmuls, convolutions and attention, as torch.utils.flop_counter counts them)."""
    from torch.utils.flop_counter import FlopCounterMode

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


def build_models(device: torch.device, compile: bool, ablation: bool, preset: str = "v2-small") -> dict[str, Callable]:
    """name -> callable(pixel_values float32 on device) -> float32 (batch, height, width) depth, same weights."""
    import transformers

    from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation
    from modeling_depth_anything.inference import prepare_model

    torch.manual_seed(0)
    ours = DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset(preset)).eval().to(device)
    with tempfile.TemporaryDirectory() as folder:
        ours.save_pretrained(folder)
        # Plain transformers loads the built-in class from our config.json (model_type "depth_anything").
        builtin = transformers.DepthAnythingForDepthEstimation.from_pretrained(folder).eval().to(device)
    fast_dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16

    def runner(
        model: torch.nn.Module, dtype: torch.dtype = torch.float32, channels_last: bool = False, autocast: bool = False
    ) -> Callable:
        def run(pixel_values: torch.Tensor) -> torch.Tensor:
            pixel_values = pixel_values.to(dtype)
            if channels_last:
                pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), torch.autocast(device.type, fast_dtype, enabled=autocast):
                return model(pixel_values=pixel_values).predicted_depth.float()

        return run

    models = {
        "transformers built-in (fp32)": runner(builtin),
        "ours default (fp32)": runner(ours),
    }
    if ablation:
        models["ours bf16 autocast"] = runner(ours, autocast=True)
        models["ours bf16 weights (SDPA)"] = runner(copy.deepcopy(ours).to(fast_dtype), fast_dtype)
        sdpa = prepare_model(copy.deepcopy(ours), device, fast_dtype, channels_last=True, attention="sdpa")
        models["ours bf16 + channels-last (SDPA)"] = runner(sdpa, fast_dtype, channels_last=True)
    # The fast path as DepthEstimator sets it up: bf16 weights, channels-last, matmul attention on CPU.
    fast = prepare_model(copy.deepcopy(ours), device, fast_dtype, channels_last=True)
    models["ours fast"] = runner(fast, fast_dtype, channels_last=True)
    if compile:
        compiled = prepare_model(copy.deepcopy(ours), device, fast_dtype, channels_last=True, compile=True)
        models["ours fast + torch.compile"] = runner(compiled, fast_dtype, channels_last=True)
    models["_reference"] = ours
    return models


def onnx_runner(model: torch.nn.Module, height: int, width: int, folder: str) -> Callable:
    """Export at (height, width) and return a callable running the file under onnxruntime (CPU, default options)."""
    import onnxruntime

    from modeling_depth_anything.export import export_onnx

    path = os.path.join(folder, f"v2s_{height}x{width}.onnx")
    export_onnx(model, path, height=height, width=width, check=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same cores as PyTorch
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def run(pixel_values: torch.Tensor) -> torch.Tensor:
        (output,) = session.run(["predicted_depth"], {"pixel_values": pixel_values.cpu().numpy()})
        return torch.from_numpy(output)

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
    peaks = {
        "bf16": measure_matmul_peak(torch.bfloat16, device, args.matmul_size, clock=clock),
        "fp32": measure_matmul_peak(torch.float32, device, args.matmul_size, clock=clock),
    }
    models = build_models(device, args.compile, args.ablation, args.preset)
    reference = models.pop("_reference")
    results: list[Result] = []
    onnx_folder = tempfile.mkdtemp(prefix="speed_onnx_")
    for size in args.sizes:
        height, width = (int(value) for value in size.split("x"))
        variants = dict(models)
        if not args.no_onnx and device.type == "cpu":
            variants["onnxruntime (fp32)"] = onnx_runner(reference, height, width, onnx_folder)
        flops_per_image = count_flops(reference, torch.randn(1, 3, height, width, device=device))
        print(f"\n{size}: {flops_per_image / 1e9:.1f} GFLOP per image (torch.utils.flop_counter)")
        for batch in args.batch_sizes:
            # The matmul peak is re-measured around every case and the best kept: other processes slow it too.
            peaks["bf16"] = max(
                peaks["bf16"], measure_matmul_peak(torch.bfloat16, device, args.matmul_size, clock=clock)
            )
            results.extend(
                run_case(variants, reference, device, height, width, batch, args.repeats, flops_per_image, clock)
            )
    peaks["bf16"] = max(peaks["bf16"], measure_matmul_peak(torch.bfloat16, device, args.matmul_size, clock=clock))
    peaks["fp32"] = max(peaks["fp32"], measure_matmul_peak(torch.float32, device, args.matmul_size, clock=clock))
    print(
        f"\nmeasured matmul peak (best over the run): bf16 {peaks['bf16'] / 1e12:.3f} TFLOP/s, "
        f"fp32 {peaks['fp32'] / 1e12:.3f} TFLOP/s"
    )
    print("reduced-precision variants' share of the bf16 matmul peak (model FLOPs / median latency / peak):")
    for result in results:
        if result.achieved_flops is not None:
            result.matmul_fraction = result.achieved_flops / peaks["bf16"]
            print(
                f"  {result.variant:36s} {result.size} batch {result.batch}: "
                f"{result.achieved_flops / 1e12:.3f} TFLOP/s = {result.matmul_fraction:.1%}"
            )
    return results


def run_case(
    variants: dict[str, Callable],
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
    errors, memory = {}, {}
    for name, run in variants.items():  # warm-up (and compile), error and memory
        with _RssSampler() as sampler:
            output = run(pixel_values)
            _sync(device)
        errors[name] = float((output.to(expected.device) - expected).abs().max()) / value_range
        memory[name] = sampler.peak / 2**20
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            run(pixel_values)
            memory[name] = torch.cuda.max_memory_allocated() / 2**20
    for _ in range(repeats):  # round-robin, so load from other processes hits every variant alike
        for name, run in variants.items():
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
        f"{'speed-up':>8s} {'(best)':>7s} {'TFLOP/s':>8s}"
    )
    for name in variants:
        median, best = statistics.median(times[name]), min(times[name])
        achieved = flops_per_image * batch / median
        reduced = "bf16" in name or "fast" in name
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
            achieved if reduced else None,
        )
        results.append(result)
        print(
            f"{name:36s} {median:9.3f} {best:7.3f} {batch / median:7.2f} {memory[name]:8.0f} {errors[name]:9.2e} "
            f"{builtin / median:7.2f}x {builtin_best / best:6.2f}x {achieved / 1e12:8.3f}"
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 only, 5 repeats")
    parser.add_argument("--sizes", nargs="+", default=["518x518", "518x686"], help="HEIGHTxWIDTH, multiples of 14")
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
    parser.add_argument("--ablation", action="store_true", help="also time bf16 autocast and bf16 weights alone")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the fast path")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime variant")
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args(argv)
    args.batch_sizes = args.batch_sizes or ([1] if args.quick else [1, 8])
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
