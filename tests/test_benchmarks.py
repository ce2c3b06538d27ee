"""modeling_depth_anything/evaluation/benchmarks.py: every adapter on a tiny fake layout (tests/fixtures/eval/layouts.py), crops and caps, bad input."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modeling_depth_anything.evaluation.benchmarks import (
    DEFAULT_BENCHMARK,
    BadSampleError,
    DA2KBenchmark,
    DepthBenchmark,
    eigen_crop_mask,
    garg_crop_mask,
    load_benchmark,
    parse_spec,
)

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("eval_layouts", ROOT / "tests" / "fixtures" / "eval" / "layouts.py")
layouts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layouts)


def samples(benchmark):
    return list(benchmark.iter_samples())


def test_shipped_default_benchmark():
    benchmark = load_benchmark(DEFAULT_BENCHMARK)
    assert isinstance(benchmark, DepthBenchmark) and len(benchmark) == 10
    assert (ROOT / "assets" / "rgbd" / "LICENSES.md").is_file()
    sample = benchmark[benchmark.entries.index(next(e for e in benchmark.entries if e.id == "tum_open3d"))]
    assert sample.image.shape == (480, 640, 3) and sample.depth.dtype == np.float32
    assert sample.mask.mean() == pytest.approx(0.8081, abs=1e-3)  # meta.json valid_fraction
    assert sample.depth[sample.mask].max() == pytest.approx(9.331, abs=1e-3)


def test_rgbd_folder_and_bad_samples(tmp_path):
    root = layouts.make_rgbd(tmp_path / "rgbd", count=3)
    (root / "s1" / "depth.png").unlink()  # missing ground truth
    layouts.save_png16(root / "s2" / "depth.png", np.ones((10, 10)), 0.001)  # wrong size
    items = samples(load_benchmark(f"rgbd:{root}"))
    assert isinstance(items[0], tuple) and items[0].mask[0, 0] == False  # noqa: E712 (zero depth = invalid)
    assert isinstance(items[1], BadSampleError) and "missing ground-truth depth file" in str(items[1])
    assert str(root / "s1" / "depth.png") in str(items[1])
    assert isinstance(items[2], BadSampleError) and "does not match image size" in str(items[2])
    layouts.save_png16(root / "s2" / "depth.png", np.zeros((28, 42)), 0.001)  # all invalid
    items = samples(load_benchmark(f"rgbd:{root}"))
    assert isinstance(items[2], BadSampleError) and "no valid depth" in str(items[2])


def test_rgbd_8_bit_depth_png_is_refused_naming_the_file_and_bad_samples_are_the_data_paths(tmp_path):
    """One reader of the RGB-D layout (data/rgbd.py) for training and evaluation, one BadSampleError class."""
    from modeling_depth_anything.data import BadSampleError as DataBadSampleError
    from modeling_depth_anything.data import load_rgbd_folder

    assert BadSampleError is DataBadSampleError
    root = layouts.make_rgbd(tmp_path / "rgbd", count=2)
    Image.fromarray(np.full((28, 42), 200, np.uint8)).save(root / "s1" / "depth.png")  # 8 bits: not millimetres
    items = samples(load_benchmark(f"rgbd:{root}"))
    assert isinstance(items[1], BadSampleError) and items[1].reason == "8-bit depth PNG"
    assert items[1].sample_id == "s1" and str(root / "s1" / "depth.png") in str(items[1])
    training = list(load_rgbd_folder(root))  # the training path skips and counts the same sample
    assert [sample["id"] for sample in training] == ["s0"]


def test_empty_and_malformed_specs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty benchmark"):
        load_benchmark(f"rgbd:{tmp_path / 'empty'}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_benchmark(f"nyu:{tmp_path / 'nowhere'}")
    with pytest.raises(ValueError, match="unknown benchmark kind"):
        load_benchmark("midas:x")
    with pytest.raises(ValueError, match="KIND:PATH"):
        load_benchmark("assets/rgbd")
    with pytest.raises(ValueError, match="unknown option"):
        load_benchmark(f"{DEFAULT_BENCHMARK}?colour=red")
    with pytest.raises(ValueError, match="min_depth"):
        load_benchmark(f"{DEFAULT_BENCHMARK}?min_depth=5&max_depth=2")
    assert parse_spec("diode:/d/val?split=indoors&limit=3") == ("diode", "/d/val", {"split": "indoors", "limit": "3"})


def test_options_limit_and_range():
    benchmark = load_benchmark(f"{DEFAULT_BENCHMARK}?limit=2&max_depth=2.5")
    assert len(benchmark) == 2 and benchmark.max_depth == 2.5
    assert all(s.depth[s.mask].max() <= 2.5 for s in samples(benchmark))


def test_nyu_eigen_crop_and_cap(tmp_path):
    benchmark = load_benchmark(f"nyu:{layouts.make_nyu(tmp_path / 'nyu')}")
    assert (benchmark.min_depth, benchmark.max_depth, len(benchmark)) == (1e-3, 10.0, 2)
    sample = benchmark[0]
    assert not sample.mask[:45].any() and not sample.mask[471:].any() and not sample.mask[:, 601:].any()
    assert sample.depth[sample.mask].max() <= 10.0 and sample.depth.max() > 10.0
    crop = eigen_crop_mask(480, 640)
    assert crop.sum() == (471 - 45) * (601 - 41)
    with pytest.raises(ValueError, match="480x640"):
        eigen_crop_mask(240, 320)


def test_kitti_split_garg_crop_and_cap(tmp_path):
    benchmark = load_benchmark(f"kitti:{layouts.make_kitti(tmp_path / 'kitti')}")
    assert len(benchmark) == 2  # the 'None' ground-truth line is dropped
    sample = benchmark[0]
    assert sample.depth[sample.mask].max() <= 80.0 and sample.depth.max() > 80.0
    crop = garg_crop_mask(40, 120)
    assert np.array_equal(sample.mask & ~crop, np.zeros_like(crop))
    assert not crop[:16].any() and crop[16:39, 4:115].all()


def test_eth3d_diode_sintel(tmp_path):
    eth3d = load_benchmark(f"eth3d:{layouts.make_eth3d(tmp_path / 'eth3d')}")
    sample = eth3d[0]
    assert len(eth3d) == 1 and np.isinf(sample.depth).any() and not sample.mask[np.isinf(sample.depth)].any()
    split_tree = load_benchmark(f"eth3d:{layouts.make_eth3d(tmp_path / 'eth3d_split', split_tree=True)}")
    np.testing.assert_array_equal(split_tree[0].depth, sample.depth)
    diode_root = layouts.make_diode(tmp_path / "diode")
    assert len(load_benchmark(f"diode:{diode_root}")) == 2
    indoors = load_benchmark(f"diode:{diode_root}?split=indoors")
    assert len(indoors) == 1 and indoors.display_name == "DIODE indoors"
    sample = indoors[0]
    assert sample.depth.shape == (24, 32) and sample.depth[sample.mask].min() >= 0.6
    with pytest.raises(ValueError, match="split"):
        load_benchmark(f"diode:{diode_root}?split=attic")
    sintel = load_benchmark(f"sintel:{layouts.make_sintel(tmp_path / 'sintel')}")
    sample = sintel[0]
    assert sample.depth.shape == (16, 24) and sample.depth[sample.mask].max() <= 70.0 < sample.depth.max()
    (tmp_path / "sintel" / "training" / "depth" / "alley_1" / "frame_0001.dpt").write_bytes(b"\x00" * 12)
    assert "not a Sintel .dpt" in str(samples(sintel)[0])


def test_datasets_source(tmp_path):
    datasets = pytest.importorskip("datasets")
    depth = layouts.ramp_depth(12, 16)
    data = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(layouts.rgb(12, 16))] * 2, "depth": [(depth * 1000).astype(np.uint16)] * 2}
    ).cast_column("image", datasets.Image())
    datasets.DatasetDict({"test": data}).save_to_disk(str(tmp_path / "ds"))
    benchmark = load_benchmark(f"hf:{tmp_path / 'ds'}?depth_scale=0.001&max_depth=4")
    sample = benchmark[1]
    assert len(benchmark) == 2 and sample.image.shape == (12, 16, 3)
    np.testing.assert_allclose(sample.depth, depth, atol=1e-3)
    assert sample.depth[sample.mask].max() <= 4
    with pytest.raises(BadSampleError, match="480x640"):  # the Eigen crop is only defined on NYU's frame size
        load_benchmark(f"hf:{tmp_path / 'ds'}?depth_scale=0.001&crop=eigen")[0]
    with pytest.raises(ValueError, match="crop"):
        load_benchmark(f"hf:{tmp_path / 'ds'}?crop=square")
    with pytest.raises(ValueError, match="column"):
        load_benchmark(f"hf:{tmp_path / 'ds'}?depth=disparity")


def test_da2k_layout(tmp_path):
    root, annotations = layouts.make_da2k(tmp_path / "da2k")
    benchmark = load_benchmark(f"da2k:{root}")
    assert isinstance(benchmark, DA2KBenchmark) and len(benchmark) == 2
    sample = benchmark[0]
    assert sample.id == "indoor/a.jpg" and sample.pairs == annotations["indoor/a.jpg"]
    assert [benchmark.scene_type(k) for k in benchmark.keys] == ["indoor", "outdoor"]
    (root / "outdoor" / "b.png").unlink()
    assert isinstance(samples(benchmark)[1], BadSampleError)
    (root / "annotations.json").write_text(json.dumps({}))
    with pytest.raises(ValueError, match="empty benchmark"):
        load_benchmark(f"da2k:{root}")
    (root / "annotations.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_benchmark(f"da2k:{root}")
