"""`dlspec predict GENERATOR.onnx --sample N`: new samples from an exported GAN generator.

The generator's metadata (`dlspec_generator`, written when a `task: gan` run is exported)
says how its latent inputs were drawn in training and with which statistics the real data
was normalised; the samples are drawn the same way with NumPy and turned back into data:
images (C, H, W) become PNG files with pixels in [0, 1], anything else one .npy or .csv
file with a row per sample. Nothing here imports torch.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dlspec.contract import Generator, Normalization
from dlspec.errors import Problem, SpecError
from dlspec.memory import format_bytes
from dlspec.runtime.predictor import Predictor
from dlspec.runtime.untrusted import MAX_ARRAY_BYTES, excerpt, excerpts, printable
from dlspec.runtime.writers import check_output, image_paths, output_error


def generator_of(predictor: Predictor) -> Generator:
    """The model's generator metadata, or a model without any dlspec metadata read as one
    latent input N(0, 1); SpecError for a model dlspec exported as something else."""
    generator = predictor.metadata.generator
    if generator is not None:
        return generator
    meta = predictor.metadata
    if meta.task is not None or meta.version is not None or meta.translation is not None:
        what = meta.task.type if meta.task is not None else \
            "a CycleGAN generator" if meta.translation is not None else "a model"
        raise SpecError(Problem((), f"{printable(predictor.path.name)} is not a GAN generator "
                                f"(it was exported for {printable(what)}); --sample draws "
                                "new samples from the generator of a task: gan run",
                                "give it inputs instead: dlspec predict MODEL INPUT"))
    if len(predictor.inputs) != 1 or predictor.inputs[0].dtype != "float32":
        raise SpecError(Problem((), f"{predictor.path} is not a GAN generator (no "
                                "dlspec_generator metadata) and has no single float input "
                                "to feed noise to", "export the generator of a task: gan run"))
    return Generator({predictor.inputs[0].name: "normal"})


def draw_samples(predictor: Predictor, count: int, seed: int = 0,
                 batch_size: int = 256, label: str | int | None = None) -> np.ndarray:
    """`count` samples (count, *sample shape) of the generator, as data (normalisation undone).

    A conditional generator makes samples of the class `label` (an index or a class name),
    or without one of every class in turn (0, 1, 2, ..., 0, 1, ...).

    Example:
        >>> samples = draw_samples(Predictor("runs/dcgan/model.onnx"), 16)
        >>> samples.shape, float(samples.min()) >= 0
        ((16, 1, 32, 32), True)
    """
    generator = generator_of(predictor)
    if label is not None and not generator.labels:
        raise SpecError(Problem((), f"{predictor.path.name} is not a conditional generator: "
                                "it reads no class label", "leave out --label"))
    _check_memory(predictor, count)
    rng = np.random.default_rng(seed)
    feed = {}
    for info in predictor.inputs:
        if info.name in generator.labels:
            feed[info.name] = _labels(generator, info.name, count, label).astype(
                np.int32 if info.dtype == "int32" else np.int64)
            continue
        shape = info.per_sample
        if any(d is None for d in shape):
            raise SpecError(Problem((info.name,), f"latent input of shape {info.describe()} "
                                    "has an axis of unknown size", "export with a fixed shape"))
        size = (count, *(int(d) for d in shape if d is not None))
        if generator.latent.get(info.name, "normal") == "uniform":
            feed[info.name] = rng.uniform(-1.0, 1.0, size).astype(np.float32)
        else:
            feed[info.name] = rng.standard_normal(size, dtype=np.float32)
    outputs = predictor.predict(feed, batch_size=batch_size, normalize=False)
    return as_data(outputs[predictor.outputs[0].name], generator.output_normalization,
                   generator.images)


def _check_memory(predictor: Predictor, count: int) -> None:
    """SpecError when `count` samples of the latent inputs or the outputs (where their size
    is known) would not fit in the memory dlspec uses at once; checked before drawing."""
    per_sample = 0
    for info in (*predictor.inputs, *predictor.outputs):
        if all(d is not None for d in info.per_sample):
            per_sample += math.prod(int(d) for d in info.per_sample if d is not None) * 4
    if count * per_sample > MAX_ARRAY_BYTES:
        raise SpecError(Problem((), f"{count:,} samples of {printable(predictor.path.name)} "
                                f"need {format_bytes(count * per_sample)} of memory, more than "
                                f"the {format_bytes(MAX_ARRAY_BYTES)} dlspec uses at once",
                                "draw fewer samples at a time"))


def as_data(samples: np.ndarray, stats: Normalization | None, images: bool) -> np.ndarray:
    """A generator's outputs with the data's normalisation undone (per channel of images,
    per feature otherwise); images clipped to [0, 1]."""
    if stats is not None:
        axis = 1 if samples.ndim >= 3 else samples.ndim - 1  # channels, or features
        view = [1] * samples.ndim
        view[axis] = len(stats.mean) if len(stats.mean) > 1 else 1
        samples = (samples * np.asarray(stats.std, np.float32).reshape(view)
                   + np.asarray(stats.mean, np.float32).reshape(view))
    if images:
        samples = np.clip(samples, 0.0, 1.0)
    return samples


def _labels(generator: Generator, name: str, count: int, label: str | int | None
            ) -> np.ndarray:
    classes = generator.labels[name]
    if label is None:
        return np.arange(count) % classes
    names = generator.class_names or []
    if isinstance(label, str) and label in names:
        index = names.index(label)
    elif isinstance(label, int) or (isinstance(label, str) and label.lstrip("-").isdigit()):
        index = int(label)
    else:
        index = -1
    if not 0 <= index < classes:
        known = f"the classes are {excerpts(names, count=20)}" if names else \
            f"give a class index 0 to {classes - 1}"
        raise SpecError(Problem((), f"there is no class {excerpt(str(label))}: {known}"))
    return np.full(count, index)


def write_samples(samples: np.ndarray, output: Path | None, images: bool,
                  names: list[str] | None = None, folder: str = "samples") -> list[Path]:
    """Images as `<output>/sample_0000.png`... (or named after `names`, the input files they
    were made from, as `writers.image_paths` keeps them apart); other samples as one .npy or
    .csv file."""
    if images and samples.ndim == 4 and samples.shape[1] in (1, 3) and (
            output is None or output.suffix.lower() != ".npy"):
        from PIL import Image

        target = output or Path(folder)
        check_output(target, folder=True)
        paths = image_paths(target, names, len(samples), "sample")
        for sample, path in zip(samples, paths, strict=True):
            pixels = (np.clip(sample, 0, 1) * 255).round().astype(np.uint8)  # (C, H, W)
            picture = Image.fromarray(pixels[0] if len(pixels) == 1 else pixels.transpose(1, 2, 0))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                picture.save(path)
            except OSError as error:
                raise output_error(path, error) from None
        return paths
    path = output or Path("samples.npy")
    if path.suffix not in (".npy", ".csv"):
        raise SpecError(Problem((), f"samples are written as .npy or .csv, not "
                                f"{excerpt(path.name, 40)}", "name the file with -o "
                                "samples.npy or -o samples.csv"))
    check_output(path, folder=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".npy":
            np.save(path, samples)
        else:
            flat = samples.reshape(len(samples), -1)
            header = ",".join(f"x{i}" for i in range(flat.shape[1]))
            np.savetxt(path, flat, delimiter=",", header=header, comments="", fmt="%.7g")
    except OSError as error:
        raise output_error(path, error) from None
    return [path]
