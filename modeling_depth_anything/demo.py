"""The demo web app (Gradio): upload a photo or a video, see its depth, download the files you need.

Started with `depth-anything demo --model DIR_OR_HUB_ID [--model ANOTHER] [--port N]`, or as a Hugging Face Space
through the repository's `app.py` (model from `$DEPTH_ANYTHING_MODEL`, default the V2-Small release).

Two layers:
- `DepthDemo` holds the models and does the work with no Gradio in sight (unit-testable): it reads the upload the
  way the CLI does, predicts with `DepthEstimator`, and writes the downloads with the CLI's `OutputWriter`, so the
  16-bit PNG, `.npy` and `.ply` files are byte-identical to `depth-anything predict --formats png16 npy ply` (the
  colour and grey maps have the pixels of `--formats color`, saved with faster PNG compression).
  Problems the user can act on (an unreadable upload, an image smaller than one patch, a video that does not decode)
  raise `DemoError` with a message meant for the page.
- `build_demo` lays out the page; its handlers (`handle_image`, `handle_video`) turn `DemoError` into `gr.Error`
  (a message on the page, never a stack trace) and the app keeps serving.

Offline by default: analytics, Gradio's version check and share links are off (`GRADIO_ANALYTICS_ENABLED=False`,
`share=False`); the page's fonts are served by the app itself.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .image_processing_depth_anything import MIN_IMAGE_SIDE, load_image, to_rgb_float
from .inference import DepthEstimator, OutputWriter, colorize, display_map, predict_video, robust_range, to_uint8

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
MODEL_ENV = "DEPTH_ANYTHING_MODEL"  # one model, or several separated by commas (a Space's setting)
COLORMAPS = ("Spectral_r", "magma", "inferno", "viridis", "turbo", "gray")
DEFAULT_MAX_FRAMES = 60
DEFAULT_PORT = 7860
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "photos"  # present in a checkout and a Space
EXAMPLE_PHOTOS = (
    "dav2__demo01.jpg",
    "dav2__demo08.jpg",
    "dav2__demo11.jpg",
    "metric3d__jonathan-borba-CnthDZXCdoY-unsplash.jpg",
    "opencv_doc__building.jpg",
    "skimage_data__chelsea.png",
)
# Downloads offered (file written): the CLI's formats, plus an 8-bit grey PNG; the colour map is always written.
DOWNLOADS = {
    "png16": "16-bit PNG",  # NAME_depth16.png
    "npy": ".npy (float32)",  # NAME_depth.npy
    "grey": "grey PNG (8-bit)",  # NAME_depth_grey.png
    "ply": ".ply point cloud",  # NAME.ply
}
DEFAULT_DOWNLOADS = ("png16", "npy", "grey")  # the point cloud (15 bytes a pixel) on request
WARM_UP_SIZE = (64, 96)  # (height, width) of the start-up image; the processor resizes it to its working size


class DemoError(ValueError):
    """A problem with what the user uploaded or chose (or a model that cannot be loaded); its message is shown on
    the page as is."""


def models_from_env(default: str = DEFAULT_MODEL) -> list[str]:
    """The models named in `$DEPTH_ANYTHING_MODEL` (comma-separated folders or Hub ids), else `[default]`."""
    names = [name.strip() for name in os.environ.get(MODEL_ENV, "").split(",") if name.strip()]
    return names or [default]


def default_examples() -> list[Path]:
    """The shipped photos offered as examples (those that exist: a pip install without the repository has none)."""
    return [EXAMPLES_DIR / name for name in EXAMPLE_PHOTOS if (EXAMPLES_DIR / name).is_file()]


# --------------------------------------------------------------------------------------------------------------------
# The work, without Gradio


@dataclass
class ImageResult:
    """One photo's result: the upright input and the coloured depth (the slider's two sides), the downloads, and
    a Markdown line for the page."""

    input_image: Path
    depth_image: Path
    files: list[Path]
    info: str
    seconds: float  # model time: resize, forward pass, resize back
    warnings: list[str] = field(default_factory=list)


@dataclass
class VideoResult:
    """One video's result: the side-by-side video to show, the downloads and a Markdown line."""

    video: Path
    files: list[Path]
    info: str
    frames: int
    seconds: float
    warnings: list[str] = field(default_factory=list)


