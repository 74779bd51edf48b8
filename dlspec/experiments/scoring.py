"""Predictions scored against labels (numpy only), and what `dlspec evaluate` writes.

Classifiers: accuracy, and precision, recall and F1 per class; the summary precision, recall
and F1 are those of the positive class (1) for a binary classifier and otherwise
macro-averaged over the classes present in the labels or the predictions — what
scikit-learn's defaults compute, and what training reports (a class never predicted has
precision 0, one never true recall 0; neither is left out of the average). Regressors: MAE,
MSE, RMSE and R² (RMSE and R² per output value, then averaged uniformly, as scikit-learn's
`root_mean_squared_error` and `r2_score`; a constant target scores R² 1 when predicted
exactly, else 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlspec.experiments.runs import text_table
from dlspec.runtime.untrusted import printable
from dlspec.runtime.writers import Table, to_csv
from dlspec.user_files import write_user_file

METRICS_FILE, PER_CLASS_FILE = "metrics.json", "per_class.csv"
CONFUSION_FILE, RESIDUALS_FILE = "confusion.png", "residuals.png"


@dataclass
class ClassScores:
    """A classifier's verdicts against the labels, over the classes present in either."""

    labels: list[str]  # the names of the present classes
    confusion: np.ndarray  # (C, C) counts: rows true, columns predicted
    precision: np.ndarray  # (C,) per present class
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # (C,) true samples per class
    positive: int | None = None  # a binary classifier's positive class's row (None: absent)
    binary: bool = False

    @property
    def accuracy(self) -> float:
        """The share of samples whose predicted class is the true one."""
        return float(np.trace(self.confusion) / max(int(self.confusion.sum()), 1))

    def metrics(self) -> dict[str, float]:
        """Accuracy, and the positive class's scores (binary) or the macro averages."""
        if self.binary:
            row = self.positive
            scores = [0.0 if row is None else float(v[row])
                      for v in (self.precision, self.recall, self.f1)]
        else:
            scores = [float(v.mean()) for v in (self.precision, self.recall, self.f1)]
        return {"accuracy": self.accuracy, **dict(zip(("precision", "recall", "f1"), scores,
                                                      strict=True))}

    def rows(self) -> list[dict[str, str | float | int]]:
        """One row per present class: precision, recall, f1, support."""
        return [{"class": label, "precision": float(p), "recall": float(r), "f1": float(f),
                 "support": int(s)}
                for label, p, r, f, s in zip(self.labels, self.precision, self.recall, self.f1,
                                             self.support, strict=True)]


def class_scores(truth: np.ndarray, predicted: np.ndarray, labels: list[str]) -> ClassScores:
    """Per-class and macro scores of predicted class indices against true ones; `labels`
    names every class by index.

    Example:
        >>> scores = class_scores(np.array([0, 1, 1]), np.array([0, 1, 0]), ["cat", "dog"])
        >>> scores.accuracy, scores.recall.tolist()
        (0.666..., [1.0, 0.5])
    """
    truth, predicted = truth.astype(np.int64), predicted.astype(np.int64)
    present = np.union1d(truth, predicted)
    index = np.searchsorted(present, truth), np.searchsorted(present, predicted)
    count = len(present)
    confusion = np.bincount(index[0] * count + index[1], minlength=count * count)
    confusion = confusion.reshape(count, count)
    hits = np.diag(confusion).astype(np.float64)
    said, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(hits, said, out=np.zeros(count), where=said > 0)
    recall = np.divide(hits, actual, out=np.zeros(count), where=actual > 0)
    both = said + actual
    f1 = np.divide(2 * hits, both, out=np.zeros(count), where=both > 0)
    found = present.tolist()
    return ClassScores([labels[i] for i in found], confusion, precision, recall, f1, actual,
                       positive=found.index(1) if 1 in found else None,
                       binary=len(labels) == 2)


