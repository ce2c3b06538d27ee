"""The main job's pieces: step sizing from injected timings, the synthetic benchmark and the vertical prior through the
evaluation runner, the report read from metrics.json, the job's config validation."""

import json

import numpy as np
import pytest
import torch

from modeling_depth_anything.evaluation import runner
from modeling_depth_anything.evaluation.baselines import load_baseline, vertical_gradient
from modeling_depth_anything.evaluation.benchmarks import load_benchmark
from modeling_depth_anything.experiment import ExperimentConfig, plan_steps, step_seconds_from_log
from modeling_depth_anything.experiment.report import (
    MODEL_NAMES,
    collect_results,
    precision_line,
    results_table,
    verdicts,
)


def _write_log(path, seconds_per_step, images_per_step=8):
    with open(path, "w", encoding="utf-8") as handle:
        for step, seconds in enumerate(seconds_per_step, start=1):
            record = {"step": step, "train/loss": 1.0, "train/images_per_second": images_per_step / seconds}
            handle.write(json.dumps(record) + "\n")


def test_step_time_from_log_skips_warm_up(tmp_path):
    log = tmp_path / "losses.jsonl"
    _write_log(log, [3.0, 1.5, 0.5, 0.5, 0.6, 0.4, 0.5])  # the first two steps pay for lazy initialisation
    assert step_seconds_from_log(log, images_per_step=8) == pytest.approx(0.5)
    assert step_seconds_from_log(log, images_per_step=8, skip=0) == pytest.approx(0.5)
    _write_log(log, [2.0])  # too few records to skip any: the one there is used
    assert step_seconds_from_log(log, images_per_step=8) == pytest.approx(2.0)
    log.write_text('{"step": 1, "train/loss": 1.0}\n')
    with pytest.raises(ValueError, match="losses.jsonl: no step with a measured"):
        step_seconds_from_log(log, images_per_step=8)
    with pytest.raises(ValueError, match="missing.jsonl"):
        step_seconds_from_log(tmp_path / "missing.jsonl", images_per_step=8)


def test_plan_steps_on_fast_slow_and_too_slow_machines():
    # A fast machine (0.2 s/step): the recipe's 1200 steps fit 4.5 min and all of them run.
    fast = plan_steps("teacher", 0.2, 270.0, cap=1200, minimum=150)
    assert (fast.steps, fast.fitting, fast.too_slow) == (1200, 1215, False) and "full 1200" in fast.reason
    # An AVX2-only CPU, fp32 (0.5 s/step): the schedule shrinks to what fits, 90 % of the budget.
    slow = plan_steps("teacher", 0.5, 270.0, cap=1200, minimum=150)
    assert (slow.steps, slow.too_slow) == (486, False)
    assert "0.500 s/step measured" in slow.reason and "shortened to 486" in slow.reason
    # bf16 emulated (5.1 s/step, as measured on that CPU before the precision policy): too slow, said so.
    crawl = plan_steps("teacher", 5.1, 270.0, cap=1200, minimum=150)
    assert (crawl.steps, crawl.fitting, crawl.too_slow) == (150, 47, True) and "too slow" in crawl.reason
    assert crawl.to_dict()["steps"] == 150 and crawl.to_dict()["stage"] == "teacher"
    for bad in ({"step_seconds": 0.0}, {"step_seconds": float("nan")}, {"budget_seconds": -1.0}, {"cap": 0}):
        arguments = {"stage": "s", "step_seconds": 1.0, "budget_seconds": 10.0, "cap": 5, **bad}
        with pytest.raises(ValueError, match=repr(next(iter(bad.values())))):
            plan_steps(**arguments)


def test_experiment_config_is_validated():
    config = ExperimentConfig(num_eval=8, eval_seed=5)
    assert config.synthetic_benchmark == "synthetic:?count=8&seed=5&height=126&width=168"
    with pytest.raises(ValueError, match="teacher_minutes must be > 0, got 0"):
        ExperimentConfig(teacher_minutes=0)
    with pytest.raises(ValueError, match="student_mode must be one of .* got 'v3'"):
        ExperimentConfig(student_mode="v3")
    with pytest.raises(ValueError, match="input_size must be a positive multiple of 14, got 250"):
        ExperimentConfig(input_size=250)
    with pytest.raises(ValueError, match="calibration_steps"):
        ExperimentConfig(calibration_steps=900, student_steps=900)


def test_synthetic_benchmark_renders_held_out_scenes():
    benchmark = load_benchmark("synthetic:?count=3&seed=11&height=42&width=56")
    assert len(benchmark) == 3 and benchmark.kind == "synthetic"
    samples = list(benchmark.iter_samples())
    assert [sample.id for sample in samples] == ["synthetic-11-0", "synthetic-11-1", "synthetic-11-2"]
    assert samples[0].image.shape == (42, 56, 3) and samples[0].depth.shape == (42, 56)
    assert samples[0].mask.any() and np.isfinite(samples[0].depth[samples[0].mask]).all()
    again = load_benchmark("synthetic:?count=3&seed=11&height=42&width=56")[1]
    np.testing.assert_array_equal(again.image, samples[1].image)  # the same scenes on every machine
    assert len(load_benchmark("synthetic:")) == 64
    with pytest.raises(ValueError, match="unknown option"):
        load_benchmark("synthetic:?count=2&colour=red")
    with pytest.raises(ValueError, match="take no path"):
        load_benchmark("synthetic:somewhere")
    with pytest.raises(ValueError, match="count must be >= 1, got 0"):
        load_benchmark("synthetic:?count=0")


