"""The whole Depth Anything pipeline at CPU scale, end to end, on data this repository ships or generates.

    bash run.sh                                  # set-up if needed, then this script (~10 minutes on 2 CPU cores)
    .venv/bin/python run_pipeline.py --output_dir runs/pipeline [--teacher_minutes 4.5 --student_minutes 3.5]

1. Teacher: the tiny model (~2.8M parameters) trained from scratch on procedural synthetic scenes (V2 teacher recipe:
   synthetic labels, affine-invariant + gradient-matching loss).
2. Pseudo-labels: the teacher labels the shipped real photos and artworks, then unlabelled synthetic scenes of
   another seed (their depth is never read), into the pseudo-label parquet format.
3. Student: a fresh tiny model trained on labelled synthetic scenes + pseudo-labelled images at 1:2 per batch (V1
   recipe: strong perturbations and CutMix on the pseudo-labelled part, feature alignment to a frozen encoder: the
   teacher's, standing in for DINOv2, which cannot be downloaded here).
4. Evaluation of the untrained model, the "vertical gradient" prior, the teacher and the student on held-out
   synthetic scenes (a seed no stage saw) and on the shipped real RGB-D benchmark (assets/rgbd, 10 images with
   measured depth), per-image least-squares scale and shift in disparity (the authors' protocol).
5. Depth maps of the shipped photos and artworks by the student, and a report: `<output_dir>/report.md`.

Every stage runs as the command a user would type (printed before it runs), through the same code as at full scale.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent
PYTHON = sys.executable


def run(step: str, command: list[str], log: list[dict]) -> None:
    """Run one stage from the repository root, echoing the command; record its wall time."""
    shown = " ".join(str(part) for part in command).replace(PYTHON, "python")
    print(f"\n=== {step}\n$ {shown}", flush=True)
    start = time.perf_counter()
    subprocess.run([str(part) for part in command], cwd=ROOT, check=True)
    log.append({"step": step, "command": shown, "seconds": round(time.perf_counter() - start, 1)})


def score(predictions: list[np.ndarray], targets: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Mean per-image AbsRel and δ1 after least-squares scale and shift in disparity (eval/metrics.py)."""
    from modeling_depth_anything.evaluation.metrics import evaluate_sample

    results = [evaluate_sample(p, depth, mask=mask, protocol="disparity") for p, (depth, mask) in zip(predictions, targets)]
    return {"abs_rel": float(np.mean([r["abs_rel"] for r in results])),
            "delta1": float(np.mean([r["delta1"] for r in results])), "images": len(results)}


def vertical_prior(height: int, width: int) -> np.ndarray:
    """Disparity rising linearly from the top row to the bottom row: "the ground comes closer"."""
    return np.repeat(np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None], width, axis=1)  # (H, W)


def evaluate_synthetic(models: dict[str, Path], count: int) -> dict[str, dict]:
    from tiny_experiment import held_out_scenes, predict

    from modeling_depth_anything import DepthAnythingForDepthEstimation

    scenes = held_out_scenes(count)
    targets = [(scene["depth"], ~scene["sky_mask"] & (scene["depth"] > 0)) for scene in scenes]
    results = {"vertical prior": score([vertical_prior(*scene["depth"].shape) for scene in scenes], targets)}
    for name, folder in models.items():
        model = DepthAnythingForDepthEstimation.from_pretrained(folder)
        results[name] = score(predict(model, scenes), targets)
    return results


def evaluate_real(models: dict[str, Path], out: Path, input_size: int, log: list[dict]) -> dict[str, dict]:
    from modeling_depth_anything.evaluation.benchmarks import BadSampleError, load_benchmark

    samples = [s for s in load_benchmark("rgbd:assets/rgbd").iter_samples() if not isinstance(s, BadSampleError)]
    results = {"vertical prior": score([vertical_prior(*s.depth.shape) for s in samples],
                                       [(s.depth, s.mask) for s in samples])}
    for name, folder in models.items():
        target = out / "eval" / name
        run(f"evaluate {name} on the shipped RGB-D benchmark", [
            PYTHON, "eval/evaluate.py", "--model", folder, "--benchmark", "rgbd:assets/rgbd",
            "--protocol", "disparity", "--input-size", input_size, "--output", target, "--no-progress"], log)
        metrics = json.loads((target / "metrics.json").read_text())["benchmarks"]
        benchmark = next(iter(metrics.values()))
        results[name] = {"abs_rel": benchmark["metrics"]["abs_rel"], "delta1": benchmark["metrics"]["delta1"],
                         "images": benchmark.get("num_samples", len(samples))}
    return results