def _safe_stem(name: str) -> str:
    """A file-name stem from an uploaded file's name: letters, digits, `_`, `-` and `.` only."""
    stem = re.sub(r"[^\w.-]+", "_", Path(name).stem).strip("._")
    return stem[:80] or "upload"


def _upload(value: Any, kind: str) -> tuple[Path, str]:
    """(path, the user's file name) from what Gradio sends: a path, or the raw file payload (`preprocess=False`)."""
    if value is None or value == "":
        raise DemoError(f"Upload {kind} first (or pick an example).")
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        return path, path.name
    payload = value.model_dump() if hasattr(value, "model_dump") else value  # gradio_client's FileData
    if not isinstance(payload, dict):
        raise DemoError(f"Unexpected upload {value!r}; please upload {kind} again.")
    if isinstance(payload.get("video"), dict):  # older Gradio video payloads: {"video": FileData, "subtitles": ...}
        payload = payload["video"]
    path = payload.get("path")
    if not path:
        raise DemoError(f"The upload did not arrive; please upload {kind} again.")
    return Path(path), payload.get("orig_name") or Path(path).name


def _reason(error: Exception, path: Path, name: str) -> str:
    """The library's message with the server-side temporary path replaced by the user's file name."""
    message = str(error).replace(os.fspath(path), name)
    return message if name in message else f"{name}: {message}"


