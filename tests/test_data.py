"""Data engine: every source, the joint transform, the mixer (ratio, resume, sharding) and bad-input handling.

Fixtures are tiny files generated into tmp_path by the tests themselves.
"""

import io
import logging
import tarfile
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from modeling_depth_anything.data import (
    DepthTransform,
    MixedBatchStream,
    NoValidSampleError,
    SampleStats,
    collate,
    decode_depth,
    iter_valid,
    load_labelled,
    load_rgbd_folder,
    load_unlabelled,
    shard_for_process,
)
from modeling_depth_anything.data.synthetic import synthetic_stream
from modeling_depth_anything.data.transforms import IMAGENET_MEAN, IMAGENET_STD, disparity_from_depth

ROOT = Path(__file__).resolve().parents[1]


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _image(height=30, width=40, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def _depth_mm(height=30, width=40) -> np.ndarray:
    depth = (np.arange(height * width, dtype=np.uint16).reshape(height, width) % 3000) + 500
    depth[0, :5] = 0  # missing measurements
    return depth


def _make_rgbd(folder: Path, names=("a", "b", "c"), bad=()) -> Path:
    """<folder>/<name>/{image.png, depth.png}; names in `bad` get the defect named after the colon."""
    for name in list(names) + list(bad):
        sample = folder / name.split(":")[0]
        sample.mkdir(parents=True)
        image, depth = _image(), _depth_mm()
        (sample / "image.png").write_bytes(_png_bytes(image))
        (sample / "depth.png").write_bytes(_png_bytes(depth))
        defect = name.partition(":")[2]
        if defect == "corrupt":
            (sample / "image.png").write_bytes(b"this is not an image")
        elif defect == "truncated":
            (sample / "image.png").write_bytes(_png_bytes(image)[:200])
        elif defect == "empty":
            (sample / "image.png").write_bytes(b"")
        elif defect == "shape":
            (sample / "depth.png").write_bytes(_png_bytes(_depth_mm(20, 20)))
        elif defect == "invalid":
            (sample / "depth.png").write_bytes(_png_bytes(np.zeros((30, 40), np.uint16)))
    return folder


def _make_image_folder(folder: Path, count=5) -> Path:
    (folder / "sub").mkdir(parents=True)
    for index in range(count):
        target = folder / ("sub" if index % 2 else "") / f"img{index}.png"
        Image.fromarray(_image(24 + index, 36, seed=index)).save(target)
    (folder / "notes.txt").write_text("not an image")
    return folder


# ----------------------------------------------------------------------------------------------------------------------
# Sources


def test_rgbd_folder_decodes_millimetres_to_metres_with_invalid_as_nan(tmp_path):
    stream = load_rgbd_folder(_make_rgbd(tmp_path / "rgbd"))
    samples = list(stream)
    assert [s["id"] for s in samples] == ["a", "b", "c"]
    sample = samples[0]
    assert sample["image"].mode == "RGB" and sample["image"].size == (40, 30)
    assert sample["depth"].dtype == np.float32 and sample["depth"].shape == (30, 40)
    assert np.isnan(sample["depth"][0, :5]).all()
    assert sample["depth"][1, 0] == pytest.approx((_depth_mm()[1, 0]) / 1000.0)
    assert sample["depth_kind"] == "depth"


def test_shipped_rgbd_assets_load():
    samples = list(load_rgbd_folder(ROOT / "assets" / "rgbd"))
    assert len(samples) == 10
    for sample in samples:
        assert sample["depth"].shape == (sample["image"].height, sample["image"].width)
        assert np.nanmin(sample["depth"]) > 0


def test_labelled_parquet_with_float_depth_and_sky(tmp_path):
    depth = np.linspace(1, 5, 30 * 40, dtype=np.float32).reshape(30, 40)
    depth[0, 0], depth[0, 1], depth[0, 2] = np.nan, np.inf, 100.0
    sky = np.zeros((30, 40), bool)
    sky[:3, 10:] = True
    table = datasets.Dataset.from_dict(
        {"rgb": [{"bytes": _png_bytes(_image()), "path": None}], "z": [depth], "sky": [sky], "key": ["row0"]},
        features=datasets.Features(
            {
                "rgb": datasets.Image(),
                "z": datasets.Array2D((30, 40), "float32"),
                "sky": datasets.Array2D((30, 40), "bool"),
                "key": datasets.Value("string"),
            }
        ),
    )
    table.to_parquet(str(tmp_path / "train.parquet"))
    stream = load_labelled(
        str(tmp_path / "train.parquet"),
        image_column="rgb",
        depth_column="z",
        sky_column="sky",
        id_column="key",
        max_depth=50.0,
    )
    (sample,) = list(stream)
    assert sample["id"] == "row0"
    assert np.isnan(sample["depth"][0, :3]).all()  # NaN, inf and out of range
    assert sample["sky_mask"].sum() == 3 * 30


def test_labelled_png_disparity_with_scale_streaming_and_not(tmp_path):
    disparity = (np.arange(30 * 40).reshape(30, 40) % 500 + 1).astype(np.uint16)
    rows = {
        "image": [_png_bytes(_image(seed=s)) for s in range(3)],
        "disp": [_png_bytes(disparity)] * 3,
        "id": ["x0", "x1", "x2"],
    }
    ds = datasets.Dataset.from_dict(
        rows,
        features=datasets.Features(
            {"image": datasets.Image(), "disp": datasets.Image(), "id": datasets.Value("string")}
        ),
    )
    folder = tmp_path / "ds"
    (folder / "data").mkdir(parents=True)
    ds.to_parquet(str(folder / "data" / "train-00000.parquet"))
    for streaming in (True, False):
        samples = list(
            load_labelled(
                str(folder),
                depth_column="disp",
                depth_kind="disparity",
                depth_scale=0.5,
                streaming=streaming,
                cache_dir=str(tmp_path / "cache"),
            )
        )
        assert [s["id"] for s in samples] == ["x0", "x1", "x2"]
        assert samples[0]["depth_kind"] == "disparity"
        assert samples[0]["depth"][0, 1] == pytest.approx(1.0)  # raw 2 x scale 0.5


def test_labelled_from_in_memory_dataset_and_content_ids():
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(_image())], "depth": [np.ones((30, 40), np.float32)]})
    (sample,) = list(load_labelled(ds))
    assert sample["id"].startswith("sha1:") or sample["id"]


