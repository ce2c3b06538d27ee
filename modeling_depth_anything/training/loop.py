"""Shared machinery of the training stages, written once: accelerator, model and optimiser set-up, the step loop,
checkpoints with resume, the NaN stop, logging, the final `from_pretrained` folder, its model card and the push.

The stage scripts (`teacher.py`, `student.py`) only say how to get a batch and how to compute its loss::

    accelerator = setup_training_accelerator(train_args)
    model = build_model(model_args)
    run = TrainingRun(accelerator, model, train_args, config_instances, streams={"labelled": stream}, stage="teacher")
    run.train(next_batch, compute_loss)      # resumes, logs, checkpoints, stops on NaN
    run.save_final(processor)                 # <output_dir>/final: model + processor + config + model card
    accelerator.end_training()

Checkpoints (`<output_dir>/checkpoint-<step>/`) hold Accelerate's state (model, optimiser, per-process RNG), our
`trainer_state.json` (step, scheduler, bad-sample counts), one `stream_state_rank<r>.json` per process (the data
stream positions), a `model/` `from_pretrained` folder, and a `COMPLETE` marker written last: `--resume latest`
only considers complete checkpoints, so a run killed while saving resumes from the previous one.

Multi-process on CPU: `torchrun --nproc_per_node 2 train/teacher.py ...` gives MULTI_CPU over gloo (we pass
`cpu=True` when there is no GPU); the same scripts run under `accelerate launch` on GPUs, with DeepSpeed or FSDP
configured by `accelerate config` (see train/README.md). Every script must end with `accelerator.end_training()`
(facts §8: without it about one CPU run in four aborted at exit).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from ..hub import is_local_target, push_folder
from ..image_processing_depth_anything import DepthAnythingImageProcessor
from ..modeling_depth_anything import DepthAnythingForDepthEstimation
from .args import TrainArguments, flat_config, save_resolved_config

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
COMPLETE_MARKER = "COMPLETE"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: the run stops and the last good checkpoint is kept."""


# ---------------------------------------------------------------------------------------------------------------------
# Optimiser and schedule
# ---------------------------------------------------------------------------------------------------------------------


def build_optimizer(model: torch.nn.Module, args: TrainArguments) -> torch.optim.Optimizer:
    """AdamW with two groups: the encoder (`backbone.*`) at `encoder_lr`, the rest at `encoder_lr x multiplier`."""
    encoder, decoder = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (encoder if name.startswith("backbone.") else decoder).append(parameter)
    groups = [
        {"params": encoder, "lr": args.encoder_lr, "name": "encoder"},
        {"params": decoder, "lr": args.encoder_lr * args.decoder_lr_multiplier, "name": "decoder"},
    ]
    return torch.optim.AdamW(
        [group for group in groups if group["params"]],
        lr=args.encoder_lr,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.weight_decay,
    )


def lr_factor(step: int, args: TrainArguments) -> float:
    """Multiplier of the base lr at optimiser step `step`: linear warm-up, then linear / poly decay to 0."""
    if step < args.warmup_steps:
        return (step + 1) / args.warmup_steps
    if args.lr_schedule == "constant":
        return 1.0
    progress = (step - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps)
    remaining = max(0.0, 1.0 - progress)
    return remaining if args.lr_schedule == "linear" else remaining**args.poly_power


def build_scheduler(optimizer: torch.optim.Optimizer, args: TrainArguments) -> torch.optim.lr_scheduler.LambdaLR:
    """A `LambdaLR` over `lr_factor`, stepped once per optimiser step (not prepared by Accelerate, which would step
    it once per process); its state goes into `trainer_state.json`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, args))


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------------


def list_checkpoints(output_dir: str, complete_only: bool = True) -> list[tuple[int, str]]:
    """`(step, path)` of the checkpoints in `output_dir`, oldest first."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = CHECKPOINT_PATTERN.match(name)
        path = os.path.join(output_dir, name)
        if match and (not complete_only or os.path.isfile(os.path.join(path, COMPLETE_MARKER))):
            found.append((int(match.group(1)), path))
    return sorted(found)


def resolve_checkpoint(output_dir: str, resume: str | None) -> str | None:
    """The checkpoint folder to resume from: `None`, `"latest"` (newest complete one, or None) or a path."""
    if not resume:
        return None
    if resume == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1][1] if checkpoints else None
    if not os.path.isfile(os.path.join(resume, "trainer_state.json")):
        raise FileNotFoundError(f"{resume}: not a checkpoint folder (no trainer_state.json)")
    if not os.path.isfile(os.path.join(resume, COMPLETE_MARKER)):
        raise ValueError(f"{resume}: incomplete checkpoint (the run was stopped while saving it)")
    return resume


