"""Stage 2: the teacher labels unlabelled images; the result is a pseudo-label dataset (parquet shards).

    python train/pseudo_label.py --config train/configs/tiny_pseudo_label.yaml --teacher runs/teacher/final \
        --unlabelled path/to/photos --output_dir runs/pseudo_labels
    torchrun --nproc_per_node 2 train/pseudo_label.py ...      # 2 processes on CPU; `accelerate launch` on GPUs

From a folder to a pseudo-label: `data.open_source` lists the images as raw rows (nothing decoded yet),
`shard_for_process` gives each process disjoint images, ids already in a finished shard are passed over without
decoding, the one `data.Decoder` decodes the rest (upright 8-bit RGB, as the CLI) or records why it cannot, the one
predictor `inference.DepthEstimator` labels batches at the teacher processor's resolution (or `--inference_size`) and
resizes each map back to its image's size, and `PseudoLabelWriter` stores the untouched file bytes with the 16-bit map
in this process's shards `data/train-rank<r>-<NNNNN>.parquet`.

Resumable: shards are written atomically, and a restarted run (after a crash or `kill -9`, with any number of
processes) skips every id already in a finished shard, so every input appears in the output exactly once; a finished
shard that cannot be read is moved to `damaged/` and its images are labelled again (logged). Images that cannot be
labelled (not an image, truncated, empty, smaller than a 14-pixel patch, over PIL's pixel limit) are skipped and listed
with their reason in `skipped.json` (appended to `skipped-rank<r>.jsonl` as they are found, so a kill loses none);
the job goes on. Prints images/s. `--push_to_hub --hub_dataset_id <repo or local folder>` uploads (or copies) the
shards, the dataset card and `skipped.json`; the result loads with `datasets.load_dataset(<folder or repo>)`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from modeling_depth_anything.data import open_source, shard_for_process
from modeling_depth_anything.data import pseudo_labels as pseudo_label_format
from modeling_depth_anything.data.decode import BadSampleError, read_bytes
from modeling_depth_anything.inference import DepthEstimator
from modeling_depth_anything.training import setup_accelerator
from modeling_depth_anything.training.args import DataArguments, PseudoLabelArguments, parse_args, save_resolved_config

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


class Pipeline:
    """Decoding, the teacher and writing overlap: a thread decodes the next images while the teacher runs a batch, and
    another encodes the finished maps (16-bit PNG) and writes the shards. torch ops and PIL's codecs release the GIL.

    Both queues are bounded (`depth` batches), so memory stays flat. An error in either thread is raised in the main
    thread. `close` joins the writer before the last shard is written, so a row is in a finished shard or nowhere:
    a killed run redoes exactly the rows not yet in a finished shard (resume semantics as without threads).
    """

    def __init__(self, estimator: DepthEstimator, writer, batch_size: int, progress, world: int, depth: int = 2):
        self.estimator, self.writer, self.batch_size = estimator, writer, batch_size
        self.progress, self.world, self.depth = progress, world, depth
        self.labelled = 0
        self.writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pseudo-label-writer")
        self.pending_writes: deque[Future] = deque()

    def run(self, samples) -> None:
        """Label every (id, encoded bytes, (H, W, 3) float32 image) of `samples`, decoded in a prefetch thread."""
        batch: list[tuple[str, object, np.ndarray]] = []
        for item in prefetch(samples, depth=self.depth * self.batch_size):
            batch.append(item)
            if len(batch) >= self.batch_size:
                self._label(batch)
                batch = []
        if batch:
            self._label(batch)

    def _label(self, batch: list[tuple[str, object, np.ndarray]]) -> None:
        predictions = self.estimator.predict_arrays([image for _, _, image in batch])
        rows = [(sample_id, encoded, p.depth) for (sample_id, encoded, _), p in zip(batch, predictions, strict=True)]
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


def main(argv: list[str] | None = None) -> None:
    data_args, args = parse_args(DataArguments, PseudoLabelArguments, argv=argv)
    if not data_args.unlabelled:
        raise ValueError("nothing to label: give --unlabelled <image folder, dataset or synthetic>")
    accelerator = setup_accelerator(
        args.output_dir, args.mixed_precision, seed=args.seed, cpu_threads=args.cpu_threads
    )
    try:
        rank, world = accelerator.process_index, accelerator.num_processes
        estimator = DepthEstimator.from_pretrained(
            args.teacher,
            device=str(accelerator.device),
            precision=accelerator.mixed_precision,  # the run's resolved precision ("no" = fp32)
            batch_size=args.per_device_batch_size,
            input_size=args.inference_size,
        )
        if accelerator.is_main_process:
            os.makedirs(args.output_dir, exist_ok=True)
            save_resolved_config(os.path.join(args.output_dir, "resolved_config.yaml"), data_args, args)
            pseudo_label_format.set_aside_damaged_shards(args.output_dir)  # before any process reads the shards
        accelerator.wait_for_everyone()
        done = pseudo_label_format.written_ids(args.output_dir)
        writer = pseudo_label_format.PseudoLabelWriter(
            args.output_dir, teacher_id=args.teacher, shard_size=args.shard_size, shard_prefix=f"rank{rank}-"
        )
        limit = None if args.max_images is None else -(-args.max_images // world)  # per process, rounded up
        start = time.perf_counter()
        progress = tqdm(desc="pseudo-labelling", unit="img", disable=not accelerator.is_local_main_process)
        labeller = Pipeline(estimator, writer, args.per_device_batch_size, progress, world)
        skipped_path = os.path.join(args.output_dir, f"skipped-rank{rank}.jsonl")
        with open(skipped_path, "a", encoding="utf-8") as skipped_log:
            try:
                labeller.run(label_all(data_args.unlabelled, data_args, done, skipped_log, limit, rank, world))
            finally:
                labeller.close()
        progress.close()
        elapsed = time.perf_counter() - start
        total = accelerator.reduce(torch.tensor([labeller.labelled], device=accelerator.device), reduction="sum")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            finish(args, elapsed, int(total[0]))
        accelerator.wait_for_everyone()
    finally:
        accelerator.end_training()


def finish(args: PseudoLabelArguments, elapsed: float, labelled: int) -> None:
    """Merge the skipped lists, write the dataset card, report speed and push (main process)."""
    written = pseudo_label_format.written_ids(args.output_dir)
    skipped: dict[str, dict] = {}
    for path in sorted(Path(args.output_dir).glob("skipped-rank*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry["id"] not in written:  # a file fixed since an earlier run is labelled now
                skipped[entry["id"]] = entry
    skipped_path = os.path.join(args.output_dir, "skipped.json")
    with open(skipped_path, "w", encoding="utf-8") as handle:
        json.dump([skipped[key] for key in sorted(skipped)], handle, indent=1)
    pseudo_label_format.write_dataset_card(args.output_dir)
    print(
        f"pseudo-labelled {labelled} images in {elapsed:.1f} s: {labelled / max(elapsed, 1e-9):.2f} images/s "
        f"(all processes); {len(written)} images in {args.output_dir}; {len(skipped)} skipped "
        f"(listed with their reasons in {skipped_path})",
        flush=True,
    )
    if args.push_to_hub:
        where = pseudo_label_format.push_to_hub(args.output_dir, args.hub_dataset_id)
        print(f"pushed the pseudo-labels to {where}", flush=True)


if __name__ == "__main__":
    main()