def test_unlabelled_image_folder_recursive_with_relative_ids(tmp_path):
    samples = list(load_unlabelled(_make_image_folder(tmp_path / "photos")))
    assert sorted(s["id"] for s in samples) == ["img0.png", "img2.png", "img4.png", "sub/img1.png", "sub/img3.png"]
    assert all("depth" not in s for s in samples)


def test_unlabelled_shipped_photos():
    stream = load_unlabelled(ROOT / "assets" / "photos")
    assert sum(1 for _ in stream) == 40


def test_unlabelled_parquet_and_webdataset(tmp_path):
    ds = datasets.Dataset.from_dict({"picture": [Image.fromarray(_image(seed=s)) for s in range(3)]})
    ds.to_parquet(str(tmp_path / "images.parquet"))
    assert len(list(load_unlabelled(str(tmp_path / "images.parquet")))) == 3
    shard = tmp_path / "wds" / "shard-000000.tar"
    shard.parent.mkdir()
    with tarfile.open(shard, "w") as tar:
        for index in range(3):
            payload = _png_bytes(_image(seed=index))
            info = tarfile.TarInfo(f"sample{index:03d}.png")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    samples = list(load_unlabelled(str(shard)))
    assert [s["id"] for s in samples] == ["sample000", "sample001", "sample002"]
    assert samples[0]["image"].size == (40, 30)


