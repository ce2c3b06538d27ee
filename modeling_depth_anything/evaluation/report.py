"""Evaluation reports: a markdown table, PNG grids and a model card's ``model-index``.

Tables never print NaN: a benchmark without any scored sample is an error upstream (eval/evaluate.py), and a missing
value is written as ``n/a`` with the reason in metrics.json.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

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


def _format(value: Any, digits: int = 3) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def markdown_table(results: dict[str, Any]) -> str:
    """Renders metrics.json content as markdown: one table for depth benchmarks, one for DA-2K.

    Args:
        results: ``{"model", "protocol", "protocol_description", "benchmarks": {name: result}}`` as written by
            eval/evaluate.py (a depth result has ``metrics``; a DA-2K result has ``accuracy`` and ``per_scene``).
    """
    lines = [
        "# Evaluation results",
        "",
        f"Model: `{results.get('model', '?')}`",
        "",
        f"Protocol: **{results['protocol']}** — {results.get('protocol_description', '')}",
        "",
    ]
    depth = {name: r for name, r in results["benchmarks"].items() if r.get("kind") != "da2k"}
    pairwise = {name: r for name, r in results["benchmarks"].items() if r.get("kind") == "da2k"}
    if depth:
        header = ["benchmark", "scored", "skipped"] + [METRIC_LABELS[m] for m in TABLE_METRICS]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name, result in depth.items():
            metrics = result.get("metrics") or {}
            row = [name, str(result.get("num_evaluated", 0)), str(result.get("num_skipped", 0))]
            row += [_format(metrics.get(metric)) for metric in TABLE_METRICS]
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "Alignment per image: " + ", ".join(sorted({str(r.get("alignment")) for r in depth.values()}))]
        lines.append("")
    if pairwise:
        lines += ["| benchmark | pairs | skipped images | accuracy ↑ | per scene type |", "|---|---|---|---|---|"]
        for name, result in pairwise.items():
            scenes = ", ".join(
                f"{scene} {_format(100 * s['accuracy'], 1)} ({s['pairs']})" for scene, s in result["per_scene"].items()
            )
            accuracy = result.get("accuracy")
            lines.append(
                f"| {name} | {result.get('num_pairs', 0)} | {result.get('num_skipped', 0)} | "
                f"{_format(None if accuracy is None else 100 * accuracy, 1)} | {scenes} |"
            )
        lines.append("")
    skipped = [(name, r) for name, r in results["benchmarks"].items() if r.get("num_skipped")]
    if skipped:
        lines.append(
            "Skipped samples (reasons in metrics.json): " + ", ".join(f"{n}: {r['num_skipped']}" for n, r in skipped)
        )
        lines.append("")
    return "\n".join(lines)


def save_depth_grid(
    examples: list[tuple[Any, dict[str, np.ndarray], dict[str, float], str]], path: Path, protocol: str
) -> None:
    """Saves a PNG grid, one row per example: input, ground truth, aligned prediction, relative error.

    Ground truth and prediction share one colour scale per row (2nd–98th percentile of the valid ground truth, in the
    protocol's space: depth or disparity); invalid ground-truth pixels are grey. The error map is
    ``|prediction - target| / target`` on valid pixels, clipped at 0.5.

    Args:
        examples: ``(image (H, W, 3) uint8, maps, metrics, id)`` as kept by ``metrics.evaluate_model``, where maps has
            ``prediction``, ``target`` (NaN where invalid) and ``mask``, each `(H, W)`.
        path: output PNG file.
        protocol (`str`): ``"disparity"`` or ``"depth"`` (labels the colour bars).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not examples:
        raise ValueError(f"no examples to plot for {path}")
    quantity = "disparity (1/m)" if protocol == "disparity" else "depth (m)"
    rows = len(examples)
    figure, axes = plt.subplots(rows, 4, figsize=(16, 3.4 * rows), squeeze=False)
    value_map = plt.get_cmap("Spectral_r" if protocol == "disparity" else "Spectral").with_extremes(bad="0.6")
    error_map = plt.get_cmap("magma").with_extremes(bad="0.6")
    for row, (image, maps, metrics, sample_id) in enumerate(examples):
        valid = maps["mask"]
        target = np.ma.masked_where(~valid, maps["target"])
        low, high = np.percentile(maps["target"][valid], [2, 98])
        high = max(high, low + 1e-6)
        error = np.ma.masked_where(
            ~valid, np.abs(maps["prediction"] - maps["target"]) / np.where(valid, maps["target"], 1)
        )
        panels = [
            (np.asarray(image), None, f"{sample_id}"),
            (target, {"cmap": value_map, "vmin": low, "vmax": high}, f"ground truth, {quantity}"),
            (
                maps["prediction"],
                {"cmap": value_map, "vmin": low, "vmax": high},
                f"aligned prediction ({protocol} protocol)",
            ),
            (error, {"cmap": error_map, "vmin": 0, "vmax": 0.5}, f"|error|/gt, AbsRel {metrics['abs_rel']:.3f}"),
        ]
        for column, (array, style, title) in enumerate(panels):
            axis = axes[row, column]
            shown = axis.imshow(array, **(style or {}))
            axis.set_title(title, fontsize=9)
            axis.axis("off")
            if style is not None:
                figure.colorbar(shown, ax=axis, fraction=0.035, pad=0.02)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=72)
    plt.close(figure)


