"""The data a spec trains on, as whole in-memory tensors split into train/val/test.

    DataConfig ─read─▶ RawData (numpy: builtin.py, files.py)
               ─fit─▶ tensors shaped for the network's input and the task (fit.py)
               ─split, normalise─▶ DataSplits

Training indexes batches straight out of the tensors with a permutation, so no sample passes
through Python on its own. Mismatches between the data and the network (sample shape,
number of classes, output size) are SpecErrors raised before training starts.

Only one network input is supported for now: data for several inputs is a SpecError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dlspec.data.builtin import DATASETS, Options, generate
from dlspec.data.files import read_csv, read_image_folder, read_npz
from dlspec.data.fit import (
    RawData,
    check_classes,
    check_outputs,
    fit_inputs,
    fit_target,
    resize_images,
)
from dlspec.errors import Problem, SpecError
from dlspec.graph import InputDecl
from dlspec.spec.sections import DataConfig, NormalizeStats, Split, TaskConfig

DEFAULT_NUM_SAMPLES = 1000
DEFAULT_SEQ_LEN = 20
_FLAT_STD = 1e-8  # a feature this flat is left unscaled rather than divided by ~0


@dataclass
class TensorSet:
    """Samples as whole tensors: inputs by input name, and their targets, along axis 0."""

    inputs: dict[str, torch.Tensor]  # name → (N, *input shape)
    target: torch.Tensor  # (N,) class indices, (N, k) values, or (N, 0) when there are none

    def __len__(self) -> int:
        return len(self.target)

    def subset(self, index: torch.Tensor) -> TensorSet:
        """The samples at `index` (a 1-D tensor of positions or a boolean mask)."""
        return TensorSet({k: v[index] for k, v in self.inputs.items()}, self.target[index])


@dataclass
class DataSplits:
    """The data of one run: its splits and what is known about it."""

    train: TensorSet
    val: TensorSet | None
    test: TensorSet | None
    num_classes: int | None
    labels: list[str] | None
    # input name → {"mean": [...], "std": [...]}, computed on the training split and already
    # applied to every split; empty when the spec asks for no normalisation
    normalization: dict[str, dict[str, list[float]]]
    source: str  # "digits (scikit-learn), 1797 samples"
    # image targets (digits_pair's second domain) are normalised like images too
    target_normalization: dict[str, list[float]] | None = None
    image_inputs: list[str] = field(default_factory=list)  # inputs read from images


def load_data(data: DataConfig, task: TaskConfig | None, inputs: dict[str, InputDecl], *,
              seed: int, base_dir: Path) -> DataSplits:
    """Read, fit, split and normalise the data of a spec for a network with `inputs`.

    `seed` (train.seed) is used unless the data section has its own; `base_dir` is the spec
    file's folder, against which file paths are resolved.

    Example:
        >>> config = DataConfig(dataset="digits", resize=[32, 32], normalize="auto")
        >>> splits = load_data(config, TaskConfig(type="classification"),
        ...                    {"image": InputDecl((1, 32, 32))}, seed=0, base_dir=Path("."))
        >>> splits.train.inputs["image"].shape, splits.num_classes
        (torch.Size([1437, 1, 32, 32]), 10)
    """
    if len(inputs) != 1:
        raise SpecError(Problem(("data",), "data for several inputs is not supported yet",
                                f"the network reads {', '.join(inputs) or 'no inputs'}"))
    ((name, decl),) = inputs.items()
    seed = data.seed if data.seed is not None else seed
    raw = _read(data, task, decl, seed, base_dir)
    if len(raw.x) == 0:
        raise SpecError(Problem(("data",), f"{raw.source} holds no samples"))
    if raw.images and data.resize is not None:
        raw.x = resize_images(torch.from_numpy(raw.x), data.resize).numpy()
        if raw.target_images and raw.y is not None:
            raw.y = resize_images(torch.from_numpy(raw.y), data.resize).numpy()
    x = fit_inputs(raw.x, name, decl, raw.images)
    target, num_classes = fit_target(raw, task)
    check_classes(num_classes, task, raw.source)
    train, val, test = split_indices(len(x), data.split, seed)
    normalization = {}
    if data.normalize is not None:
        if not x.is_floating_point():
            raise SpecError(Problem(("data", "normalize"), f"input {name} is {decl.dtype}; "
                                    "normalisation applies to float inputs"))
        x, normalization[name] = normalize(x, train, data.normalize, name)
    target_normalization = None
    if data.normalize is not None and raw.target_images:
        target, target_normalization = normalize(target, train, data.normalize, "target")
    whole = TensorSet({name: x}, target)
    return DataSplits(
        train=whole.subset(train),
        val=whole.subset(val) if val is not None else None,
        test=whole.subset(test) if test is not None else None,
        num_classes=num_classes,
        labels=_labels(task, raw, num_classes),
        normalization=normalization,
        source=f"{raw.source}, {len(x)} samples",
        target_normalization=target_normalization,
        image_inputs=[name] if raw.images else [],
    )


def two_domains(raw: RawData, seed: int, folder: str) -> RawData:
    """An image folder read as CycleGAN's two domains: its first sub-folder (in sorted order,
    e.g. trainA) the inputs, its second (trainB) the image targets. Each domain is shuffled
    with the seed and cut to the smaller one's count, so no image is seen twice."""
    if raw.num_classes != 2 or raw.labels is None or raw.y is None:
        raise SpecError(Problem(("data", "image_folder"), "task cyclegan reads two domains: "
                                "an image folder with two sub-folders, but "
                                f"{raw.source} has {raw.num_classes}",
                                "put domain A's images in one sub-folder and domain B's in "
                                "another, e.g. trainA/ and trainB/"))
    rng = np.random.default_rng(seed)
    domains = [rng.permutation(np.flatnonzero(raw.y == k)) for k in (0, 1)]
    count = min(len(d) for d in domains)
    a, b = raw.labels
    left = max(len(d) for d in domains) - count
    said = (f"; {left} images of the larger domain left out to pair the counts" if left
            else "")
    return RawData(raw.x[domains[0][:count]], raw.x[domains[1][:count]],
                   f"image folder {folder} (domain A: {a}, domain B: {b}, {count} images "
                   f"each{said})", images=True, target_images=True)


