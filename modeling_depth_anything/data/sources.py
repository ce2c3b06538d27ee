"""Sources: where samples come from, as `Source` objects (raw `datasets` rows + the one `Decoder`), and the one opener
of every stage, `open_source(spec, role, data_args)`.

One code path for 50 local images on a laptop and 62M Hub images on many GPUs: every source is a
`datasets.IterableDataset` of *raw* rows (encoded files or their paths, streamed lazily), sharded across processes
with `datasets.distributed.split_dataset_by_node`. Decoding is separate (`Source.decoder`), so a stream can be
shuffled, skipped over and resumed on raw rows without decoding them, and decoded wherever it is iterated (a
DataLoader worker, see `mixing.py`).

Source specs (`DataArguments.labelled` / `unlabelled` / `pseudo_labels`, all read by `open_source`):

    "synthetic"                   procedural scenes (`synthetic.py`), seeded by `synthetic_seed` (+ an offset per role)
    an RGB-D folder               `<sample>/image.png` + `depth.png` in uint16 millimetres (`rgbd.py`)
    an image folder               recursive; ids are the relative paths (unlabelled only)
    .parquet / .tar / .arrow      files or globs (parquet, webdataset, arrow shards)
    a local dataset folder        anything `datasets.load_dataset(folder)` reads
    a Hub dataset id              "user/name" (streamed)
    a pseudo-label folder or id   role "pseudo": written by `train/pseudo_label.py` (`pseudo_labels.py`)
    a `datasets` object           (Iterable)Dataset(Dict), from Python code and tests

Where to add a data source: a new on-disk layout becomes a branch of `_open_rows` that returns raw rows (a generator
over files, like `_folder_rows` and `_rgbd_rows`, keeps the `datasets` state and sharding for free); a new label format
becomes a label reader for `Decoder` (like `decode.DepthLabel` and `pseudo_labels.PseudoLabel`).

The `load_*` functions return *decoded* `datasets.IterableDataset`s (bad rows skipped and counted in `stats`) for
direct use: `load_labelled`, `load_unlabelled`, `load_rgbd_folder`, `load_pseudo_labels`.
"""

from __future__ import annotations

import glob
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .decode import Decoder, DepthLabel, NoValidSampleError, SampleStats
from .pseudo_labels import PseudoLabel, shard_paths
from .rgbd import is_rgbd_folder, list_rgbd_samples, read_rgbd_depth
from .synthetic import synthetic_stream

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
ROLES = ("labelled", "unlabelled", "pseudo")
MAX_FOLDER_SHARDS = 1024  # a folder is cut into at most this many shards (processes and workers take whole shards)


@dataclass
class Source:
    """One stream: raw rows and how to decode them.

    Attributes:
        name (`str`): for logs and errors (the spec).
        rows (`datasets.IterableDataset`): raw rows; for synthetic scenes, the rendered samples themselves (rendered
            lazily in a `map`, so skipping rows costs nothing).
        decoder (`Decoder`, *optional*): rows -> samples with skip-and-count; None when rows are samples already.
        shuffle (`bool`): whether a shuffle buffer helps; False for synthetic scenes (random by construction).
    """

    name: str
    rows: Any
    decoder: Decoder | None = None
    shuffle: bool = True

    @property
    def stats(self) -> SampleStats:
        return self.decoder.stats if self.decoder is not None else SampleStats(name=self.name)

    def decoded(self):
        """The decoded `datasets.IterableDataset` (bad rows skipped and counted into `stats`)."""
        if self.decoder is None:
            return self.rows
        return self.rows.map(self.decoder).filter(Decoder.is_valid)


# ----------------------------------------------------------------------------------------------------------------------
# Raw rows


def _image_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _chunks(items: list, max_shards: int = MAX_FOLDER_SHARDS) -> list[list]:
    """Split a list into at most `max_shards` contiguous chunks (shards)."""
    size = max(1, math.ceil(len(items) / max_shards))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _folder_generator(chunks: list[list[str]], root: str):
    for chunk in chunks:
        for path in chunk:
            yield {"id": str(Path(path).relative_to(root)), "image": {"path": path, "bytes": None}}


def _folder_rows(folder: Path):
    import datasets

    files = _image_files(folder)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {str(folder)!r}")
    return datasets.IterableDataset.from_generator(
        _folder_generator, gen_kwargs={"chunks": _chunks(files), "root": str(folder)}
    )


def _rgbd_generator(chunks: list[list[tuple[str, str, str | None]]]):
    for chunk in chunks:
        for sample_id, image, depth in chunk:
            yield {
                "id": sample_id,
                "image": {"path": image, "bytes": None},
                "depth": None if depth is None else {"path": depth, "bytes": None},
            }


