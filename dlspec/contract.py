"""The ONNX metadata contract: every `dlspec_*` entry an exported model carries, defined once.

The exporter (`dlspec.export.metadata`) fills a `Metadata` and writes `metadata.to_props()`
into the file's `metadata_props`; the runtime (`dlspec.runtime`, without torch) reads them back
with `read_metadata`. A key is `dlspec_` + the name of its `Metadata` field; every value is a
string, JSON except the four plain ones:

| key | value |
| --- | --- |
| dlspec_version, dlspec_spec, dlspec_network | dlspec's version, the spec's and network's names |
| dlspec_spec_sha256 | hash of the spec's content (comments and layout excluded) |
| dlspec_inputs, dlspec_outputs | [{"name", "shape": [null (any size), d1, ...], "dtype"}] |
| dlspec_task | {"type", "labels": [...] or null, "binary": bool, "output": name or null, |
| | "threshold": 0 < t < 1}: classifiers output logits; binary: one logit |
| dlspec_normalization | {input: {"mean": [...], "std": [...], "axis"?: int ≥ 1}}, from training |
| dlspec_images | {input: {"channels": 1 or 3, "size": [h, w]}} for inputs trained on images |
| dlspec_generator | GAN generators: {"latent": {input: "normal" or "uniform"}, |
| | "output_normalization": stats or null, "images": bool, and when conditional |
| | "labels": {input: classes}, "class_names": [...] or null} |
| dlspec_translation | CycleGAN generators: {"output_normalization": stats or null}: the target |
| | domain's statistics, undone on the translated images |

Optional entries are left out when empty. Anything malformed is a SpecError naming the model
file and the key. Nothing here imports torch or the exporter.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dlspec.errors import Problem, SpecError
from dlspec.memory import format_bytes
from dlspec.runtime.untrusted import MAX_ARRAY_BYTES, MAX_IMAGE_PIXELS, printable

PREFIX = "dlspec_"
VERSION = "dlspec_version"
SPEC = "dlspec_spec"
SPEC_SHA256 = "dlspec_spec_sha256"
NETWORK = "dlspec_network"
INPUTS = "dlspec_inputs"
OUTPUTS = "dlspec_outputs"
TASK = "dlspec_task"
NORMALIZATION = "dlspec_normalization"
IMAGES = "dlspec_images"
GENERATOR = "dlspec_generator"
TRANSLATION = "dlspec_translation"

REEXPORT_HINT = "re-export the model with `dlspec export`"
_HINT = "re-export the model with `dlspec export`, or delete the dlspec_* metadata"


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: its name, shape (axis 0 is the batch; None: any size), dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"

    @property
    def per_sample(self) -> tuple[int | None, ...]:
        """The shape of one sample (without the batch axis)."""
        return self.shape[1:]

    def describe(self) -> str:
        """One sample's shape as `1×8×8` (`?` for an axis of any size, `scalar` for none)."""
        return format_shape(self.per_sample)

    def to_json(self) -> dict[str, Any]:
        """The entry as `dlspec_inputs` / `dlspec_outputs` hold it."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class Task:
    """What a model was trained to do; classifiers output raw logits."""

    type: str
    labels: list[str] | None = None
    binary: bool = False
    output: str | None = None  # the output holding class logits (classifiers)
    threshold: float = 0.5  # a binary classifier's decision threshold

    @property
    def is_classifier(self) -> bool:
        """Whether the model's (chosen) output holds class logits."""
        from dlspec.tasks import classifying_tasks  # the task table; imports no torch

        return self.type in classifying_tasks()

    def to_json(self) -> dict[str, Any]:
        """The value of `dlspec_task`."""
        return {"type": self.type, "labels": self.labels, "binary": self.binary,
                "output": self.output, "threshold": self.threshold}


@dataclass(frozen=True)
class ImageSpec:
    """How a model's image input was loaded in training: channels (1 or 3) and [H, W]."""

    channels: int
    size: tuple[int, int]

    def to_json(self) -> dict[str, Any]:
        """One input's entry in `dlspec_images`."""
        return {"channels": self.channels, "size": list(self.size)}


