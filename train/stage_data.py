"""Thin data adapter of the training stages: resumable, sharded sample streams, the joint transform, strong
perturbations with CutMix, and the pseudo-label parquet format.

Written by the training stages' owner while the data engine (issue 3: `train/data.py`, `train/augment.py`,
`train/pseudo_label_format.py`) was being built in parallel; it covers what the stages need and can be swapped for
the data engine's API function by function. Sources are `datasets.IterableDataset`s (the synthetic scenes of
`train/synthetic.py`, image folders, pseudo-label parquet), sharded with `split_dataset_by_node` so N processes read
disjoint samples and together all of them.

`SampleStream` decodes each raw example in a try/except: unreadable images, depth maps of the wrong shape and labels
without a valid pixel are skipped and counted by reason (`bad_counts()`), with their ids logged; NaN/inf label pixels
are masked out (and the sample counted under `nonfinite_label_pixels`), as the losses ignore them anyway. Its
`state_dict()` holds the `datasets` position, the epoch and the augmentation RNG, so a resumed run sees exactly the
samples and crops an uninterrupted run would have seen.
"""

from __future__ import annotations

import glob
import io
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image, ImageOps

from modeling_depth_anything.image_processing_depth_anything import IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MIN_VALID_PIXELS = 16
PSEUDO_LABEL_COLUMNS = ("id", "image", "disparity_png", "disparity_min", "disparity_max", "height", "width", "teacher")


class BadSampleError(ValueError):
    """A sample that cannot be used; `reason` is the counter it is skipped under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# ---------------------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------------------


def decode_image(source: Any, name: str) -> np.ndarray:
    """A path, encoded bytes or PIL image -> uint8 (H, W, 3) RGB; raises `BadSampleError("unreadable_image")`."""
    try:
        if isinstance(source, Image.Image):
            image = source
        elif isinstance(source, (bytes, bytearray)):
            image = Image.open(io.BytesIO(source))
        else:
            image = Image.open(source)
        image.load()
        image = ImageOps.exif_transpose(image).convert("RGB")
    except Exception as error:  # PIL raises many types for broken files
        raise BadSampleError("unreadable_image", f"{name}: not a readable image ({error})") from error
    array = np.asarray(image, dtype=np.uint8)
    if array.shape[0] < 14 or array.shape[1] < 14:
        raise BadSampleError("image_too_small", f"{name}: image of size {array.shape[:2]} is smaller than a patch")
    return array


def depth_to_disparity(depth: np.ndarray, sky: np.ndarray | None, name: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Metric depth (H, W) -> (disparity 1/depth, valid mask, had_nonfinite); sky pixels get disparity 0, valid."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise BadSampleError("bad_depth_shape", f"{name}: depth must be (H, W), got shape {depth.shape}")
    finite = np.isfinite(depth)
    valid = finite & (depth > 0)
    disparity = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0).astype(np.float32)
    if sky is not None:
        sky = np.asarray(sky, dtype=bool)
        valid = valid | sky
        disparity[sky] = 0.0
    return disparity, valid, not bool(finite.all())


def read_depth_file(path: str) -> np.ndarray:
    """`depth.npy` (float metres, NaN/inf allowed) or `depth.png` (uint16 millimetres, 0 = missing) -> metres."""
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False).astype(np.float32)
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.float32) / 1000.0


# ---------------------------------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------------------------------


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) in [0, 1] -> ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image - mean) / std


def joint_transform(
    image: np.ndarray,
    disparity: np.ndarray | None,
    valid: np.ndarray | None,
    rng: np.random.Generator,
    short_side: int,
    crop: tuple[int, int],
    hflip: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Resize the short side to `short_side`, random crop to `crop` (H, W), random flip; jointly.

    Image: bilinear (antialiased when shrinking); disparity and mask: nearest (no mixing across depth edges).
    The disparity is then min-max normalised to [0, 1] over the valid pixels (facts §4).

    Returns:
        image `(3, crop_h, crop_w)` float in [0, 1], disparity `(crop_h, crop_w)` float, valid `(crop_h, crop_w)` bool
        (the last two None when `disparity` is None).
    """
    height, width = image.shape[:2]
    scale = short_side / min(height, width)
    new_h, new_w = max(crop[0], round(height * scale)), max(crop[1], round(width * scale))
    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)[None]  # (1, 3, H, W)
    if (new_h, new_w) != (height, width):
        tensor = F.interpolate(tensor, size=(new_h, new_w), mode="bilinear", align_corners=False,
                               antialias=scale < 1)  # (1, 3, new_h, new_w)
    top = int(rng.integers(0, new_h - crop[0] + 1))
    left = int(rng.integers(0, new_w - crop[1] + 1))
    flip = hflip and bool(rng.random() < 0.5)
    out_image = tensor[0, :, top : top + crop[0], left : left + crop[1]].clamp(0, 1)  # (3, crop_h, crop_w)
    if flip:
        out_image = out_image.flip(-1)
    if disparity is None:
        return out_image.contiguous(), None, None
    maps = torch.from_numpy(np.stack([disparity, valid.astype(np.float32)]))[None]  # (1, 2, H, W)
    if (new_h, new_w) != (height, width):
        maps = F.interpolate(maps, size=(new_h, new_w), mode="nearest")  # (1, 2, new_h, new_w)
    maps = maps[0, :, top : top + crop[0], left : left + crop[1]]  # (2, crop_h, crop_w)
    if flip:
        maps = maps.flip(-1)
    out_disparity, out_valid = maps[0].contiguous(), maps[1] > 0.5
    if out_valid.sum() < MIN_VALID_PIXELS:
        raise BadSampleError("empty_mask", f"fewer than {MIN_VALID_PIXELS} valid label pixels in the crop")
    low, high = out_disparity[out_valid].min(), out_disparity[out_valid].max()
    out_disparity = torch.where(out_valid, (out_disparity - low) / (high - low).clamp(min=1e-8), 0.0)
    return out_image.contiguous(), out_disparity, out_valid


