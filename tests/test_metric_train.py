"""train/metric.py on the tiny config for a few steps: a metric folder that loads in plain transformers and with
trust_remote_code and predicts metres in pipeline("depth-estimation"); resume; held-out scores; bad configurations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.training.args import DataArguments, ModelArguments
from modeling_depth_anything.training.metric import build_metric_model
from modeling_depth_anything.training.metric_args import MetricArguments, check_metric_setup

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "--max_steps", "2", "--max_minutes", "5", "--crop_size", "28", "--processor_size", "28",
    "--synthetic_height", "28", "--synthetic_width", "42", "--per_device_batch_size", "2",
    "--heldout_scenes", "2", "--median_samples", "2", "--checkpointing_steps", "1", "--report_to", "none",
    "--num_workers", "0", "--shuffle_buffer", "0", "--logging_steps", "1",
]  # fmt: skip

FRESH_PROCESS = """
import sys
sys.modules["modeling_depth_anything"] = None  # our package must not be importable: the folder carries the code
import torch
from PIL import Image
from transformers import pipeline
for remote in (True, False):
    depth = pipeline("depth-estimation", model=sys.argv[1], trust_remote_code=remote)
    print(type(depth.model).__module__)
    torch.save(depth(Image.open(sys.argv[2]))["predicted_depth"], f"{sys.argv[3]}_{int(remote)}.pt")
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(cwd / "modules")}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def relative_folder(tmp_path_factory) -> Path:
    """A tiny relative model whose head outputs something (its random last layer is scaled up)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("relative")
    model = DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny"))
    model.save_pretrained(folder)
    DepthAnythingImageProcessor(size=28).save_pretrained(folder)
    return folder


def test_metric_run_resume_and_loading_routes(relative_folder, tmp_path):
    output = tmp_path / "run"
    command = [
        sys.executable,
        str(ROOT / "train" / "metric.py"),
        "--config",
        str(ROOT / "train/configs/tiny_metric.yaml"),
    ]
    command += ["--init_from", str(relative_folder), "--output_dir", str(output), *FAST]
    run = _run(command, tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    final = output / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["depth_estimation_type"] == "metric" and config["max_depth"] == 20  # an int: plain transformers
    heldout = json.loads((output / "heldout_eval.json").read_text())
    assert len(heldout) == 5 and any(key.startswith("fine-tuned (2 steps)") for key in heldout)
    assert "Metric depth in metres" in (final / "README.md").read_text()
    card = (final / "README.md").read_text()
    assert "Held-out synthetic rooms" in card and "model-index" in card and "depth, no alignment" in card
    assert "| untrained metric head |" in run.stdout

    # resume from the last checkpoint (step 2) for one more step
    resumed = _run([*command, "--max_steps", "3", "--resume_from_checkpoint", "latest"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "Resumed from" in resumed.stderr and "fine-tuned (3 steps)" in resumed.stdout

    # The folder predicts metres through pipeline("depth-estimation"), in plain transformers and with remote code.
    image_path = tmp_path / "room.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 42, 3), dtype=np.uint8)).save(image_path)
    model = DepthAnythingForDepthEstimation.from_pretrained(final).eval()
    processor = DepthAnythingImageProcessor.from_pretrained(final)
    with torch.no_grad():
        ours = model(**processor(Image.open(image_path), return_tensors="pt")).predicted_depth[0]  # (28, 42) metres
    assert ours.min() > 0 and ours.max() <= 20.0
    fresh = _run([sys.executable, "-c", FRESH_PROCESS, str(final), str(image_path), str(tmp_path / "depth")], tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "transformers_modules" in fresh.stdout and "transformers.models.depth_anything" in fresh.stdout
    for remote in (True, False):
        predicted = torch.load(tmp_path / f"depth_{int(remote)}.pt", weights_only=True)
        torch.testing.assert_close(predicted, ours, rtol=1e-4, atol=1e-4)  # metres, whichever classes load it


def test_metric_model_from_a_relative_one(relative_folder):
    relative = DepthAnythingForDepthEstimation.from_pretrained(relative_folder)
    metric = build_metric_model(relative, 20.0, MetricArguments(init_depth=3.0))
    assert metric.config.depth_estimation_type == "metric" and metric.config.max_depth == 20
    for name, value in relative.state_dict().items():  # encoder and decoder carried over, the last conv reset
        if not name.startswith("head.conv3"):
            torch.testing.assert_close(metric.state_dict()[name], value, msg=name)
    with torch.no_grad():  # a reset head starts at init_depth everywhere, away from the sigmoid's flat ends
        depth = metric.eval()(torch.randn(1, 3, 28, 28)).predicted_depth
    torch.testing.assert_close(depth, torch.full_like(depth, 3.0))
    again = build_metric_model(metric, 20.0, MetricArguments())  # "auto" keeps a metric head of the same range
    torch.testing.assert_close(again.head.conv3.weight, metric.head.conv3.weight)


@pytest.mark.parametrize(
    "model_kwargs, data_kwargs, metric_kwargs, message",
    [
        ({}, {"labelled": ["synthetic"], "max_depth": 20}, {}, "--init_from"),
        ({"init_from": "x"}, {"labelled": ["synthetic"]}, {}, "needs --max_depth"),
        ({"init_from": "x"}, {"labelled": ["synthetic"], "max_depth": 20.5}, {}, "whole number of metres.*got 20.5"),
        ({"init_from": "x"}, {"labelled": [], "max_depth": 20}, {}, "at least one metric source"),
        ({"init_from": "x"}, {"labelled": ["synthetic"], "max_depth": 20}, {"init_depth": 25.0}, "below max_depth"),
    ],
)
def test_bad_metric_setups_are_named(model_kwargs, data_kwargs, metric_kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_metric_setup(
            ModelArguments(**model_kwargs), DataArguments(**data_kwargs), MetricArguments(**metric_kwargs)
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"silog_lambda": 1.5}, "silog_lambda must be in \\[0, 1\\], got 1.5"),
        ({"head_init": "zeros"}, "head_init must be one of .* got 'zeros'"),
        ({"min_depth": 0.0}, "min_depth must be > 0 metres, got 0.0"),
        ({"heldout_scenes": -1}, "heldout_scenes must be an integer >= 0, got -1"),
    ],
)
def test_metric_arguments_quote_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MetricArguments(**kwargs)
