"""Throughput of the procedural scene generator, in images per second.

    python train/benchmark_synthetic.py                      # 256x256, single process, 3 runs of 200 images
    python train/benchmark_synthetic.py --workers 2          # through a torch DataLoader with 2 worker processes
    python train/benchmark_synthetic.py --scene street       # one scene family

The CPU may be shared with other jobs: the script reports every run, the best and the median wall-clock rate, and
for single-process runs also the rate per CPU-second of this process (what the generator costs, whatever else runs).
"""

from __future__ import annotations

import argparse
import statistics
import time

from modeling_depth_anything.data.synthetic import SCENE_KINDS, SyntheticConfig, render_sample, synthetic_stream


def _single_process(config: SyntheticConfig, count: int, seed: int) -> tuple[float, float]:
    """(wall-clock images/s, images per CPU-second of this process)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    for index in range(count):
        render_sample(seed, index, config=config)
    return count / (time.perf_counter() - start), count / (time.process_time() - cpu_start)


def _data_loader(config: SyntheticConfig, count: int, seed: int, workers: int) -> float:
    import torch

    stream = synthetic_stream(seed=seed, size=(config.height, config.width), num_shards=workers * 4, config=config)
    stream = stream.select_columns(["depth", "sky_mask"])  # keep the PIL image out of the inter-process pickles
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers, prefetch_factor=8)
    iterator = iter(loader)
    for _ in range(workers * 2):  # warm-up: worker start-up is not throughput
        next(iterator)
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="image height and width in pixels")
    parser.add_argument("--images", type=int, default=200, help="images per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="0 = render in this process; N = DataLoader workers")
    parser.add_argument("--scene", choices=SCENE_KINDS, help="only this scene family (default: all, mixed)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    kinds = (args.scene,) if args.scene else SCENE_KINDS
    config = SyntheticConfig(height=args.size, width=args.size, scene_kinds=kinds)
    render_sample(args.seed, 0, config=config)  # warm-up (noise texture, imports)
    rates, cpu_rates = [], []
    for run in range(args.runs):
        if args.workers > 0:
            rate = _data_loader(config, args.images, args.seed + run, args.workers)
            print(f"run {run + 1}: {rate:.1f} images/s")
        else:
            rate, cpu_rate = _single_process(config, args.images, args.seed + run)
            cpu_rates.append(cpu_rate)
            print(f"run {run + 1}: {rate:.1f} images/s ({cpu_rate:.1f} images per CPU-second)")
        rates.append(rate)
    mode = f"{args.workers} DataLoader workers" if args.workers else "1 process"
    summary = (
        f"{args.size}x{args.size}, {mode}, scenes {','.join(kinds)}: best {max(rates):.1f} images/s, "
        f"median {statistics.median(rates):.1f} images/s over {args.runs} runs of {args.images}"
    )
    if cpu_rates:
        summary += f"; median {statistics.median(cpu_rates):.1f} images per CPU-second"
    print(summary)


if __name__ == "__main__":
    main()
