"""eval/speed.py runs end to end (tiny model, tiny input, one repeat) and reports every variant."""

import json

from modeling_depth_anything.evaluation import speed


def test_speed_smoke(tmp_path, capsys):
    output = tmp_path / "speed.json"
    code = speed.main(["--preset", "tiny", "--sizes", "28x42", "--batch-sizes", "2", "--repeats", "1", "--ablation",
                       "--threads", "1", "--clock", "cpu", "--matmul-size", "256", "--json", str(output)])
    assert code == 0
    results = json.loads(output.read_text())
    variants = {result["variant"] for result in results}
    assert {"transformers built-in (fp32)", "ours default (fp32)", "ours fast", "onnxruntime (fp32)"} <= variants
    by_name = {result["variant"]: result for result in results}
    assert by_name["ours default (fp32)"]["max_error"] == 0.0
    assert by_name["onnxruntime (fp32)"]["max_error"] < 1e-4
    assert by_name["ours fast"]["matmul_fraction"] > 0
    assert "of the bf16 matmul peak" in capsys.readouterr().out
