"""The `data` and `augment` sections: where the samples come from, how they are prepared,
and the random changes made to training samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    model_validator,
)

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
    "eight_gaussians", "digits_pair", "shapes_masks",
]
IMAGE_DATASETS = frozenset({"digits", "digits_pair"})
SEQUENCE_DATASETS = frozenset({"sine", "sequence_sum", "parity", "token_sentiment"})
SYNTHETIC_DATASETS = frozenset({"moons", "circles", "blobs", "xor", "and", "nand", "spirals",
                                "eight_gaussians", "shapes_masks"}) | SEQUENCE_DATASETS


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


_SOURCES = ("dataset", "csv", "npz", "image_folder")
# Options that only some sources take: option -> (does the source take it?, which do).
_Applies = tuple[Callable[["DataConfig"], bool], str]
_CSV: _Applies = (lambda d: d.csv is not None, "csv")
_NPZ: _Applies = (lambda d: d.npz is not None, "npz")
_IMAGES: _Applies = (lambda d: d.image_folder is not None or d.dataset in IMAGE_DATASETS,
                     "image data (image_folder, digits, digits_pair)")
_SYNTHETIC: _Applies = (lambda d: d.dataset in SYNTHETIC_DATASETS, "synthetic datasets")
_SEQUENCES: _Applies = (lambda d: d.dataset in SEQUENCE_DATASETS,
                        f"sequence datasets ({', '.join(sorted(SEQUENCE_DATASETS))})")
_OPTION_SOURCES = {"target": _CSV, "features": _CSV, "delimiter": _CSV, "x_key": _NPZ,
                   "y_key": _NPZ, "resize": _IMAGES, "grayscale": _IMAGES,
                   "num_samples": _SYNTHETIC, "noise": _SYNTHETIC, "seq_len": _SEQUENCES}


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
    ] = Field(None, description="auto: statistics computed on the training split; or fixed ones")
    split: Split = Field(default_factory=Split, description="train/val/test fractions")
    num_samples: Annotated[int, Field(gt=0, le=MAX_GENERATED_SAMPLES)] | None = Field(
        None, description="samples to generate")
    noise: NonNegativeFloat | None = Field(None, description="noise added to generated samples")
    seq_len: Annotated[int, Field(gt=0, le=MAX_GENERATED_VALUES)] | None = Field(
        None, description="length of generated sequences")
    seed: NonNegativeInt | None = Field(
        None, description="seed of the split and generated data (default: train.seed)")
    shuffle: bool = Field(True, description="shuffle the training samples every epoch")

    @property
    def source(self) -> str:
        """The key naming the data source: dataset, csv, npz or image_folder."""
        return next(k for k in _SOURCES if getattr(self, k) is not None)

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
        return self


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
