"""`depth-anything`: predict depth for images, folders, globs and videos; convert original checkpoints; export ONNX.

Examples:
    depth-anything predict assets/photos --model depth-anything/Depth-Anything-V2-Small-hf --output out/
    depth-anything predict clip.mp4 --model ./my-model --output out/ --formats color side_by_side
    depth-anything convert --checkpoint depth_anything_v2_vits.pth --output ./da2-small
    depth-anything export --model ./da2-small --output da2-small.onnx --height 518 --width 518

Exit status: 0 on success; 1 when an input the user named could not be processed (files found in folders or by
glob patterns are reported and skipped) or nothing could be processed; 2 for usage errors (missing input, unknown
model path, bad option value).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .inference import OUTPUT_FORMATS, PRECISIONS

logger = logging.getLogger("depth_anything")

DEFAULT_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"


class UsageError(Exception):
    """A problem with what the user asked for; reported in one line with exit status 2."""


def _logging_options() -> argparse.ArgumentParser:
    """--verbose/--quiet, accepted before or after the subcommand."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    parent.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="warnings and errors only, no progress bar")
    return parent


def _add_predict_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        parents=[_logging_options()],
        help="depth for images, folders, glob patterns and videos",
        description="Predict depth. Relative models give affine-invariant disparity (large = near), metric models "
        "give metres; see the `ply` format's note on turning disparity into depth.",
    )
    parser.add_argument("inputs", nargs="+", help="image or video files, folders, or quoted glob patterns")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"save_pretrained folder or Hub id (default {DEFAULT_MODEL})")
    parser.add_argument("--output", "-o", default="depth_outputs", help="output folder (default ./depth_outputs)")
    parser.add_argument("--formats", nargs="+", default=["color"], choices=OUTPUT_FORMATS, metavar="FORMAT",
                        help=f"any of {', '.join(OUTPUT_FORMATS)} (default color)")
    parser.add_argument("--cmap", default="Spectral_r", help="matplotlib colormap for color/side_by_side (Spectral_r)")
    parser.add_argument("--batch-size", type=int, default=4, help="images (or video frames) per forward pass (4)")
    parser.add_argument("--input-size", type=int, default=None, help="processor size override (short side, 518)")
    parser.add_argument("--interpolation", choices=["bilinear", "nearest", "bicubic"], default=None,
                        help="resampling back to the input size (processor default: bilinear; nearest keeps edges)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto = bf16 on GPUs and on CPUs with AVX-512-bf16/AMX, else float32")
    parser.add_argument("--no-fast", action="store_true", help="plain float32 model, no channels-last (reference)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, faster after)")
    parser.add_argument("--recursive", action="store_true", help="also search sub-folders of folder inputs")
    parser.add_argument("--focal-length", type=float, default=None,
                        help="ply: focal length in pixels at the input's resolution (default: EXIF, else 60° FOV)")
    parser.add_argument("--depth-ratio", type=float, default=10.0,
                        help="ply, relative models: assumed far/near depth ratio of the scene (default 10)")
    parser.add_argument("--ply-stride", type=int, default=1, help="ply: keep every n-th pixel per direction (1)")
    parser.add_argument("--video-window", type=int, default=32,
                        help="video: frames sharing one normalisation range, centred window (default 32)")
    parser.add_argument("--max-frames", type=int, default=None, help="video: stop after this many frames")
    parser.set_defaults(handler=run_predict)


def _add_convert_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="original .pth checkpoint -> save_pretrained folder (arguments as modeling_depth_anything.convert)",
        add_help=False,
    )
    parser.add_argument("convert_args", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=run_convert)


def _add_export_parser(subparsers) -> None:
    parser = subparsers.add_parser("export", parents=[_logging_options()], help="ONNX export, checked against PyTorch with onnxruntime")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"save_pretrained folder or Hub id (default {DEFAULT_MODEL})")
    parser.add_argument("--output", "-o", required=True, help="the .onnx file to write")
    parser.add_argument("--height", type=int, default=518, help="input height, a multiple of 14 (518)")
    parser.add_argument("--width", type=int, default=518, help="input width, a multiple of 14 (518)")
    parser.add_argument("--batch-size", type=int, default=1, help="example batch size (the batch axis is dynamic)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (18)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch check")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="check: largest allowed error as a fraction of the output's range (1e-3)")
    parser.set_defaults(handler=run_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depth-anything", description=__doc__.split("\n")[0],
                                     parents=[_logging_options()])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_predict_parser(subparsers)
    _add_convert_parser(subparsers)
    _add_export_parser(subparsers)
    return parser


