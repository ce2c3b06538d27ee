"""Training configuration and shared machinery, in process: YAML + CLI parsing, validation, schedule, optimiser groups,
checkpoint discovery, model building, push to a local folder."""

import os
from pathlib import Path

import pytest
import torch
import yaml

from modeling_depth_anything import DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.hub import is_local_target
from modeling_depth_anything.training.args import (
    DataArguments,
    ModelArguments,
    PseudoLabelArguments,
    StudentArguments,
    TeacherArguments,
    TrainArguments,
    parse_args,
    save_resolved_config,
)
from modeling_depth_anything.training.loop import (
    COMPLETE_MARKER,
    build_optimizer,
    build_scheduler,
    list_checkpoints,
    resolve_checkpoint,
    save_pretrained_folder,
)
from modeling_depth_anything.training.models import build_frozen_encoder, build_model

ROOT = Path(__file__).resolve().parents[1]
TEACHER_TYPES = (ModelArguments, DataArguments, TrainArguments, TeacherArguments)


def _write_yaml(path, values) -> str:
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_yaml_then_command_line_override_the_defaults(tmp_path):
    config = _write_yaml(tmp_path / "c.yaml", {"max_steps": 7, "encoder_lr": 1e-4, "labelled": ["synthetic"]})
    model, data, train, teacher = parse_args(*TEACHER_TYPES, argv=["--config", config, "--max_steps", "9"])
    assert train.max_steps == 9  # command line wins over the YAML
    assert train.encoder_lr == 1e-4  # YAML wins over the default
    assert train.decoder_lr_multiplier == 10.0  # default
    assert data.labelled == ["synthetic"]
    assert model.preset == "tiny" and teacher.gradient_weight == 0.0


def test_unknown_yaml_key_names_the_file_and_the_key(tmp_path):
    config = _write_yaml(tmp_path / "bad.yaml", {"max_stepz": 3})
    with pytest.raises(ValueError, match=r"bad\.yaml.*max_stepz"):
        parse_args(*TEACHER_TYPES, argv=["--config", config])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        parse_args(*TEACHER_TYPES, argv=["--config", str(tmp_path / "nope.yaml")])


@pytest.mark.parametrize(
    ("cls", "kwargs", "quoted"),
    [
        (TrainArguments, {"lr_schedule": "cosine"}, "'cosine'"),
        (TrainArguments, {"max_steps": 0}, "0"),
        (TrainArguments, {"mixed_precision": "fp8"}, "'fp8'"),
        (TrainArguments, {"report_to": "tensorbored"}, "'tensorbored'"),
        (TrainArguments, {"report_to": "wandb,nope"}, "'wandb,nope'"),
        (TrainArguments, {"cpu_threads": 0}, "0"),
        (TrainArguments, {"max_skipped_steps": 0}, "0"),
        (StudentArguments, {"gradient_weight": -1.0}, "-1.0"),
        (TrainArguments, {"push_to_hub": True}, "hub_model_id"),
        (DataArguments, {"crop_size": 100}, "100"),
        (ModelArguments, {"preset": "huge"}, "'huge'"),
        (StudentArguments, {"mode": "v3"}, "'v3'"),
        (StudentArguments, {"ratio": [1]}, r"\[1\]"),
    ],
)
def test_invalid_values_raise_with_the_value(cls, kwargs, quoted):
    with pytest.raises(ValueError, match=quoted):
        cls(**kwargs)


def test_student_trim_and_gradient_weight_defaults_depend_on_the_mode():
    assert StudentArguments(mode="v1").trim == 0.0
    assert StudentArguments(mode="v2").trim == 0.1
    assert StudentArguments(mode="v1").gradient_weight == 0.0
    assert StudentArguments(mode="v2").gradient_weight == 2.0  # as the V2 teacher (V1 repository issue 198)


