"""Shared machinery of the training stages, written once: accelerator, model and optimiser set-up, the step loop,
checkpoints with resume, the NaN stop, logging (`losses.jsonl` and every Accelerate tracker of `report_to`), the final
`from_pretrained` folder, its model card and the push.

The stage scripts (`teacher.py`, `student.py`, `metric.py`) only say how to get a batch and how to compute its loss::

    accelerator = setup_training_accelerator(train_args, data_args)
    model = build_model(model_args)
    run = TrainingRun(accelerator, model, train_args, config_instances, streams={"labelled": stream}, stage="teacher")
    run.train(next_batch, compute_loss)      # resumes, logs, checkpoints, stops on NaN
    run.save_final(processor)                 # <output_dir>/final: model + processor + config + model card
    accelerator.end_training()

Checkpoints (`<output_dir>/checkpoint-<step>/`) are `accelerator.save_state` folders: optimiser (`optimizer.bin`),
per-process RNG (`random_states_<rank>.pkl`), and the objects registered with `accelerator.register_for_checkpointing`
(`custom_checkpoint_0.pkl`: the lr scheduler; `custom_checkpoint_1.pkl`: every process's data-stream position); the
weights are stored once, as a `model/` `from_pretrained` folder written and read by Accelerate's save/load-state hooks
(so any checkpoint loads without the trainer). Beside them: `trainer_state.json` (step, number of processes, images
seen, bad-sample and skipped-step counts) and a `COMPLETE` marker written last: `--resume_from_checkpoint latest`
only considers complete checkpoints, so a run killed while saving resumes from the previous one. Under FSDP and
DeepSpeed the weights stay in Accelerate's sharded format instead (the hooks cannot gather them), still stored once.

A NaN/inf loss on any process stops the run before the step is applied (`NonFiniteLossError`); a step whose
gradients are NaN/inf on any process is skipped and counted (`train/skipped_steps`), and `max_skipped_steps` of them
in a row stop the run (`NonFiniteGradientError`); both keep the last good checkpoint.

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
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, gather_object, set_seed
from tqdm.auto import tqdm
from transformers import get_scheduler

from ..data.transforms import batch_num_images, batch_to_device
from ..hub import push_folder
from ..image_processing_depth_anything import DepthAnythingImageProcessor
from ..model_card import training_model_card
from ..modeling_depth_anything import DepthAnythingForDepthEstimation
from .args import TrainArguments, flat_config, report_targets, save_resolved_config

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
COMPLETE_MARKER = "COMPLETE"
MODEL_FOLDER = "model"  # the checkpoint's only copy of the weights (DDP / one process), a `from_pretrained` folder
# transformers' names of the schedules behind `TrainArguments.lr_schedule`
SCHEDULER_NAMES = {"linear": "linear", "poly": "polynomial", "constant": "constant_with_warmup"}


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: the run stops and the last good checkpoint is kept."""


class NonFiniteGradientError(RuntimeError):
    """`max_skipped_steps` steps in a row had NaN/inf gradients: the run stops and the last good checkpoint is kept."""


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


def build_scheduler(optimizer: torch.optim.Optimizer, args: TrainArguments) -> torch.optim.lr_scheduler.LRScheduler:
    """transformers' schedule for `args.lr_schedule`: linear warm-up from 0 over `warmup_steps`, then linear decay to
    0 (`"linear"`), polynomial decay to 0 with power `poly_power` (`"poly"`), or constant (`"constant"`).

    Stepped once per optimiser step, skipped or not (the schedule is a function of the step). Not prepared by
    Accelerate, whose wrapper steps it once per process; registered for checkpointing instead.
    """
    extra = {"power": args.poly_power, "lr_end": 0.0} if args.lr_schedule == "poly" else None
    return get_scheduler(
        SCHEDULER_NAMES[args.lr_schedule],
        optimizer,
        num_warmup_steps=args.warmup_steps,
        num_training_steps=args.max_steps,
        scheduler_specific_kwargs=extra,
    )


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


def write_json(path: str, payload: Any) -> None:
    """Write `payload` as JSON atomically (a temporary file renamed over `path`): a kill leaves the old file or the new."""
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
    os.replace(temporary, path)