def _check_positive(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise UsageError(f"{name} must be positive, got {value!r}")


def run_predict(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .inference import DepthEstimator, OutputWriter, collect_inputs, image_iterator, predict_video

    for name in ("batch_size", "video_window", "ply_stride", "depth_ratio"):
        _check_positive(f"--{name.replace('_', '-')}", getattr(args, name))
    for name in ("input_size", "focal_length", "max_frames"):
        _check_positive(f"--{name.replace('_', '-')}", getattr(args, name), allow_none=True)
    try:
        items = collect_inputs(args.inputs, recursive=args.recursive)
        writer = OutputWriter(Path(args.output), args.formats, args.cmap, args.focal_length, args.depth_ratio,
                              args.ply_stride)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from error
    if not items:
        raise UsageError("no image or video files to process")
    try:
        estimator = DepthEstimator.from_pretrained(
            args.model, device=args.device, precision=args.precision, fast=not args.no_fast, compile=args.compile,
            batch_size=args.batch_size, input_size=args.input_size, interpolation=args.interpolation,
        )
    except (FileNotFoundError, OSError, ValueError) as error:
        raise UsageError(str(error)) from error

    images = [item for item in items if not item.is_video]
    videos = [item for item in items if item.is_video]
    failed = []  # (item, reason)
    done = 0
    with tqdm(total=len(images), unit="image", disable=args.quiet or not images) as bar:
        batch = []

        def flush() -> None:
            nonlocal done
            predictions = estimator.predict_arrays([array for _, array in batch], [str(item.path) for item, _ in batch])
            for (item, _), prediction in zip(batch, predictions, strict=True):
                writer.write(prediction, item.relative, source=item.path)
                done += 1
            bar.update(len(batch))
            batch.clear()

        # Images are loaded lazily and predicted in chunks; DepthEstimator groups each chunk by resized size.
        for item, loaded in image_iterator(images):
            if isinstance(loaded, Exception):
                logger.warning("skipping %s", loaded)
                failed.append((item, str(loaded)))
                bar.update(1)
                continue
            batch.append((item, loaded))
            if len(batch) >= 8 * args.batch_size:
                flush()
        if batch:
            flush()
    for item in videos:
        with tqdm(unit="frame", desc=item.path.name, disable=args.quiet) as bar:
            try:
                result = predict_video(estimator, item.path, writer, item.relative, window=args.video_window,
                                       max_frames=args.max_frames, progress=bar.update)
                logger.info("%s: %d frames at %.1f fps", item.path, result["frames"], result["fps"])
                done += 1
            except (ValueError, OSError) as error:
                logger.warning("skipping %s", error)
                failed.append((item, str(error)))
    logger.info("wrote %d of %d inputs to %s", done, len(items), args.output)
    if failed:
        logger.warning("%d input(s) skipped: %s", len(failed), "; ".join(reason for _, reason in failed))
    if done == 0 or any(item.explicit for item, _ in failed):
        return 1
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from . import convert

    return int(convert.main(args.convert_args) or 0)


def run_export(args: argparse.Namespace) -> int:
    from .export import export_onnx
    from .inference import load_model_and_processor

    for name in ("height", "width", "batch_size", "tolerance"):
        _check_positive(f"--{name.replace('_', '-')}", getattr(args, name))
    try:
        model, _ = load_model_and_processor(args.model)
        report = export_onnx(model, args.output, height=args.height, width=args.width, batch_size=args.batch_size,
                             opset=args.opset, check=not args.no_check, tolerance=args.tolerance)
    except (FileNotFoundError, OSError, ValueError) as error:
        raise UsageError(str(error)) from error
    if report.get("check_passed") is False:
        logger.error("onnxruntime disagrees with PyTorch: max error %.3g of the output range (tolerance %.3g)",
                     report["relative_error"], args.tolerance)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["convert"]:  # everything after `convert` belongs to the converter, --help included
        args = argparse.Namespace(command="convert", convert_args=argv[1:], verbose=False, quiet=False, handler=run_convert)
    else:
        args = parser.parse_args(argv)
        args.verbose, args.quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("depth_anything").setLevel(level)
    logging.getLogger("modeling_depth_anything").setLevel(level)
    if args.quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" bars
    try:
        return args.handler(args)
    except UsageError as error:
        logger.error("%s", error)
        return 2
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