def test_report_to_accepts_every_accelerate_tracker():
    from accelerate.utils import LoggerType

    from modeling_depth_anything.training.args import report_targets

    for tracker in LoggerType:
        assert report_targets(tracker.value) == [tracker.value]
    assert report_targets("none") == [] and report_targets("wandb, tensorboard") == ["wandb", "tensorboard"]
    assert TrainArguments(report_to="mlflow").report_to == "mlflow"


def test_resolved_config_round_trips(tmp_path):
    instances = parse_args(*TEACHER_TYPES, argv=["--max_steps", "5", "--labelled", "synthetic", "--crop_size", "56"])
    path = tmp_path / "resolved.yaml"
    save_resolved_config(str(path), *instances)
    again = parse_args(*TEACHER_TYPES, argv=["--config", str(path)])
    assert again == instances


def _lr_factors(args: TrainArguments, model: torch.nn.Module) -> list[float]:
    """The encoder group's lr at each optimiser step, as a multiple of `encoder_lr`."""
    optimizer = build_optimizer(model, args)
    scheduler = build_scheduler(optimizer, args)
    factors = []
    for _ in range(args.max_steps):
        factors.append(optimizer.param_groups[0]["lr"] / args.encoder_lr)
        optimizer.step()
        scheduler.step()
    return factors


def test_lr_schedule_warmup_then_decay():
    """transformers' schedules: warm-up from 0 over `warmup_steps`, then linear / poly (power) decay to 0."""
    model = build_model(ModelArguments(preset="tiny"))
    linear = _lr_factors(TrainArguments(max_steps=10, warmup_steps=2, lr_schedule="linear"), model)
    assert linear[:3] == pytest.approx([0.0, 0.5, 1.0]) and linear[-1] == pytest.approx(1 / 8)
    assert all(a >= b for a, b in zip(linear[2:], linear[3:], strict=False))
    poly = _lr_factors(TrainArguments(max_steps=10, lr_schedule="poly", poly_power=0.9), model)
    assert poly[5] == pytest.approx(0.5**0.9) and poly[0] == 1.0
    constant = _lr_factors(TrainArguments(max_steps=10, warmup_steps=2, lr_schedule="constant"), model)
    assert constant == pytest.approx([0.0, 0.5] + [1.0] * 8)
    # the decoder group follows the same factor at 10x the encoder lr
    optimizer = build_optimizer(model, TrainArguments(encoder_lr=1e-4))
    build_scheduler(optimizer, TrainArguments(max_steps=10, lr_schedule="poly", encoder_lr=1e-4))
    assert optimizer.param_groups[1]["lr"] == pytest.approx(1e-3)


def test_optimizer_has_encoder_lr_and_ten_times_for_the_decoder():
    model = build_model(ModelArguments(preset="tiny"))
    optimizer = build_optimizer(model, TrainArguments(encoder_lr=5e-6))
    groups = {group["name"]: group for group in optimizer.param_groups}
    assert groups["encoder"]["lr"] == 5e-6 and groups["decoder"]["lr"] == pytest.approx(5e-5)
    encoder_ids = {id(p) for p in groups["encoder"]["params"]}
    assert encoder_ids == {id(p) for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad}
    # parameters unused by depth estimation are frozen (DDP would fail on them)
    assert not model.backbone.embeddings.mask_token.requires_grad