def _rgbd_rows(folder: Path):
    import datasets

    entries = [(e.id, str(e.image), None if e.depth is None else str(e.depth)) for e in list_rgbd_samples(folder)]
    if not entries:
        raise ValueError(f"no sample folders with an image under {str(folder)!r}")
    return datasets.IterableDataset.from_generator(_rgbd_generator, gen_kwargs={"chunks": _chunks(entries)})


def _builder_for_files(files: list[str]) -> str | None:
    suffixes = {Path(f).suffix.lower() for f in files}
    if suffixes <= {".parquet"}:
        return "parquet"
    if suffixes <= {".tar"}:
        return "webdataset"
    if suffixes <= {".arrow"}:
        return "arrow"
    return None


def _as_iterable(ds):
    return ds.to_iterable_dataset(num_shards=max(1, min(len(ds), 64)))


def _open_rows(source: Any, split: str, streaming: bool, data_files: Any = None, **load_kwargs):
    """Any source -> (IterableDataset of raw rows, kind) with kind in {"rows", "folder", "rgbd"}."""
    import datasets

    if isinstance(source, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if split not in source:
            raise ValueError(f"split {split!r} not in the dataset's splits {list(source)}")
        source = source[split]
    if isinstance(source, datasets.Dataset):
        return _as_iterable(source), "rows"
    if isinstance(source, datasets.IterableDataset):
        return source, "rows"
    if not isinstance(source, (str, Path)):
        raise TypeError(
            f"source must be a path, a Hub id or a datasets (Iterable)Dataset, got {type(source).__name__}"
        )
    path = Path(source)
    if data_files is None and path.is_dir():
        if is_rgbd_folder(path):
            return _rgbd_rows(path), "rgbd"
        files = [str(p) for p in sorted(path.rglob("*")) if p.is_file()]
        if not files:
            raise ValueError(f"{str(path)!r} is empty: no image files and no dataset files in it")
        builder = _builder_for_files([f for f in files if not Path(f).name.startswith((".", "README"))])
        if (
            builder is None
            and _image_files(path)
            and not any(f.endswith((".parquet", ".tar", ".csv", ".jsonl")) for f in files)
        ):
            return _folder_rows(path), "folder"
    if data_files is None and (path.is_file() or any(ch in str(source) for ch in "*?[")):
        matches = sorted(glob.glob(str(source))) if not path.is_file() else [str(path)]
        builder = _builder_for_files(matches) if matches else None
        if builder is None:
            raise ValueError(
                f"cannot read {str(source)!r}: expected .parquet, .tar (webdataset) or .arrow files, got {matches[:3]}"
            )
        source, data_files = builder, matches
    try:
        ds = datasets.load_dataset(str(source), data_files=data_files, split=split, streaming=streaming, **load_kwargs)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"no dataset at {str(source)!r} (not a local folder/file, and no Hub dataset with that id): {error}"
        ) from error
    return (ds if streaming else _as_iterable(ds)), "rows"


def keep_encoded(ds, columns: list[str]):
    """Make `datasets.Image` columns yield raw {"bytes", "path"} so that bad files reach the `Decoder`."""
    import datasets

    features = ds.features
    for column in columns:
        if features is not None and column in features and isinstance(features[column], datasets.Image):
            ds = ds.cast_column(column, datasets.Image(decode=False))
    return ds


def _auto_image_column(ds, preferred: str | None) -> str:
    import datasets

    if preferred:
        return preferred
    features = ds.features or {}
    for name, feature in features.items():
        if isinstance(feature, datasets.Image):
            return name
    for name in ("image", "jpg", "jpeg", "png", "webp"):
        if name in features:
            return name
    return "image"


def _source_name(source: Any) -> str:
    return str(source) if isinstance(source, (str, Path)) else type(source).__name__


# ----------------------------------------------------------------------------------------------------------------------
# Sources by role