def _read_json(path: str) -> Any:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing from the checkpoint")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class ProcessStates:
    """The stream positions of every process, as one object for `accelerator.register_for_checkpointing`.

    Accelerate saves a registered object's `state_dict()` only on the main process (`custom_checkpoint_<i>.pkl`,
    accelerate 1.15 `save_custom_state`) and loads that one file into every process, while each process reads its own
    shard of the data. So `state_dict()` (called on every process by `save_state`) gathers all processes' states,
    and `load_state_dict` picks this process's entry.

    Args:
        accelerator: the run's accelerator.
        streams: `{name: stream}`, each with `state_dict()` / `load_state_dict()`.
    """

    def __init__(self, accelerator: Accelerator, streams: dict[str, Any]) -> None:
        self.accelerator = accelerator
        self.streams = streams

    def state_dict(self) -> dict[str, Any]:
        own = {name: stream.state_dict() for name, stream in self.streams.items()}
        states = gather_object([own]) if self.accelerator.num_processes > 1 else [own]  # rank order
        return {"world_size": self.accelerator.num_processes, "processes": states}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["world_size"] != self.accelerator.num_processes:
            raise ValueError(
                f"stream positions saved by {state['world_size']} processes cannot resume with "
                f"{self.accelerator.num_processes}: resume with the same number"
            )
        for name, stream in self.streams.items():
            stream.load_state_dict(state["processes"][self.accelerator.process_index][name])


# ---------------------------------------------------------------------------------------------------------------------
# The step loop
# ---------------------------------------------------------------------------------------------------------------------


