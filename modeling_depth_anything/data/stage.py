"""Glue between the training stages and the data engine (`train/data.py`, `train/augment.py`,
`train/pseudo_label_format.py`): source specs -> decoded `datasets` streams, and the batch streams the loops draw from.

Source specs (`DataArguments.labelled` / `unlabelled`): `"synthetic"` (procedural scenes of `train/synthetic.py`,
seeded by `synthetic_seed`), or anything `data.load_labelled` / `data.load_unlabelled` reads: a local "rgbd folder"
(`<sample>/image.png + depth.png` in mm), an image folder, parquet/webdataset files or a Hub dataset id. Pseudo-label
folders (or Hub dataset ids) written by `train/pseudo_label.py` are read with `pseudo_label_format.load_pseudo_labels`.

`BatchSource` wraps `data.MixedBatchStream` with what `common.TrainingRun` needs: `next_batch()`,
`state_dict()` / `load_state_dict()` (JSON-serialisable: saved per process in every checkpoint) and `bad_counts()`
(the skipped samples by reason, as the data engine's decoders reported them).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from . import streams as data
from .pseudo_labels import load_pseudo_labels
from .synthetic import synthetic_stream

logger = logging.getLogger(__name__)


def open_source(spec: str, data_args, labelled: bool, seed_offset: int = 0):
    """A decoded `datasets.IterableDataset` (unsharded) for one source spec."""
    if spec == "synthetic":
        return synthetic_stream(
            seed=data_args.synthetic_seed + seed_offset,
            size=(data_args.synthetic_height, data_args.synthetic_width),
            num_shards=data_args.synthetic_num_shards,
        )
    if labelled:
        return data.load_labelled(
            spec,
            image_column=data_args.image_column,
            depth_column=data_args.depth_column,
            depth_kind=data_args.depth_kind,
            depth_scale=data_args.depth_scale,
            max_depth=data_args.max_depth,
        )
    return data.load_unlabelled(spec)


def open_sources(specs: list[str], data_args, labelled: bool, seed_offset: int = 0):
    """Several specs interleaved into one stream (round-robin, all of them to the end)."""
    import datasets

    streams = [open_source(spec, data_args, labelled, seed_offset) for spec in specs]
    if len(streams) == 1:
        return streams[0]
    return datasets.interleave_datasets(streams, stopping_strategy="all_exhausted")


def open_pseudo_labels(path: str):
    return load_pseudo_labels(path)


class BatchSource:
    """Batches from `data.MixedBatchStream` for one process, with state and bad-sample counts.

    Args:
        first: decoded stream of the first part of each batch (labelled or pseudo-labelled).
        second (*optional*): decoded stream of the second part (pseudo-labelled or unlabelled).
        data_args: `DataArguments` (crop size, flips).
        batch_size (`int`): samples per batch and process.
        ratio (`tuple[int, int]`): first : second.
        seed (`int`): seed of the crops and flips (`data.DepthTransform`).
        rank, world_size (`int`): this process and the number of processes (streams are sharded by node).

    `next_batch()` returns `{"first": batch, "second": batch}` (the second only with a second stream), each a
    `data.collate` dict: ``pixel_values`` (B, 3, S, S), ``disparity`` (B, S, S) and ``valid_mask`` (B, S, S) for
    streams with depth, ``ids``.
    """

    def __init__(
        self, first, second, data_args, batch_size: int, ratio: tuple[int, int], seed: int, rank: int, world_size: int
    ) -> None:
        transform = data.DepthTransform(size=data_args.crop_size, random_crop=True, hflip=data_args.hflip, seed=seed)
        self.mixer = data.MixedBatchStream(
            first,
            second,
            labelled_transform=transform,
            unlabelled_transform=transform,
            batch_size=batch_size,
            ratio=ratio,
            rank=rank,
            world_size=world_size,
        )
        self._iterator = iter(self.mixer)
        self._resumed_skips: dict[str, int] = {}

    def next_batch(self) -> dict[str, Any]:
        batch = next(self._iterator)
        return {"first" if name == "labelled" else "second": value for name, value in batch.items()}

    def bad_counts(self) -> dict[str, int]:
        counts = dict(self._resumed_skips)
        for stats in self.mixer.stats.values():
            for reason, count in stats.skipped.items():
                counts[reason] = counts.get(reason, 0) + count
        return counts

    def state_dict(self) -> dict:
        return {"mixer": self.mixer.state_dict(), "bad": self.bad_counts()}

    def load_state_dict(self, state: dict) -> None:
        self.mixer.load_state_dict(state["mixer"])
        self._resumed_skips = dict(state.get("bad", {}))
        self._iterator = iter(self.mixer)


def flatten(batch: dict[str, Any]) -> dict[str, Any]:
    """{"first": {...}, "second": {...}} -> {"first.pixel_values": ..., ...} (what `TrainingRun` moves to device)."""
    flat = {f"{part}.{key}": value for part, values in batch.items() for key, value in values.items()}
    flat["batch_size"] = sum(values["pixel_values"].shape[0] for values in batch.values())
    return flat


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