# ---------------------------------------------------------------------------------------------------------------------
# Sources (raw examples, decoded lazily by SampleStream)
# ---------------------------------------------------------------------------------------------------------------------


def _folder_samples(paths: list[str]) -> Iterator[dict]:
    for path in paths:
        yield {"id": path}


def _split(dataset, process_index: int, num_processes: int):
    from datasets.distributed import split_dataset_by_node

    return split_dataset_by_node(dataset, rank=process_index, world_size=num_processes) if num_processes > 1 \
        else dataset


def list_images(folder: str) -> list[str]:
    """Every image file under `folder`, sorted (the order defines ids and shards)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such image folder")
    files = sorted(p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
                   if p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p))
    if not files:
        raise ValueError(f"{folder}: contains no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def list_labelled_samples(folder: str) -> list[str]:
    """Sample folders under `folder` that hold an `image.*` and a `depth.png` / `depth.npy`."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such labelled folder")
    samples = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(folder, "**", "image.*"), recursive=True))
    if not samples:
        raise ValueError(f"{folder}: no sample folders with image.* and depth.png/depth.npy")
    return samples


def raw_source(spec: str, data_args, labelled: bool, process_index: int, num_processes: int, seed_offset: int = 0):
    """A sharded `datasets.IterableDataset` of raw examples for a source spec (see `DataArguments`)."""
    import datasets
    from synthetic import synthetic_stream

    if spec == "synthetic":
        shards = data_args.synthetic_num_shards
        if shards % num_processes:
            raise ValueError(f"synthetic_num_shards ({shards}) must be a multiple of the number of processes "
                             f"({num_processes})")
        stream = synthetic_stream(seed=data_args.synthetic_seed + seed_offset,
                                  size=(data_args.synthetic_height, data_args.synthetic_width), num_shards=shards)
        return _split(stream, process_index, num_processes)
    kind, _, path = spec.partition(":")
    if kind == "pseudo":
        files = pseudo_label_files(path)
        stream = datasets.IterableDataset.from_generator(_pseudo_rows, gen_kwargs={"files": files})
        return _split(stream, process_index, num_processes)
    items = list_labelled_samples(path) if labelled else list_images(path)
    stream = datasets.IterableDataset.from_generator(_folder_samples, gen_kwargs={"paths": items})
    return _split(stream, process_index, num_processes)