class DepthDemo:
    """The app's models and handlers.

    Args:
        models: folders or Hub ids offered in the model choice (the first is the default).
        device: "auto", "cpu", "cuda", ... (as `depth-anything predict --device`).
        fast: the fast path where the hardware has it (`DepthEstimator.from_pretrained`'s default).
        max_frames: video frames processed per upload (the first ones).
        output_root: where result files are written before Gradio serves them (default: a new temporary folder,
            removed at exit). Only the last `keep_results` requests' folders are kept.
        warm_up: load the first model at start and run it once on a small image, so that the first request
            shows its real latency. Other models load (and warm up) on first use.
    """

    def __init__(
        self,
        models: Sequence[str],
        device: str = "auto",
        fast: bool = True,
        max_frames: int = DEFAULT_MAX_FRAMES,
        output_root: str | os.PathLike | None = None,
        keep_results: int = 64,
        warm_up: bool = True,
    ) -> None:
        self.models = list(dict.fromkeys(os.fspath(name) for name in models))
        if not self.models:
            raise ValueError("give at least one model (a save_pretrained folder or a Hub id)")
        if not isinstance(max_frames, int) or max_frames < 1:
            raise ValueError(f"max_frames must be a positive integer, got {max_frames!r}")
        self.device = device
        self.fast = fast
        self.max_frames = max_frames
        if output_root is None:
            output_root = tempfile.mkdtemp(prefix="depth-anything-demo-")
            atexit.register(shutil.rmtree, output_root, ignore_errors=True)
        self.output_root = Path(output_root)
        self.output_root.mkdir(parents=True, exist_ok=True)
        self.keep_results = keep_results
        self._results: deque[Path] = deque()
        self._estimators: dict[str, DepthEstimator] = {}
        self._load_seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        self._counter = 0
        if warm_up:
            self.estimator(self.models[0])

    # Models

    def estimator(self, name: str) -> DepthEstimator:
        """The loaded, warmed-up estimator for one of `self.models` (loaded on first use)."""
        if name not in self.models:
            raise DemoError(f"Unknown model {name!r}; choose one of: {', '.join(self.models)}.")
        with self._lock:
            if name not in self._estimators:
                start = time.perf_counter()
                try:
                    estimator = DepthEstimator.from_pretrained(name, device=self.device, fast=self.fast)
                except (OSError, ValueError) as error:  # FileNotFoundError is an OSError
                    message = str(error) if name in str(error) else f"{name}: cannot load the model ({error})"
                    raise DemoError(message) from error
                estimator.predict_arrays([np.full((*WARM_UP_SIZE, 3), 0.5, dtype=np.float32)])  # warm-up
                self._load_seconds[name] = time.perf_counter() - start
                logger.info("%s loaded and warmed up in %.1f s", name, self._load_seconds[name])
                self._estimators[name] = estimator
            return self._estimators[name]

    def describe(self, name: str) -> str:
        estimator = self.estimator(name)
        kind = "metric depth in metres" if estimator.is_metric else "relative disparity (large = near; not metres)"
        dtype = str(estimator.dtype).removeprefix("torch.")
        return f"`{name}`: {kind}, on {estimator.device.type} in {dtype}"

    def _result_dir(self) -> Path:
        """A new folder for one request's files; the oldest beyond `keep_results` are removed (Gradio has copied
        them into its own cache by then)."""
        with self._lock:
            self._counter += 1
            folder = self.output_root / f"{self._counter:06d}"
            folder.mkdir(parents=True)
            self._results.append(folder)
            while len(self._results) > self.keep_results:
                shutil.rmtree(self._results.popleft(), ignore_errors=True)
        return folder

    # Images

    def load_upload(self, image: Any) -> tuple[Path, str, np.ndarray]:
        """(path, file name, float RGB array) of an uploaded image, read as the CLI reads files; `DemoError` with
        a message for the user when it is not a readable image or is too small."""
        path, name = _upload(image, "a photo")
        try:
            array = to_rgb_float(load_image(path))
        except (ValueError, OSError, Image.DecompressionBombError) as error:
            raise DemoError(
                f"{_reason(error, path, name)}. Please upload a JPEG, PNG, WebP, BMP or TIFF photo."
            ) from error
        height, width = array.shape[:2]
        if min(height, width) < MIN_IMAGE_SIDE:
            raise DemoError(
                f"{name} is {width}x{height} pixels: too small. Depth estimation needs at least "
                f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels (one patch of the model); please upload a larger image."
            )
        return path, name, array

    def predict_image(
        self,
        image: Any,
        model: str | None = None,
        cmap: str = "Spectral_r",
        focal_length: float | None = None,
        downloads: Sequence[str] = DEFAULT_DOWNLOADS,
    ) -> ImageResult:
        """Depth for one uploaded image: the colour map (always) and the chosen `downloads` (keys of `DOWNLOADS`).

        `focal_length` (pixels at the input's resolution) is used for the point cloud; None or 0 takes the EXIF
        focal length, else a 60° horizontal field of view, as `depth-anything predict`.
        """
        model = model or self.models[0]
        if cmap not in COLORMAPS:
            raise DemoError(f"Unknown colormap {cmap!r}; choose one of: {', '.join(COLORMAPS)}.")
        unknown = [name for name in downloads or () if name not in DOWNLOADS]
        if unknown:
            raise DemoError(f"Unknown download {unknown[0]!r}; choose from: {', '.join(DOWNLOADS)}.")
        focal_length = self._focal_length(focal_length)
        path, name, array = self.load_upload(image)
        estimator = self.estimator(model)
        start = time.perf_counter()
        (prediction,) = estimator.predict_arrays([array], [name])
        seconds = time.perf_counter() - start

        folder = self._result_dir()
        start = time.perf_counter()
        written = self._write_image_files(
            prediction,
            folder,
            _safe_stem(name),
            cmap,
            focal_length,
            path,
            ["color", "input", *[key for key in DOWNLOADS if key in (downloads or ())]],
        )
        write_seconds = time.perf_counter() - start

        height, width = prediction.depth.shape
        info = (
            f"**{width}×{height}** px · depth in **{seconds * 1000:.0f} ms** · files written in "
            f"{write_seconds * 1000:.0f} ms · {self.describe(model)}"
        )
        logger.info("%s: %dx%d, depth in %.3f s, files in %.3f s", name, width, height, seconds, write_seconds)
        files = [written[key] for key in DOWNLOADS if key in written] + [written["color"]]
        return ImageResult(written["input"], written["color"], files, info, seconds)

    @staticmethod
    def _write_image_files(
        prediction, folder: Path, stem: str, cmap: str, focal_length: float | None, source: Path, keys: list[str]
    ) -> dict[str, Path]:
        """Write the files named by `keys` (`DOWNLOADS` keys, "color", "input"), in parallel threads: PNG and PLY
        encoding of a 12-megapixel photo takes seconds. `png16`, `npy` and `ply` come from an `OutputWriter` with
        the CLI's settings: the files `depth-anything predict --formats ...` writes, byte for byte. The colour and
        grey maps hold the pixels of `predict --formats color` (with `--cmap CMAP` / `--cmap gray`), saved with fast
        PNG compression (0.2 s instead of 0.9 s for a 2048x1362 map) since they are shown on every request."""

        def write_format(key: str) -> Path:
            writer = OutputWriter(folder, [key], cmap=cmap, focal_length=focal_length)
            (written,) = writer.write(prediction, stem, source=source)
            return written

        def write_map(colormap: str, path: Path, channels: slice) -> Path:
            shown = display_map(prediction)  # as OutputWriter: near is high, the map's robust 2-98 % range
            Image.fromarray(colorize(shown, colormap, robust_range(shown))[..., channels]).save(path, compress_level=1)
            return path

        def write_color() -> Path:
            return write_map(cmap, folder / f"{stem}_depth.png", slice(None))

        def write_grey() -> Path:  # one 8-bit channel
            return write_map("gray", folder / f"{stem}_depth_grey.png", 0)

        def write_input() -> Path:  # what the model saw (EXIF orientation applied), for the slider
            path = folder / f"{stem}_input.jpg"
            Image.fromarray(to_uint8(prediction.image)).save(path, quality=92)
            return path

        special = {"color": write_color, "grey": write_grey, "input": write_input}
        with ThreadPoolExecutor(max_workers=4) as pool:
            jobs = {
                key: pool.submit(special[key]) if key in special else pool.submit(write_format, key) for key in keys
            }
            return {key: job.result() for key, job in jobs.items()}

    @staticmethod
    def _focal_length(value: Any) -> float | None:
        if value is None or value == "" or value == 0:
            return None
        try:
            value = float(value)
        except (TypeError, ValueError) as error:
            raise DemoError(f"The focal length must be a number of pixels, got {value!r}.") from error
        if not np.isfinite(value) or value <= 0:
            raise DemoError(f"The focal length must be a positive number of pixels (or empty), got {value:g}.")
        return value

    # Videos

    def predict_video(self, video: Any, model: str | None = None, cmap: str = "Spectral_r") -> VideoResult:
        """Depth for the first `max_frames` frames of an uploaded video with the CLI's video path (one colour
        range per window of frames: no flicker); writes the depth video and the side-by-side video."""
        model = model or self.models[0]
        if cmap not in COLORMAPS:
            raise DemoError(f"Unknown colormap {cmap!r}; choose one of: {', '.join(COLORMAPS)}.")
        path, name = _upload(video, "a video")
        estimator = self.estimator(model)
        folder = self._result_dir()
        stem = _safe_stem(name)
        writer = OutputWriter(folder, ["color", "side_by_side"], cmap=cmap)
        total = _frame_count(path)
        start = time.perf_counter()
        try:
            result = predict_video(estimator, path, writer, stem, max_frames=self.max_frames)
        except ImportError as error:
            raise DemoError(
                f"Video needs PyAV on the server: pip install 'depth-anything-hf[video]' ({error})."
            ) from error
        except (ValueError, OSError) as error:
            raise DemoError(
                f"{_reason(error, path, name)}. Please upload an MP4, WebM, MOV, AVI or MKV video."
            ) from error
        seconds = time.perf_counter() - start
        frames = int(result["frames"])
        warnings = []
        if frames >= self.max_frames and total != frames:
            of_total = f" of {total}" if total else ""
            warnings.append(
                f"Only the first {frames}{of_total} frames were processed (this app's limit). For the whole video "
                f"run: depth-anything predict {name} --model {model} --formats color side_by_side"
            )
        depth_video, side_video = (folder / f"{stem}_depth.mp4"), (folder / f"{stem}_side_by_side.mp4")
        info = (
            f"**{frames}** frames at {result['fps']:.1f} fps in **{seconds:.1f} s** "
            f"({seconds / frames * 1000:.0f} ms per frame) · limit {self.max_frames} frames · {self.describe(model)}"
        )
        return VideoResult(side_video, [depth_video, side_video], info, frames, seconds, warnings)


