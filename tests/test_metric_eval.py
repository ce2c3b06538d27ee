"""Metric evaluation: metres without alignment, V2's SILog, the KITTI Eigen crop, synthetic rooms, and the runner
end to end with a metric model on NYU (Eigen crop), KITTI, the shipped RGB-D folders and held-out synthetic rooms."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_depth_anything.evaluation import runner
from modeling_depth_anything.evaluation.benchmarks import load_benchmark
from modeling_depth_anything.evaluation.metrics import METRIC_NAMES, compute_depth_metrics, evaluate_sample

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


layouts = _load("eval_layouts_metric", ROOT / "tests" / "fixtures" / "eval" / "layouts.py")


def v2_eval_depth(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Depth Anything V2 `metric_depth/util/metric.py` `eval_depth`, on the valid pixels (1-D tensors)."""
    thresh = torch.max(target / pred, pred / target)
    diff, diff_log = pred - target, torch.log(pred) - torch.log(target)
    return {
        "delta1": (thresh < 1.25).double().mean().item(),
        "delta2": (thresh < 1.25**2).double().mean().item(),
        "delta3": (thresh < 1.25**3).double().mean().item(),
        "abs_rel": torch.mean(torch.abs(diff) / target).item(),
        "sq_rel": torch.mean(diff**2 / target).item(),
        "rmse": torch.sqrt(torch.mean(diff**2)).item(),
        "rmse_log": torch.sqrt(torch.mean(diff_log**2)).item(),
        "log10": torch.mean(torch.abs(torch.log10(pred) - torch.log10(target))).item(),
        "silog_v2": torch.sqrt(diff_log.pow(2).mean() - 0.5 * diff_log.mean().pow(2)).item(),
    }


def test_v2_silog_hand_computed():
    # log errors ln 2, ln 2, 0, 0: mean(d^2) = ln2^2 / 2, mean(d) = ln2 / 2 -> sqrt(ln2^2 (1/2 - 1/8))
    metrics = compute_depth_metrics(
        np.array([[2.0, 4.0, 3.0, 1.0]]), np.array([[1.0, 2.0, 3.0, 1.0]]), np.ones((1, 4), bool)
    )
    assert float(metrics["silog_v2"]) == pytest.approx(math.log(2) * math.sqrt(3 / 8), rel=1e-12)
    assert float(metrics["silog"]) == pytest.approx(100 * math.log(2) / 2, rel=1e-12)  # ZoeDepth's, unchanged


def test_metric_scores_match_v2_eval_depth_without_alignment():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 12.0, (30, 40))
    gt[:3] = 0  # no measurement
    prediction = gt * np.exp(rng.normal(0, 0.2, gt.shape)) + 0.05
    mask = np.ones(gt.shape, bool)
    mask[:, :5] = False  # a crop
    ours = evaluate_sample(prediction, gt, mask, "depth", 1e-3, 10.0, prediction_type="depth", alignment="none")
    valid = mask & (gt >= 1e-3) & (gt <= 10.0)
    # our clamp of the prediction to the benchmark range (ZoeDepth's) is the only difference from V2's eval_depth
    reference = v2_eval_depth(torch.from_numpy(np.clip(prediction[valid], 1e-3, 10.0)), torch.from_numpy(gt[valid]))
    assert ours["scale"] == 1.0 and ours["shift"] == 0.0 and ours["valid_pixels"] == valid.sum()
    for name, value in reference.items():
        assert ours[name] == pytest.approx(value, rel=1e-9), name
    assert "silog_v2" in METRIC_NAMES


def test_no_alignment_keeps_the_metric_scale():
    gt = np.linspace(1.0, 8.0, 64).reshape(8, 8)
    twice = evaluate_sample(2 * gt, gt, None, "depth", prediction_type="depth", alignment="none", max_depth=20.0)
    assert twice["abs_rel"] == pytest.approx(1.0) and twice["delta1"] == 0.0
    aligned = evaluate_sample(2 * gt, gt, None, "depth", prediction_type="depth", max_depth=20.0)
    assert aligned["abs_rel"] < 1e-9  # scale-and-shift alignment would hide a wrong metric scale


def test_kitti_eigen_crop_and_synthetic_rooms(tmp_path):
    root = layouts.make_kitti(tmp_path / "kitti", height=60, width=200)
    garg = load_benchmark(f"kitti:{root}")[0].mask
    eigen = load_benchmark(f"kitti:{root}?crop=eigen")[0].mask
    rows = np.flatnonzero(eigen.any(axis=1))
    assert rows[0] == int(0.3324324 * 60) and rows[-1] == int(0.91351351 * 60) - 1
    assert (eigen != garg).any()
    with pytest.raises(ValueError, match="crop must be one of"):
        load_benchmark(f"kitti:{root}?crop=middle")

    rooms = load_benchmark("synthetic:?scenes=room&count=2&height=28&width=42&max_depth=20")
    assert "room" in rooms.display_name and len(rooms) == 2
    for sample in (rooms[0], rooms[1]):
        assert sample.depth[sample.mask].max() <= 20.0 and sample.mask.any()
    with pytest.raises(ValueError, match="scene_kinds"):
        load_benchmark("synthetic:?scenes=garden")


@pytest.fixture(scope="module")
def metric_model_dir(tmp_path_factory):
    from modeling_depth_anything import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        DepthAnythingImageProcessor,
    )

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_metric_model")
    config = DepthAnythingConfig.from_preset("tiny", depth_estimation_type="metric", max_depth=20)
    DepthAnythingForDepthEstimation(config).save_pretrained(path)
    DepthAnythingImageProcessor(size=28).save_pretrained(path)
    return path


def test_runner_scores_a_metric_model_in_metres(metric_model_dir, tmp_path):
    nyu = layouts.make_nyu(tmp_path / "nyu", count=1)
    kitti = layouts.make_kitti(tmp_path / "kitti")
    output = tmp_path / "out"
    benchmarks = [
        f"nyu:{nyu}",
        f"kitti:{kitti}?crop=eigen",
        "rgbd:assets/rgbd?limit=2",
        "synthetic:?scenes=room&count=2&height=28&width=42&max_depth=20",
    ]
    argv = ["--model", str(metric_model_dir), "--protocol", "depth", "--alignment", "none", "--output", str(output)]
    argv += ["--input-size", "28", "--no-progress", "--grid-samples", "0"]
    for spec in benchmarks:
        argv += ["--benchmark", spec]
    assert runner.main(argv) == 0
    results = json.loads((output / "metrics.json").read_text())
    assert results["alignment"] == "none" and len(results["benchmarks"]) == 4
    for name, result in results["benchmarks"].items():
        assert result["prediction_type"] == "depth" and result["num_evaluated"] >= 1, name
        for sample in result["per_sample"].values():
            assert sample["scale"] == 1.0 and sample["shift"] == 0.0  # metres as predicted
        assert result["metrics"]["abs_rel"] > 0 and 0 <= result["metrics"]["delta1"] <= 1
    assert results["benchmarks"]["nyu_nyu"]["max_depth"] == 10.0
