"""The routes users take: pipeline with our objects, trust_remote_code from a folder, plain transformers, push_to_hub."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import pipeline

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation, DepthAnythingImageProcessor

PHOTO = Path(__file__).resolve().parents[1] / "assets" / "photos" / "opencv_doc__fruits.jpg"

FRESH_PROCESS = """
import sys
sys.modules["modeling_depth_anything"] = None  # our package must not be importable: the folder carries the code
import torch
from PIL import Image
from transformers import pipeline
depth = pipeline("depth-estimation", model=sys.argv[1], trust_remote_code=sys.argv[2] == "1")
result = depth(Image.open(sys.argv[3]))
print(type(depth.model).__module__, type(depth.image_processor).__name__)
torch.save(result["predicted_depth"], sys.argv[4])
"""


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    """A tiny model in "transformers" interpolation mode with the "minimal" processor and bicubic post-processing,
    the settings under which plain transformers must reproduce our output."""
    folder = tmp_path_factory.mktemp("tiny_model")
    config = DepthAnythingConfig.from_preset("tiny", position_embedding_interpolation="transformers")
    model = DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():  # random heads output ~1e-5; scale up so that the comparisons below are meaningful
        model.head.conv3.weight.mul_(1e4)
        model.head.conv3.bias.fill_(0.5)
    processor = DepthAnythingImageProcessor(size=140, resize_policy="minimal", post_process_interpolation="bicubic")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, model, processor


def run_fresh(folder, trust_remote_code, tmp_path):
    out = tmp_path / f"depth_{int(trust_remote_code)}.pt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(folder), str(int(trust_remote_code)), str(PHOTO), str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, torch.load(out, weights_only=True)


def test_three_routes_agree(saved_folder, tmp_path):
    folder, model, processor = saved_folder
    image = Image.open(PHOTO)
    ours = pipeline("depth-estimation", model=model, image_processor=processor)(image)
    assert ours["predicted_depth"].shape == (image.height, image.width)
    assert ours["depth"].size == image.size

    stdout, remote = run_fresh(folder, True, tmp_path)
    assert "transformers_modules" in stdout and "DepthAnythingImageProcessor" in stdout
    torch.testing.assert_close(remote, ours["predicted_depth"], rtol=0, atol=0)

    stdout, plain = run_fresh(folder, False, tmp_path)
    assert "transformers.models.depth_anything" in stdout and "DPTImageProcessor" in stdout
    span = (ours["predicted_depth"].max() - ours["predicted_depth"].min()).item()
    assert span > 0.1
    # transformers' bicubic post-processing can dip below 0 at edges; ours clamps there and is otherwise identical.
    assert (plain.clamp(min=0) - ours["predicted_depth"]).abs().max().item() <= 1e-5 * span


class LocalHub:
    """Stands in for the Hub API: commits land in a local folder per repo id (there is no Hub here)."""

    def __init__(self, root):
        self.root = Path(root)

    def create_repo(self, repo_id, **kwargs):
        (self.root / repo_id).mkdir(parents=True, exist_ok=True)
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def create_commit(self, repo_id, operations, **kwargs):
        for operation in operations:
            target = self.root / repo_id / operation.path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            source = operation.path_or_fileobj
            target.write_bytes(Path(source).read_bytes() if isinstance(source, (str, os.PathLike)) else source.read())


def test_push_to_hub_produces_a_loadable_folder(saved_folder, tmp_path, monkeypatch):
    import transformers.utils.hub as hub

    folder, model, processor = saved_folder
    fake = LocalHub(tmp_path / "hub")
    monkeypatch.setattr(hub, "hf_api", lambda: fake)
    monkeypatch.setattr(hub, "create_and_tag_model_card", lambda *a, **k: type("Card", (), {"save": lambda self, p: Path(p).write_text("card")})())
    model.push_to_hub("someone/tiny-depth")
    processor.push_to_hub("someone/tiny-depth")
    pushed = tmp_path / "hub" / "someone" / "tiny-depth"
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "modeling_depth_anything.py",
                 "configuration_depth_anything.py", "image_processing_depth_anything.py", "losses.py"):
        assert (pushed / name).exists(), name
    _, remote = run_fresh(pushed, True, tmp_path)
    _, local = run_fresh(folder, True, tmp_path)
    torch.testing.assert_close(remote, local, rtol=0, atol=0)