def prepare_labelled(example: dict, rng: np.random.Generator, data_args) -> dict[str, torch.Tensor]:
    """Raw labelled example (synthetic, folder or pseudo-label row) -> {pixel_values, labels, valid_mask, ...}."""
    name = str(example.get("id"))
    if "disparity_png" in example:  # a pseudo-label row
        image = decode_image(example["image"], name)
        disparity = decode_disparity(example, name)
        if disparity.shape != image.shape[:2]:
            raise BadSampleError("bad_depth_shape", f"{name}: pseudo-label {disparity.shape} vs image {image.shape[:2]}")
        valid, had_nonfinite = np.isfinite(disparity), not np.isfinite(disparity).all()
        disparity = np.where(valid, disparity, 0.0).astype(np.float32)
    else:
        if "depth" in example:  # synthetic
            image = decode_image(example["image"], name)
            depth, sky = example["depth"], example.get("sky_mask")
        else:  # labelled folder
            folder = example["id"]
            image_path = sorted(glob.glob(os.path.join(folder, "image.*")))[0]
            image = decode_image(image_path, image_path)
            depth_path = next((p for p in (os.path.join(folder, "depth.npy"), os.path.join(folder, "depth.png"))
                               if os.path.isfile(p)), None)
            if depth_path is None:
                raise BadSampleError("missing_depth", f"{folder}: no depth.npy or depth.png")
            try:
                depth = read_depth_file(depth_path)
            except Exception as error:
                raise BadSampleError("unreadable_depth", f"{depth_path}: unreadable depth ({error})") from error
            sky = None
        disparity, valid, had_nonfinite = depth_to_disparity(np.asarray(depth), sky, name)
        if disparity.shape != image.shape[:2]:
            raise BadSampleError("bad_depth_shape", f"{name}: depth {disparity.shape} vs image {image.shape[:2]}")
    if valid.sum() < MIN_VALID_PIXELS:
        raise BadSampleError("empty_mask", f"{name}: fewer than {MIN_VALID_PIXELS} valid label pixels")
    try:
        pixels, labels, mask = joint_transform(image, disparity, valid, rng, data_args.resize_short_side,
                                               (data_args.crop_height, data_args.crop_width), data_args.hflip)
    except BadSampleError as error:
        raise BadSampleError(error.reason, f"{name}: {error}") from error
    return {"pixel_values": normalize_image(pixels), "images": pixels, "labels": labels, "valid_mask": mask,
            "nonfinite": had_nonfinite}


def prepare_unlabelled(example: dict, rng: np.random.Generator, data_args) -> dict[str, torch.Tensor]:
    """Raw unlabelled example -> {images (3, H, W) in [0, 1], pixel_values} after resize + crop + flip."""
    name = str(example.get("id"))
    image = decode_image(example["image"] if "image" in example else example["id"], name)
    pixels, _, _ = joint_transform(image, None, None, rng, data_args.resize_short_side,
                                   (data_args.crop_height, data_args.crop_width), data_args.hflip)
    return {"pixel_values": normalize_image(pixels), "images": pixels}


class SampleStream:
    """An endless (or, with `repeat=False`, finite) resumable stream of prepared samples from several sources.

    Sources are interleaved round-robin. Each call to `next_sample()` returns one prepared sample dict; bad samples are
    skipped and counted. `state_dict()` is JSON-serialisable.
    """

    def __init__(
        self,
        sources: list,
        prepare: Callable[[dict, np.random.Generator, Any], dict],
        data_args,
        seed: int,
        repeat: bool = True,
        name: str = "stream",
    ) -> None:
        if not sources:
            raise ValueError(f"{name}: no data source given")
        self.sources, self.prepare, self.data_args, self.repeat, self.name = sources, prepare, data_args, repeat, name
        self.rng = np.random.default_rng(seed)
        self.epochs = [0] * len(sources)
        self.next_source = 0
        self.good = 0
        self.bad: dict[str, int] = {}
        self._iterators: list[Iterator | None] = [None] * len(sources)

    def _raw(self, index: int) -> dict | None:
        for _ in range(2):
            if self._iterators[index] is None:
                self._iterators[index] = iter(self.sources[index])
            try:
                return next(self._iterators[index])
            except StopIteration:
                if not self.repeat:
                    return None
                self.epochs[index] += 1
                self.sources[index].set_epoch(self.epochs[index])
                self._iterators[index] = None
        raise ValueError(f"{self.name}: source {index} yields no samples")

    def next_sample(self) -> dict | None:
        """The next good sample, or None when every (finite) source is exhausted."""
        exhausted = 0
        while True:
            index = self.next_source
            self.next_source = (self.next_source + 1) % len(self.sources)
            example = self._raw(index)
            if example is None:
                exhausted += 1
                if exhausted >= len(self.sources):
                    return None
                continue
            exhausted = 0
            try:
                sample = self.prepare(example, self.rng, self.data_args)
            except BadSampleError as error:
                self.bad[error.reason] = self.bad.get(error.reason, 0) + 1
                logger.warning(f"{self.name}: skipped a bad sample ({error.reason}): {error}")
                self._check_bad_fraction()
                continue
            if sample.pop("nonfinite", False):
                self.bad["nonfinite_label_pixels"] = self.bad.get("nonfinite_label_pixels", 0) + 1
            self.good += 1
            sample["id"] = str(example.get("id"))
            return sample

    def _check_bad_fraction(self) -> None:
        skipped = sum(v for k, v in self.bad.items() if k != "nonfinite_label_pixels")
        total = skipped + self.good
        if total >= 20 and skipped / total > self.data_args.max_bad_fraction:
            raise RuntimeError(f"{self.name}: {skipped} of {total} samples were bad ({self.bad}); check the data "
                               f"(max_bad_fraction={self.data_args.max_bad_fraction})")

    def next_batch(self, batch_size: int) -> dict[str, Any]:
        """`batch_size` samples stacked: tensors get a leading batch dimension, ids a list."""
        samples = [self.next_sample() for _ in range(batch_size)]
        if any(sample is None for sample in samples):
            raise RuntimeError(f"{self.name}: the stream ended inside a training run")
        return collate(samples)

    def bad_counts(self) -> dict[str, int]:
        return dict(self.bad)

    def state_dict(self) -> dict:
        return {
            "sources": [source.state_dict() for source in self.sources],
            "epochs": list(self.epochs),
            "next_source": self.next_source,
            "rng": self.rng.bit_generator.state,
            "good": self.good,
            "bad": dict(self.bad),
        }

    def load_state_dict(self, state: dict) -> None:
        for source, epoch, source_state in zip(self.sources, state["epochs"], state["sources"], strict=True):
            source.set_epoch(epoch)
            source.load_state_dict(source_state)
        self.epochs = list(state["epochs"])
        self.next_source = state["next_source"]
        self.rng.bit_generator.state = state["rng"]
        self.good, self.bad = state["good"], dict(state["bad"])
        self._iterators = [None] * len(self.sources)


