"""ONNX export of a Depth Anything model, checked against PyTorch with onnxruntime.

The graph takes `pixel_values` (batch, 3, height, width), ImageNet-normalised as the image processor makes them,
and returns `predicted_depth` (batch, height, width). The batch axis is dynamic; height and width are fixed at
export time (the position-embedding interpolation depends on them), so export once per input size you serve.
The export runs in float32; onnxruntime can quantise or convert the file afterwards.
"""

from __future__ import annotations

import copy
import logging
import os
import time
import warnings
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


class _DepthOnly(torch.nn.Module):
    """Wraps the model so the graph has a single tensor output and a fixed position embedding.

    The position-embedding grid is interpolated once, eagerly, for the export size and stored as a buffer: the
    traced interpolation would otherwise see tensor-valued sizes (which `upsample_bicubic2d` rejects) and would
    have to reproduce the authors' `scale_factor` arithmetic inside the graph.
    """

    def __init__(self, model: torch.nn.Module, height: int, width: int) -> None:
        super().__init__()
        self.model = model
        embeddings = model.backbone.embeddings
        num_patches = (height // model.config.patch_size) * (width // model.config.patch_size)
        with torch.no_grad():
            dummy = torch.zeros(1, num_patches + 1, model.config.backbone_config.hidden_size)
            position = embeddings.interpolate_pos_encoding(dummy, height, width)  # (1, 1 + patches, hidden)
        self.register_buffer("position_embeddings", position.detach().clone(), persistent=False)
        embeddings.interpolate_pos_encoding = self._fixed_position_embeddings  # instance attribute, this copy only

    def _fixed_position_embeddings(self, embeddings: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return self.position_embeddings

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).predicted_depth  # (batch, height, width)


def export_onnx(
    model: torch.nn.Module,
    output: str | os.PathLike,
    height: int = 518,
    width: int = 518,
    batch_size: int = 1,
    opset: int = 18,
    check: bool = True,
    tolerance: float = 1e-3,
) -> dict[str, object]:
    """Export `model` to `output` (.onnx) and, with `check`, compare onnxruntime with PyTorch on random input.

    Args:
        model: a `DepthAnythingForDepthEstimation` (any dtype/device; exported as float32 on CPU).
        output: path of the .onnx file (parent folders are created).
        height, width: input size, multiples of the patch size (14).
        batch_size: batch of the example input; the batch axis stays dynamic, and the check also runs batch + 1.
        opset: ONNX opset version.
        check: run the onnxruntime comparison.
        tolerance: largest allowed max |onnx - torch| as a fraction of the PyTorch output's range.
    Returns:
        {"path", "max_abs_error", "relative_error", "check_passed", "export_seconds"} (errors None without check).
    """
    patch = model.config.patch_size
    if height % patch or width % patch or height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive multiples of {patch}, got {height}x{width}")
    output = Path(output)
    if output.suffix != ".onnx":
        raise ValueError(f"{output}: the output file must end in .onnx")
    output.parent.mkdir(parents=True, exist_ok=True)
    module = _DepthOnly(copy.deepcopy(model).float().cpu().eval(), height, width)
    example = torch.randn(batch_size, 3, height, width)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Tracing warns about every Python-level shape check in the model; the shapes are fixed here by design.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        _onnx_export(module, example, output, opset)
    report: dict[str, object] = {"path": str(output), "export_seconds": time.perf_counter() - start,
                                 "max_abs_error": None, "relative_error": None, "check_passed": None}
    logger.info("wrote %s (%.1f MB) in %.1f s", output, output.stat().st_size / 1e6, report["export_seconds"])
    if check:
        report.update(check_onnx(module, output, height, width, batch_size + 1, tolerance))
    return report


def _onnx_export(module: torch.nn.Module, example: torch.Tensor, output: Path, opset: int) -> None:
    torch.onnx.export(
        module,
        (example,),
        str(output),
        input_names=["pixel_values"],
        output_names=["predicted_depth"],
        dynamic_axes={"pixel_values": {0: "batch"}, "predicted_depth": {0: "batch"}},
        opset_version=opset,
        dynamo=False,  # TorchScript tracing: one self-contained file, dynamic batch via dynamic_axes
    )


def check_onnx(
    module: torch.nn.Module, path: str | os.PathLike, height: int, width: int, batch_size: int = 2,
    tolerance: float = 1e-3,
) -> dict[str, object]:
    """Run the .onnx file under onnxruntime (CPU) and PyTorch on the same random batch; compare.

    The error is max |onnx - torch| divided by the PyTorch output's range (max - min), so it means the same for
    random and trained weights.
    """
    import onnx
    import onnxruntime

    onnx.checker.check_model(os.fspath(path))
    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    pixel_values = torch.randn(batch_size, 3, height, width)
    with torch.inference_mode():
        expected = module(pixel_values).numpy()  # (batch, height, width)
    (actual,) = session.run(["predicted_depth"], {"pixel_values": pixel_values.numpy()})
    if actual.shape != expected.shape:
        raise ValueError(f"{path}: onnxruntime output shape {actual.shape} differs from PyTorch's {expected.shape}")
    max_error = float(abs(actual - expected).max())
    value_range = float(expected.max() - expected.min()) or 1.0
    relative = max_error / value_range
    passed = relative <= tolerance
    log = logger.info if passed else logger.error
    log("onnxruntime vs PyTorch on batch %d at %dx%d: max error %.3g (%.3g of the output range; tolerance %.3g)",
        batch_size, height, width, max_error, relative, tolerance)
    return {"max_abs_error": max_error, "relative_error": relative, "check_passed": passed}


__all__ = ["check_onnx", "export_onnx"]
