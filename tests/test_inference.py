"""Inference pieces: loading, batching by size, every output format, point clouds, the video path."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.inference import (
    DepthEstimator,
    DepthPrediction,
    OutputWriter,
    VideoRangeTracker,
    VideoWriter,
    collect_inputs,
    colorize,
    cpu_supports_bf16,
    depth_to_points,
    focal_length_from_fov,
    load_model_and_processor,
    predict_video,
    read_ply,
    read_video,
    relative_disparity_to_depth,
    resolve_precision,
    robust_range,
)


@pytest.fixture(scope="module")
def estimator(model_dir):
    return DepthEstimator.from_pretrained(model_dir, device="cpu", fast=False, batch_size=2)


def _image(height, width, seed=0):
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


def _prediction(height=20, width=30, metric=False):
    depth = np.linspace(0.5, 5.0, height * width, dtype=np.float32).reshape(height, width)
    return DepthPrediction(depth=depth, image=_image(height, width), is_metric=metric, name="x")


def test_load_model_and_processor(model_dir):
    model, processor = load_model_and_processor(model_dir, input_size=42)
    assert isinstance(model, DepthAnythingForDepthEstimation)
    assert processor.size == 42


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        load_model_and_processor(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model_and_processor(tmp_path)


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == torch.float32
    assert resolve_precision("auto", cpu) == (torch.bfloat16 if cpu_supports_bf16() else torch.float32)
    with pytest.raises(ValueError, match="'half'"):
        resolve_precision("half", cpu)
    with pytest.raises(ValueError, match="float16"):
        resolve_precision("float16", cpu)


def test_batching_by_size_matches_single_images(estimator):
    images = [_image(40, 60, 1), _image(60, 40, 2), _image(40, 60, 3)]
    batched = estimator.predict_arrays(images)
    assert [result.depth.shape for result in batched] == [(40, 60), (60, 40), (40, 60)]
    for image, result in zip(images, batched, strict=True):
        (alone,) = estimator.predict_arrays([image])
        np.testing.assert_allclose(result.depth, alone.depth, rtol=1e-4, atol=1e-7)
        assert result.depth.dtype == np.float32 and (result.depth >= 0).all()


def test_fast_path_agrees_with_fp32(model_dir, estimator):
    fast = DepthEstimator.from_pretrained(model_dir, device="cpu", precision="bfloat16", fast=True)
    assert next(fast.model.parameters()).dtype == torch.bfloat16
    image = _image(56, 70)
    (reference,) = estimator.predict_arrays([image])
    (result,) = fast.predict_arrays([image])
    value_range = reference.depth.max() - reference.depth.min()
    assert np.abs(result.depth - reference.depth).max() <= 0.05 * value_range


def test_collect_inputs(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.png", "b.jpg", "sub/c.png", "notes.txt", "a.jpg"):
        (tmp_path / name).write_bytes(b"x")
    items = collect_inputs([str(tmp_path)])
    assert [item.path.name for item in items] == ["a.jpg", "a.png", "b.jpg"]  # not notes.txt, not sub/
    assert [str(item.relative) for item in items] == ["a", "a_1", "b"]  # same stem: no overwrite
    assert not any(item.explicit for item in items)
    assert len(collect_inputs([str(tmp_path)], recursive=True)) == 4
    assert len(collect_inputs([str(tmp_path / "*.png")])) == 1
    explicit = collect_inputs([str(tmp_path / "b.jpg")])
    assert explicit[0].explicit
    with pytest.raises(FileNotFoundError, match="missing.png"):
        collect_inputs([str(tmp_path / "missing.png")])
    with pytest.raises(FileNotFoundError, match="matches no"):
        collect_inputs([str(tmp_path / "*.webp")])


def test_every_output_format(tmp_path):
    prediction = _prediction()
    writer = OutputWriter(tmp_path, formats=["color", "png16", "npy", "side_by_side", "ply"], focal_length=25.0)
    written = writer.write(prediction, "sub/name")
    names = sorted(path.name for path in written)
    assert names == ["name.ply", "name_depth.npy", "name_depth.png", "name_depth16.png", "name_side_by_side.png"]

    color = np.asarray(Image.open(tmp_path / "sub/name_depth.png"))
    assert color.shape == (20, 30, 3) and color.dtype == np.uint8
    png16 = Image.open(tmp_path / "sub/name_depth16.png")
    values = np.asarray(png16)
    assert png16.mode.startswith("I;16") and values.min() == 0 and values.max() == 65535
    assert values[-1, -1] == 65535  # relative: large disparity (near) is white
    np.testing.assert_array_equal(np.load(tmp_path / "sub/name_depth.npy"), prediction.depth)
    assert np.asarray(Image.open(tmp_path / "sub/name_side_by_side.png")).shape == (20, 2 * 30 + 8, 3)
    points, colors = read_ply(tmp_path / "sub/name.ply")
    assert points.shape == (600, 3) and colors.shape == (600, 3) and colors.dtype == np.uint8


def test_metric_outputs_in_metres(tmp_path):
    prediction = _prediction(metric=True)
    writer = OutputWriter(tmp_path, formats=["png16", "ply"], focal_length=30.0)
    writer.write(prediction, "metric")
    millimetres = np.asarray(Image.open(tmp_path / "metric_depth16.png")).astype(np.float32)
    np.testing.assert_allclose(millimetres, np.round(prediction.depth * 1000), atol=0.5)
    points, _ = read_ply(tmp_path / "metric.ply")
    np.testing.assert_allclose(np.sort(points[:, 2]), np.sort(prediction.depth.ravel()), rtol=1e-6)


def test_colormap_selection():
    values = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    spectral, gray = colorize(values), colorize(values, "gray")
    assert not np.array_equal(spectral, gray)
    assert (gray[..., 0] == gray[..., 1]).all()
    assert tuple(spectral[-1, -1]) != tuple(spectral[0, 0])
    with pytest.raises(ValueError, match="'no-such-map'"):
        colorize(values, "no-such-map")
    with pytest.raises(ValueError, match="formats"):
        OutputWriter("unused", formats=["jpeg"])
    assert robust_range(np.ones((4, 4))) == (1.0, 2.0)  # constant map: no NaN


def test_relative_disparity_to_depth_and_points():
    disparity = np.array([[0.0, 1.0], [2.0, 4.0]], dtype=np.float32)
    depth = relative_disparity_to_depth(disparity, depth_ratio=10.0)
    assert depth[1, 1] == pytest.approx(1.0, rel=0.05)  # nearest -> 1
    assert depth[0, 0] == pytest.approx(10.0, rel=0.05)  # farthest -> depth_ratio
    assert (np.diff(depth.ravel()) < 0).all()  # more disparity, less depth
    with pytest.raises(ValueError):
        relative_disparity_to_depth(disparity, depth_ratio=1.0)

    points, pixels = depth_to_points(np.full((2, 4), 2.0, dtype=np.float32), focal_length=2.0)
    assert points.shape == (8, 3) and pixels.shape == (8, 2)
    np.testing.assert_allclose(points[:, 2], 2.0)
    np.testing.assert_allclose(points[0, :2], [(0.5 - 2) * 2 / 2, (0.5 - 1) * 2 / 2])  # top-left pixel
    assert focal_length_from_fov(100, 90.0) == pytest.approx(50.0)
    assert focal_length_from_fov(100) == pytest.approx(50 / math.tan(math.radians(30)))


def test_video_range_tracker_ignores_one_outlier_frame():
    tracker = VideoRangeTracker(window=8)
    ready = []
    for index in range(20):
        values = np.linspace(0, 1, 100) * (10.0 if index == 10 else 1.0)  # one frame with a 10x larger scale
        ready += tracker.push(values, index)
    ready += tracker.flush()
    assert [payload for payload, _ in ready] == list(range(20))
    highs = [value_range[1] for _, value_range in ready]
    assert max(highs) == pytest.approx(min(highs))  # the outlier frame does not move the shared range
    with pytest.raises(ValueError, match="window"):
        VideoRangeTracker(window=0)


def _make_video(path, frames=5, height=36, width=48):
    writer = VideoWriter(path, fps=5)
    for index in range(frames):
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        frame[:, : 8 + 6 * index] = (200, 120, 40)  # a bar that grows
        writer.write(frame)
    writer.close()


def test_video_path(tmp_path, estimator):
    video = tmp_path / "clip.mp4"
    _make_video(video)
    frames, fps, _ = read_video(video)
    assert len(list(frames)) == 5 and fps == pytest.approx(5)
    writer = OutputWriter(tmp_path / "out", formats=["color", "side_by_side", "npy"])
    result = predict_video(estimator, video, writer, "clip", window=4)
    assert result["frames"] == 5
    color_frames, _, _ = read_video(tmp_path / "out/clip_depth.mp4")
    assert [frame.shape for frame in color_frames] == [(36, 48, 3)] * 5
    side, _, _ = read_video(tmp_path / "out/clip_side_by_side.mp4")
    assert next(side).shape == (36, 2 * 48 + 8, 3)
    assert sorted(path.name for path in (tmp_path / "out/clip_frames").iterdir())[0] == "frame_000000_depth.npy"
    assert len(list((tmp_path / "out/clip_frames").iterdir())) == 5


def test_unreadable_video(tmp_path, estimator):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="bad.mp4"):
        predict_video(estimator, bad, OutputWriter(tmp_path / "out"), "bad")


def test_metric_model_predicts_metres(tmp_path):
    torch.manual_seed(0)
    config = DepthAnythingConfig.from_preset("tiny", depth_estimation_type="metric", max_depth=20)
    DepthAnythingForDepthEstimation(config).save_pretrained(tmp_path)
    DepthAnythingImageProcessor(size=28).save_pretrained(tmp_path)
    estimator = DepthEstimator.from_pretrained(tmp_path, device="cpu", fast=False)
    (result,) = estimator.predict_arrays([_image(28, 42)])
    assert estimator.is_metric and result.is_metric
    assert result.depth.shape == (28, 42) and result.depth.min() > 0 and result.depth.max() <= 20


def test_matmul_attention_matches_sdpa():
    from modeling_depth_anything.inference import matmul_attention

    query, key, value = (torch.randn(2, 3, 50, 16) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value).transpose(1, 2)
    output, weights = matmul_attention(None, query, key, value, None)
    assert weights is None and output.shape == (2, 50, 3, 16)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)


def test_truncated_video_is_partial(tmp_path, estimator):
    import av

    video = tmp_path / "cut.mp4"
    container = av.open(str(video), mode="w", options={"movflags": "faststart"})  # the index (30 frames) first
    stream = container.add_stream("mpeg4", rate=5)
    stream.width, stream.height, stream.pix_fmt = 42, 28, "yuv420p"
    rng = np.random.default_rng(0)
    for _ in range(30):
        frame = rng.integers(0, 255, (28, 42, 3), dtype=np.uint8)  # noise: the frames, not the index, fill the file
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    result = predict_video(estimator, video, OutputWriter(tmp_path / "out", formats=["npy"]), "cut")
    assert 0 < result["frames"] < 30
    assert result["partial"] == f"the file announces 30 frames, only {result['frames']} could be decoded (truncated?)"
    assert len(list((tmp_path / "out/cut_frames").iterdir())) == result["frames"]
    complete = tmp_path / "complete.mp4"
    _make_video(complete)
    assert predict_video(estimator, complete, OutputWriter(tmp_path / "out2"), "c")["partial"] is None
