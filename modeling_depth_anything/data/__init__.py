"""The data engine: sources -> decoding (skip-and-count) -> mixing by named parts -> nested batches; plus synthetic
scenes, strong perturbations, CutMix and the pseudo-label format. Needs the `train` extra (`datasets`, `kornia`,
`pyarrow`), imported lazily: `decode` and `rgbd` work without it (the evaluation reads RGB-D folders through them).

Modules, in the order a sample goes through them:

- `sources`: where samples come from (`Source` = raw `datasets` rows + a `Decoder`); `open_source(spec, role,
  data_args)`, the one opener of every stage; `load_labelled` / `load_unlabelled` / `load_rgbd_folder` /
  `load_pseudo_labels` for decoded streams; `shard_for_process`.
- `rgbd`: the one reader of the ``<sample>/image.png + depth.png (uint16 mm)`` layout (training and evaluation).
- `decode`: `BadSampleError`, `SampleStats`, `decode_image` (the CLI's conversions), `decode_depth`, `Decoder`.
- `transforms`: `DepthTransform` (crop, flip, disparity in [0, 1]), `collate`, nested-batch helpers.
- `mixing`: `MixedBatchStream`, named parts at a ratio, shuffled, decoded in DataLoader workers, exactly resumable;
  `stage_stream` builds a stage's stream from its `DataArguments` (`shuffle_buffer`, `num_workers`), and
  `default_num_workers` picks the workers.
- `pseudo_labels`: the parquet format of pseudo-label sets (writer, reader label, dataset card, push).
- `synthetic`: procedural scenes with exact depth; `augment`: strong perturbations and CutMix.
- `metric`: sources with depth in metres and their transform, for metric fine-tuning (`train/metric.py`).
"""

from .augment import CutMixResult, StrongPerturbation, cutmix, mix_targets
from .decode import (
    BadSampleError,
    Decoder,
    DepthLabel,
    NoValidSampleError,
    SampleStats,
    decode_depth,
    decode_image,
)
from .mixing import MixedBatchStream, default_num_workers, stage_stream
from .pseudo_labels import PseudoLabel, PseudoLabelWriter
from .rgbd import list_rgbd_samples, read_rgbd_depth
from .sources import (
    Source,
    iter_valid,
    load_labelled,
    load_pseudo_labels,
    load_rgbd_folder,
    load_unlabelled,
    open_source,
    open_sources,
    shard_for_process,
)
from .synthetic import SyntheticConfig, render_sample, synthetic_stream
from .transforms import DepthTransform, batch_num_images, batch_to_device, collate

__all__ = [
    "BadSampleError",
    "CutMixResult",
    "Decoder",
    "DepthLabel",
    "DepthTransform",
    "MixedBatchStream",
    "NoValidSampleError",
    "PseudoLabel",
    "PseudoLabelWriter",
    "SampleStats",
    "Source",
    "StrongPerturbation",
    "SyntheticConfig",
    "batch_num_images",
    "batch_to_device",
    "collate",
    "cutmix",
    "decode_depth",
    "decode_image",
    "default_num_workers",
    "iter_valid",
    "list_rgbd_samples",
    "load_labelled",
    "load_pseudo_labels",
    "load_rgbd_folder",
    "load_unlabelled",
    "mix_targets",
    "open_source",
    "open_sources",
    "read_rgbd_depth",
    "render_sample",
    "shard_for_process",
    "stage_stream",
    "synthetic_stream",
]
