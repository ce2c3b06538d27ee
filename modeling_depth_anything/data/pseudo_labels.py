"""The pseudo-label format: parquet shards of teacher predictions on unlabelled images (Depth Anything V1 Sec. 3.2).

Layout of a pseudo-label folder (also a loadable `datasets` folder and a Hub dataset repo)::

    <dir>/README.md                             # dataset card; its YAML header points `datasets` at the shards
    <dir>/data/<split>-<prefix><NNNNN>.parquet  # one shard per flush; written atomically (temp file + rename)

Columns (the schema carries `datasets` features, so `load_dataset` decodes the images):

    source_id      string   id of the unlabelled sample (the resume key of the pseudo-label stage)
    teacher_id     string   the teacher checkpoint (Hub id or path + step) that produced the label
    image          Image    the original encoded image bytes, untouched (no re-compression)
    disparity      Image    teacher disparity as a 16-bit grey PNG, normalised per image: q = round((d - min) / (max - min) * 65535)
    disparity_min  float32  min of the teacher's map (a float32 value of the map itself)
    disparity_max  float32  max of the teacher's map
    height, width  int32    size of the disparity map (= the image size the teacher was run at after post-processing)

Decoding gives d = min + q / 65535 * (max - min): the error is at most half a step, (max - min) / 131070, plus float32
rounding. A constant map stores q = 0 and min = max.

API::

    encode_disparity(disparity) -> (png_bytes, min, max)
    decode_disparity(png_bytes, min, max) -> (H, W) float32
    PseudoLabelWriter(out_dir, teacher_id, shard_size=1000, split="train", shard_prefix="")   # .add(...), .close()
    written_ids(out_dir, split="train") -> set of source ids already written (resume)
    load_pseudo_labels(path_or_repo, split="train", streaming=True, stats=None) -> IterableDataset of decoded samples
    push_to_hub(out_dir, repo_id_or_local_dir, private=True, token=None, local=None) -> where it went
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .streams import BadSampleError, SampleStats, _is_valid, _undecoded, decode_image

logger = logging.getLogger(__name__)

QUANTIZATION_LEVELS = 65535
COLUMNS = ("source_id", "teacher_id", "image", "disparity", "disparity_min", "disparity_max", "height", "width")
_SHARD_PATTERN = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<prefix>[A-Za-z0-9_]*?-?)(?P<index>\d{5})\.parquet$")


def features():
    """The `datasets.Features` of a pseudo-label shard."""
    import datasets

    return datasets.Features(
        {
            "source_id": datasets.Value("string"),
            "teacher_id": datasets.Value("string"),
            "image": datasets.Image(),
            "disparity": datasets.Image(),
            "disparity_min": datasets.Value("float32"),
            "disparity_max": datasets.Value("float32"),
            "height": datasets.Value("int32"),
            "width": datasets.Value("int32"),
        }
    )


def encode_disparity(disparity: np.ndarray, compress_level: int = 3) -> tuple[bytes, float, float]:
    """(H, W) float disparity -> (16-bit PNG bytes, min, max); min and max are float32 values of the map.

    Raises ValueError on non-finite values or a map that is not 2-D.
    """
    disparity = np.asarray(disparity, dtype=np.float32)
    if disparity.ndim != 2 or disparity.size == 0:
        raise ValueError(f"disparity must be a non-empty (H, W) map, got shape {disparity.shape}")
    if not np.isfinite(disparity).all():
        raise ValueError(
            f"disparity has {int((~np.isfinite(disparity)).sum())} non-finite values; the teacher output must be finite"
        )
    low, high = np.float32(disparity.min()), np.float32(disparity.max())
    span = float(high) - float(low)
    if span > 0:
        scaled = (disparity.astype(np.float64) - float(low)) / span * QUANTIZATION_LEVELS  # (H, W) in [0, 65535]
        quantized = np.clip(np.rint(scaled), 0, QUANTIZATION_LEVELS).astype(np.uint16)
    else:
        quantized = np.zeros(disparity.shape, np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(quantized).save(buffer, format="PNG", compress_level=compress_level)  # mode I;16
    return buffer.getvalue(), float(low), float(high)


def decode_disparity(png: bytes | dict | Image.Image, low: float, high: float) -> np.ndarray:
    """16-bit PNG (bytes, {"bytes"} dict or PIL) and the stored min/max -> (H, W) float32 disparity."""
    if isinstance(png, dict):
        png = png["bytes"] if png.get("bytes") is not None else Path(png["path"]).read_bytes()
    image = png if isinstance(png, Image.Image) else Image.open(io.BytesIO(png))
    quantized = np.asarray(image).astype(np.float64)  # (H, W) uint16 -> float64
    if quantized.ndim != 2:
        raise ValueError(f"disparity PNG must be single-channel 16-bit, got mode {image.mode!r}")
    return (float(low) + quantized / QUANTIZATION_LEVELS * (float(high) - float(low))).astype(np.float32)


def _image_bytes(image: Any) -> bytes:
    """Encoded bytes of an image given as bytes, path, {"bytes", "path"} or PIL (PIL is re-encoded losslessly as PNG)."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, dict):
        return image["bytes"] if image.get("bytes") is not None else Path(image["path"]).read_bytes()
    if isinstance(image, (str, Path)):
        return Path(image).read_bytes()
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    if isinstance(image, np.ndarray):
        return _image_bytes(Image.fromarray(image))
    raise TypeError(
        f"image must be bytes, a path, a datasets image dict, PIL or a uint8 array, got {type(image).__name__}"
    )


