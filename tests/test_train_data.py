"""The stages' data glue in process: NaN/inf labels are masked, all-invalid and corrupt samples are skipped and counted,
the batch stream resumes from its state, and the losses stay finite on what comes out."""

import io
import json

import datasets
import numpy as np
import torch
from PIL import Image

from modeling_depth_anything.data import MixedBatchStream, open_sources, stage_stream
from modeling_depth_anything.losses import depth_loss
from modeling_depth_anything.training.args import DataArguments


def _png(seed: int, height: int = 40, width: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def _labelled_dataset() -> datasets.Dataset:
    rows = []
    for index in range(6):
        depth = np.random.default_rng(index).uniform(1, 10, (40, 48)).astype(np.float32)
        image = _png(index)
        if index == 1:
            depth[:10] = np.nan  # NaN and inf pixels are invalid pixels
            depth[10:12] = np.inf
        if index == 2:
            depth[:] = np.nan  # nothing valid: skipped
        if index == 3:
            image = b"\x89PNG\r\n\x1a\n broken"  # corrupt: skipped
        rows.append({"id": f"s{index}", "image": {"bytes": image, "path": None}, "depth": depth.tolist()})
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "depth": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
        }
    )
    return datasets.Dataset.from_list(rows, features=features)


def test_bad_labels_are_masked_or_skipped_and_counted():
    data_args = DataArguments(crop_size=28, num_workers=0)
    sources = open_sources([_labelled_dataset()], "labelled", data_args)
    stream = stage_stream({"labelled": sources}, {"labelled": 1}, data_args, 4, seed=0, rank=0, world_size=1)
    batch = stream.next_batch()["labelled"]
    assert set(batch["ids"]) <= {"s0", "s1", "s4", "s5"}
    assert torch.isfinite(batch["disparity"]).all()
    counts = stream.bad_counts()
    assert (
        counts.get("all-invalid depth") == 1 and counts.get("corrupt image", 0) + counts.get("truncated image", 0) == 1
    )
    prediction = torch.rand(4, 28, 28, requires_grad=True)
    loss = depth_loss(prediction, batch["disparity"], batch["valid_mask"], gradient_weight=2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(prediction.grad).all()


def test_batch_stream_state_is_json_and_resumes_the_same_batches():
    data_args = DataArguments(
        labelled=["synthetic"],
        crop_size=28,
        synthetic_height=32,
        synthetic_width=40,
        synthetic_num_shards=2,
        num_workers=0,
    )

    def make() -> MixedBatchStream:
        parts = {"labelled": open_sources(data_args.labelled, "labelled", data_args)}
        return stage_stream(parts, {"labelled": 1}, data_args, 2, seed=0, rank=0, world_size=1)

    stream = make()
    stream.next_batch()
    state = json.loads(json.dumps(stream.state_dict()))  # what the checkpoint stores
    expected = stream.next_batch()["labelled"]
    resumed = make()
    resumed.load_state_dict(state)
    again = resumed.next_batch()["labelled"]
    assert again["ids"] == expected["ids"]
    torch.testing.assert_close(again["pixel_values"], expected["pixel_values"])
    torch.testing.assert_close(again["disparity"], expected["disparity"])
