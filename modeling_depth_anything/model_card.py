"""The one model-card builder: cards for converted, trained and evaluated models, from facts only.

- `make_model_card` renders the template `model_card.md` (next to this file) with Hub metadata; conversion
  (`convert.py`) and training (`training_model_card`) use it.
- `update_model_card` writes evaluation results (metrics.json content) into an existing card's `model-index` and
  `## Evaluation` section (the evaluation runner's `--model-card`).

Facts only: the model-index name is the Hub repo's name or the model folder's name; input sizes come from the saved
image processor; local paths appear without the machine's directories (absolute paths become their last component);
links point only at pages that exist (the papers).
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration_depth_anything import DepthAnythingConfig
from .hub import is_local_target

logger = logging.getLogger(__name__)

TEMPLATE = Path(__file__).with_name("model_card.md")
PAPERS = {"v1": "https://arxiv.org/abs/2401.10891", "v2": "https://arxiv.org/abs/2406.09414"}
METRIC_LABELS = {
    "abs_rel": "AbsRel ↓",
    "delta1": "δ1 ↑",
    "delta2": "δ2 ↑",
    "delta3": "δ3 ↑",
    "rmse": "RMSE ↓",
    "rmse_log": "RMSE-log ↓",
    "log10": "log10 ↓",
    "silog": "SILog ↓",
    "sq_rel": "SqRel ↓",
}
TABLE_METRICS = ("abs_rel", "delta1", "delta2", "delta3", "rmse", "rmse_log", "log10", "silog")
EVALUATE_COMMAND = (
    "python -m modeling_depth_anything.evaluation.runner --model THIS_FOLDER --benchmark KIND:PATH --output DIR "
    "--model-card README.md"
)


def card_model_name(repo_id_or_path: str | os.PathLike) -> str:
    """The `model-index` name: a Hub repo's name (`user/my-model` -> `my-model`) or a local folder's name."""
    text = str(repo_id_or_path)
    if is_local_target(text) or os.path.exists(text) or text.count("/") != 1:
        return Path(text).resolve().name
    return text.split("/")[-1]


def public_value(value: Any) -> Any:
    """`value` without this machine's directories: absolute paths (also inside lists and dicts) become their last
    component; everything else is kept."""
    if isinstance(value, dict):
        return {key: public_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_value(item) for item in value]
    if isinstance(value, str) and (os.path.isabs(value) or value.startswith("~")):
        return Path(value).name or value
    return value


def make_model_card(
    config: DepthAnythingConfig,
    *,
    license: str = "apache-2.0",  # noqa: A002 - the Hub metadata field's name
    model_name: str | None = None,
    repo_id: str | None = None,
    source: str = "",
    base_model: str | None = None,
    datasets: list[str] | None = None,
    processor: Any = None,
    training_summary: str = "Not trained by this package (converted or initialised weights).",
    training_config: dict[str, Any] | None = None,
    results: dict[str, Any] | None = None,
) -> ModelCard:
    """Render the card.

    Args:
        config: the model's config (architecture, relative or metric).
        license (`str`): the weights' licence id.
        model_name (`str`, *optional*): heading and `model-index` name; defaults to `card_model_name(repo_id)`, or
            "Depth Anything".
        repo_id (`str`, *optional*): the Hub repo id used in the usage snippets; a local path is shown as
            `path/to/this/folder`.
        source (`str`): one sentence on where the weights come from.
        base_model / datasets: Hub ids for the metadata (local paths are dropped).
        processor (*optional*): the saved `DepthAnythingImageProcessor`: its `size` and `resize_policy` are stated.
        training_summary (`str`): the `## Training` text.
        training_config (`dict`, *optional*): the resolved training configuration (shown with `public_value`).
        results (`dict`, *optional*): metrics.json content: fills the `model-index` and the evaluation table.
    """
    hub_repo = repo_id if repo_id and not is_local_target(repo_id) and not os.path.exists(repo_id) else None
    model_name = model_name or (card_model_name(repo_id) if repo_id else "Depth Anything")
    eval_results = model_index_results(results) if results else []
    card_data = ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag="depth-estimation",
        tags=["depth-anything", "depth-estimation", "monocular-depth", "dinov2", "dpt"],
        base_model=base_model if base_model and not is_local_target(base_model) else None,
        datasets=[d for d in datasets or [] if not is_local_target(d)] or None,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )
    backbone = config.backbone_config
    taps = [index - 1 for index in backbone.out_indices]
    version = "v1" if taps == list(range(backbone.num_hidden_layers - 4, backbone.num_hidden_layers)) else "v2"
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        model_name=model_name,
        repo_id=hub_repo or "path/to/this/folder",
        source=source,
        paper_url=PAPERS[version],
        architecture=f"ViT {backbone.hidden_size}-wide x {backbone.num_hidden_layers} layers, DPT fusion width "
        f"{config.fusion_hidden_size}, tapped blocks {taps}",
        metric=config.depth_estimation_type == "metric",
        max_depth=config.max_depth,
        input_size=getattr(processor, "size", None),
        resize_policy=getattr(processor, "resize_policy", None),
        training_summary=training_summary,
        training_config=yaml.safe_dump(public_value(training_config), sort_keys=False).strip()
        if training_config
        else "",
        evaluation=evaluation_section(eval_results),
        license=license,
    )


def training_model_card(
    model: Any,
    processor: Any,
    flat_config: dict[str, Any],
    stage: str,
    steps: int,
    last_loss: float,
    bad_samples: dict[str, int],
    skipped_steps: int = 0,
    notes: str = "",
) -> ModelCard:
    """The card of a model trained by `train/{stage}.py`: stage, data, steps, bad samples, resolved config.

    Args:
        model: the trained `DepthAnythingForDepthEstimation`.
        processor: the image processor saved with it.
        flat_config (`dict`): the resolved configuration, one flat mapping (`training.args.flat_config`).
        stage (`str`): `"teacher"`, `"student"` or `"metric"`.
        steps / last_loss / bad_samples / skipped_steps: what the run did.
        notes (`str`): extra sentences from the stage script.
    """
    parameters = sum(p.numel() for p in model.parameters())
    sources = [*flat_config.get("labelled", []), *flat_config.get("unlabelled", [])]
    if flat_config.get("pseudo_labels"):
        sources.append(flat_config["pseudo_labels"])
    hub_ids = [s for s in sources if s.count("/") == 1 and not is_local_target(s) and not os.path.exists(s)]
    encoder = flat_config.get("encoder_init", "random")
    base_model = encoder if encoder in hub_ids or _looks_like_hub_id(encoder) else None
    shown = ", ".join(f"`{public_value(s)}`" for s in sources) or "see the configuration below"
    preset = flat_config.get("preset", "custom")
    summary = (
        f"Trained with depth-anything-hf `train/{stage}.py` ({preset} preset, {parameters / 1e6:.1f}M parameters) for "
        f"{steps} optimiser steps ({skipped_steps} skipped for non-finite gradients); final training loss "
        f"{last_loss:.4f}. Encoder initialised from `{public_value(encoder)}`. Data: {shown}. Bad samples skipped: "
        f"{bad_samples or 'none'}. {notes}"
    ).strip()
    target = flat_config.get("hub_model_id") or flat_config.get("output_dir") or "model"
    return make_model_card(
        model.config,
        model_name=card_model_name(target),
        repo_id=target,
        source=f"Trained by `train/{stage}.py`.",
        base_model=base_model,
        datasets=[s for s in hub_ids if s != encoder] or None,
        processor=processor,
        training_summary=summary,
        training_config=flat_config,
    )


def _looks_like_hub_id(spec: str) -> bool:
    return spec.count("/") == 1 and not is_local_target(spec) and not os.path.exists(spec)


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation results (metrics.json content) in a card
# ---------------------------------------------------------------------------------------------------------------------


def model_index_results(results: dict[str, Any]) -> list[EvalResult]:
    """metrics.json content as `huggingface_hub.EvalResult` entries (one per benchmark and metric).

    The protocol goes into `metric_config` (and the metric's display name) so that both protocols can coexist;
    results without alignment (metric models scored in metres as predicted, `--alignment none`) say so there too.
    """
    protocol = results["protocol"]
    if results.get("alignment") == "none":
        protocol = f"{protocol}, no alignment"
    entries = []
    for name, result in results["benchmarks"].items():
        common = {
            "task_type": "depth-estimation",
            "task_name": "Depth Estimation",
            "dataset_type": result.get("kind", name),
            "dataset_name": result.get("display_name", name),
            "dataset_split": result.get("split"),
        }
        if result.get("kind") == "da2k":
            if result.get("accuracy") is not None:
                entries.append(
                    EvalResult(
                        **common,
                        metric_type="accuracy",
                        metric_value=round(100 * result["accuracy"], 2),
                        metric_name="Accuracy (%)",
                    )
                )
            continue
        for metric, value in (result.get("metrics") or {}).items():
            if metric in TABLE_METRICS and value is not None and math.isfinite(value):
                entries.append(
                    EvalResult(
                        **common,
                        metric_type=metric,
                        metric_value=round(float(value), 4),
                        metric_name=f"{METRIC_LABELS[metric].split()[0]} ({protocol} protocol)",
                        metric_config=protocol,
                    )
                )
    return entries


def _format(value: Any, digits: int) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def evaluation_section(eval_results: list[EvalResult]) -> str:
    """The body of a card's `## Evaluation` section: a table of the entries (one row per dataset and protocol)."""
    if not eval_results:
        return f"Not evaluated yet: `{EVALUATE_COMMAND}` (package `depth-anything-hf`)."
    columns = [m for m in (*TABLE_METRICS, "accuracy") if any(e.metric_type == m for e in eval_results)]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in eval_results:
        rows.setdefault((entry.dataset_name, entry.metric_config or "—"), {})[entry.metric_type] = entry.metric_value
    labels = {**METRIC_LABELS, "accuracy": "accuracy % ↑"}
    lines = [
        "| benchmark | protocol | " + " | ".join(labels[c] for c in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for (dataset, protocol), values in rows.items():
        cells = [_format(values.get(c), 2 if c == "accuracy" else 3) if c in values else "" for c in columns]
        lines.append(f"| {dataset} | {protocol} | " + " | ".join(cells) + " |")
    return (
        "\n".join(lines) + "\n\nZero-shot, per-image least-squares scale and shift; protocols: `disparity` (Depth "
        "Anything authors) or `depth` (MiDaS / Marigold). Rows marked `no alignment` score metric depth in metres as "
        "predicted, without any scale or shift."
    )


def load_model_card(card_path: str | os.PathLike) -> ModelCard:
    """A model card (`huggingface_hub.ModelCard`), or a new empty one if the file does not exist.

    Raises:
        ValueError: the card's YAML front matter cannot be parsed (e.g. an unrendered template), naming the file.
    """
    card_path = Path(card_path)
    if not card_path.is_file():
        return ModelCard.from_template(ModelCardData(), template_str="---\n{{ card_data }}\n---\n\n# Model card\n")
    try:
        return ModelCard.load(card_path)
    except (yaml.YAMLError, ValueError) as error:
        raise ValueError(f"{card_path}: cannot parse the model card's YAML front matter: {error}") from error


def update_model_card(card_path: str | os.PathLike, results: dict[str, Any], model_name: str | None = None) -> None:
    """Write metrics.json content into a card: its `model-index` and its `## Evaluation` section.

    Existing `model-index` entries for the same dataset, metric and protocol are replaced, others kept; the
    `## Evaluation` section (appended if missing) becomes a table of all entries; all other metadata and text are
    kept. A missing card is created.

    Args:
        card_path: the model card (`README.md`).
        results: metrics.json content.
        model_name (`str`, *optional*): `model-index` name; defaults to the card's, else `card_model_name` of the
            evaluated model (its Hub repo's or folder's name).

    Raises:
        ValueError: the card's YAML front matter cannot be parsed.
    """
    card_path = Path(card_path)
    card = load_model_card(card_path)
    new = model_index_results(results)

    def key(entry: EvalResult) -> tuple:
        return (entry.dataset_type, entry.dataset_name, entry.dataset_split, entry.metric_type, entry.metric_config)

    replaced = {key(entry) for entry in new}
    kept = [entry for entry in (card.data.eval_results or []) if key(entry) not in replaced]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or model_name or card_model_name(results.get("model", "model"))
    section = "## Evaluation\n\n" + evaluation_section(card.data.eval_results) + "\n"
    text = card.text
    match = re.search(r"^## Evaluation[^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    text = text[: match.start()] + section + "\n" + text[match.end() :] if match else text.rstrip() + "\n\n" + section
    card.text = text
    card_path.parent.mkdir(parents=True, exist_ok=True)
    card.save(card_path)
    logger.info("wrote %d results into the model-index of %s", len(new), card_path)
