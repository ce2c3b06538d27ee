"""Model cards for saved and pushed models, rendered from `model_card.md` (the template) with Hub metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration_depth_anything import DepthAnythingConfig

TEMPLATE = Path(__file__).with_name("model_card.md")
PAPERS = {"v1": "https://arxiv.org/abs/2401.10891", "v2": "https://arxiv.org/abs/2406.09414"}


def make_model_card(
    config: DepthAnythingConfig,
    *,
    license: str = "apache-2.0",  # noqa: A002 - the Hub metadata field's name
    model_name: str = "Depth Anything",
    repo_id: str = "path/to/this/folder",
    source: str = "",
    base_model: str | None = None,
    datasets: list[str] | None = None,
    training_summary: str = "Not trained by this package (converted or initialised weights).",
    training_config: dict[str, Any] | None = None,
    eval_results: list[dict[str, Any]] | None = None,
) -> ModelCard:
    """Render the card.

    Args:
        eval_results: `[{"benchmark": "rgbd", "protocol": "disparity", "metrics": {"abs_rel": 0.1, "delta1": 0.9}}]`;
            they fill the Hub `model-index` and a markdown table.
    """
    eval_results = eval_results or []
    card_data = ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag="depth-estimation",
        tags=["depth-anything", "depth-estimation", "monocular-depth", "dinov2", "dpt"],
        base_model=base_model,
        datasets=datasets,
        model_name=model_name if eval_results else None,
        eval_results=[
            EvalResult(task_type="depth-estimation", dataset_type=result["benchmark"], dataset_name=result["benchmark"],
                       metric_type=metric, metric_name=f"{metric} ({result.get('protocol', 'disparity')} protocol)",
                       metric_config=result.get("protocol", "disparity"), metric_value=round(float(value), 4))
            for result in eval_results for metric, value in result["metrics"].items()
        ] or None,
    )
    backbone = config.backbone_config
    taps = [index - 1 for index in backbone.out_indices]
    version = "v1" if taps == list(range(backbone.num_hidden_layers - 4, backbone.num_hidden_layers)) else "v2"
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        model_name=model_name,
        repo_id=repo_id,
        source=source,
        paper_url=PAPERS[version],
        architecture=f"ViT {backbone.hidden_size}-wide x {backbone.num_hidden_layers} layers, DPT fusion width "
        f"{config.fusion_hidden_size}, tapped blocks {taps}",
        metric=config.depth_estimation_type == "metric",
        max_depth=config.max_depth,
        training_summary=training_summary,
        training_config=yaml.safe_dump(training_config, sort_keys=False).strip() if training_config else "",
        evaluation=_evaluation_table(eval_results),
        license=license,
    )


def _evaluation_table(eval_results: list[dict[str, Any]]) -> str:
    if not eval_results:
        return "Not evaluated yet: `python eval/evaluate.py --model THIS_FOLDER --benchmark rgbd:assets/rgbd --output DIR`."
    metrics = sorted({metric for result in eval_results for metric in result["metrics"]})
    lines = ["| benchmark | protocol | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for result in eval_results:
        values = [f"{result['metrics'][m]:.4f}" if m in result["metrics"] else "" for m in metrics]
        lines.append(f"| {result['benchmark']} | {result.get('protocol', 'disparity')} | " + " | ".join(values) + " |")
    return "\n".join(lines)