def test_unknown_source_gives_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no image files"):
        load_unlabelled(tmp_path)
    with pytest.raises(FileNotFoundError, match="no-such-dataset"):
        load_unlabelled(str(tmp_path / "no-such-dataset"))
    with pytest.raises(ValueError, match="load_unlabelled"):
        load_labelled(_make_image_folder(tmp_path / "photos"))
    with pytest.raises(ValueError, match="depth_kind"):
        load_labelled(tmp_path, depth_kind="metres")


# ----------------------------------------------------------------------------------------------------------------------
# Bad input


def test_bad_samples_are_skipped_counted_and_logged(tmp_path, caplog):
    folder = _make_rgbd(
        tmp_path / "rgbd",
        names=("good1", "good2"),
        bad=("c:corrupt", "t:truncated", "e:empty", "s:shape", "i:invalid"),
    )
    stats = SampleStats(name="fixture")
    with caplog.at_level(logging.WARNING):
        samples = list(load_rgbd_folder(folder, stats=stats))
    assert sorted(s["id"] for s in samples) == ["good1", "good2"]
    assert stats.valid == 2 and stats.seen == 7
    assert stats.skipped == {
        "corrupt image": 1,
        "truncated image": 1,
        "zero-size image": 1,
        "depth shape mismatch": 1,
        "all-invalid depth": 1,
    }
    logged = caplog.text
    for sample_id in ("'c'", "'t'", "'e'", "'s'", "'i'"):
        assert sample_id in logged
    # the decoder also hands the skipped ids downstream with the next valid sample (survives worker processes)
    forwarded = [pair for s in samples for pair in s["skipped"]]
    assert {sample_id for sample_id, _ in forwarded} <= {"c", "e", "i", "s", "t"}


def test_stream_without_valid_samples_raises(tmp_path):
    folder = _make_rgbd(tmp_path / "rgbd", names=(), bad=("x:corrupt", "y:invalid"))
    with pytest.raises(NoValidSampleError, match="no valid sample"):
        list(iter_valid(load_rgbd_folder(folder), name="broken"))
    mixer = MixedBatchStream({"labelled": load_rgbd_folder(folder)}, transforms=DepthTransform(size=14), batch_size=2)
    with pytest.raises(NoValidSampleError, match="no valid sample"):
        mixer.next_batch()


def test_decode_depth_validity_rules():
    raw = np.array([[0.0, np.nan, np.inf, -1.0], [0.5, 1.0, 2.0, 20.0]], np.float32)
    depth = decode_depth(raw, min_depth=0.6, max_depth=10.0)
    assert np.isnan(depth[0]).all() and np.isnan(depth[1, [0, 3]]).all()
    np.testing.assert_array_equal(depth[1, 1:3], [1.0, 2.0])
    disparity = decode_depth(np.array([[0.0, 3.0]]), depth_kind="disparity", invalid_value=None)
    assert disparity[0, 0] == 0.0  # zero disparity (infinitely far) is valid when 0 is not the invalid marker


# ----------------------------------------------------------------------------------------------------------------------
# Transform and collate


def test_disparity_normalisation_and_sky():
    depth = np.array([[1.0, 2.0], [4.0, np.nan]], np.float32)
    disparity, valid = disparity_from_depth(depth, "depth", None)
    np.testing.assert_allclose(disparity, [[1.0, 1 / 3], [0.0, 0.0]], atol=1e-6)
    np.testing.assert_array_equal(valid, [[True, True], [True, False]])
    sky = np.array([[False, False], [False, True]])
    disparity, valid = disparity_from_depth(depth, "depth", sky)
    assert valid.all() and disparity[1, 1] == 0.0 and disparity[0, 0] == 1.0
    assert disparity[1, 0] == pytest.approx(0.25)  # min is now the sky's 0