def _labels(task: TaskConfig | None, raw: RawData, num_classes: int | None) -> list[str] | None:
    if num_classes is None:
        return None
    return task.labels if task is not None and task.labels else raw.labels


def _read(data: DataConfig, task: TaskConfig | None, decl: InputDecl, seed: int,
          base_dir: Path) -> RawData:
    class_order = task.labels if task is not None else None
    if data.csv is not None:
        return read_csv(data.csv, data, base_dir, class_order)
    if data.npz is not None:
        return read_npz(data.npz, data, base_dir)
    if data.image_folder is not None:
        raw = read_image_folder(data.image_folder, data, base_dir, class_order)
        if task is not None and task.type == "cyclegan":
            return two_domains(raw, seed, data.image_folder)
        return raw
    if data.dataset is None:
        raise SpecError(Problem(("data",), "no data source",
                                "give one of dataset, csv, npz or image_folder"))
    shape = tuple(decl.shape)
    # a sequence input (seq_len, features) says how long generated sequences should be
    seq_len = data.seq_len or (shape[0] if 1 <= len(shape) <= 2 else DEFAULT_SEQ_LEN)
    options = Options(num_samples=data.num_samples or DEFAULT_NUM_SAMPLES, noise=data.noise,
                      seq_len=seq_len, seed=seed, input_shape=shape)
    return generate(data.dataset, options)


def split_indices(count: int, split: Split, seed: int
                  ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Shuffled positions of the train, val and test samples (None for a 0 fraction)."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    sizes = [_share(split.val, count), _share(split.test, count)]
    train_size = count - sum(sizes)
    if train_size < 1:
        raise SpecError(Problem(("data", "split"), f"{count} samples leave none for training "
                                f"after {sizes[0]} for validation and {sizes[1]} for test",
                                "use more samples or smaller val/test fractions"))
    train, val, test = torch.split(order, [train_size, *sizes])
    return train, (val if sizes[0] else None), (test if sizes[1] else None)


def _share(fraction: float, count: int) -> int:
    # a split that is asked for gets at least one sample
    return 0 if fraction == 0 else max(1, round(fraction * count))


def normalize(x: torch.Tensor, train: torch.Tensor, how: str | NormalizeStats,
              name: str) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """`x` standardised per channel (images) or per feature (tables, sequences).

    `how` is "auto" (mean and std of the samples at `train`) or fixed statistics.
    """
    axis = _channel_axis(x)
    channels = x.shape[axis] if axis is not None else 1
    if isinstance(how, NormalizeStats):
        if len(how.mean) != channels:
            raise SpecError(Problem(("data", "normalize"), f"normalize gives {len(how.mean)} "
                                    f"values but {name} has {channels} "
                                    f"{'channels' if x.ndim >= 4 else 'features'}"))
        mean = torch.tensor(how.mean, dtype=torch.float64)
        std = torch.tensor(how.std, dtype=torch.float64)
    else:
        sample = x[train].double()
        dims = [d for d in range(sample.ndim) if d != axis]
        mean = sample.mean(dim=dims).reshape(channels)
        std = sample.std(dim=dims, correction=0).reshape(channels)
        std = torch.where(std < _FLAT_STD, torch.ones_like(std), std)
    view = [1] * x.ndim
    if axis is not None:
        view[axis] = channels
    scaled = (x - mean.reshape(view).float()) / std.reshape(view).float()
    return scaled, {"mean": mean.tolist(), "std": std.tolist()}


def _channel_axis(x: torch.Tensor) -> int | None:
    """The axis statistics are kept per: channels of (N, C, H, W) / (N, C, D, H, W) images,
    the last axis of (N, features) tables and (N, steps, features) sequences."""
    if x.ndim >= 4:
        return 1
    return x.ndim - 1 if x.ndim >= 2 else None


__all__ = [
    "DATASETS",
    "DataSplits",
    "TensorSet",
    "check_outputs",
    "load_data",
    "normalize",
    "split_indices",
]
