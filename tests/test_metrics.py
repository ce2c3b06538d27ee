"""evaluation/metrics.py: hand-computed metric values, alignment invariance, masking and caps, protocols, DA-2K, the
`evaluate` module and evaluate_model on a tiny random model."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_depth_anything.evaluation.metrics import (
    METRIC_NAMES,
    InvalidSampleError,
    MetricAccumulator,
    align_prediction,
    align_scale_shift,
    compute_depth_metrics,
    evaluate_model,
    evaluate_predictions,
    evaluate_sample,
    pairwise_accuracy,
)
from modeling_depth_anything.inference import DepthEstimator

ROOT = Path(__file__).resolve().parents[1]


def test_metrics_hand_computed():
    # Pixels (prediction, target): (1, 1), (2, 1), (4, 2), (3, 2) and one masked-out garbage pixel.
    prediction = np.array([[1.0, 2.0, 4.0, 3.0, -5.0]])
    target = np.array([[1.0, 1.0, 2.0, 2.0, 0.0]])
    mask = np.array([[True, True, True, True, False]])
    metrics = compute_depth_metrics(prediction, target, mask)
    log_errors = np.log([1, 2, 2, 1.5])
    expected = {
        "abs_rel": (0 + 1 + 1 + 0.5) / 4,
        "sq_rel": (0 + 1 + 2 + 0.5) / 4,
        "rmse": math.sqrt((0 + 1 + 4 + 1) / 4),
        "rmse_log": math.sqrt(np.mean(log_errors**2)),
        "log10": np.mean(np.log10([1, 2, 2, 1.5])),
        "silog": 100 * math.sqrt(np.mean(log_errors**2) - np.mean(log_errors) ** 2),
        "delta1": 1 / 4,  # ratios 1, 2, 2, 1.5
        "delta2": 2 / 4,  # 1.5 < 1.5625
        "delta3": 2 / 4,  # 2 > 1.953
        "valid_pixels": 4,
    }
    for name, value in expected.items():
        assert float(metrics[name]) == pytest.approx(value, rel=1e-12), name


def test_metrics_batched_match_single_and_reject_nonpositive():
    rng = np.random.default_rng(0)
    prediction, target = rng.uniform(0.5, 3, (3, 4, 5)), rng.uniform(0.5, 3, (3, 4, 5))
    mask = rng.random((3, 4, 5)) > 0.3
    batched = compute_depth_metrics(prediction, target, mask)
    for index in range(3):
        single = compute_depth_metrics(prediction[index], target[index], mask[index])
        for name in METRIC_NAMES:
            assert batched[name][index] == pytest.approx(float(single[name]), rel=1e-12)
    with pytest.raises(InvalidSampleError, match="positive"):
        compute_depth_metrics(-prediction, target, mask)


def test_alignment_recovers_scale_and_shift_and_batches():
    rng = np.random.default_rng(1)
    target = rng.uniform(0.1, 1.0, (2, 6, 7))
    mask = rng.random((2, 6, 7)) > 0.2
    prediction = (target - 0.3) / 2.5  # target = 2.5 * prediction + 0.3
    prediction[~mask] = 1e6  # outside the mask: must not matter
    scale, shift = align_scale_shift(prediction, target, mask)
    np.testing.assert_allclose(scale, [2.5, 2.5], rtol=1e-9)
    np.testing.assert_allclose(shift, [0.3, 0.3], rtol=1e-9)
    aligned = align_prediction(torch.from_numpy(prediction), target, mask)  # torch input accepted
    np.testing.assert_allclose(aligned[mask], target[mask], rtol=1e-9)


def test_alignment_degenerate_constant_prediction_is_finite():
    target = np.array([[1.0, 2.0], [3.0, 4.0]])
    scale, shift = align_scale_shift(np.zeros((2, 2)), target, np.ones((2, 2), bool))
    assert float(scale) == 0.0 and float(shift) == pytest.approx(2.5)
    metrics = evaluate_sample(np.zeros((2, 2)), target)
    assert all(math.isfinite(metrics[name]) for name in METRIC_NAMES)


@pytest.mark.parametrize("protocol", ["disparity", "depth"])
@pytest.mark.parametrize("a,b", [(3.0, 0.5), (0.01, -2.0), (-1.5, 4.0)])
def test_metrics_invariant_to_affine_change_of_prediction(protocol, a, b):
    rng = np.random.default_rng(2)
    gt = rng.uniform(1.0, 8.0, (12, 16))
    prediction = 1.0 / gt + rng.normal(0, 0.02, gt.shape)
    reference = evaluate_sample(prediction, gt, protocol=protocol, max_depth=10.0)
    changed = evaluate_sample(a * prediction + b, gt, protocol=protocol, max_depth=10.0)
    for name in METRIC_NAMES:
        assert changed[name] == pytest.approx(reference[name], rel=1e-8, abs=1e-12), name


def test_perfect_prediction_scores_perfectly_in_both_protocols():
    gt = np.array([[1.0, 2.0, 4.0], [5.0, 0.0, np.nan]])
    for protocol in ("disparity", "depth"):
        with np.errstate(divide="ignore", invalid="ignore"):
            prediction = 7.0 / gt + 3.0  # inf and NaN where the ground truth is invalid
        metrics = evaluate_sample(prediction, gt, protocol=protocol)
        assert metrics["abs_rel"] == pytest.approx(0, abs=1e-12) and metrics["delta1"] == 1.0
        assert metrics["valid_pixels"] == 4


def test_protocols_hand_computed_with_caps():
    # Valid pixels: gt depth 1, 2, 2 (disparity 1, .5, .5); prediction 0, 1, 2. Least squares: s = -1/4, c = 11/12,
    # aligned disparity 11/12, 8/12, 5/12, i.e. aligned depth 12/11, 1.5, 2.4. The fourth pixel (gt 50 m) is beyond
    # the cap and the fifth (gt 0) is invalid: neither may take part.
    prediction = np.array([[0.0, 1.0, 2.0, 100.0, -3.0]])
    gt = np.array([[1.0, 2.0, 2.0, 50.0, 0.0]])
    disparity = evaluate_sample(prediction, gt, protocol="disparity", max_depth=10.0)
    assert disparity["scale"] == pytest.approx(-0.25) and disparity["shift"] == pytest.approx(11 / 12)
    assert disparity["abs_rel"] == pytest.approx((1 / 12 + 1 / 3 + 1 / 6) / 3)
    depth = evaluate_sample(prediction, gt, protocol="depth", max_depth=10.0)
    assert depth["abs_rel"] == pytest.approx((1 / 11 + 1 / 4 + 0.2) / 3)
    assert depth["rmse"] == pytest.approx(math.sqrt(((12 / 11 - 1) ** 2 + 0.5**2 + 0.4**2) / 3))
    # A tighter range: gt 2 stays valid, the aligned 2.4 m is clamped to 2.2 m (1/2.2 in disparity) in both protocols.
    depth = evaluate_sample(prediction, gt, protocol="depth", max_depth=2.2)
    assert depth["abs_rel"] == pytest.approx((1 / 11 + 1 / 4 + 0.1) / 3)
    disparity = evaluate_sample(prediction, gt, protocol="disparity", max_depth=2.2)
    assert disparity["abs_rel"] == pytest.approx((1 / 12 + 1 / 3 + abs(1 / 2.2 - 0.5) / 0.5) / 3)


def test_mask_and_min_depth_exclude_pixels():
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.5, 5.0, (8, 8))
    prediction = 1 / gt + rng.normal(0, 0.05, gt.shape)
    mask = np.zeros((8, 8), bool)
    mask[2:6, 1:7] = True
    reference = evaluate_sample(prediction[2:6, 1:7], gt[2:6, 1:7], protocol="depth")
    garbage = prediction.copy()
    garbage[~mask] = np.nan  # outside the mask the prediction may be anything
    masked = evaluate_sample(garbage, gt, mask, protocol="depth")
    assert masked["valid_pixels"] == 24
    for name in METRIC_NAMES:
        assert masked[name] == pytest.approx(reference[name], rel=1e-10)
    capped = evaluate_sample(prediction, gt, protocol="depth", min_depth=1.0, max_depth=3.0)
    assert capped["valid_pixels"] == int(((gt >= 1.0) & (gt <= 3.0)).sum())


def test_metric_predictions_without_alignment():
    gt = np.array([[1.0, 2.0], [4.0, 8.0]])
    metrics = evaluate_sample(
        gt * 1.1, gt, protocol="depth", max_depth=10.0, prediction_type="depth", alignment="none"
    )
    assert metrics["abs_rel"] == pytest.approx(0.1) and metrics["scale"] == 1.0
    # Without an upper cap the image's largest valid depth is the clamp: 8.8 m becomes 8 m.
    uncapped = evaluate_sample(gt * 1.1, gt, protocol="depth", prediction_type="depth", alignment="none")
    assert uncapped["abs_rel"] == pytest.approx(0.3 / 4)
    aligned = evaluate_sample(gt * 1.1, gt, protocol="depth", prediction_type="depth")
    assert aligned["abs_rel"] == pytest.approx(0, abs=1e-12)


def test_bad_samples_are_skipped_and_counted_never_nan():
    gt = np.full((4, 4), 2.0)
    good = 1 / np.linspace(1, 3, 16).reshape(4, 4)
    result = evaluate_predictions(
        [good, good, np.ones((3, 3))],
        [1 / good, np.zeros((4, 4)), gt],  # second: all invalid; third: size mismatch
        protocol="depth",
        ids=["ok", "empty", "mismatch"],
    )
    assert result["num_evaluated"] == 1 and result["num_skipped"] == 2
    reasons = {s["id"]: s["reason"] for s in result["skipped"]}
    assert "valid" in reasons["empty"] and "(3, 3)" in reasons["mismatch"]
    assert all(math.isfinite(v) for v in result["metrics"].values())
    nothing = evaluate_predictions([good], [np.zeros((4, 4))])
    assert nothing["metrics"] is None and nothing["num_skipped"] == 1
    with pytest.raises(ValueError, match="protocol"):
        MetricAccumulator("midas")
    with pytest.raises(ValueError, match="min_depth"):
        evaluate_sample(good, gt, min_depth=0.0)


def test_pairwise_accuracy_orientation():
    disparity = np.zeros((3, 5))
    disparity[0, 4] = 2.0  # [h=0, w=4]: only valid as (row, column) in a 3x5 map
    disparity[2, 1] = 1.0
    pair = {"point1": [0, 4], "point2": [2, 1], "closer_point": "point1"}
    assert pairwise_accuracy(disparity, [pair]) == (1, 1)  # closer => larger disparity
    assert pairwise_accuracy(disparity, [{**pair, "closer_point": "point2"}]) == (0, 1)
    assert pairwise_accuracy(np.ones((3, 5)), [pair]) == (0, 1)  # ties are wrong
    with pytest.raises(InvalidSampleError, match="outside"):
        pairwise_accuracy(disparity, [{**pair, "point1": [4, 0]}])  # [w, h] order would be out of bounds
    with pytest.raises(InvalidSampleError, match="closer_point"):
        pairwise_accuracy(disparity, [{**pair, "closer_point": "1"}])


def test_evaluate_library_module():
    evaluate = pytest.importorskip("evaluate")
    module = evaluate.load(str(ROOT / "eval" / "depth_metrics"))
    gt = np.array([[1.0, 2.0, 2.0, 50.0, 0.0]])
    prediction = np.array([[0.0, 1.0, 2.0, 100.0, -3.0]])
    result = module.compute(predictions=[prediction], references=[gt], protocol="depth", max_depth=10.0)
    assert result["abs_rel"] == pytest.approx((1 / 11 + 1 / 4 + 0.2) / 3, rel=1e-6)
    assert result["protocol"] == "depth" and result["num_evaluated"] == 1
    with pytest.raises(ValueError, match="no sample"):
        module.compute(predictions=[prediction], references=[np.zeros_like(gt)])


def test_evaluate_model_on_tiny_model():
    from modeling_depth_anything import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        DepthAnythingImageProcessor,
    )

    model = DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny"))
    processor = DepthAnythingImageProcessor(size=28)
    rng = np.random.default_rng(4)
    samples = [
        (rng.integers(0, 255, (h, w, 3), dtype=np.uint8), rng.uniform(1, 5, (h, w)), None, f"s{i}")
        for i, (h, w) in enumerate([(30, 40), (30, 40), (20, 50)])
    ]
    samples.append((samples[0][0], np.zeros((30, 40)), None, "invalid"))
    samples.append((samples[0][0], np.ones((15, 20)), None, "mismatch"))
    estimator = DepthEstimator.from_model(model, processor, batch_size=2)
    result = evaluate_model(estimator, samples, protocol="depth", progress=False, keep_examples=1)
    assert result["num_evaluated"] == 3 and result["num_skipped"] == 2
    assert {s["id"]: "does not match" in s["reason"] for s in result["skipped"]} == {
        "invalid": False,
        "mismatch": True,
    }
    assert set(result["metrics"]) == set(METRIC_NAMES) and all(math.isfinite(v) for v in result["metrics"].values())
    assert result["prediction_type"] == "disparity" and len(result["examples"]) == 1


class IntensityModel(torch.nn.Module):
    """Stub 'model' whose disparity is the input's first channel: exact up to an affine map and resampling."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"depth_estimation_type": "relative"})()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, pixel_values):
        # + 5: normalised values can be negative, and post-processing clamps predictions at 0.
        return type("Output", (), {"predicted_depth": pixel_values[:, 0] + 5 + 0 * self.anchor})()  # (B, H, W)


