"""The one model-card builder: facts only (no absolute paths, the model-index name from the repo id or the folder,
sizes from the saved processor, links only to places that exist), and evaluation results into an existing card."""

import re
from pathlib import Path

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation, DepthAnythingImageProcessor
from modeling_depth_anything.model_card import (
    PAPERS,
    TEMPLATE,
    card_model_name,
    make_model_card,
    training_model_card,
    update_model_card,
)
from modeling_depth_anything.training.args import DataArguments, ModelArguments, TrainArguments, flat_config

URL = re.compile(r"https?://[^\s)>\]`\"']+")


def _tiny_model() -> DepthAnythingForDepthEstimation:
    return DepthAnythingForDepthEstimation(DepthAnythingConfig.from_preset("tiny"))


def _training_card(tmp_path: Path, **train_values) -> str:
    config = flat_config(
        ModelArguments(encoder_init=str(tmp_path / "dinov2"), processor_size=126),
        DataArguments(
            labelled=["synthetic", str(tmp_path / "data" / "rgbd")],
            pseudo_labels=str(tmp_path / "pseudo"),
            crop_size=126,
        ),
        TrainArguments(output_dir=str(tmp_path / "runs" / "student_v2"), **train_values),
    )
    card = training_model_card(
        _tiny_model(),
        DepthAnythingImageProcessor(size=126),
        config,
        stage="student",
        steps=3,
        last_loss=0.25,
        bad_samples={"corrupt image": 1},
        skipped_steps=1,
    )
    return str(card)


def test_training_card_has_no_absolute_paths_and_sizes_from_the_processor(tmp_path):
    text = _training_card(tmp_path)
    assert str(tmp_path) not in text and "/tmp" not in text
    assert "`rgbd`" in text and "`pseudo`" in text and "output_dir: student_v2" in text  # names, not paths
    assert "# student_v2" in text  # the run folder's name
    assert "short side of about 126 px" in text and "518 px" not in text
    assert "1 skipped for non-finite gradients" in text and "corrupt image" in text


def test_training_card_for_a_hub_repo_uses_its_id(tmp_path):
    text = _training_card(tmp_path, push_to_hub=True, hub_model_id="someone/tiny-student")
    assert "# tiny-student" in text and 'model="someone/tiny-student"' in text


def test_links_only_to_places_that_exist(tmp_path):
    """Every URL of the template and of rendered cards is one of the papers (no invented repository)."""
    allowed = set(PAPERS.values())
    assert set(URL.findall(TEMPLATE.read_text())) == set()  # the template itself links nowhere but its variables
    for text in (_training_card(tmp_path), str(make_model_card(_tiny_model().config))):
        assert set(URL.findall(text)) <= allowed, URL.findall(text)


def test_model_index_name_from_the_repo_id_or_the_folder(tmp_path):
    assert card_model_name("depth-anything/Depth-Anything-V2-Small-hf") == "Depth-Anything-V2-Small-hf"
    assert card_model_name(str(tmp_path / "models" / "v2-small")) == "v2-small"
    folder = tmp_path / "models" / "my-eval-model"
    folder.mkdir(parents=True)
    results = {
        "model": str(folder),
        "protocol": "disparity",
        "benchmarks": {"rgbd": {"kind": "rgbd", "display_name": "RGB-D folder", "metrics": {"abs_rel": 0.125}}},
    }
    card = tmp_path / "README.md"
    update_model_card(card, results)
    text = card.read_text()
    assert "name: my-eval-model" in text and str(tmp_path) not in text
    assert "| RGB-D folder | disparity | 0.125 |" in text


def test_a_rendered_card_takes_metrics_json():
    results = {
        "model": "m",
        "protocol": "depth",
        "benchmarks": {
            "nyu_test": {"kind": "nyu", "display_name": "NYUv2", "split": "test", "metrics": {"delta1": 0.5}}
        },
    }
    text = str(make_model_card(_tiny_model().config, repo_id="someone/model", results=results))
    assert "model-index" in text and "name: model" in text and "| NYUv2 | depth |" in text
    assert "Not evaluated yet" not in text
