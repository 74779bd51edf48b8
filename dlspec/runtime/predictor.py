"""`Predictor`: an ONNX model in an onnxruntime session, fed raw inputs in batches.

Inputs are checked against the model (per-sample shape and dtype), normalised with the
statistics the model was trained with (`dlspec_normalization`; both in `inputs.py`), and run
batch by batch. Classifier logits become class indices, labels and probabilities. Nothing
here imports torch.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlspec.contract import (
    IMAGES,
    INPUTS,
    NORMALIZATION,
    OUTPUTS,
    TASK,
    Metadata,
    Task,
    TensorInfo,
    format_shape,
    metadata_error,
    read_metadata,
)
from dlspec.errors import Problem, SpecError, WorkError
from dlspec.runfiles import ONNX
from dlspec.runtime.inputs import (
    ORT_TYPES,
    Inputs,
    check_batch_bytes,
    check_statistics,
    checked_inputs,
    normalized,
    padded,
)
from dlspec.runtime.untrusted import excerpt, has_hidden, printable

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
PROVIDER_CHOICES = ("auto", "cpu", "cuda")


@dataclass
class Classification:
    """A classifier's verdicts: per sample the class index, its label and every probability."""

    output: str
    labels: list[str]
    indices: np.ndarray
    probabilities: np.ndarray

    @property
    def classes(self) -> list[str]:
        """The label of each sample's class."""
        return [self.labels[i] for i in self.indices.tolist()]

    @property
    def confidence(self) -> np.ndarray:
        """The probability of each sample's class."""
        return np.take_along_axis(self.probabilities, self.indices[:, None], axis=1)[:, 0]