def test_vertical_prior_is_a_predictor():
    prior = load_baseline("baseline:vertical")
    (prediction,) = prior.predict_arrays([np.zeros((5, 3, 3), np.uint8)])
    np.testing.assert_allclose(prediction.depth[:, 0], [0, 0.25, 0.5, 0.75, 1.0])
    assert prediction.depth.shape == (5, 3) and not prediction.is_metric
    np.testing.assert_array_equal(vertical_gradient(4, 2)[:, 0], vertical_gradient(4, 2)[:, 1])
    with pytest.raises(ValueError, match="unknown baseline 'diagonal'"):
        load_baseline("baseline:diagonal")


def test_runner_scores_the_prior_on_synthetic_scenes(tmp_path):
    output = tmp_path / "prior"
    argv = [
        "--model",
        "baseline:vertical",
        "--benchmark",
        "synthetic:?count=4&seed=3&height=42&width=56",
        "--output",
        str(output),
        "--no-progress",
        "--grid-samples",
        "1",
    ]
    assert runner.main(argv) == 0
    results = json.loads((output / "metrics.json").read_text())
    (benchmark,) = results["benchmarks"].values()
    assert results["model"] == "baseline:vertical" and benchmark["kind"] == "synthetic"
    assert benchmark["num_evaluated"] == 4 and 0 < benchmark["metrics"]["abs_rel"] < 1
    assert next(output.glob("*grid.png")).stat().st_size > 0


def test_report_reads_every_score_from_metrics_json(tmp_path):
    scores = {"untrained": 1.5, "vertical_prior": 0.43, "teacher": 0.29, "student": 0.31}
    for model, abs_rel in scores.items():
        for group in ("synthetic", "rgbd"):
            folder = tmp_path / "eval" / model / group
            folder.mkdir(parents=True)
            benchmark = {
                "spec": group,
                "metrics": {"abs_rel": abs_rel + (group == "rgbd"), "delta1": 0.5},
                "num_evaluated": 8,
                "num_skipped": 0,
            }
            (folder / "metrics.json").write_text(json.dumps({"benchmarks": {"b": benchmark}}))
    results = collect_results(tmp_path)
    assert results["synthetic"]["teacher"]["abs_rel"] == 0.29 and results["rgbd"]["teacher"]["abs_rel"] == 1.29
    table = results_table(results)
    assert len(table) == 2 + len(MODEL_NAMES) and "| vertical prior | 0.430 | 0.500 | 1.430 | 0.500 |" in table
    lines = verdicts(results)
    assert "the teacher beats the vertical prior (0.290 vs 0.430 AbsRel)" in lines[0]
    assert "does NOT beat its teacher" in lines[0]
    (tmp_path / "eval" / "student" / "rgbd" / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match="student/rgbd/metrics.json"):
        collect_results(tmp_path)


def test_report_states_the_precision_and_why(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # the AVX2-only emulation: bf16 is emulated, so fp32
    monkeypatch.setattr(
        "modeling_depth_anything.inference.precision.resolve_device", lambda device: torch.device("cpu")
    )
    line = precision_line()
    assert line.startswith("fp32 (auto:") and "ONEDNN_MAX_CPU_ISA=AVX2" in line


@pytest.mark.slow  # several minutes: five training/labelling processes, eight evaluations
def test_main_job_end_to_end(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    root = Path(__file__).resolve().parents[1]
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(2):
        Image.fromarray(np.random.default_rng(index).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(
            photos / f"p{index}.png"
        )
    out = tmp_path / "run"
    command = [sys.executable, "run_pipeline.py", "--output_dir", str(out), "--teacher_minutes", "0.5",
               "--student_minutes", "0.5", "--teacher_steps", "40", "--student_steps", "40", "--min_steps", "20",
               "--calibration_steps", "4", "--pseudo_images", "16", "--num_eval", "4", "--unlabelled", "synthetic",
               "--predict_inputs", str(photos)]  # fmt: skip
    subprocess.run(command, cwd=root, check=True, timeout=1800, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]) == {"synthetic", "rgbd"} and set(results["results"]["rgbd"]) == set(MODEL_NAMES)
    for stage in ("teacher", "student"):
        plan = results["sizing"][stage]
        assert 20 <= plan["steps"] <= 40 and 4 <= plan["steps_run"] <= plan["steps"] and plan["step_seconds"] > 0
    report = (out / "report.md").read_text()
    assert "## Steps run, and why" in report and "s/step measured" in report
    assert "teacher" in (out / "teacher" / "final" / "README.md").read_text()  # the card got its scores
    assert "model-index" in (out / "teacher" / "final" / "README.md").read_text()
    assert sorted(path.name for path in (out / "predictions").glob("*side_by_side.png")) == [
        "p0_side_by_side.png",
        "p1_side_by_side.png",
    ]