@dataclass(frozen=True)
class Normalization:
    """Statistics applied as (x - mean) / std; axis None: the input's own default axis."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    axis: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The statistics as `{"mean": [...], "std": [...]}` (and `axis` when set)."""
        entry: dict[str, Any] = {"mean": list(self.mean), "std": list(self.std)}
        if self.axis is not None:
            entry["axis"] = self.axis
        return entry


@dataclass(frozen=True)
class Generator:
    """A GAN generator: how its latent inputs are drawn and how its outputs become data."""

    latent: dict[str, str]  # input name → "normal" (N(0, 1)) or "uniform" (U(-1, 1))
    output_normalization: Normalization | None = None  # undone on the samples
    images: bool = False  # samples are (C, H, W) images with pixels in [0, 1]
    labels: dict[str, int] = field(default_factory=dict)  # conditional: input → classes
    class_names: list[str] | None = None  # a conditional generator's classes, by index

    def to_json(self) -> dict[str, Any]:
        """The value of `dlspec_generator`."""
        entry: dict[str, Any] = {"latent": self.latent,
                                 "output_normalization": _stats_json(self.output_normalization),
                                 "images": self.images}
        if self.labels:
            entry["labels"] = self.labels
            entry["class_names"] = self.class_names
        return entry


@dataclass(frozen=True)
class Translation:
    """A CycleGAN generator: its outputs are images of the target domain."""

    output_normalization: Normalization | None = None  # undone on the translated images

    def to_json(self) -> dict[str, Any]:
        """The value of `dlspec_translation`."""
        return {"output_normalization": _stats_json(self.output_normalization)}


@dataclass
class Metadata:
    """Everything dlspec writes into a model; empty for a model from elsewhere.

    Each field is one key, `dlspec_<field>`; None or empty fields are not written.
    """

    version: str | None = None
    spec: str | None = None
    spec_sha256: str | None = None
    network: str | None = None
    inputs: list[TensorInfo] | None = None
    outputs: list[TensorInfo] | None = None
    task: Task | None = None
    normalization: dict[str, Normalization] = field(default_factory=dict)
    images: dict[str, ImageSpec] = field(default_factory=dict)
    generator: Generator | None = None
    translation: Translation | None = None

    def to_props(self) -> dict[str, str]:
        """The `metadata_props` entries of this metadata, in field order."""
        props: dict[str, str] = {}
        for entry in fields(self):
            value = getattr(self, entry.name)
            if value is None or value == {}:
                continue
            props[PREFIX + entry.name] = value if isinstance(value, str) else json.dumps(
                _to_json(value))
        return props


def _to_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value.to_json()


def _stats_json(stats: Normalization | None) -> dict[str, Any] | None:
    return None if stats is None else stats.to_json()


KEYS = tuple(PREFIX + entry.name for entry in fields(Metadata))  # every key, in written order


def format_shape(shape: tuple[int | None, ...]) -> str:
    """`(1, 8, 8)` as `1×8×8`; None as `?`; `()` as `scalar`."""
    if not shape:
        return "scalar"
    return "×".join("?" if d is None else str(d) for d in shape)


def metadata_error(path: Path, key: str, message: str) -> SpecError:
    """SpecError for metadata of the model at `path` that parses but disagrees with the model."""
    return SpecError(Problem((), f"{path}: metadata {key} {message}", REEXPORT_HINT))


def read_metadata(props: dict[str, str], model: str) -> Metadata:
    """Parse the `dlspec_*` entries of a model's metadata map; `model` names it in errors."""
    decode = Decoder(model)

    def value(key: str, kind: type) -> Any:
        return decode.json(props.get(key), key, kind)

    return Metadata(
        version=props.get(VERSION),
        spec=props.get(SPEC),
        spec_sha256=props.get(SPEC_SHA256),
        network=props.get(NETWORK),
        inputs=decode.tensors(INPUTS, value(INPUTS, list)),
        outputs=decode.tensors(OUTPUTS, value(OUTPUTS, list)),
        task=decode.task(value(TASK, dict)),
        normalization=decode.normalization(value(NORMALIZATION, dict)),
        images=decode.images(value(IMAGES, dict)),
        generator=decode.generator(value(GENERATOR, dict)),
        translation=decode.translation(value(TRANSLATION, dict)),
    )