def shard_paths(out_dir: str | Path, split: str = "train") -> list[Path]:
    """The shards of `split` under `<out_dir>/data`, sorted."""
    return sorted(p for p in (Path(out_dir) / "data").glob(f"{split}-*.parquet") if _SHARD_PATTERN.match(p.name))


def written_ids(out_dir: str | Path, split: str = "train") -> set[str]:
    """Source ids already in finished shards (only the `source_id` column is read). Empty for a new folder."""
    import pyarrow.parquet as pq

    ids: set[str] = set()
    for path in shard_paths(out_dir, split):
        ids.update(pq.read_table(path, columns=["source_id"]).column("source_id").to_pylist())
    return ids


class PseudoLabelWriter:
    """Appends pseudo-labels to parquet shards of `shard_size` rows.

    New shards are numbered after the existing ones, so a restarted job appends; combine with `written_ids` to skip
    what is done. A shard becomes visible only when complete (written to a temporary name, then renamed), so a killed
    job loses at most the rows of its unfinished shard. Several processes may write into one folder when each uses its
    own `shard_prefix` (e.g. ``f"rank{rank}-"``).

    Args:
        out_dir: the pseudo-label folder (created if needed).
        teacher_id (`str`): written into every row.
        shard_size (`int`, defaults to 1000): rows per shard.
        split (`str`, defaults to "train"): split name in the shard file names.
        shard_prefix (`str`, defaults to ""): letters, digits, "_" and "-" only.
    """

    def __init__(
        self,
        out_dir: str | Path,
        teacher_id: str,
        shard_size: int = 1000,
        split: str = "train",
        shard_prefix: str = "",
    ) -> None:
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size!r}")
        if not re.fullmatch(r"[A-Za-z0-9_]+", split):
            raise ValueError(f"split must be letters, digits or '_', got {split!r}")
        if shard_prefix and not re.fullmatch(r"[A-Za-z0-9_]+-?", shard_prefix):
            raise ValueError(
                f"shard_prefix must be letters, digits or '_' with an optional trailing '-', got {shard_prefix!r}"
            )
        if not teacher_id:
            raise ValueError(f"teacher_id must be a non-empty string, got {teacher_id!r}")
        self.out_dir, self.teacher_id, self.shard_size = Path(out_dir), teacher_id, shard_size
        self.split, self.shard_prefix = split, shard_prefix
        self.data_dir = self.out_dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        indices = [
            int(m["index"])
            for p in shard_paths(self.out_dir, split)
            if (m := _SHARD_PATTERN.match(p.name)) and m["prefix"] == shard_prefix
        ]
        self.next_index = max(indices, default=-1) + 1
        self.rows: list[dict] = []
        self.num_written = 0
        self.shards_written: list[Path] = []

    def add(self, source_id: str, image: Any, disparity: np.ndarray) -> None:
        """Queue one row. image: encoded bytes, path, {"bytes", "path"}, PIL or uint8 array; disparity: (H, W)."""
        png, low, high = encode_disparity(disparity)
        height, width = np.asarray(disparity).shape
        self.rows.append({
            "source_id": str(source_id), "teacher_id": self.teacher_id, "image": {"bytes": _image_bytes(image), "path": None},
            "disparity": {"bytes": png, "path": None}, "disparity_min": low, "disparity_max": high,
            "height": height, "width": width,
        })  # fmt: skip
        if len(self.rows) >= self.shard_size:
            self.flush()

    def flush(self) -> Path | None:
        """Write the queued rows as one shard; returns its path (None when nothing was queued)."""
        if not self.rows:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = features().arrow_schema  # carries the `datasets` features in its metadata
        table = pa.Table.from_pylist(self.rows, schema=schema)
        path = self.data_dir / f"{self.split}-{self.shard_prefix}{self.next_index:05d}.parquet"
        temporary = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, temporary)
        os.replace(temporary, path)
        logger.info("wrote %s (%d rows)", path, len(self.rows))
        self.num_written += len(self.rows)
        self.shards_written.append(path)
        self.next_index += 1
        self.rows = []
        return path

    def close(self) -> None:
        self.flush()
        write_dataset_card(self.out_dir)

    def __enter__(self) -> PseudoLabelWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def write_dataset_card(out_dir: str | Path) -> Path:
    """Write `<out_dir>/README.md` with a YAML header that maps each split to its shards (for `load_dataset(dir)`)."""
    out_dir = Path(out_dir)
    splits = sorted({m["split"] for p in (out_dir / "data").glob("*.parquet") if (m := _SHARD_PATTERN.match(p.name))})
    data_files = "".join(f"  - split: {split}\n    path: data/{split}-*.parquet\n" for split in splits)
    teachers = sorted(_teacher_ids(out_dir))
    card = (
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        + data_files
        + "tags:\n- depth-estimation\n- pseudo-labels\n---\n\n"
        "# Depth Anything pseudo-labels\n\n"
        "Teacher disparity on unlabelled images, written by `train/pseudo_label.py` of depth-anything-hf.\n"
        f"Teacher(s): {', '.join(teachers) or 'unknown'}.\n\n"
        "Columns: `source_id`, `teacher_id`, `image` (original bytes), `disparity` (16-bit PNG, normalised per image), "
        "`disparity_min`, `disparity_max`, `height`, `width`. Decode: `min + png / 65535 * (max - min)` "
        "(`pseudo_label_format.decode_disparity`). Licences are those of the source images.\n"
    )
    path = out_dir / "README.md"
    path.write_text(card)
    return path


