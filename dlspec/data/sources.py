"""Where a spec's data comes from, read for the network by name: samples per input, targets
per output.

A network with one input (and at most one output) reads one array of inputs and one of
targets, as every source has always given them. Several inputs or outputs — or the mappings
`inputs`, `targets`, `images` and `pairs` — are mapped by name: an input reads the NPZ key,
CSV columns or built-in array the spec maps it to, else the one named like it; an output
likewise. What cannot be found is a SpecError at the key that named it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlspec.data.builtin import Options, generate
from dlspec.data.files import (
    did_you_mean,
    npz_array,
    npz_input,
    npz_keys,
    read_csv,
    read_image_folder,
    read_npz,
    resolve,
)
from dlspec.data.fit import DATA, Feed, Mapped, RawData
from dlspec.data.pairs import make_pairs
from dlspec.data.samples import SampleFiles
from dlspec.data.shards import read_shards
from dlspec.data.tables import TARGET, read_table
from dlspec.errors import Path as SpecPath
from dlspec.errors import Problem, SpecError
from dlspec.graph import InputDecl
from dlspec.layers.registry import Shape
from dlspec.runtime.untrusted import excerpt
from dlspec.spec.sections import DataConfig, TaskConfig
from dlspec.spec.sections.data import NAMED_DATASETS
from dlspec.tasks import task_has

DEFAULT_NUM_SAMPLES = 1000
DEFAULT_SEQ_LEN = 20


def read_mapped(data: DataConfig, task: TaskConfig | None, inputs: dict[str, InputDecl],
                outputs: dict[str, Shape] | None, seed: int, base_dir: Path) -> Mapped:
    """The samples of each input and the targets of each output, as the source gave them.

    Targets are keyed by output name; with `outputs` None, the one target is keyed "target".
    """
    several = len(inputs) > 1 or (outputs is not None and len(outputs) > 1)
    class_order = task.labels if task is not None else None
    if data.pairs is not None:
        (decl, *_) = inputs.values()
        raw = in_memory(read_single(data, None, decl, seed, base_dir))
        return make_pairs(raw, data, inputs, _sole_key(outputs), seed)
    if data.csv is not None and (data.named or several):
        return read_table(data, inputs, outputs, class_order, base_dir)
    if data.npz is not None and (data.named or several):
        return _read_npz(data, inputs, outputs, base_dir)
    if data.dataset in NAMED_DATASETS:
        return _read_builtin(data, inputs, outputs, seed)
    if len(inputs) != 1:
        source = f"{data.source} {getattr(data, data.source)}"
        raise SpecError(Problem(("data", data.source), f"{source} feeds one input, but the "
                                f"network reads {', '.join(inputs) or 'no inputs'}",
                                "map each input to its data with `inputs:` (npz, csv), or "
                                "draw two-input pairs of one dataset with `pairs:`"))
    if outputs is not None and len(outputs) > 1:
        raise SpecError(Problem(("data", data.source), f"{data.source} "
                                f"{getattr(data, data.source)} has one target, but the network "
                                f"has outputs {', '.join(outputs)}", "map each output to its "
                                "targets with `targets:` (npz, csv)"))
    ((name, decl),) = inputs.items()
    raw = read_single(data, task, decl, seed, base_dir)
    key = _sole_key(outputs)
    return Mapped({name: Feed(raw.x, DATA, raw.images)}, {key: raw}, {key: DATA}, raw.source)


def _sole_key(outputs: dict[str, Shape] | None) -> str:
    """The key of the one target: the network's one output, or "target"."""
    return next(iter(outputs)) if outputs else TARGET


def read_single(data: DataConfig, task: TaskConfig | None, decl: InputDecl, seed: int,
                base_dir: Path) -> RawData:
    """One array of inputs and one of targets (or none), from any source."""
    class_order = task.labels if task is not None else None
    if data.csv is not None:
        return read_csv(data.csv, data, base_dir, class_order)
    if data.npz is not None:
        return read_npz(data.npz, data, base_dir)
    if data.image_folder is not None:
        raw = read_image_folder(data.image_folder, data, base_dir, class_order)
        if task is not None and task_has(task.type, "two_domains"):
            return two_domains(in_memory(raw), seed, data.image_folder)
        return raw
    if data.shards is not None:
        return read_shards(data.shards, data, base_dir, class_order)
    if data.dataset is None:
        raise SpecError(Problem(("data",), "no data source",
                                "give one of dataset, csv, npz, image_folder or shards"))
    shape = tuple(decl.shape)
    generated = generate(data.dataset, _options(data, seed, shape))
    assert isinstance(generated, RawData)  # sets of several arrays are read by name
    return generated


def in_memory(raw: RawData) -> RawData:
    """`raw` with its samples read into memory (pairs and CycleGAN's domains are drawn
    from whole arrays)."""
    if isinstance(raw.x, SampleFiles):
        raw.x = raw.x.materialize()
    return raw


