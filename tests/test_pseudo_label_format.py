"""Pseudo-label parquet shards: lossless-enough 16-bit encoding, appendable writer, resume ids, reader, local push."""

import io

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from modeling_depth_anything.data import DepthTransform, MixedBatchStream, SampleStats, shard_for_process
from modeling_depth_anything.data.pseudo_labels import (
    QUANTIZATION_LEVELS,
    PseudoLabelWriter,
    decode_disparity,
    encode_disparity,
    push_to_hub,
    set_aside_damaged_shards,
    shard_paths,
    summary,
    written_ids,
)
from modeling_depth_anything.data.sources import load_pseudo_labels


def _jpeg(seed: int, height=30, width=40) -> bytes:
    array = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG")
    return buffer.getvalue()


def _disparity(seed: int, height=30, width=40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.gamma(2.0, 3.0, (height, width)) * 10 ** rng.uniform(-3, 3)).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_encode_decode_error_is_at_most_one_step_of_the_range(seed):
    disparity = _disparity(seed)
    png, low, high = encode_disparity(disparity)
    decoded = decode_disparity(png, low, high)
    assert decoded.dtype == np.float32 and decoded.shape == disparity.shape
    span = float(disparity.max()) - float(disparity.min())
    error = np.abs(decoded.astype(np.float64) - disparity.astype(np.float64)).max()
    assert error <= span / QUANTIZATION_LEVELS
    assert low == disparity.min() and high == disparity.max()
    assert decoded.min() == pytest.approx(low, rel=1e-6) and decoded.max() == pytest.approx(high, rel=1e-6)
    assert Image.open(io.BytesIO(png)).mode.startswith("I;16")


def test_encode_edge_cases():
    constant = np.full((4, 5), 2.5, np.float32)
    np.testing.assert_array_equal(decode_disparity(*encode_disparity(constant)), constant)
    with pytest.raises(ValueError, match="non-finite"):
        encode_disparity(np.array([[1.0, np.nan]], np.float32))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        encode_disparity(np.ones(3, np.float32))


def _write(folder, ids, teacher="teacher-vitl@step100", shard_size=2, **kwargs):
    with PseudoLabelWriter(folder, teacher_id=teacher, shard_size=shard_size, **kwargs) as writer:
        for index in ids:
            writer.add(f"img{index}", _jpeg(index), _disparity(index))
    return writer


def test_writer_shards_appends_and_lists_written_ids(tmp_path):
    folder = tmp_path / "pl"
    writer = _write(folder, range(5))
    assert [p.name for p in shard_paths(folder)] == [
        "train-00000.parquet",
        "train-00001.parquet",
        "train-00002.parquet",
    ]
    assert writer.num_written == 5
    assert written_ids(folder) == {f"img{i}" for i in range(5)}
    _write(folder, range(5, 7))  # a restarted job appends after the existing shards
    assert len(shard_paths(folder)) == 4
    assert written_ids(folder) == {f"img{i}" for i in range(7)}
    assert not list((folder / "data").glob(".*tmp"))
    assert summary(folder) == {"shards": 4, "rows": 7, "teachers": ["teacher-vitl@step100"], "split": "train"}
    assert written_ids(tmp_path / "empty") == set()
    with pytest.raises(ValueError, match="'bad name'"):
        PseudoLabelWriter(folder, "t", shard_prefix="bad name")


def test_reader_returns_decoded_samples_and_feeds_the_mixer(tmp_path):
    folder = tmp_path / "pl"
    _write(folder, range(4))
    samples = list(load_pseudo_labels(folder))
    assert [s["id"] for s in samples] == ["img0", "img1", "img2", "img3"]
    sample = samples[1]
    assert sample["image"].size == (40, 30) and sample["depth_kind"] == "disparity"
    assert sample["teacher_id"] == "teacher-vitl@step100"
    original = _disparity(1)
    assert np.abs(sample["depth"] - original).max() <= (original.max() - original.min()) / QUANTIZATION_LEVELS
    mixer = MixedBatchStream({"pseudo": load_pseudo_labels(folder)}, transforms=DepthTransform(size=14), batch_size=2)
    batch = mixer.next_batch()["pseudo"]
    assert batch["disparity"].shape == (2, 14, 14) and batch["valid_mask"].all()
    assert float(batch["disparity"].max()) == pytest.approx(1.0)