def collate(samples: list[dict]) -> dict[str, Any]:
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        batch[key] = torch.stack(values) if torch.is_tensor(values[0]) else values
    return batch


def concat_batches(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Concatenate two collated batches along the batch dimension (keys of `first` that both have)."""
    out = {}
    for key in first:
        if key in second:
            out[key] = torch.cat([first[key], second[key]]) if torch.is_tensor(first[key]) else first[key] + second[key]
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Strong perturbations and CutMix (V1 Sec. 3.2; parameters from facts §5, UNCERTAIN upstream: UniMatch's)
# ---------------------------------------------------------------------------------------------------------------------


def strong_perturbations(images: torch.Tensor) -> torch.Tensor:
    """Colour jitter (0.5, 0.5, 0.5, 0.25) p 0.8, grayscale p 0.2, Gaussian blur sigma in [0.1, 2] p 0.5.

    Args:
        images (`torch.Tensor` of shape `(batch, 3, H, W)`): in [0, 1]. Randomness from torch's global RNG (which
            the checkpoints restore).

    Returns:
        `torch.Tensor` of shape `(batch, 3, H, W)` in [0, 1].
    """
    from kornia import augmentation

    kernel = 2 * (max(images.shape[-2:]) // 20) + 3  # odd, ~10 % of the side
    augment = torch.nn.Sequential(
        augmentation.ColorJitter(0.5, 0.5, 0.5, 0.25, p=0.8),
        augmentation.RandomGrayscale(p=0.2),
        augmentation.RandomGaussianBlur((kernel, kernel), (0.1, 2.0), p=0.5),
    )
    with torch.no_grad():
        return augment(images.float()).clamp(0, 1)


def cutmix(images: torch.Tensor, probability: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paste a random box of sample `pairing[i]` into sample `i` with probability `probability` per sample.

    Box area 2-40 % of the image, aspect ratio 0.3-3.3 (facts §5). The pairing is a roll by one, so that the
    box's label is the partner's. Randomness from torch's global RNG.

    Args:
        images (`torch.Tensor` of shape `(batch, 3, H, W)`).

    Returns:
        mixed `(batch, 3, H, W)`, box_mask `(batch, H, W)` bool (True inside the pasted box; all False for unmixed
        samples), pairing `(batch,)` long (the sample each box comes from).
    """
    batch, _, height, width = images.shape
    pairing = torch.roll(torch.arange(batch), shifts=1)  # (batch,)
    box_mask = torch.zeros(batch, height, width, dtype=torch.bool)
    if batch < 2:
        return images, box_mask, pairing
    for index in range(batch):
        if torch.rand(()) >= probability:
            continue
        area = float(torch.empty(()).uniform_(0.02, 0.4)) * height * width
        aspect = math.exp(float(torch.empty(()).uniform_(math.log(0.3), math.log(1 / 0.3))))
        box_h = min(height, max(1, round(math.sqrt(area * aspect))))
        box_w = min(width, max(1, round(math.sqrt(area / aspect))))
        top = int(torch.randint(0, height - box_h + 1, ()))
        left = int(torch.randint(0, width - box_w + 1, ()))
        box_mask[index, top : top + box_h, left : left + box_w] = True
    box = box_mask.unsqueeze(1).to(images.device)  # (batch, 1, H, W)
    mixed = torch.where(box, images[pairing], images)  # (batch, 3, H, W)
    return mixed, box_mask.to(images.device), pairing.to(images.device)


