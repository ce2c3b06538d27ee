"""Pseudo-labelling throughput against the bare forward pass, measured in one process (issue 11 item 5).

    python eval/pseudo_label_throughput.py                         # tiny teacher, 126 px, batch 8 (the main job's)
    python eval/pseudo_label_throughput.py --teacher runs/pipeline/teacher/final --images 512
    python eval/pseudo_label_throughput.py --preset v2-small --size 518 --height 518 --width 686 --images 32

The pseudo-labelling side is the real stage, `train/pseudo_label.py`'s `main`, run in this process on a folder of
JPEG files (procedural scenes, all one size, so every batch is full): listing, decoding, the teacher through
`DepthEstimator`, post-processing, 16-bit PNG encoding and the parquet writes, as the stage reports its own images/s
(after loading). The bare side is `DepthEstimator.forward` of the same teacher, precision and batch on a tensor of the
size the processor resizes those images to. Stage and forward are run alternately `--repeats` times and the best of
each is kept, so load from other processes hits both alike. The ratio is the share of the forward pass's throughput
that pseudo-labelling keeps (the target is >= 90 %); the forward is measured at the stage's thread count and at
all usable cores, and the faster one is the reference.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import re
import runpy
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

logger = logging.getLogger(__name__)

STAGE_SCRIPT = Path("train") / "pseudo_label.py"
STAGE_LINE = re.compile(r"pseudo-labelled (\d+) images in ([\d.]+) s")
MIXED_PRECISION = {"auto": "auto", "float32": "no", "bfloat16": "bf16"}


def make_image_folder(folder: Path, count: int, height: int, width: int, seed: int = 4242) -> Path:
    """`count` procedural scenes of one size as JPEG files (quality 95), as a folder of photos would be."""
    from ..data.synthetic import SyntheticConfig, render_sample

    folder.mkdir(parents=True, exist_ok=True)
    config = SyntheticConfig(height=height, width=width)
    for index in range(count):
        image = render_sample(seed, index, config=config)["image"]  # (H, W, 3) uint8
        Image.fromarray(image).save(folder / f"scene_{index:05d}.jpg", quality=95)
    return folder


def save_random_teacher(folder: Path, preset: str, size: int) -> Path:
    """A randomly initialised teacher folder (the throughput does not depend on the weights)."""
    from .. import DepthAnythingConfig, DepthAnythingForDepthEstimation, DepthAnythingImageProcessor

    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset(preset)).save_pretrained(folder)
    DepthAnythingImageProcessor(size=size).save_pretrained(folder)
    return folder


def stage_rate(root: Path, argv: list[str]) -> tuple[int, float]:
    """Run `train/pseudo_label.py`'s `main(argv)` in this process; returns (images labelled, seconds) as it reports."""
    namespace = runpy.run_path(str(root / STAGE_SCRIPT), run_name="pseudo_label_stage")
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        namespace["main"](argv)
    match = STAGE_LINE.search(captured.getvalue())
    if match is None:
        raise RuntimeError(f"{STAGE_SCRIPT} did not print its 'pseudo-labelled N images in S s' line")
    return int(match.group(1)), float(match.group(2))


