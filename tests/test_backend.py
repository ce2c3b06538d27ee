"""DepthEstimator backends (torch, compile, onnxruntime): same predictions as the eager torch path, clear errors, the
ONNX file cache. Tiny random model; no timing."""

import os
import sys

import numpy as np
import pytest
import torch

from modeling_depth_anything import DepthAnythingForDepthEstimation
from modeling_depth_anything.inference import DepthEstimator
from modeling_depth_anything.inference import estimator as estimator_module
from modeling_depth_anything.inference.backends import BACKENDS, OnnxRuntimeEngine, model_cache_key

# Two sizes of image: two input sizes after resizing (56x84 and 84x56), so two ONNX sessions / compiled graphs.
IMAGES = [np.random.default_rng(seed).random(shape, dtype=np.float32) for seed, shape in ((0, (40, 60, 3)), (1, (60, 40, 3)), (2, (40, 60, 3)))]  # fmt: skip


@pytest.fixture(scope="module")
def reference(model_dir):
    """Eager torch, float32: the predictions every backend is compared with."""
    estimator = DepthEstimator.from_pretrained(model_dir, device="cpu", precision="float32", batch_size=2)
    return [result.depth for result in estimator.predict_arrays(IMAGES)]


def _max_error_of_range(results, reference) -> float:
    """Largest |difference| over the images, as a fraction of each reference map's range."""
    return max(
        float(np.abs(result.depth - expected).max() / (expected.max() - expected.min()))
        for result, expected in zip(results, reference, strict=True)
    )