def labelled_source(
    source: Any,
    image_column: str = "image",
    depth_column: str = "depth",
    depth_kind: str = "depth",
    depth_scale: float = 1.0,
    split: str = "train",
    streaming: bool = True,
    min_depth: float | None = None,
    max_depth: float | None = None,
    invalid_value: float | None = 0.0,
    sky_column: str | None = None,
    id_column: str | None = None,
    data_files: Any = None,
    stats: SampleStats | None = None,
    **load_kwargs,
) -> Source:
    """A labelled `Source`: any `datasets` source with an image column and a depth or disparity column.

    Args:
        source: a Hub dataset id, a local dataset folder (parquet/webdataset/imagefolder with metadata), a parquet or
            .tar file or glob, an RGB-D folder (`rgbd.py`; its own columns, millimetres), or a `datasets` object.
        image_column (`str`): column with the RGB image (PIL, bytes, path or `datasets.Image`).
        depth_column (`str`): column with the map: float array (H, W), a 16-bit PNG (`datasets.Image`, bytes or
            path), or .npy bytes.
        depth_kind (`str`): "depth" (z-depth or distance) or "disparity" (inverse depth, any scale).
        depth_scale (`float`): multiplies the raw values (e.g. 0.001 for millimetre PNGs).
        split (`str`): split to read from Hub/local datasets.
        streaming (`bool`): stream (True) or download and convert to an iterable (False); same output either way.
        min_depth, max_depth (`float`, *optional*): valid range of the scaled values.
        invalid_value (`float`, *optional*): raw value marking missing measurements (0 by default; None = none).
        sky_column (`str`, *optional*): bool (H, W) sky mask column; sky gets disparity 0 in `DepthTransform`.
        id_column (`str`, *optional*): sample id column; default "id", "__key__", the file path or a content hash.
        data_files: passed to `datasets.load_dataset`.
        stats (`SampleStats`, *optional*): counters to fill; a new one is made otherwise (`source.stats`).
    """
    label = DepthLabel(depth_column, depth_kind, depth_scale, invalid_value, min_depth, max_depth, sky_column)
    rows, kind = _open_rows(source, split, streaming, data_files, **load_kwargs)
    if kind == "folder":
        raise ValueError(f"{str(source)!r} is a folder of images without depth; use load_unlabelled for it")
    if kind == "rgbd":  # the layout fixes columns and units: read_rgbd_depth returns metres, 0 = no measurement
        image_column = "image"
        label = DepthLabel("depth", "depth", 1.0, 0.0, min_depth, max_depth, reader=read_rgbd_depth)
    rows = keep_encoded(rows, [image_column, label.column])
    name = _source_name(source)
    return Source(name, rows, Decoder(image_column, label, id_column, stats, name=name))


def unlabelled_source(
    source: Any,
    image_column: str | None = None,
    split: str = "train",
    streaming: bool = True,
    id_column: str | None = None,
    data_files: Any = None,
    stats: SampleStats | None = None,
    **load_kwargs,
) -> Source:
    """An unlabelled `Source`: an image folder (recursive; ids = relative paths), an RGB-D folder's images, parquet or
    webdataset (.tar) shards, a Hub id, or a `datasets` object. `image_column` defaults to the first `datasets.Image`
    column ("jpg"/"png" in webdatasets)."""
    rows, kind = _open_rows(source, split, streaming, data_files, **load_kwargs)
    image_column = "image" if kind != "rows" else _auto_image_column(rows, image_column)
    rows = keep_encoded(rows, [image_column])
    name = _source_name(source)
    return Source(name, rows, Decoder(image_column, None, id_column, stats, name=name))


def pseudo_label_source(
    path_or_repo: str | Path, split: str = "train", streaming: bool = True, stats: SampleStats | None = None
) -> Source:
    """A pseudo-label set (a folder written by `PseudoLabelWriter`, a folder it was pushed to, or a Hub dataset id).
    One shard per parquet file, so `split_dataset_by_node` gives processes whole files."""
    import datasets

    local = Path(path_or_repo)
    if local.is_dir():
        files = [str(p) for p in shard_paths(local, split)]
        if not files:
            raise FileNotFoundError(f"no pseudo-label shards {split}-*.parquet under {str(local / 'data')!r}")
        rows = datasets.load_dataset("parquet", data_files={split: files}, split=split, streaming=streaming)
    else:
        rows = datasets.load_dataset(str(path_or_repo), split=split, streaming=streaming)
    rows = keep_encoded(rows if streaming else _as_iterable(rows), ["image", "disparity"])
    name = str(path_or_repo)
    return Source(name, rows, Decoder("image", PseudoLabel(), "source_id", stats, name=name))


def synthetic_source(seed: int = 0, size: tuple[int, int] = (256, 256), num_shards: int = 8) -> Source:
    """Endless procedural scenes (`synthetic.synthetic_stream`); their order is random already (no shuffle)."""
    return Source(
        f"synthetic(seed={seed})", synthetic_stream(seed=seed, size=size, num_shards=num_shards), None, False
    )


