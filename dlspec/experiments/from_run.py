"""A run folder's network rebuilt with torch and scored: on its spec's test split, loaded as
training loads it (same seed, same split, normalisation from the training split), or on
labelled DATA, read as for its exported model and normalised with the run's statistics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

import dlspec
from dlspec.api import located
from dlspec.compile import compile_graph
from dlspec.data.lazy import LazyColumn
from dlspec.errors import FileError, Problem, SpecError
from dlspec.experiments.evaluate import RUN_SPEC, Options, scored, unsupported
from dlspec.experiments.labelled import Reading, read_labelled
from dlspec.experiments.scoring import Evaluation
from dlspec.export.exporter import load_weights
from dlspec.export.metadata import DeploymentInfo, TensorSpec, deployment_metadata
from dlspec.runfiles import WEIGHTS
from dlspec.runtime.inputs import checked_inputs, normalized
from dlspec.runtime.readers import label_columns_beside
from dlspec.runtime.untrusted import printable
from dlspec.spec.paths import path_problem
from dlspec.tasks import get_task, task_has
from dlspec.tasks.supervised import SupervisedTask
from dlspec.train.record import ENVIRONMENT

if TYPE_CHECKING:
    from dlspec.data import DataSplits
    from dlspec.graph import ShapedGraph
    from dlspec.spec.model import Spec


_MAX_ENVIRONMENT_BYTES = 2**20


def evaluate_run(run: Path, data: Path | None, options: Options) -> Evaluation:
    """Score the run folder's model on its test split (`data` None) or on `data`."""
    shown = printable(str(run))
    weights = run / WEIGHTS
    if not weights.is_file():
        raise FileError(Problem((), f"run {shown} has no {WEIGHTS}: none of its epochs "
                                "finished", "train it (or `--resume` it) first"))
    spec = dlspec.load(run / RUN_SPEC)
    shaped = _network(spec, shown)
    ((output, info),) = shaped.outputs().items()
    assert spec.task is not None  # _network refused a spec without one
    classifies = task_has(spec.task.type, "classifies")
    binary = classifies and tuple(info.shape) in ((1,), ())
    model = compile_graph(shaped)
    load_weights(model, weights)
    model.eval()
    deployment = DeploymentInfo.beside(run)
    if data is None:
        splits = _test_split(spec, shaped, run, options.spec_dir)
        assert splits.test is not None
        inputs: dict[str, torch.Tensor | LazyColumn] = dict(splits.test.inputs)
        truth = splits.test.targets[output].cpu().numpy()
        classes = (splits.labels or (deployment.labels if deployment else None)
                   or _indices(info.shape, binary)) if classifies else None
        described, source = "its test split", splits.source
    else:
        meta = deployment_metadata(spec, shaped, _interface(shaped), deployment)
        assert meta.inputs is not None and meta.task is not None
        classes = ((meta.task.labels or _indices(info.shape, binary)) if classifies
                   else None)
        reading = Reading(meta.inputs, meta.images, classes, label_columns_beside(run / WEIGHTS))
        labelled = read_labelled(data, reading, options.label_column)
        arrays = checked_inputs(meta.inputs, labelled.samples.arrays)
        inputs = {name: torch.from_numpy(np.ascontiguousarray(normalized(
            run, name, array, meta.normalization.get(name)))) for name, array in arrays.items()}
        truth = labelled.truth
        described, source = f"{printable(str(data))} (labels: {labelled.source})", ""
    outputs = _forward(model, [inputs[name] for name in shaped.graph.inputs],
                       options.batch_size)
    if classes is None:
        evaluation = scored(str(run), described, spec.task.type,
                            truth.reshape(len(truth), -1), outputs, None)
    else:
        threshold = spec.task.threshold or 0.5
        evaluation = scored(str(run), described, spec.task.type,
                            truth.reshape(-1).astype(np.int64),
                            predicted_classes(outputs, binary, threshold), classes)
    evaluation.source = source
    return evaluation


def _network(spec: Spec, shown: str) -> ShapedGraph:
    """The run's one network with one output, of a task evaluate scores."""
    if spec.task is None:
        raise SpecError(Problem((), f"run {shown}: its spec has no task"))
    shaped = dlspec.shapes(spec)
    task = spec.task.type
    if len(shaped) != 1 or not (task_has(task, "classifies") or task_has(task, "predicts_values")):
        raise unsupported(f"run {shown}", task)
    (network,) = shaped.values()
    outputs = network.outputs()
    if len(outputs) != 1:
        raise SpecError(Problem((), f"run {shown}: its network has {len(outputs)} outputs "
                                f"({', '.join(outputs)}); evaluate scores networks with one",
                                "its test numbers per output are in its metrics.json"))
    return network


