"""depth-anything-hf: Depth Anything V1/V2 as transformers classes.

Public API only. Nothing is registered with the Auto classes globally (that would shadow transformers' built-in
`depth_anything`); instead each class registers for its Auto class, so saved folders carry an `auto_map` and the code.
"""

from .configuration_depth_anything import PRESETS, DepthAnythingConfig
from .image_processing_depth_anything import DepthAnythingImageProcessor
from .modeling_depth_anything import DepthAnythingForDepthEstimation

DepthAnythingConfig.register_for_auto_class()
DepthAnythingForDepthEstimation.register_for_auto_class("AutoModelForDepthEstimation")
DepthAnythingImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["DepthAnythingConfig", "DepthAnythingForDepthEstimation", "DepthAnythingImageProcessor", "PRESETS"]
__version__ = "0.1.0"
