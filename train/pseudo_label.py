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

import json
import os
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from modeling_depth_anything.data import pseudo_labels as pseudo_label_format
from modeling_depth_anything.inference import DepthEstimator
from modeling_depth_anything.training import setup_accelerator
from modeling_depth_anything.training.args import DataArguments, PseudoLabelArguments, parse_args, save_resolved_config
from modeling_depth_anything.training.pseudo_labelling import LabellingPipeline, label_all


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
        labeller = LabellingPipeline(estimator, writer, args.per_device_batch_size, progress, world)
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
