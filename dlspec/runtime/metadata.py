"""The `dlspec_*` metadata an exported model carries, read into plain data.

The exporter writes these ONNX `metadata_props` (every value a string):

    dlspec_version, dlspec_spec, dlspec_spec_sha256, dlspec_network   plain strings
    dlspec_inputs         [{"name", "shape": [null, d1, ...], "dtype"}, ...]
    dlspec_outputs        [{"name", "shape": [null, ...]}, ...]
    dlspec_task           {"type", "labels": [...] | null, "binary": bool}     (optional)
    dlspec_normalization  {input: {"mean": [...], "std": [...]}}               (optional)
    dlspec_images         {input: {"channels": C, "size": [H, W]}}             (optional)
    dlspec_generator      {"latent": {input: "normal" | "uniform"},            (GAN generators)
                           "output_normalization": {"mean", "std"} | null, "images": bool,
                           "labels": {input: classes}, "class_names": [...]}  (conditional)

Optional extras, read when present: `dlspec_task` may name the classified `output` and a
binary classifier's `threshold`; a normalisation entry may give its `axis` (the batch axis
counting as 0). Anything malformed is a SpecError naming the model file and the key.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlspec.errors import Problem, SpecError
from dlspec.memory import format_bytes
from dlspec.runtime.untrusted import MAX_ARRAY_BYTES, MAX_IMAGE_PIXELS, printable

CLASSIFYING = ("classification", "sequence_classification")
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


@dataclass(frozen=True)
class Task:
    """What a model was trained to do; classifiers output raw logits."""

    type: str
    labels: list[str] | None = None
    binary: bool = False
    output: str | None = None
    threshold: float = 0.5

    @property
    def is_classifier(self) -> bool:
        """Whether the model's (chosen) output holds class logits."""
        return self.type in CLASSIFYING


@dataclass(frozen=True)
class ImageSpec:
    """How a model's image input was loaded in training: channels (1 or 3) and [H, W]."""

    channels: int
    size: tuple[int, int]


@dataclass(frozen=True)
class Normalization:
    """Statistics applied as (x - mean) / std; axis None: the input's own default axis."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    axis: int | None = None


@dataclass(frozen=True)
class Generator:
    """A GAN generator: how its latent inputs are drawn and how its outputs become data."""

    latent: dict[str, str]  # input name → "normal" (N(0, 1)) or "uniform" (U(-1, 1))
    output_normalization: Normalization | None = None  # undone on the samples
    images: bool = False  # samples are (C, H, W) images with pixels in [0, 1]
    labels: dict[str, int] = field(default_factory=dict)  # conditional: input → classes
    class_names: list[str] | None = None  # a conditional generator's classes, by index


@dataclass(frozen=True)
class Translation:
    """A CycleGAN generator: its outputs are images of the target domain."""

    output_normalization: Normalization | None = None  # undone on the translated images


@dataclass
class Metadata:
    """Everything dlspec wrote into a model; empty for a model from elsewhere."""

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


def format_shape(shape: tuple[int | None, ...]) -> str:
    """`(1, 8, 8)` as `1×8×8`; None as `?`; `()` as `scalar`."""
    if not shape:
        return "scalar"
    return "×".join("?" if d is None else str(d) for d in shape)


def metadata_error(path: Path, key: str, message: str) -> SpecError:
    """SpecError for metadata of the model at `path` that parses but disagrees with the model."""
    return SpecError(Problem((), f"{path}: metadata {key} {message}",
                             "re-export the model with `dlspec export`"))


def read_metadata(props: dict[str, str], model: str) -> Metadata:
    """Parse the `dlspec_*` entries of a model's metadata map; `model` names it in errors."""
    reader = _Reader(props, model)
    return Metadata(
        version=props.get("dlspec_version"),
        spec=props.get("dlspec_spec"),
        spec_sha256=props.get("dlspec_spec_sha256"),
        network=props.get("dlspec_network"),
        inputs=reader.tensors("dlspec_inputs"),
        outputs=reader.tensors("dlspec_outputs"),
        task=reader.task(),
        normalization=reader.normalization(),
        images=reader.images(),
        generator=reader.generator(),
        translation=reader.translation(),
    )


