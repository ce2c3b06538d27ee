"""What the CLI reads: files, folders and glob patterns expanded into input items, images loaded one by one."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..image_processing_depth_anything import (
    MIN_IMAGE_SIDE,
    load_image,
    to_rgb_float,
)

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
# PIL refuses images over twice its MAX_IMAGE_PIXELS (178,956,970 pixels) as possible decompression bombs; the same
# default here, adjustable (`--max-image-pixels`). A decoded image costs 15 bytes per pixel here (uint8 + float32).
DEFAULT_MAX_IMAGE_PIXELS = 2 * 89_478_485


@dataclass
class InputItem:
    """A file to process. `relative` is the output name stem (subfolders kept for folder inputs); `explicit` is
    True for files the user named (their failure is an error) and False for files found in a folder or glob."""

    path: Path
    relative: Path
    explicit: bool

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_EXTENSIONS


def collect_inputs(inputs: Iterable[str], recursive: bool = False) -> list[InputItem]:
    """Expand files, folders and glob patterns into input items, in a stable order.

    Raises `FileNotFoundError` naming the path when a named file or folder does not exist or a pattern matches
    nothing. Folders contribute their image and video files (by extension); other files in them are ignored.
    """
    import glob

    items: list[InputItem] = []
    known = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    for entry in inputs:
        path = Path(entry).expanduser()
        if any(char in entry for char in "*?["):
            matches = sorted(Path(match) for match in glob.glob(os.path.expanduser(entry), recursive=True))
            files = [match for match in matches if match.is_file() and match.suffix.lower() in known]
            if not files:
                raise FileNotFoundError(f"{entry}: the pattern matches no image or video files")
            items.extend(InputItem(match, Path(match.stem), explicit=False) for match in files)
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(match for match in path.glob(pattern) if match.is_file() and match.suffix.lower() in known)
            if not files:
                logger.warning("%s: no image or video files in this folder", entry)
            items.extend(InputItem(match, match.relative_to(path).with_suffix(""), explicit=False) for match in files)
        elif path.is_file():
            items.append(InputItem(path, Path(path.stem), explicit=True))
        else:
            raise FileNotFoundError(f"{entry}: no such file or folder")
    seen: dict[Path, int] = {}
    for item in items:  # two inputs with the same name (e.g. a.jpg and a.png) must not overwrite each other
        count = seen.get(item.relative, 0)
        seen[item.relative] = count + 1
        if count:
            item.relative = item.relative.with_name(f"{item.relative.name}_{count}")
    return items


def _image_pixels(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header without decoding it; None when PIL cannot read the header."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the header only: the size is what we want to check ourselves
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _load_checked(path: Path, max_pixels: int | None) -> np.ndarray:
    """Decode one image, refusing one over `max_pixels` (None: no limit) with a message that names the file, its
    size, the limit and how to raise it."""
    size = _image_pixels(path)
    if size is not None and max_pixels is not None and size[0] * size[1] > max_pixels:
        raise ValueError(
            f"{path}: {size[0]}x{size[1]} = {size[0] * size[1] / 1e6:.1f} megapixels is over the limit of "
            f"{max_pixels / 1e6:.1f} megapixels (a guard against decompression bombs); raise it with "
            "--max-image-pixels N, or 0 for no limit"
        )
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # checked above against our own limit
    try:
        return to_rgb_float(load_image(path))
    except Image.DecompressionBombError as error:  # pragma: no cover - the header check above comes first
        raise ValueError(f"{path}: {error}") from error
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def image_iterator(
    items: Sequence[InputItem], max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
) -> Iterator[tuple[InputItem, np.ndarray | Exception]]:
    """Load images one by one; yields (item, float RGB array) or (item, the exception that made it unusable).

    An image over `max_pixels` (None: no limit), unreadable, or smaller than a patch is yielded as a `ValueError`
    naming the file, so one bad file never stops a folder run.
    """
    for item in items:
        try:
            array = _load_checked(item.path, max_pixels)
        except (ValueError, OSError) as error:
            yield item, error
            continue
        except MemoryError:
            yield item, MemoryError(f"{item.path}: not enough memory to decode this image")
            continue
        height, width = array.shape[:2]
        if min(height, width) < MIN_IMAGE_SIDE:
            yield (
                item,
                ValueError(
                    f"{item.path}: {width}x{height} pixels is too small (at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE})"
                ),
            )
        else:
            yield item, array
