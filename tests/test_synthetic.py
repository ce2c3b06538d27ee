"""Procedural synthetic scenes: exact geometry, determinism, the `datasets` stream, resume, sharding, speed."""

import math

import numpy as np
import pytest
from datasets.distributed import split_dataset_by_node
from PIL import Image

from modeling_depth_anything.data.synthetic import (
    SCENE_KINDS,
    Box,
    Cylinder,
    GroundPlane,
    Material,
    Sphere,
    SyntheticConfig,
    render_sample,
    save_grid,
    synthetic_stream,
)

SMALL = SyntheticConfig(height=32, width=48)


def _material():
    return Material(np.array([0.5, 0.5, 0.5], np.float32), np.array([0.2, 0.2, 0.2], np.float32))


def _rays(directions):
    """(N, 3) directions -> three (1, N) arrays, as the renderer passes them."""
    directions = np.asarray(directions, np.float32)
    return [directions[None, :, axis] for axis in range(3)]


def test_primitives_give_exact_z_depth():
    origin = (0.0, 1.0, 0.0)
    # rays with optical component 1: (x, y, 1) -> t is the z-depth
    dx, dy, dz = _rays([[0.0, 0.0, 1.0], [0.1, -0.05, 1.0], [0.0, -0.5, 1.0]])
    sphere = Sphere(np.array([0.0, 1.0, 5.0]), 1.0, _material())
    assert sphere.intersect(origin, dx, dy, dz)[0, 0] == pytest.approx(4.0, abs=1e-5)
    box = Box(np.array([0.0, 1.0, 6.0]), np.array([1.0, 1.0, 1.0]), 0.0, _material())
    assert box.intersect(origin, dx, dy, dz)[0, 0] == pytest.approx(5.0, abs=1e-5)
    rotated = Box(np.array([0.0, 1.0, 6.0]), np.array([1.0, 1.0, 1.0]), math.pi / 4, _material())
    assert rotated.intersect(origin, dx, dy, dz)[0, 0] == pytest.approx(6.0 - math.sqrt(2.0), abs=1e-5)
    cylinder = Cylinder(0.0, 4.0, 0.5, 0.0, 3.0, _material())
    assert cylinder.intersect(origin, dx, dy, dz)[0, 0] == pytest.approx(3.5, abs=1e-5)
    ground = GroundPlane(_material())
    t = ground.intersect(origin, dx, dy, dz)[0]
    assert math.isinf(t[0])  # looking at the horizon never hits the ground
    assert t[2] == pytest.approx(2.0, abs=1e-5)  # height 1, slope 0.5 -> z = 2
    room = Box(np.array([0.0, 1.5, 0.0]), np.array([2.0, 1.5, 3.0]), 0.0, _material(), inside=True)
    assert room.intersect(origin, dx, dy, dz)[0, 0] == pytest.approx(3.0, abs=1e-5)  # far wall from inside


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_every_scene_kind_renders(kind):
    config = SyntheticConfig(height=32, width=48, scene_kinds=(kind,))
    sample = render_sample(seed=3, index=1, config=config)
    assert sample["image"].shape == (32, 48, 3) and sample["image"].dtype == np.uint8
    assert sample["depth"].shape == (32, 48) and sample["depth"].dtype == np.float32
    assert sample["scene"] == kind
    depth, sky = sample["depth"], sample["sky_mask"]
    assert np.isfinite(depth).all()
    assert (depth[~sky] > 0).all() and (depth[sky] == 0).all()
    assert (~sky).mean() > 0.2  # something is in view
    if kind == "room":
        assert not sky.any()


def test_render_is_deterministic_per_seed_and_index():
    first, again = render_sample(7, 2, config=SMALL), render_sample(7, 2, config=SMALL)
    other = render_sample(7, 3, config=SMALL)
    np.testing.assert_array_equal(first["image"], again["image"])
    np.testing.assert_array_equal(first["depth"], again["depth"])
    assert first["id"] == "synthetic-7-0-2"
    assert not np.array_equal(first["depth"], other["depth"])


def test_depth_cues_ground_gets_farther_towards_the_horizon():
    """Over many outdoor samples, the lower image rows are nearer than the upper ones (ground-plane cue)."""
    config = SyntheticConfig(height=32, width=32, scene_kinds=("objects",))
    closer = 0
    for index in range(8):
        depth = render_sample(0, index, config=config)["depth"]
        bottom, middle = depth[-4:], depth[12:20]
        closer += np.median(bottom[bottom > 0]) < np.median(middle[middle > 0]) if (middle > 0).any() else 1
    assert closer >= 7


def test_config_validation_quotes_bad_values():
    with pytest.raises(ValueError, match="'sea'"):
        SyntheticConfig(scene_kinds=("sea",))
    with pytest.raises(ValueError, match="4"):
        SyntheticConfig(height=4)
    with pytest.raises(ValueError, match="170"):
        SyntheticConfig(fov_range_deg=(40.0, 170.0))


def test_stream_yields_samples_and_is_reproducible():
    stream = synthetic_stream(seed=1, size=(28, 42), num_shards=2, samples_per_shard=2)
    samples = list(stream)
    assert [s["id"] for s in samples] == ["synthetic-1-0-0", "synthetic-1-0-1", "synthetic-1-1-0", "synthetic-1-1-1"]
    sample = samples[0]
    assert isinstance(sample["image"], Image.Image) and sample["image"].size == (42, 28)
    assert sample["depth"].shape == (28, 42) and sample["sky_mask"].shape == (28, 42)
    assert sample["depth_kind"] == "depth"
    np.testing.assert_array_equal(list(stream)[3]["depth"], samples[3]["depth"])


def test_stream_resumes_from_state_dict():
    stream = synthetic_stream(seed=0, size=(16, 16), num_shards=2, samples_per_shard=3)
    full = [s["id"] for s in stream]
    resumed = synthetic_stream(seed=0, size=(16, 16), num_shards=2, samples_per_shard=3)
    iterator = iter(resumed)
    head = [next(iterator)["id"] for _ in range(4)]
    state = resumed.state_dict()
    fresh = synthetic_stream(seed=0, size=(16, 16), num_shards=2, samples_per_shard=3)
    fresh.load_state_dict(state)
    assert head + [s["id"] for s in fresh] == full


def test_endless_stream_shards_are_disjoint_between_processes():
    stream = synthetic_stream(seed=0, size=(16, 16), num_shards=4)
    ids = []
    for rank in range(2):
        iterator = iter(split_dataset_by_node(stream, rank=rank, world_size=2))
        ids.append({next(iterator)["id"] for _ in range(3)})
    assert not ids[0] & ids[1]


def test_grid_picture(tmp_path):
    path = tmp_path / "grid.png"
    save_grid(str(path), rows=1, cols=2, size=24)
    assert Image.open(path).size[1] == 28
