"""`depth-anything`: predict depth for images, folders, globs and videos; convert original checkpoints; export ONNX.

Examples:
    depth-anything predict assets/photos --model depth-anything/Depth-Anything-V2-Small-hf --output out/
    depth-anything predict clip.mp4 --model ./my-model --output out/ --formats color side_by_side
    depth-anything convert --checkpoint depth_anything_v2_vits.pth --output ./da2-small
    depth-anything export --model ./da2-small --output da2-small.onnx --height 518 --width 518
    depth-anything evaluate --model ./da2-small --benchmark nyu:data/nyu --output runs/eval   # eval/evaluate_model.py
    depth-anything demo --model ./da2-small --model depth-anything/Depth-Anything-V2-Base-hf --port 7860

Exit status: 0 on success; 1 when an input the user named could not be processed or was only partly processed (files
found in folders or by glob patterns are reported and skipped), when an output could not be written (the other
inputs are still written), or when nothing could be processed; 2 for usage errors (missing input, unknown model path
or a bad file in it, bad option value, an output folder that cannot be created or written), reported before the
model is loaded where possible.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .inference import DEFAULT_MAX_IMAGE_PIXELS, OUTPUT_FORMATS, PRECISIONS
from .inference.backends import BACKEND_HELP, BACKENDS

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
                        help="auto = bf16 on GPUs with bf16 (else fp16) and on CPUs with AVX-512-bf16/AMX, else float32")
    parser.add_argument("--no-fast", action="store_true", help="plain float32 model, no channels-last (reference)")
    parser.add_argument("--backend", default="torch", choices=BACKENDS, help=BACKEND_HELP)
    parser.add_argument("--compile", action="store_true", help="same as --backend compile")
    parser.add_argument("--recursive", action="store_true", help="also search sub-folders of folder inputs")
    parser.add_argument("--focal-length", type=float, default=None,
                        help="ply: focal length in pixels at the input's resolution (default: EXIF, else 60° FOV)")
    parser.add_argument("--depth-ratio", type=float, default=10.0,
                        help="ply, relative models: assumed far/near depth ratio of the scene (default 10)")
    parser.add_argument("--ply-stride", type=int, default=1, help="ply: keep every n-th pixel per direction (1)")
    parser.add_argument("--video-window", type=int, default=32,
                        help="video: frames sharing one normalisation range, centred window (default 32)")
    parser.add_argument("--max-frames", type=int, default=None, help="video: stop after this many frames")
    parser.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS,
                        help="larger images are reported and skipped, a guard against decompression bombs; 0 = no "
                        f"limit (default {DEFAULT_MAX_IMAGE_PIXELS}, where PIL refuses them)")
    parser.set_defaults(handler=run_predict)


def _add_convert_parser(subparsers) -> None:
    _add_forwarding_parser(
        subparsers,
        "convert",
        "original .pth checkpoint -> save_pretrained folder (arguments as modeling_depth_anything.convert)",
        run_convert,
    )


def _add_forwarding_parser(subparsers, name: str, help_text: str, handler) -> None:
    """A subcommand whose arguments all belong to another entry point (its own --help included)."""
    parser = subparsers.add_parser(name, help=help_text, add_help=False)
    parser.add_argument("forwarded_args", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=handler)


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


def _add_demo_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", parents=[_logging_options()], help="web app (Gradio): upload a photo or video, see and download its depth",
        description="Serve the demo page (needs pip install 'depth-anything-hf[demo]'). Offline: no share link, no "
        "analytics.",
    )
    parser.add_argument("--model", action="append", default=None, metavar="DIR_OR_HUB_ID",
                        help="save_pretrained folder or Hub id; repeat to offer a choice (default $DEPTH_ANYTHING_MODEL "
                        f"or {DEFAULT_MODEL})")
    parser.add_argument("--port", type=int, default=7860, help="port (7860)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1; 0.0.0.0 for other machines)")
    parser.add_argument("--max-frames", type=int, default=60, help="video: frames processed per upload (60)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    parser.add_argument("--no-fast", action="store_true", help="plain float32 model, no channels-last (reference)")
    parser.set_defaults(handler=run_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depth-anything", description=__doc__.split("\n")[0],
                                     parents=[_logging_options()])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_predict_parser(subparsers)
    _add_convert_parser(subparsers)
    _add_export_parser(subparsers)
    _add_forwarding_parser(subparsers, "evaluate", "zero-shot evaluation on benchmarks (as eval/evaluate_model.py)",
                           run_evaluate)
    _add_demo_parser(subparsers)
    return parser


def _check_positive(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise UsageError(f"{name} must be positive, got {value!r}")


def _predict_images(estimator, writer, images, args, problems: dict[str, list]) -> int:
    """Predict and write the image inputs in chunks; returns how many were written. Unreadable images and failed
    writes are reported in one line each and collected in `problems`; the others go on."""
    from tqdm.auto import tqdm

    from .inference import image_iterator

    done = 0
    max_pixels = args.max_image_pixels or None
    with tqdm(total=len(images), unit="image", disable=args.quiet or not images) as bar:
        batch = []

        def flush() -> None:
            nonlocal done
            predictions = estimator.predict_arrays([array for _, array in batch], [str(item.path) for item, _ in batch])
            for (item, _), prediction in zip(batch, predictions, strict=True):
                try:
                    writer.write(prediction, item.relative, source=item.path)
                    done += 1
                except OSError as error:  # e.g. a folder where an output file should go, a full disk
                    logger.error("%s: cannot write its outputs (%s)", item.path, error)
                    problems["write"].append((item, str(error)))
            bar.update(len(batch))
            batch.clear()

        # Images are loaded lazily and predicted in chunks; DepthEstimator groups each chunk by resized size.
        for item, loaded in image_iterator(images, max_pixels=max_pixels):
            if isinstance(loaded, Exception):
                logger.warning("skipping %s", loaded)
                problems["unreadable"].append((item, str(loaded)))
                bar.update(1)
                continue
            batch.append((item, loaded))
            if len(batch) >= 8 * args.batch_size:
                flush()
        if batch:
            flush()
    return done


def _predict_videos(estimator, writer, videos, args, problems: dict[str, list]) -> int:
    """Predict and write each video; a video that stops decoding part-way keeps its frames and is reported as
    partial. Returns how many videos were written (partial ones included)."""
    from tqdm.auto import tqdm

    from .inference import predict_video

    done = 0
    for item in videos:
        with tqdm(unit="frame", desc=item.path.name, disable=args.quiet) as bar:
            try:
                result = predict_video(estimator, item.path, writer, item.relative, window=args.video_window,
                                       max_frames=args.max_frames, progress=bar.update)
            except ValueError as error:  # not a video, or no frame could be decoded
                logger.warning("skipping %s", error)
                problems["unreadable"].append((item, str(error)))
                continue
            except OSError as error:  # reading errors are ValueErrors (read_video): this one is writing
                logger.error("%s: cannot write its outputs (%s)", item.path, error)
                problems["write"].append((item, str(error)))
                continue
        done += 1
        if result["partial"]:
            logger.warning("%s: partial: %d frames written (%s)", item.path, result["frames"], result["partial"])
            problems["partial"].append((item, result["partial"]))
        else:
            logger.info("%s: %d frames at %.1f fps", item.path, result["frames"], result["fps"])
    return done


def run_predict(args: argparse.Namespace) -> int:
    from .inference import DepthEstimator, OutputWriter, collect_inputs, prepare_output_folder

    for name in ("batch_size", "video_window", "ply_stride", "depth_ratio"):
        _check_positive(f"--{name.replace('_', '-')}", getattr(args, name))
    for name in ("input_size", "focal_length", "max_frames"):
        _check_positive(f"--{name.replace('_', '-')}", getattr(args, name), allow_none=True)
    if args.max_image_pixels < 0:
        raise UsageError(f"--max-image-pixels must be >= 0 (0 = no limit), got {args.max_image_pixels}")
    try:
        items = collect_inputs(args.inputs, recursive=args.recursive)
        writer = OutputWriter(Path(args.output), args.formats, args.cmap, args.focal_length, args.depth_ratio,
                              args.ply_stride)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from error
    if not items:
        raise UsageError("no image or video files to process")
    try:  # before the model is loaded: a bad --output costs nothing
        prepare_output_folder(args.output)
    except ValueError as error:
        raise UsageError(str(error)) from error
    try:
        estimator = DepthEstimator.from_pretrained(
            args.model, device=args.device, precision=args.precision, fast=not args.no_fast, compile=args.compile,
            backend=args.backend, batch_size=args.batch_size, input_size=args.input_size, interpolation=args.interpolation,
        )
    except (FileNotFoundError, OSError, ValueError) as error:
        raise UsageError(str(error)) from error

    problems: dict[str, list] = {"unreadable": [], "write": [], "partial": []}  # kind -> [(item, reason)]
    done = _predict_images(estimator, writer, [item for item in items if not item.is_video], args, problems)
    done += _predict_videos(estimator, writer, [item for item in items if item.is_video], args, problems)
    partial = f" ({len(problems['partial'])} partial)" if problems["partial"] else ""
    logger.info("wrote %d of %d inputs to %s%s", done, len(items), args.output, partial)
    if problems["unreadable"]:
        names = ", ".join(str(item.path) for item, _ in problems["unreadable"])
        logger.warning("%d input(s) skipped (reasons above): %s", len(problems["unreadable"]), names)
    if problems["write"]:
        logger.error("%d input(s) could not be written (see above); the others were", len(problems["write"]))
    named_failed = any(item.explicit for kind in ("unreadable", "partial") for item, _ in problems[kind])
    return 1 if done == 0 or problems["write"] or named_failed else 0


def run_convert(args: argparse.Namespace) -> int:
    from . import convert

    return int(convert.main(args.forwarded_args) or 0)


def run_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import runner

    return int(runner.main(args.forwarded_args) or 0)


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


def run_demo(args: argparse.Namespace) -> int:
    for name in ("port", "max_frames"):
        _check_positive(f"--{name.replace('_', '-')}", getattr(args, name))
    try:
        from .demo import launch_demo, models_from_env
    except ImportError as error:
        raise UsageError(f"the demo needs Gradio: pip install 'depth-anything-hf[demo]' ({error})") from error
    try:
        launch_demo(args.model or models_from_env(DEFAULT_MODEL), host=args.host, port=args.port, device=args.device,
                    fast=not args.no_fast, max_frames=args.max_frames)
    except (FileNotFoundError, OSError, ValueError) as error:  # unknown model, port in use, bad option
        raise UsageError(str(error)) from error
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    forwarded = {"convert": run_convert, "evaluate": run_evaluate}
    if argv[:1] and argv[0] in forwarded:  # everything after it belongs to that entry point, --help included
        args = argparse.Namespace(command=argv[0], forwarded_args=argv[1:], verbose=False, quiet=False,
                                  handler=forwarded[argv[0]])
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
