"""Typed, validated configuration of the three training stages, parsed from one YAML plus command-line overrides.

A run is configured by a YAML file that lists only what differs from the defaults below, and any field can be
overridden on the command line (`--max_steps 10`). The parser is transformers' `HfArgumentParser`: the YAML values
become the parser's defaults, then the command line is parsed on top, so precedence is
`dataclass default < YAML < command line`. Unknown YAML keys are an error naming the file and the key.

The resolved configuration (every field of every dataclass) is written to `<output_dir>/resolved_config.yaml` and
copied into every final model folder, so a run can be reproduced with `--config <that file>`.

Example::

    model_args, data_args, train_args, stage_args = parse_args(StudentArguments)
    # python train/student.py --config train/configs/tiny_student.yaml --output_dir runs/student --max_steps 4
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml
from transformers import HfArgumentParser

from ..configuration_depth_anything import PRESETS

LR_SCHEDULES = ("linear", "poly", "constant")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
STUDENT_MODES = ("v1", "v2")
# Accelerate's experiment trackers (`accelerate.utils.LoggerType`), plus "none"; "all" = every one installed.
TRACKERS = ("tensorboard", "wandb", "comet_ml", "mlflow", "aim", "clearml", "dvclive", "trackio", "swanlab")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _non_negative_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _mixed_precision(value: Any) -> None:
    if value not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, got {value!r}")


def _cpu_threads(value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"cpu_threads must be a positive integer or unset (auto), got {value!r}")


def report_targets(report_to: str) -> list[str]:
    """`report_to` as a list of Accelerate tracker names (`[]` for `"none"`, `["all"]` for every installed one).

    Raises:
        ValueError: an unknown tracker name (quoting it and the valid ones).
    """
    names = [name.strip() for name in str(report_to).split(",") if name.strip()]
    if names == ["none"]:
        return []
    if names == ["all"]:
        return names
    unknown = [name for name in names if name not in TRACKERS]
    if not names or unknown:
        raise ValueError(
            f"report_to must be 'none', 'all' or a comma-separated list of {list(TRACKERS)}, got {report_to!r}"
        )
    return names


@dataclass
class ModelArguments:
    """The model to train.

    Args:
        preset (`str`, defaults to `"tiny"`): architecture from `DepthAnythingConfig.from_preset` (`v2-small`,
            `v1-large`, `v2-giant`, `tiny`, ...). Ignored when `init_from` is a Depth Anything folder.
        init_from (`str`, *optional*): start from a full Depth Anything model (Hub id or `from_pretrained` folder),
            e.g. to fine-tune a released teacher.
        encoder_init (`str`, defaults to `"random"`): initialisation of the DINOv2 encoder: a Hub id or local folder
            loadable with `Dinov2Model.from_pretrained` (e.g. `facebook/dinov2-small`), a Depth Anything folder (its
            encoder is taken), or `"random"` (tests and from-scratch CPU runs).
        decoder_init (`str`, defaults to `"pytorch"`): initialisation of a new neck and head: `"pytorch"` (PyTorch's
            default conv init, as the original DPT code) or `"config"` (the model's `_init_weights`, normal(0, 0.02),
            whose output starts at ~1e-6: the scale-invariant loss then has gradients ~1e5 and the first Adam step
            kills the final ReLU; measured on the tiny model from scratch). Ignored with `init_from`.
        processor_size (`int`, defaults to 518): `size` of the image processor saved with the model (short side at
            inference); tiny runs use their training resolution.
        channels_last (`bool`, defaults to True): channels-last memory format for the convolutions (1.4x faster
            training steps of the tiny model on CPU in bf16).
    """

    preset: str = "tiny"
    init_from: str | None = None
    encoder_init: str = "random"
    decoder_init: str = "pytorch"
    processor_size: int = 518
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        _positive_int("processor_size", self.processor_size)
        if self.decoder_init not in ("pytorch", "config"):
            raise ValueError(f"decoder_init must be 'pytorch' or 'config', got {self.decoder_init!r}")


@dataclass
class DataArguments:
    """Where samples come from, how they are shuffled, decoded and cropped (the data engine, `data/`).

    Source specs, read by `data.open_source`: `"synthetic"` (procedural scenes, `data/synthetic.py`), a local RGB-D
    folder (`<sample>/image.png` + `depth.png` in uint16 millimetres, like the shipped `assets/rgbd`), an image folder
    (unlabelled), parquet/webdataset files or globs, a local dataset folder, or a Hub dataset id.

    Args:
        labelled (`list[str]`): labelled sources (the teacher; the student's labelled part in V1 mode).
        unlabelled (`list[str]`): unlabelled images (pseudo-labelling input; the student in online-teacher mode).
        pseudo_labels (`str`, *optional*): the student's pseudo-labels: the `--output_dir` of `pseudo_label.py` (or
            a Hub dataset id / a folder it was pushed to).
        crop_size (`int`, defaults to 518): the short side is resized to this, then a random square crop of this
            size (a multiple of 14) is taken (facts §4).
        hflip (`bool`, defaults to True): random horizontal flips.
        image_column / depth_column (`str`): columns of `datasets` labelled sources ("image", "depth").
        depth_kind (`str`, defaults to `"depth"`): `"depth"` or `"disparity"` values in `depth_column`.
        depth_scale (`float`, defaults to 1.0): multiplies raw depth values (0.001 for millimetre PNGs).
        max_depth (`float`, *optional*): larger (scaled) depths are invalid.
        synthetic_height (`int`, defaults to 256): rendered synthetic image height.
        synthetic_width (`int`, defaults to 256): rendered synthetic image width.
        synthetic_seed (`int`, defaults to 0): seed of the synthetic stream (held-out evaluation uses other seeds).
        synthetic_num_shards (`int`, defaults to 8): sub-streams, shared out between processes (a multiple of the
            number of processes).
        shuffle_buffer (`int`, defaults to 256): raw rows per source in the seeded shuffle buffer
            (`datasets.IterableDataset.shuffle`; shard order is shuffled too, again every pass); 0 reads in stored
            order; 1 shuffles the shard order only (O(1) resume, for very long passes). A buffer costs memory (file
            names for folders, the encoded bytes for parquet/Hub rows) and, on resume, re-reading (not decoding) the
            current pass's rows up to the saved position (`data/mixing.py`).
        num_workers (`int`, *optional*): DataLoader worker processes per training process that decode and transform
            (0 = in the training process); default: the CPUs this process may use, divided by the processes on the
            machine, minus one for the loop (`data.default_num_workers`). Resume with the same number.
    """

    labelled: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    pseudo_labels: str | None = None
    crop_size: int = 518
    hflip: bool = True
    image_column: str = "image"
    depth_column: str = "depth"
    depth_kind: str = "depth"
    depth_scale: float = 1.0
    max_depth: float | None = None
    synthetic_height: int = 256
    synthetic_width: int = 256
    synthetic_seed: int = 0
    synthetic_num_shards: int = 8
    shuffle_buffer: int = 256
    num_workers: int | None = None

    def __post_init__(self) -> None:
        for name in ("crop_size", "synthetic_height", "synthetic_width", "synthetic_num_shards"):
            _positive_int(name, getattr(self, name))
        for name in ("shuffle_buffer", "num_workers"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.shuffle_buffer is None:
            raise ValueError("shuffle_buffer must be an integer >= 0, got None")
        if self.crop_size % 14:
            raise ValueError(f"crop_size must be a multiple of the patch size 14, got {self.crop_size!r}")
        if self.depth_kind not in ("depth", "disparity"):
            raise ValueError(f"depth_kind must be 'depth' or 'disparity', got {self.depth_kind!r}")
        if not (isinstance(self.depth_scale, (int, float)) and self.depth_scale > 0):
            raise ValueError(f"depth_scale must be > 0, got {self.depth_scale!r}")


@dataclass
class TrainArguments:
    """Optimisation, checkpointing and logging, shared by the teacher and the student.

    Args:
        output_dir (`str`, defaults to `"runs/train"`): run folder: `checkpoint-N/`, `final/`, `logs/`,
            `resolved_config.yaml`, `losses.jsonl`.
        max_steps (`int`, defaults to 1000): optimiser steps (loops run on steps, never epochs).
        max_minutes (`float`, *optional*): also stop (with a checkpoint and the final folder) once this much wall
            time has passed since the loop started; the schedule still spans `max_steps`.
        per_device_batch_size (`int`, defaults to 4): samples per process per micro-batch.
        gradient_accumulation_steps (`int`, defaults to 1): micro-batches per optimiser step.
        encoder_lr (`float`, defaults to 5e-6): learning rate of the DINOv2 encoder (the recipe's 5e-6 assumes a
            pretrained encoder; from-scratch runs need far more, e.g. 1e-4).
        decoder_lr_multiplier (`float`, defaults to 10): decoder (neck + head) lr = encoder_lr x this.
        weight_decay (`float`, defaults to 0.01): AdamW weight decay.
        adam_beta1 / adam_beta2 (`float`): AdamW betas (0.9, 0.999).
        warmup_steps (`int`, defaults to 0): linear warm-up from 0.
        lr_schedule (`str`, defaults to `"poly"`): decay after warm-up (transformers' schedules): `"linear"`,
            `"poly"` (polynomial decay to 0 with power `poly_power`, as the authors' code) or `"constant"`.
        poly_power (`float`, defaults to 0.9): power of the `"poly"` decay.
        max_grad_norm (`float`, defaults to 1.0): gradient clipping; 0 disables it.
        max_skipped_steps (`int`, defaults to 5): a step whose gradients are NaN/inf on any process is skipped (not
            applied) and counted (`train/skipped_steps`); this many skipped steps in a row stop the run, keeping the
            last good checkpoint.
        mixed_precision (`str`, defaults to `"auto"`): `"auto"`: what the launcher or `accelerate config` says
            (`accelerate launch --mixed_precision bf16`, i.e. `ACCELERATE_MIXED_PRECISION`), else the hardware's
            choice (`modeling_depth_anything.inference.precision`: bf16 where it is native, fp16 on GPUs without bf16,
            else fp32); `"no"`, `"bf16"` or `"fp16"` (GPU only) override both.
        seed (`int`, defaults to 0).
        cpu_threads (`int`, *optional*): torch threads per process on CPU. Unset (auto): `OMP_NUM_THREADS` if set
            (torchrun sets 1), else the CPUs this process may use divided by the local processes, minus this
            process's DataLoader workers (`DataArguments.num_workers`; `setup.configure_cpu_threads`).
        logging_steps (`int`, defaults to 10): log loss/lr every N steps to the trackers and `losses.jsonl`.
        checkpointing_steps (`int`, defaults to 500): save a resumable checkpoint every N steps.
        checkpoints_total_limit (`int`, defaults to 3): keep only the last K checkpoints.
        resume_from_checkpoint (`str`, *optional*): a checkpoint folder, or `"latest"` (the newest in `output_dir`;
            starts from scratch when there is none).
        report_to (`str`, defaults to `"tensorboard"`): Accelerate trackers, comma-separated: `"tensorboard"`,
            `"wandb"`, `"comet_ml"`, `"mlflow"`, `"aim"`, `"clearml"`, `"dvclive"`, `"trackio"`, `"swanlab"`; `"all"`
            (every one installed) or `"none"`. Local ones write under `<output_dir>/logs`.
        push_to_hub (`bool`, defaults to False): upload the final folder to `hub_model_id`.
        hub_model_id (`str`, *optional*): a Hub repo id, or a local folder path (absolute or starting with `.`),
            which then receives a copy of the final model folder.
        hub_private (`bool`, defaults to False): create the Hub repo as private.
        debug_nan_at_step (`int`, *optional*): testing only: replace the loss by NaN at this optimiser step, to
            exercise the NaN stop.
        debug_nonfinite_grad_steps (`list[int]`): testing only: at these optimiser steps, make one gradient element
            of process 0 infinite after the backward pass, to exercise the skipped-step logic.
    """

    output_dir: str = "runs/train"
    max_steps: int = 1000
    max_minutes: float | None = None
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    encoder_lr: float = 5e-6
    decoder_lr_multiplier: float = 10.0
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    warmup_steps: int = 0
    lr_schedule: str = "poly"
    poly_power: float = 0.9
    max_grad_norm: float = 1.0
    max_skipped_steps: int = 5
    mixed_precision: str = "auto"
    seed: int = 0
    cpu_threads: int | None = None
    logging_steps: int = 10
    checkpointing_steps: int = 500
    checkpoints_total_limit: int = 3
    resume_from_checkpoint: str | None = None
    report_to: str = "tensorboard"
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = False
    debug_nan_at_step: int | None = None
    debug_nonfinite_grad_steps: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in (
            "max_steps",
            "max_skipped_steps",
            "per_device_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
            "checkpointing_steps",
            "checkpoints_total_limit",
        ):
            _positive_int(name, getattr(self, name))
        for name in ("encoder_lr", "decoder_lr_multiplier", "weight_decay", "max_grad_norm", "poly_power"):
            _non_negative_float(name, getattr(self, name))
        if self.encoder_lr <= 0:
            raise ValueError(f"encoder_lr must be > 0, got {self.encoder_lr!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        _mixed_precision(self.mixed_precision)
        _cpu_threads(self.cpu_threads)
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes!r}")
        report_targets(self.report_to)
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("push_to_hub needs hub_model_id (a Hub repo id or a local folder path)")


@dataclass
class TeacherArguments:
    """Teacher stage (V1: real labelled data, affine-invariant loss; V2: synthetic only, + gradient matching x2).

    Args:
        gradient_weight (`float`, defaults to 0.0): weight of the gradient-matching loss (V2 teacher: 2.0, facts §5).
    """

    gradient_weight: float = 0.0

    def __post_init__(self) -> None:
        _non_negative_float("gradient_weight", self.gradient_weight)


@dataclass
class StudentArguments:
    """Student stage (V1 Sec. 3, V2 Sec. 4).

    Args:
        mode (`str`, defaults to `"v1"`): `"v1"`: batches of labelled + pseudo-labelled samples at `ratio`,
            strong perturbations + CutMix on the pseudo-labelled part, feature alignment; `"v2"`: pseudo-labelled
            samples only, with top-`trim` trimming.
        ratio (`list[int]`, defaults to [1, 2]): labelled : pseudo-labelled samples per batch (V1 mode with labelled
            sources); `per_device_batch_size` must split exactly.
        trim (`float`, *optional*): loss trimming share on pseudo-labels; default 0 in V1 mode, 0.1 in V2 mode.
        gradient_weight (`float`, *optional*): weight of the gradient-matching loss, as the teacher's; default 0 in
            V1 mode, 2.0 in V2 mode (the authors, V1 repository issue 198: teacher and student both use the
            affine-invariant and the gradient-matching losses; ssi : gm = 1 : 2, facts §5).
        strong_perturbations (`bool`, defaults to True): colour jitter, grayscale and blur on the pseudo part.
        cutmix_prob (`float`, defaults to 0.5): CutMix probability per pseudo-labelled sample.
        feature_alignment_weight (`float`, defaults to 1.0): weight of the feature-alignment loss (0 disables it and
            the frozen encoder). V2 does not use it; V2 configs set 0.
        feature_margin (`float`, defaults to 0.85): tolerance alpha of the feature-alignment loss.
        frozen_encoder (`str`, *optional*): the frozen DINOv2 (Hub id or folder); defaults to `model.encoder_init`.
            With `"random"`, the student's own initial encoder is frozen and used (tests).
        online_teacher (`str`, *optional*): a Depth Anything folder/Hub id: label the clean unlabelled images on
            the fly instead of reading stored pseudo-labels (`data.unlabelled` is then the unlabelled source).
    """

    mode: str = "v1"
    ratio: list[int] = field(default_factory=lambda: [1, 2])
    trim: float | None = None
    gradient_weight: float | None = None
    strong_perturbations: bool = True
    cutmix_prob: float = 0.5
    feature_alignment_weight: float = 1.0
    feature_margin: float = 0.85
    frozen_encoder: str | None = None
    online_teacher: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in STUDENT_MODES:
            raise ValueError(f"mode must be one of {STUDENT_MODES}, got {self.mode!r}")
        if self.trim is None:
            self.trim = 0.1 if self.mode == "v2" else 0.0
        if not 0 <= self.trim < 1:
            raise ValueError(f"trim must be in [0, 1), got {self.trim!r}")
        if self.gradient_weight is None:
            self.gradient_weight = 2.0 if self.mode == "v2" else 0.0
        _non_negative_float("gradient_weight", self.gradient_weight)
        if len(self.ratio) != 2 or min(self.ratio) < 0 or self.ratio[1] < 1:
            raise ValueError(f"ratio must be two integers labelled:pseudo with pseudo >= 1, got {self.ratio!r}")
        if not 0 <= self.cutmix_prob <= 1:
            raise ValueError(f"cutmix_prob must be in [0, 1], got {self.cutmix_prob!r}")
        _non_negative_float("feature_alignment_weight", self.feature_alignment_weight)


@dataclass
class PseudoLabelArguments:
    """Pseudo-labelling stage.

    Args:
        teacher (`str`, defaults to `""`): the teacher, a `from_pretrained` folder or Hub id (required).
        output_dir (`str`, defaults to `"runs/pseudo_labels"`): the pseudo-label dataset folder (`data/*.parquet`
            shards, the dataset card `README.md`, `skipped.json`; `data/pseudo_labels.py`); rerunning with the same
            folder resumes.
        per_device_batch_size (`int`, defaults to 8): images per teacher forward pass per process.
        mixed_precision (`str`, defaults to `"auto"`): the teacher forward's precision, decided as in
            `TrainArguments.mixed_precision` (launcher, else the hardware); `"no"`, `"bf16"` or `"fp16"` override.
        seed (`int`, defaults to 0).
        cpu_threads (`int`, *optional*): torch threads per process on CPU; unset = `OMP_NUM_THREADS` if set, else
            the CPUs this process may use divided by the local processes (no DataLoader workers here).
        inference_size (`int`, *optional*): short side at inference; defaults to the teacher's processor size.
        shard_size (`int`, defaults to 256): images per parquet part file (the unit of resume: a killed run loses
            at most one unfinished part per process).
        max_images (`int`, *optional*): stop after this many images in total (demos).
        push_to_hub (`bool`, defaults to False): upload the finished dataset to `hub_dataset_id`.
        hub_dataset_id (`str`, *optional*): a Hub dataset repo id or a local folder path (absolute or starting with
            `.`), which then receives a copy.
    """

    teacher: str = ""
    output_dir: str = "runs/pseudo_labels"
    per_device_batch_size: int = 8
    mixed_precision: str = "auto"
    seed: int = 0
    cpu_threads: int | None = None
    inference_size: int | None = None
    shard_size: int = 256
    max_images: int | None = None
    push_to_hub: bool = False
    hub_dataset_id: str | None = None

    def __post_init__(self) -> None:
        if not self.teacher:
            raise ValueError("teacher is required: a Depth Anything from_pretrained folder or Hub id")
        _positive_int("shard_size", self.shard_size)
        _positive_int("per_device_batch_size", self.per_device_batch_size)
        _mixed_precision(self.mixed_precision)
        _cpu_threads(self.cpu_threads)
        if self.inference_size is not None and (self.inference_size < 14 or self.inference_size % 14):
            raise ValueError(f"inference_size must be a multiple of 14, got {self.inference_size!r}")
        if self.push_to_hub and not self.hub_dataset_id:
            raise ValueError("push_to_hub needs hub_dataset_id (a Hub dataset repo id or a local folder path)")


def parse_args(*dataclass_types: type, argv: list[str] | None = None) -> tuple:
    """Parse `--config YAML` plus command-line overrides into instances of `dataclass_types` (in that order).

    Raises:
        FileNotFoundError / ValueError: a missing or malformed YAML, or a YAML key no dataclass has (naming both).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(argv)
    parser = HfArgumentParser(dataclass_types)
    parser.add_argument("--config", default=None, help="YAML listing the differences from the defaults")
    if known.config:
        values = load_yaml(known.config)
        names = {f.name for dtype in dataclass_types for f in dataclasses.fields(dtype)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{known.config}: unknown keys {unknown}; valid keys are {sorted(names)}")
        parser.set_defaults(**values)
    outputs = parser.parse_args_into_dataclasses(args=rest)  # the dataclasses, then a namespace holding --config
    return tuple(outputs[: len(dataclass_types)])


def load_yaml(path: str) -> dict[str, Any]:
    """Read a flat YAML mapping of field name -> value, with errors that name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as handle:
        try:
            values = yaml.safe_load(handle) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of field names to values, got {type(values).__name__}")
    return values


def resolved_config(*instances: Any) -> dict[str, dict[str, Any]]:
    """Every field of every config dataclass, grouped by class name (the content of `resolved_config.yaml`)."""
    return {type(instance).__name__: dataclasses.asdict(instance) for instance in instances}


def flat_config(*instances: Any) -> dict[str, Any]:
    """The resolved config as one flat mapping, loadable again with `--config`."""
    flat: dict[str, Any] = {}
    for instance in instances:
        flat.update(dataclasses.asdict(instance))
    return flat


def save_resolved_config(path: str, *instances: Any) -> None:
    """Write the flat resolved config to `path` as YAML (sorted keys, one comment line naming the classes)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    header = "# Resolved configuration (" + ", ".join(type(i).__name__ for i in instances) + ")\n"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(header)
        yaml.safe_dump(flat_config(*instances), handle, sort_keys=True)
