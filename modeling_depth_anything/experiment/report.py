"""The main job's report: every score read from the evaluation runner's `metrics.json` files, plus the sizing
decisions (steps run and why) and the timings."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from PIL import Image

# Folder name under <run>/eval -> the name in tables. The prior is a baseline "model" (`baseline:vertical`).
MODEL_NAMES = {
    "untrained": "untrained",
    "vertical_prior": "vertical prior",
    "teacher": "teacher",
    "student": "student",
}
EVAL_GROUPS = {"synthetic": "held-out synthetic scenes", "rgbd": "the shipped real RGB-D benchmark"}
COLUMN_NAMES = {"synthetic": "held-out synthetic", "rgbd": "real RGB-D"}


def read_metrics(path: Path) -> dict[str, Any]:
    """AbsRel, δ1 and counts of the one benchmark in a runner's `metrics.json`; `ValueError` naming the file."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        (benchmark,) = results["benchmarks"].values()
        metrics = benchmark["metrics"]
        return {
            "abs_rel": metrics["abs_rel"],
            "delta1": metrics["delta1"],
            "images": benchmark["num_evaluated"],
            "skipped": benchmark["num_skipped"],
            "benchmark": benchmark.get("spec", ""),
        }
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a one-benchmark metrics.json with scores ({error!r})") from error


