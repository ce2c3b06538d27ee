"""The routes users take: pipeline with our objects, trust_remote_code from a folder, plain transformers, push_to_hub."""

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import pipeline

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation, DepthAnythingImageProcessor

PHOTO = Path(__file__).resolve().parents[1] / "assets" / "photos" / "opencv_doc__fruits.jpg"

FRESH_PROCESS = """
import json
import logging
import sys
import warnings

sys.modules["modeling_depth_anything"] = None  # our package must not be importable: the folder carries the code
import torch
from PIL import Image
from transformers import pipeline

folder, image_path, out_dir, routes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(f"{record.name}: {record.getMessage()}")


report = {}
for route in routes:
    recorder = Recorder()
    for name in ("", "transformers"):  # transformers' loggers do not propagate to the root logger
        logging.getLogger(name).addHandler(recorder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kwargs = {"trust_remote_code": True} if route == "remote" else {}  # plain: the argument is not passed at all
        depth = pipeline("depth-estimation", model=folder, **kwargs)
        result = depth(Image.open(image_path))
    for name in ("", "transformers"):
        logging.getLogger(name).removeHandler(recorder)
    torch.save(result["predicted_depth"], f"{out_dir}/{route}.pt")
    report[route] = {
        "model": type(depth.model).__module__,
        "processor": type(depth.image_processor).__name__,
        "warnings": recorder.messages + [f"{w.category.__name__}: {w.message}" for w in caught],
    }
with open(f"{out_dir}/report.json", "w") as file:
    json.dump(report, file)
"""
PROMPT_MARKERS = ("[y/N]", "custom code")  # transformers' resolve_trust_remote_code prompt


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


def _run_under_terminal(command, env, cwd, timeout):
    """Runs `command` with a pseudo-terminal as stdin, stdout and stderr (as a user's shell would); returns
    (exit code, output). Stops early, with the output so far, if the process waits at a trust_remote_code prompt."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, env=env, cwd=cwd)
    os.close(follower)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the process closed the terminal (it exited)
                    chunk = b""
                if not chunk and process.poll() is not None:
                    break
                output += chunk
                if b"[y/N]" in output:
                    break  # it waits for an answer: that is the failure under test
            elif process.poll() is not None:
                break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        os.close(leader)
    return process.returncode, output.decode(errors="replace")


def run_fresh(folder, tmp_path, routes=("plain", "remote"), terminal=False):
    """Runs the pipeline routes in a fresh interpreter, with stdin closed or under a pseudo-terminal.

    Returns `{route: {"model", "processor", "warnings", "depth"}}`; fails if the process asked anything, printed a
    prompt or exited non-zero.
    """
    out = tmp_path / f"fresh_{'tty' if terminal else 'closed'}_{'_'.join(routes)}"
    out.mkdir(parents=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(out / "modules")}
    command = [sys.executable, "-c", FRESH_PROCESS, str(folder), str(PHOTO), str(out), ",".join(routes)]
    if terminal:
        returncode, output = _run_under_terminal(command, env, tmp_path, timeout=300)
    else:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                                cwd=tmp_path, timeout=300)
        returncode, output = result.returncode, result.stdout + result.stderr
    for marker in PROMPT_MARKERS:
        assert marker not in output, f"trust_remote_code prompt in a fresh process:\n{output[-3000:]}"
    assert returncode == 0, output[-3000:]
    report = json.loads((out / "report.json").read_text())
    for route in routes:
        report[route]["depth"] = torch.load(out / f"{route}.pt", weights_only=True)
    return report


def test_three_routes_agree(saved_folder, tmp_path):
    folder, model, processor = saved_folder
    image = Image.open(PHOTO)
    ours = pipeline("depth-estimation", model=model, image_processor=processor)(image)
    assert ours["predicted_depth"].shape == (image.height, image.width)
    assert ours["depth"].size == image.size

    routes = run_fresh(folder, tmp_path)  # stdin closed: a prompt would read EOF
    remote, plain = routes["remote"], routes["plain"]
    assert "transformers_modules" in remote["model"] and remote["processor"] == "DepthAnythingImageProcessor"
    torch.testing.assert_close(remote["depth"], ours["predicted_depth"], rtol=0, atol=0)

    assert plain["model"].startswith("transformers.models.depth_anything")
    assert "DPTImageProcessor" in plain["processor"]
    span = (ours["predicted_depth"].max() - ours["predicted_depth"].min()).item()
    assert span > 0.1
    # transformers' bicubic post-processing can dip below 0 at edges; ours clamps there and is otherwise identical.
    assert (plain["depth"].clamp(min=0) - ours["predicted_depth"]).abs().max().item() <= 1e-5 * span
    assert routes["plain"]["warnings"] == [] and routes["remote"]["warnings"] == []


def test_plain_route_never_prompts_under_a_terminal(saved_folder, tmp_path):
    """Issue 12 item 6: `pipeline("depth-estimation", model=FOLDER)` in plain transformers asked "Do you wish to run
    the custom code? [y/N]" (its video-processor lookup derived a remote class from the processor's auto_map).
    Under a terminal the prompt waits for an answer; here it must not appear, nor any warning, on either route."""
    folder, _, _ = saved_folder
    assert json.loads((folder / "video_preprocessor_config.json").read_text()) == {}
    routes = run_fresh(folder, tmp_path, terminal=True)
    assert routes["plain"]["model"].startswith("transformers.models.depth_anything")
    assert "DPTImageProcessor" in routes["plain"]["processor"]
    assert "transformers_modules" in routes["remote"]["model"]
    assert routes["remote"]["processor"] == "DepthAnythingImageProcessor"
    assert routes["plain"]["warnings"] == [] and routes["remote"]["warnings"] == []


def test_processor_keeps_an_existing_video_processor_config(tmp_path):
    (tmp_path / "video_preprocessor_config.json").write_text('{"video_processor_type": "SomeVideoProcessor"}')
    files = DepthAnythingImageProcessor().save_pretrained(tmp_path)
    assert json.loads((tmp_path / "video_preprocessor_config.json").read_text()) == {
        "video_processor_type": "SomeVideoProcessor"
    }
    assert str(tmp_path / "video_preprocessor_config.json") not in files


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
    assert (pushed / "video_preprocessor_config.json").exists()
    remote = run_fresh(pushed, tmp_path / "pushed", routes=("remote",))["remote"]["depth"]
    local = run_fresh(folder, tmp_path / "local", routes=("remote",))["remote"]["depth"]
    torch.testing.assert_close(remote, local, rtol=0, atol=0)
