"""Seeded train/val/test splits of a dataset's samples."""

from __future__ import annotations

import torch

from dlspec.errors import Problem, SpecError
from dlspec.spec.sections import Split

Splits = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]


def split_indices(count: int, split: Split, seed: int) -> Splits:
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
