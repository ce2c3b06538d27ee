"""The training loop in process, on a tiny model and a synthetic in-memory stream: checkpoints store the weights once
and restore scheduler and stream state through Accelerate, resume gives the same loss curve, steps with non-finite
gradients are skipped and counted, and a run of them stops the run with the last good checkpoint."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modeling_depth_anything import DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.losses import depth_loss
from modeling_depth_anything.training import NonFiniteGradientError, TrainingRun, build_model, setup_accelerator
from modeling_depth_anything.training.args import DataArguments, ModelArguments, TrainArguments


class CountingStream:
    """Batches that depend only on their position: resuming from `state_dict()` replays exactly."""

    def __init__(self, seed: int = 0) -> None:
        self.seed, self.position = seed, 0

    def next_batch(self) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.position)
        self.position += 1
        pixel_values = torch.randn(2, 3, 28, 28, generator=generator)  # (batch, 3, S, S)
        disparity = torch.rand(2, 28, 28, generator=generator) + 0.1  # (batch, S, S)
        valid_mask = torch.ones_like(disparity, dtype=torch.bool)
        return {"labelled": {"pixel_values": pixel_values, "disparity": disparity, "valid_mask": valid_mask}}

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]

    def bad_counts(self) -> dict[str, int]:
        return {}


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


def compute_loss(model, batch):
    labelled = batch["labelled"]
    prediction = model(pixel_values=labelled["pixel_values"]).predicted_depth  # (batch, S, S)
    return depth_loss(prediction, labelled["disparity"], labelled["valid_mask"]), {}


def train(output: Path, **overrides) -> TrainingRun:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    values = {
        "output_dir": str(output),
        "max_steps": 4,
        "checkpointing_steps": 2,
        "logging_steps": 1,
        "report_to": "none",
        "mixed_precision": "no",
        "encoder_lr": 1e-3,
        "lr_schedule": "poly",
        "warmup_steps": 1,
        **overrides,
    }
    args = TrainArguments(**values)
    accelerator = setup_accelerator(args.output_dir, args.mixed_precision, seed=args.seed)
    stream = CountingStream()
    model = build_model(ModelArguments(preset="tiny", channels_last=False))
    run = TrainingRun(
        accelerator, model, args, [ModelArguments(), DataArguments(), args], {"labelled": stream}, "teacher"
    )
    try:
        run.train(stream.next_batch, compute_loss)
        run.save_final(DepthAnythingImageProcessor(size=28))
    finally:
        accelerator.end_training()
    return run


def losses(folder: Path) -> dict[int, dict]:
    return {entry["step"]: entry for entry in map(json.loads, (folder / "losses.jsonl").read_text().splitlines())}


def test_checkpoints_store_weights_once_and_resume_exactly(tmp_path):
    train(tmp_path / "straight")
    train(tmp_path / "resumed", max_steps=2)
    train(tmp_path / "resumed", resume_from_checkpoint="latest")
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert sorted(resumed) == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):
        assert resumed[step]["train/loss"] == pytest.approx(straight[step]["train/loss"], rel=1e-6), step
    for step in (3, 4):  # the scheduler's position came back (step 2's logged lr belongs to a 2-step schedule)
        assert resumed[step]["train/lr_encoder"] == pytest.approx(straight[step]["train/lr_encoder"]), step

    checkpoint = tmp_path / "straight" / "checkpoint-4"
    names = {p.name for p in checkpoint.iterdir()}
    assert list(checkpoint.rglob("*.safetensors")) == [checkpoint / "model" / "model.safetensors"]  # weights once
    assert not (checkpoint / "pytorch_model.bin").exists()
    assert {"custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl", "COMPLETE", "trainer_state.json"} <= names
    assert not any(name.startswith("stream_state") for name in names)  # stream state goes through Accelerate
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and "scheduler" not in state
    loaded = DepthAnythingForDepthEstimation.from_pretrained(checkpoint / "model")
    final = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    for name, tensor in loaded.state_dict().items():
        if name in final:
            torch.testing.assert_close(tensor, final[name], msg=name)


# a skipped first step still steps the schedule (a function of the step) without torch's order warning
@pytest.mark.filterwarnings("error:Detected call of `lr_scheduler.step:UserWarning")
def test_steps_with_nonfinite_gradients_are_not_applied_and_are_counted(tmp_path):
    torch.manual_seed(0)
    initial = {
        k: v.clone() for k, v in build_model(ModelArguments(preset="tiny", channels_last=False)).state_dict().items()
    }
    run = train(tmp_path / "all_skipped", debug_nonfinite_grad_steps=[1, 2, 3, 4], max_skipped_steps=10)
    assert run.skipped_steps == 4
    after = run.accelerator.unwrap_model(run.model).state_dict()
    for name, tensor in initial.items():
        torch.testing.assert_close(after[name], tensor, msg=name)  # nothing applied (not even weight decay)

    run = train(tmp_path / "one_skipped", debug_nonfinite_grad_steps=[3])
    logged = losses(tmp_path / "one_skipped")
    assert [logged[step]["train/skipped_steps"] for step in (1, 2, 3, 4)] == [0, 0, 1, 1]
    assert (
        json.loads((tmp_path / "one_skipped" / "checkpoint-4" / "trainer_state.json").read_text())["skipped_steps"]
        == 1
    )
    assert (tmp_path / "one_skipped" / "final" / "model.safetensors").is_file()


def test_a_run_of_nonfinite_gradients_stops_with_the_last_good_checkpoint(tmp_path, caplog):
    output = tmp_path / "stopped"
    with pytest.raises(NonFiniteGradientError, match=r"2 steps in a row.*checkpoint-2"):
        train(output, max_steps=6, debug_nonfinite_grad_steps=[3, 4], max_skipped_steps=2)
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-2"]
    assert not (output / "final").exists()
