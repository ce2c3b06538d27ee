"""Inference: load a model with the fast path, batch images by size, write outputs, process videos.

Modules, one concern each: `precision` (device and dtype from the hardware), `attention` (the CPU attention kernel),
`estimator` (loading and the one predictor, `DepthEstimator`), `inputs` (files, folders, globs), `visualize`
(colour maps, 16-bit PNG), `geometry` (camera intrinsics, point clouds), `outputs` (`OutputWriter`), `video`.

What the model predicts. A relative model (every V1/V2 release but the metric ones) predicts *affine-invariant
inverse depth*: `disparity = a / depth + b` for an unknown scale `a > 0` and shift `b` per image. Large values are
near. It is not depth, and not even inverse depth until `a` and `b` are known (from a few metric points, a stereo
pair, or a metric model). A metric model (`config.depth_estimation_type == "metric"`) predicts depth in metres.

Outputs (`OUTPUT_FORMATS`), per image `name`:
- `color`: `name_depth.png`, the map through a matplotlib colormap (Spectral_r by default: red = near).
- `png16`: `name_depth16.png`, 16-bit grey. Relative models: the disparity normalised to 0..65535 over the map's
  robust range (white = near). Metric models: depth in millimetres (65535 = 65.5 m or farther).
- `npy`: `name_depth.npy`, float32 (height, width), the raw prediction at the input's size (disparity, or metres).
- `side_by_side`: `name_side_by_side.png`, the input and the colourised map next to each other.
- `ply`: `name.ply`, a coloured point cloud in the camera frame (x right, y down, z forward), see `depth_to_points`
  and `relative_disparity_to_depth` for how a relative disparity becomes a (scaled) depth.

Fast path (`resolve_precision`, the one precision policy): bf16 weights on GPUs that support bf16 and on CPUs with
AVX-512-bf16 or AMX, fp16 on GPUs without bf16, fp32 elsewhere; plus channels-last convolutions; on CPU in bf16 a per-(image, head) matmul
attention, else SDPA (DINOv2's default); `torch.compile` on request. Videos share one
normalisation range over a sliding window of frames (`VideoRangeTracker`) so the colours do not flicker.
"""

from .attention import MATMUL_ATTENTION, matmul_attention, set_attention
from .estimator import DepthEstimator, DepthPrediction, as_rgb_float, load_model_and_processor, prepare_model
from .geometry import (
    DEFAULT_FIELD_OF_VIEW,
    depth_to_points,
    focal_length_from_exif,
    focal_length_from_fov,
    read_ply,
    relative_disparity_to_depth,
    write_ply,
)
from .inputs import (
    DEFAULT_MAX_IMAGE_PIXELS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    InputItem,
    collect_inputs,
    image_iterator,
)
from .outputs import OUTPUT_FORMATS, OutputWriter, prepare_output_folder
from .precision import PRECISIONS, cpu_supports_bf16, resolve_device, resolve_precision
from .video import VideoRangeTracker, VideoWriter, predict_video, read_video
from .visualize import colorize, depth_to_png16, display_map, normalize, robust_range, side_by_side, to_uint8

__all__ = [
    "DEFAULT_FIELD_OF_VIEW",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "IMAGE_EXTENSIONS",
    "MATMUL_ATTENTION",
    "OUTPUT_FORMATS",
    "PRECISIONS",
    "VIDEO_EXTENSIONS",
    "DepthEstimator",
    "DepthPrediction",
    "InputItem",
    "OutputWriter",
    "VideoRangeTracker",
    "VideoWriter",
    "as_rgb_float",
    "collect_inputs",
    "colorize",
    "cpu_supports_bf16",
    "depth_to_png16",
    "depth_to_points",
    "display_map",
    "focal_length_from_exif",
    "focal_length_from_fov",
    "image_iterator",
    "load_model_and_processor",
    "matmul_attention",
    "normalize",
    "predict_video",
    "prepare_model",
    "prepare_output_folder",
    "read_ply",
    "read_video",
    "relative_disparity_to_depth",
    "resolve_device",
    "resolve_precision",
    "robust_range",
    "set_attention",
    "side_by_side",
    "to_uint8",
    "write_ply",
]
