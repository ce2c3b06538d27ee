"""Point clouds in metres from a metric model (`depth-anything predict --formats ply`), as V2's depth_to_pointcloud.py:
z is the predicted metric depth, x and y follow from the focal length (`--focal-length`, else EXIF, else a 60 degree
field of view)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.cli import main
from modeling_depth_anything.inference.geometry import read_ply

HEIGHT, WIDTH = 28, 42


@pytest.fixture(scope="module")
def metric_model_dir(tmp_path_factory):
    """A tiny metric model (sigmoid x 20 m) whose output varies over the image."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("metric_model")
    model = DepthAnythingForDepthEstimation(
        DepthAnythingConfig.from_preset("tiny", depth_estimation_type="metric", max_depth=20)
    )
    with torch.no_grad():  # a random head outputs ~sigmoid(0); spread it over a few metres
        model.head.conv3.weight.mul_(1e4)
        model.head.conv3.bias.fill_(-1.0)
    model.save_pretrained(folder)
    DepthAnythingImageProcessor(size=HEIGHT).save_pretrained(folder)
    return folder


def _image(path, exif_focal_35mm: int | None = None):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    exif = Image.Exif()
    if exif_focal_35mm is not None:
        exif.get_ifd(0x8769)[0xA405] = exif_focal_35mm  # FocalLengthIn35mmFilm, in the Exif IFD
    image.save(path, exif=exif)
    return path


def _predict(model_dir, image, output, *extra) -> tuple[np.ndarray, np.ndarray]:
    argv = ["predict", str(image), "--model", str(model_dir), "--output", str(output), "--quiet"]
    assert main([*argv, "--formats", "ply", "npy", *extra]) == 0
    points, _ = read_ply(output / f"{image.stem}.ply")
    return points, np.load(output / f"{image.stem}_depth.npy")


def _pinhole(depth: np.ndarray, focal: float) -> np.ndarray:
    """Every pixel's (x, y, z) in metres, pixel centres, principal point at the centre (V2's depth_to_pointcloud.py
    uses the pixel corners, (u - W/2) / f: half a pixel apart)."""
    rows, columns = np.mgrid[0:HEIGHT, 0:WIDTH]
    x = (columns + 0.5 - WIDTH / 2) * depth / focal
    y = (rows + 0.5 - HEIGHT / 2) * depth / focal
    return np.stack([x, y, depth], axis=-1).reshape(-1, 3)  # (H * W, 3)


def test_cloud_is_in_metres_with_the_given_focal_length(metric_model_dir, tmp_path):
    image = _image(tmp_path / "room.png")
    points, depth = _predict(metric_model_dir, image, tmp_path / "out", "--focal-length", "35")
    assert depth.shape == (HEIGHT, WIDTH) and depth.min() > 0 and depth.max() <= 20.0 and depth.std() > 0.05
    np.testing.assert_allclose(points, _pinhole(depth, 35.0), rtol=1e-5, atol=1e-6)  # z = the metres predicted
    # A point cloud is a metric reconstruction: a 2 x focal length halves x and y, not z.
    doubled, _ = _predict(metric_model_dir, image, tmp_path / "out2", "--focal-length", "70")
    np.testing.assert_allclose(doubled[:, :2], points[:, :2] / 2, rtol=1e-5, atol=1e-6)


def test_focal_length_from_exif_then_field_of_view(metric_model_dir, tmp_path):
    tagged = _image(tmp_path / "tagged.jpg", exif_focal_35mm=28)
    points, depth = _predict(metric_model_dir, tagged, tmp_path / "exif")
    focal = 28 * math.hypot(WIDTH, HEIGHT) / math.hypot(36, 24)  # 35 mm equivalent over the frame diagonal
    np.testing.assert_allclose(points, _pinhole(depth, focal), rtol=1e-5, atol=1e-6)

    plain = _image(tmp_path / "plain.png")
    points, depth = _predict(metric_model_dir, plain, tmp_path / "fov")
    focal = (WIDTH / 2) / math.tan(math.radians(60) / 2)  # the default 60 degree horizontal field of view
    np.testing.assert_allclose(points, _pinhole(depth, focal), rtol=1e-5, atol=1e-6)


def test_metric_model_card_states_the_camera_intrinsics():
    from modeling_depth_anything.model_card import make_model_card

    metric = str(
        make_model_card(DepthAnythingConfig.from_preset("tiny", depth_estimation_type="metric", max_depth=20))
    )
    for needle in (
        "Point clouds in metres",
        "--focal-length",
        "FocalLengthIn35mmFilm",
        "60° horizontal field of view",
    ):
        assert needle in metric, needle
    assert "depth_m = processor.post_process_depth_estimation" in metric
    relative = str(make_model_card(DepthAnythingConfig.from_preset("tiny")))
    assert "Point clouds in metres" not in relative and "disparity = processor" in relative
