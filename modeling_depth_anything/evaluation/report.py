"""Evaluation reports: a markdown table, PNG grids and a model card's ``model-index``.

Tables never print NaN: a benchmark without any scored sample is an error upstream (`evaluation/runner.py`), and a missing
value is written as ``n/a`` with the reason in metrics.json.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

# The card builder is the one home of the model-index and card-table code; re-exported here for the runner.
from ..model_card import (  # noqa: F401
    METRIC_LABELS,
    TABLE_METRICS,
    load_model_card,
    model_index_results,
    update_model_card,
)

logger = logging.getLogger(__name__)


def _format(value: Any, digits: int = 3) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def markdown_table(results: dict[str, Any]) -> str:
    """Renders metrics.json content as markdown: one table for depth benchmarks, one for DA-2K.

    Args:
        results: ``{"model", "protocol", "protocol_description", "benchmarks": {name: result}}`` as written by
            `evaluation/runner.py` (a depth result has ``metrics``; a DA-2K result has ``accuracy`` and ``per_scene``).
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


def card_eval_results(results: dict[str, Any]) -> list[dict[str, Any]]:
    """metrics.json content as ``[{"benchmark": name, "protocol": protocol, "metrics": {...}}]`` (DA-2K:
    ``{"accuracy": percent}``); cards take metrics.json itself (``model_card.make_model_card(results=...)``)."""
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
