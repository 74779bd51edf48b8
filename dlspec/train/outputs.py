"""What a run leaves in its folder: metrics.csv/json, curves.png, the resolved spec, report.md."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml


def write_metrics(run_dir: Path, history: list[dict[str, float]],
                  test: dict[str, float] | None) -> None:
    """Per-epoch history as CSV and JSON (with the final test evaluation in the JSON)."""
    columns = list(dict.fromkeys(k for record in history for k in record))
    with open(run_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for record in history:
            writer.writerow({k: _number(v) for k, v in record.items()})
    (run_dir / "metrics.json").write_text(
        json.dumps({"epochs": history, "test": test}, indent=2) + "\n")


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() and abs(value) < 1e15 else round(value, 6)


def write_curves(run_dir: Path, history: list[dict[str, float]], title: str) -> Path:
    """Loss, metric and learning-rate curves in one figure (matplotlib, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    metrics = [k for k in history[0] if k.startswith(("val_", "train_")) and
               not k.endswith("loss")]
    norms = [k for k in history[0] if k.startswith("grad_norm/")]
    fig, axes = plt.subplots(1, 4 if norms else 3, figsize=(17 if norms else 13, 3.8),
                             constrained_layout=True)
    for key in ("train_loss", "val_loss"):
        if key in history[0]:
            axes[0].plot(epochs, [r[key] for r in history], label=key.replace("_", " "))
    axes[0].set(title="loss", xlabel="epoch")
    for key in metrics:
        axes[1].plot(epochs, [r[key] for r in history], label=key.replace("_", " "))
    axes[1].set(title="metrics", xlabel="epoch")
    axes[2].plot(epochs, [r["lr"] for r in history], color="tab:purple")
    axes[2].set(title="learning rate", xlabel="epoch")
    if norms:
        for key in norms:
            axes[3].plot(epochs, [r[key] for r in history], label=key.split("/", 1)[1])
        axes[3].set(title="gradient norm per layer", xlabel="epoch", yscale="log")
    for axis in [*axes[:2], *axes[3:]]:
        if axis.lines:
            axis.legend(frameon=False, fontsize="small")
    for axis in axes:
        axis.grid(alpha=0.3)
    fig.suptitle(title)
    path = run_dir / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_resolved_spec(run_dir: Path, spec: Any, epochs: int) -> Path:
    """The spec as the run used it: short forms expanded, command-line overrides applied.

    Only what the spec set is written (defaults stay implicit), so the file loads again as
    a spec: some defaults, such as csv's delimiter, are errors when written for another source.
    """
    data = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    data.setdefault("train", {})["epochs"] = epochs
    path = run_dir / "spec.resolved.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def write_report(run_dir: Path, lines: list[str]) -> Path:
    """report.md: a short account of the run linking its files."""
    path = run_dir / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