def value_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, MSE, RMSE and R² of predicted values against true ones, (N, k) each."""
    truth = truth.reshape(len(truth), -1).astype(np.float64)
    predicted = predicted.reshape(len(predicted), -1).astype(np.float64)
    error = predicted - truth
    mse = float(np.mean(error ** 2))
    residual = (error ** 2).sum(axis=0)
    total = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1),
                  np.where(residual == 0, 1.0, 0.0))
    rmse = float(np.sqrt(np.mean(error ** 2, axis=0)).mean())
    return {"mae": float(np.mean(np.abs(error))), "mse": mse, "rmse": rmse,
            "r2": float(r2.mean())}


@dataclass
class Evaluation:
    """A model scored on labelled data."""

    model: str  # what was evaluated: a run folder or a model file
    data: str  # what it was scored on
    task: str  # the model's task
    samples: int
    metrics: dict[str, float]
    classes: ClassScores | None = None  # a classifier's
    truth: np.ndarray | None = None  # a regressor's values, for the residual plot
    predicted: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)  # what the reading chose, for stderr
    source: str = ""  # what the data is, when `data` does not say it (a run's test split)

    def report(self) -> str:
        """What the terminal shows: the metrics, and a classifier's per-class table."""
        shown = ", ".join(f"{name} {value:.4f}" for name, value in self.metrics.items())
        of = f" of {printable(self.source)}" if self.source else ""
        text = (f"{printable(self.model)} on {printable(self.data)}: {self.samples:,} "
                f"samples{of}\n{shown}\n")
        if self.classes is not None:
            rows = [[printable(str(row["class"])), *(f"{row[k]:.4f}" for k in
                                                     ("precision", "recall", "f1")),
                     str(row["support"])] for row in self.classes.rows()]
            macro = (self.classes.precision, self.classes.recall, self.classes.f1)
            rows.append(["macro avg", *(f"{float(v.mean()):.4f}" for v in macro),
                         str(int(self.classes.support.sum()))])
            text += "\n" + text_table(["class", "precision", "recall", "f1", "support"], rows,
                                      right={1, 2, 3, 4})
        return text

    def to_json(self) -> dict[str, object]:
        """metrics.json's content."""
        content: dict[str, object] = {"model": self.model, "data": self.data,
                                      "source": self.source or None, "task": self.task,
                                      "samples": self.samples, "metrics": self.metrics}
        if self.classes is not None:
            content["per_class"] = self.classes.rows()
            content["confusion"] = {"labels": self.classes.labels,
                                    "counts": self.classes.confusion.tolist()}
        return content

    def write(self, folder: Path) -> list[Path]:
        """metrics.json, and per_class.csv and confusion.png (classifiers) or residuals.png
        (regressors) into `folder`; the files written. Without matplotlib the pictures are
        left out, and a note says so."""
        written = [folder / METRICS_FILE]
        write_user_file(written[0], (json.dumps(self.to_json(), indent=2) + "\n").encode())
        if self.classes is not None:
            rows = self.classes.rows()
            table = Table({key: [row[key] for row in rows]
                           for key in ("class", "precision", "recall", "f1", "support")})
            written.append(folder / PER_CLASS_FILE)
            write_user_file(written[-1], to_csv(table).encode("utf-8"))
        from dlspec.experiments import plots

        try:
            if self.classes is not None:
                plots.draw_confusion(self.classes.confusion, self.classes.labels,
                                     folder / CONFUSION_FILE, f"{self.model} on {self.data}")
                written.append(folder / CONFUSION_FILE)
            elif self.truth is not None and self.predicted is not None:
                plots.draw_residuals(self.truth, self.predicted, folder / RESIDUALS_FILE,
                                     f"{self.model} on {self.data}")
                written.append(folder / RESIDUALS_FILE)
        except ModuleNotFoundError as exc:  # the runtime extra has no matplotlib
            if (exc.name or "").split(".")[0] != "matplotlib":
                raise
            self.notes.append("the pictures need matplotlib, which is not installed: "
                              "pip install matplotlib")
        return written
