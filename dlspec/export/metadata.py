"""What an exported model carries for deployment, and what a run folder keeps for it.

The `dlspec_*` metadata keys and the shape of their values are defined once, in
`dlspec.contract` (torch-free, read by `dlspec.runtime`); `metadata_props` fills a
`contract.Metadata` from the spec, the exported network and what training learnt about the
data (`DeploymentInfo`, kept in a run folder's data.json) and writes it through the contract.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlspec import contract
from dlspec.graph import ShapedGraph
from dlspec.runfiles import DATA_INFO as DATA_FILE
from dlspec.spec.model import Spec
from dlspec.tasks import classifying_tasks


@dataclass
class TensorSpec:
    """One input or output of an exported model."""

    name: str
    shape: list[int | None]  # None: a dynamic axis
    dtype: str

    def describe(self) -> str:
        """'image [batch, 1, 32, 32] float32'."""
        dims = ", ".join("dynamic" if d is None else str(d) for d in self.shape)
        return f"{self.name} [{dims}] {self.dtype}"


@dataclass
class DeploymentInfo:
    """What training learnt about the data that inference must repeat."""

    labels: list[str] | None = None
    normalization: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    image_inputs: list[str] = field(default_factory=list)
    # a GAN generator: how its noise is drawn and how its outputs map back to data
    generator: dict[str, Any] | None = None
    # CycleGAN generators by network: {"input": stats, "output": stats} of their source and
    # target domains (each may be None)
    translations: dict[str, dict[str, Any]] | None = None

    def save(self, folder: Path) -> Path:
        """Write data.json into a run folder."""
        path = folder / DATA_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def beside(cls, checkpoint: Path) -> DeploymentInfo | None:
        """The data.json of the run a checkpoint belongs to, if there is one.

        A run folder may come from anyone: a data.json that is a link, too large, not JSON
        or not shaped as `save` writes it is a FileError (exit 2) naming the file.
        """
        folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
        path = folder / DATA_FILE
        if not path.is_symlink() and not path.exists():
            return None
        data = _read_data_file(path)
        return cls(data.get("labels"), data.get("normalization") or {},
                   data.get("image_inputs") or [], data.get("generator"),
                   data.get("translations"))


MAX_DATA_FILE_BYTES = 16 * 2**20  # labels of a million classes fit; a planted huge file not
_DATA_FILE_HINT = "it is written by `dlspec train`; train again, or remove it to export without it"


def _read_data_file(path: Path) -> dict[str, Any]:
    """data.json's content, checked against what `DeploymentInfo.save` writes."""
    from dlspec.errors import FileError, Problem

    def bad(why: str) -> FileError:
        return FileError(Problem((), f"cannot use {path}: {why}", _DATA_FILE_HINT))

    if path.is_symlink() or not path.is_file():
        raise bad("it is a link or not a regular file")
    if path.stat().st_size > MAX_DATA_FILE_BYTES:
        raise bad(f"{path.stat().st_size:,} bytes is more than a run's data.json holds "
                  f"(at most {MAX_DATA_FILE_BYTES:,})")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise bad(f"it is not JSON ({str(exc)[:120]})") from None
    except OSError as exc:
        raise bad((exc.strerror or str(exc)).lower()) from None
    if not isinstance(data, dict):
        raise bad(f"it holds a JSON {type(data).__name__}, not an object")
    for key, valid in _DATA_FIELDS.items():
        if data.get(key) is not None and not valid(data[key]):
            raise bad(f"its {key} is not {_DATA_SHAPES[key]}")
    return data


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value)


def _stats(value: Any) -> bool:
    """{"mean": [...], "std": [...]} (and an optional axis), or null."""
    return value is None or (isinstance(value, dict) and _numbers(value.get("mean"))
                             and _numbers(value.get("std")))