def _frame_count(path: Path) -> int:
    """The frame count the container states, 0 when unknown or unreadable (the prediction reports the error)."""
    try:
        import av

        with av.open(os.fspath(path)) as container:
            return int(container.streams.video[0].frames or 0)
    except Exception:  # only a hint for the page; predict_video reports the real error
        return 0


# --------------------------------------------------------------------------------------------------------------------
# The page


def _gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry, no version check
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio as gr
    except ImportError as error:
        raise ImportError(f"the demo needs Gradio: pip install 'depth-anything-hf[demo]' ({error})") from error
    return gr


def handle_image(
    app: DepthDemo, image: Any, model: str, cmap: str, focal_length: Any, downloads: Sequence[str] = DEFAULT_DOWNLOADS
):
    """The image tab's handler: (slider pair, download files, info). User errors become `gr.Error` on the page."""
    gr = _gradio()
    try:
        result = app.predict_image(image, model, cmap, focal_length, downloads)
    except DemoError as error:
        logger.warning("%s", error)
        raise gr.Error(str(error), title="Cannot estimate depth", print_exception=False) from None
    for message in result.warnings:
        gr.Warning(message)
    return (str(result.input_image), str(result.depth_image)), [str(path) for path in result.files], result.info


def handle_video(app: DepthDemo, video: Any, model: str, cmap: str):
    """The video tab's handler: (side-by-side video, download files, info)."""
    gr = _gradio()
    try:
        result = app.predict_video(video, model, cmap)
    except DemoError as error:
        logger.warning("%s", error)
        raise gr.Error(str(error), title="Cannot process the video", print_exception=False) from None
    for message in result.warnings:
        gr.Warning(message)
    return str(result.video), [str(path) for path in result.files], result.info


