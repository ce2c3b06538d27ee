"""Image processor: resize policies, input kinds, post-processing, serialisation, bad input."""

import io
import json

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from modeling_depth_anything import DepthAnythingImageProcessor
from modeling_depth_anything.image_processing_depth_anything import resize_output_size


def rgb(width, height, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "height, width, policy, expected",
    [(200, 300, "lower_bound", (518, 784)), (200, 300, "minimal", (350, 518)), (518, 518, "lower_bound", (518, 518)),
     (480, 640, "lower_bound", (518, 686)), (480, 640, "minimal", (518, 686)), (1000, 500, "lower_bound", (1036, 518))],
)
def test_resize_policies(height, width, policy, expected):
    assert resize_output_size(height, width, 518, 14, policy) == expected


def test_output_is_multiple_of_14_keeps_aspect_and_is_normalised():
    processor = DepthAnythingImageProcessor()
    image = rgb(300, 200)
    pixel_values = processor(image, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 518, 784)
    # Normalisation with ImageNet statistics: a mid-grey image maps to (0.5 - mean) / std.
    grey = Image.new("RGB", (28, 28), (128, 128, 128))
    values = DepthAnythingImageProcessor(do_resize=False)(grey)["pixel_values"][0, :, 0, 0]
    expected = (128 / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(values, expected)


def test_minimal_policy_matches_transformers_dpt_exactly():
    ours = DepthAnythingImageProcessor(resize_policy="minimal")
    reference = transformers.DPTImageProcessor(
        size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14, resample=3,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    image = rgb(300, 200)
    torch.testing.assert_close(ours(image)["pixel_values"], reference(image, return_tensors="pt")["pixel_values"],
                               atol=1e-6, rtol=0)


def test_mixed_sizes_pad_and_post_process_crops():
    processor = DepthAnythingImageProcessor(size=56)
    batch = processor([rgb(56, 56), rgb(112, 56)])
    assert batch["pixel_values"].shape == (2, 3, 56, 112)
    assert batch["resized_sizes"].tolist() == [[56, 56], [56, 112]]
    assert batch["pixel_values"][0, :, :, 56:].abs().sum() == 0
    depth = torch.rand(2, 56, 112)
    results = processor.post_process_depth_estimation(depth, target_sizes=[(30, 30), (40, 80)],
                                                      resized_sizes=batch["resized_sizes"])
    assert results[0]["predicted_depth"].shape == (30, 30) and results[1]["predicted_depth"].shape == (40, 80)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest", "bicubic"])
def test_post_process_back_to_input_size_never_negative(interpolation):
    processor = DepthAnythingImageProcessor()
    depth = torch.zeros(1, 28, 28)
    depth[0, 10:18, 10:18] = 5.0  # a sharp step: bicubic overshoots below 0 here
    result = processor.post_process_depth_estimation(depth, target_sizes=[(50, 61)], interpolation=interpolation)
    out = result[0]["predicted_depth"]
    assert out.shape == (50, 61) and (out >= 0).all()
    if interpolation == "nearest":
        assert set(out.unique().tolist()) <= {0.0, 5.0}


def test_image_modes_are_converted_correctly():
    processor = DepthAnythingImageProcessor(do_resize=False, do_normalize=False)
    base = np.random.default_rng(0).integers(0, 256, (28, 42, 3), dtype=np.uint8)
    reference = processor(Image.fromarray(base))["pixel_values"]
    # RGBA: alpha dropped, colour kept.
    rgba = np.concatenate([base, np.full((28, 42, 1), 7, np.uint8)], axis=2)
    torch.testing.assert_close(processor(Image.fromarray(rgba, "RGBA"))["pixel_values"], reference)
    # Grayscale and palette images become 3 equal channels / the palette colours.
    gray = processor(Image.fromarray(base[..., 0], "L"))["pixel_values"]
    assert gray.shape == (1, 3, 28, 42) and torch.equal(gray[0, 0], gray[0, 2])
    palette = Image.fromarray(base).quantize(16)
    expected = processor(palette.convert("RGB"))["pixel_values"]
    torch.testing.assert_close(processor(palette)["pixel_values"], expected)
    # 16-bit grayscale uses its full range (a plain convert("RGB") would saturate at 255).
    sixteen = Image.fromarray(base[..., 0].astype(np.uint16) * 257)
    assert sixteen.mode.startswith("I;16")
    torch.testing.assert_close(processor(sixteen)["pixel_values"][0, 0], reference[0, 0], atol=1e-6, rtol=0)
    # numpy uint16 arrays and CHW tensors work too.
    torch.testing.assert_close(processor(base.astype(np.uint16) * 257)["pixel_values"], reference, atol=1e-6, rtol=0)
    torch.testing.assert_close(processor(torch.from_numpy(base).permute(2, 0, 1))["pixel_values"], reference)


def test_exif_rotation_is_applied(tmp_path):
    image = rgb(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    pixel_values = DepthAnythingImageProcessor(do_resize=False)(str(path))["pixel_values"]
    assert pixel_values.shape == (1, 3, 40, 20)


def test_bad_inputs_give_clear_errors(tmp_path):
    processor = DepthAnythingImageProcessor()
    with pytest.raises(ValueError, match="1x1 pixels"):
        processor(Image.new("RGB", (1, 1)))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.jpg: the file is empty"):
        processor(str(empty))
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.png: not a readable image"):
        processor(str(text))
    truncated = tmp_path / "truncated.png"
    buffer = io.BytesIO()
    rgb(64, 64).save(buffer, format="PNG")
    truncated.write_bytes(buffer.getvalue()[:200])
    with pytest.raises(ValueError, match="truncated.png: not a readable image"):
        processor(str(truncated))
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        processor(str(tmp_path / "missing.jpg"))
    with pytest.raises(ValueError, match=r"shape \(4, 5, 6, 7\)"):
        processor(np.zeros((4, 5, 6, 7), np.uint8))
    with pytest.raises(ValueError, match="resize_policy"):
        DepthAnythingImageProcessor(resize_policy="largest")


def test_save_load_and_plain_transformers_loading(tmp_path):
    processor = DepthAnythingImageProcessor(resize_policy="minimal", post_process_interpolation="nearest")
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"] == "DPTImageProcessor"
    assert saved["auto_map"]["AutoImageProcessor"].endswith("DepthAnythingImageProcessor")
    loaded = DepthAnythingImageProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    plain = transformers.AutoImageProcessor.from_pretrained(tmp_path)
    assert "DPT" in type(plain).__name__
    image = rgb(300, 200)
    torch.testing.assert_close(plain(image, return_tensors="pt")["pixel_values"], loaded(image)["pixel_values"],
                               atol=1e-6, rtol=0)


def test_float_images_outside_unit_range_are_rejected():
    """Issue 12 item 9: a float image holding 0-255 values was taken as [0, 1] intensities without a word."""
    processor = DepthAnythingImageProcessor(do_resize=False)
    base = np.random.default_rng(0).integers(0, 256, (28, 42, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], got \[0, 255\].*uint8"):
        processor(base.astype(np.float32))
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        processor(torch.from_numpy(base).permute(2, 0, 1).double())  # CHW float tensor in 0-255
    normalised = (base / 255.0 - 0.45) / 0.225  # already normalised pixels: negative values
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], got \[-2"):
        processor(normalised.astype(np.float32))
    # In range (and within rounding error of it) they are the same as the uint8 image.
    reference = processor(base)["pixel_values"]
    torch.testing.assert_close(processor((base / 255.0).astype(np.float32))["pixel_values"], reference)
    nudged = (base / 255.0).astype(np.float32)
    nudged[0, 0, 0], nudged[0, 0, 1] = 1.0005, -0.0005
    assert processor(nudged)["pixel_values"].shape == reference.shape


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_tensors_are_accepted(dtype):
    """Issue 12 item 9: a bfloat16 tensor failed inside torch (`.numpy()` has no bfloat16) with a TypeError."""
    processor = DepthAnythingImageProcessor(size=28)
    image = torch.rand(3, 28, 42)
    expected = processor(image.to(dtype).float())["pixel_values"]
    pixel_values = processor(image.to(dtype))["pixel_values"]
    assert pixel_values.dtype == torch.float32
    torch.testing.assert_close(pixel_values, expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        processor((image * 255).to(dtype))


def test_save_writes_an_empty_video_processor_config(tmp_path):
    """transformers' AutoVideoProcessor reads video_preprocessor_config.json before preprocessor_config.json; an empty
    one keeps it from deriving a remote video processor from our auto_map (tests/test_pipeline.py runs the routes)."""
    files = DepthAnythingImageProcessor().save_pretrained(tmp_path)
    assert json.loads((tmp_path / "video_preprocessor_config.json").read_text()) == {}
    assert str(tmp_path / "video_preprocessor_config.json") in files
    # The image processor's own file still carries the auto_map that trust_remote_code=True follows.
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["auto_map"]["AutoImageProcessor"].endswith("DepthAnythingImageProcessor")
