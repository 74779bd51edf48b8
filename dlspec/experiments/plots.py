"""The pictures of `dlspec compare` and `dlspec evaluate` (matplotlib, Agg: no display).

Names drawn come from files nobody vouches for (run folders, class names): they are escaped
(`printable`) and their `$` quoted, so none is read as mathtext. Figures are rendered in
memory and written with `write_user_file`, so a path that cannot be written is exit 2.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlspec.runtime.untrusted import printable
from dlspec.user_files import write_user_file

if TYPE_CHECKING:
    from dlspec.experiments.records import RunRecord

MAX_POINTS = 20_000  # points a scatter draws; more are sampled (seeded)
ANNOTATED_CLASSES = 30  # a confusion matrix writes its counts up to this many classes
NAMED_CLASSES = 60  # ... and names its classes up to this many


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain(text: str) -> str:
    """A name as matplotlib draws it verbatim: escaped, `$` quoted (no mathtext)."""
    return printable(text).replace("$", r"\$")


def _save(figure: Any, path: Path) -> None:
    plt = _pyplot()
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(figure)
    write_user_file(path, buffer.getvalue())


def draw_comparison(runs: Sequence[RunRecord], names: Sequence[str], panels: Sequence[str],
                    path: Path) -> None:
    """Each panel's curves per epoch, one colour per run: validation solid, training
    dashed."""
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.8 * columns, 3.6 * rows),
                                squeeze=False, constrained_layout=True)
    cycle = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    colours = [cycle(i % cycle.N) for i in range(len(runs))]
    for panel, axis in zip(panels, axes.flat, strict=False):
        for run, colour in zip(runs, colours, strict=True):
            for prefix, style in (("val_", "-"), ("train_", "--")):
                points = [(r["epoch"], r[prefix + panel]) for r in run.history
                          if prefix + panel in r]
                if points:
                    axis.plot(*zip(*points, strict=True), style, color=colour, linewidth=1.4)
        axis.set(title=plain(panel), xlabel="epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    handles = [Line2D([], [], color=colour, label=plain(name))
               for name, colour in zip(names, colours, strict=True)]
    handles += [Line2D([], [], color="grey", linestyle="-", label="validation"),
                Line2D([], [], color="grey", linestyle="--", label="training")]
    axes.flat[0].legend(handles=handles, frameon=False, fontsize="small")
    figure.suptitle("runs compared")
    _save(figure, path)


def draw_confusion(confusion: np.ndarray, labels: Sequence[str], path: Path,
                   title: str) -> None:
    """The confusion matrix: counts written in the cells, colour the share of each true
    class (row-normalised), class names on the axes."""
    plt = _pyplot()
    count = len(labels)
    totals = confusion.sum(axis=1, keepdims=True)
    shares = np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=np.float64),
                       where=totals > 0)
    side = min(max(4.5, 0.45 * count + 2.5), 30.0)
    figure, axis = plt.subplots(figsize=(side + 1.2, side), constrained_layout=True)
    image = axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the true class")
    if count <= ANNOTATED_CLASSES:
        for (row, column), value in np.ndenumerate(confusion):
            axis.text(column, row, str(int(value)), ha="center", va="center", fontsize="small",
                      color="white" if shares[row, column] > 0.5 else "black")
    if count <= NAMED_CLASSES:
        names = [plain(label) for label in labels]
        axis.set_xticks(range(count), names, rotation=45 if count > 6 else 0,
                        ha="right" if count > 6 else "center")
        axis.set_yticks(range(count), names)
    axis.set(xlabel="predicted", ylabel="true", title=plain(title))
    _save(figure, path)


def draw_residuals(true: np.ndarray, predicted: np.ndarray, path: Path, title: str) -> None:
    """Predicted against true values (the diagonal is perfect), and the residuals
    (predicted − true) against the predictions."""
    plt = _pyplot()
    true, predicted = true.reshape(-1), predicted.reshape(-1)
    if len(true) > MAX_POINTS:
        chosen = np.random.default_rng(0).choice(len(true), MAX_POINTS, replace=False)
        true, predicted = true[chosen], predicted[chosen]
    residuals = predicted - true
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    left.scatter(true, predicted, s=8, alpha=0.5)
    low = float(min(true.min(), predicted.min()))
    high = float(max(true.max(), predicted.max()))
    left.plot([low, high], [low, high], color="tab:red", linewidth=1)
    left.set(xlabel="true", ylabel="predicted", title="predicted vs true")
    right.scatter(predicted, residuals, s=8, alpha=0.5)
    right.axhline(0.0, color="tab:red", linewidth=1)
    right.set(xlabel="predicted", ylabel="residual (predicted − true)", title="residuals")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.suptitle(plain(title))
    _save(figure, path)