def test_encoder_init_from_a_depth_anything_folder_and_frozen_encoder(tmp_path):
    source = build_model(ModelArguments(preset="tiny"))
    source.save_pretrained(tmp_path / "source")
    model = build_model(ModelArguments(preset="tiny", encoder_init=str(tmp_path / "source")))
    for (name, a), b in zip(model.backbone.state_dict().items(), source.backbone.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    frozen = build_frozen_encoder("random", model)
    pixel_values = torch.randn(2, 3, 56, 56)
    features = frozen(pixel_values)
    assert features.shape == (2, 16, 192)
    assert not any(p.requires_grad for p in frozen.parameters())
    # same weights, same position interpolation -> exactly the student's own patch features
    torch.testing.assert_close(model.eval()(pixel_values).patch_features, features)


def test_encoder_init_of_the_wrong_size_is_refused(tmp_path):
    source = build_model(ModelArguments(preset="tiny"))
    source.save_pretrained(tmp_path / "tiny")
    with pytest.raises(ValueError, match="tiny.*do not fit"):
        build_model(ModelArguments(preset="v2-small", encoder_init=str(tmp_path / "tiny")))


def test_checkpoint_discovery_ignores_incomplete_ones(tmp_path):
    for step, complete in ((2, True), (10, True), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text("{}")
        if complete:
            (folder / COMPLETE_MARKER).write_text("")
    assert [step for step, _ in list_checkpoints(str(tmp_path))] == [2, 10]
    assert resolve_checkpoint(str(tmp_path), "latest").endswith("checkpoint-10")
    assert resolve_checkpoint(str(tmp_path / "empty"), "latest") is None
    with pytest.raises(ValueError, match="incomplete"):
        resolve_checkpoint(str(tmp_path), str(tmp_path / "checkpoint-12"))


def test_final_folder_loads_and_has_a_card(tmp_path):
    model = build_model(ModelArguments(preset="tiny"))
    instances = [ModelArguments(), DataArguments(labelled=["synthetic"]), TrainArguments(max_steps=3)]
    folder = tmp_path / "final"
    save_pretrained_folder(
        model,
        DepthAnythingImageProcessor(size=56),
        str(folder),
        instances,
        stage="teacher",
        steps=3,
        last_loss=0.5,
        bad_samples={"corrupt image": 1},
    )
    loaded = DepthAnythingForDepthEstimation.from_pretrained(folder)
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert DepthAnythingImageProcessor.from_pretrained(folder).size == 56
    card = (folder / "README.md").read_text()
    assert "pipeline_tag: depth-estimation" in card and "max_steps: 3" in card and "corrupt image" in card
    assert "short side of about 56 px" in card and "518 px" not in card  # from the saved processor
    assert yaml.safe_load((folder / "training_config.yaml").read_text())["max_steps"] == 3


def test_local_push_targets():
    assert is_local_target("/tmp/x") and is_local_target("./x") and is_local_target("../x")
    assert not is_local_target("user/my-model")
    assert os.path.sep == "/"


@pytest.mark.parametrize("path", sorted((ROOT / "train" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_parses(path):
    if "pseudo_label" in path.name:
        types = (DataArguments, PseudoLabelArguments)
        argv = ["--config", str(path), "--teacher", "some/teacher"]
    elif "metric" in path.name:  # train/metric.py's configs (training/metric_args.py)
        from modeling_depth_anything.training.metric_args import MetricArguments

        types = (*TEACHER_TYPES[:3], MetricArguments)
        argv = ["--config", str(path)]
    elif "metric" in path.name:
        from modeling_depth_anything.training.metric_args import MetricArguments

        types, argv = (*TEACHER_TYPES[:3], MetricArguments), ["--config", str(path)]
    else:
        types = (*TEACHER_TYPES[:3], StudentArguments if "student" in path.name else TeacherArguments)
        argv = ["--config", str(path)]
    parse_args(*types, argv=argv)


def test_encoder_init_from_a_dinov2_folder(tmp_path):
    from transformers import Dinov2Model

    reference = build_model(ModelArguments(preset="tiny"))
    dinov2 = Dinov2Model(reference.config.backbone_config)
    dinov2.save_pretrained(tmp_path / "dinov2")
    model = build_model(ModelArguments(preset="tiny", encoder_init=str(tmp_path / "dinov2")))
    for (name, a), b in zip(model.backbone.state_dict().items(), dinov2.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    frozen = build_frozen_encoder(str(tmp_path / "dinov2"), model)
    torch.testing.assert_close(
        frozen(torch.zeros(1, 3, 28, 28)), model.eval()(torch.zeros(1, 3, 28, 28)).patch_features
    )
