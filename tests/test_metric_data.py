"""Metric data: Hypersim / Virtual KITTI 2 / rgbd readers on fake layouts, the synthetic metric stream, unit checks,
and the transform that keeps metres."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_depth_anything.data import DepthTransform, MixedBatchStream
from modeling_depth_anything.data.decode import BadSampleError, SampleStats
from modeling_depth_anything.data.metric import (
    HYPERSIM_FOCAL_LENGTH,
    OUT_OF_RANGE,
    MetricDepthTransform,
    check_metric_range,
    distance_to_planar_depth,
    median_depth,
    open_metric_source,
    parse_metric_source,
    read_hypersim_depth,
    synthetic_metric_stream,
)

ROOT = Path(__file__).resolve().parents[1]
H, W = 24, 32


def _rgb(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)


def _wall_distance(z: float, focal: float) -> np.ndarray:
    """Distance to the camera centre of a fronto-parallel wall at depth z: z * |ray| / f per pixel, (H, W)."""
    x = np.arange(W) + 0.5 - W / 2
    y = np.arange(H) + 0.5 - H / 2
    return (z * np.sqrt(x[None, :] ** 2 + y[:, None] ** 2 + focal**2) / focal).astype(np.float32)


def make_hypersim(root: Path) -> Path:
    """Two scenes, three frames: a wall at 3 m, a wall at 5 m with a NaN hole, one frame without its HDF5."""
    import h5py

    focal = HYPERSIM_FOCAL_LENGTH * W / 1024
    for scene, frame, z in (("ai_001_001", 0, 3.0), ("ai_001_001", 1, 5.0), ("ai_002_003", 0, None)):
        images = root / scene / "images"
        _rgb(images / "scene_cam_00_final_preview" / f"frame.{frame:04d}.tonemap.jpg", frame)
        if z is None:
            continue
        distance = _wall_distance(z, focal)
        distance[:4, :4] = np.nan  # Hypersim: NaN where no surface was hit
        (images / "scene_cam_00_geometry_hdf5").mkdir(parents=True, exist_ok=True)
        with h5py.File(images / "scene_cam_00_geometry_hdf5" / f"frame.{frame:04d}.depth_meters.hdf5", "w") as handle:
            handle.create_dataset("dataset", data=distance.astype(np.float16))
    return root


def make_vkitti2(root: Path, frames: int = 2) -> Path:
    """One camera, `frames` frames of 16-bit centimetre depth with a sky band (65535 = 655.35 m)."""
    for index in range(frames):
        frames = root / "Scene01" / "clone" / "frames"
        _rgb(frames / "rgb" / "Camera_0" / f"rgb_{index:05d}.jpg", index)
        depth = np.tile(np.linspace(200, 6000, W), (H, 1)).astype(np.uint16)  # 2 m .. 60 m in cm
        depth[:5] = 65535
        (frames / "depth" / "Camera_0").mkdir(parents=True, exist_ok=True)
        Image.fromarray(depth).save(frames / "depth" / "Camera_0" / f"depth_{index:05d}.png")
    return root


def _collect(source) -> list[dict]:
    """The decoded samples of a metric `Source`."""
    return list(source.decoded())


def test_distance_to_planar_depth_recovers_a_wall():
    depth = distance_to_planar_depth(_wall_distance(4.0, 20.0), focal_length=20.0)
    np.testing.assert_allclose(depth, 4.0, rtol=1e-6)
    with pytest.raises(ValueError, match="focal_length must be positive, got 0"):
        distance_to_planar_depth(np.ones((2, 2)), 0)


def test_hypersim_layout(tmp_path, caplog):
    root = make_hypersim(tmp_path / "hypersim")
    depth = read_hypersim_depth(root / "ai_001_001/images/scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5")
    np.testing.assert_allclose(depth[4:, 4:], 3.0, rtol=2e-3)  # float16 storage
    assert np.isnan(depth[:4, :4]).all()

    stats = SampleStats(name="hypersim")
    with caplog.at_level(logging.WARNING):
        samples = _collect(open_metric_source(f"hypersim:{root}", min_depth=1e-3, max_depth=20.0, stats=stats))
    assert [s["id"] for s in samples] == [
        "ai_001_001/images/scene_cam_00_final_preview/frame.0000.tonemap.jpg",
        "ai_001_001/images/scene_cam_00_final_preview/frame.0001.tonemap.jpg",
    ]
    assert samples[0]["depth"].shape == (H, W) and samples[0]["image"].size == (W, H)
    np.testing.assert_allclose(np.nanmedian(samples[1]["depth"]), 5.0, rtol=2e-3)
    # the frame without HDF5 is skipped, counted and reported with its file name
    assert stats.skipped == {"unreadable depth": 1}
    assert "ai_002_003/images/scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5" in caplog.text

    split = root / "train.txt"
    split.write_text(
        "ai_001_001/images/scene_cam_00_final_preview/frame.0001.tonemap.jpg "
        "ai_001_001/images/scene_cam_00_geometry_hdf5/frame.0001.depth_meters.hdf5\n"
    )
    only = _collect(open_metric_source(f"hypersim:{root}?split=train.txt", min_depth=1e-3, max_depth=20.0))
    assert len(only) == 1 and only[0]["id"].endswith("frame.0001.tonemap.jpg")


def test_vkitti2_layout_centimetres_and_sky(tmp_path):
    root = make_vkitti2(tmp_path / "vkitti2")
    samples = _collect(open_metric_source(f"vkitti2:{root}", min_depth=1e-3, max_depth=80.0))
    assert len(samples) == 2
    depth = samples[0]["depth"]
    assert np.isnan(depth[:5]).all()  # sky (655.35 m) is beyond max_depth: invalid
    np.testing.assert_allclose(depth[5:, 0], 2.0)
    np.testing.assert_allclose(depth[5:, -1], 60.0)


def test_shipped_rgbd_folders_are_metric_data():
    stats = SampleStats(name="rgbd")
    samples = _collect(open_metric_source(str(ROOT / "assets/rgbd"), min_depth=1e-3, max_depth=80.0, stats=stats))
    assert len(samples) == 10 and stats.num_skipped == 0
    for sample in samples:
        median = float(np.nanmedian(sample["depth"]))
        assert 0.3 < median < 30.0, (sample["id"], median)  # millimetre PNGs read as metres


def test_millimetres_fed_as_metres_are_detected(tmp_path, caplog):
    # depth.npy holds metres by convention; these hold millimetres (1500 = 1.5 m): every value > max_depth.
    for index in range(8):
        folder = tmp_path / "rgbd" / f"sample{index}"
        _rgb(folder / "image.png", index)
        np.save(folder / "depth.npy", np.full((H, W), 1500.0 + index, np.float32))
    good = tmp_path / "rgbd" / "sample9"
    _rgb(good / "image.png", 9)
    np.save(good / "depth.npy", np.full((H, W), 1.5, np.float32))
    stats = SampleStats(name="mm-as-m")
    with caplog.at_level(logging.WARNING):
        samples = _collect(open_metric_source(f"rgbd:{tmp_path / 'rgbd'}", 1e-3, 20.0, stats=stats))
    assert [s["id"] for s in samples] == ["sample9/image.png"]
    assert stats.skipped == {OUT_OF_RANGE: 8}
    assert "sample0/depth.npy: no depth inside [0.001, 20] m (median 1500); wrong unit?" in caplog.text
    assert "the whole stream looks mis-scaled" in caplog.text


def test_check_metric_range():
    depth = np.array([[0.0, np.nan, 2.0, 25.0]], np.float32)
    checked = check_metric_range(depth, 1e-3, 20.0, "x.png")
    assert np.isnan(checked[0, [0, 1, 3]]).all() and checked[0, 2] == 2.0
    with pytest.raises(BadSampleError, match="all-invalid depth: x.png"):
        check_metric_range(np.zeros((2, 2), np.float32), 1e-3, 20.0, "x.png")
    with pytest.raises(BadSampleError, match="depth out of range: x.png"):
        check_metric_range(np.full((2, 2), 0.0005, np.float32), 1e-3, 20.0, "x.png")


def test_synthetic_metric_stream_is_indoor_metres():
    samples = list(itertools.islice(synthetic_metric_stream(seed=3, size=(48, 64), max_depth=20.0), 3))
    for sample in samples:
        assert sample["scene"] == "room" and sample["depth"].shape == (48, 64)
        valid = sample["depth"][np.isfinite(sample["depth"])]
        assert valid.size > 0 and valid.min() > 0 and valid.max() <= 20.0
    cap = float(np.nanmedian(samples[0]["depth"]))  # pixels beyond max_depth become invalid, not clamped
    capped = next(iter(synthetic_metric_stream(seed=3, size=(48, 64), max_depth=cap)))["depth"]
    assert np.nanmax(capped) <= cap and np.isnan(capped).any()
    assert 0.5 < median_depth(synthetic_metric_stream(seed=3, size=(48, 64)), 3) < 15.0


def test_parse_metric_source_errors():
    assert parse_metric_source("synthetic") == ("synthetic", "", {})
    assert parse_metric_source("assets/rgbd") == ("rgbd", "assets/rgbd", {})
    assert parse_metric_source("hypersim:/d?focal_length=500") == ("hypersim", "/d", {"focal_length": "500"})
    with pytest.raises(ValueError, match="unknown metric source kind 'nyu'"):
        parse_metric_source("nyu:/data")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_metric_source("vkitti2:/no/such/folder", 1e-3, 80.0)
    with pytest.raises(ValueError, match="unknown option"):
        open_metric_source(f"rgbd:{ROOT / 'assets/rgbd'}?scale=2", 1e-3, 80.0)


def test_metric_transform_keeps_metres_and_depth_transform_geometry():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    depth = np.tile(np.linspace(1.0, 9.0, 60, dtype=np.float32), (40, 1))  # (40, 60): depth grows to the right
    depth[0, :] = np.nan
    sample = {"id": "a", "image": image, "depth": depth, "depth_kind": "depth", "sky_mask": None}
    for seed in range(6):  # some flipped, some not
        out = MetricDepthTransform(size=28, seed=seed)(sample, epoch=1)
        reference = DepthTransform(size=28, seed=seed)(sample, epoch=1)
        torch.testing.assert_close(out["pixel_values"], reference["pixel_values"], rtol=0, atol=0)
        torch.testing.assert_close(out["valid_mask"], reference["valid_mask"])
        values = out["depth"][out["valid_mask"]]
        assert values.min() >= 1.0 and values.max() <= 9.0  # metres, not a normalised disparity
        flipped = out["depth"][5, 0] > out["depth"][5, -1]
        assert bool(flipped) == bool(reference["disparity"][5, 0] < reference["disparity"][5, -1])
        assert (out["depth"][~out["valid_mask"]] == 0).all()


def test_mixed_batches_of_metric_samples_resume(tmp_path):
    root = make_vkitti2(tmp_path / "vkitti2", frames=5)

    def stream():
        sources = [
            open_metric_source("synthetic", 1e-3, 20.0, synthetic_size=(32, 40), synthetic_num_shards=2),
            open_metric_source(f"vkitti2:{root}", 1e-3, 80.0),
        ]
        return MixedBatchStream(
            {"labelled": sources}, batch_size=2, transforms=MetricDepthTransform(size=28), shuffle_buffer=4
        )

    first = stream()
    for _ in range(3):
        first.next_batch()
    state = first.state_dict()
    expected = first.next_batch()["labelled"]
    resumed = stream()
    resumed.load_state_dict(state)
    batch = resumed.next_batch()["labelled"]
    assert batch["depth"].shape == (2, 28, 28) and batch["ids"] == expected["ids"]
    torch.testing.assert_close(batch["depth"], expected["depth"])
