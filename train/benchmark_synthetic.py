"""Throughput of the procedural scene generator, in images per second.

    python train/benchmark_synthetic.py                      # 256x256, single process, best of 3 runs of 200 images
    python train/benchmark_synthetic.py --workers 2          # through a torch DataLoader with 2 worker processes
    python train/benchmark_synthetic.py --scene street       # one scene family

The CPU may be shared: the script reports every run and the best and median, and the target (100 images/s at
256x256) is checked against the best run.
"""

from __future__ import annotations

import argparse
import statistics
import time

from synthetic import SCENE_KINDS, SyntheticConfig, render_sample, synthetic_stream


def _single_process(config: SyntheticConfig, count: int, seed: int) -> float:
    start = time.perf_counter()
    for index in range(count):
        render_sample(seed, index, config=config)
    return count / (time.perf_counter() - start)


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

    config = SyntheticConfig(
        height=args.size, width=args.size, scene_kinds=(args.scene,) if args.scene else SCENE_KINDS
    )
    render_sample(args.seed, 0, config=config)  # warm-up (noise texture, imports)
    rates = []
    for run in range(args.runs):
        if args.workers > 0:
            rate = _data_loader(config, args.images, args.seed + run, args.workers)
        else:
            rate = _single_process(config, args.images, args.seed + run)
        rates.append(rate)
        print(f"run {run + 1}: {rate:.1f} images/s")
    mode = f"{args.workers} DataLoader workers" if args.workers else "1 process"
    print(
        f"{args.size}x{args.size}, {mode}, scenes {','.join(config.scene_kinds)}: "
        f"best {max(rates):.1f} images/s, median {statistics.median(rates):.1f} images/s over {args.runs} runs of {args.images}"
    )


if __name__ == "__main__":
    main()
