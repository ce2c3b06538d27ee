"""`LabellingPipeline`: the same labels whether images are preprocessed ahead (in the prefetch thread, as on an
accelerator) or between batches (as on a CPU), and `DepthEstimator.predict_arrays` with prepared inputs."""

import numpy as np
import pytest
import torch

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.inference import DepthEstimator
from modeling_depth_anything.training.pseudo_labelling import LabellingPipeline


class _Rows:
    """Stands in for `PseudoLabelWriter` (and the progress bar): keeps what is written."""

    def __init__(self):
        self.rows = {}

    def add(self, sample_id, encoded, depth):
        self.rows[sample_id] = depth

    def flush(self):
        pass

    def update(self, count):
        pass


@pytest.fixture(scope="module")
def estimator():
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny")).eval()
    return DepthEstimator.from_model(model, DepthAnythingImageProcessor(size=56), batch_size=3)


def _samples(count=7):
    rng = np.random.default_rng(0)
    shapes = [(60, 80), (80, 60), (70, 70)]  # three resized sizes, so batches mix and get regrouped
    return [(f"image-{i}", b"", rng.random((*shapes[i % 3], 3), dtype=np.float32)) for i in range(count)]


def _label(estimator, ahead):
    rows = _Rows()
    pipeline = LabellingPipeline(estimator, rows, batch_size=3, progress=rows, world=1, preprocess_ahead=ahead)
    pipeline.run(iter(_samples()))
    pipeline.close()
    return rows.rows


def test_labels_are_the_same_preprocessed_ahead_or_not(estimator):
    between, ahead = _label(estimator, False), _label(estimator, True)
    assert sorted(between) == sorted(ahead) == [f"image-{i}" for i in range(7)]
    for sample_id, depth in between.items():
        assert depth.shape == ahead[sample_id].shape
        np.testing.assert_array_equal(depth, ahead[sample_id], err_msg=sample_id)


def test_the_device_decides_by_default(estimator):
    rows = _Rows()
    assert not LabellingPipeline(estimator, rows, 3, rows, 1).preprocess_ahead  # CPU: the model uses the cores


def test_predict_arrays_takes_prepared_inputs(estimator):
    images = [image for _, _, image in _samples(4)]
    prepared = [estimator.preprocess(image) for image in images]
    assert prepared[0].shape == (1, 3, 56, 70)  # (1, 3, height, width): 60x80 resized to a 56-pixel short side
    prepared[1] = None  # processed in predict_arrays instead
    plain, ready = estimator.predict_arrays(images), estimator.predict_arrays(images, prepared=prepared)
    for one, other in zip(plain, ready, strict=True):
        np.testing.assert_array_equal(one.depth, other.depth)
    altered = [torch.zeros_like(pixels) for pixels in prepared[:1]] + prepared[1:]  # the prepared input is what runs
    assert not np.array_equal(estimator.predict_arrays(images, prepared=altered)[0].depth, plain[0].depth)
    assert estimator.preprocess(np.zeros((5, 5, 3), np.float32)) is None  # too small: predict_arrays names it
