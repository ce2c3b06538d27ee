"""eval/speed.py runs end to end (tiny model, tiny input, one repeat), builds "ours fast" as DepthEstimator does, and
reports each variant's share of the measured matmul peak in its own dtype."""

import json

import torch

from modeling_depth_anything.evaluation import speed
from modeling_depth_anything.inference import resolve_precision


def test_speed_smoke(tmp_path, capsys):
    output = tmp_path / "speed.json"
    code = speed.main(
        [
            "--preset",
            "tiny",
            "--sizes",
            "28x42",
            "--batch-sizes",
            "2",
            "--repeats",
            "1",
            "--ablation",
            "--no-compile",  # the compile backend: tests/test_backend.py (slow)
            "--threads",
            "1",
            "--clock",
            "cpu",
            "--matmul-size",
            "256",
            "--json",
            str(output),
        ]
    )
    assert code == 0
    results = json.loads(output.read_text())
    by_name = {result["variant"]: result for result in results}
    assert {"transformers built-in (fp32)", "ours default (fp32)", "ours fast", "backend onnxruntime (fp32)"} <= set(
        by_name
    )
    assert "ours fast, backend compile" not in by_name
    fast_dtype = resolve_precision("auto", torch.device("cpu"))
    # The fast path as users get it: the precision policy's dtype, never bf16 forced on a CPU without it.
    assert by_name["ours fast"]["dtype"] == str(fast_dtype).removeprefix("torch.")
    assert by_name["ours default (fp32)"]["max_error"] == 0.0
    assert by_name["backend onnxruntime (fp32)"]["max_error"] < 1e-4
    assert by_name["backend onnxruntime (fp32)"]["warmup_s"] > 0  # the export is part of its first call
    assert all(result["matmul_fraction"] > 0 for result in results if result["dtype"] in ("float32", "bfloat16"))
    has_bf16_variants = any("bf16" in name for name in by_name)
    assert has_bf16_variants == (fast_dtype == torch.bfloat16)  # ablation only where bf16 is native
    printed = capsys.readouterr().out
    summary = printed.split("backends (DepthEstimator(backend=...))")[1]
    assert "28x42 batch 2: torch " in summary and "onnxruntime " in summary and "fastest: " in summary
    assert "native dtypes only: fp32" in printed and "of the fp32 peak" in printed
    assert ("bf16 " in printed.split("native dtypes only:")[1].splitlines()[0]) == (fast_dtype == torch.bfloat16)


def test_native_dtypes_follow_the_precision_policy(monkeypatch):
    from modeling_depth_anything.inference import precision

    monkeypatch.setattr(precision, "read_cpu_flags", lambda *args, **kwargs: frozenset({"avx2", "fma"}))
    assert speed.native_dtypes(torch.device("cpu")) == [torch.float32]
    monkeypatch.setattr(precision, "read_cpu_flags", lambda *args, **kwargs: frozenset({"avx2", "avx512_bf16"}))
    assert speed.native_dtypes(torch.device("cpu")) == [torch.float32, torch.bfloat16]


def test_count_flops_includes_attention():
    """The counter has no formula for CPU SDPA: count_flops must still count the attention's matmuls."""
    from torch.utils.flop_counter import FlopCounterMode

    from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation

    model = DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny")).eval()
    pixel_values = torch.randn(1, 3, 28, 42)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(pixel_values)
    config = model.config.backbone_config
    tokens = (28 // 14) * (42 // 14) + 1
    attention = config.num_hidden_layers * 2 * 2 * tokens * tokens * config.hidden_size  # QK^T and AV
    assert speed.count_flops(model, pixel_values) == counter.get_total_flops() + attention
