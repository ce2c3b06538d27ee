"""The whole teacher -> pseudo-label -> student pipeline at toy scale on this CPU, with the four numbers of issue 7.

    python train/tiny_experiment.py --output_dir runs/tiny_experiment            # ~10 minutes on 2 CPU cores

1. Teacher: the tiny model (~2.8M parameters) trained from scratch on procedural synthetic scenes for at most
   `--teacher_minutes` (4.75: with start-up and saving the stage stays under 5) minutes (`train/configs/tiny_teacher.yaml`: V2 teacher recipe, gradient loss weight 2).
2. Pseudo-labels: the teacher labels `--pseudo_images` unlabelled synthetic images (another seed; depth ignored).
3. Student: a fresh tiny model trained for at most `--student_minutes` minutes on those pseudo-labels only (V2 student
   mode: pseudo-labels only, top-10 % trimming; strong perturbations and CutMix; no feature alignment, since no
   pretrained DINOv2 exists offline and aligning to a random encoder teaches nothing).
4. Evaluation on `--num_eval` held-out synthetic scenes (a seed no stage saw), at 126x168: per-image least-squares
   scale and shift in disparity, AbsRel in disparity (`eval/metrics.py`, protocol "disparity", sky excluded), for the
   teacher, the untrained model, the "vertical gradient" prior (disparity rising linearly towards the image bottom)
   and the student.

Each stage runs as the same command line a user would type (printed), single process; `--skip_training` only
re-evaluates the models of an earlier run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from modeling_depth_anything import DepthAnythingForDepthEstimation
from modeling_depth_anything.data.synthetic import SyntheticConfig, render_sample
from modeling_depth_anything.evaluation.metrics import evaluate_sample
from modeling_depth_anything.image_processing_depth_anything import IMAGENET_MEAN, IMAGENET_STD
from modeling_depth_anything.training import build_model
from modeling_depth_anything.training.args import ModelArguments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
logger = logging.getLogger("tiny_experiment")
EVAL_SEED = 777_001  # held out: the teacher trains on seed 0, pseudo-labelling reads seed 1000
EVAL_SIZE = (126, 168)


def held_out_scenes(count: int, seed: int = EVAL_SEED, size: tuple[int, int] = EVAL_SIZE) -> list[dict]:
    """`count` synthetic scenes (image (H, W, 3) uint8, depth (H, W) metres, sky_mask) from a seed no stage uses."""
    config = SyntheticConfig(height=size[0], width=size[1])
    return [render_sample(seed, index, config=config) for index in tqdm(range(count), desc="rendering held-out")]


def predict(model: DepthAnythingForDepthEstimation, scenes: list[dict], batch_size: int = 16) -> list[np.ndarray]:
    """Disparity maps (H, W) of `model` on the scenes, at their own size (a multiple of 14)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    maps = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(scenes), batch_size):
            images = np.stack([scene["image"] for scene in scenes[start : start + batch_size]])  # (B, H, W, 3)
            pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
            maps.extend(model(pixel_values=(pixels - mean) / std).predicted_depth.numpy())
    return maps


def vertical_prior(scene: dict) -> np.ndarray:
    """The "vertical gradient" prior: disparity rising linearly from the top row (0) to the bottom row (1)."""
    height, width = scene["depth"].shape
    return np.repeat(np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None], width, axis=1)  # (H, W)


def affine_abs_rel(predictions: list[np.ndarray], scenes: list[dict]) -> float:
    """Mean over scenes of AbsRel after per-image least-squares scale and shift in disparity (sky excluded)."""
    scores = []
    for prediction, scene in zip(predictions, scenes, strict=True):
        valid = ~scene["sky_mask"] & (scene["depth"] > 0)
        result = evaluate_sample(prediction, scene["depth"], mask=valid, protocol="disparity")
        scores.append(result["abs_rel"])
    return float(np.mean(scores))