INTRO = """# Depth Anything
Upload a photo (or pick an example) and press **Estimate depth**: drag the slider to compare the photo with its
depth. Relative models predict *disparity* (large = near, up to an unknown scale and shift: not metres); metric
models predict metres. The downloads are the files `depth-anything predict --formats png16 npy ply` writes: a
16-bit PNG (relative: disparity scaled to 0–65535, white = near; metric: millimetres), the float32 `.npy` and the
coloured `.ply` point cloud; plus an 8-bit grey PNG and the colour map."""


def build_demo(app: DepthDemo, examples: Sequence[str | os.PathLike] | None = None):
    """The Gradio page for `app`: an image tab (slider, downloads, latency) and a video tab. Returns `gr.Blocks`."""
    gr = _gradio()
    examples = default_examples() if examples is None else list(examples)
    with gr.Blocks(title="Depth Anything", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Tab("Image"):
            with gr.Row():
                with gr.Column(scale=1):
                    image = gr.Image(
                        label="Photo", type="filepath", sources=["upload", "clipboard"], elem_id="input-image"
                    )
                    model = gr.Dropdown(app.models, value=app.models[0], label="Model", elem_id="model")
                    cmap = gr.Dropdown(list(COLORMAPS), value=COLORMAPS[0], label="Colormap", elem_id="cmap")
                    downloads = gr.CheckboxGroup(
                        [(label, key) for key, label in DOWNLOADS.items()],
                        value=list(DEFAULT_DOWNLOADS),
                        label="Files to download",
                        elem_id="downloads",
                    )
                    focal = gr.Number(
                        value=0,
                        minimum=0,
                        label="Focal length for the point cloud (pixels)",
                        info="0: from the photo's EXIF, else a 60° horizontal field of view",
                        elem_id="focal-length",
                    )
                    run = gr.Button("Estimate depth", variant="primary", elem_id="run-image")
                with gr.Column(scale=2):
                    slider = gr.ImageSlider(
                        label="Photo | depth", type="filepath", interactive=False, elem_id="depth-slider"
                    )
                    info = gr.Markdown(elem_id="image-info")
                    files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="image-files")
            if examples:
                gr.Examples([[os.fspath(path)] for path in examples], inputs=[image], label="Shipped photos")

        with gr.Tab("Video"):
            gr.Markdown(
                f"The first **{app.max_frames}** frames of the video are processed (the app's frame limit), "
                "with one colour range per 32-frame window so the colours do not flicker."
            )
            with gr.Row():
                with gr.Column(scale=1):
                    video = gr.Video(label="Video", sources=["upload"], elem_id="input-video")
                    video_model = gr.Dropdown(app.models, value=app.models[0], label="Model")
                    video_cmap = gr.Dropdown(list(COLORMAPS), value=COLORMAPS[0], label="Colormap")
                    run_video = gr.Button("Estimate depth", variant="primary", elem_id="run-video")
                with gr.Column(scale=2):
                    video_out = gr.Video(label="Video | depth", interactive=False, elem_id="depth-video")
                    video_info = gr.Markdown(elem_id="video-info")
                    video_files = gr.File(
                        label="Downloads: depth video, side-by-side video", file_count="multiple", interactive=False
                    )

        def on_image(image, model, cmap, focal_length, downloads):
            return handle_image(app, image, model, cmap, focal_length, downloads)

        def on_video(video, model, cmap):
            return handle_video(app, video, model, cmap)

        # preprocess=False: the handlers read the uploaded file themselves (as the CLI does), so an unreadable
        # upload is reported with a message the user can act on rather than failing inside Gradio.
        run.click(
            on_image,
            [image, model, cmap, focal, downloads],
            [slider, files, info],
            api_name="predict",
            preprocess=False,
            concurrency_id="model",
        )
        run_video.click(
            on_video,
            [video, video_model, video_cmap],
            [video_out, video_files, video_info],
            api_name="predict_video",
            preprocess=False,
            concurrency_id="model",
        )
    demo.queue(default_concurrency_limit=1)
    return demo