def forward_rate(estimator, pixel_shape: tuple[int, int, int, int], images: int) -> float:
    """Images/s of `estimator.forward` alone on a fixed (batch, 3, height, width) tensor: `images` images' worth,
    after one warm-up batch."""
    pixel_values = torch.randn(pixel_shape)  # normalised-image statistics
    estimator.forward(pixel_values)
    batches = max(1, images // pixel_shape[0])
    start = time.perf_counter()
    for _ in range(batches):
        estimator.forward(pixel_values)
    return batches * pixel_shape[0] / (time.perf_counter() - start)


def measure(args: argparse.Namespace, root: Path) -> dict[str, float]:
    from ..image_processing_depth_anything import resize_output_size
    from ..inference import DepthEstimator
    from ..inference.precision import usable_cpus

    work = Path(tempfile.mkdtemp(prefix="pseudo_label_throughput_"))
    teacher = Path(args.teacher) if args.teacher else save_random_teacher(work / "teacher", args.preset, args.size)
    images = make_image_folder(work / "images", args.images, args.height, args.width)
    estimator = DepthEstimator.from_pretrained(
        teacher, precision=args.precision, batch_size=args.batch_size, input_size=args.size
    )
    processor = estimator.processor
    height, width = resize_output_size(
        args.height, args.width, processor.size, processor.ensure_multiple_of, processor.resize_policy
    )
    cores = usable_cpus()
    stage_rates, forward_rates = [], []
    for repeat in range(args.repeats):
        argv = [
            "--teacher", str(teacher), "--unlabelled", str(images), "--output_dir", str(work / f"labels_{repeat}"),
            "--per_device_batch_size", str(args.batch_size), "--inference_size", str(args.size),
            "--mixed_precision", MIXED_PRECISION[args.precision], "--shard_size", str(args.shard_size),
        ]  # fmt: skip
        if args.cpu_threads:
            argv += ["--cpu_threads", str(args.cpu_threads)]
        labelled, seconds = stage_rate(root, argv)
        stage_threads = torch.get_num_threads()
        if labelled != args.images:
            raise RuntimeError(f"the stage labelled {labelled} of {args.images} images")
        stage_rates.append(labelled / seconds)
        # the bare forward at its best: the stage's thread count and every core (a stage that gives a core to its
        # decode/write threads is compared with the forward that has them all)
        rates = {}
        for threads in sorted({stage_threads, cores}):
            torch.set_num_threads(threads)
            rates[threads] = forward_rate(estimator, (args.batch_size, 3, height, width), args.images)
        forward_rates.append(max(rates.values()))
        logger.info(
            "repeat %d: pseudo-labelling %.2f images/s (%d threads), forward %s",
            repeat,
            stage_rates[-1],
            stage_threads,
            ", ".join(f"{rate:.2f} images/s ({threads} threads)" for threads, rate in rates.items()),
        )
    stage, forward = max(stage_rates), max(forward_rates)
    return {
        "pseudo_label_images_per_s": stage,
        "forward_images_per_s": forward,
        "ratio": stage / forward,
        "model_input": f"{height}x{width}",
        "dtype": str(estimator.dtype).removeprefix("torch."),
        "threads": stage_threads,
    }


def main(argv: list[str] | None = None, root: str | Path = ".") -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", default=None, help="teacher folder (default: a random --preset model)")
    parser.add_argument("--preset", default="tiny", help="architecture of the random teacher (tiny)")
    parser.add_argument("--size", type=int, default=126, help="processor size, short side (126, the main job's)")
    parser.add_argument("--height", type=int, default=168, help="image height (168)")
    parser.add_argument("--width", type=int, default=224, help="image width (224)")
    parser.add_argument("--images", type=int, default=256, help="images per measurement (256)")
    parser.add_argument("--batch-size", type=int, default=8, help="per forward pass (8, the main job's)")
    parser.add_argument("--shard-size", type=int, default=64, help="images per parquet shard (64)")
    parser.add_argument("--precision", choices=sorted(MIXED_PRECISION), default="auto", help="auto = the policy's")
    parser.add_argument("--cpu-threads", type=int, default=None, help="the stage's cpu_threads (default: its auto)")
    parser.add_argument("--repeats", type=int, default=2, help="alternate stage and forward this often; best kept")
    args = parser.parse_args(argv)
    for name in ("size", "height", "width", "images", "batch_size", "shard_size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.size < 14:
        parser.error(f"--size must be >= 14, got {args.size}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(args, Path(root))
    logger.info(
        "\n%d images %dx%d -> model input %s, batch %d, %s, stage %d torch threads:\n"
        "  bare forward pass   %8.2f images/s\n"
        "  pseudo-labelling    %8.2f images/s (train/pseudo_label.py: decode, forward, post-process, write)\n"
        "  ratio               %8.1f %% of the forward pass (target >= 90 %%)",
        args.images,
        args.height,
        args.width,
        result["model_input"],
        args.batch_size,
        result["dtype"],
        result["threads"],
        result["forward_images_per_s"],
        result["pseudo_label_images_per_s"],
        100 * result["ratio"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
