"""Accelerator and logging set-up shared by every stage (teacher, pseudo-labels, student): mixed precision decided by
the launcher or the hardware, CPU threads from the machine, Accelerate's trackers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed

from ..data.mixing import default_num_workers
from ..inference.precision import choose_precision, usable_cpus
from .args import MIXED_PRECISION, TrainArguments, report_targets

logger = logging.getLogger(__name__)

LAUNCHER_PRECISION_VARIABLE = "ACCELERATE_MIXED_PRECISION"


def setup_logging(main_process: bool = True) -> None:
    """Plain `logging` to stderr: INFO on the main process, WARNING elsewhere."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        level=logging.INFO if main_process else logging.WARNING,
        force=True,
    )
    for noisy in ("datasets", "urllib3", "httpx", "filelock", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def resolve_mixed_precision(
    requested: str,
    device: torch.device | str,
    cpu_flags: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, str]:
    """The `mixed_precision` to give `Accelerator`, and why.

    Precedence: an explicit `requested` value (YAML or command line) > the launcher (`accelerate launch
    --mixed_precision ...` or `accelerate config`, both of which set `ACCELERATE_MIXED_PRECISION`) > the hardware's
    choice (`choose_precision("auto", device)`). For the launcher, `None` is returned: `Accelerator` then reads the
    variable itself (so values this project does not name, e.g. `fp8`, still reach it). Note that `accelerate launch`
    without `--mixed_precision` and without a config file sets "no" itself.

    Args:
        requested (`str`): `"auto"`, `"no"`, `"bf16"` or `"fp16"`.
        device: where training runs (`cuda` or `cpu`).
        cpu_flags: injected CPU flags (tests); default: this CPU's.
        environ: the environment (tests); default `os.environ`.
    """
    if requested not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, got {requested!r}")
    environ = os.environ if environ is None else environ
    if requested != "auto":
        choice = choose_precision(requested, device, cpu_flags)  # warns for bf16 on a CPU that emulates it
        return choice.mixed_precision, f"mixed_precision={requested!r} set in the config or on the command line"
    launcher = environ.get(LAUNCHER_PRECISION_VARIABLE)
    if launcher:
        if launcher in ("bf16", "fp16", "no"):
            choose_precision(launcher, device, cpu_flags)  # the same warning for an emulated bf16
        return None, f"{LAUNCHER_PRECISION_VARIABLE}={launcher!r} from the launcher or `accelerate config`"
    choice = choose_precision("auto", device, cpu_flags)
    return choice.mixed_precision, choice.reason


def configure_cpu_threads(
    requested: int | None, environ: Mapping[str, str] | None = None, data_workers: int = 0
) -> str:
    """Set torch's intra-op threads for a CPU process and say why.

    `requested` wins; else `OMP_NUM_THREADS` (torch already follows it; torchrun sets 1 per process); else the CPUs
    this process may run on divided by the processes on this machine (`LOCAL_WORLD_SIZE`), minus the process's
    `data_workers` (DataLoader workers decoding beside the loop), so that nothing oversubscribes the cores.
    Oversubscribed OpenMP threads spin-wait: on a 2-core AMD EPYC (avx512_bf16), 30 steps of the tiny teacher took
    13 s with 1 thread + 1 decoding worker and 173 s with 2 threads + 1 worker (the machine shared with one other
    job); 1 thread was 4x faster than 2 on a busy 2-core CPU before that.
    """
    environ = os.environ if environ is None else environ
    if requested:
        torch.set_num_threads(requested)
        return f"{requested} CPU thread(s) per process (cpu_threads)"
    if environ.get("OMP_NUM_THREADS"):
        return f"{torch.get_num_threads()} CPU thread(s) per process (OMP_NUM_THREADS={environ['OMP_NUM_THREADS']})"
    cores = usable_cpus()
    local_processes = max(1, int(environ.get("LOCAL_WORLD_SIZE", "1")))
    threads = max(1, cores // local_processes - data_workers)
    torch.set_num_threads(threads)
    return (
        f"{threads} CPU thread(s) per process ({cores} usable CPUs / {local_processes} local process(es)"
        + (f" - {data_workers} DataLoader worker(s)" if data_workers else "")
        + ")"
    )


def setup_accelerator(
    output_dir: str,
    mixed_precision: str = "auto",
    gradient_accumulation_steps: int = 1,
    report_to: str = "none",
    seed: int = 0,
    cpu_threads: int | None = None,
    cpu_flags: Iterable[str] | None = None,
    data_workers: int = 0,
) -> Accelerator:
    """An `Accelerator` that works the same under `accelerate launch` on GPUs and `torchrun` on CPUs.

    Without a GPU it passes `cpu=True`, which gives MULTI_CPU over gloo under torchrun (facts §8). Mixed precision:
    `resolve_mixed_precision`; CPU threads: `configure_cpu_threads`; trackers: `report_to` (Accelerate's names,
    comma-separated; a named tracker that is not installed is an error rather than silently dropped).
    """
    on_cpu = not torch.cuda.is_available()
    device = torch.device("cpu" if on_cpu else "cuda")
    threads = configure_cpu_threads(cpu_threads, data_workers=data_workers) if on_cpu else None
    precision, precision_reason = resolve_mixed_precision(mixed_precision, device, cpu_flags)
    trackers = report_targets(report_to)
    if trackers and trackers != ["all"]:
        from accelerate.tracking import get_available_trackers

        available = {str(tracker) for tracker in get_available_trackers()}
        missing = [name for name in trackers if name not in available]
        if missing:
            raise ValueError(
                f"report_to={report_to!r}: {missing} not installed (pip install {' '.join(missing)}), "
                f"or use report_to none; installed trackers: {sorted(available) or 'none'}"
            )
    accelerator = Accelerator(
        cpu=on_cpu,
        mixed_precision=precision,
        gradient_accumulation_steps=gradient_accumulation_steps,
        log_with=trackers or None,
        project_config=ProjectConfiguration(project_dir=output_dir, logging_dir=os.path.join(output_dir, "logs")),
    )
    setup_logging(accelerator.is_main_process)
    set_seed(seed)  # the same on every process, so that models built next are identical (`TrainingRun` re-seeds)
    logger.info(
        f"{accelerator.state.distributed_type} with {accelerator.num_processes} process(es) on "
        f"{accelerator.device}; mixed precision {accelerator.mixed_precision} ({precision_reason})"
        + (f"; {threads}" if threads else "")
    )
    return accelerator


def setup_training_accelerator(
    args: TrainArguments, data_args: Any = None, cpu_flags: Iterable[str] | None = None
) -> Accelerator:
    """`setup_accelerator` configured from a training stage's `TrainArguments` (teacher, student, metric); with its
    `DataArguments`, the CPU threads leave a core to each DataLoader worker."""
    data_workers = 0
    if data_args is not None:
        local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        workers = getattr(data_args, "num_workers", None)
        data_workers = default_num_workers(local_processes) if workers is None else workers
    return setup_accelerator(
        args.output_dir,
        args.mixed_precision,
        args.gradient_accumulation_steps,
        args.report_to,
        args.seed,
        args.cpu_threads,
        cpu_flags,
        data_workers,
    )
