"""Zero-shot depth evaluation CLI.

    python eval/evaluate_model.py --model depth-anything/Depth-Anything-V2-Small-hf \\
        --benchmark nyu:data/nyu/official_splits/test --benchmark rgbd:assets/rgbd \\
        --protocol disparity --output runs/eval-v2s [--batch-size 4] [--model-card README.md]

Writes ``OUTPUT/metrics.json`` (every metric, per-sample values, skipped samples with reasons, protocol),
``OUTPUT/results.md`` (markdown table) and ``OUTPUT/<benchmark>_grid.png`` per benchmark. Without ``--benchmark`` the
shipped ``rgbd:assets/rgbd`` set is used.

The library behind ``eval/evaluate_model.py`` and ``depth-anything evaluate``; benchmark kinds, layouts and options are
in `modeling_depth_anything.evaluation.benchmarks`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .benchmarks import DEFAULT_BENCHMARK, BadSampleError, DA2KBenchmark, DepthBenchmark, load_benchmark
from .metrics import (
    ALIGNMENTS,
    PROTOCOL_DESCRIPTIONS,
    PROTOCOLS,
    InvalidSampleError,
    evaluate_model,
    model_prediction_type,
    pairwise_accuracy,
    predict_depth_maps,
)
from .report import load_model_card, markdown_table, save_da2k_grid, save_depth_grid, update_model_card

logger = logging.getLogger(__name__)


def load_model(
    name_or_path: str, device: str, input_size: int | None = None, dtype: str = "float32"
) -> tuple[Any, Any]:
    """Loads a depth model and its image processor from a folder or Hub id.

    Depth Anything checkpoints (``model_type == "depth_anything"``) load with this project's
    ``modeling_depth_anything`` classes when the package is importable; anything else (or a processor our class cannot
    read) falls back to transformers' ``AutoModelForDepthEstimation`` / ``AutoImageProcessor``.

    Args:
        name_or_path: a local folder (``save_pretrained`` layout) or a Hub id.
        device: ``"cpu"``, ``"cuda"``, ...
        input_size (`int`, *optional*): override the processor's target size (e.g. 518; small values speed up tests).
        dtype (`str`, defaults to ``"float32"``): ``float32``, ``bfloat16`` or ``float16`` weights; metrics are
            always computed in float64 from the float32-cast outputs.
    """
    import torch
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation, PretrainedConfig

    # The raw config dict: no config class (and none of the built-in class's strict validation) is involved.
    model_type = PretrainedConfig.get_config_dict(name_or_path)[0].get("model_type")
    model = processor = None
    if model_type == "depth_anything":
        try:
            from modeling_depth_anything import DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
        except ImportError:
            logger.info("modeling_depth_anything not importable; using transformers' built-in classes")
        else:
            model = DepthAnythingForDepthEstimation.from_pretrained(name_or_path)
            try:
                processor = DepthAnythingImageProcessor.from_pretrained(name_or_path)
            except (OSError, ValueError, TypeError, KeyError) as error:
                logger.warning(
                    "DepthAnythingImageProcessor could not load %s (%s); using AutoImageProcessor", name_or_path, error
                )
    if model is None:
        model = AutoModelForDepthEstimation.from_pretrained(name_or_path)
    if processor is None:
        processor = AutoImageProcessor.from_pretrained(name_or_path)
    if input_size is not None:
        set_processor_size(processor, input_size)
    logger.info("loaded %s (%s) with %s", type(model).__name__, name_or_path, type(processor).__name__)
    return model.to(device=device, dtype=getattr(torch, dtype)).eval(), processor


def set_processor_size(processor: Any, size: int) -> None:
    """Sets the target size of a Depth Anything / DPT processor (aspect ratio kept, multiples of 14)."""
    if size < 14 or size % 14:
        raise ValueError(f"--input-size must be a positive multiple of 14, got {size!r}")
    current = getattr(processor, "size", None)
    if isinstance(current, int) or current is None:
        processor.size = size
    elif isinstance(current, dict) and "shortest_edge" in current:
        processor.size = {"shortest_edge": size}
    else:  # dict or transformers SizeDict with height/width (DPT: keep_aspect_ratio scales to fit)
        processor.size = {"height": size, "width": size}


def slug(spec: str, taken: set[str]) -> str:
    """File-system friendly unique benchmark name from its spec, e.g. ``rgbd:assets/rgbd`` -> ``rgbd_rgbd``."""
    kind, _, rest = spec.partition(":")
    path = rest.partition("?")[0].rstrip("/")
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{kind}_{Path(path).name or 'data'}").strip("_")
    name, counter = base, 2
    while name in taken:
        name, counter = f"{base}_{counter}", counter + 1
    taken.add(name)
    return name


def run_depth_benchmark(model, processor, benchmark: DepthBenchmark, args, grid_path: Path) -> dict[str, Any]:
    result = evaluate_model(
        model,
        processor,
        benchmark.iter_samples(),
        protocol=args.protocol,
        batch_size=args.batch_size,
        min_depth=benchmark.min_depth,
        max_depth=benchmark.max_depth,
        alignment=args.alignment,
        progress=not args.no_progress,
        keep_examples=args.grid_samples,
        total=len(benchmark),
    )
    examples = result.pop("examples")
    if examples:
        save_depth_grid(examples, grid_path, args.protocol)
    return result


def run_da2k(model, processor, benchmark: DA2KBenchmark, args, grid_path: Path) -> dict[str, Any]:
    from tqdm.auto import tqdm

    per_scene: dict[str, list[int]] = {}
    skipped: list[dict[str, str]] = []
    examples = []
    batch = []

    def flush() -> None:
        predictions = predict_depth_maps(model, processor, [sample.image for sample in batch])
        for sample, disparity in zip(batch, predictions, strict=True):
            if model_prediction_type(model) == "depth":
                disparity = 1.0 / np.maximum(disparity, 1e-6)  # metres -> disparity: closer = larger
            try:
                correct, total = pairwise_accuracy(disparity, sample.pairs)
            except InvalidSampleError as error:
                skipped.append({"id": sample.id, "reason": f"{sample.id}: {error}"})
                continue
            counts = per_scene.setdefault(benchmark.scene_type(sample.id), [0, 0])
            counts[0] += correct
            counts[1] += total
            if len(examples) < args.grid_samples:
                examples.append((sample.image, disparity, sample.pairs, sample.id))
        batch.clear()

    for item in tqdm(benchmark.iter_samples(), total=len(benchmark), desc="DA-2K", disable=args.no_progress):
        if isinstance(item, BadSampleError):
            logger.warning("skipping %s", item)
            skipped.append({"id": item.sample_id, "reason": str(item)})
            continue
        batch.append(item)
        if len(batch) == args.batch_size:
            flush()
    if batch:
        flush()
    correct = sum(c for c, _ in per_scene.values())
    total = sum(t for _, t in per_scene.values())
    if examples:
        save_da2k_grid(examples, grid_path)
    return {
        "num_evaluated": len(benchmark) - len(skipped),
        "num_skipped": len(skipped),
        "skipped": skipped,
        "num_pairs": total,
        "accuracy": correct / total if total else None,
        "per_scene": {s: {"accuracy": c / t if t else None, "pairs": t} for s, (c, t) in sorted(per_scene.items())},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="model folder (save_pretrained layout) or Hub id")
    parser.add_argument(
        "--benchmark",
        action="append",
        help=f"KIND:PATH[?key=value&...], repeatable; kinds rgbd, nyu, kitti, eth3d, diode, sintel, hf, da2k "
        f"(default {DEFAULT_BENCHMARK})",
    )
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, default="disparity", help="scoring space (default: disparity)"
    )
    parser.add_argument(
        "--alignment", choices=ALIGNMENTS, default="scale_shift", help="per-image alignment; 'none' for metric models"
    )
    parser.add_argument("--output", required=True, type=Path, help="output folder")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--input-size", type=int, default=None, help="override the processor size (multiple of 14)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32", help="model weights")
    parser.add_argument("--grid-samples", type=int, default=4, help="rows in each PNG grid (0 = no grid)")
    parser.add_argument("--model-card", type=Path, default=None, help="write results into this card's model-index")
    parser.add_argument("--model-name", default=None, help="model-index name (default: the card's or --model)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.grid_samples < 0:
        parser.error(f"--grid-samples must be >= 0, got {args.grid_samples}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    specs = args.benchmark or [DEFAULT_BENCHMARK]
    # Fail fast on bad specs and an unreadable model card, before loading the model.
    benchmarks = [(spec, load_benchmark(spec)) for spec in specs]
    if args.model_card is not None:
        load_model_card(args.model_card)
    model, processor = load_model(args.model, device, args.input_size, args.dtype)
    args.output.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "model": args.model,
        "protocol": args.protocol,
        "protocol_description": PROTOCOL_DESCRIPTIONS[args.protocol],
        "alignment": args.alignment,
        "input_size": args.input_size,
        "dtype": args.dtype,
        "device": device,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "benchmarks": {},
    }
    failures = []
    taken: set[str] = set()
    for spec, benchmark in benchmarks:
        name = slug(spec, taken)
        started = time.perf_counter()
        runner = run_da2k if isinstance(benchmark, DA2KBenchmark) else run_depth_benchmark
        result = runner(model, processor, benchmark, args, args.output / f"{name}_grid.png")
        result.update(
            spec=spec,
            kind=benchmark.kind,
            display_name=benchmark.display_name,
            split=benchmark.split,
            num_samples=len(benchmark),
            seconds=round(time.perf_counter() - started, 2),
        )
        if isinstance(benchmark, DepthBenchmark):
            result.update(
                min_depth=benchmark.min_depth,
                max_depth=benchmark.max_depth if math.isfinite(benchmark.max_depth) else None,
            )
        scored = result.get("metrics") if not isinstance(benchmark, DA2KBenchmark) else result.get("accuracy")
        if scored is None:
            failures.append(f"{spec}: none of its {len(benchmark)} samples could be scored (see 'skipped')")
        results["benchmarks"][name] = result
        logger.info(
            "%s: %s",
            name,
            {k: round(v, 4) for k, v in (result.get("metrics") or {}).items()} or result.get("accuracy"),
        )
    (args.output / "metrics.json").write_text(json.dumps(results, indent=2, allow_nan=False))
    (args.output / "results.md").write_text(markdown_table(results))
    if failures:
        for failure in failures:
            logger.error(failure)
        return 1
    if args.model_card is not None:
        update_model_card(args.model_card, results, args.model_name)
    logger.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