class _Reader:
    """Reads one model's metadata, failing with the model file and key named."""

    def __init__(self, props: dict[str, str], model: str):
        self.props, self.model = props, model

    def fail(self, key: str, message: str) -> SpecError:
        return SpecError(Problem((), f"{printable(self.model)}: metadata {key} {message}", _HINT))

    def json(self, key: str, kind: type) -> Any:
        text = self.props.get(key)
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

    def tensors(self, key: str) -> list[TensorInfo] | None:
        entries = self.json(key, list)
        if entries is None:
            return None
        return [self.tensor(key, entry) for entry in entries]

    def tensor(self, key: str, entry: Any) -> TensorInfo:
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

    def task(self) -> Task | None:
        task = self.json("dlspec_task", dict)
        if task is None:
            return None
        kind, labels = task.get("type"), task.get("labels")
        if not isinstance(kind, str):
            raise self.fail("dlspec_task", f"has no type: {_brief(task)}")
        if labels is not None and not (isinstance(labels, list) and labels):
            raise self.fail("dlspec_task", f"has labels {_brief(labels)}; expected a list or null")
        binary, output = task.get("binary", False), task.get("output")
        threshold = task.get("threshold")
        if threshold is None:
            threshold = 0.5
        if not isinstance(binary, bool) or not (output is None or isinstance(output, str)):
            raise self.fail("dlspec_task", f"is malformed: {_brief(task)}")
        if not _is_number(threshold) or not 0 < threshold < 1:
            raise self.fail("dlspec_task", f"has threshold {_brief(threshold)}; expected 0 < t < 1")
        if binary and labels is not None and len(labels) != 2:
            raise self.fail("dlspec_task", f"is binary but has {len(labels)} labels")
        names = None if labels is None else [str(label) for label in labels]
        return Task(kind, names, binary, output, float(threshold))

    def normalization(self) -> dict[str, Normalization]:
        entries = self.json("dlspec_normalization", dict) or {}
        return {name: self.statistics(name, entry) for name, entry in entries.items()}

    def statistics(self, name: str, entry: Any) -> Normalization:
        key = "dlspec_normalization"
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

    def images(self) -> dict[str, ImageSpec]:
        entries = self.json("dlspec_images", dict) or {}
        return {name: self.image(name, entry) for name, entry in entries.items()}

    def image(self, name: str, entry: Any) -> ImageSpec:
        channels = entry.get("channels") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        if channels not in (1, 3) or not (isinstance(size, list) and len(size) == 2
                                          and all(isinstance(s, int) and s > 0 for s in size)):
            raise self.fail("dlspec_images", f"gives {_brief(name)} {_brief(entry)}; expected "
                            "{channels: 1 or 3, size: [height, width]}")
        if size[0] * size[1] > MAX_IMAGE_PIXELS:
            raise self.fail("dlspec_images", f"gives {_brief(name)} images of {size[0]}×"
                            f"{size[1]} pixels, more than the {MAX_IMAGE_PIXELS:,} dlspec reads")
        return ImageSpec(channels, (size[0], size[1]))

    def translation(self) -> Translation | None:
        entry = self.json("dlspec_translation", dict)
        if entry is None:
            return None
        stats = entry.get("output_normalization")
        return Translation(self.statistics("output", stats) if stats is not None else None)

    def generator(self) -> Generator | None:
        entry = self.json("dlspec_generator", dict)
        if entry is None:
            return None
        latent, stats, images = (entry.get("latent"), entry.get("output_normalization"),
                                 entry.get("images", False))
        if not (isinstance(latent, dict) and latent
                and all(v in ("normal", "uniform") for v in latent.values())
                and isinstance(images, bool)):
            raise self.fail("dlspec_generator", f"is malformed: {_brief(entry)}")
        labels, names = entry.get("labels", {}), entry.get("class_names")
        if not (isinstance(labels, dict) and all(
                isinstance(v, int) and v > 0 for v in labels.values())
                and (names is None or isinstance(names, list))):
            raise self.fail("dlspec_generator", f"has malformed labels: {_brief(entry)}")
        normalization = (self.statistics("output", stats) if stats is not None else None)
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