class TrainingRun:
    """One training stage: owns the optimiser, schedule, checkpoints, logging and the final save.

    Args:
        accelerator: from `setup_training_accelerator` (or `setup_accelerator`).
        model: the model to train (not yet prepared).
        args: `TrainArguments`.
        config_instances: every config dataclass of the run (written to `resolved_config.yaml` and the card).
        streams: data streams with `state_dict()` / `load_state_dict()` / `bad_counts()`, saved per process.
        stage: `"teacher"`, `"student"` or `"metric"` (the tracker run name, the model card's `train/<stage>.py`).
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
        self.skipped_steps = 0  # optimiser steps not applied (NaN/inf gradients), over the whole run
        self.consecutive_skipped = 0
        self.grad_norm = float("nan")  # of the last applied step, before clipping (NaN when clipping is off)
        os.makedirs(args.output_dir, exist_ok=True)
        if accelerator.is_main_process:
            save_resolved_config(os.path.join(args.output_dir, "resolved_config.yaml"), *self.config_instances)
        optimizer = build_optimizer(model, args)
        self.scheduler = build_scheduler(optimizer, args)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        # Saved and restored by `save_state` / `load_state`, in this order (custom_checkpoint_0.pkl, _1.pkl).
        accelerator.register_for_checkpointing(self.scheduler, ProcessStates(accelerator, self.streams))
        self._register_weight_hooks()
        set_seed(args.seed + accelerator.process_index)  # per-process randomness (perturbations, CutMix) from here on
        if report_targets(args.report_to):
            hparams = {
                k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                for k, v in flat_config(*self.config_instances).items()
            }
            accelerator.init_trackers(stage, config=hparams)

    def _register_weight_hooks(self) -> None:
        """Store the weights of a checkpoint once, as its `model/` `from_pretrained` folder, instead of Accelerate's
        `model.safetensors` plus a second copy: the save hook writes the folder and empties Accelerate's list of
        weights to write; the load hook reads the folder and removes the model from Accelerate's list to load.

        Not under FSDP / DeepSpeed / Megatron, whose weights Accelerate saves sharded (its `weights` list is empty
        there and a main-process `save_pretrained` would see only a shard).
        """
        accelerator = self.accelerator
        if accelerator.distributed_type in (
            DistributedType.FSDP,
            DistributedType.DEEPSPEED,
            DistributedType.MEGATRON_LM,
        ):
            return

        def save_weights(models: list, weights: list, output_dir: str) -> None:
            if accelerator.is_main_process:
                for index, model in enumerate(models):
                    folder = os.path.join(output_dir, MODEL_FOLDER if index == 0 else f"{MODEL_FOLDER}_{index}")
                    accelerator.unwrap_model(model).save_pretrained(folder)
            weights.clear()  # on every process: Accelerate writes no second copy

        def load_weights(models: list, input_dir: str) -> None:
            for index, model in enumerate(models):
                folder = os.path.join(input_dir, MODEL_FOLDER if index == 0 else f"{MODEL_FOLDER}_{index}")
                target = accelerator.unwrap_model(model)
                target.load_state_dict(type(target).from_pretrained(folder).state_dict())
            models.clear()  # loaded here; Accelerate must not look for its own weight files

        accelerator.register_save_state_pre_hook(save_weights)
        accelerator.register_load_state_pre_hook(load_weights)

    # -- resume -------------------------------------------------------------------------------------------------------

    def maybe_resume(self) -> None:
        """Restore model, optimiser, RNG, schedule and stream positions (`accelerator.load_state`) and the step
        counters (`trainer_state.json`) from `resume_from_checkpoint`."""
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
        self.accelerator.load_state(path)  # model, optimiser, RNG, scheduler, stream positions
        # The optimiser's lr came back as it was saved, from the saved run's schedule; recompute it for this step from
        # this run's (the same unless max_steps grew) so that the first step after resuming already follows it.
        self.scheduler.last_epoch -= 1
        self.scheduler.step()
        self.global_step = int(state["global_step"])
        self.images_seen = int(state.get("images_seen", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        logger.info(f"Resumed from {path} at step {self.global_step}")

    # -- checkpoints --------------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> str:
        """Save a resumable checkpoint for the current step and rotate old ones (all processes must call this)."""
        accelerator = self.accelerator
        path = os.path.join(self.args.output_dir, f"checkpoint-{self.global_step}")
        if accelerator.is_main_process and os.path.isdir(path):
            shutil.rmtree(path)  # a stale, incomplete folder from a killed run
        accelerator.wait_for_everyone()
        accelerator.save_state(path)  # weights once (the hooks), optimiser, RNG, scheduler, stream positions
        if accelerator.is_main_process:
            write_json(
                os.path.join(path, "trainer_state.json"),
                {
                    "global_step": self.global_step,
                    "world_size": accelerator.num_processes,
                    "images_seen": self.images_seen,
                    "last_loss": self.last_loss,
                    "skipped_steps": self.skipped_steps,
                    "bad_samples": self.bad_counts(),
                },
            )
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

        `next_batch()` returns this process's next micro-batch, a nested batch `{part: {key: tensor or ids}}`
        (`data.transforms`; tensors on any device, moved here; images counted over the parts);
        `compute_loss(model, batch)` returns `(loss, {name: float})` for logging.

        Raises:
            NonFiniteLossError: the loss of any process became NaN/inf; nothing of that step is applied or saved.
            NonFiniteGradientError: `max_skipped_steps` steps in a row had NaN/inf gradients (each was skipped).
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
            outcome = "applied"
            for _ in range(args.gradient_accumulation_steps):
                batch = batch_to_device(next_batch(), accelerator.device)  # nested: {part: {key: tensor or ids}}
                with accelerator.accumulate(self.model):
                    loss, logs = compute_loss(self.model, batch)
                    if args.debug_nan_at_step is not None and self.global_step + 1 == args.debug_nan_at_step:
                        loss = loss * float("nan")
                    self._check_finite(loss)
                    outcome = self._backward_and_step(loss)
                step_losses.append(float(self._reduced_loss))
                for key, value in logs.items():
                    step_logs[key] = step_logs.get(key, 0.0) + value / args.gradient_accumulation_steps
                step_images = batch_num_images(batch) * accelerator.num_processes
                window_images += step_images
                self.images_seen += step_images
            with warnings.catch_warnings():
                # the schedule is a function of the step, applied or skipped; torch warns when the very first
                # optimiser step was skipped (non-finite gradients), which is intended here
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
                self.scheduler.step()
            self.global_step += 1
            self._count_skipped(outcome)
            self.last_loss = sum(step_losses) / len(step_losses)
            progress.update(1)
            progress.set_postfix(loss=f"{self.last_loss:.4f}")
            if self.global_step % args.logging_steps == 0 or self.global_step == args.max_steps:
                elapsed = time.perf_counter() - window_start
                self._log(step_logs, images_per_second=window_images / max(elapsed, 1e-9))
                window_start, window_images = time.perf_counter(), 0
            self._stop_after_skipped_steps()
            out_of_time = self._out_of_time(loop_start)
            if self.global_step % args.checkpointing_steps == 0 or self.global_step == args.max_steps or out_of_time:
                path = self.save_checkpoint()
                logger.info(f"Saved {path}")
            if out_of_time:
                logger.info(f"Stopping at step {self.global_step}: max_minutes={args.max_minutes} reached")
                break
        progress.close()

    def _backward_and_step(self, loss: torch.Tensor) -> str:
        """Backward pass; on the micro-batch that completes an optimiser step, clip and apply it unless a gradient is
        NaN/inf on any process (all processes take the same decision).

        Returns `"applied"`, `"skipped"` (non-finite gradients: not applied) or `"scaler_skipped"` (fp16: the
        GradScaler found an overflow, skipped the step and lowered its scale, as it routinely does early on).
        """
        args, accelerator = self.args, self.accelerator
        accelerator.backward(loss)
        if not accelerator.sync_gradients:
            return "applied"  # accumulating: nothing is applied before the step's last micro-batch
        if self.global_step + 1 in args.debug_nonfinite_grad_steps and accelerator.is_main_process:
            grad = next(p.grad for p in self.model.parameters() if p.grad is not None)
            grad[(0,) * grad.dim()] = float("inf")  # process 0 only: the decision must still be everyone's
        # With fp16 the gradients are still scaled here and the GradScaler handles overflows itself.
        if accelerator.scaler is None and not self._gradients_finite():
            self.optimizer.zero_grad(set_to_none=True)
            return "skipped"
        if args.max_grad_norm > 0:
            self.grad_norm = float(accelerator.clip_grad_norm_(self.model.parameters(), args.max_grad_norm))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return "scaler_skipped" if accelerator.optimizer_step_was_skipped else "applied"

    def _gradients_finite(self) -> bool:
        """Whether every gradient of every process is finite (under FSDP each process holds a shard)."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        finite = torch.stack([torch.isfinite(g).all() for g in grads]).all() if grads else torch.tensor(True)
        bad = (~finite).float().reshape(1).to(self.accelerator.device)  # (1,)
        return self.accelerator.reduce(bad, reduction="sum").item() == 0

    def _count_skipped(self, outcome: str) -> None:
        """Count a skipped step (fp16 GradScaler skips are counted, but are not "in a row": the scaler recovers)."""
        if outcome == "applied":
            self.consecutive_skipped = 0
            return
        self.skipped_steps += 1
        if outcome == "scaler_skipped":
            return
        self.consecutive_skipped += 1
        logger.warning(
            f"Step {self.global_step}: NaN/inf gradients, step skipped (not applied); "
            f"{self.consecutive_skipped} in a row, {self.skipped_steps} in all"
        )

    def _last_good_checkpoint(self) -> str:
        """The newest complete checkpoint, for the message of a run that stops on non-finite values."""
        checkpoints = list_checkpoints(self.args.output_dir)
        return checkpoints[-1][1] if checkpoints else "none (no checkpoint was saved before)"

    def _stop_after_skipped_steps(self) -> None:
        """Stop (every process: the counts are the same everywhere) after `max_skipped_steps` skipped in a row."""
        if self.consecutive_skipped >= self.args.max_skipped_steps:
            last = self._last_good_checkpoint()
            message = (
                f"Gradients were not finite for {self.consecutive_skipped} steps in a row (steps "
                f"{self.global_step - self.consecutive_skipped + 1}-{self.global_step}, max_skipped_steps="
                f"{self.args.max_skipped_steps}); stopping without saving. Last good checkpoint: {last}. Lower the "
                "learning rate or check the data, then resume with --resume_from_checkpoint latest."
            )
            logger.error(message)
            raise NonFiniteGradientError(message)

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
            last = self._last_good_checkpoint()
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
            "train/skipped_steps": self.skipped_steps,
            "train/images_per_second": images_per_second,
        }
        if self.args.max_grad_norm > 0:
            record["train/grad_norm"] = self.grad_norm
        if report_targets(self.args.report_to):
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
                skipped_steps=self.skipped_steps,
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
    skipped_steps: int = 0,
) -> None:
    """A `from_pretrained` folder: weights (safetensors), config, processor, `training_config.yaml`, `README.md`
    (the model card from `model_card.training_model_card`)."""
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, state_dict=state_dict)
    processor.save_pretrained(folder)
    save_resolved_config(os.path.join(folder, "training_config.yaml"), *config_instances)
    card = training_model_card(
        model,
        processor,
        flat_config(*config_instances),
        stage=stage,
        steps=steps,
        last_loss=last_loss,
        bad_samples=bad_samples,
        skipped_steps=skipped_steps,
        notes=notes,
    )
    card.save(os.path.join(folder, "README.md"))