def disparity_coded_sample(height=42, width=70):
    """Depth varying along both axes; the image's grey level is proportional to disparity."""
    rows, cols = np.mgrid[0:height, 0:width]
    depth = 1.0 + 3.0 * rows / height + 1.5 * cols / width  # (H, W) metres
    disparity = 1.0 / depth
    grey = np.round(255 * (disparity - disparity.min()) / (disparity.max() - disparity.min())).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2), depth  # (H, W, 3), (H, W)


def test_evaluate_model_end_to_end_orientation_with_exact_model():
    from modeling_depth_anything import DepthAnythingImageProcessor

    image, depth = disparity_coded_sample()
    processor = DepthAnythingImageProcessor(size=42)
    for protocol in ("disparity", "depth"):
        estimator = DepthEstimator.from_model(IntensityModel(), processor)
        result = evaluate_model(estimator, [(image, depth, None, "x")], protocol, progress=False)
        assert result["num_evaluated"] == 1
        assert result["metrics"]["abs_rel"] < 0.01 and result["metrics"]["delta1"] == 1.0, result["metrics"]
    # The same prediction transposed (a swapped H/W somewhere) or flipped scores far worse.
    transposed = evaluate_predictions([np.flipud(image[..., 0]).astype(float)], [depth], protocol="disparity")
    assert transposed["metrics"]["abs_rel"] > 0.1