class Decoder:
    """Reads metadata values into their types, failing with the source and the key named.

    The runtime decodes a model's metadata; the exporter decodes what training left in a
    run's data.json through the same checks, so it never writes what the runtime refuses.
    """

    def __init__(self, source: str, hint: str = _HINT):
        self.source, self.hint = source, hint

    def fail(self, key: str, message: str) -> SpecError:
        """The error for a malformed value of `key`."""
        return SpecError(Problem((), f"{printable(self.source)}: metadata {key} {message}",
                                 self.hint))

    def json(self, text: str | None, key: str, kind: type) -> Any:
        """`text` parsed as JSON of type `kind` (None stays None)."""
        if text is None:
            return None
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as error:
            reason = "nested too deeply" if isinstance(error, RecursionError) else error
            raise self.fail(key, f"is not valid JSON ({_brief(str(reason), quote=False)})") \
                from None
        if not isinstance(value, kind):
            raise self.fail(key, f"is a JSON {type(value).__name__}, not a {kind.__name__}")
        return value

    def tensors(self, key: str, entries: list[Any] | None) -> list[TensorInfo] | None:
        """`dlspec_inputs` or `dlspec_outputs`."""
        if entries is None:
            return None
        return [self.tensor(key, entry) for entry in entries]

    def tensor(self, key: str, entry: Any) -> TensorInfo:
        """One entry of `dlspec_inputs` or `dlspec_outputs`."""
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise self.fail(key, f"entry {_brief(entry)} has no name")
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(_is_dim(d) for d in shape):
            raise self.fail(key, f"gives {_brief(entry['name'])} the shape {_brief(shape)}; "
                            "expected a list of sizes, null for an axis of any size")
        dtype = entry.get("dtype", "float32")
        if not isinstance(dtype, str):
            raise self.fail(key, f"gives {_brief(entry['name'])} the dtype {_brief(dtype)}")
        dims = tuple(d if isinstance(d, int) else None for d in shape)
        elements = math.prod(d for d in dims[1:] if d is not None)
        if elements * 4 > MAX_ARRAY_BYTES:
            raise self.fail(key, f"gives {_brief(entry['name'])} the shape {_brief(shape)}: "
                            f"{elements:,} values a sample, more than fit in the "
                            f"{format_bytes(MAX_ARRAY_BYTES)} dlspec uses at once")
        return TensorInfo(entry["name"], dims, dtype)

    def task(self, task: dict[str, Any] | None) -> Task | None:
        """`dlspec_task`."""
        if task is None:
            return None
        kind, labels = task.get("type"), task.get("labels")
        if not isinstance(kind, str):
            raise self.fail(TASK, f"has no type: {_brief(task)}")
        if labels is not None and not (isinstance(labels, list) and labels):
            raise self.fail(TASK, f"has labels {_brief(labels)}; expected a list or null")
        binary, output = task.get("binary", False), task.get("output")
        threshold = task.get("threshold")
        if threshold is None:
            threshold = 0.5
        if not isinstance(binary, bool) or not (output is None or isinstance(output, str)):
            raise self.fail(TASK, f"is malformed: {_brief(task)}")
        if not _is_number(threshold) or not 0 < threshold < 1:
            raise self.fail(TASK, f"has threshold {_brief(threshold)}; expected 0 < t < 1")
        if binary and labels is not None and len(labels) != 2:
            raise self.fail(TASK, f"is binary but has {len(labels)} labels")
        names = None if labels is None else [str(label) for label in labels]
        return Task(kind, names, binary, output, float(threshold))

    def normalization(self, entries: dict[str, Any] | None) -> dict[str, Normalization]:
        """`dlspec_normalization`."""
        return {name: self.statistics(NORMALIZATION, name, entry)
                for name, entry in (entries or {}).items()}

    def statistics(self, key: str, name: str, entry: Any) -> Normalization:
        """One set of statistics, `{"mean": [...], "std": [...]}` and an optional axis."""
        if not isinstance(entry, dict):
            raise self.fail(key, f"gives {_brief(name)} {_brief(entry)}; expected {{mean, std}}")
        mean: Any = entry.get("mean")
        std: Any = entry.get("std")
        axis: Any = entry.get("axis")
        if not _numbers(mean) or not _numbers(std) or len(mean) != len(std) or not mean:
            raise self.fail(key, f"gives {_brief(name)} mean {_brief(mean)} and std "
                            f"{_brief(std)}; expected two lists of numbers of one length")
        if not all(_finite(m) for m in mean) or not all(_finite(s) and s > 0 for s in std):
            raise self.fail(key, f"gives {_brief(name)} mean {_brief(mean)} and std "
                            f"{_brief(std)}; every value must be finite, every std positive")
        if axis is not None and not (isinstance(axis, int) and axis >= 1):
            raise self.fail(key, f"gives {_brief(name)} axis {_brief(axis)}; expected an axis ≥ 1")
        return Normalization(tuple(map(float, mean)), tuple(map(float, std)), axis)

    def images(self, entries: dict[str, Any] | None) -> dict[str, ImageSpec]:
        """`dlspec_images`."""
        return {name: self.image(name, entry) for name, entry in (entries or {}).items()}

    def image(self, name: str, entry: Any) -> ImageSpec:
        """One input's entry in `dlspec_images`."""
        channels = entry.get("channels") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        if channels not in (1, 3) or not (isinstance(size, list) and len(size) == 2
                                          and all(isinstance(s, int) and s > 0 for s in size)):
            raise self.fail(IMAGES, f"gives {_brief(name)} {_brief(entry)}; expected "
                            "{channels: 1 or 3, size: [height, width]}")
        if size[0] * size[1] > MAX_IMAGE_PIXELS:
            raise self.fail(IMAGES, f"gives {_brief(name)} images of {size[0]}×"
                            f"{size[1]} pixels, more than the {MAX_IMAGE_PIXELS:,} dlspec reads")
        return ImageSpec(int(channels), (size[0], size[1]))

    def translation(self, entry: dict[str, Any] | None) -> Translation | None:
        """`dlspec_translation`."""
        if entry is None:
            return None
        stats = entry.get("output_normalization")
        return Translation(self.statistics(TRANSLATION, "output", stats)
                           if stats is not None else None)

    def generator(self, entry: dict[str, Any] | None) -> Generator | None:
        """`dlspec_generator`."""
        if entry is None:
            return None
        latent, stats, images = (entry.get("latent"), entry.get("output_normalization"),
                                 entry.get("images", False))
        if not (isinstance(latent, dict) and latent
                and all(v in ("normal", "uniform") for v in latent.values())
                and isinstance(images, bool)):
            raise self.fail(GENERATOR, f"is malformed: {_brief(entry)}")
        labels, names = entry.get("labels", {}), entry.get("class_names")
        if not (isinstance(labels, dict) and all(
                isinstance(v, int) and v > 0 for v in labels.values())
                and (names is None or isinstance(names, list))):
            raise self.fail(GENERATOR, f"has malformed labels: {_brief(entry)}")
        normalization = (self.statistics(GENERATOR, "output", stats)
                         if stats is not None else None)
        return Generator({str(k): str(v) for k, v in latent.items()}, normalization, images,
                         {str(k): int(v) for k, v in labels.items()},
                         [str(n) for n in names] if names is not None else None)


def _brief(value: Any, quote: bool = True) -> str:
    """A value from a model's metadata as a message quotes it: escaped, at most 60 characters."""
    text = printable(repr(value) if quote else str(value))
    return text if len(text) <= 60 else text[:60] + "…"


def _is_dim(value: Any) -> bool:
    return value is None or isinstance(value, str) or (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # a JSON integer beyond any float
        return False


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and all(_is_number(v) for v in values)
