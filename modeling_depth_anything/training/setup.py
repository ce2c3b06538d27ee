"""Accelerator and logging set-up shared by every stage (teacher, pseudo-labels, student)."""

from __future__ import annotations

import logging
import os

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed

from .args import TrainArguments

logger = logging.getLogger(__name__)


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


def setup_accelerator(
    output_dir: str,
    mixed_precision: str = "no",
    gradient_accumulation_steps: int = 1,
    report_to: str = "none",
    seed: int = 0,
    cpu_threads: int | None = None,
) -> Accelerator:
    """An `Accelerator` that works the same under `accelerate launch` on GPUs and `torchrun` on CPUs.

    Without a GPU it passes `cpu=True`, which gives MULTI_CPU over gloo under torchrun (facts §8).
    """
    on_cpu = not torch.cuda.is_available()
    if on_cpu and cpu_threads:
        torch.set_num_threads(cpu_threads)
    if on_cpu and mixed_precision == "fp16":
        raise ValueError("mixed_precision='fp16' needs a GPU; use 'bf16' on CPU (got 'fp16' without CUDA)")
    accelerator = Accelerator(
        cpu=on_cpu,
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=gradient_accumulation_steps,
        log_with="tensorboard" if report_to == "tensorboard" else None,
        project_config=ProjectConfiguration(project_dir=output_dir, logging_dir=os.path.join(output_dir, "logs")),
    )
    setup_logging(accelerator.is_main_process)
    set_seed(seed)  # the same on every process, so that models built next are identical (`TrainingRun` re-seeds)
    logger.info(
        f"{accelerator.state.distributed_type} with {accelerator.num_processes} process(es) on "
        f"{accelerator.device}, mixed precision {mixed_precision}"
    )
    return accelerator


def setup_training_accelerator(args: TrainArguments) -> Accelerator:
    """`setup_accelerator` configured from a training stage's `TrainArguments` (teacher and student)."""
    return setup_accelerator(
        args.output_dir,
        args.mixed_precision,
        args.gradient_accumulation_steps,
        args.report_to,
        args.seed,
        args.cpu_threads,
    )
