"""Video: frames batched through the predictor, one colour range per window of frames (no flicker)."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .estimator import DepthEstimator
from .outputs import OutputWriter
from .visualize import colorize, display_map, robust_range, side_by_side

logger = logging.getLogger(__name__)


class VideoRangeTracker:
    """One normalisation range per frame, shared over a centred window of frames, so colours do not flicker.

    Each frame's robust range is its (2 %, 98 %) percentile pair; frame t is shown with the median of the lows and
    of the highs over frames [t - window // 2, t + window // 2]. Per-frame min-max normalisation (what most demos
    do) rescales every frame on its own and makes the colours of static objects pulse. Frames are buffered until
    `window // 2` later frames are known; `push` returns the frames that are ready, `flush` the rest.
    """

    def __init__(self, window: int = 32) -> None:
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer (frames), got {window!r}")
        self.half = window // 2
        self.ranges: deque[tuple[float, float]] = deque()
        self.pending: deque[tuple[int, object]] = deque()
        self.first_index = 0  # frame index of ranges[0]
        self.count = 0

    def _range(self, index: int) -> tuple[float, float]:
        start, stop = index - self.half - self.first_index, index + self.half + 1 - self.first_index
        window = list(self.ranges)[max(start, 0) : stop]
        low = float(np.median([value[0] for value in window]))
        high = float(np.median([value[1] for value in window]))
        return low, high if high > low else low + 1.0

    def push(self, values: np.ndarray, payload: object) -> list[tuple[object, tuple[float, float]]]:
        """Add a frame's display map (high = near) with any payload; returns [(payload, range)] ready to write."""
        self.ranges.append(robust_range(values))
        self.pending.append((self.count, payload))
        self.count += 1
        ready = []
        while self.pending and self.pending[0][0] + self.half < self.count:
            ready.append(self._pop())
        return ready

    def flush(self) -> list[tuple[object, tuple[float, float]]]:
        return [self._pop() for _ in range(len(self.pending))]

    def _pop(self) -> tuple[object, tuple[float, float]]:
        index, payload = self.pending.popleft()
        value_range = self._range(index)
        while self.first_index < index - self.half:  # ranges older than any future window
            self.ranges.popleft()
            self.first_index += 1
        return payload, value_range


def read_video(path: str | os.PathLike) -> tuple[Iterator[np.ndarray], float, int]:
    """Open a video with PyAV: (iterator of uint8 (height, width, 3) RGB frames, frames per second, frame count
    or 0 when the container does not say). Raises `ValueError` naming the file when it is not a readable video."""
    try:
        import av
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError("video needs PyAV: pip install 'depth-anything-hf[video]'") from error
    path = os.fspath(path)
    try:
        container = av.open(path)
        stream = container.streams.video[0]
    except (av.error.FFmpegError, IndexError, OSError) as error:
        raise ValueError(f"{path}: not a readable video ({error})") from error
    fps = float(stream.average_rate or stream.guessed_rate or 25)
    frames = int(stream.frames or 0)

    def iterate() -> Iterator[np.ndarray]:
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as error:
            raise ValueError(f"{path}: video decoding failed ({error})") from error
        finally:
            container.close()

    return iterate(), fps, frames


class VideoWriter:
    """Writes uint8 RGB frames to an .mp4 (H.264 when available, else MPEG-4 Part 2) with PyAV."""

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        import av

        self.path = os.fspath(path)
        self.container = av.open(self.path, mode="w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=max(1, round(fps)))
        self.stream.pix_fmt = "yuv420p"
        self.opened = False

    def write(self, frame: np.ndarray) -> None:
        import av

        if not self.opened:
            # yuv420p needs even sizes: crop a trailing odd row/column
            self.stream.height, self.stream.width = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
            self.opened = True
        frame = np.ascontiguousarray(frame[: self.stream.height, : self.stream.width])
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self.container.mux(packet)

    def close(self) -> None:
        if self.opened:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()


def predict_video(
    estimator: DepthEstimator,
    path: str | os.PathLike,
    writer: OutputWriter,
    stem: str | os.PathLike,
    window: int = 32,
    max_frames: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, object]:
    """Depth for every frame of a video, frames batched, one normalisation range per window (no flicker).

    Writes `stem_depth.mp4` (format `color`) and `stem_side_by_side.mp4` (`side_by_side`); `png16`, `npy` and
    `ply` go per frame into the folder `stem_frames/` as `frame_000000_*`. Returns {"frames", "fps", "outputs",
    "partial"}.

    A video that stops decoding part-way (corrupted or truncated after some frames) keeps what was decoded: every
    frame read is predicted and written, and `"partial"` says why the rest is missing (None for a complete video).
    A video without a single readable frame raises `ValueError` naming the file.
    """
    frames, fps, announced = read_video(path)
    base = writer.output_dir / Path(stem)
    base.parent.mkdir(parents=True, exist_ok=True)
    videos = {
        name: VideoWriter(f"{base}_{suffix}.mp4", fps)
        for name, suffix in (("color", "depth"), ("side_by_side", "side_by_side"))
        if name in writer.formats
    }
    per_frame = [name for name in writer.formats if name in ("png16", "npy", "ply")]
    frame_writer = (
        OutputWriter(
            Path(f"{base}_frames"), per_frame, writer.cmap, writer.focal_length, writer.depth_ratio, writer.ply_stride
        )
        if per_frame
        else None
    )
    tracker = VideoRangeTracker(window)
    count = 0
    partial: str | None = None

    def emit(ready: list[tuple[object, tuple[float, float]]]) -> None:
        for (index, prediction), value_range in ready:
            shown = display_map(prediction)
            colored = colorize(shown, writer.cmap, value_range)
            if "color" in videos:
                videos["color"].write(colored)
            if "side_by_side" in videos:
                videos["side_by_side"].write(side_by_side(prediction.image, colored))
            if frame_writer is not None:
                png_range = None if prediction.is_metric else value_range
                frame_writer.write(prediction, f"frame_{index:06d}", png_range)

    def run(batch: list[np.ndarray], first: int) -> None:
        arrays = [frame.astype(np.float32) / 255.0 for frame in batch]
        for offset, prediction in enumerate(estimator.predict_arrays(arrays)):
            emit(tracker.push(display_map(prediction), (first + offset, prediction)))
        if progress is not None:
            progress(len(batch))

    try:
        batch: list[np.ndarray] = []
        while max_frames is None or count < max_frames:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except ValueError as error:  # decoding failed part-way: keep the frames before it
                if count == 0:
                    raise
                partial = f"decoding stopped after frame {count}: {str(error).removeprefix(f'{os.fspath(path)}: ')}"
                break
            batch.append(frame)
            count += 1
            if len(batch) == estimator.batch_size:
                run(batch, count - len(batch))
                batch = []
        if batch:
            run(batch, count - len(batch))
        emit(tracker.flush())
    finally:
        frames.close()  # stops decoding (and closes the file) also when max_frames ended the loop
        for video in videos.values():
            video.close()
    if count == 0:
        raise ValueError(f"{os.fspath(path)}: the video has no frames")
    if partial is None and announced and count < announced and (max_frames is None or count < max_frames):
        partial = f"the file announces {announced} frames, only {count} could be decoded (truncated?)"
    outputs = [Path(video.path) for video in videos.values()] + ([frame_writer.output_dir] if frame_writer else [])
    return {"frames": count, "fps": fps, "outputs": outputs, "partial": partial}