def launch_demo(
    models: Sequence[str],
    host: str | None = "127.0.0.1",
    port: int | None = DEFAULT_PORT,
    device: str = "auto",
    fast: bool = True,
    max_frames: int = DEFAULT_MAX_FRAMES,
    examples: Sequence[str | os.PathLike] | None = None,
    block: bool = True,
):
    """Load the models, build the page and serve it (offline: no share link, no analytics). `host`/`port` None
    take Gradio's `GRADIO_SERVER_NAME`/`GRADIO_SERVER_PORT` (what a Space sets). Returns the `gr.Blocks`; with
    `block=False` it returns while the server runs (call `.close()` to stop it)."""
    _gradio()
    app = DepthDemo(models, device=device, fast=fast, max_frames=max_frames)
    examples = default_examples() if examples is None else list(examples)
    demo = build_demo(app, examples)
    allowed = sorted({os.fspath(Path(path).resolve().parent) for path in examples} | {os.fspath(app.output_root)})
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        show_error=False,  # unexpected errors: "Error" on the page, the trace in the server log only
        allowed_paths=allowed,
        max_file_size="200mb",
        ssr_mode=False,
        prevent_thread_lock=not block,
    )
    return demo


__all__ = [
    "COLORMAPS",
    "DEFAULT_MODEL",
    "MODEL_ENV",
    "DEFAULT_DOWNLOADS",
    "DOWNLOADS",
    "DemoError",
    "DepthDemo",
    "ImageResult",
    "VideoResult",
    "build_demo",
    "default_examples",
    "handle_image",
    "handle_video",
    "launch_demo",
    "models_from_env",
]
