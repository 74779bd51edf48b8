"""The `data` and `augment` sections: where the samples come from, how they are prepared,
and the random changes made to training samples.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    model_validator,
)

from dlspec.errors import Problem
from dlspec.spec.paths import ReadPath
from dlspec.spec.sections.base import Fraction, Section, Shorthand, _exactly_one, fail


def _pair(value: Any) -> Any:
    return [value, value] if isinstance(value, int) and not isinstance(value, bool) else value


def _flip(value: Any) -> Any:
    return (0.5 if value else 0.0) if isinstance(value, bool) else value


# Bounds on what a spec may ask data generation and image preparation to allocate: far above
# any real use, far below what would exhaust a machine's memory before training starts.
MAX_IMAGE_SIDE = 8192
MAX_GENERATED_SAMPLES = 10_000_000
MAX_GENERATED_VALUES = 100_000_000
Side = Annotated[int, Field(gt=0, le=MAX_IMAGE_SIDE)]
Size2d = Annotated[
    list[Side], Field(min_length=2, max_length=2),
    Shorthand(_pair, {"type": "integer", "exclusiveMinimum": 0, "maximum": MAX_IMAGE_SIDE,
                      "description": "square size"}),
]
FlipProbability = Annotated[
    Fraction, Shorthand(_flip, {"type": "boolean", "description": "true: probability 0.5"}),
]

# --------------------------------------------------------------------------- data

BuiltinDataset = Literal[
    "digits", "iris", "wine", "breast_cancer", "diabetes", "moons", "circles", "blobs", "xor",
    "and", "nand", "spirals", "sine", "sequence_sum", "parity", "token_sentiment",
    "eight_gaussians", "digits_pair", "shapes_masks", "listings", "tagging",
]
IMAGE_DATASETS = frozenset({"digits", "digits_pair"})
SEQUENCE_DATASETS = frozenset({"sine", "sequence_sum", "parity", "token_sentiment", "tagging"})
SYNTHETIC_DATASETS = frozenset({"moons", "circles", "blobs", "xor", "and", "nand", "spirals",
                                "eight_gaussians", "shapes_masks", "listings"}) | SEQUENCE_DATASETS
# built-in sets of several named arrays (inputs and targets), which `inputs:`/`targets:` map
NAMED_DATASETS = frozenset({"listings"})


class NormalizeStats(Section):
    """Fixed per-channel normalisation statistics."""

    mean: list[float] = Field(min_length=1, description="per-channel mean")
    std: list[PositiveFloat] = Field(min_length=1, description="per-channel standard deviation")

    @model_validator(mode="after")
    def _check(self) -> NormalizeStats:
        if len(self.mean) != len(self.std):
            fail(f"mean has {len(self.mean)} values, std {len(self.std)}", "std", value=self.std)
        return self


def _normalize(value: Any) -> Any:
    if isinstance(value, bool):
        return "auto" if value else None
    if isinstance(value, dict):
        return NormalizeStats.model_validate(value)
    if value not in (None, "auto") and not isinstance(value, NormalizeStats):
        fail("expected true, false, auto or {mean: [...], std: [...]}", value=value)
    return value


class Split(Section):
    """Fractions of the data for training, validation and test; they sum to 1."""

    train: Fraction = Field(0.8, description="fraction for training")
    val: Fraction = Field(0.1, description="fraction for validation (0 if split omits it)")
    test: Fraction = Field(0.1, description="fraction for the final test (0 if split omits it)")

    @model_validator(mode="before")
    @classmethod
    def _unset_is_zero(cls, data: Any) -> Any:
        if isinstance(data, dict) and data:
            return {"train": 0.0, "val": 0.0, "test": 0.0, **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> Split:
        total = self.train + self.val + self.test
        if abs(total - 1) > 1e-6:
            fail(f"split fractions must sum to 1, got {total:g} "
                 f"(train {self.train:g} + val {self.val:g} + test {self.test:g})", value=total)
        return self


MAX_PAIRS_PER_SAMPLE = 100
Key = Annotated[str, Field(min_length=1)]
# an NPZ key or a built-in set's array: one name; CSV columns: one, or a list (a group)
Columns = Key | Annotated[list[Key], Field(min_length=1)]


class ImagesBesideCsv(Section):
    """Images beside a CSV table, joined by file name: each row names its image in `column`."""

    folder: ReadPath = Field(min_length=1, description="folder holding the images, relative "
                             "to the spec's folder")
    column: Key = Field("file", description="the CSV column naming each row's image file, "
                        "relative to `folder`")
    input: Key | None = Field(None, description="the network input the images feed (default: "
                              "its one channels × height × width input)")


class Pairs(Section):
    """Pairs of samples of one labelled dataset, for a network with two inputs (siamese).

    Pairs are formed within each split (no test sample is paired with a training one); the
    target is 1.0 for two samples of one class and 0.0 for two classes.
    """

    inputs: Annotated[list[Key], Field(min_length=2, max_length=2)] | None = Field(
        None, description="the two network inputs a pair feeds (default: the network's two "
        "inputs, in order)")
    same_fraction: Fraction = Field(0.5, description="share of pairs of one class (target 1)")
    per_sample: Annotated[int, Field(gt=0, le=MAX_PAIRS_PER_SAMPLE)] = Field(
        1, description="pairs formed from each sample of a split, as their first member")

    @model_validator(mode="after")
    def _check(self) -> Pairs:
        if self.inputs is not None and self.inputs[0] == self.inputs[1]:
            fail("a pair feeds two different inputs", "inputs", 1, value=self.inputs[1])
        return self


_SOURCES = ("dataset", "csv", "npz", "image_folder", "shards")
# Options that only some sources take: option -> (does the source take it?, which do).
_Applies = tuple[Callable[["DataConfig"], bool], str]
_CSV: _Applies = (lambda d: d.csv is not None, "csv")
_NPZ: _Applies = (lambda d: d.npz is not None, "npz")
_IMAGES: _Applies = (lambda d: d.image_folder is not None or d.images is not None
                     or d.shards is not None or d.dataset in IMAGE_DATASETS,
                     "image data (image_folder, images beside a csv, shards, digits, "
                     "digits_pair)")
_FILES: _Applies = (lambda d: d.dataset is None, "data read from files (csv, npz, "
                    "image_folder, shards)")
_SYNTHETIC: _Applies = (lambda d: d.dataset in SYNTHETIC_DATASETS, "synthetic datasets")
_SEQUENCES: _Applies = (lambda d: d.dataset in SEQUENCE_DATASETS,
                        f"sequence datasets ({', '.join(sorted(SEQUENCE_DATASETS))})")
_NAMED: _Applies = (lambda d: d.csv is not None or d.npz is not None
                    or d.dataset in NAMED_DATASETS,
                    f"csv, npz and built-in sets of several arrays "
                    f"({', '.join(sorted(NAMED_DATASETS))})")
_OPTION_SOURCES = {"target": _CSV, "features": _CSV, "delimiter": _CSV, "x_key": _NPZ,
                   "y_key": _NPZ, "resize": _IMAGES, "grayscale": _IMAGES,
                   "num_samples": _SYNTHETIC, "noise": _SYNTHETIC, "seq_len": _SEQUENCES,
                   "inputs": _NAMED, "targets": _NAMED, "images": _CSV,
                   "cache": _FILES, "bad_files": _FILES}
# options that say the same as a mapping: (option, mapping, what to say)
_SAID_TWICE = (("features", "inputs", "the columns of each input in `inputs`, or of the one "
                "input in `features`"),
               ("target", "targets", "the target column of each output in `targets`, or of "
                "the one output in `target`"),
               ("x_key", "inputs", "the key of each input in `inputs`, or of the one input in "
                "`x_key`"),
               ("y_key", "targets", "the key of each output in `targets`, or of the one "
                "output in `y_key`"))


class DataConfig(Section):
    """Where the samples come from (exactly one source) and how they are prepared."""

    dataset: BuiltinDataset | None = Field(None, description="a built-in dataset (no download)")
    csv: ReadPath | None = Field(
        None, min_length=1, description="path of a CSV file, one row a sample, relative to the "
        "spec's folder")
    npz: ReadPath | None = Field(
        None, min_length=1, description="path of an .npz file of arrays, relative to the spec's "
        "folder")
    image_folder: ReadPath | None = Field(
        None, min_length=1, description="folder with one sub-folder of images per class, "
        "relative to the spec's folder")
    shards: ReadPath | None = Field(
        None, min_length=1, description="folder of .tar shards of samples (WebDataset's "
        "format: KEY.jpg and KEY.cls), relative to the spec's folder")
    inputs: dict[Key, Columns] | None = Field(
        None, min_length=1, description="network input → its data: an NPZ key, CSV columns, "
        "or a built-in set's array (default: the array named like the input)")
    targets: dict[Key, Columns] | None = Field(
        None, min_length=1, description="network output → its targets: an NPZ key, a CSV "
        "column (or columns), or a built-in set's array (default: the one named like the "
        "output)")
    images: ImagesBesideCsv | None = Field(
        None, description="csv: images joined to each row by the file name in a column")
    pairs: Pairs | None = Field(
        None, description="pairs of samples for a two-input network: target 1.0 for one "
        "class, 0.0 for two")
    target: str | None = Field(None, min_length=1, description="csv: the label column")
    features: list[str] | None = Field(
        None, min_length=1, description="csv: the feature columns (default: all but target)")
    delimiter: str = Field(",", min_length=1, max_length=1, description="csv: field separator")
    x_key: str = Field("x", min_length=1, description="npz: the array of inputs")
    y_key: str | None = Field("y", description="npz: the array of targets (null: none)")
    resize: Size2d | None = Field(None, description="resize images to [height, width]")
    grayscale: bool = Field(False, description="convert images to one channel")
    normalize: Annotated[
        Literal["auto"] | NormalizeStats | None,
        Shorthand(_normalize, {"type": "boolean", "description": "true: auto; false: none"}),
    ] = Field(None, description="auto: statistics computed on the training split, per float "
              "input; or fixed ones")
    split: Split = Field(default_factory=Split, description="train/val/test fractions")
    num_samples: Annotated[int, Field(gt=0, le=MAX_GENERATED_SAMPLES)] | None = Field(
        None, description="samples to generate")
    noise: NonNegativeFloat | None = Field(None, description="noise added to generated samples")
    seq_len: Annotated[int, Field(gt=0, le=MAX_GENERATED_VALUES)] | None = Field(
        None, description="length of generated sequences")
    seed: NonNegativeInt | None = Field(
        None, description="seed of the split and generated data (default: train.seed)")
    shuffle: bool = Field(True, description="shuffle the training samples every epoch")
    cache: Literal["auto", "memory", "none"] = Field(
        "auto", description="memory: decode every sample before training; none: read each "
        "batch from the files as needed (with train.num_workers processes); auto: memory when "
        "the decoded samples fit the budget, else none")
    bad_files: Literal["refuse", "skip"] = Field(
        "refuse", description="an unreadable image: refuse the run naming it, or skip it and "
        "count it")

    @property
    def source(self) -> str:
        """The key naming the data source: dataset, csv, npz, image_folder or shards."""
        return next(k for k in _SOURCES if getattr(self, k) is not None)

    @property
    def named(self) -> bool:
        """Whether the data is mapped to the network by name (`inputs`, `targets`, `images`
        or `pairs`), rather than read as one input array and one target array."""
        return any(getattr(self, k) is not None for k in ("inputs", "targets", "images", "pairs"))

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        _exactly_one(self, _SOURCES, "data")
        steps = (self.num_samples or 1) * (self.seq_len or 1)
        if steps > MAX_GENERATED_VALUES:
            fail(f"num_samples {self.num_samples:,} × seq_len {self.seq_len:,} is {steps:,} "
                 f"generated steps; at most {MAX_GENERATED_VALUES:,}",
                 "num_samples" if "num_samples" in self.model_fields_set else "seq_len",
                 value=steps)
        for option in sorted(self.model_fields_set & _OPTION_SOURCES.keys()):
            applies, sources = _OPTION_SOURCES[option]
            if not applies(self):
                fail(f"`{option}` applies to {sources}, not to {self.source} "
                     f"{getattr(self, self.source)}", option)
        self._check_mapping()
        return self

    def _check_mapping(self) -> None:
        """The mappings fit their source and say nothing twice."""
        for option, mapping, what in _SAID_TWICE:
            if option in self.model_fields_set and getattr(self, mapping) is not None:
                fail(f"give {what}, not both", option)
        if self.csv is None:  # an NPZ key or a built-in set's array is one name
            for key in ("inputs", "targets"):
                for name, value in (getattr(self, key) or {}).items():
                    if isinstance(value, list):
                        fail(f"{name} reads one array of {self.source} "
                             f"{getattr(self, self.source)}, named by one key; found a list",
                             key, name, value=value)
        for key in ("inputs", "targets"):
            for name, value in (getattr(self, key) or {}).items():
                if isinstance(value, list) and len(set(value)) != len(value):
                    twice = next(c for c in value if value.count(c) > 1)
                    fail(f"column {_quoted(twice)} is listed twice", key, name,
                         value.index(twice, value.index(twice) + 1), value=twice)
        if self.pairs is not None:
            for key in ("inputs", "targets", "images"):
                if getattr(self, key) is not None:
                    fail(f"`pairs` feeds the inputs and makes the targets (1.0 for one class, "
                         f"0.0 for two): `{key}` has nothing left to map", key)
            if self.dataset in NAMED_DATASETS:
                fail(f"pairs are drawn from data with one input and classes; {self.dataset} "
                     "has several arrays", "pairs")
        if self.images is not None:
            if self.images.input is not None and self.images.input in (self.inputs or {}):
                fail(f"input {self.images.input} is fed by `images` and by `inputs`",
                     "images", "input", value=self.images.input)
            listed = [*(self.features or []), *_columns(self.inputs)]
            if self.images.column in listed:
                fail(f"the file-name column {_quoted(self.images.column)} is also a feature "
                     "column", "images", "column", value=self.images.column)


def _columns(mapping: dict[str, str | list[str]] | None) -> list[str]:
    """Every column (or key) a mapping names."""
    values = (mapping or {}).values()
    return [c for v in values for c in ([v] if isinstance(v, str) else v)]


def _quoted(text: str, limit: int = 40) -> str:
    shown = repr(text)  # escaped: a key cannot break the message's line or the terminal
    return shown if len(shown) <= limit else shown[:limit - 4] + "...'"


def unknown_name(path: tuple[str | int, ...], name: str, what: str,
                  names: list[str]) -> Problem:
    close = difflib.get_close_matches(name, names, n=1)
    listed = f"its {what}s are {', '.join(names)}" if names else f"it has no {what}s"
    hint = f"did you mean {close[0]!r}? {listed}" if close else listed
    return Problem(path, f"the network has no {what} {_quoted(name)}", hint,
                   on_key=isinstance(path[-1], str) and path[-1] == name)


def mapping_problems(data: DataConfig, inputs: Iterable[str],
                     outputs: Iterable[str] | None = None) -> list[Problem]:
    """What the data section's mappings say of a network with `inputs` and `outputs` (names)
    that is not so: names it has not, inputs left without data. Paths point into the spec.

    Torch-free and file-free, so `dlspec check` can run it once the graphs are expanded;
    reading the data checks keys, columns, shapes and dtypes.

    Example:
        >>> config = DataConfig(npz="a.npz", inputs={"imag": "images"})
        >>> [p.message for p in mapping_problems(config, ["image", "features"])]
        ["the network has no input 'imag'"]
    """
    inputs, outputs = list(inputs), None if outputs is None else list(outputs)
    problems = [unknown_name(("data", "inputs", name), name, "input", inputs)
                for name in data.inputs or {} if name not in inputs]
    if outputs is not None:
        problems += [unknown_name(("data", "targets", name), name, "output", outputs)
                     for name in data.targets or {} if name not in outputs]
    if data.images is not None and data.images.input is not None \
            and data.images.input not in inputs:
        problems.append(unknown_name(("data", "images", "input"), data.images.input, "input",
                                      inputs))
    if data.pairs is not None:
        problems += _pair_problems(data.pairs, inputs)
    return problems


def _pair_problems(pairs: Pairs, inputs: list[str]) -> list[Problem]:
    if pairs.inputs is None:
        if len(inputs) != 2:
            return [Problem(("data", "pairs"), f"pairs feed two inputs, but the network has "
                            f"{len(inputs)} ({', '.join(inputs)})", "say which two: "
                            "pairs: {inputs: [left, right]}")]
        return []
    problems = [unknown_name(("data", "pairs", "inputs", i), name, "input", inputs)
                for i, name in enumerate(pairs.inputs) if name not in inputs]
    left = [name for name in inputs if name not in pairs.inputs]
    if not problems and left:
        problems.append(Problem(("data", "pairs", "inputs"), f"input {left[0]} gets no data: "
                                f"pairs feed only {' and '.join(pairs.inputs)}",
                                "a network trained on pairs reads the two samples of a pair"))
    return problems


# --------------------------------------------------------------------------- augment


class RandomCrop(Section):
    size: Size2d | None = Field(None, description="crop [height, width] (default: input size)")
    padding: Annotated[int, Field(ge=0, le=MAX_IMAGE_SIDE)] = Field(
        0, description="pixels of zero padding added before cropping")


class ColorJitter(Section):
    brightness: NonNegativeFloat = Field(0.0, description="brightness jitter amount")
    contrast: NonNegativeFloat = Field(0.0, description="contrast jitter amount")
    saturation: NonNegativeFloat = Field(0.0, description="saturation jitter amount")
    hue: float = Field(0.0, ge=0, le=0.5, description="hue jitter amount, at most 0.5")


class ImageAugment(Section):
    random_crop: RandomCrop | None = Field(None, description="random crop, after padding")
    horizontal_flip: FlipProbability = Field(0.0, description="probability of a mirror flip")
    vertical_flip: FlipProbability = Field(0.0, description="probability of an upside-down flip")
    rotation: float | None = Field(
        None, gt=0, le=180, description="rotate by a random angle within ±degrees")
    color_jitter: ColorJitter | None = Field(None, description="random colour changes")


class SequenceAugment(Section):
    noise: PositiveFloat | None = Field(None, description="std of Gaussian noise added")
    time_shift: Annotated[int, Field(gt=0, le=MAX_GENERATED_VALUES)] | None = Field(
        None, description="largest random shift, in steps")
    time_scale: Annotated[
        list[PositiveFloat], Field(min_length=2, max_length=2)
    ] | None = Field(None, description="[low, high] range of random time stretching")

    @model_validator(mode="after")
    def _check(self) -> SequenceAugment:
        if self.time_scale and self.time_scale[0] > self.time_scale[1]:
            fail("time_scale is [low, high]; low exceeds high", "time_scale",
                 value=self.time_scale)
        return self


class AugmentConfig(Section):
    """Random changes to training samples (never to validation or test samples)."""

    images: ImageAugment | None = Field(None, description="augmentation of image inputs")
    sequences: SequenceAugment | None = Field(None, description="augmentation of sequences")