def test_bad_backend_is_a_value_error_quoting_it(model_dir):
    with pytest.raises(ValueError, match="'tensorrt'"):
        DepthEstimator.from_pretrained(model_dir, device="cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="'ort'"):
        DepthEstimator(torch.nn.Identity(), None, backend="ort")
    with pytest.raises(ValueError, match="compile=True.*'onnxruntime'"):
        DepthEstimator.from_pretrained(model_dir, device="cpu", compile=True, backend="onnxruntime")


def test_onnxruntime_refuses_other_precisions_and_devices(model_dir):
    with pytest.raises(ValueError, match="float32, got precision 'bfloat16'"):
        DepthEstimator.from_pretrained(model_dir, device="cpu", precision="bfloat16", backend="onnxruntime")
    with pytest.raises(ValueError, match="CPU, got device 'cuda'"):
        DepthEstimator.from_pretrained(model_dir, device="cuda", backend="onnxruntime")


def test_onnxruntime_missing_is_a_clear_error(model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'depth-anything-hf\[export\]'"):
        DepthEstimator.from_pretrained(model_dir, device="cpu", backend="onnxruntime", onnx_cache=None)


def test_onnxruntime_matches_torch_and_caches_files(model_dir, reference, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    estimator = DepthEstimator.from_pretrained(
        model_dir, device="cpu", backend="onnxruntime", onnx_cache=tmp_path, batch_size=2
    )
    assert estimator.backend == "onnxruntime" and estimator.dtype == torch.float32
    results = estimator.predict_arrays(IMAGES)
    # float32 in both engines; ONNX Runtime fuses and reorders the arithmetic.
    assert _max_error_of_range(results, reference) < 1e-4
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith(model_dir.name) and not list(model_dir.glob("*.onnx"))  # never beside the model
    assert sorted(path.name for path in folder.glob("*.onnx")) == ["56x84.onnx", "84x56.onnx"]
    assert sorted(estimator.runner.sessions) == [(56, 84), (84, 56)]

    def no_export(*args, **kwargs):
        raise AssertionError("the cached file should have been used")

    monkeypatch.setattr("modeling_depth_anything.export.export_onnx", no_export)
    again = DepthEstimator.from_pretrained(model_dir, device="cpu", backend="onnxruntime", onnx_cache=tmp_path)
    np.testing.assert_array_equal(again.predict_arrays(IMAGES[:1])[0].depth, results[0].depth)


def test_onnxruntime_damaged_cache_file_is_exported_again(model_dir, reference, tmp_path):
    pytest.importorskip("onnxruntime")
    model = DepthAnythingForDepthEstimation.from_pretrained(model_dir)
    folder = tmp_path / model_cache_key(model_dir, model)
    folder.mkdir()
    (folder / "56x84.onnx").write_bytes(b"not an onnx file")
    estimator = DepthEstimator.from_pretrained(model_dir, device="cpu", backend="onnxruntime", onnx_cache=tmp_path)
    assert _max_error_of_range(estimator.predict_arrays(IMAGES[:1]), reference[:1]) < 1e-4
    assert (folder / "56x84.onnx").stat().st_size > 1000
    assert not list(folder.glob(".*partial*"))


def test_onnxruntime_without_a_cache_keeps_no_file(model_dir, reference, monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(estimator_module, "default_onnx_cache", lambda: tmp_path / "should_not_exist")
    estimator = DepthEstimator.from_pretrained(model_dir, device="cpu", backend="onnxruntime", onnx_cache=None)
    assert _max_error_of_range(estimator.predict_arrays(IMAGES[:1]), reference[:1]) < 1e-4
    assert estimator.runner.cache_folder is None and not (tmp_path / "should_not_exist").exists()


def test_onnxruntime_engine_refuses_other_models():
    pytest.importorskip("onnxruntime")
    with pytest.raises(ValueError, match="Depth Anything models only, got Linear"):
        OnnxRuntimeEngine(torch.nn.Linear(2, 2))


def test_cache_key_follows_the_weights(model_dir, tmp_path):
    model = DepthAnythingForDepthEstimation.from_pretrained(model_dir)
    before = model_cache_key(model_dir, model)
    assert before == model_cache_key(model_dir, model)
    weights = next(model_dir.glob("*.safetensors"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        assert model_cache_key(model_dir, model) != before
    finally:
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert model_cache_key("owner/name", model) != before


@pytest.mark.slow  # about 80 s each on one core: inductor compiles two input sizes
@pytest.mark.parametrize("precision,tolerance", [("float32", 1e-4), ("bfloat16", 0.02)])
def test_compile_matches_torch(model_dir, precision, tolerance):
    """float32: the same arithmetic up to fusion. bfloat16 (the matmul attention's compiled form, frozen bf16
    weights) against eager bf16: within the issue's 2 % of the range."""
    torch._dynamo.reset()
    eager = DepthEstimator.from_pretrained(model_dir, device="cpu", precision=precision, batch_size=2)
    compiled = DepthEstimator.from_pretrained(
        model_dir, device="cpu", precision=precision, backend="compile", batch_size=2
    )
    assert compiled.backend == "compile" and hasattr(compiled.model, "_orig_mod")
    expected = [result.depth for result in eager.predict_arrays(IMAGES)]
    assert _max_error_of_range(compiled.predict_arrays(IMAGES), expected) < tolerance
    if torch.backends.mkldnn.is_available():  # freezing prepacks the linear weights: no aten::addmm is left
        from torch.profiler import profile

        with profile() as profiler:
            compiled.forward(torch.randn(2, 3, 56, 84))  # a shape compiled above
        ops = {event.key for event in profiler.key_averages()}
        assert "aten::addmm" not in ops and any("linear" in op for op in ops), sorted(ops)
    old_spelling = DepthEstimator.from_pretrained(model_dir, device="cpu", precision=precision, compile=True)
    assert old_spelling.backend == "compile"


def test_backends_listed():
    assert BACKENDS == ("torch", "compile", "onnxruntime")


def test_cli_predict_with_the_onnxruntime_backend(model_dir, reference, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from PIL import Image

    from modeling_depth_anything import cli

    monkeypatch.setattr(estimator_module, "default_onnx_cache", lambda: tmp_path / "cache")
    image = tmp_path / "photo.png"
    Image.fromarray((IMAGES[0] * 255).round().astype(np.uint8)).save(image)
    seen = {}
    original = DepthEstimator.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.update(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(DepthEstimator, "from_pretrained", classmethod(spy))
    output = tmp_path / "out"
    argv = ["predict", str(image), "--model", str(model_dir), "--output", str(output), "--formats", "npy"]
    assert cli.main([*argv, "--backend", "onnxruntime"]) == 0
    assert seen["backend"] == "onnxruntime" and list((tmp_path / "cache").glob("*/56x84.onnx"))
    assert list(output.glob("photo*.npy"))
    assert cli.main([*argv, "--backend", "onnxruntime", "--compile"]) == 2  # contradictory: a usage error
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--backend", "tvm"])
    assert exit_info.value.code == 2


def test_evaluate_takes_a_backend():
    from modeling_depth_anything.evaluation import runner

    args = runner.parse_args(["--model", "m", "--output", "o", "--backend", "onnxruntime"])
    assert args.backend == "onnxruntime"
    assert runner.parse_args(["--model", "m", "--output", "o"]).backend == "torch"