def save_untrained(folder: Path) -> Path:
    """The untrained baseline: the tiny model initialised exactly as the stages initialise one."""
    from modeling_depth_anything import DepthAnythingImageProcessor
    from modeling_depth_anything.training import build_model
    from modeling_depth_anything.training.args import ModelArguments

    torch.manual_seed(0)
    build_model(ModelArguments(preset="tiny")).save_pretrained(folder)
    DepthAnythingImageProcessor(size=126).save_pretrained(folder)
    return folder


def montage(pictures: list[Path], path: Path, width: int = 1200) -> None:
    """Stack side-by-side pictures (input | depth) into one PNG for the report."""
    rows = []
    for picture in pictures:
        image = Image.open(picture).convert("RGB")
        rows.append(image.resize((width, max(1, round(image.height * width / image.width)))))
    canvas = Image.new("RGB", (width, sum(row.height for row in rows)), "white")
    top = 0
    for row in rows:
        canvas.paste(row, (0, top))
        top += row.height
    canvas.save(path)


def table(results: dict[str, dict], columns: list[str]) -> list[str]:
    names = ["untrained", "vertical prior", "teacher", "student"]
    lines = ["| model | " + " | ".join(f"{c} AbsRel ↓ | {c} δ1 ↑" for c in columns) + " |",
             "|---|" + "---|---|" * len(columns)]
    for name in names:
        cells = [f"{results[c][name]['abs_rel']:.3f} | {results[c][name]['delta1']:.3f}" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _compare(student: float, teacher: float) -> str:
    if abs(student - teacher) < 5e-4:
        return "level with"
    return "better than" if student < teacher else "worse than"


def write_report(out: Path, results: dict, log: list[dict], args: argparse.Namespace, grids: dict[str, Path]) -> Path:
    synthetic, real = results["held-out synthetic"], results["real RGB-D"]
    verdicts = []
    for name, numbers in (("held-out synthetic scenes", synthetic), ("the real RGB-D benchmark", real)):
        t, s, u, p = (numbers[k]["abs_rel"] for k in ("teacher", "student", "untrained", "vertical prior"))
        verdicts.append(
            f"- On {name}: the student {'beats' if s < u else 'does NOT beat'} the untrained model ({s:.3f} vs "
            f"{u:.3f} AbsRel) and {'beats' if s < p else 'does not beat'} the vertical prior ({p:.3f}); it is "
            f"{_compare(s, t)} its teacher ({t:.3f})."
        )
    lines = [
        "# Depth Anything pipeline at CPU scale: report",
        "",
        f"Run folder `{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}`, made by "
        f"`python run_pipeline.py --output_dir {args.output_dir}` on {time.strftime('%Y-%m-%d %H:%M')}. "
        "Every number below comes from this run.",
        "",
        "## What was trained on what",
        "",
        f"- **Teacher** (`teacher/final`): tiny Depth Anything (ViT 192-wide × 4 layers, ~2.8M parameters) trained "
        f"from scratch for at most {args.teacher_minutes} min on procedural synthetic scenes with exact depth "
        "(`train/configs/tiny_teacher.yaml`: 126 px crops, affine-invariant loss + 2 × gradient matching, as V2's "
        "teacher on synthetic data).",
        f"- **Pseudo-labels** (`pseudo_labels/`): the teacher labelled the 47 shipped real photos and artworks, then "
        f"synthetic images of an unseen seed up to {args.pseudo_images} images (their true depth was not used).",
        f"- **Student** (`student/final`): a fresh tiny model trained for at most {args.student_minutes} min on "
        "labelled synthetic scenes + pseudo-labelled images at 1:2 per batch, strong perturbations and CutMix on "
        "the pseudo-labelled part, feature alignment (α = 0.85) to the teacher's frozen encoder, standing in for "
        "DINOv2 (`train/configs/tiny_student.yaml`, V1 recipe).",
        "- **Untrained**: the same architecture, initialised as the stages initialise it. **Vertical prior**: "
        "disparity rising linearly towards the image bottom.",
        "",
        "## Results",
        "",
        f"Per-image least-squares scale and shift in disparity, then AbsRel and δ1 in disparity (the Depth Anything "
        f"authors' protocol, `eval/metrics.py`). Held-out synthetic: {synthetic['teacher']['images']} scenes of a "
        f"seed no stage saw, 126×168 px, sky excluded. Real RGB-D: the {real['teacher']['images']} shipped images "
        f"with measured depth (`assets/rgbd`), predicted at a short side of {args.input_size} px.",
        "",
        *table(results, ["held-out synthetic", "real RGB-D"]),
        "",
        *verdicts,
        "",
        "Models this small, trained for minutes from random initialisation (no pretrained DINOv2 can be "
        "downloaded here), learn the synthetic scenes' cues (ground plane, occlusion, sky), which carry over to "
        "real photos only weakly: on real images compare them with the vertical prior above. They are far from "
        "the released models; the same scripts run the paper recipes with `accelerate launch` (train/README.md).",
        "",
        "## Pictures",
        "",
        "Real RGB-D benchmark, student (input, ground truth, aligned prediction on the same colour scale, error):",
        "",
        f"![student on the real RGB-D benchmark]({grids['student'].relative_to(out)})",
        "",
        "Teacher on the same images:",
        "",
        f"![teacher on the real RGB-D benchmark]({grids['teacher'].relative_to(out)})",
        "",
        "Shipped photos and artworks, student's depth (all of them in `predictions/`):",
        "",
        "![student depth maps](predictions_montage.png)",
        "",
        "## Steps and timings",
        "",
        "| step | seconds | command |",
        "|---|---|---|",
        *[f"| {entry['step']} | {entry['seconds']} | `{entry['command']}` |" for entry in log],
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="runs/pipeline")
    parser.add_argument("--teacher_minutes", type=float, default=4.5)
    parser.add_argument("--teacher_steps", type=int, default=1200, help="schedule length (stops earlier on time)")
    parser.add_argument("--student_minutes", type=float, default=3.5)
    parser.add_argument("--student_steps", type=int, default=900)
    parser.add_argument("--pseudo_images", type=int, default=384)
    parser.add_argument("--num_eval", type=int, default=64, help="held-out synthetic scenes")
    parser.add_argument("--input_size", type=int, default=252, help="short side for the real images (multiple of 14)")
    args = parser.parse_args()
    start = time.perf_counter()
    out = Path(args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    teacher, pseudo, student = out / "teacher", out / "pseudo_labels", out / "student"
    log: list[dict] = []

    run("1/6 teacher on synthetic scenes", [
        PYTHON, "train/teacher.py", "--config", "train/configs/tiny_teacher.yaml", "--output_dir", teacher,
        "--max_steps", args.teacher_steps, "--max_minutes", args.teacher_minutes], log)
    run("2/6 pseudo-labels for real photos, artworks and unlabelled synthetic images", [
        PYTHON, "train/pseudo_label.py", "--config", "train/configs/tiny_pseudo_label.yaml",
        "--teacher", teacher / "final", "--unlabelled", "assets/photos", "assets/artworks", "synthetic",
        "--synthetic_height", "144", "--synthetic_width", "192", "--max_images", args.pseudo_images,
        "--output_dir", pseudo], log)
    run("3/6 student on labelled synthetic + pseudo-labelled images", [
        PYTHON, "train/student.py", "--config", "train/configs/tiny_student.yaml", "--pseudo_labels", pseudo,
        "--frozen_encoder", teacher / "final", "--output_dir", student,
        "--max_steps", args.student_steps, "--max_minutes", args.student_minutes], log)

    print("\n=== 4/6 evaluation on held-out synthetic scenes and the shipped real RGB-D benchmark", flush=True)
    models = {"untrained": save_untrained(out / "untrained"), "teacher": teacher / "final", "student": student / "final"}
    results = {"held-out synthetic": evaluate_synthetic(models, args.num_eval),
               "real RGB-D": evaluate_real(models, out, args.input_size, log)}
    (out / "results.json").write_text(json.dumps(results, indent=1))

    run("5/6 depth maps of the shipped photos and artworks (student)", [
        PYTHON, "-m", "modeling_depth_anything.cli", "predict", "assets/photos", "assets/artworks",
        "--model", student / "final", "--output", out / "predictions", "--formats", "side_by_side", "png16",
        "--input-size", args.input_size, "--quiet"], log)
    pictures = sorted((out / "predictions").glob("*side_by_side*"))
    montage(pictures[:: max(1, len(pictures) // 6)][:6], out / "predictions_montage.png")

    print("\n=== 6/6 report", flush=True)
    grids = {name: next((out / "eval" / name).glob("*grid.png")) for name in ("teacher", "student")}
    report = write_report(out, results, log, args, grids)
    print(f"\nReport: {report}  (total {(time.perf_counter() - start) / 60:.1f} min)")
    print("\n".join(table(results, ["held-out synthetic", "real RGB-D"])))


if __name__ == "__main__":
    main()