def test_reader_shards_by_file_across_processes(tmp_path):
    folder = tmp_path / "pl"
    _write(folder, range(8), shard_size=2)
    parts = [[s["id"] for s in shard_for_process(load_pseudo_labels(folder), rank, 2)] for rank in range(2)]
    assert not set(parts[0]) & set(parts[1]) and len(parts[0] + parts[1]) == 8


def test_writers_of_several_processes_share_a_folder(tmp_path):
    folder = tmp_path / "pl"
    _write(folder, range(3), shard_prefix="rank0-")
    _write(folder, range(3, 6), shard_prefix="rank1-")
    assert written_ids(folder) == {f"img{i}" for i in range(6)}
    assert len(list(load_pseudo_labels(folder))) == 6


def test_corrupt_rows_are_skipped_and_counted(tmp_path):
    folder = tmp_path / "pl"
    with PseudoLabelWriter(folder, teacher_id="t", shard_size=10) as writer:
        writer.add("good", _jpeg(0), _disparity(0))
        writer.add("broken", b"not a jpeg", _disparity(1))
        writer.add("wrong-size", _jpeg(2, 20, 20), _disparity(2))
    stats = SampleStats(name="pl")
    samples = list(load_pseudo_labels(folder, stats=stats))
    assert [s["id"] for s in samples] == ["good"]
    assert stats.skipped == {"corrupt image": 1, "depth shape mismatch": 1}


def test_push_to_local_folder_is_a_loadable_dataset(tmp_path):
    source = tmp_path / "pl"
    _write(source, range(3))
    target = tmp_path / "published"
    assert push_to_hub(source, str(target)) == str(target)
    card = (target / "README.md").read_text()
    assert card.startswith("---\n") and "path: data/train-*.parquet" in card and "teacher-vitl@step100" in card
    assert sorted(p.name for p in target.rglob("*") if p.is_file()) == [
        "README.md",
        "train-00000.parquet",
        "train-00001.parquet",
    ]  # shards and card only: no temporary or damaged files
    loaded = datasets.load_dataset(str(target), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(loaded) == 3 and set(loaded.column_names) >= {"source_id", "teacher_id", "image", "disparity"}
    assert isinstance(loaded[0]["image"], Image.Image)
    assert len(list(load_pseudo_labels(target))) == 3
    row = loaded[2]
    decoded = decode_disparity(row["disparity"], row["disparity_min"], row["disparity_max"])
    torch.testing.assert_close(
        torch.from_numpy(decoded),
        torch.from_numpy(_disparity(2)),
        rtol=0,
        atol=float(_disparity(2).max() - _disparity(2).min()) / QUANTIZATION_LEVELS,
    )
    with pytest.raises(FileNotFoundError, match="no pseudo-label shards"):
        push_to_hub(tmp_path / "nothing", str(target))


def test_dataset_card_is_a_huggingface_hub_dataset_card(tmp_path):
    from huggingface_hub import DatasetCard

    folder = tmp_path / "pl"
    _write(folder, range(3))
    card = DatasetCard.load(folder / "README.md")
    assert card.data.configs == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}
    ]
    assert "depth-estimation" in card.data.task_categories and "Rows: 3 in 2 parquet shard(s)" in card.text


def test_damaged_shard_is_set_aside_and_its_images_redone(tmp_path, caplog):
    import logging

    folder = tmp_path / "pl"
    _write(folder, range(4), shard_size=2)
    damaged = shard_paths(folder)[1]
    damaged.write_bytes(damaged.read_bytes()[:100])  # a finished shard cut short on disk
    (folder / "data" / ".train-00009.parquet.tmp").write_bytes(b"half")  # left by a killed writer
    with pytest.raises(ValueError, match="train-00001.parquet"):
        written_ids(folder)  # a clear error naming the file, not a pyarrow traceback
    with caplog.at_level(logging.WARNING):
        moved = set_aside_damaged_shards(folder)
    assert [p.parent.name for p in moved] == ["damaged"] and "train-00001.parquet is damaged" in caplog.text
    assert written_ids(folder) == {"img0", "img1"}  # img2 and img3 will be labelled again
    assert not list((folder / "data").glob(".*.tmp"))
    _write(folder, range(2, 4))
    assert written_ids(folder) == {f"img{i}" for i in range(4)}