def _write_json(path: str, payload: Any) -> None:
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
    os.replace(temporary, path)


def _read_json(path: str) -> Any:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing from the checkpoint")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# ---------------------------------------------------------------------------------------------------------------------
# The step loop
# ---------------------------------------------------------------------------------------------------------------------


class TrainingRun:
    """One training stage: owns the optimiser, schedule, checkpoints, logging and the final save.

    Args:
        accelerator: from `setup_accelerator`.
        model: the model to train (not yet prepared).
        args: `TrainArguments`.
        config_instances: every config dataclass of the run (written to `resolved_config.yaml` and the card).
        streams: data streams with `state_dict()` / `load_state_dict()` / `bad_counts()`, saved per process.
        stage: `"teacher"` or `"student"` (for the model card and logs).
    """

    def __init__(
        self,
        accelerator: Accelerator,
        model: DepthAnythingForDepthEstimation,
        args: TrainArguments,
        config_instances: Iterable[Any],
        streams: dict[str, Any],
        stage: str,
    ) -> None:
        self.accelerator = accelerator
        self.args = args
        self.config_instances = list(config_instances)
        self.streams = streams
        self.stage = stage
        self.global_step = 0
        self.last_loss = float("nan")
        self.images_seen = 0
        os.makedirs(args.output_dir, exist_ok=True)
        if accelerator.is_main_process:
            save_resolved_config(os.path.join(args.output_dir, "resolved_config.yaml"), *self.config_instances)
        optimizer = build_optimizer(model, args)
        self.scheduler = build_scheduler(optimizer, args)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        set_seed(args.seed + accelerator.process_index)  # per-process randomness (perturbations, CutMix) from here on
        if args.report_to == "tensorboard":
            hparams = {
                k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                for k, v in flat_config(*self.config_instances).items()
            }
            accelerator.init_trackers(stage, config=hparams)

    # -- resume -------------------------------------------------------------------------------------------------------

    def maybe_resume(self) -> None:
        """Restore model, optimiser, RNG, schedule and stream positions from `resume_from_checkpoint`."""
        path = resolve_checkpoint(self.args.output_dir, self.args.resume_from_checkpoint)
        if path is None:
            if self.args.resume_from_checkpoint:
                logger.info(f"No checkpoint in {self.args.output_dir}; starting from scratch")
            return
        state = _read_json(os.path.join(path, "trainer_state.json"))
        if state["world_size"] != self.accelerator.num_processes:
            raise ValueError(
                f"{path}: saved with {state['world_size']} processes, resumed with {self.accelerator.num_processes}; "
                "the stream positions are per process, resume with the same number"
            )
        self.accelerator.load_state(path)
        self.scheduler.load_state_dict(state["scheduler"])
        self.global_step = int(state["global_step"])
        self.images_seen = int(state.get("images_seen", 0))
        stream_state = _read_json(os.path.join(path, f"stream_state_rank{self.accelerator.process_index}.json"))
        for name, stream in self.streams.items():
            stream.load_state_dict(stream_state[name])
        logger.info(f"Resumed from {path} at step {self.global_step}")

    # -- checkpoints --------------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> str:
        """Save a resumable checkpoint for the current step and rotate old ones (all processes must call this)."""
        accelerator = self.accelerator
        path = os.path.join(self.args.output_dir, f"checkpoint-{self.global_step}")
        if accelerator.is_main_process and os.path.isdir(path):
            shutil.rmtree(path)  # a stale, incomplete folder from a killed run
        accelerator.wait_for_everyone()
        accelerator.save_state(path)
        os.makedirs(path, exist_ok=True)
        _write_json(
            os.path.join(path, f"stream_state_rank{accelerator.process_index}.json"),
            {name: stream.state_dict() for name, stream in self.streams.items()},
        )
        # Gathered on every process: FSDP and DeepSpeed ZeRO-3 shard the weights, a lone main process would hang.
        full_state = accelerator.get_state_dict(self.model)
        if accelerator.is_main_process:
            _write_json(
                os.path.join(path, "trainer_state.json"),
                {
                    "global_step": self.global_step,
                    "world_size": accelerator.num_processes,
                    "images_seen": self.images_seen,
                    "scheduler": self.scheduler.state_dict(),
                    "last_loss": self.last_loss,
                    "bad_samples": self.bad_counts(),
                },
            )
            accelerator.unwrap_model(self.model).save_pretrained(os.path.join(path, "model"), state_dict=full_state)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            with open(os.path.join(path, COMPLETE_MARKER), "w", encoding="utf-8") as handle:
                handle.write(f"step {self.global_step}\n")
            for _, old in list_checkpoints(self.args.output_dir, complete_only=False)[
                : -self.args.checkpoints_total_limit
            ]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()
        return path

    def bad_counts(self) -> dict[str, int]:
        """Bad samples skipped so far, summed over the streams of this process."""
        total: dict[str, int] = {}
        for stream in self.streams.values():
            for reason, count in stream.bad_counts().items():
                total[reason] = total.get(reason, 0) + count
        return total

    # -- the loop -----------------------------------------------------------------------------------------------------

    def train(
        self,
        next_batch: Callable[[], dict[str, torch.Tensor]],
        compute_loss: Callable[[torch.nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]],
    ) -> None:
        """Run optimiser steps until `max_steps`, resuming first if asked.

        `next_batch()` returns this process's next micro-batch (tensors on any device; moved here);
        `compute_loss(model, batch)` returns `(loss, {name: float})` for logging.

        Raises:
            NonFiniteLossError: the loss of any process became NaN/inf; nothing of that step is applied or saved.
        """
        args, accelerator = self.args, self.accelerator
        self.maybe_resume()
        self.model.train()
        progress = tqdm(
            total=args.max_steps,
            initial=self.global_step,
            desc=self.stage,
            disable=not accelerator.is_local_main_process,
            dynamic_ncols=True,
        )
        window_start, window_images = time.perf_counter(), 0
        loop_start = window_start
        while self.global_step < args.max_steps:
            step_losses: list[float] = []
            step_logs: dict[str, float] = {}
            for _ in range(args.gradient_accumulation_steps):
                batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in next_batch().items()}
                with accelerator.accumulate(self.model):
                    loss, logs = compute_loss(self.model, batch)
                    if args.debug_nan_at_step is not None and self.global_step + 1 == args.debug_nan_at_step:
                        loss = loss * float("nan")
                    self._check_finite(loss)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and args.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                step_losses.append(float(self._reduced_loss))
                for key, value in logs.items():
                    step_logs[key] = step_logs.get(key, 0.0) + value / args.gradient_accumulation_steps
                step_images = batch.get("batch_size", 0) or batch["pixel_values"].shape[0]
                step_images *= accelerator.num_processes
                window_images += step_images
                self.images_seen += step_images
            self.scheduler.step()
            self.global_step += 1
            self.last_loss = sum(step_losses) / len(step_losses)
            progress.update(1)
            progress.set_postfix(loss=f"{self.last_loss:.4f}")
            if self.global_step % args.logging_steps == 0 or self.global_step == args.max_steps:
                elapsed = time.perf_counter() - window_start
                self._log(step_logs, images_per_second=window_images / max(elapsed, 1e-9))
                window_start, window_images = time.perf_counter(), 0
            out_of_time = self._out_of_time(loop_start)
            if self.global_step % args.checkpointing_steps == 0 or self.global_step == args.max_steps or out_of_time:
                path = self.save_checkpoint()
                logger.info(f"Saved {path}")
            if out_of_time:
                logger.info(f"Stopping at step {self.global_step}: max_minutes={args.max_minutes} reached")
                break
        progress.close()

    def _out_of_time(self, loop_start: float) -> bool:
        """Whether `max_minutes` has passed on any process (all processes take the same decision)."""
        if self.args.max_minutes is None:
            return False
        late = torch.tensor([float(time.perf_counter() - loop_start > 60 * self.args.max_minutes)])
        return bool(self.accelerator.reduce(late.to(self.accelerator.device), reduction="sum").item() > 0)

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Average the loss over processes and stop every process together if any of them is not finite."""
        detached = loss.detach().float().reshape(1)  # (1,)
        finite = torch.isfinite(detached)
        packed = torch.cat([torch.where(finite, detached, torch.zeros_like(detached)), (~finite).float()])  # (2,)
        packed = self.accelerator.reduce(packed.to(self.accelerator.device), reduction="sum")
        if packed[1] > 0:
            checkpoints = list_checkpoints(self.args.output_dir)
            last = checkpoints[-1][1] if checkpoints else "none (no checkpoint was saved before)"
            message = (
                f"Loss is not finite ({loss.item()}) at step {self.global_step + 1} on "
                f"{int(packed[1].item())} process(es); stopping without applying or saving this step. "
                f"Last good checkpoint: {last}. Lower the learning rate or check the data, then resume with "
                "--resume_from_checkpoint latest."
            )
            logger.error(message)
            raise NonFiniteLossError(message)
        self._reduced_loss = packed[0].item() / self.accelerator.num_processes

    def _log(self, step_logs: dict[str, float], images_per_second: float) -> None:
        lr = {f"train/lr_{group.get('name', i)}": group["lr"] for i, group in enumerate(self.optimizer.param_groups)}
        bad = {f"data/bad_{reason}": count for reason, count in self.bad_counts().items()}
        record = {
            "train/loss": self.last_loss,
            **{f"train/{k}": v for k, v in step_logs.items()},
            **lr,
            **bad,
            "train/images_per_second": images_per_second,
        }
        if self.args.report_to == "tensorboard":
            self.accelerator.log(record, step=self.global_step)
        if self.accelerator.is_main_process:
            with open(os.path.join(self.args.output_dir, "losses.jsonl"), "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": self.global_step, **record}) + "\n")
        logger.info(f"step {self.global_step}: loss {self.last_loss:.4f}, {images_per_second:.1f} images/s")

    # -- the final folder ---------------------------------------------------------------------------------------------

    def save_final(self, processor: DepthAnythingImageProcessor, card_notes: str = "") -> str:
        """Write `<output_dir>/final`: model, processor, resolved config and model card; push if asked."""
        accelerator = self.accelerator
        final = os.path.join(self.args.output_dir, "final")
        accelerator.wait_for_everyone()
        full_state = accelerator.get_state_dict(self.model)  # on every process (sharded weights)
        if accelerator.is_main_process:
            save_pretrained_folder(
                accelerator.unwrap_model(self.model),
                processor,
                final,
                self.config_instances,
                stage=self.stage,
                steps=self.global_step,
                last_loss=self.last_loss,
                bad_samples=self.bad_counts(),
                notes=card_notes,
                state_dict=full_state,
            )
            logger.info(f"Saved the final model to {final}")
            if self.args.push_to_hub:
                push_folder(final, self.args.hub_model_id, repo_type="model", private=self.args.hub_private)
        accelerator.wait_for_everyone()
        return final


def save_pretrained_folder(
    model: DepthAnythingForDepthEstimation,
    processor: DepthAnythingImageProcessor,
    folder: str,
    config_instances: list[Any],
    stage: str,
    steps: int,
    last_loss: float,
    bad_samples: dict[str, int],
    notes: str = "",
    state_dict: dict[str, torch.Tensor] | None = None,
) -> None:
    """A `from_pretrained` folder: weights (safetensors), config, processor, `training_config.yaml`, `README.md`."""
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, state_dict=state_dict)
    processor.save_pretrained(folder)
    save_resolved_config(os.path.join(folder, "training_config.yaml"), *config_instances)
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as handle:
        handle.write(model_card(model, config_instances, stage, steps, last_loss, bad_samples, notes))


def model_card(
    model: DepthAnythingForDepthEstimation,
    config_instances: list[Any],
    stage: str,
    steps: int,
    last_loss: float,
    bad_samples: dict[str, int],
    notes: str = "",
) -> str:
    """The Hub model card of a trained model: the project's template (`modeling_depth_anything/model_card.md`, via
    `make_model_card`) filled with the stage, the data, the bad-sample counts and the resolved config."""
    from modeling_depth_anything.model_card import make_model_card

    flat = flat_config(*config_instances)
    parameters = sum(p.numel() for p in model.parameters())
    sources = [*flat.get("labelled", []), *flat.get("unlabelled", [])]
    if flat.get("pseudo_labels"):
        sources.append(f"pseudo-labels: {flat['pseudo_labels']}")
    hub_ids = [s for s in sources if s.count("/") == 1 and not is_local_target(s)]
    encoder = flat.get("encoder_init", "random")
    base_model = encoder if encoder != "random" and not is_local_target(encoder) else None
    summary = (
        f"Trained with depth-anything-hf `train/{stage}.py` ({flat.get('preset', 'custom')} preset, "
        f"{parameters / 1e6:.1f}M parameters) for {steps} optimiser steps; final training loss {last_loss:.4f}. "
        f"Encoder initialised from `{encoder}`. Data: {', '.join(f'`{s}`' for s in sources) or 'see the config'}. "
        f"Bad samples skipped: {bad_samples or 'none'}. {notes}"
    ).strip()
    target = flat.get("hub_model_id") or "path/to/this/folder"
    card = make_model_card(
        model.config,
        model_name=f"Depth Anything {stage} ({flat.get('preset', 'custom')})",
        repo_id=target,
        source=f"Trained by `train/{stage}.py`.",
        base_model=base_model,
        datasets=hub_ids or None,
        training_summary=summary,
        training_config=flat,
    )
    return str(card)
