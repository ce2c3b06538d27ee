"""Issue 12's acceptance test for pseudo-labelling: a folder mixing good images with every bad kind (tiny, truncated,
zero-byte, text named .png, a 200-megapixel PNG) and unusual good ones (16-bit grey, CMYK) is labelled to the end,
every good image exactly once, every bad one listed with its reason, also across a `kill -9` and a restart; plus the
decoder behaviours behind it, in process.

The 200 MP image is a real 20000 x 10000 1-bit PNG written chunk by chunk (24 KB on disk, 0.2 s to make): PIL refuses
it from its header (`DecompressionBombError`), so the test exercises the real limit without lowering
`PIL.Image.MAX_IMAGE_PIXELS` or decoding 200 MP.
"""

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from modeling_depth_anything.data import BadSampleError, decode_image
from modeling_depth_anything.data.pseudo_labels import decode_disparity
from modeling_depth_anything.data.sources import load_pseudo_labels

ROOT = Path(__file__).resolve().parents[1]
BAD = {
    "tiny.png": "image too small",
    "truncated.png": "truncated image",
    "empty.jpg": "zero-size image",
    "text.png": "corrupt image",
    "huge.png": "image too large",
}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_huge_png(path: Path, width: int = 20000, height: int = 10000) -> None:
    """A valid 1-bit grey PNG of width x height pixels (all black), compressed to a few KB."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte "none" + the packed 1-bit pixels of one row
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, grey, no interlace
    data = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(row * height, 9)) + _chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)


def _rgb(seed: int, height: int = 40, width: int = 56) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def make_folder(folder: Path, good: int = 24) -> list[str]:
    """`good` ordinary images, a 16-bit grey PNG and a CMYK JPEG (good), and one of each bad kind; returns the good
    names."""
    folder.mkdir(parents=True)
    names = []
    for index in range(good):
        name = f"good_{index:02d}.{'png' if index % 2 else 'jpg'}"
        Image.fromarray(_rgb(index)).save(folder / name)
        names.append(name)
    grey = np.tile(np.linspace(0, 65535, 56), (40, 1)).astype(np.uint16)  # (40, 56) ramp over the full 16 bits
    Image.fromarray(grey).save(folder / "grey16.png")
    Image.fromarray(_rgb(99)).convert("CMYK").save(folder / "cmyk.jpg")
    Image.new("RGB", (5, 5)).save(folder / "tiny.png")
    buffer = io.BytesIO()
    Image.fromarray(_rgb(7, 64, 64)).save(buffer, "PNG")
    (folder / "truncated.png").write_bytes(buffer.getvalue()[:300])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image")
    write_huge_png(folder / "huge.png")
    return [*names, "grey16.png", "cmyk.jpg"]


# ----------------------------------------------------------------------------------------------------------------------
# The decoder, in process


def test_decoder_reasons_name_the_file_and_the_problem(tmp_path):
    make_folder(tmp_path / "photos", good=0)
    for name, reason in BAD.items():
        with pytest.raises(BadSampleError) as caught:
            decode_image(tmp_path / "photos" / name)
        assert caught.value.reason == reason and name in str(caught.value)
    with pytest.raises(BadSampleError, match=r"200,000,000 pixels, over the limit of 178,956,970"):
        decode_image(tmp_path / "photos" / "huge.png")
    with pytest.raises(BadSampleError, match="5x5 pixels"):
        decode_image(tmp_path / "photos" / "tiny.png")


def test_16_bit_grey_and_cmyk_decode_like_the_cli(tmp_path):
    """The training decoder used to clip 16-bit values at 255 (an almost white image); now it scales as the CLI."""
    from modeling_depth_anything.image_processing_depth_anything import to_rgb_float

    make_folder(tmp_path / "photos", good=0)
    grey = np.asarray(decode_image(tmp_path / "photos" / "grey16.png"))
    assert grey.shape == (40, 56, 3) and grey.dtype == np.uint8
    assert grey[0, 0].tolist() == [0, 0, 0] and grey[0, -1].tolist() == [255, 255, 255]
    assert abs(int(grey[0, 28, 0]) - 130) <= 2  # the middle of the ramp is mid-grey, not white
    cli = np.round(to_rgb_float(Image.open(tmp_path / "photos" / "grey16.png")) * 255)
    np.testing.assert_array_equal(grey, cli.astype(np.uint8))
    cmyk = decode_image(tmp_path / "photos" / "cmyk.jpg")
    assert cmyk.mode == "RGB" and cmyk.size == (56, 40)


def test_exif_rotated_labelled_image_keeps_its_depth_aligned(tmp_path):
    """The decoder returns upright images (EXIF orientation applied, as the CLI); a labelled image's depth map is
    stored in the raw pixel grid, so it is turned the same way."""
    from modeling_depth_anything.data import load_labelled

    image = np.zeros((30, 40, 3), np.uint8)
    image[:, :20] = 255  # left half white in the stored pixels
    depth = np.ones((30, 40), np.float32)
    depth[:, :20] = 2.0  # ... and at depth 2 there
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    import datasets

    rows = datasets.Dataset.from_dict({"image": [{"bytes": buffer.getvalue(), "path": None}], "depth": [depth]})
    rows = rows.cast_column("image", datasets.Image())
    (sample,) = list(load_labelled(rows))
    upright = np.asarray(sample["image"])[..., 0]
    assert upright.shape == (40, 30) and sample["depth"].shape == (40, 30)
    np.testing.assert_array_equal(upright > 127, sample["depth"] == 2.0)


# ----------------------------------------------------------------------------------------------------------------------
# The stage, as a user runs it


def _env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")


@pytest.fixture
def teacher(model_dir) -> Path:
    """The shared tiny model folder (conftest), as the stage's teacher."""
    return model_dir