def collect_results(out: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """`{group: {model: {"abs_rel", "delta1", "images", ...}}}` from `<out>/eval/<model>/<group>/metrics.json`."""
    return {
        group: {model: read_metrics(out / "eval" / model / group / "metrics.json") for model in MODEL_NAMES}
        for group in EVAL_GROUPS
    }


def results_table(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Markdown rows: one per model, AbsRel and δ1 per benchmark group."""
    groups = list(results)
    lines = [
        "| model | " + " | ".join(f"{COLUMN_NAMES[g]} AbsRel ↓ | δ1 ↑" for g in groups) + " |",
        "|---|" + "---|---|" * len(groups),
    ]
    for model, shown in MODEL_NAMES.items():
        cells = [f"{results[g][model]['abs_rel']:.3f} | {results[g][model]['delta1']:.3f}" for g in groups]
        lines.append(f"| {shown} | " + " | ".join(cells) + " |")
    return lines


def _compare(value: float, reference: float) -> str:
    if abs(value - reference) < 5e-4:
        return "is level with"
    return "beats" if value < reference else "does NOT beat"


def verdicts(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """One line per benchmark group: does each trained model beat the prior and the untrained model (AbsRel)?"""
    lines = []
    for group, numbers in results.items():
        t, s, u, p = (numbers[k]["abs_rel"] for k in ("teacher", "student", "untrained", "vertical_prior"))
        lines.append(
            f"- On {EVAL_GROUPS[group]}: the teacher {_compare(t, p)} the vertical prior ({t:.3f} vs {p:.3f} AbsRel); "
            f"the student {_compare(s, p)} it ({s:.3f}), {_compare(s, u)} the untrained model ({u:.3f}) and "
            f"{_compare(s, t)} its teacher."
        )
    return lines


def precision_line() -> str:
    """The precision policy's decision on this machine, as every stage (all `auto`) made it, with its reason."""
    from ..inference.precision import DTYPE_NAMES, choose_precision, resolve_device

    choice = choose_precision("auto", resolve_device("auto"))
    return f"{DTYPE_NAMES[choice.dtype]} ({choice.reason})."


def sizing_lines(sizing: dict[str, dict]) -> list[str]:
    if not sizing:
        return ["No training in this run (`--skip_training`): see the earlier run's report for the steps."]
    lines = [
        "| stage | measured s/step | loop budget | recipe steps | planned | ran | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for stage, plan in sizing.items():
        ran = plan.get("steps_run", "?")
        note = plan["reason"]
        if isinstance(ran, int) and ran < plan["steps"]:
            note += f"; the loop's time limit stopped it at step {ran}"
        lines.append(
            f"| {stage} | {plan['step_seconds']:.3f} | {plan['budget_seconds'] / 60:.2f} min | {plan['cap']} | "
            f"{plan['steps']} | {ran} | {note} |"
        )
    return lines


def montage(pictures: list[Path], path: Path, width: int = 1200) -> None:
    """Stack side-by-side pictures (input | depth) into one PNG for the report."""
    rows = []
    for picture in pictures:
        with Image.open(picture) as image:
            image = image.convert("RGB")
            rows.append(image.resize((width, max(1, round(image.height * width / image.width)))))
    canvas = Image.new("RGB", (width, max(1, sum(row.height for row in rows))), "white")
    top = 0
    for row in rows:
        canvas.paste(row, (0, top))
        top += row.height
    canvas.save(path)


def write_report(out: Path, job: Any, results: dict, sizing: dict, timeline: Any, root: Path) -> Path:
    """`<out>/report.md`: what was trained on what, the scores (from metrics.json), pictures, steps and timings."""
    pictures = sorted((out / "predictions").glob("*side_by_side*"))
    montage(pictures[:: max(1, len(pictures) // 6)][:6], out / "predictions_montage.png")
    grids = {name: next((out / "eval" / name / "rgbd").glob("*grid.png"), None) for name in ("teacher", "student")}
    synthetic, real = results["synthetic"], results["rgbd"]
    shown_out = out.relative_to(root) if out.is_relative_to(root) else out
    lines = [
        "# Depth Anything pipeline at CPU scale: report",
        "",
        f"Run folder `{shown_out}`, made by `python run_pipeline.py --output_dir {shown_out}` on "
        f"{time.strftime('%Y-%m-%d %H:%M')}. Every score below is read from the `metrics.json` the evaluation runner "
        "wrote for it (`eval/<model>/<benchmark>/`).",
        "",
        "## What was trained on what",
        "",
        "- **Teacher** (`teacher/final`): tiny Depth Anything (ViT 192-wide × 4 layers, ~2.8M parameters) trained "
        f"from scratch on procedural synthetic scenes with exact depth (`{job.teacher_config}`: 126 px crops, "
        "affine-invariant loss + 2 × gradient matching, as V2's teacher on synthetic data), for the steps below.",
        f"- **Pseudo-labels** (`pseudo_labels/`): the teacher labelled {', '.join(job.unlabelled)} in that order, up to "
        f"{job.pseudo_images} images (the synthetic images' true depth was not used).",
        "- **Student** (`student/final`): a fresh tiny model, "
        + (
            "trained on labelled synthetic scenes + pseudo-labelled images at 1:2 per batch, strong perturbations and "
            "CutMix on the pseudo-labelled part, feature alignment (α = 0.85) to the teacher's frozen encoder, "
            f"standing in for DINOv2 (`{job.student_config}`, V1 recipe)."
            if job.student_mode == "v1"
            else f"trained on the pseudo-labels only, top-10 % trimming, no feature alignment (`{job.student_config}` "
            "with `--mode v2`, V2 recipe)."
        ),
        "- **Untrained**: the same architecture, initialised as the stages initialise it. **Vertical prior** "
        "(`baseline:vertical`): disparity rising linearly towards the image bottom.",
        "",
        "## Results",
        "",
        "Per-image least-squares scale and shift in disparity, then AbsRel and δ1 in disparity (the Depth Anything "
        f"authors' protocol). Held-out synthetic: {synthetic['teacher']['images']} scenes "
        f"(`{job.synthetic_benchmark}`, a seed no stage renders), sky excluded. Real RGB-D: the "
        f"{real['teacher']['images']} shipped images with measured depth (`rgbd:assets/rgbd`), predicted at a short "
        f"side of {job.input_size} px.",
        "",
        *results_table(results),
        "",
        *verdicts(results),
        "",
        "Models this small, trained for minutes from random initialisation (no pretrained DINOv2 can be "
        "downloaded here), learn the synthetic scenes' cues (ground plane, occlusion, sky), which carry over to "
        "real photos only weakly: on real images compare them with the vertical prior above. They are far from "
        "the released models; the same scripts run the paper recipes with `accelerate launch` (train/README.md).",
        "",
        "## Steps run, and why",
        "",
        "Each stage first ran a few steps logged one by one to measure its step time on this machine, then resumed "
        "with the steps that fit its time budget, so its learning-rate schedule completes (`experiment/sizing.py`).",
        f"Every stage ran in {precision_line()}",
        "",
        *sizing_lines(sizing),
        "",
        "## Pictures",
        "",
    ]
    for name in ("student", "teacher"):
        if grids[name] is not None:
            lines += [
                f"Real RGB-D benchmark, {name} (input, ground truth, aligned prediction on the same colour scale, "
                "error):",
                "",
                f"![{name} on the real RGB-D benchmark]({grids[name].relative_to(out)})",
                "",
            ]
    lines += [
        "Shipped photos and artworks, student's depth (all of them in `predictions/`):",
        "",
        "![student depth maps](predictions_montage.png)",
        "",
        "## Steps and timings",
        "",
        f"Total {timeline.elapsed() / 60:.1f} min including {timeline.setup_seconds / 60:.1f} min of set-up "
        f"(budget {job.total_minutes} min).",
        "",
        "| step | seconds | command |",
        "|---|---|---|",
        *[f"| {entry['step']} | {entry['seconds']} | `{entry['command']}` |" for entry in timeline.entries],
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
