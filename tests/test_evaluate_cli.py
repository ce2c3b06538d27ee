"""eval/evaluate_model.py end to end with a tiny random model: the shipped benchmark, DA-2K, model cards, bad input."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modeling_depth_anything.evaluation import runner

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


layouts = _load("eval_layouts", ROOT / "tests" / "fixtures" / "eval" / "layouts.py")
cli = runner


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    import torch

    from modeling_depth_anything import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        DepthAnythingImageProcessor,
    )

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_model")
    DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny")).save_pretrained(path)
    DepthAnythingImageProcessor(size=518).save_pretrained(path)
    return path


def test_cli_on_shipped_benchmark(tiny_model_dir, tmp_path):
    output = tmp_path / "out"
    card = tmp_path / "card" / "README.md"
    card.parent.mkdir()
    card.write_text("---\nlicense: apache-2.0\n---\n\n# Tiny model\n\nHand-written text stays.\n")
    command = [
        sys.executable,
        str(ROOT / "eval" / "evaluate_model.py"),
        "--model",
        str(tiny_model_dir),
        "--output",
        str(output),
        "--input-size",
        "28",
        "--batch-size",
        "4",
        "--no-progress",
        "--model-card",
        str(card),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((output / "metrics.json").read_text())
    result = results["benchmarks"]["rgbd_rgbd"]
    assert results["protocol"] == "disparity" and result["num_evaluated"] == 10 and result["num_skipped"] == 0
    assert 0 < result["metrics"]["abs_rel"] < 10 and 0 <= result["metrics"]["delta1"] <= 1
    assert len(result["per_sample"]) == 10 and result["max_depth"] is None
    table = (output / "results.md").read_text()
    assert "**disparity**" in table and "| rgbd_rgbd | 10 | 0 |" in table and "nan" not in table.lower()
    assert (output / "rgbd_rgbd_grid.png").stat().st_size > 10_000
    text = card.read_text()
    assert "model-index" in text and "abs_rel" in text and "Hand-written text stays." in text and "apache-2.0" in text
    assert "## Evaluation" in text and "| RGB-D folder | disparity |" in text


def test_model_card_update_replaces_section_and_rejects_bad_yaml(tmp_path):
    from modeling_depth_anything.evaluation.report import card_eval_results, update_model_card

    def results(protocol, abs_rel):
        benchmark = {"kind": "nyu", "display_name": "NYUv2", "split": "test", "metrics": {"abs_rel": abs_rel}}
        return {"model": "m", "protocol": protocol, "benchmarks": {"nyu_test": benchmark}}

    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\n---\n# M\n\n## Evaluation\n\nNot evaluated yet.\n\n## Limitations\n\nSome.\n")
    update_model_card(card, results("disparity", 0.5))
    update_model_card(card, results("depth", 0.25))
    update_model_card(card, results("disparity", 0.125))  # replaces the first entry
    text = card.read_text()
    assert "Not evaluated yet" not in text and text.count("## Evaluation") == 1 and "## Limitations\n\nSome." in text
    assert "| NYUv2 | disparity | 0.125 |" in text and "| NYUv2 | depth | 0.250 |" in text and "0.5\n" not in text
    assert card_eval_results(results("depth", 0.25)) == [
        {"benchmark": "NYUv2", "protocol": "depth", "metrics": {"abs_rel": 0.25}}
    ]
    card.write_text("---\n{{ card_data }}\n---\ntemplate\n")
    with pytest.raises(ValueError, match="YAML front matter"):
        update_model_card(card, results("depth", 0.25))


def test_cli_depth_protocol_da2k_and_skips(tiny_model_dir, tmp_path):
    rgbd = layouts.make_rgbd(tmp_path / "rgbd", count=3)
    (rgbd / "s2" / "depth.png").unlink()
    da2k, _ = layouts.make_da2k(tmp_path / "da2k")
    output = tmp_path / "out"
    card = tmp_path / "README.md"
    argv = [
        "--model",
        str(tiny_model_dir),
        "--benchmark",
        f"rgbd:{rgbd}",
        "--benchmark",
        f"da2k:{da2k}",
        "--protocol",
        "depth",
        "--output",
        str(output),
        "--input-size",
        "28",
        "--no-progress",
        "--grid-samples",
        "1",
        "--model-card",
        str(card),
        "--model-name",
        "tiny",
    ]
    assert cli.main(argv) == 0
    results = json.loads((output / "metrics.json").read_text())
    depth, pairs = results["benchmarks"]["rgbd_rgbd"], results["benchmarks"]["da2k_da2k"]
    assert results["protocol"] == "depth" and depth["num_evaluated"] == 2 and depth["num_skipped"] == 1
    assert "missing ground-truth depth file" in depth["skipped"][0]["reason"]
    assert pairs["num_pairs"] == 3 and set(pairs["per_scene"]) == {"indoor", "outdoor"}
    assert pairs["per_scene"]["indoor"]["pairs"] == 2 and 0 <= pairs["accuracy"] <= 1
    assert (output / "rgbd_rgbd_grid.png").is_file() and (output / "da2k_da2k_grid.png").is_file()
    table = (output / "results.md").read_text()
    assert "**depth**" in table and "per scene type" in table and "rgbd_rgbd: 1" in table
    # A second run replaces the card's entries for the same dataset, metric and protocol instead of duplicating them.
    first = card.read_text()
    assert cli.main(argv) == 0
    assert card.read_text().count("type: abs_rel") == first.count("type: abs_rel") == 1
    assert "name: tiny" in card.read_text()


def test_cli_all_invalid_benchmark_fails_without_nan(tiny_model_dir, tmp_path):
    rgbd = layouts.make_rgbd(tmp_path / "rgbd", count=2)
    for index in range(2):
        layouts.save_png16(rgbd / f"s{index}" / "depth.png", np.zeros((28, 42)), 0.001)
    output = tmp_path / "out"
    argv = [
        "--model",
        str(tiny_model_dir),
        "--benchmark",
        f"rgbd:{rgbd}",
        "--output",
        str(output),
        "--input-size",
        "28",
        "--no-progress",
    ]
    assert cli.main(argv) == 1
    result = json.loads((output / "metrics.json").read_text())["benchmarks"]["rgbd_rgbd"]
    assert result["metrics"] is None and result["num_skipped"] == 2
    assert "no valid depth" in result["skipped"][0]["reason"]
    table = (output / "results.md").read_text()
    assert "n/a" in table and "nan" not in table.lower()


def test_cli_rejects_bad_arguments(tiny_model_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty benchmark"):
        cli.main(
            ["--model", str(tiny_model_dir), "--benchmark", f"rgbd:{tmp_path / 'empty'}", "--output", str(tmp_path)]
        )
    with pytest.raises(SystemExit):
        cli.main(["--model", str(tiny_model_dir), "--output", str(tmp_path), "--protocol", "midas"])
    with pytest.raises(ValueError, match="multiple of 14"):
        cli.set_processor_size(object(), 30)
