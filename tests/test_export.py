"""ONNX export: onnxruntime agrees with PyTorch (tiny model, small input), dynamic batch, errors."""

import numpy as np
import pytest
import torch

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.cli import main
from modeling_depth_anything.export import export_onnx

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny")).eval()


def test_onnx_matches_pytorch(tiny_model, tmp_path):
    path = tmp_path / "tiny.onnx"
    report = export_onnx(tiny_model, path, height=42, width=56, check=True)
    assert report["check_passed"] and report["relative_error"] < 1e-4
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pixel_values = torch.randn(3, 3, 42, 56)  # batch 3: the batch axis is dynamic
    (actual,) = session.run(["predicted_depth"], {"pixel_values": pixel_values.numpy()})
    with torch.inference_mode():
        expected = tiny_model(pixel_values).predicted_depth.numpy()
    assert actual.shape == (3, 42, 56)
    value_range = expected.max() - expected.min()
    assert np.abs(actual - expected).max() <= 1e-4 * value_range
    assert next(tiny_model.parameters()).dtype == torch.float32  # the caller's model is left as it was


def test_export_rejects_bad_sizes(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="multiples of 14, got 40x56"):
        export_onnx(tiny_model, tmp_path / "x.onnx", height=40, width=56)
    with pytest.raises(ValueError, match="must end in .onnx"):
        export_onnx(tiny_model, tmp_path / "x.bin", height=28, width=28)


def test_export_cli(tiny_model, tmp_path, caplog):
    folder = tmp_path / "model"
    tiny_model.save_pretrained(folder)
    DepthAnythingImageProcessor(size=56).save_pretrained(folder)
    output = tmp_path / "onnx" / "tiny.onnx"
    code = main(["export", "--model", str(folder), "--output", str(output), "--height", "28", "--width", "42"])
    assert code == 0 and output.stat().st_size > 0
    assert main(["export", "--model", str(tmp_path / "missing"), "--output", str(output)]) == 2
    assert "missing: model folder not found" in caplog.text
