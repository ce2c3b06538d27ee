"""The `depth-anything` command: predict on folders and files, its error messages and exit codes, convert forwarding."""

import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny")).save_pretrained(folder)
    DepthAnythingImageProcessor(size=56).save_pretrained(folder)
    return folder


@pytest.fixture
def photos(tmp_path):
    """A folder with two good images of different sizes and one corrupt .jpg."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / "one.png")
    Image.fromarray(rng.integers(0, 255, (50, 30, 3), dtype=np.uint8)).save(folder / "two.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / "speck.png")  # smaller than one patch
    return folder


def test_predict_folder_skips_bad_file(model_dir, photos, tmp_path, caplog):
    output = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        code = main(["predict", str(photos), "--model", str(model_dir), "--output", str(output), "--quiet",
                     "--formats", "color", "npy", "--batch-size", "2"])
    assert code == 0
    assert sorted(path.name for path in output.iterdir()) == [
        "one_depth.npy", "one_depth.png", "two_depth.npy", "two_depth.png",
    ]
    assert np.load(output / "two_depth.npy").shape == (50, 30)
    assert "broken.jpg" in caplog.text and "not a readable image" in caplog.text
    assert "speck.png: 8x8 pixels is too small" in caplog.text


def test_predict_named_unreadable_image_fails(model_dir, photos, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        code = main(["predict", str(photos / "broken.jpg"), str(photos / "one.png"), "--model", str(model_dir),
                     "--output", str(tmp_path / "out"), "--quiet"])
    assert code == 1  # a file the user named failed; the other one is still written
    assert (tmp_path / "out" / "one_depth.png").is_file()
    assert "broken.jpg: not a readable image" in caplog.text


def test_predict_missing_input(model_dir, tmp_path, caplog):
    code = main(["predict", str(tmp_path / "nope.png"), "--model", str(model_dir), "--output", str(tmp_path)])
    assert code == 2
    assert "nope.png: no such file or folder" in caplog.text


def test_predict_unknown_model(photos, tmp_path, caplog):
    code = main(["predict", str(photos), "--model", str(tmp_path / "no-model"), "--output", str(tmp_path / "o")])
    assert code == 2
    assert "no-model: model folder not found" in caplog.text
    code = main(["predict", str(photos), "--model", str(photos), "--output", str(tmp_path / "o")])
    assert code == 2
    assert "no config.json" in caplog.text


def test_predict_bad_option_values(model_dir, photos, tmp_path, caplog):
    assert main(["predict", str(photos), "--model", str(model_dir), "--batch-size", "0"]) == 2
    assert "--batch-size must be positive, got 0" in caplog.text
    assert main(["predict", str(photos), "--model", str(model_dir), "--cmap", "nope", "-o", str(tmp_path)]) == 2
    assert "unknown matplotlib colormap 'nope'" in caplog.text


def test_predict_video_and_ply(model_dir, tmp_path):
    from modeling_depth_anything.inference import VideoWriter

    video = tmp_path / "clip.mp4"
    writer = VideoWriter(video, fps=4)
    for index in range(4):
        writer.write(np.full((28, 42, 3), 40 * index, dtype=np.uint8))
    writer.close()
    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(image)
    code = main(["predict", str(video), str(image), "--model", str(model_dir), "--output", str(tmp_path / "out"),
                 "--formats", "color", "ply", "--focal-length", "40", "--video-window", "3", "--quiet"])
    assert code == 0
    assert (tmp_path / "out" / "clip_depth.mp4").stat().st_size > 0
    assert len(list((tmp_path / "out" / "clip_frames").glob("*.ply"))) == 4
    assert (tmp_path / "out" / "img.ply").is_file()


def test_convert_forwards_arguments(monkeypatch):
    from modeling_depth_anything import convert

    seen = {}

    def fake_main(argv):
        seen["argv"] = argv
        return 0

    monkeypatch.setattr(convert, "main", fake_main)
    argv = ["--checkpoint", "a.pth", "--output", "out", "--preset", "v2-small"]
    assert main(["convert", *argv]) == 0
    assert seen["argv"] == argv


def test_console_script_exit_code(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "modeling_depth_anything.cli", "predict", str(tmp_path / "missing.jpg")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "missing.jpg: no such file or folder" in result.stderr
