"""Mixing by named parts: endless nested batches from several sources, shuffled, decoded in DataLoader workers, with
an exactly resumable state.

    stream = MixedBatchStream({"labelled": [labelled_source], "pseudo": [pseudo_source]}, ratio={"labelled": 1,
                              "pseudo": 2}, batch_size=6, transforms=DepthTransform(518), rank=rank, world_size=world,
                              shuffle_buffer=256, seed=0, num_workers=2)
    batch = stream.next_batch()          # {"labelled": {"pixel_values": (2, 3, S, S), ...}, "pseudo": {... (4, ...)}}
    state = stream.state_dict()          # JSON-serialisable; a new stream + load_state_dict(state) continues exactly

The path of one sample: a part's sources are split across processes (`split_dataset_by_node`), shuffled
(`datasets.IterableDataset.shuffle(seed, buffer_size)`: shard order and a buffer of raw rows, reshuffled per pass with
`set_epoch`), split across DataLoader workers by `datasets` itself (whole shards per worker), read round-robin when a
part has several sources, decoded by the source's `Decoder` (bad rows skipped and counted), transformed
(`DepthTransform`, seeded by seed/epoch/id) and collated. Each worker yields whole nested batches; the main process
takes them from the workers in a fixed round-robin order.

Why exact resume needs more than `datasets`' own state: `IterableDataset.state_dict()` drops the content of a shuffle
buffer ("examples from shuffle buffers are lost when resuming", its docstring), so a resumed shuffled stream would skip
up to a buffer of rows and continue with a different order. Here each worker's position in a shuffled source is the
number of raw rows it has read in the current pass: resuming restarts that pass (same seed and epoch, hence the same
order) and skips that many *raw* rows without decoding them. That costs reading, not decoding, the rows of the pass
so far (for a folder, file names; for parquet, its bytes; measured below); a source without a row buffer
(`shuffle_buffer` 0 or 1, or synthetic scenes, random already) resumes from `datasets`' own state in O(1). With
`shuffle_buffer` 1 the shard order is still shuffled anew every pass and the shards are interleaved row by row (a
sorted folder is cut into up to 1024 shards, so neighbours in the stream are far apart in the folder): the choice for
very long passes. Measured on this project's 2-core CPU (loaded, `datasets` 5.2): re-reading a folder's rows 7,800/s;
a pseudo-label parquet set with 270 KB rows 166 rows/s plain and 46 rows/s through `datasets`' shuffle (its
interleaving prefetches from every shard in threads), about the speed of decoding them (JPEG + 16-bit PNG, 640x480).

Why a plain `torch.utils.data.DataLoader`, not one prepared by Accelerate: `accelerator.prepare` on an iterable
DataLoader either dispatches batches from process 0 or makes every process read every batch and keep one in N, and it
resumes by replaying batches (`skip_first_batches`, decoding them again). Our processes read disjoint shards
(`split_dataset_by_node`) and keep their own positions (saved per process in every checkpoint), and each worker
reports its position with every batch it yields (the state a worker holds is ahead of what the main process consumed,
because workers prefetch), so nothing needs Accelerate's sharding. torchdata's `StatefulDataLoader` (Accelerate's
`use_stateful_dataloader`) would collect the workers' `datasets` states, which still lack the buffer content.

A resumed stream must have the same sources, ratio, batch size, seed, shuffle buffer, number of processes and number
of workers (the order depends on all of them); a different number of workers is refused with an error saying so.
"""

from __future__ import annotations

import copy
import logging
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from ..inference.precision import usable_cpus
from .decode import NoValidSampleError, SampleStats
from .sources import Source, shard_for_process
from .transforms import DepthTransform, collate

logger = logging.getLogger(__name__)