def _test_split(spec: Spec, shaped: ShapedGraph, run: Path, spec_dir: Path | None,
                ) -> DataSplits:
    """The spec's data loaded as training loads it; SpecError when it has no test split."""
    task = get_task(spec.task.type) if spec.task is not None else None
    if spec.data is None or not isinstance(task, SupervisedTask):
        raise SpecError(Problem((), f"run {printable(str(run))}: its spec has no data",
                                "give labelled DATA to evaluate on"))
    base = spec_dir or _data_base(spec, run)
    with located(spec.document):
        splits: DataSplits = task.load(spec, shaped, base)
    if splits.test is None or len(splits.test) == 0:
        raise SpecError(Problem((), f"run {printable(str(run))} has no test split (its "
                                "data.split gives the test none)", "give labelled DATA to "
                                "evaluate on"))
    return splits


def _data_base(spec: Spec, run: Path) -> Path:
    """Where the run's data paths start: the first of the run folder, the folder of the spec
    it was trained from (as its environment.json records it) and the current folder that
    holds its data (`--spec-dir` says it otherwise)."""
    assert spec.data is not None
    written = next((getattr(spec.data, key) for key in ("csv", "npz", "image_folder", "shards")
                    if getattr(spec.data, key) is not None), None)
    if written is None:
        return run
    for base in (run, *_trained_from(run), Path.cwd()):
        if (base / written).exists():
            return base
    raise FileError(Problem((), f"the data of run {printable(str(run))}, {printable(written)}, "
                            "is not in the run folder, the folder of the spec it was trained "
                            "from or the current folder", "give --spec-dir, the folder of "
                            "the spec the run was trained from, or labelled DATA"))


def _trained_from(run: Path) -> list[Path]:
    """The folder of the spec file the run was trained from, when its environment.json
    names one by a relative path (taken from the current folder). The file is untrusted: an
    absolute path, or one climbing out with `..`, is passed over, so a run folder cannot
    send the reader elsewhere."""
    path = run / ENVIRONMENT
    try:
        if not path.is_file() or path.stat().st_size > _MAX_ENVIRONMENT_BYTES:
            return []
        record = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return []
    spec_file = record.get("spec_file") if isinstance(record, dict) else None
    if not isinstance(spec_file, str) or not spec_file or path_problem(spec_file):
        return []
    return [Path(spec_file).parent]


def _interface(shaped: ShapedGraph) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The network's inputs and outputs as an exported model declares them."""
    inputs = [TensorSpec(name, [None, *decl.shape], decl.dtype)
              for name, decl in shaped.graph.inputs.items()]
    outputs = [TensorSpec(name, [None, *info.shape], "float32")
               for name, info in shaped.outputs().items()]
    return inputs, outputs


def _indices(shape: tuple[int, ...], binary: bool) -> list[str]:
    """Class names for a classifier without labels: its class indices."""
    count = 2 if binary else int(shape[-1])
    return [str(i) for i in range(count)]


def _forward(model: torch.nn.Module, inputs: list[torch.Tensor | LazyColumn],
             batch_size: int) -> np.ndarray:
    """The model's output over all samples, in batches, as a float32 array (inputs read
    from files are read a batch at a time)."""
    count = len(inputs[0])
    parts = []
    with torch.inference_mode():
        for start in range(0, count, batch_size):
            batch = [x[start:start + batch_size] for x in inputs]
            output = model(*(x.materialize() if isinstance(x, LazyColumn) else x
                             for x in batch))
            parts.append(output.float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


def predicted_classes(logits: np.ndarray, binary: bool, threshold: float) -> np.ndarray:
    """Class indices from logits: argmax, or a binary logit's probability ≥ threshold (as
    `dlspec predict` decides)."""
    if binary:
        with np.errstate(all="ignore"):
            positive = np.exp(-np.logaddexp(0.0, -logits.reshape(len(logits))))
        return (positive >= threshold).astype(np.int64)
    return logits.argmax(axis=-1).astype(np.int64)