def test_transform_shapes_ranges_and_normalisation():
    sample = {
        "id": "s",
        "image": Image.fromarray(_image(30, 40)),
        "depth": decode_depth(_depth_mm() * 0.001),
        "depth_kind": "depth",
        "sky_mask": None,
    }
    out = DepthTransform(size=28)(sample)
    assert out["pixel_values"].shape == (3, 28, 28) and out["pixel_values"].dtype == torch.float32
    assert out["disparity"].shape == (28, 28) and out["valid_mask"].dtype == torch.bool
    valid = out["disparity"][out["valid_mask"]]
    assert valid.min() == 0.0 and valid.max() == 1.0
    white = {"id": "w", "image": Image.new("RGB", (20, 20), (255, 255, 255))}
    pixels = DepthTransform(size=14)(white)["pixel_values"]
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(pixels[:, 0, 0], expected)
    assert "disparity" not in DepthTransform(size=14)(white)


def test_transform_keeps_image_and_depth_aligned_through_crop_and_flip():
    """Brightness and disparity both grow to the right; after any crop/flip they must still agree."""
    width, height = 60, 30
    columns = np.tile(np.linspace(10, 250, width), (height, 1))
    image = Image.fromarray(np.repeat(columns[..., None], 3, axis=2).astype(np.uint8))
    depth = (1.0 / np.tile(np.linspace(1, 10, width), (height, 1))).astype(np.float32)
    transform = DepthTransform(size=28, seed=5)
    flips = set()
    for index in range(12):
        out = transform({"id": f"s{index}", "image": image, "depth": depth, "depth_kind": "depth"})
        brightness = out["pixel_values"][0, 14]
        disparity = out["disparity"][14]
        flips.add(bool(brightness[0] > brightness[-1]))
        assert np.corrcoef(brightness.numpy(), disparity.numpy())[0, 1] > 0.99
    assert flips == {True, False}


def test_transform_is_deterministic_per_seed_epoch_and_id():
    sample = {"id": "s", "image": Image.fromarray(_image(30, 60)), "depth": np.ones((30, 60), np.float32)}
    first = DepthTransform(size=14, seed=1)(sample, epoch=0)["pixel_values"]
    again = DepthTransform(size=14, seed=1)(sample, epoch=0)["pixel_values"]
    torch.testing.assert_close(first, again)
    with pytest.raises(ValueError, match="30"):
        DepthTransform(size=30)


def test_collate_stacks_tensors_and_lists_ids():
    transform = DepthTransform(size=14)
    samples = [
        transform({"id": f"s{i}", "image": Image.fromarray(_image()), "depth": np.ones((30, 40), np.float32)})
        for i in range(3)
    ]
    batch = collate(samples)
    assert batch["ids"] == ["s0", "s1", "s2"]
    assert batch["pixel_values"].shape == (3, 3, 14, 14) and batch["valid_mask"].shape == (3, 14, 14)


def test_synthetic_stream_through_transform_has_sky_at_zero():
    (sample,) = list(synthetic_stream(seed=0, size=(28, 28), num_shards=1, samples_per_shard=1))
    out = DepthTransform(size=28, random_crop=False, hflip=False)(sample)
    sky = torch.from_numpy(sample["sky_mask"])
    assert out["valid_mask"].all()
    assert (out["disparity"][sky] == 0).all()


# ----------------------------------------------------------------------------------------------------------------------
# Mixer


def _labelled_stream(count=5, shards=5):
    rows = {
        "id": [f"L{i}" for i in range(count)],
        "image": [_png_bytes(_image(seed=i)) for i in range(count)],
        "depth": [np.full((30, 40), 1.0 + i, np.float32) for i in range(count)],
    }
    features = datasets.Features(
        {"id": datasets.Value("string"), "image": datasets.Image(), "depth": datasets.Array2D((30, 40), "float32")}
    )
    return load_labelled(datasets.Dataset.from_dict(rows, features=features).to_iterable_dataset(num_shards=shards))


def _unlabelled_stream(count=7, shards=7):
    rows = {"id": [f"U{i}" for i in range(count)], "image": [_png_bytes(_image(seed=100 + i)) for i in range(count)]}
    features = datasets.Features({"id": datasets.Value("string"), "image": datasets.Image()})
    return load_unlabelled(datasets.Dataset.from_dict(rows, features=features).to_iterable_dataset(num_shards=shards))


