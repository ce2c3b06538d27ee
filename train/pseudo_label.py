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

import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # train/ is a script folder
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root

import torch  # noqa: E402
from args import DataArguments, PseudoLabelArguments, parse_args, save_resolved_config  # noqa: E402
from common import push_folder, setup_accelerator  # noqa: E402
from PIL import Image  # noqa: E402
from stage_data import (  # noqa: E402
    BadSampleError,
    PseudoLabelWriter,
    decode_image,
    encode_disparity,
    raw_source,
    write_dataset_card,
    written_ids,
)
from tqdm.auto import tqdm  # noqa: E402

from modeling_depth_anything import DepthAnythingForDepthEstimation, DepthAnythingImageProcessor  # noqa: E402


def _example_id_and_bytes(spec: str, example: dict) -> tuple[str, bytes | None, object]:
    """(stable id, original encoded bytes or None, decodable source) of a raw unlabelled example."""
    if spec == "synthetic":
        buffer = io.BytesIO()
        example["image"].save(buffer, format="PNG")
        return example["id"], buffer.getvalue(), example["image"]
    root = spec.partition(":")[2]
    path = example["id"]
    with open(path, "rb") as handle:
        data = handle.read()
    return os.path.relpath(path, root), data, data


def label_batch(teacher, processor, accelerator, images: list) -> list:
    """Teacher disparity for each uint8 (H, W, 3) image, at the image's size: list of (H, W) float32 arrays."""
    inputs = processor(images, return_tensors="pt")
    with torch.no_grad(), accelerator.autocast():
        outputs = teacher(pixel_values=inputs["pixel_values"].to(accelerator.device))
    maps = processor.post_process_depth_estimation(
        outputs.predicted_depth.float().cpu(), target_sizes=[image.shape[:2] for image in images],
        resized_sizes=inputs.get("resized_sizes"),
    )
    return [entry["predicted_depth"].numpy() for entry in maps]


def main(argv: list[str] | None = None) -> None:
    data_args, args = parse_args(DataArguments, PseudoLabelArguments, argv=argv)
    if not data_args.unlabelled:
        raise ValueError("nothing to label: give --unlabelled folder:PATH and/or synthetic")
    accelerator = setup_accelerator(args.output_dir, args.mixed_precision, seed=args.seed)
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
        done = written_ids(args.output_dir)
        writer = PseudoLabelWriter(args.output_dir, f"rank{rank}", args.shard_size)
        skipped_path = os.path.join(args.output_dir, f"skipped-rank{rank}.jsonl")
        limit = None if args.max_images is None else -(-args.max_images // world)  # per process, rounded up
        labelled, skipped, start = 0, 0, time.perf_counter()
        progress = tqdm(desc=f"pseudo-labelling (rank {rank})", unit="img", disable=not accelerator.is_local_main_process)
        pending: list[tuple[str, bytes, object]] = []

        def flush_pending() -> None:
            nonlocal labelled
            if not pending:
                return
            images = [image for _, _, image in pending]
            for (item_id, data, image), disparity in zip(pending, label_batch(teacher, processor, accelerator, images),
                                                          strict=True):
                png, low, high = encode_disparity(disparity)
                writer.add({"id": item_id, "image": data, "disparity_png": png, "disparity_min": low,
                            "disparity_max": high, "height": image.shape[0], "width": image.shape[1],
                            "teacher": args.teacher})
            labelled += len(pending)
            progress.update(len(pending))
            pending.clear()

        for spec in data_args.unlabelled:
            for example in raw_source(spec, data_args, False, rank, world):
                if limit is not None and labelled + len(pending) >= limit:
                    break
                try:
                    item_id, data, source = _example_id_and_bytes(spec, example)
                except OSError as error:
                    item_id, data, source = str(example.get("id")), None, error
                if item_id in done:
                    continue
                try:
                    if isinstance(source, OSError):
                        raise BadSampleError("unreadable_image", f"{item_id}: {source}")
                    image = decode_image(source if not isinstance(source, Image.Image) else source, item_id)
                except BadSampleError as error:
                    skipped += 1
                    accelerator.print(f"skipped {item_id}: {error}")
                    with open(skipped_path, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps({"id": item_id, "reason": error.reason, "error": str(error)}) + "\n")
                    continue
                pending.append((item_id, data, image))
                if len(pending) >= args.per_device_batch_size:
                    flush_pending()
        flush_pending()
        writer.flush()
        progress.close()
        elapsed = time.perf_counter() - start
        totals = accelerator.reduce(torch.tensor([labelled, skipped], device=accelerator.device), reduction="sum")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            finish(args, elapsed, int(totals[0]), int(totals[1]))
        accelerator.wait_for_everyone()
    finally:
        accelerator.end_training()


def finish(args: PseudoLabelArguments, elapsed: float, labelled: int, skipped: int) -> None:
    """Merge the skipped lists, write the dataset card, report speed and push (main process)."""
    skipped_ids: dict[str, dict] = {}
    for name in sorted(os.listdir(args.output_dir)):
        if name.startswith("skipped-rank") and name.endswith(".jsonl"):
            with open(os.path.join(args.output_dir, name), encoding="utf-8") as handle:
                for line in handle:
                    entry = json.loads(line)
                    skipped_ids[entry["id"]] = entry
    with open(os.path.join(args.output_dir, "skipped.json"), "w", encoding="utf-8") as handle:
        json.dump(sorted(skipped_ids.values(), key=lambda e: e["id"]), handle, indent=1)
    total = len(written_ids(args.output_dir))
    write_dataset_card(args.output_dir, args.teacher, total)
    print(f"pseudo-labelled {labelled} images in {elapsed:.1f} s: {labelled / max(elapsed, 1e-9):.1f} images/s "
          f"(all processes); {total} in the dataset; {len(skipped_ids)} unreadable skipped (listed in "
          f"{os.path.join(args.output_dir, 'skipped.json')})", flush=True)
    if args.push_to_hub:
        push_folder(args.output_dir, args.hub_dataset_id, repo_type="dataset")


if __name__ == "__main__":
    main()
