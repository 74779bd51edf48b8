"""`dlspec evaluate`: a trained model scored on labelled data.

    a run folder    the network rebuilt from its spec.resolved.yaml with model.safetensors
                    (torch; `from_run.py`), scored on the spec's test split, or on DATA
    an .onnx file   run in ONNX Runtime (no torch), scored on DATA

DATA is read the same way for both (`labelled.py`): the same file scores the same from a
run and from its exported model. Classifiers and regressors are scored (`scoring.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlspec.errors import Problem, SpecError
from dlspec.experiments.labelled import Reading, read_labelled
from dlspec.experiments.scoring import Evaluation, class_scores, value_scores
from dlspec.runfiles import ONNX
from dlspec.runfiles import RESOLVED_SPEC as RUN_SPEC
from dlspec.runtime.untrusted import printable

DEFAULT_FOLDER = "evaluation"  # in the run folder for a run, in the current folder for a model


@dataclass
class Options:
    """How to evaluate."""

    label_column: str | None = None  # DATA's label column (NPZ: array); default: see labelled
    batch_size: int = 256
    provider: str = "auto"  # onnxruntime's, for a model
    spec_dir: Path | None = None  # where a run's data paths start (its spec's folder)


def is_run(target: Path) -> bool:
    """Whether `target` is evaluated as a run folder (torch) rather than an ONNX model."""
    return target.is_dir() and (target / RUN_SPEC).exists()


def default_output(target: Path) -> Path:
    """Where the results go without -o: the run's evaluation/ folder, or ./evaluation/."""
    return target / DEFAULT_FOLDER if is_run(target) else Path(DEFAULT_FOLDER)


def evaluate(target: Path, data: Path | None = None,
             options: Options | None = None) -> Evaluation:
    """Score the run folder or ONNX model at `target` on `data` (a run: its test split by
    default).

    Example:
        >>> evaluation = evaluate(Path("runs/lenet5"))
        >>> evaluation.metrics["accuracy"]
        0.97...
        >>> evaluate(Path("runs/lenet5/model.onnx"), Path("test.csv")).metrics["accuracy"]
        0.97...
    """
    options = options or Options()
    if is_run(target):
        from dlspec.experiments.from_run import evaluate_run  # imports torch

        return evaluate_run(target, data, options)
    return evaluate_model(target, data, options)


def evaluate_model(path: Path, data: Path | None, options: Options) -> Evaluation:
    """Score an exported ONNX model on labelled data, with onnxruntime and numpy only."""
    from dlspec.runtime.predictor import Predictor
    from dlspec.runtime.readers import label_columns_beside
    from dlspec.tasks import task_has

    if path.is_dir() and not (path / ONNX).exists():
        raise SpecError(Problem((), f"{printable(str(path))} is neither a run folder (it has "
                                f"no {RUN_SPEC}) nor holds a model.onnx",
                                "give a run folder or an .onnx file"))
    predictor = Predictor(path, options.provider)
    task = predictor.task
    shown = printable(str(predictor.path))
    if task is None:
        raise SpecError(Problem((), f"{shown} carries no dlspec metadata, so what it predicts "
                                "is unknown", "export it with `dlspec export`, or evaluate its "
                                "run folder"))
    if data is None:
        raise SpecError(Problem((), f"evaluating the model {shown} needs labelled DATA (a "
                                "CSV, NPZ or folder of images)", "the test split is known only "
                                "to its run: evaluate the run folder instead"))
    if predictor.is_classifier:
        classes = predictor.labels
        if classes is None:
            raise SpecError(Problem((), f"{shown}: its output's number of classes is not "
                                    "fixed", "re-export the model with `dlspec export`"))
    elif task_has(task.type, "predicts_values") and len(predictor.outputs) == 1:
        classes = None
    else:
        raise unsupported(shown, task.type)
    reading = Reading(predictor.inputs, predictor.metadata.images, classes,
                      label_columns_beside(predictor.path))
    labelled = read_labelled(data, reading, options.label_column)
    outputs = predictor.predict(labelled.samples.arrays, batch_size=options.batch_size)
    described = f"{printable(str(data))} (labels: {labelled.source})"
    if classes is not None:
        predicted = predictor.classify_outputs(outputs).indices
        return scored(str(predictor.path), described, task.type, labelled.truth, predicted,
                      classes)
    values = outputs[predictor.outputs[0].name]
    return scored(str(predictor.path), described, task.type, labelled.truth, values, None)


def unsupported(shown: str, task: str) -> SpecError:
    """The error for a model evaluate cannot score."""
    return SpecError(Problem((), f"{shown} is a {task} model; evaluate scores classifiers "
                             "(one class a sample) and regressors with one output",
                             "use `dlspec predict` for its outputs"))


def scored(model: str, data: str, task: str, truth: np.ndarray, outputs: np.ndarray,
           classes: list[str] | None) -> Evaluation:
    """The evaluation of predictions against labels: `outputs` are class indices for a
    classifier (`classes` its names), values for a regressor."""
    if len(truth) == 0:
        raise SpecError(Problem((), f"{printable(data)} holds no samples"))
    if classes is not None:
        scores = class_scores(truth, outputs, classes)
        return Evaluation(model, data, task, len(truth), scores.metrics(), classes=scores)
    values = outputs.reshape(len(outputs), -1)
    if values.shape[1] != truth.shape[1]:
        raise SpecError(Problem((), f"{printable(data)}: the labels hold {truth.shape[1]} "
                                f"value(s) a sample, but the model predicts {values.shape[1]}",
                                "give one label column (NPZ: array) of the true values"))
    return Evaluation(model, data, task, len(truth), value_scores(truth, values),
                      truth=truth, predicted=values)