def save_da2k_grid(examples: list[tuple[Any, np.ndarray, list[dict[str, Any]], str]], path: Path) -> None:
    """Saves a PNG grid for DA-2K: input with its pairs (green = ordered correctly, red = wrong) and the disparity.

    Args:
        examples: ``(image (H, W, 3) uint8, disparity (H, W), pairs, id)``.
        path: output PNG file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not examples:
        raise ValueError(f"no examples to plot for {path}")
    figure, axes = plt.subplots(len(examples), 2, figsize=(9, 3.4 * len(examples)), squeeze=False)
    for row, (image, disparity, pairs, sample_id) in enumerate(examples):
        axes[row, 0].imshow(image)
        for pair in pairs:
            (h1, w1), (h2, w2) = pair["point1"], pair["point2"]
            closer = pair["point1"] if pair["closer_point"] == "point1" else pair["point2"]
            farther = pair["point2"] if pair["closer_point"] == "point1" else pair["point1"]
            ok = disparity[int(closer[0]), int(closer[1])] > disparity[int(farther[0]), int(farther[1])]
            axes[row, 0].plot([w1, w2], [h1, h2], color="lime" if ok else "red", linewidth=1.5)
            axes[row, 0].scatter([closer[1]], [closer[0]], color="white", s=12, zorder=3)
        axes[row, 0].set_title(f"{sample_id} (white = closer point)", fontsize=9)
        shown = axes[row, 1].imshow(disparity, cmap="Spectral_r")
        axes[row, 1].set_title("predicted disparity", fontsize=9)
        figure.colorbar(shown, ax=axes[row, 1], fraction=0.035, pad=0.02)
        for axis in axes[row]:
            axis.axis("off")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=72)
    plt.close(figure)


def model_index_results(results: dict[str, Any]) -> list[Any]:
    """Turns metrics.json content into ``huggingface_hub.EvalResult`` entries (one per benchmark and metric).

    The protocol goes into ``metric_config`` (and the metric's display name) so that both protocols can coexist.
    """
    from huggingface_hub import EvalResult

    protocol = results["protocol"]
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


def card_eval_results(results: dict[str, Any]) -> list[dict[str, Any]]:
    """metrics.json content in the form ``modeling_depth_anything.model_card.make_model_card(eval_results=...)`` takes:
    ``[{"benchmark": name, "protocol": protocol, "metrics": {...}}]`` (DA-2K: ``{"accuracy": percent}``)."""
    entries = []
    for name, result in results["benchmarks"].items():
        if result.get("kind") == "da2k":
            metrics = {} if result.get("accuracy") is None else {"accuracy": round(100 * result["accuracy"], 2)}
        else:
            metrics = {m: v for m, v in (result.get("metrics") or {}).items() if m in TABLE_METRICS}
        if metrics:
            entries.append(
                {"benchmark": result.get("display_name", name), "protocol": results["protocol"], "metrics": metrics}
            )
    return entries


def _card_table(eval_results: list[Any]) -> str:
    """Markdown table of a card's ``EvalResult`` entries: one row per dataset and protocol."""
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
    return "\n".join(lines)


def load_model_card(card_path: Path) -> Any:
    """Loads a model card (``huggingface_hub.ModelCard``), or a new empty one if the file does not exist.

    Raises:
        ValueError: the card's YAML front matter cannot be parsed (e.g. an unrendered template).
    """
    import yaml
    from huggingface_hub import ModelCard, ModelCardData

    card_path = Path(card_path)
    if not card_path.is_file():
        return ModelCard.from_template(ModelCardData(), template_str="---\n{{ card_data }}\n---\n\n# Model card\n")
    try:
        return ModelCard.load(card_path)
    except (yaml.YAMLError, ValueError) as error:
        raise ValueError(f"{card_path}: cannot parse the model card's YAML front matter: {error}") from error


def update_model_card(card_path: Path, results: dict[str, Any], model_name: str | None = None) -> None:
    """Writes the results into a model card: the YAML front matter ``model-index`` and the ``## Evaluation`` section.

    Existing ``model-index`` entries for the same dataset, metric and protocol are replaced, others are kept; the
    ``## Evaluation`` section (appended if missing) is rewritten as a table of all entries. All other metadata and text
    are kept. A missing card is created.

    Args:
        card_path: the model card (``README.md``) to update.
        results: metrics.json content.
        model_name (`str`, *optional*): ``model-index`` name; defaults to the card's ``model_name`` or the model id.

    Raises:
        ValueError: the card's YAML front matter cannot be parsed.
    """
    card_path = Path(card_path)
    card = load_model_card(card_path)
    new = model_index_results(results)

    def key(entry: Any) -> tuple:
        return (entry.dataset_type, entry.dataset_name, entry.dataset_split, entry.metric_type, entry.metric_config)

    replaced = {key(entry) for entry in new}
    kept = [entry for entry in (card.data.eval_results or []) if key(entry) not in replaced]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or model_name or str(results.get("model", "model"))
    section = (
        "## Evaluation\n\n"
        + _card_table(card.data.eval_results)
        + "\n\nZero-shot, per-image least-squares scale and shift; protocols: `disparity` (Depth Anything authors) or "
        "`depth` (MiDaS / Marigold). Reproduce with `python eval/evaluate.py` (see eval/README.md).\n"
    )
    text = card.text
    match = re.search(r"^## Evaluation[^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    text = text[: match.start()] + section + "\n" + text[match.end() :] if match else text.rstrip() + "\n\n" + section
    card.text = text
    card_path.parent.mkdir(parents=True, exist_ok=True)
    card.save(card_path)
    logger.info("wrote %d results into the model-index of %s", len(new), card_path)