def test_every_good_image_once_every_bad_one_listed_across_kill_9(tmp_path, teacher):
    folder, output = tmp_path / "photos", tmp_path / "pseudo"
    good = make_folder(folder)
    command = [
        sys.executable, "train/pseudo_label.py", "--teacher", str(teacher), "--unlabelled", str(folder),
        "--output_dir", str(output), "--inference_size", "112", "--per_device_batch_size", "1", "--shard_size", "1",
        "--cpu_threads", "1", "--mixed_precision", "no",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((output / "data").glob("*.parquet"))) < 3 and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    before = len(list((output / "data").glob("*.parquet")))
    assert 0 < before < len(good), f"the kill came too late to test anything:\n{stderr.decode()[-3000:]}"
    result = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(BAD)} skipped" in result.stdout
    ids = [i for p in sorted((output / "data").glob("*.parquet")) for i in pq.read_table(p)["source_id"].to_pylist()]
    assert sorted(ids) == sorted(good)  # exactly once: nothing lost to the kill, nothing twice
    skipped = {entry["id"]: entry for entry in json.loads((output / "skipped.json").read_text())}
    assert {name: entry["reason"] for name, entry in skipped.items()} == BAD
    assert "200,000,000 pixels" in skipped["huge.png"]["detail"] and "178,956,970" in skipped["huge.png"]["detail"]
    assert "5x5" in skipped["tiny.png"]["detail"]
    # the stored 16-bit image reads back as the teacher saw it, aligned with its label
    samples = {s["id"]: s for s in load_pseudo_labels(output)}
    assert samples["grey16.png"]["depth"].shape == (40, 56) and samples["grey16.png"]["image"].size == (56, 40)
    row = next(
        r
        for p in (output / "data").glob("*.parquet")
        for r in pq.read_table(p).to_pylist()
        if r["source_id"] == "cmyk.jpg"
    )
    assert row["image"]["bytes"] == (folder / "cmyk.jpg").read_bytes()  # the original file, untouched
    assert decode_disparity(row["disparity"]["bytes"], row["disparity_min"], row["disparity_max"]).shape == (40, 56)