_DATA_FIELDS = {
    "labels": lambda v: isinstance(v, list) and all(
        isinstance(x, str | int | float) for x in v),
    "normalization": lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and _stats(s) and s is not None for k, s in v.items()),
    "image_inputs": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "generator": lambda v: isinstance(v, dict),
    "translations": lambda v: isinstance(v, dict) and all(
        isinstance(t, dict) and _stats(t.get("input")) and _stats(t.get("output"))
        for t in v.values()),
}
_DATA_SHAPES = {
    "labels": "a list of class names",
    "normalization": 'an object {input: {"mean": [numbers], "std": [numbers]}}',
    "image_inputs": "a list of input names",
    "generator": "an object",
    "translations": 'an object {network: {"input": stats or null, "output": stats or null}}',
}


def spec_hash(spec: Spec) -> str:
    """SHA-256 of the spec's content: the same for the same spec however it is laid out."""
    content = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def metadata_props(spec: Spec, shaped: ShapedGraph,
                   interface: tuple[list[TensorSpec], list[TensorSpec]],
                   info: DeploymentInfo | None) -> dict[str, str]:
    """The metadata entries of an exported network."""
    return deployment_metadata(spec, shaped, interface, info).to_props()


def deployment_metadata(spec: Spec, shaped: ShapedGraph,
                        interface: tuple[list[TensorSpec], list[TensorSpec]],
                        info: DeploymentInfo | None) -> contract.Metadata:
    """The metadata of an exported network, typed as the contract defines it.

    What training left in `info` goes through the runtime's own checks, so a file is never
    written with metadata that `dlspec predict` would refuse.
    """
    from dlspec import __version__

    inputs, outputs = interface
    meta = contract.Metadata(
        version=__version__, spec=spec.name, spec_sha256=spec_hash(spec),
        network=shaped.graph.name,
        inputs=[contract.TensorInfo(t.name, tuple(t.shape), t.dtype) for t in inputs],
        outputs=[contract.TensorInfo(t.name, tuple(t.shape), t.dtype) for t in outputs],
        task=_task(spec, shaped, info))
    if info is None:
        return meta
    decode = contract.Decoder(f"the run's {DATA_FILE}", _DATA_FILE_HINT)
    translation = (info.translations or {}).get(shaped.graph.name)
    if translation is not None:  # a CycleGAN generator reads its own domain's statistics
        (source,) = shaped.graph.inputs
        if translation["input"] is not None:
            meta.normalization = decode.normalization({source: translation["input"]})
        meta.translation = decode.translation({"output_normalization": translation["output"]})
    elif info.normalization:
        meta.normalization = decode.normalization(info.normalization)
    meta.images = {name: _image(shaped.graph.inputs[name].shape)
                   for name in info.image_inputs if name in shaped.graph.inputs}
    meta.generator = decode.generator(info.generator)
    return meta


def _image(shape: tuple[int, ...]) -> contract.ImageSpec:
    """How an input of one (C, H, W) image was loaded in training."""
    channels, height, width = shape
    return contract.ImageSpec(channels, (height, width))


def _task(spec: Spec, shaped: ShapedGraph, info: DeploymentInfo | None) -> contract.Task | None:
    """What the network was trained to do: the labels training found, or the spec's."""
    if spec.task is None:
        return None
    labels = (info.labels if info is not None and info.labels else None) or spec.task.labels
    shapes = [tuple(info_.shape) for info_ in shaped.outputs().values()]
    binary = (spec.task.type in classifying_tasks()
              and len(shapes) == 1 and shapes[0] in ((1,), ()))
    return contract.Task(spec.task.type, [str(label) for label in labels] if labels else None,
                         binary, _classified_output(spec, shaped), spec.task.threshold or 0.5)


def _classified_output(spec: Spec, shaped: ShapedGraph) -> str | None:
    """The output holding class logits: the only one, or the first shaped like the classes."""
    outputs = shaped.outputs()
    if spec.task is None or spec.task.type not in classifying_tasks():
        return None
    if len(outputs) == 1:
        return next(iter(outputs))
    classes = spec.task.num_classes or (len(spec.task.labels) if spec.task.labels else None)
    wanted = [(classes,)] + ([(1,), ()] if classes == 2 else [])
    return next((name for name, info in outputs.items() if tuple(info.shape) in wanted), None)
