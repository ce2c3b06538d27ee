"""Shared test set-up: offline Hub, script folders importable, small deterministic fixtures."""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
# train/ and eval/ are script folders, not packages. Appended (not prepended) so that installed libraries win
# over a script of the same name (eval/evaluate.py must not shadow the `evaluate` library).
for folder in ("train", "eval"):
    if str(ROOT / folder) not in sys.path:
        sys.path.append(str(ROOT / folder))

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def fixtures_dir() -> Path:
    return ROOT / "tests" / "fixtures"