def open_source(
    spec: Any, role: str, data_args: Any, seed_offset: int = 0, stats: SampleStats | None = None
) -> Source:
    """The one opener of every stage: a `Source` for one spec (module docstring) in `role` "labelled", "unlabelled" or
    "pseudo", configured by `data_args` (a `training.DataArguments`: columns, depth units, synthetic sizes and seed).

    `seed_offset` is added to `synthetic_seed`, so that e.g. the unlabelled synthetic images of pseudo-labelling are
    other scenes than the teacher's labelled ones.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if isinstance(spec, str) and spec == "synthetic" and role != "pseudo":
        return synthetic_source(
            seed=data_args.synthetic_seed + seed_offset,
            size=(data_args.synthetic_height, data_args.synthetic_width),
            num_shards=data_args.synthetic_num_shards,
        )
    if role == "pseudo":
        return pseudo_label_source(spec, stats=stats)
    if role == "unlabelled":
        return unlabelled_source(spec, stats=stats)
    return labelled_source(
        spec,
        image_column=data_args.image_column,
        depth_column=data_args.depth_column,
        depth_kind=data_args.depth_kind,
        depth_scale=data_args.depth_scale,
        max_depth=data_args.max_depth,
        stats=stats,
    )


def open_sources(specs: list, role: str, data_args: Any, seed_offset: int = 0) -> list[Source]:
    """`open_source` for each spec (a mixed part interleaves them round-robin, `mixing.MixedBatchStream`)."""
    if not specs:
        raise ValueError(f"no {role} source given")
    return [open_source(spec, role, data_args, seed_offset) for spec in specs]


# ----------------------------------------------------------------------------------------------------------------------
# Decoded streams


def load_labelled(source: Any, **kwargs):
    """`labelled_source(source, **kwargs).decoded()`: a decoded labelled `datasets.IterableDataset`."""
    return labelled_source(source, **kwargs).decoded()


def load_unlabelled(source: Any, **kwargs):
    """`unlabelled_source(source, **kwargs).decoded()`: a decoded unlabelled `datasets.IterableDataset`."""
    return unlabelled_source(source, **kwargs).decoded()


def load_rgbd_folder(path: str | Path, stats: SampleStats | None = None, **kwargs):
    """A decoded RGB-D folder (`rgbd.py`): one shard per sample folder (up to 1024), ids are the folder names, depth in
    metres. Extra keyword arguments go to `labelled_source` (e.g. `max_depth=10.0` in metres)."""
    if not is_rgbd_folder(path):
        raise ValueError(
            f"{str(path)!r} is not an RGB-D folder: expected <sample>/image.png and <sample>/depth.png inside"
        )
    return load_labelled(path, stats=stats or SampleStats(name=str(path)), **kwargs)


def load_pseudo_labels(path_or_repo: str | Path, split: str = "train", streaming: bool = True, stats=None):
    """Decoded pseudo-labels: ``id`` (= source_id), ``image`` (PIL RGB), ``depth`` ((H, W) float32 disparity),
    ``depth_kind`` ("disparity"), ``sky_mask`` (None), ``teacher_id``, ``skipped``."""
    return pseudo_label_source(path_or_repo, split, streaming, stats).decoded()


def shard_for_process(dataset, rank: int, world_size: int):
    """This process's part of a stream: whole shards when `dataset.num_shards % world_size == 0`, else every
    `world_size`-th sample. Together the processes see every sample exactly once (`split_dataset_by_node`)."""
    from datasets.distributed import split_dataset_by_node

    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank!r}, world_size={world_size!r}")
    return dataset if world_size == 1 else split_dataset_by_node(dataset, rank=rank, world_size=world_size)


def iter_valid(dataset, name: str = "stream", stats: SampleStats | None = None) -> Iterator[dict]:
    """Iterate a decoded stream once, counting bad samples into `stats`; raise `NoValidSampleError` if none was valid."""
    stats = stats if stats is not None else SampleStats(name=name)
    count = 0
    for sample in dataset:
        stats.add_skipped(sample.get("skipped", ()))
        stats.record_valid()
        count += 1
        yield sample
    if count == 0:
        raise NoValidSampleError(f"{name}: the stream yielded no valid sample ({stats})")


__all__ = [
    "IMAGE_EXTENSIONS",
    "Source",
    "iter_valid",
    "keep_encoded",
    "labelled_source",
    "load_labelled",
    "load_pseudo_labels",
    "load_rgbd_folder",
    "load_unlabelled",
    "open_source",
    "open_sources",
    "pseudo_label_source",
    "shard_for_process",
    "synthetic_source",
    "unlabelled_source",
]