def default_num_workers(processes_on_this_machine: int = 1, cap: int = 8) -> int:
    """DataLoader workers per process from the CPUs this process may use: one CPU per process stays with the training
    loop, the rest decode (0 = decode in the training process, e.g. 2 processes on 2 cores)."""
    return max(0, min(cap, usable_cpus() // max(1, processes_on_this_machine) - 1))


class _SubStream:
    """One source as read by one worker: endless passes over its raw rows, decoded, with a resumable position."""

    def __init__(self, source: Source, buffered: bool, state: dict | None) -> None:
        self.source, self.buffered = source, buffered
        self.epoch = int(state["epoch"]) if state else 0
        self.rows_read = int(state.get("rows", 0)) if state else 0
        self.yielded = int(state.get("yielded", 0)) if state else 0
        self._resume = state
        self._iterator: Iterator | None = None
        self.skipped: list[tuple[str, str]] = []

    def _start_pass(self) -> None:
        rows = self.source.rows
        rows.set_epoch(self.epoch)
        resume, self._resume = self._resume, None
        if resume is not None and not self.buffered and resume.get("dataset") is not None:
            rows.load_state_dict(resume["dataset"])
        self._iterator = iter(rows)
        if resume is not None and self.buffered:
            for _ in range(self.rows_read):  # replay the pass up to the saved position: raw rows, no decoding
                next(self._iterator)
        elif resume is None:
            self.rows_read = self.yielded = 0

    def next_sample(self) -> dict:
        while True:
            if self._iterator is None:
                self._start_pass()
            try:
                row = next(self._iterator)
            except StopIteration:
                if self.yielded == 0:
                    raise NoValidSampleError(
                        f"{self.source.name}: a full pass yielded no valid sample ({self.source.stats})"
                    ) from None
                self.epoch += 1
                self._iterator = None
                continue
            self.rows_read += 1
            if self.source.decoder is None:
                sample = row
            else:
                sample, bad = self.source.decoder.decode_or_skip(row)
                if sample is None:
                    self.skipped.append(bad[:2])
                    continue
            self.yielded += 1
            return sample

    def state_dict(self) -> dict:
        state = {"epoch": self.epoch, "rows": self.rows_read, "yielded": self.yielded}
        if not self.buffered:
            live = self._iterator is not None
            state["dataset"] = self.source.rows.state_dict() if live else (self._resume or {}).get("dataset")
        return state


class _Part:
    """One named part in one worker: its sources read round-robin, `count` samples per batch."""

    def __init__(self, sources: list[Source], count: int, transform: Callable, buffered: list[bool], state) -> None:
        states = state["sources"] if state else [None] * len(sources)
        self.streams = [_SubStream(s, b, st) for s, b, st in zip(sources, buffered, states, strict=True)]
        self.count, self.transform = count, transform
        self.next_index = int(state["next"]) if state else 0

    def next_batch(self) -> dict:
        samples = []
        for _ in range(self.count):
            stream = self.streams[self.next_index % len(self.streams)]
            self.next_index += 1
            samples.append(stream.next_sample())
            samples[-1] = self.transform(samples[-1], epoch=stream.epoch)
        return collate(samples)

    def take_skipped(self) -> list[tuple[str, str]]:
        skipped = [pair for stream in self.streams for pair in stream.skipped]
        for stream in self.streams:
            stream.skipped = []
        return skipped

    def state_dict(self) -> dict:
        return {"next": self.next_index, "sources": [stream.state_dict() for stream in self.streams]}


class _BatchProducer(torch.utils.data.IterableDataset):
    """What runs in each DataLoader worker (or in the training process with 0 workers): endless nested batches, each
    with the worker's id, its position after this batch and the bad rows it skipped for it."""

    def __init__(self, parts: dict, counts: dict, transforms: dict, buffered: dict, worker_states: list) -> None:
        super().__init__()
        self.parts, self.counts, self.transforms = parts, counts, transforms
        self.buffered, self.worker_states = buffered, worker_states

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        state = self.worker_states[worker] or {}
        parts = {}
        for name, sources in self.parts.items():
            # Each worker gets its own copy of the `datasets` objects: `IterableDataset.set_epoch` writes a counter in
            # shared memory (meant for a main process driving persistent workers), so workers that start their passes
            # independently would change each other's epoch mid-pass (measured: 2 of 15 runs of a 2-worker shuffled
            # stream differed from the third pass on). A copy also starts without a previous `load_state_dict`.
            own = [Source(s.name, copy.deepcopy(s.rows), s.decoder, s.shuffle) for s in sources]
            parts[name] = _Part(own, self.counts[name], self.transforms[name], self.buffered[name], state.get(name))
        while True:
            batch = {name: part.next_batch() for name, part in parts.items()}
            yield {
                "worker": worker,
                "batch": batch,
                "state": {name: part.state_dict() for name, part in parts.items()},
                "skipped": {name: part.take_skipped() for name, part in parts.items()},
            }


def _keep(payload: dict) -> dict:
    """collate_fn of the DataLoader: workers yield whole batches already."""
    return payload


def _as_source(name: str, value: Any) -> Source:
    return value if isinstance(value, Source) else Source(name, value, None, True)


class MixedBatchStream:
    """Endless nested batches mixing named parts at a fixed per-batch ratio (module docstring).

    Args:
        parts (`dict[str, Source | list[Source]]`): each part's sources (`sources.open_source`); a decoded
            `datasets.IterableDataset` is accepted as a source too. Several sources of one part are read round-robin.
        ratio (`dict[str, int]`, *optional*): samples of each part per `sum(ratio)` samples, e.g. {"labelled": 1,
            "pseudo": 2}; `batch_size` must split exactly; parts at 0 are dropped. Default: 1 each.
        batch_size (`int`, defaults to 6): samples per batch and process, all parts together.
        transforms (`Callable` or `dict[str, Callable]`, *optional*): per-sample transform (of every part, or per
            part); default `DepthTransform()`.
        rank, world_size (`int`): this process and the number of processes.
        shuffle_buffer (`int`, defaults to 0): raw rows in each source's shuffle buffer: 0 = stored order; 1 = shard
            order shuffled and shards interleaved, anew each pass (O(1) resume from `datasets`' state); more = also a
            row buffer (resume re-reads the pass so far, module docstring).
        seed (`int`, defaults to 0): seed of the shuffles (the transforms carry their own).
        num_workers (`int`, defaults to 0): DataLoader workers decoding in parallel (0 = in this process); lowered to
            the smallest number of shards a source has in this process (`datasets` gives workers whole shards).

    `next_batch()` (or iterating) returns ``{part: collate(...)}``; `state_dict()` / `load_state_dict()` resume exactly;
    `stats` (`SampleStats` per part) and `bad_counts()` (skipped rows by reason, including those before a resume).
    """

    def __init__(
        self,
        parts: Mapping[str, Any],
        ratio: Mapping[str, int] | None = None,
        batch_size: int = 6,
        transforms: Callable | Mapping[str, Callable] | None = None,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer: int = 0,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        ratio = dict(ratio) if ratio is not None else dict.fromkeys(parts, 1)
        if set(ratio) != set(parts):
            raise ValueError(f"ratio names parts {sorted(ratio)}, the streams are {sorted(parts)}")
        if any(not isinstance(v, int) or v < 0 for v in ratio.values()) or sum(ratio.values()) == 0:
            raise ValueError(f"ratio must be non-negative integers, not all 0, got {ratio!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        if any(batch_size * share % sum(ratio.values()) for share in ratio.values()):
            raise ValueError(f"batch_size {batch_size!r} does not split exactly at ratio {ratio!r}")
        if not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be an integer >= 0, got {shuffle_buffer!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        self.counts = {name: batch_size * share // sum(ratio.values()) for name, share in ratio.items() if share}
        if not callable(transforms):
            transforms = dict(transforms or {})
        self.transforms = {
            name: transforms if callable(transforms) else transforms.get(name) or DepthTransform()
            for name in self.counts
        }
        self.parts: dict[str, list[Source]] = {}
        self.buffered: dict[str, list[bool]] = {}
        for name in self.counts:
            values = parts[name] if isinstance(parts[name], (list, tuple)) else [parts[name]]
            if not values:
                raise ValueError(f"part {name!r} has no source")
            self.parts[name], self.buffered[name] = [], []
            for index, value in enumerate(values):
                source = _as_source(name, value)
                rows = shard_for_process(source.rows, rank, world_size)
                if source.shuffle and shuffle_buffer > 0:  # each source its own seed: similar sources not in lockstep
                    rows = rows.shuffle(seed=zlib.crc32(f"{seed}/{name}/{index}".encode()), buffer_size=shuffle_buffer)
                # a buffer of 1 row is empty whenever a row is yielded: `datasets`' own state is exact then
                buffered = source.shuffle and shuffle_buffer > 1
                self.parts[name].append(Source(source.name, rows, source.decoder, source.shuffle))
                self.buffered[name].append(buffered)
        shards = min(s.rows.num_shards for sources in self.parts.values() for s in sources)
        self.num_workers = min(num_workers, shards)
        if self.num_workers < num_workers:
            logger.info(
                "data: %d DataLoader workers instead of %d, as a source has only %d shard(s) in this process",
                self.num_workers,
                num_workers,
                shards,
            )
        self.stats = {name: SampleStats(name=name) for name in self.counts}
        self.batches = 0
        self._worker_states: list[dict | None] = [None] * max(1, self.num_workers)
        self._resumed_bad: dict[str, int] = {}
        self._iterator: Iterator | None = None
        self._queues: list[deque] = [deque() for _ in self._worker_states]

    def _start(self) -> None:
        producer = _BatchProducer(self.parts, self.counts, self.transforms, self.buffered, list(self._worker_states))
        if self.num_workers == 0:
            self._iterator = iter(producer)
        else:
            loader = torch.utils.data.DataLoader(
                producer, batch_size=None, num_workers=self.num_workers, collate_fn=_keep
            )
            self._iterator = iter(loader)
        self._queues = [deque() for _ in self._worker_states]

    def next_batch(self) -> dict[str, dict]:
        if self._iterator is None:
            self._start()
        # Workers' batches are taken in a fixed round-robin order, so that a resumed stream (whose DataLoader starts
        # again at worker 0) gives the same sequence: early arrivals wait in their worker's queue.
        want = self.batches % len(self._queues)
        while not self._queues[want]:
            payload = next(self._iterator)
            self._queues[payload["worker"]].append(payload)
        payload = self._queues[want].popleft()
        self._worker_states[want] = payload["state"]
        for name, batch in payload["batch"].items():
            self.stats[name].add_skipped(payload["skipped"][name])
            for _ in batch["ids"]:
                self.stats[name].record_valid()
        self.batches += 1
        return payload["batch"]

    def __iter__(self) -> Iterator[dict[str, dict]]:
        while True:
            yield self.next_batch()

    def bad_counts(self) -> dict[str, int]:
        """Skipped rows by reason, summed over the parts (and over the run before a resume)."""
        counts = dict(self._resumed_bad)
        for stats in self.stats.values():
            for reason, count in stats.skipped.items():
                counts[reason] = counts.get(reason, 0) + count
        return counts

    def state_dict(self) -> dict:
        """The position after the last returned batch (JSON-serialisable)."""
        return {
            "batches": self.batches,
            "num_workers": self.num_workers,
            "parts": sorted(self.counts),
            "workers": list(self._worker_states),
            "bad": self.bad_counts(),
        }

    def load_state_dict(self, state: dict) -> None:
        if sorted(state["parts"]) != sorted(self.counts):
            raise ValueError(f"the state has parts {sorted(state['parts'])}, this stream has {sorted(self.counts)}")
        if int(state["num_workers"]) != self.num_workers:
            raise ValueError(
                f"the state was saved with {state['num_workers']} DataLoader workers per process, this stream has "
                f"{self.num_workers}; the sample order depends on it: resume with --num_workers {state['num_workers']}"
            )
        self.close()
        self.batches = int(state["batches"])
        self._worker_states = list(state["workers"])
        self._resumed_bad = dict(state.get("bad", {}))
        self.stats = {name: SampleStats(name=name) for name in self.counts}

    def close(self) -> None:
        """Stop the DataLoader workers (they also stop with the process)."""
        self._iterator = None  # the DataLoader iterator shuts its workers down when it is deleted


def stage_stream(
    parts: Mapping[str, Any],
    ratio: Mapping[str, int],
    data_args: Any,
    batch_size: int,
    seed: int,
    rank: int,
    world_size: int,
    transform: Callable | None = None,
) -> MixedBatchStream:
    """The batch stream of a training stage from its `DataArguments`: every part cropped by one
    `DepthTransform(crop_size, random crop, hflip, seed)` (or `transform`, e.g. the metric stage's
    `metric.MetricDepthTransform`), shuffled with `shuffle_buffer`, decoded in `num_workers` workers (default
    `default_num_workers` for the processes on this machine, `LOCAL_WORLD_SIZE` under torchrun)."""
    workers = data_args.num_workers
    if workers is None:
        workers = default_num_workers(int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))
    return MixedBatchStream(
        parts,
        ratio=ratio,
        batch_size=batch_size,
        transforms=transform
        or DepthTransform(size=data_args.crop_size, random_crop=True, hflip=data_args.hflip, seed=seed),
        rank=rank,
        world_size=world_size,
        shuffle_buffer=data_args.shuffle_buffer,
        seed=seed,
        num_workers=workers,
    )