def _options(data: DataConfig, seed: int, shape: Shape | None,
             array_shapes: dict[str, Shape] | None = None) -> Options:
    # a sequence input (seq_len, features) says how long generated sequences should be
    seq_len = data.seq_len or (shape[0] if shape is not None and 1 <= len(shape) <= 2
                               else DEFAULT_SEQ_LEN)
    return Options(num_samples=data.num_samples or DEFAULT_NUM_SAMPLES, noise=data.noise,
                   seq_len=seq_len, seed=seed, input_shape=shape, array_shapes=array_shapes)


def two_domains(raw: RawData, seed: int, folder: str) -> RawData:
    """An image folder read as CycleGAN's two domains: its first sub-folder (in sorted order,
    e.g. trainA) the inputs, its second (trainB) the image targets. Each domain is shuffled
    with the seed and cut to the smaller one's count, so no image is seen twice."""
    assert isinstance(raw.x, np.ndarray)  # read whole: the domains are drawn from all of it
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


# --------------------------------------------------------------------------- by name


def _choose(name: str, mapping: dict[str, str | list[str]] | None, section: str,
            available: list[str], fallback: tuple[str, SpecPath] | None, at: SpecPath,
            what: str, shown: str) -> tuple[str, SpecPath]:
    """The array that input or output `name` reads, and the spec key that chose it: the one
    `mapping` (data.inputs / data.targets) names, else the one named like it, else
    `fallback`."""
    if mapping is not None and name in mapping:
        key, where = mapping[name], ("data", section, name)
        assert isinstance(key, str)  # the section allows lists for CSV columns only
        if key not in available:
            raise SpecError(Problem(where, f"{shown} has no array {excerpt(key)}",
                                    did_you_mean(key, available, "arrays")))
        return key, where
    if name in available:
        return name, at
    if fallback is not None:
        return fallback
    raise SpecError(Problem(("data", section) if mapping is not None else at,
                            f"{shown} has no array for {what} {name}",
                            f"map it: {section}: {{{name}: ARRAY}}; "
                            + did_you_mean(name, available, "arrays")))


def _target_names(data: DataConfig, outputs: dict[str, Shape] | None) -> list[str]:
    """The outputs that get targets: those `targets` maps, else every output."""
    if data.targets is not None:
        return list(data.targets)
    return list(outputs) if outputs else [TARGET]


def _read_npz(data: DataConfig, inputs: dict[str, InputDecl],
              outputs: dict[str, Shape] | None, base_dir: Path) -> Mapped:
    """Arrays of an .npz archive, by name."""
    assert data.npz is not None
    written = data.npz
    path = resolve(base_dir, written, "npz")
    keys = npz_keys(path, written)
    at: SpecPath = ("data", "npz")
    feeds = {}
    for name in inputs:
        fallback = (data.x_key, ("data", "x_key")) if len(inputs) == 1 else None
        key, where = _choose(name, data.inputs, "inputs", keys, fallback, at, "input", written)
        feeds[name] = Feed(npz_input(path, key, where, written, keys), where)
    targets, target_where = {}, {}
    names = _target_names(data, outputs)
    if data.y_key is not None or data.targets is not None:
        for name in names:
            fallback = ((data.y_key, ("data", "y_key")) if len(names) == 1
                        and data.targets is None and data.y_key is not None else None)
            key, where = _choose(name, data.targets, "targets", keys, fallback, at, "output",
                                 written)
            y = npz_array(path, key, where, written, keys)
            targets[name] = RawData(np.empty((len(y), 0), np.float32), y, f"{written} (NPZ)")
            target_where[name] = where
    elif len(names) == 1:  # y_key: null — no targets
        count = len(next(iter(feeds.values())).x)
        targets[names[0]] = RawData(np.empty((count, 0), np.float32), None, f"{written} (NPZ)")
        target_where[names[0]] = ("data", "y_key")
    return Mapped(feeds, targets, target_where, f"{written} (NPZ)")


def _read_builtin(data: DataConfig, inputs: dict[str, InputDecl],
                  outputs: dict[str, Shape] | None, seed: int) -> Mapped:
    """A built-in set of several named arrays, generated for the network's input shapes."""
    assert data.dataset is not None
    renamed = data.inputs or {}
    shapes = {str(renamed.get(name, name)): tuple(decl.shape) for name, decl in inputs.items()}
    arrays = generate(data.dataset, _options(data, seed, None, shapes))
    assert isinstance(arrays, Mapped)
    at: SpecPath = ("data", "dataset")
    feeds = {}
    for name in inputs:
        only = list(arrays.feeds)
        fallback = (only[0], at) if len(only) == 1 and len(inputs) == 1 else None
        key, where = _choose(name, data.inputs, "inputs", only, fallback, at, "input",
                             data.dataset)
        feeds[name] = Feed(arrays.feeds[key].x, where, arrays.feeds[key].images)
    targets, target_where = {}, {}
    names = _target_names(data, outputs)
    for name in names:
        only = list(arrays.targets)
        fallback = (only[0], at) if len(only) == 1 and len(names) == 1 else None
        key, where = _choose(name, data.targets, "targets", only, fallback, at, "output",
                             data.dataset)
        targets[name], target_where[name] = arrays.targets[key], where
    return Mapped(feeds, targets, target_where, arrays.source)