class Predictor:
    """An exported model ready to predict; no torch involved.

    Example:
        predictor = Predictor("runs/lenet5/model.onnx")     # provider "auto"
        logits = predictor.predict(images)["output"]         # images: (N, 1, 32, 32) in [0, 1]
        predictor.classify(images).classes                   # ['7', '2', ...]
    """

    def __init__(self, model_path: str | Path, providers: str | Sequence[str] = "auto", *,
                 threads: int | None = None, session_options: Any = None):
        """Open `model_path` with onnxruntime.

        `providers`: "cpu", "cuda", "auto" (CUDA when onnxruntime offers it, else CPU) or a
        list of onnxruntime provider names. `threads` sets intra-op threads (default:
        onnxruntime's own); `session_options` is an `onnxruntime.SessionOptions` to start from.
        """
        ort = import_onnxruntime()
        self.path = model_file(Path(model_path))
        self.requested = resolve_providers(providers, ort.get_available_providers())
        self.session = _open_session(ort, self.path, _options(ort, session_options, threads),
                                     self.requested)
        self.provider: str = self.session.get_providers()[0]
        if isinstance(providers, str) and providers.lower() == "cuda" and self.provider != CUDA:
            raise WorkError(Problem((), f"CUDA was asked for, but onnxruntime runs {self.path} "
                                    f"on {self.provider}", "check the CUDA and cuDNN libraries "
                                    "onnxruntime-gpu needs, or use --provider auto"))
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata: Metadata = read_metadata(dict(meta), str(self.path))
        self.inputs = _merge(self.session.get_inputs(), self.metadata.inputs, self.path, "input")
        self.outputs = _merge(self.session.get_outputs(), self.metadata.outputs, self.path,
                              "output")
        for info in (*self.inputs, *self.outputs):
            if has_hidden(info.name):
                raise SpecError(Problem((), f"{printable(str(self.path))}: a tensor is named "
                                        f"{printable(info.name)!r}, with control or invisible "
                                        "characters", "rename the model's inputs and outputs"))
        self._check_metadata()
        self.classified_output = self._classified_output()
        self._fixed_batch = _fixed_batch(self.session.get_inputs())
        check_batch_bytes(self.path, (*self.inputs, *self.outputs), self._fixed_batch)

    @property
    def task(self) -> Task | None:
        """What the model was trained to do (None for a model without dlspec metadata)."""
        return self.metadata.task

    @property
    def labels(self) -> list[str] | None:
        """Class names of a classifier, in class-index order; None for other models."""
        if self.classified_output is None or self.task is None:
            return None
        if self.task.labels is not None:
            return list(self.task.labels)
        if self.task.binary:
            return ["0", "1"]
        count = self._output(self.classified_output).shape[-1]
        return None if count is None else [str(i) for i in range(count)]

    @property
    def is_classifier(self) -> bool:
        """Whether `classify` applies: the model's task is classification of one output."""
        return self.classified_output is not None

    def predict(self, inputs: Inputs, batch_size: int = 256, *,
                normalize: bool = True) -> dict[str, np.ndarray]:
        """Run the model; returns output name → array with one row per sample.

        `inputs` is an array (a single-input model) or a mapping input name → array, raw
        (as loaded): the metadata's normalisation is applied unless `normalize` is False.
        A model exported with a fixed batch size is fed batches of that size (zero-padded).
        """
        if batch_size < 1:
            raise SpecError(Problem((), f"batch size {batch_size} is not a positive integer"))
        arrays = self.prepare(inputs)
        count = len(next(iter(arrays.values())))
        step = self._fixed_batch or batch_size
        names = [output.name for output in self.outputs]
        parts: list[list[np.ndarray]] = [[] for _ in names]
        for start in range(0, count, step):
            feed = {name: array[start:start + step] for name, array in arrays.items()}
            if normalize:
                feed = {name: normalized(self.path, name, array,
                                         self.metadata.normalization.get(name))
                        for name, array in feed.items()}
            taken = min(step, count - start)
            if self._fixed_batch:
                feed = {name: padded(array, step) for name, array in feed.items()}
            for part, value in zip(parts, self._run(names, feed), strict=True):
                part.append(value[:taken])
        return {name: np.concatenate(part) for name, part in zip(names, parts, strict=True)}

    def classify(self, inputs: Inputs, batch_size: int = 256) -> Classification:
        """Predict and read the classifier's logits as classes and probabilities."""
        return self.classify_outputs(self.predict(inputs, batch_size))

    def classify_outputs(self, outputs: Mapping[str, np.ndarray]) -> Classification:
        """Classes and probabilities from outputs `predict` returned."""
        if self.classified_output is None:
            what = self.task.type if self.task else "no task in its metadata"
            raise SpecError(Problem((), f"{self.path} is not a classifier ({what})",
                                    "use predict() for its raw outputs"))
        name = self.classified_output
        logits = np.asarray(outputs[name], dtype=np.float32)
        assert self.task is not None
        if self.task.binary:
            return self._binary(name, logits.reshape(len(logits)))
        probabilities = _softmax(logits)
        labels = self.labels or [str(i) for i in range(logits.shape[-1])]
        if len(labels) != logits.shape[-1]:
            raise self._metadata_error(TASK, f"has {len(labels)} labels but output "
                                       f"{name} gives {logits.shape[-1]} logits per sample")
        return Classification(name, labels, probabilities.argmax(axis=-1), probabilities)

    def prepare(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """The inputs by name, checked against the model and cast to its dtypes."""
        arrays = checked_inputs(self.inputs, inputs)
        for name, array in arrays.items():
            check_statistics(self.path, name, array, self.metadata.normalization.get(name))
        return arrays

    def _run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            values = self.session.run(names, feed)
        except Exception as error:
            raise WorkError(Problem((), f"{self.path}: onnxruntime failed: "
                                    f"{_first_line(error)}")) from None
        for name, value in zip(names, values, strict=True):
            if not isinstance(value, np.ndarray):
                raise WorkError(Problem((name,), f"output is a {type(value).__name__}, not a "
                                        "tensor; predict handles tensor outputs only"))
        return list(values)

    def _binary(self, name: str, logits: np.ndarray) -> Classification:
        assert self.task is not None
        with np.errstate(all="ignore"):  # a NaN logit stays NaN, without a warning
            positive = np.exp(-np.logaddexp(0.0, -logits)).astype(np.float32)
        probabilities = np.stack([1 - positive, positive], axis=1)
        indices = (positive >= self.task.threshold).astype(np.int64)
        return Classification(name, self.labels or ["0", "1"], indices, probabilities)

    def _classified_output(self) -> str | None:
        task = self.task
        if task is None or not task.is_classifier:
            return None
        if task.output is None and len(self.outputs) != 1:
            return None
        name = task.output or self.outputs[0].name
        per_sample = self._output(name).per_sample
        if task.binary and per_sample not in ((), (1,), (None,)):
            raise self._metadata_error(TASK, f"is binary, but output {name} gives "
                                       f"{format_shape(per_sample)} values per sample, not one")
        if not task.binary and len(per_sample) != 1:
            return None
        count = per_sample[-1] if per_sample else None
        if task.labels and count is not None and not task.binary and len(task.labels) != count:
            raise self._metadata_error(TASK, f"has {len(task.labels)} labels but "
                                       f"output {name} gives {count} logits per sample")
        return name

    def _check_metadata(self) -> None:
        names = {info.name for info in self.inputs}
        for key, entries in ((NORMALIZATION, self.metadata.normalization),
                             (IMAGES, self.metadata.images)):
            for name in entries:
                if name not in names:
                    raise self._metadata_error(key, f"names input {excerpt(name, 40)}, which "
                                               "the model does not have "
                                               f"({', '.join(sorted(names))})")
        output = self.task.output if self.task else None
        if output is not None and output not in {info.name for info in self.outputs}:
            raise self._metadata_error(TASK, f"names output {excerpt(output, 40)}, "
                                       "which the model does not have")

    def _output(self, name: str) -> TensorInfo:
        return next(info for info in self.outputs if info.name == name)

    def _metadata_error(self, key: str, message: str) -> SpecError:
        return metadata_error(self.path, key, message)


def import_onnxruntime() -> Any:
    """The onnxruntime module; WorkError with the install command when it is missing."""
    try:
        import onnxruntime
    except ImportError:
        raise WorkError(Problem((), "running ONNX models needs onnxruntime, which is not "
                                "installed", "pip install 'dlspec[runtime]' (onnxruntime-gpu "
                                "for CUDA)")) from None
    return onnxruntime


def model_file(path: Path) -> Path:
    """The model at `path`, or `path/model.onnx` for a run folder; SpecError when missing."""
    if path.is_dir() and (path / ONNX).is_file():
        return path / ONNX
    if not path.is_file():
        what = "is a folder without model.onnx" if path.is_dir() else "not found"
        raise SpecError(Problem((), f"model {path} {what}",
                                "export one with `dlspec export SPEC`"))
    return path


def resolve_providers(providers: str | Sequence[str], available: Sequence[str]) -> list[str]:
    """onnxruntime provider names, most preferred first, for "cpu", "cuda", "auto" or a list."""
    if isinstance(providers, str):
        choice = providers.lower()
        if choice == "cpu":
            return [CPU]
        if choice == "auto":
            return [CUDA, CPU] if CUDA in available else [CPU]
        if choice == "cuda":
            if CUDA not in available:
                raise SpecError(Problem((), "provider cuda was asked for, but this onnxruntime "
                                        f"offers only {', '.join(available)}",
                                        "install onnxruntime-gpu, or use --provider auto"))
            return [CUDA, CPU]
        providers = [providers]
    for name in providers:
        if name not in available:
            close = difflib.get_close_matches(name, [*PROVIDER_CHOICES, *available], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise SpecError(Problem((), f"unknown or unavailable provider {name!r}",
                                    f"{hint}use {', '.join(PROVIDER_CHOICES)} or one of "
                                    f"{', '.join(available)}"))
    return list(providers)


def _options(ort: Any, given: Any, threads: int | None) -> Any:
    options = given if given is not None else ort.SessionOptions()
    if given is None:
        options.log_severity_level = 3
    if threads is not None:
        if threads < 1:
            raise SpecError(Problem((), f"threads {threads} is not a positive integer"))
        options.intra_op_num_threads = threads
    return options


# onnxruntime's errors that say the model file is wrong (exit 2) rather than the machine
# (a provider that fails, memory): its error classes by name, and the texts of older releases
_MODEL_ERRORS = ("InvalidProtobuf", "InvalidArgument", "InvalidGraph", "NoModel", "NoSuchFile",
                 "NotImplemented")
_MODEL_TEXTS = ("INVALID_PROTOBUF", "Protobuf parsing failed", "INVALID_ARGUMENT",
                "INVALID_GRAPH", "NO_MODEL", "NOT_IMPLEMENTED", "External data",
                "external data")


def _open_session(ort: Any, path: Path, options: Any, providers: list[str]) -> Any:
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:
        text = printable(_first_line(error))
        text = text if len(text) <= 300 else text[:300] + "…"
        if "INVALID_PROTOBUF" in text or "Protobuf parsing failed" in text:
            raise SpecError(Problem((), f"{printable(str(path))} is not an ONNX model (it does "
                                    "not parse)", "export one with `dlspec export SPEC`")) from None
        if type(error).__name__ in _MODEL_ERRORS or any(t in text for t in _MODEL_TEXTS):
            raise SpecError(Problem((), f"onnxruntime cannot load {printable(str(path))}: "
                                    f"{text}", "export one with `dlspec export SPEC`")) from None
        raise WorkError(Problem((), f"onnxruntime cannot load {printable(str(path))}: "
                                f"{text}")) from None


_KEYS = {"input": INPUTS, "output": OUTPUTS}


def _merge(nodes: Sequence[Any], declared: list[TensorInfo] | None, path: Path,
           what: str) -> list[TensorInfo]:
    """The session's inputs or outputs, with shapes refined by the metadata's."""
    by_name = {info.name: info for info in declared or []}
    names = [node.name for node in nodes]
    extra = sorted(set(by_name) - set(names))
    if extra:
        raise metadata_error(path, _KEYS[what], f"names {what} "
                             f"{excerpt(extra[0], 40)}, which the model does not have "
                             f"({', '.join(names)})")
    merged = []
    for node in nodes:
        dims = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape or [])
        meta = by_name.get(node.name)
        if meta is not None and len(meta.shape) == len(dims):
            if any(d is not None and m is not None and d != m
                   for d, m in zip(dims[1:], meta.shape[1:], strict=True)):
                raise metadata_error(path, _KEYS[what], f"gives {what} {node.name} the "
                                     f"shape {format_shape(meta.shape[1:])} per sample, but "
                                     f"the model's is {format_shape(dims[1:])}")
            dims = tuple(d if d is not None else m for d, m in zip(dims, meta.shape, strict=True))
        merged.append(TensorInfo(node.name, dims, ORT_TYPES.get(node.type, node.type)))
    return merged


def _fixed_batch(nodes: Sequence[Any]) -> int | None:
    """The batch size a model exported without a dynamic batch axis insists on."""
    for node in nodes:
        if node.shape and isinstance(node.shape[0], int) and node.shape[0] > 0:
            return int(node.shape[0])
    return None


def _softmax(logits: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):  # a model's NaN or infinite logits give NaN, no warning
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
