"""The pseudo-labelling stage's machinery (`train/pseudo_label.py` is its entry script): unlabelled sources read for
one process with resume, and decoding / the teacher / writing overlapped in threads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from ..data import open_source, shard_for_process
from ..data.decode import BadSampleError, read_bytes
from ..inference import DepthEstimator

logger = logging.getLogger(__name__)

SYNTHETIC_SEED_OFFSET = 1000  # unlabelled synthetic scenes are other scenes than the teacher's labelled ones


def original_bytes(source, row: dict, sample: dict):
    """The untouched encoded file of a row (no re-compression); the decoded image where there is none (synthetic
    scenes, in-memory PIL images), which the writer stores as a lossless PNG."""
    if source.decoder is None:
        return sample["image"]
    try:
        return read_bytes(row[source.decoder.image_column])[0]
    except BadSampleError:
        return sample["image"]


class LabellingPipeline:
    """Decoding, the teacher and writing overlap: a thread decodes the next images while the teacher runs a batch, and
    another encodes the finished maps (16-bit PNG) and writes the shards. torch ops and PIL's codecs release the GIL.

    Where the teacher runs on an accelerator, the prefetch thread also preprocesses (resizes and normalises) the next
    images: the main thread then only feeds the device. Preprocessing costs a CPU core 21 ms per 1080x1440 photo
    (resized to 518x686; 5 ms at 518x686, one thread), as long as a large teacher's batch on a GPU. On a CPU the model
    already uses every core, and torch's intra-op threads are per process, so a resize in the prefetch thread competes
    with the forward: measured on a 2-core Zen 4 (`avx512_bf16`, bf16), tiny teacher at 126x168, 99.4 images/s in the main thread against 80.6
    ahead (`eval/pseudo_label_throughput.py --images 1024 --repeats 3`). `preprocess_ahead=None` decides by device.

    Both queues are bounded (`depth` batches), so memory stays flat. An error in either thread is raised in the main
    thread. `close` joins the writer before the last shard is written, so a row is in a finished shard or nowhere:
    a killed run redoes exactly the rows not yet in a finished shard (resume semantics as without threads).
    """

    def __init__(
        self,
        estimator: DepthEstimator,
        writer,
        batch_size: int,
        progress,
        world: int,
        depth: int = 2,
        preprocess_ahead: bool | None = None,
    ):
        self.estimator, self.writer, self.batch_size = estimator, writer, batch_size
        self.progress, self.world, self.depth = progress, world, depth
        if preprocess_ahead is None:
            preprocess_ahead = estimator.device.type != "cpu"
        self.preprocess_ahead = preprocess_ahead
        where = f"in the prefetch thread (the model runs on {estimator.device.type})"
        if not preprocess_ahead:
            where = "between batches (the model runs on the CPU and uses its cores)"
        logger.info("pseudo-labelling: images are preprocessed %s", where)
        self.labelled = 0
        self.writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pseudo-label-writer")
        self.pending_writes: deque[Future] = deque()

    def run(self, samples) -> None:
        """Label every (id, encoded bytes, (H, W, 3) float32 image) of `samples`, decoded (and, with
        `preprocess_ahead`, preprocessed into the model's input) in a prefetch thread."""
        batch: list[tuple[str, object, np.ndarray, torch.Tensor | None]] = []
        if self.preprocess_ahead:
            items = ((*item, self.estimator.preprocess(item[2])) for item in samples)
        else:
            items = ((*item, None) for item in samples)
        for item in prefetch(items, depth=self.depth * self.batch_size):
            batch.append(item)
            if len(batch) >= self.batch_size:
                self._label(batch)
                batch = []
        if batch:
            self._label(batch)

    def _label(self, batch: list[tuple[str, object, np.ndarray, torch.Tensor | None]]) -> None:
        images, prepared = [item[2] for item in batch], [item[3] for item in batch]
        predictions = self.estimator.predict_arrays(images, prepared=prepared)
        rows = [(item[0], item[1], p.depth) for item, p in zip(batch, predictions, strict=True)]
        while len(self.pending_writes) >= self.depth:  # bounded: the teacher waits for the writer, never the reverse
            self.pending_writes.popleft().result()
        self.pending_writes.append(self.writes.submit(self._write, rows))
        self.labelled += len(batch)

    def _write(self, rows) -> None:
        for sample_id, encoded, depth in rows:
            self.writer.add(sample_id, encoded, depth)  # (H, W) at the image's own size; a full shard is written
        self.progress.update(len(rows) * self.world)

    def close(self) -> None:
        """Wait for every queued write (raising its error), then write the last, partial shard."""
        try:
            while self.pending_writes:
                self.pending_writes.popleft().result()
        finally:
            self.writes.shutdown(wait=True)
        self.writer.flush()


def prefetch(iterable, depth: int):
    """Iterate `iterable` in a daemon thread, `depth` items ahead; its error is raised here. Stopping early (an
    exception in the consumer) stops the thread at its next item."""
    items: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in iterable:
                if stop.is_set():
                    return
                items.put(item)
            items.put(done)
        except BaseException as error:  # handed to the consumer, which raises it
            items.put(error)

    thread = threading.Thread(target=produce, name="pseudo-label-decoder", daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                items.get(timeout=0.1)
        thread.join()


def label_spec(spec: str, data_args, done: set[str], skipped_log, limit: int | None, rank, world):
    """One unlabelled source's images of this process that are not done yet, decoded: yields (id, encoded bytes,
    (H, W, 3) float32 image in [0, 1]); logs the ones that cannot be labelled. Stops after `limit` images."""
    source = open_source(spec, "unlabelled", data_args, seed_offset=SYNTHETIC_SEED_OFFSET)
    count = 0
    for row in shard_for_process(source.rows, rank, world):
        if limit is not None and count >= limit:
            return
        if source.decoder is None:  # synthetic scenes: rows are samples already
            sample = row
        else:
            if source.decoder.sample_id(row) in done:  # resume: no decoding for what is written
                continue
            sample, bad = source.decoder.decode_or_skip(row)
            if sample is None:
                sample_id, reason, detail = bad
                skipped_log.write(json.dumps({"id": sample_id, "reason": reason, "detail": detail}) + "\n")
                skipped_log.flush()
                continue
        if str(sample["id"]) not in done:
            count += 1
            image = np.asarray(sample["image"], dtype=np.float32) / np.float32(255.0)  # (H, W, 3) in [0, 1]
            yield str(sample["id"]), original_bytes(source, row, sample), image


def label_all(specs, data_args, done: set[str], skipped_log, limit: int | None, rank, world):
    """`label_spec` over every source, `limit` images in all."""
    count = 0
    for spec in specs:
        for item in label_spec(
            spec, data_args, done, skipped_log, None if limit is None else limit - count, rank, world
        ):
            count += 1
            yield item
