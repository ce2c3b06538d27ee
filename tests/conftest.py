"""Shared test set-up: offline Hub, small deterministic fixtures."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]

import pytest  # noqa: E402  (after the environment above)
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def fixtures_dir() -> Path:
    return ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random model (seed 0) and a 56-pixel processor, saved as a from_pretrained folder. Shared by the whole
    run, so tests read it and copy it before changing anything in it."""
    from modeling_depth_anything import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        DepthAnythingImageProcessor,
    )

    folder = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny")).save_pretrained(folder)
    DepthAnythingImageProcessor(size=56).save_pretrained(folder)
    return folder