def _mixer(**kwargs):
    transform = DepthTransform(size=14)
    return MixedBatchStream(
        {"labelled": _labelled_stream(), "unlabelled": _unlabelled_stream()},
        ratio={"labelled": 1, "unlabelled": 2},
        transforms=transform,
        **kwargs,
    )


def test_mixer_batches_at_ratio_one_to_two_and_cycles_finite_streams():
    mixer = _mixer(batch_size=6)
    iterator = iter(mixer)
    batches = [next(iterator) for _ in range(4)]  # 8 labelled (> 5) and 16 unlabelled (> 7): both streams restart
    assert batches[0]["labelled"]["pixel_values"].shape == (2, 3, 14, 14)
    assert batches[0]["labelled"]["disparity"].shape == (2, 14, 14)
    assert batches[0]["unlabelled"]["pixel_values"].shape == (4, 3, 14, 14)
    assert "disparity" not in batches[0]["unlabelled"]
    labelled_ids = [i for b in batches for i in b["labelled"]["ids"]]
    assert labelled_ids[:5] == ["L0", "L1", "L2", "L3", "L4"]  # no shuffle buffer: stored order
    assert set(labelled_ids[5:]) <= {"L0", "L1", "L2", "L3", "L4"} and len(set(labelled_ids[5:])) == 3
    state = mixer.state_dict()["workers"][0]
    assert state["labelled"]["sources"][0]["epoch"] == 1 and state["unlabelled"]["sources"][0]["epoch"] == 2
    assert mixer.stats["labelled"].valid == 8


