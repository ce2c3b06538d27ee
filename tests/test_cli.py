"""The `depth-anything` command: predict on folders and files, its error messages and exit codes (bad images,
output folders, write failures, malformed model files, broken videos), convert and evaluate forwarding."""

import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from modeling_depth_anything.cli import main


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
        code = main(
            [
                "predict",
                str(photos),
                "--model",
                str(model_dir),
                "--output",
                str(output),
                "--quiet",
                "--formats",
                "color",
                "npy",
                "--batch-size",
                "2",
            ]
        )
    assert code == 0
    assert sorted(path.name for path in output.iterdir()) == [
        "one_depth.npy",
        "one_depth.png",
        "two_depth.npy",
        "two_depth.png",
    ]
    assert np.load(output / "two_depth.npy").shape == (50, 30)
    assert "broken.jpg" in caplog.text and "not a readable image" in caplog.text
    assert "speck.png: 8x8 pixels is too small" in caplog.text


def test_predict_named_unreadable_image_fails(model_dir, photos, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        code = main(
            [
                "predict",
                str(photos / "broken.jpg"),
                str(photos / "one.png"),
                "--model",
                str(model_dir),
                "--output",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
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
    code = main(
        [
            "predict",
            str(video),
            str(image),
            "--model",
            str(model_dir),
            "--output",
            str(tmp_path / "out"),
            "--formats",
            "color",
            "ply",
            "--focal-length",
            "40",
            "--video-window",
            "3",
            "--quiet",
        ]
    )
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
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "missing.jpg: no such file or folder" in result.stderr


# ----------------------------------------------------------------------------------------------------------------------
# Bad input never costs work (issue 12): over-limit images, output folders, write failures, malformed model files,
# videos that stop decoding part-way.
# ----------------------------------------------------------------------------------------------------------------------


def test_over_limit_image_is_reported_and_the_others_written(model_dir, photos, tmp_path, caplog):
    # 200 megapixels in a 1-bit PNG (25 MB to build, a few kB on disk): over PIL's decompression-bomb limit.
    Image.new("1", (20000, 10000)).save(photos / "huge.png")
    output = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        code = main(["predict", str(photos), "--model", str(model_dir), "--output", str(output), "--quiet"])
    assert code == 0  # found in a folder: reported and skipped
    assert sorted(path.name for path in output.iterdir()) == ["one_depth.png", "two_depth.png"]
    lines = [line for line in caplog.text.splitlines() if "huge.png" in line and "megapixels" in line]
    assert len(lines) == 1 and "20000x10000 = 200.0 megapixels is over the limit of 179.0 megapixels" in lines[0]
    assert "--max-image-pixels" in lines[0]
    # The limit is the user's to set; a named file over it fails the run (exit 1) after the rest is written.
    caplog.clear()
    code = main(
        [
            "predict",
            str(photos / "one.png"),
            str(photos / "two.jpg"),
            "--model",
            str(model_dir),
            "--output",
            str(tmp_path / "limited"),
            "--max-image-pixels",
            "2000",
            "--quiet",
        ]
    )
    assert code == 1 and "one.png: 60x40 = 0.0 megapixels is over the limit of 0.0 megapixels" in caplog.text
    assert sorted(path.name for path in (tmp_path / "limited").iterdir()) == ["two_depth.png"]
    assert main(["predict", str(photos), "--model", str(model_dir), "--max-image-pixels", "-1"]) == 2


def test_output_folder_is_checked_before_the_model_is_loaded(photos, tmp_path, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    # The model does not exist either: the output folder is checked first, so that is the error reported.
    code = main(["predict", str(photos), "--model", str(tmp_path / "no-model"), "--output", str(blocker / "out")])
    assert code == 2
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == [
        f"{blocker / 'out'}: cannot use this output folder: {blocker} above it is a regular file, not a folder"
    ]
    assert main(["predict", str(photos), "--model", str(tmp_path / "no-model"), "--output", str(blocker)]) == 2
    assert "a_file: cannot use this output folder: it is a regular file" in caplog.text


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_output_folder(photos, tmp_path, caplog):
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert main(["predict", str(photos), "--model", str(tmp_path / "no-model"), "--output", str(folder)]) == 2
        assert "read_only: the output folder is not writable" in caplog.text
    finally:
        folder.chmod(0o700)


def test_write_failure_for_one_input_lets_the_others_finish(model_dir, photos, tmp_path, caplog):
    output = tmp_path / "out"
    (output / "one_depth.png").mkdir(parents=True)  # a folder where one output file should go
    with caplog.at_level(logging.WARNING):
        code = main(
            [
                "predict",
                str(photos),
                "--model",
                str(model_dir),
                "--output",
                str(output),
                "--quiet",
                "--formats",
                "color",
                "npy",
            ]
        )
    assert code == 1
    assert "one.png: cannot write its outputs" in caplog.text and "one_depth.png" in caplog.text
    assert (output / "two_depth.png").is_file() and (output / "two_depth.npy").is_file()
    assert (output / "one_depth.png").is_dir()  # left as it was


def test_malformed_processor_config_names_the_file(model_dir, photos, tmp_path, caplog):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    text = (folder / "preprocessor_config.json").read_text()
    (folder / "preprocessor_config.json").write_text(text.rstrip()[:-1])  # the closing brace lost
    output = tmp_path / "out"
    code = main(["predict", str(photos), "--model", str(folder), "--output", str(output)])
    assert code == 2
    message = next(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert message.startswith(f"{folder / 'preprocessor_config.json'}: invalid JSON (Expecting")
    assert "line" in message and "column" in message
    assert not any(output.iterdir())  # nothing predicted at the default 518 px


def test_config_errors_name_the_model_folder(model_dir, photos, tmp_path, caplog):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "depth_estimation_type": "absolute"}))
    assert main(["predict", str(photos), "--model", str(folder), "--output", str(tmp_path / "out")]) == 2
    assert f"{folder / 'config.json'}: depth_estimation_type must be" in caplog.text
    (folder / "config.json").write_text('{"model_type": "depth_anything",')
    assert main(["predict", str(photos), "--model", str(folder), "--output", str(tmp_path / "out")]) == 2
    assert f"{folder / 'config.json'}: invalid JSON" in caplog.text


def _video_broken_after(path, frames=30, height=28, width=42):
    """An MPEG-4 video with its index at the front whose middle bytes are zeroed: some frames decode, then an error."""
    import av

    container = av.open(str(path), mode="w", options={"movflags": "faststart"})
    stream = container.add_stream("mpeg4", rate=5)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    rng = np.random.default_rng(0)
    for _ in range(frames):
        frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + bytes(len(data) // 4) + data[3 * len(data) // 4 :])


def test_video_corrupted_mid_stream_keeps_its_frames(model_dir, tmp_path, caplog):
    from modeling_depth_anything.inference import read_video

    video = tmp_path / "clip.mp4"
    _video_broken_after(video)
    decodable = 0
    with pytest.raises(ValueError, match="video decoding failed"):
        for _ in read_video(video)[0]:
            decodable += 1
    assert 0 < decodable < 30
    output = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        code = main(
            [
                "predict",
                str(video),
                "--model",
                str(model_dir),
                "--output",
                str(output),
                "--quiet",
                "--formats",
                "color",
                "npy",
            ]
        )
    assert code == 1  # a named input was only partly processed
    expected = (
        f"clip.mp4: partial: {decodable} frames written (decoding stopped after frame {decodable}: video decoding"
    )
    assert expected in caplog.text
    frames, _, _ = read_video(output / "clip_depth.mp4")
    assert len(list(frames)) == decodable
    assert len(list((output / "clip_frames").glob("frame_*_depth.npy"))) == decodable


def test_evaluate_forwards_to_the_runner(monkeypatch):
    from modeling_depth_anything.evaluation import runner

    seen = {}
    monkeypatch.setattr(runner, "main", lambda argv: seen.setdefault("argv", argv) and 0)
    argv = ["--model", "baseline:vertical", "--benchmark", "synthetic:?count=2", "--output", "x", "--help"]
    assert main(["evaluate", *argv]) == 0
    assert seen["argv"] == argv