def run_stage(command: list[str]) -> float:
    """Run one stage's command line from the repository root; returns its wall time in seconds."""
    printable = " ".join(command[1:])
    print(f"\n$ python {printable}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="runs/tiny_experiment")
    parser.add_argument(
        "--teacher_minutes", type=float, default=4.75, help="loop budget; the whole stage stays under 5 min"
    )
    parser.add_argument("--teacher_steps", type=int, default=1200, help="schedule length (stops earlier on time)")
    parser.add_argument("--student_minutes", type=float, default=3.0)
    parser.add_argument("--student_steps", type=int, default=800)
    parser.add_argument("--pseudo_images", type=int, default=1024)
    parser.add_argument("--num_eval", type=int, default=64)
    parser.add_argument("--skip_training", action="store_true", help="only evaluate the models of an earlier run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = os.path.abspath(args.output_dir)
    teacher_dir, pseudo_dir, student_dir = (
        os.path.join(out, name) for name in ("teacher", "pseudo_labels", "student")
    )
    python = sys.executable
    times = {}
    if not args.skip_training:
        times["teacher_s"] = run_stage(
            [
                python,
                "train/teacher.py",
                "--config",
                "train/configs/tiny_teacher.yaml",
                "--output_dir",
                teacher_dir,
                "--max_steps",
                str(args.teacher_steps),
                "--max_minutes",
                str(args.teacher_minutes),
            ]
        )
        times["pseudo_label_s"] = run_stage(
            [
                python,
                "train/pseudo_label.py",
                "--config",
                "train/configs/tiny_pseudo_label.yaml",
                "--teacher",
                os.path.join(teacher_dir, "final"),
                "--unlabelled",
                "synthetic",
                "--synthetic_height",
                "144",
                "--synthetic_width",
                "192",
                "--max_images",
                str(args.pseudo_images),
                "--output_dir",
                pseudo_dir,
            ]
        )
        times["student_s"] = run_stage(
            [
                python,
                "train/student.py",
                "--config",
                "train/configs/tiny_student.yaml",
                "--mode",
                "v2",
                "--feature_alignment_weight",
                "0",
                "--pseudo_labels",
                pseudo_dir,
                "--output_dir",
                student_dir,
                "--max_steps",
                str(args.student_steps),
                "--max_minutes",
                str(args.student_minutes),
            ]
        )
    scenes = held_out_scenes(args.num_eval)
    torch.manual_seed(0)
    untrained = build_model(ModelArguments(preset="tiny"))  # initialised exactly as the stages initialise a model
    results = {
        "teacher": affine_abs_rel(
            predict(DepthAnythingForDepthEstimation.from_pretrained(os.path.join(teacher_dir, "final")), scenes),
            scenes,
        ),
        "untrained": affine_abs_rel(predict(untrained, scenes), scenes),
        "vertical_prior": affine_abs_rel([vertical_prior(scene) for scene in scenes], scenes),
        "student": affine_abs_rel(
            predict(DepthAnythingForDepthEstimation.from_pretrained(os.path.join(student_dir, "final")), scenes),
            scenes,
        ),
    }
    summary = {
        "abs_rel": results,
        "num_eval": args.num_eval,
        "eval_seed": EVAL_SEED,
        "eval_size": EVAL_SIZE,
        "protocol": "per-image least-squares scale+shift in disparity, AbsRel in disparity, sky excluded",
        **times,
    }
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    print(
        f"\nAffine-aligned AbsRel on {args.num_eval} held-out synthetic scenes (seed {EVAL_SEED}, "
        f"{EVAL_SIZE[0]}x{EVAL_SIZE[1]}; lower is better):"
    )
    print(
        f"  teacher (trained from scratch, {times.get('teacher_s', float('nan')) / 60:.1f} min): {results['teacher']:.3f}"
    )
    print(f"  untrained model:                 {results['untrained']:.3f}")
    print(f"  vertical-gradient prior:         {results['vertical_prior']:.3f}")
    print(f"  student (pseudo-labels only):    {results['student']:.3f}")
    print(
        f"teacher beats prior: {results['teacher'] < results['vertical_prior']}, teacher beats untrained: "
        f"{results['teacher'] < results['untrained']}, student beats untrained: "
        f"{results['student'] < results['untrained']}"
    )


if __name__ == "__main__":
    main()
