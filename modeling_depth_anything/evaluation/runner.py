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

from .benchmarks import ADAPTERS, DEFAULT_BENCHMARK, BadSampleError, DA2KBenchmark, DepthBenchmark, load_benchmark
from .metrics import (
    ALIGNMENTS,
    PROTOCOL_DESCRIPTIONS,
    PROTOCOLS,
    InvalidSampleError,
    evaluate_model,
    pairwise_accuracy,
)
from .report import load_model_card, markdown_table, save_da2k_grid, save_depth_grid, update_model_card

logger = logging.getLogger(__name__)


def load_predictor(
    spec: str,
    device: str = "auto",
    input_size: int | None = None,
    dtype: str = "float32",
    batch_size: int = 4,
    backend: str = "torch",
) -> Any:
    """The predictor to evaluate: ``baseline:NAME`` (``evaluation.baselines``), or a model folder / Hub id loaded by
    ``DepthEstimator.from_pretrained`` (the one loading path; Depth Anything checkpoints with this package's classes,
    other depth models with transformers' Auto classes).

    Args:
        spec: ``baseline:vertical``, a local folder (``save_pretrained`` layout) or a Hub id.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        input_size (`int`, *optional*): override the processor's target size (a multiple of 14; small values speed up
            tests).
        dtype (`str`, defaults to ``"float32"``): ``float32`` (reference numbers), ``auto`` (the hardware's fast
            precision), ``bfloat16`` or ``float16``; metrics are always computed in float64 from float32 outputs.
        batch_size (`int`): images per forward pass.
        backend (`str`, defaults to ``"torch"``): the engine of the model call (``inference.backends``): ``torch``,
            ``compile`` or ``onnxruntime``; baselines ignore it.
    """
    from .baselines import is_baseline, load_baseline

    if is_baseline(spec):
        return load_baseline(spec, batch_size)
    from ..inference.estimator import DepthEstimator

    if input_size is not None:
        set_processor_size(None, input_size)  # validate before loading
    estimator = DepthEstimator.from_pretrained(
        spec, device=device, precision=dtype, batch_size=batch_size, input_size=input_size, backend=backend
    )
    logger.info("loaded %s (%s) with %s", type(estimator.model).__name__, spec, type(estimator.processor).__name__)
    return estimator


def set_processor_size(processor: Any, size: int) -> None:
    """Sets the target size of a Depth Anything / DPT processor (aspect ratio kept, multiples of 14)."""
    if size < 14 or size % 14:
        raise ValueError(f"--input-size must be a positive multiple of 14, got {size!r}")
    if processor is None:
        return
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


def run_depth_benchmark(predictor, benchmark: DepthBenchmark, args, grid_path: Path) -> dict[str, Any]:
    result = evaluate_model(
        predictor,
        benchmark.iter_samples(),
        protocol=args.protocol,
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


def run_da2k(predictor, benchmark: DA2KBenchmark, args, grid_path: Path) -> dict[str, Any]:
    from tqdm.auto import tqdm

    per_scene: dict[str, list[int]] = {}
    skipped: list[dict[str, str]] = []
    examples = []
    batch = []

    def flush() -> None:
        predictions = predictor.predict_arrays([sample.image for sample in batch], [sample.id for sample in batch])
        for sample, prediction in zip(batch, predictions, strict=True):
            disparity = prediction.depth
            if prediction.is_metric:
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
        if len(batch) == 4 * args.batch_size:  # the predictor batches by size inside
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
    from ..inference.backends import BACKEND_HELP, BACKENDS

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", required=True, help="model folder (save_pretrained layout), Hub id, or baseline:vertical"
    )
    parser.add_argument(
        "--benchmark",
        action="append",
        help=f"KIND:PATH[?key=value&...], repeatable; kinds {', '.join(ADAPTERS)} (default {DEFAULT_BENCHMARK})",
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
    parser.add_argument("--device", default="auto", help="auto (CUDA, MPS, else CPU), cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--dtype",
        choices=("float32", "auto", "bfloat16", "float16"),
        default="float32",
        help="model weights: float32 (reference numbers, default) or auto (the hardware's fast precision)",
    )
    parser.add_argument("--backend", choices=BACKENDS, default="torch", help=BACKEND_HELP)
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
    specs = args.benchmark or [DEFAULT_BENCHMARK]
    # Fail fast on bad specs and an unreadable model card, before loading the model.
    benchmarks = [(spec, load_benchmark(spec)) for spec in specs]
    if args.model_card is not None:
        load_model_card(args.model_card)
    predictor = load_predictor(args.model, args.device, args.input_size, args.dtype, args.batch_size, args.backend)
    device = str(getattr(predictor, "device", "cpu"))
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
        result = runner(predictor, benchmark, args, args.output / f"{name}_grid.png")
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
