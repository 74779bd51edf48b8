"""What a run leaves in its folder: metrics.csv/json, curves.png, the resolved spec, report.md."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from dlspec.runfiles import CURVES, METRICS_CSV, METRICS_JSON, REPORT


def write_metrics(run_dir: Path, history: list[dict[str, float]],
                  test: dict[str, float] | None) -> None:
    """Per-epoch history as CSV and JSON (with the final test evaluation in the JSON)."""
    columns = list(dict.fromkeys(k for record in history for k in record))
    with open(run_dir / METRICS_CSV, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for record in history:
            writer.writerow({k: _number(v) for k, v in record.items()})
    (run_dir / METRICS_JSON).write_text(
        json.dumps({"epochs": history, "test": test}, indent=2) + "\n")


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() and abs(value) < 1e15 else round(value, 6)


def curve_panels(columns: list[str]) -> list[tuple[str, list[str]]]:
    """The panels of curves.png from metrics.csv's columns: each a title and the columns
    drawn in it — training beside validation for the loss and for each metric (`accuracy`:
    train_accuracy and val_accuracy), then the learning rate and the gradient norms."""
    panels: dict[str, list[str]] = {}
    for column in columns:
        for split in ("train", "val"):
            if column.startswith(f"{split}_"):
                panels.setdefault(column.removeprefix(f"{split}_"), []).append(column)
    ordered = sorted(panels.items(), key=lambda item: (item[0] != "loss",
                                                       not item[0].endswith("loss")))
    rates = [c for c in columns if c == "lr" or c.startswith("lr/")]
    norms = [c for c in columns if c.startswith("grad_norm/")]
    return [*ordered, *([("learning rate", rates)] if rates else []),
            *([("gradient norm per layer", norms)] if norms else [])]


_COLOURS = {"train": "tab:blue", "val": "tab:orange"}


def write_curves(run_dir: Path, history: list[dict[str, float]], title: str,
                 best_epoch: int | None = None, best_metric: str | None = None) -> Path:
    """curves.png: the loss and each metric with training beside validation, one panel
    each, the best epoch marked (a dotted line, a dot on each curve, the watched number
    written); then the learning rate and the gradient norms (matplotlib, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    panels = curve_panels(list(dict.fromkeys(k for r in history for k in r)))
    columns = min(len(panels), 4)
    rows = -(-len(panels) // columns)
    fig, grid = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.5 * rows),
                             constrained_layout=True, squeeze=False)
    axes = list(grid.flat)
    marker = {"marker": "o", "markersize": 3} if len(epochs) <= 30 else {}
    best = next((r for r in history if best_epoch is not None and r["epoch"] == best_epoch),
                None)
    for axis, (name, keys) in zip(axes, panels, strict=False):
        split_panel = name not in ("learning rate", "gradient norm per layer")
        for key in keys:
            values = [r.get(key, float("nan")) for r in history]
            split = key.split("_", 1)[0]
            label = ({"train": "training", "val": "validation"}[split] if split_panel
                     else key.split("/", 1)[-1])
            axis.plot(epochs, values, label=label, color=_COLOURS.get(split) if split_panel
                      else None, **marker)
            if split_panel and best is not None and key in best:
                axis.plot([best["epoch"]], [best[key]], "o", color=_COLOURS.get(split),
                          markersize=7, markeredgecolor="black", zorder=3)
                if key == best_metric:  # written towards the middle: inside the axes
                    right = best["epoch"] > (epochs[0] + epochs[-1]) / 2
                    axis.annotate(f"{key} {best[key]:.4g}", (best["epoch"], best[key]),
                                  textcoords="offset points", xytext=(-8 if right else 8, 8),
                                  ha="right" if right else "left", fontsize="small")
        if split_panel and best is not None:
            axis.axvline(best["epoch"], color="grey", linestyle=":",
                         label=f"best epoch {int(best['epoch'])}")
        axis.set(title=name, xlabel="epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        if name == "gradient norm per layer":
            axis.set_yscale("log")
        if name != "learning rate" or len(keys) > 1:
            axis.legend(frameon=False, fontsize="small")
        axis.grid(alpha=0.3)
    for axis in axes[len(panels):]:
        axis.axis("off")
    fig.suptitle(title)
    path = run_dir / CURVES
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(run_dir: Path, lines: list[str]) -> Path:
    """report.md: a short account of the run linking its files."""
    path = run_dir / REPORT
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