# ---------------------------------------------------------------------------------------------------------------------
# Pseudo-label format: parquet parts `data/<rank>-<part>.parquet` with the columns of PSEUDO_LABEL_COLUMNS.
# The disparity is a 16-bit PNG normalised per image to [0, 65535] with its min/max stored (error <= range / 65535).
# ---------------------------------------------------------------------------------------------------------------------


def encode_disparity(disparity: np.ndarray) -> tuple[bytes, float, float]:
    """(H, W) float disparity -> (16-bit PNG bytes, min, max)."""
    disparity = np.asarray(disparity, dtype=np.float32)
    low, high = float(disparity.min()), float(disparity.max())
    scaled = np.round((disparity - low) / max(high - low, 1e-12) * 65535.0).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(scaled).save(buffer, format="PNG")
    return buffer.getvalue(), low, high


def decode_disparity(row: dict, name: str = "") -> np.ndarray:
    """A pseudo-label row -> (H, W) float32 disparity."""
    try:
        with Image.open(io.BytesIO(row["disparity_png"])) as image:
            scaled = np.asarray(image, dtype=np.float32)
    except Exception as error:
        raise BadSampleError("unreadable_label", f"{name}: unreadable pseudo-label ({error})") from error
    low, high = float(row["disparity_min"]), float(row["disparity_max"])
    return (scaled / 65535.0 * (high - low) + low).astype(np.float32)


def pseudo_label_files(folder: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(folder, "data", "*.parquet")))
    if not files:
        raise FileNotFoundError(f"{folder}: no pseudo-label parquet files under data/ (run train/pseudo_label.py)")
    return files


def _pseudo_rows(files: list[str]) -> Iterator[dict]:
    import pyarrow.parquet as pq

    for path in files:
        table = pq.read_table(path)
        yield from table.to_pylist()


def written_ids(folder: str) -> set[str]:
    """Ids already present in finished parquet parts of `folder` (parts are written atomically)."""
    import pyarrow.parquet as pq

    ids: set[str] = set()
    for path in sorted(glob.glob(os.path.join(folder, "data", "*.parquet"))):
        ids.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    return ids


class PseudoLabelWriter:
    """Buffers rows and writes them as parquet parts `data/<prefix>-<n>.parquet`, atomically (tmp + rename)."""

    def __init__(self, folder: str, prefix: str, shard_size: int) -> None:
        self.folder, self.prefix, self.shard_size = folder, prefix, shard_size
        os.makedirs(os.path.join(folder, "data"), exist_ok=True)
        existing = glob.glob(os.path.join(folder, "data", f"{prefix}-*.parquet"))
        self.part = 1 + max((int(p.rsplit("-", 1)[1].split(".")[0]) for p in existing), default=-1)
        self.rows: list[dict] = []
        self.written = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = os.path.join(self.folder, "data", f"{self.prefix}-{self.part:05d}.parquet")
        table = pa.Table.from_pylist(self.rows)
        pq.write_table(table, path + ".tmp")
        os.replace(path + ".tmp", path)
        self.written += len(self.rows)
        self.part += 1
        self.rows = []


def write_dataset_card(folder: str, teacher: str, count: int) -> None:
    """README.md with `configs` metadata so `datasets.load_dataset(folder_or_repo)` finds the parquet parts."""
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as handle:
        handle.write(f"""---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/*.parquet
tags:
- depth-estimation
- pseudo-labels
---

# Pseudo-labels from {teacher}

{count} images labelled by the Depth Anything teacher `{teacher}` (train/pseudo_label.py, depth-anything-hf).
Columns: `id`, `image` (encoded bytes of the original file), `disparity_png` (16-bit PNG of the teacher's relative
disparity at the image's size, normalised to [0, 65535]), `disparity_min` / `disparity_max` (to undo the
normalisation: `d = png / 65535 * (max - min) + min`), `height`, `width`, `teacher`.
""")
    with open(os.path.join(folder, "dataset_info.json"), "w", encoding="utf-8") as handle:
        json.dump({"teacher": teacher, "num_rows": count, "columns": list(PSEUDO_LABEL_COLUMNS)}, handle, indent=1)
