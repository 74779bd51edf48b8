"""Pairs drawn from one labelled dataset, for networks with two inputs (siamese networks).

The dataset is split first and pairs are formed within each split, so no validation or test
sample is ever paired with a training one. Each sample of a split is the first member of
`per_sample` pairs; the second is another sample of its class with probability
`same_fraction` (target 1.0), else a sample of another class (target 0.0). Draws come from a
generator seeded by the data seed and the split, so a spec always makes the same pairs.
"""

from __future__ import annotations

import numpy as np
import torch

from dlspec.data.fit import DATA, Feed, Mapped, RawData, whole_numbers
from dlspec.data.splits import split_indices
from dlspec.errors import Problem, SpecError
from dlspec.graph import InputDecl
from dlspec.layers.registry import format_shape
from dlspec.memory import format_bytes
from dlspec.runtime.untrusted import MAX_ARRAY_BYTES
from dlspec.spec.sections import DataConfig

PAIR_LABELS = ["different", "same"]  # target 0.0 and 1.0


def make_pairs(raw: RawData, data: DataConfig, inputs: dict[str, InputDecl], key: str,
               seed: int) -> Mapped:
    """Pairs of `raw`'s samples within each split, for the inputs `pairs.inputs` (default:
    the network's two); their target, keyed `key`, says whether both share a class."""
    assert data.pairs is not None
    first_input, second_input = data.pairs.inputs or list(inputs)
    if raw.y is None:
        raise SpecError(Problem(("data", "pairs"), f"pairs are formed by class, but "
                                f"{raw.source} has no targets", "pair a labelled dataset"))
    assert isinstance(raw.x, np.ndarray)  # read whole: pairs are drawn from all of it
    classes = _classes(raw, raw.y)  # (N,) int64
    needed = 2 * data.pairs.per_sample * raw.x.nbytes  # both members of every pair
    if needed > MAX_ARRAY_BYTES:
        raise SpecError(Problem(("data", "pairs", "per_sample"), f"{data.pairs.per_sample} "
                                f"pairs per sample of {raw.source} need "
                                f"{format_bytes(needed)} of memory, more than the "
                                f"{format_bytes(MAX_ARRAY_BYTES)} dlspec allows itself",
                                "form fewer pairs per sample"))
    splits = split_indices(len(raw.x), data.split, seed)
    firsts, seconds, same, bounds = [], [], [], [0]
    for number, index in enumerate(splits):
        if index is None:
            continue
        rng = np.random.default_rng([seed, number])
        a, b, s = pair_up(index.numpy(), classes, data.pairs.same_fraction,
                          data.pairs.per_sample, rng)
        firsts.append(a)
        seconds.append(b)
        same.append(s)
        bounds.append(bounds[-1] + len(a))
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    target = np.concatenate(same).astype(np.float32)  # 1.0 one class, 0.0 two
    ranges = iter(torch.arange(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1))
    train, val, test = (next(ranges) if index is not None else None for index in splits)
    assert train is not None  # split_indices always leaves training samples
    where = ("data", "pairs")
    share = data.pairs.same_fraction
    source = (f"{raw.source} as pairs ({share:.0%} of one class, {data.pairs.per_sample} "
              "per sample, formed within each split)")
    return Mapped(
        feeds={first_input: Feed(raw.x[first], where, raw.images),
               second_input: Feed(raw.x[second], where, raw.images)},
        targets={key: RawData(np.empty((len(target), 0), np.float32), target, source,
                              labels=list(PAIR_LABELS))},
        target_where={key: DATA}, source=source, unit="pairs", splits=(train, val, test))


def _classes(raw: RawData, y: np.ndarray) -> np.ndarray:
    """The class index of each sample; SpecError when the targets are not classes."""
    sample = tuple(y.shape[1:])
    if raw.measured or sample not in ((), (1,)) or not whole_numbers(y) or (
            y.size and y.min() < 0):
        what = ("measured values" if raw.measured or sample in ((), (1,))
                else f"{format_shape(sample)} per sample")
        raise SpecError(Problem(("data", "pairs"), f"pairs are formed by class, but the "
                                f"targets of {raw.source} are {what}, not a class index a "
                                "sample", "pair a labelled dataset"))
    return y.reshape(-1).astype(np.int64)


def pair_up(index: np.ndarray, classes: np.ndarray, same_fraction: float, per_sample: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs among the samples at `index`: their first and second members (positions into
    `classes`) and whether both share a class.

    A sample alone in its class is paired with itself when a pair of one class is drawn;
    in a split of one class every pair is of one class.
    """
    first = np.repeat(index, per_sample)
    order = index[np.argsort(classes[index], kind="stable")]  # the split's samples by class
    ordered = classes[order]
    label = classes[first]
    start = np.searchsorted(ordered, label, side="left")
    size = np.searchsorted(ordered, label, side="right") - start
    rank = np.empty(len(classes), dtype=np.int64)
    rank[order] = np.arange(len(order))
    # one class: another member of the block [start, start + size), skipping the sample itself
    pick = start + rng.integers(0, np.maximum(size - 1, 1))
    pick = np.where((size > 1) & (pick >= rank[first]), pick + 1, pick)
    partner_same = np.where(size > 1, order[np.minimum(pick, len(order) - 1)], first)
    # two classes: any position outside the block
    others = len(order) - size
    outside = rng.integers(0, np.maximum(others, 1))
    outside = np.where(outside >= start, outside + size, outside)
    partner_other = order[np.minimum(outside, len(order) - 1)]
    same = (rng.random(len(first)) < same_fraction) | (others == 0)
    return first, np.where(same, partner_same, partner_other), same