def test_da2k_end_to_end_orientation_with_exact_model(tmp_path):
    import argparse
    import json

    from PIL import Image

    from modeling_depth_anything import DepthAnythingImageProcessor
    from modeling_depth_anything.evaluation import runner as cli
    from modeling_depth_anything.evaluation.benchmarks import load_benchmark

    image, depth = disparity_coded_sample()
    (tmp_path / "indoor").mkdir()
    Image.fromarray(image).save(tmp_path / "indoor" / "a.png")
    near, far = [0, 0], [41, 69]  # [h, w]: top-left is nearest, bottom-right farthest
    pairs = [
        {"point1": near, "point2": far, "closer_point": "point1"},
        {"point1": far, "point2": near, "closer_point": "point2"},
        {"point1": [5, 60], "point2": [30, 10], "closer_point": "point2"},  # depth 2.64 m vs 2.93 m: wrong on purpose
    ]
    assert depth[5, 60] < depth[30, 10]
    (tmp_path / "annotations.json").write_text(json.dumps({"indoor/a.png": pairs}))
    args = argparse.Namespace(batch_size=2, grid_samples=1, no_progress=True)
    result = cli.run_da2k(
        DepthEstimator.from_model(IntensityModel(), DepthAnythingImageProcessor(size=42), batch_size=2),
        load_benchmark(f"da2k:{tmp_path}"),
        args,
        tmp_path / "g.png",
    )
    assert result["num_pairs"] == 3 and result["accuracy"] == pytest.approx(2 / 3)
    assert result["per_scene"] == {"indoor": {"accuracy": pytest.approx(2 / 3), "pairs": 3}}
    assert (tmp_path / "g.png").is_file()
