"""The data engine: sources -> decoded samples -> transformed, mixed batches, plus synthetic scenes, strong
perturbations, CutMix and the pseudo-label format. Needs the `train` extra (`datasets`, `kornia`, `pyarrow`).

Modules: `streams` (sources as `datasets` streams, decoding with skip-and-count, transforms, batch mixing),
`synthetic` (procedural scenes with exact depth), `augment` (strong perturbations, CutMix), `pseudo_labels`
(the parquet format of pseudo-label sets: writer, reader, dataset card), `stage` (what the training stages open).
"""

from .augment import CutMixResult, StrongPerturbation, cutmix, mix_targets
from .pseudo_labels import PseudoLabelWriter, load_pseudo_labels
from .streams import (
    BadSampleError,
    DepthTransform,
    MixedBatchStream,
    NoValidSampleError,
    SampleStats,
    collate,
    decode_depth,
    decode_image,
    iter_valid,
    load_labelled,
    load_rgbd_folder,
    load_unlabelled,
    shard_for_process,
)
from .synthetic import SyntheticConfig, render_sample, synthetic_stream

__all__ = [
    "BadSampleError",
    "CutMixResult",
    "DepthTransform",
    "MixedBatchStream",
    "NoValidSampleError",
    "PseudoLabelWriter",
    "SampleStats",
    "StrongPerturbation",
    "SyntheticConfig",
    "collate",
    "cutmix",
    "decode_depth",
    "decode_image",
    "iter_valid",
    "load_labelled",
    "load_pseudo_labels",
    "load_rgbd_folder",
    "load_unlabelled",
    "mix_targets",
    "render_sample",
    "shard_for_process",
    "synthetic_stream",
]