def _teacher_ids(out_dir: Path) -> set[str]:
    import pyarrow.parquet as pq

    teachers: set[str] = set()
    for path in sorted((out_dir / "data").glob("*.parquet"))[:8]:  # a sample is enough for the card
        teachers.update(pq.read_table(path, columns=["teacher_id"]).column("teacher_id").unique().to_pylist())
    return teachers


class _PseudoLabelDecoder:
    """Rows -> decoded samples (`data` module convention), depth_kind "disparity", no invalid pixels."""

    def __init__(self, stats) -> None:
        self.stats = stats
        self.pending: list[tuple[str, str]] = []

    def __call__(self, row: dict) -> dict:
        sample_id = str(row.get("source_id"))
        try:
            image = decode_image(row["image"])
            try:
                disparity = decode_disparity(row["disparity"], row["disparity_min"], row["disparity_max"])
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise BadSampleError("unreadable depth", str(error)) from error
            if disparity.shape != (image.height, image.width):
                raise BadSampleError(
                    "depth shape mismatch", f"disparity {disparity.shape} vs image {(image.height, image.width)}"
                )
        except BadSampleError as error:
            self.stats.record_bad(sample_id, error.reason, str(error))
            self.pending.append((sample_id, error.reason))
            return {"id": sample_id, "image": None, "skipped": []}
        self.stats.record_valid()
        skipped, self.pending = self.pending, []
        return {
            "id": sample_id,
            "image": image,
            "depth": disparity,
            "depth_kind": "disparity",
            "sky_mask": None,
            "teacher_id": row.get("teacher_id"),
            "skipped": skipped,
        }