def test_mixer_ratio_validation():
    with pytest.raises(ValueError, match="does not split"):
        _mixer(batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        _mixer(batch_size=0)
    with pytest.raises(ValueError, match="ratio names parts"):
        MixedBatchStream({"labelled": _labelled_stream()}, ratio={"pseudo": 1})


def _assert_same_batches(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for part in want:
        assert got[part]["ids"] == want[part]["ids"]
        for key, value in want[part].items():
            if torch.is_tensor(value):
                torch.testing.assert_close(got[part][key], value)


def test_mixer_resume_gives_the_same_next_batches():
    reference = iter(_mixer(batch_size=3))
    expected = [next(reference) for _ in range(7)]
    interrupted = _mixer(batch_size=3)
    iterator = iter(interrupted)
    for _ in range(3):
        next(iterator)
    state = interrupted.state_dict()
    resumed = _mixer(batch_size=3)
    resumed.load_state_dict(state)
    iterator = iter(resumed)
    for want in expected[3:]:  # crosses the end of both streams (epoch change) too
        _assert_same_batches(next(iterator), want)
    assert resumed.batches == 7


def _sorted_folder(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for index in range(count):
        Image.fromarray(_image(16, 20, seed=index)).save(folder / f"{index:03d}.png")
    (folder / "zz_broken.png").write_bytes(b"not an image")
    return folder


@pytest.mark.parametrize("workers, buffer", [(0, 8), (2, 8), (2, 1)])
def test_shuffled_stream_with_workers_resumes_exactly(tmp_path, workers, buffer):
    """Shuffle buffer on (a sorted folder must not train in order), decoded in 0 or 2 DataLoader workers: a stream
    resumed from its JSON state yields exactly the batches of an uninterrupted one, across the end of a pass. Buffer 8
    resumes by re-reading raw rows, buffer 1 (shard order only) from `datasets`' state."""
    import json

    from modeling_depth_anything.data.sources import unlabelled_source

    folder = _sorted_folder(tmp_path / "photos", 23)

    def make() -> MixedBatchStream:
        return MixedBatchStream(
            {"images": unlabelled_source(folder)},
            batch_size=4,
            transforms=DepthTransform(size=14),
            shuffle_buffer=buffer,
            seed=3,
            num_workers=workers,
        )

    reference = make()
    expected = [reference.next_batch() for _ in range(14)]  # 56 samples: more than two passes over 23 images
    order = [i for batch in expected for i in batch["images"]["ids"]]
    assert order[:23] != sorted(order[:23]), "a sorted folder must not come out in order"
    assert sorted(set(order)) == [f"{i:03d}.png" for i in range(23)]
    for stop in (3, 7):
        interrupted = make()
        for _ in range(stop):
            interrupted.next_batch()
        state = json.loads(json.dumps(interrupted.state_dict()))  # what a checkpoint stores
        interrupted.close()
        resumed = make()
        resumed.load_state_dict(state)
        for want in expected[stop:]:
            _assert_same_batches(resumed.next_batch(), want)
        assert resumed.bad_counts() == reference.bad_counts()  # the broken file: counted once per pass, not twice
        resumed.close()
    reference.close()
    if workers:
        other = make()
        other.num_workers = 1
        with pytest.raises(ValueError, match="num_workers 2"):
            other.load_state_dict(state)


@pytest.mark.parametrize("shards", [4, 7])  # whole shards per process, and sample-level splitting
def test_two_processes_see_disjoint_samples_that_cover_everything(shards):
    rows = {"id": [f"s{i}" for i in range(14)], "image": [_png_bytes(_image(16, 16, seed=i)) for i in range(14)]}
    features = datasets.Features({"id": datasets.Value("string"), "image": datasets.Image()})
    stream = load_unlabelled(
        datasets.Dataset.from_dict(rows, features=features).to_iterable_dataset(num_shards=shards)
    )
    seen = [[s["id"] for s in shard_for_process(stream, rank, 2)] for rank in range(2)]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(rows["id"])
    assert len(seen[0]) == len(set(seen[0])) and abs(len(seen[0]) - len(seen[1])) <= 2


def test_two_process_mixers_are_disjoint(tmp_path):
    folder = _make_image_folder(tmp_path / "photos", count=6)
    transform = DepthTransform(size=14)
    ids = []
    for rank in range(2):
        mixer = MixedBatchStream(
            {"images": load_unlabelled(folder)}, transforms=transform, batch_size=3, rank=rank, world_size=2
        )
        ids.append(mixer.next_batch()["images"]["ids"])
    assert not set(ids[0]) & set(ids[1]) and len(set(ids[0] + ids[1])) == 6
    with pytest.raises(ValueError, match="rank"):
        shard_for_process(load_unlabelled(folder), 2, 2)


@pytest.mark.slow  # ~15 s: two fresh interpreters import torch, datasets and transformers
def test_two_real_processes_split_a_folder_disjointly_and_completely(tmp_path):
    """Two OS processes, as `torchrun --nproc_per_node 2` would start them, each reading its part of one folder."""
    import json
    import os
    import subprocess
    import sys

    folder = _make_image_folder(tmp_path / "photos", count=7)
    script = (
        "import json, sys; from modeling_depth_anything.data import load_unlabelled, shard_for_process; "
        "rank, world = int(sys.argv[1]), 2; "
        "print(json.dumps([s['id'] for s in shard_for_process(load_unlabelled(sys.argv[2]), rank, world)]))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(rank), str(folder)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-2000:]
    parts = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
    assert not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(s["id"] for s in load_unlabelled(folder))


def _lazy_rows(path: str):
    """Rows whose images are lazily opened PIL files, as a user's own generator might yield them."""
    good = Image.fromarray(_image())
    yield {"id": "cut", "image": Image.open(path), "depth": np.ones((30, 40), np.float32)}
    yield {"id": "weird", "image": good, "depth": {"unexpected": "structure"}}
    yield {"id": "ok", "image": good, "depth": np.ones((30, 40), np.float32)}


def test_lazily_opened_truncated_pil_image_and_unexpected_errors_are_skipped(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(_png_bytes(_image(60, 80))[:300])
    stream = datasets.IterableDataset.from_generator(_lazy_rows, gen_kwargs={"path": str(path)})
    stats = SampleStats()
    assert [s["id"] for s in load_labelled(stream, stats=stats)] == ["ok"]
    assert stats.skipped["truncated image"] + stats.skipped["corrupt image"] == 1
    assert sum(stats.skipped.values()) == 2
