"""Stage 2: the teacher labels unlabelled images; the result is a pseudo-label dataset (parquet parts).

    python train/pseudo_label.py --config train/configs/tiny_pseudo_label.yaml --teacher runs/teacher/final \
        --unlabelled folder:photos --output_dir runs/pseudo_labels
    torchrun --nproc_per_node 2 train/pseudo_label.py ...      # 2 processes on CPU; `accelerate launch` on GPUs

Batched teacher inference over the unlabelled stream, sharded across processes (each process reads disjoint images
and writes its own parts `data/rank<r>-<n>.parquet`). Resumable: parts are written atomically, and a restarted run
(after a crash or `kill -9`, with any number of processes) skips every id already in a finished part, so every input
appears in the output exactly once. Unreadable images are skipped and listed in `skipped.jsonl`. Prints images/s.
`--push_to_hub --hub_dataset_id <repo or local folder>` uploads (or copies) the dataset, which loads with
`datasets.load_dataset(<folder or repo>)`.

The teacher labels the clean image at its processor's resolution (or `--inference_size`), and the disparity is
resized back to the image's own size, so image and label stay aligned for the student's joint transform.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from modeling_depth_anything import DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.data import pseudo_labels as pseudo_label_format
from modeling_depth_anything.data import streams as data
from modeling_depth_anything.training import setup_accelerator
from modeling_depth_anything.training.args import DataArguments, PseudoLabelArguments, parse_args, save_resolved_config


def open_unlabelled(spec: str, data_args, stats: data.SampleStats):
    """Decoded unlabelled stream of one spec; synthetic scenes (endless) use `synthetic_seed + 1000`."""
    if spec == "synthetic":
        return data.synthetic_stream(
            seed=data_args.synthetic_seed + 1000,
            size=(data_args.synthetic_height, data_args.synthetic_width),
            num_shards=data_args.synthetic_num_shards,
        )
    return data.load_unlabelled(spec, stats=stats)


def original_bytes(spec: str, sample: dict):
    """The untouched encoded file for local image folders (no re-compression); the decoded image otherwise."""
    path = Path(spec) / str(sample["id"])
    return path.read_bytes() if spec != "synthetic" and path.is_file() else sample["image"]


def label_batch(teacher, processor, accelerator, images: list) -> list:
    """Teacher disparity for each PIL image, at the image's own size: a list of (H, W) float32 arrays."""
    inputs = processor(images, return_tensors="pt")
    with torch.no_grad(), accelerator.autocast():
        outputs = teacher(pixel_values=inputs["pixel_values"].to(accelerator.device))
    maps = processor.post_process_depth_estimation(
        outputs.predicted_depth.float().cpu(),
        target_sizes=[(image.height, image.width) for image in images],
        resized_sizes=inputs.get("resized_sizes"),
    )
    return [entry["predicted_depth"].numpy() for entry in maps]


def main(argv: list[str] | None = None) -> None:
    data_args, args = parse_args(DataArguments, PseudoLabelArguments, argv=argv)
    if not data_args.unlabelled:
        raise ValueError("nothing to label: give --unlabelled <image folder, dataset or synthetic>")
    accelerator = setup_accelerator(
        args.output_dir, args.mixed_precision, seed=args.seed, cpu_threads=args.cpu_threads
    )
    try:
        rank, world = accelerator.process_index, accelerator.num_processes
        teacher = DepthAnythingForDepthEstimation.from_pretrained(args.teacher).eval().to(accelerator.device)
        size = args.inference_size
        if size is None:
            try:
                size = DepthAnythingImageProcessor.from_pretrained(args.teacher).size
            except (OSError, ValueError):
                size = 518
        processor = DepthAnythingImageProcessor(size=size)
        if accelerator.is_main_process:
            os.makedirs(args.output_dir, exist_ok=True)
            save_resolved_config(os.path.join(args.output_dir, "resolved_config.yaml"), data_args, args)
        accelerator.wait_for_everyone()
        done = pseudo_label_format.written_ids(args.output_dir)
        writer = pseudo_label_format.PseudoLabelWriter(
            args.output_dir, teacher_id=args.teacher, shard_size=args.shard_size, shard_prefix=f"rank{rank}-"
        )
        limit = None if args.max_images is None else -(-args.max_images // world)  # per process, rounded up
        labelled, start, skipped = 0, time.perf_counter(), {}
        progress = tqdm(desc="pseudo-labelling", unit="img", disable=not accelerator.is_local_main_process)
        pending: list[tuple[str, object, object]] = []

        def flush_pending() -> None:
            nonlocal labelled
            if pending:
                maps = label_batch(teacher, processor, accelerator, [image for _, _, image in pending])
                for (sample_id, encoded, _), disparity in zip(pending, maps, strict=True):
                    writer.add(sample_id, encoded, disparity)
                labelled += len(pending)
                progress.update(len(pending) * world)
                pending.clear()

        for spec in data_args.unlabelled:
            stats = data.SampleStats(name=spec)
            stream = data.shard_for_process(open_unlabelled(spec, data_args, stats), rank, world)
            for sample in stream:
                for sample_id, reason in sample.get("skipped", ()):
                    skipped[sample_id] = reason
                if limit is not None and labelled + len(pending) >= limit:
                    break
                if str(sample["id"]) in done:
                    continue
                pending.append((str(sample["id"]), original_bytes(spec, sample), sample["image"]))
                if len(pending) >= args.per_device_batch_size:
                    flush_pending()
            skipped.update(dict(stats.skipped_ids))
        flush_pending()
        writer.flush()
        progress.close()
        with open(os.path.join(args.output_dir, f"skipped-rank{rank}.jsonl"), "a", encoding="utf-8") as handle:
            for sample_id, reason in sorted(skipped.items()):
                handle.write(json.dumps({"id": sample_id, "reason": reason}) + "\n")
        elapsed = time.perf_counter() - start
        total = accelerator.reduce(torch.tensor([labelled], device=accelerator.device), reduction="sum")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            finish(args, elapsed, int(total[0]))
        accelerator.wait_for_everyone()
    finally:
        accelerator.end_training()


def finish(args: PseudoLabelArguments, elapsed: float, labelled: int) -> None:
    """Merge the skipped lists, write the dataset card, report speed and push (main process)."""
    skipped: dict[str, str] = {}
    for path in sorted(Path(args.output_dir).glob("skipped-rank*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            skipped[entry["id"]] = entry["reason"]
    skipped_path = os.path.join(args.output_dir, "skipped.json")
    with open(skipped_path, "w", encoding="utf-8") as handle:
        json.dump([{"id": key, "reason": value} for key, value in sorted(skipped.items())], handle, indent=1)
    pseudo_label_format.write_dataset_card(args.output_dir)
    total = len(pseudo_label_format.written_ids(args.output_dir))
    print(
        f"pseudo-labelled {labelled} images in {elapsed:.1f} s: {labelled / max(elapsed, 1e-9):.2f} images/s "
        f"(all processes); {total} images in {args.output_dir}; {len(skipped)} unreadable skipped "
        f"(listed in {skipped_path})",
        flush=True,
    )
    if args.push_to_hub:
        where = pseudo_label_format.push_to_hub(args.output_dir, args.hub_dataset_id)
        print(f"pushed the pseudo-labels to {where}", flush=True)


if __name__ == "__main__":
    main()