def load_pseudo_labels(path_or_repo: str | Path, split: str = "train", streaming: bool = True, stats=None):
    """Read pseudo-labels (a local folder written by `PseudoLabelWriter`, or a Hub dataset id) as a
    `datasets.IterableDataset` of decoded samples: ``id`` (= source_id), ``image`` (PIL RGB), ``depth`` ((H, W)
    float32 disparity), ``depth_kind`` ("disparity"), ``sky_mask`` (None), ``teacher_id``, ``skipped``.
    One shard per parquet file, so `split_dataset_by_node` gives processes whole files."""
    import datasets

    local = Path(path_or_repo)
    if local.is_dir():
        files = [str(p) for p in shard_paths(local, split)]
        if not files:
            raise FileNotFoundError(f"no pseudo-label shards {split}-*.parquet under {str(local / 'data')!r}")
        ds = datasets.load_dataset("parquet", data_files={split: files}, split=split, streaming=streaming)
    else:
        ds = datasets.load_dataset(str(path_or_repo), split=split, streaming=streaming)
    if not streaming:
        ds = ds.to_iterable_dataset(num_shards=max(1, min(len(ds), 64)))
    ds = _undecoded(ds, ["image", "disparity"])
    stats = stats if stats is not None else SampleStats(name=str(path_or_repo))
    return ds.map(_PseudoLabelDecoder(stats)).filter(_is_valid)


def push_to_hub(
    out_dir: str | Path,
    repo_id_or_local_dir: str | Path,
    private: bool = True,
    token: str | None = None,
    local: bool | None = None,
) -> str:
    """Publish a pseudo-label folder as a dataset: to a Hub dataset repo, or to a local folder.

    The target is local when `local=True`, or (`local=None`) when it is an existing path, an absolute path, or starts
    with "." or "~"; otherwise it is a Hub repo id ("user/name"). A local target becomes a folder that
    `datasets.load_dataset(target)` reads (data/*.parquet + README.md). Returns the local path or the repo URL.
    """
    out_dir = Path(out_dir)
    if not shard_paths(out_dir) and not list((out_dir / "data").glob("*.parquet")):
        raise FileNotFoundError(f"no pseudo-label shards under {str(out_dir / 'data')!r}")
    write_dataset_card(out_dir)
    target = str(repo_id_or_local_dir)
    if local is None:
        local = Path(target).exists() or Path(target).is_absolute() or target.startswith((".", "~"))
    if local:
        destination = Path(target).expanduser()
        (destination / "data").mkdir(parents=True, exist_ok=True)
        for path in sorted((out_dir / "data").glob("*.parquet")):
            if path.resolve() != (destination / "data" / path.name).resolve():
                shutil.copy2(path, destination / "data" / path.name)
        if (out_dir / "README.md").resolve() != (destination / "README.md").resolve():
            shutil.copy2(out_dir / "README.md", destination / "README.md")
        logger.info("pseudo-labels copied to %s", destination)
        return str(destination)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(target, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(out_dir),
        repo_id=target,
        repo_type="dataset",
        allow_patterns=["data/*.parquet", "README.md"],
        commit_message="Upload pseudo-labels",
    )
    url = f"https://huggingface.co/datasets/{target}"
    logger.info("pseudo-labels pushed to %s", url)
    return url


def summary(out_dir: str | Path, split: str = "train") -> dict:
    """Rows, shards and teachers of a pseudo-label folder (for logs and model cards)."""
    import pyarrow.parquet as pq

    paths = shard_paths(out_dir, split)
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    return {"shards": len(paths), "rows": rows, "teachers": sorted(_teacher_ids(Path(out_dir))), "split": split}


if __name__ == "__main__":  # python train/pseudo_label_format.py <dir>: print a summary
    import sys

    print(json.dumps(summary(sys.argv[1]), indent=2))
