"""The main job: Depth Anything's whole recipe at CPU scale, end to end, sized to the machine it runs on.

    bash run.sh                                            # set-up if needed, then `python run_pipeline.py`
    python run_pipeline.py --output_dir runs/pipeline      # options: --help (the fields of `ExperimentConfig`)

1. Teacher: the tiny model (~2.8M parameters) from scratch on procedural synthetic scenes (V2 teacher recipe:
   synthetic labels, affine-invariant + gradient-matching loss). Sized: `calibration_steps` logged steps measure the
   step time, then the run resumes with the steps that fit `teacher_minutes` (`sizing`).
2. Pseudo-labels: the teacher labels the `unlabelled` sources (the shipped photos and artworks, then synthetic
   images of another seed, whose depth is never read) into the pseudo-label parquet format.
3. Student: a fresh tiny model on labelled synthetic scenes + pseudo-labelled images at 1:2 per batch (V1 recipe:
   strong perturbations and CutMix on the pseudo-labelled part, feature alignment to the teacher's frozen encoder,
   standing in for DINOv2, which cannot be downloaded here), or the V2 student (`student_mode v2`: pseudo-labels only,
   no feature alignment). Sized like the teacher, and shortened further when the run's `total_minutes` require it.
4. Evaluation through the evaluation runner (`evaluation.runner`, the code behind `eval/evaluate_model.py`) of the
   untrained model, the vertical prior (`baseline:vertical`), the teacher and the student on held-out synthetic
   scenes (`synthetic:` benchmark, a seed no stage renders) and on the shipped real RGB-D benchmark: every score comes
   from a `metrics.json`, which also fills the teacher's and student's model cards.
5. Depth maps of the shipped photos and artworks by the student (`depth-anything predict`), and `report.md`, written
   from the `metrics.json` files and the sizing decisions.

The training stages and pseudo-labelling run as the command lines a user would type (printed before they run), in
their own processes; evaluation and prediction run in this process through the same entry points (`runner.main`,
`cli.main`), also printed as the equivalent command.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .report import EVAL_GROUPS, MODEL_NAMES, collect_results, results_table, write_report
from .sizing import StepPlan, plan_steps, step_seconds_from_log

logger = logging.getLogger(__name__)

STUDENT_MODES = ("v1", "v2")


@dataclass
class ExperimentConfig:
    """Every setting of the main job (validated on creation; the command line is `--<field> value`).

    Args:
        output_dir (`str`, defaults to `"runs/pipeline"`): run folder (stages, evaluations, report).
        teacher_minutes (`float`, defaults to 4.5): time budget of the teacher's step loop.
        teacher_steps (`int`, defaults to 1200): the teacher recipe's steps; fewer when they do not fit the budget.
        student_minutes (`float`, defaults to 3.5): time budget of the student's step loop (shortened by
            `total_minutes`).
        student_steps (`int`, defaults to 900): the student recipe's steps; fewer when they do not fit the budget.
        calibration_steps (`int`, defaults to 10): steps logged one by one to measure a stage's step time.
        min_steps (`int`, defaults to 150): fewer steps than this learn nothing useful; planned anyway, with a warning.
        total_minutes (`float`, defaults to 14.5): wall-clock budget of the whole job including `setup_seconds`; the
            student's budget shrinks so the job ends in time.
        tail_minutes (`float`, defaults to 1.5): time kept for evaluation, depth maps and the report after the student.
        setup_seconds (`float`, defaults to 0): time already spent before this program (run.sh's set-up), counted in
            `total_minutes` and reported.
        pseudo_images (`int`, defaults to 384): images the teacher labels (the unlabelled sources in order).
        unlabelled (`list[str]`, defaults to photos, artworks, synthetic): sources for pseudo-labelling.
        student_mode (`str`, defaults to `"v1"`): `"v1"` (labelled + pseudo-labelled 1:2, feature alignment) or `"v2"`
            (pseudo-labels only, no feature alignment).
        num_eval (`int`, defaults to 64): held-out synthetic scenes.
        eval_seed (`int`, defaults to 777001): their seed (the stages render 0 and 1000).
        eval_height (`int`, defaults to 126): their height (a multiple of 14: predicted unresized).
        eval_width (`int`, defaults to 168): their width.
        input_size (`int`, defaults to 252): short side for the real images (a multiple of 14).
        predict_inputs (`list[str]`, defaults to photos, artworks): what the student's depth maps are made of.
        skip_training (`bool`, defaults to False): evaluate and report the models of an earlier run in `output_dir`.
        teacher_config, pseudo_label_config, student_config (`str`): the stages' YAML files (relative to the checkout).
    """

    output_dir: str = field(default="runs/pipeline", metadata={"help": "run folder"})
    teacher_minutes: float = field(default=4.5, metadata={"help": "time budget of the teacher's step loop"})
    teacher_steps: int = field(default=1200, metadata={"help": "teacher recipe's steps (fewer if they do not fit)"})
    student_minutes: float = field(default=3.5, metadata={"help": "time budget of the student's step loop"})
    student_steps: int = field(default=900, metadata={"help": "student recipe's steps (fewer if they do not fit)"})
    calibration_steps: int = field(default=10, metadata={"help": "steps logged one by one to measure step time"})
    min_steps: int = field(default=150, metadata={"help": "below this a stage learns nothing useful (warned)"})
    total_minutes: float = field(default=14.5, metadata={"help": "whole job incl. --setup_seconds"})
    tail_minutes: float = field(default=1.5, metadata={"help": "kept for evaluation, depth maps, report"})
    setup_seconds: float = field(default=0.0, metadata={"help": "time spent before (run.sh's set-up)"})
    pseudo_images: int = field(default=384, metadata={"help": "images the teacher labels"})
    unlabelled: list[str] = field(
        default_factory=lambda: ["assets/photos", "assets/artworks", "synthetic"],
        metadata={"help": "sources to pseudo-label"},
    )
    student_mode: str = field(default="v1", metadata={"help": "v1 (labelled + pseudo, feature alignment) or v2"})
    num_eval: int = field(default=64, metadata={"help": "held-out synthetic scenes"})
    eval_seed: int = field(default=777_001, metadata={"help": "their seed"})
    eval_height: int = field(default=126, metadata={"help": "their height (multiple of 14)"})
    eval_width: int = field(default=168, metadata={"help": "their width (multiple of 14)"})
    input_size: int = field(default=252, metadata={"help": "short side for the real images (multiple of 14)"})
    predict_inputs: list[str] = field(
        default_factory=lambda: ["assets/photos", "assets/artworks"],
        metadata={"help": "folders or files the student's depth maps are made of"},
    )
    skip_training: bool = field(default=False, metadata={"help": "only evaluate and report an earlier run"})
    teacher_config: str = field(default="train/configs/tiny_teacher.yaml", metadata={"help": "teacher YAML"})
    pseudo_label_config: str = field(
        default="train/configs/tiny_pseudo_label.yaml", metadata={"help": "pseudo-labelling YAML"}
    )
    student_config: str = field(default="train/configs/tiny_student.yaml", metadata={"help": "student YAML"})

    def __post_init__(self) -> None:
        for name in ("teacher_minutes", "student_minutes", "total_minutes", "tail_minutes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("teacher_steps", "student_steps", "calibration_steps", "min_steps", "pseudo_images", "num_eval"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.calibration_steps >= min(self.teacher_steps, self.student_steps):
            raise ValueError(
                f"calibration_steps ({self.calibration_steps}) must be below teacher_steps ({self.teacher_steps}) and "
                f"student_steps ({self.student_steps})"
            )
        if self.min_steps > min(self.teacher_steps, self.student_steps):
            raise ValueError(f"min_steps must be <= teacher_steps and student_steps, got {self.min_steps!r}")
        if self.setup_seconds < 0:
            raise ValueError(f"setup_seconds must be >= 0, got {self.setup_seconds!r}")
        if self.student_mode not in STUDENT_MODES:
            raise ValueError(f"student_mode must be one of {STUDENT_MODES}, got {self.student_mode!r}")
        for name in ("eval_height", "eval_width", "input_size"):
            value = getattr(self, name)
            if value < 14 or value % 14:
                raise ValueError(f"{name} must be a positive multiple of 14, got {value!r}")
        if not self.unlabelled:
            raise ValueError("unlabelled must name at least one source")
        if not self.predict_inputs:
            raise ValueError("predict_inputs must name at least one folder or file")

    @property
    def synthetic_benchmark(self) -> str:
        return (
            f"synthetic:?count={self.num_eval}&seed={self.eval_seed}&height={self.eval_height}&width={self.eval_width}"
        )


@dataclass
class Timeline:
    """The steps run so far: name, the command a user would type, wall seconds."""

    start: float = field(default_factory=time.perf_counter)
    setup_seconds: float = 0.0
    entries: list[dict] = field(default_factory=list)

    def elapsed(self) -> float:
        """Seconds since the job began, set-up included."""
        return self.setup_seconds + time.perf_counter() - self.start

    def add(self, step: str, command: str, seconds: float) -> None:
        self.entries.append({"step": step, "command": command, "seconds": round(seconds, 1)})


def _shown(command: list) -> str:
    """The command as a user would type it (the interpreter as `python`)."""
    parts = ["python" if str(part) == sys.executable else str(part) for part in command]
    return " ".join(shlex.quote(part) for part in parts)


def run_command(step: str, command: list, root: Path, timeline: Timeline) -> float:
    """Run one stage in its own process from the checkout root, echoing the command; returns its wall seconds."""
    shown = _shown(command)
    logger.info("=== %s\n$ %s", step, shown)
    start = time.perf_counter()
    subprocess.run([str(part) for part in command], cwd=root, check=True)
    seconds = time.perf_counter() - start
    timeline.add(step, shown, seconds)
    return seconds


def run_in_process(step: str, shown: str, function, argv: list[str], timeline: Timeline) -> None:
    """Run an entry point (`runner.main`, `cli.main`) in this process, echoing the equivalent command."""
    command = f"{shown} {' '.join(shlex.quote(str(part)) for part in argv)}"
    logger.info("=== %s\n$ %s", step, command)
    levels = {name: logging.getLogger(name).level for name in ("modeling_depth_anything", "depth_anything")}
    start = time.perf_counter()
    try:
        code = function([str(part) for part in argv])
    finally:  # the CLI's --quiet lowers the package's log level: the job's own messages must still show
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    if code:
        raise RuntimeError(f"{step}: exit status {code} (see the messages above)")
    timeline.add(step, command, time.perf_counter() - start)


def images_per_step(config_path: Path) -> int:
    """Images in one optimiser step of a single-process stage: per-device batch x accumulation (YAML or default)."""
    from ..training.args import TrainArguments, load_yaml

    defaults = {f.name: f.default for f in dataclasses.fields(TrainArguments)}
    values = {**defaults, **load_yaml(str(config_path))}
    return int(values["per_device_batch_size"]) * int(values["gradient_accumulation_steps"])


def train_sized(
    stage: str,
    label: str,
    base_command: list,
    stage_dir: Path,
    cap: int,
    budget_seconds: float,
    job: ExperimentConfig,
    root: Path,
    timeline: Timeline,
    config_path: Path,
) -> dict:
    """A training stage (`stage`: teacher or student; `label`: its step in the job) in two runs: `calibration_steps`
    logged steps, then a resume to the steps that fit `budget_seconds`.

    Returns the plan plus what happened (`steps_run`, the calibration's start-up overhead).
    """
    calibration = [*base_command, "--max_steps", job.calibration_steps, "--logging_steps", 1]
    calibration_wall = run_command(
        f"{label}: {job.calibration_steps} steps to measure the step time", calibration, root, timeline
    )
    step_seconds = step_seconds_from_log(stage_dir / "losses.jsonl", images_per_step(config_path))
    spent = job.calibration_steps * step_seconds
    plan = plan_steps(stage, step_seconds, budget_seconds, cap, minimum=max(job.min_steps, job.calibration_steps + 1))
    logger.log(logging.WARNING if plan.too_slow else logging.INFO, "%s: %s", stage, plan.reason)
    remaining_minutes = max(budget_seconds - spent, step_seconds) / 60
    resume = [
        *base_command,
        "--max_steps",
        plan.steps,
        "--max_minutes",
        f"{remaining_minutes:.2f}",
        "--resume_from_checkpoint",
        "latest",
    ]
    run_command(f"{label}: resume to {plan.steps} steps", resume, root, timeline)
    return {
        **plan.to_dict(),
        "steps_run": last_step(stage_dir),
        "startup_seconds": max(calibration_wall - spent, 0.0),
    }


def last_step(stage_dir: Path) -> int:
    """The step of the newest complete checkpoint (the loop checkpoints its last step, also when time runs out)."""
    from ..training.loop import list_checkpoints

    checkpoints = list_checkpoints(str(stage_dir))
    return checkpoints[-1][0] if checkpoints else 0


def save_untrained(folder: Path) -> Path:
    """The untrained baseline: the tiny model initialised exactly as the stages initialise one."""
    import torch

    from ..image_processing_depth_anything import DepthAnythingImageProcessor
    from ..training import build_model
    from ..training.args import ModelArguments

    torch.manual_seed(0)
    build_model(ModelArguments(preset="tiny")).save_pretrained(folder)
    DepthAnythingImageProcessor(size=126).save_pretrained(folder)
    return folder


def evaluate_all(job: ExperimentConfig, out: Path, models: dict[str, str], timeline: Timeline) -> None:
    """Every model (and the prior) on both benchmark groups through the evaluation runner -> metrics.json."""
    from ..evaluation import runner

    benchmarks = {"synthetic": (job.synthetic_benchmark, None), "rgbd": ("rgbd:assets/rgbd", job.input_size)}
    for name, model in models.items():
        for group, (spec, input_size) in benchmarks.items():
            argv = [
                "--model",
                model,
                "--benchmark",
                spec,
                "--protocol",
                "disparity",
                "--no-progress",
                "--output",
                out / "eval" / name / group,
            ]
            if input_size is not None and not model.startswith("baseline:"):
                argv += ["--input-size", input_size]
            card = Path(model) / "README.md"
            if name in ("teacher", "student") and card.is_file():
                argv += ["--model-card", card]  # the trained models' cards get their scores from metrics.json
            run_in_process(
                f"evaluate {MODEL_NAMES[name]} on {EVAL_GROUPS[group]}",
                "python eval/evaluate_model.py",
                runner.main,
                argv,
                timeline,
            )


def run_experiment(job: ExperimentConfig, root: Path) -> Path:
    """Run the main job from the checkout `root` (where `train/` lives); returns the report's path."""
    root = Path(root).resolve()
    if not (root / "train" / "teacher.py").is_file():
        raise FileNotFoundError(f"{root}: not a depth-anything-hf checkout (no train/teacher.py); run from a clone")
    out = Path(job.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    teacher, pseudo, student = out / "teacher", out / "pseudo_labels", out / "student"
    timeline = Timeline(setup_seconds=job.setup_seconds)
    python = sys.executable
    sizing: dict[str, dict] = {}
    if not job.skip_training:
        for folder in (teacher, pseudo, student):  # a fresh run: resuming an old one would skip the calibration
            if folder.exists():
                raise FileExistsError(f"{folder} exists: give a new --output_dir, or --skip_training to re-evaluate")
        sizing["teacher"] = train_sized(
            "teacher",
            "1/6 teacher on synthetic scenes",
            [python, "train/teacher.py", "--config", job.teacher_config, "--output_dir", teacher],
            teacher,
            job.teacher_steps,
            60 * job.teacher_minutes,
            job,
            root,
            timeline,
            root / job.teacher_config,
        )
        run_command(
            "2/6 pseudo-labels for the unlabelled images",
            [
                python,
                "train/pseudo_label.py",
                "--config",
                job.pseudo_label_config,
                "--teacher",
                teacher / "final",
                "--unlabelled",
                *job.unlabelled,
                "--synthetic_height",
                144,
                "--synthetic_width",
                192,
                "--max_images",
                job.pseudo_images,
                "--output_dir",
                pseudo,
            ],
            root,
            timeline,
        )
        # The student gets its budget, or what the whole job's deadline leaves after its start-ups and the tail.
        left = 60 * (job.total_minutes - job.tail_minutes) - timeline.elapsed()
        budget = min(60 * job.student_minutes, left - 2 * sizing["teacher"]["startup_seconds"])
        if budget < 60 * job.student_minutes:
            logger.info(
                "student: %.2f of %s min left before the job's %s-min deadline",
                budget / 60,
                job.student_minutes,
                job.total_minutes,
            )
        student_command = [
            python,
            "train/student.py",
            "--config",
            job.student_config,
            "--pseudo_labels",
            pseudo,
            "--output_dir",
            student,
        ]
        if job.student_mode == "v2":
            student_command += ["--mode", "v2", "--feature_alignment_weight", 0]
        else:
            student_command += ["--frozen_encoder", teacher / "final"]
        sizing["student"] = train_sized(
            "student",
            "3/6 student on labelled synthetic + pseudo-labelled images",
            student_command,
            student,
            job.student_steps,
            max(budget, 30.0),
            job,
            root,
            timeline,
            root / job.student_config,
        )
        (out / "sizing.json").write_text(json.dumps(sizing, indent=1))
    elif (out / "sizing.json").is_file():
        sizing = json.loads((out / "sizing.json").read_text())

    logger.info("=== 4/6 evaluation on held-out synthetic scenes and the shipped real RGB-D benchmark")
    models = {
        "untrained": str(save_untrained(out / "untrained")),
        "vertical_prior": "baseline:vertical",
        "teacher": str(teacher / "final"),
        "student": str(student / "final"),
    }
    evaluate_all(job, out, models, timeline)

    from ..cli import main as cli_main

    run_in_process(
        "5/6 depth maps of the shipped photos and artworks (student)",
        "depth-anything",
        cli_main,
        [
            "predict",
            *job.predict_inputs,
            "--model",
            student / "final",
            "--output",
            out / "predictions",
            "--formats",
            "side_by_side",
            "png16",
            "--input-size",
            job.input_size,
            "--quiet",
        ],
        timeline,
    )

    logger.info("=== 6/6 report")
    results = collect_results(out)
    (out / "results.json").write_text(json.dumps({"results": results, "sizing": sizing}, indent=1))
    report = write_report(out, job, results, sizing, timeline, root)
    logger.info("Report: %s (total %.1f min including set-up)", report, timeline.elapsed() / 60)
    logger.info("Results (AbsRel, δ1):\n%s", "\n".join(results_table(results)))
    return report


def main(argv: list[str] | None = None, root: str | os.PathLike | None = None) -> int:
    """`python run_pipeline.py [--field value ...]`; `root` is the checkout (default: the working directory)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(ExperimentConfig, description=__doc__.split("\n\n")[0])
    (job,) = parser.parse_args_into_dataclasses(args=argv)
    job.output_dir = str(Path(job.output_dir).resolve())  # relative to where the user is, before the chdir below
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("modeling_depth_anything", "depth_anything"):
        logging.getLogger(name).setLevel(logging.INFO)
    # Relative paths (assets, configs) are the checkout's: run from its root.
    os.chdir(Path(root or os.getcwd()).resolve())
    run_experiment(job, Path.cwd())
    return 0


__all__ = ["MODEL_NAMES", "ExperimentConfig", "StepPlan", "main", "run_experiment"]
