"""What the CLI reads: files, folders and glob patterns expanded into input items, images loaded one by one."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..image_processing_depth_anything import (
    MIN_IMAGE_SIDE,
    load_image,
    to_rgb_float,
)

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


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


def image_iterator(items: Sequence[InputItem]) -> Iterator[tuple[InputItem, np.ndarray | Exception]]:
    """Load images one by one; yields (item, float RGB array) or (item, the exception that made it unreadable)."""
    for item in items:
        try:
            array = to_rgb_float(load_image(item.path))
        except (ValueError, OSError) as error:
            yield item, error
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
