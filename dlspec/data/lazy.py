"""Data read from files batch by batch, through torch's DataLoader.

When `data.cache` leaves samples on disk (`none`, or `auto` on data larger than the memory
budget), an input of a split is a `LazyColumn`: positions into `SampleFiles`, normalised as
they are read. `BatchReader` is the DataLoader's dataset: given a batch's positions it reads
every lazy column (in a worker process when `train.num_workers` > 0), indexes the in-memory
ones, and says which samples could not be read. The batch order is drawn in the main
process, so the same seed gives the same batches with 0 or N workers, and augmentation (drawn
in the main process from the same generator) stays the same too.

Normalisation statistics of a lazy input come from one streaming pass over the training
split (`streaming_statistics`), merged batch by batch in float64.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from dlspec.data.samples import SampleFiles, StoredRows, WrongSize
from dlspec.runtime.untrusted import Unreadable


class LazyColumn:
    """One input's samples, read from `files` as needed: the samples at `positions`,
    standardised with `stats` (mean, std per channel or feature) once they are known."""

    def __init__(self, files: SampleFiles, dtype: torch.dtype,
                 positions: torch.Tensor | None = None,
                 stats: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.files, self.dtype = files, dtype
        self.positions = positions if positions is not None else torch.arange(len(files))
        self.stats = stats

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def shape(self) -> torch.Size:
        """(N, *sample shape), as a tensor of the samples would have."""
        return torch.Size((len(self), *self.files.sample_shape))

    @property
    def ndim(self) -> int:
        """The number of axes, the sample axis included."""
        return 1 + len(self.files.sample_shape)

    def is_floating_point(self) -> bool:
        """Whether the samples are float (as `torch.Tensor.is_floating_point`)."""
        return self.dtype.is_floating_point

    def __getitem__(self, index: torch.Tensor | slice) -> LazyColumn:
        """The samples at `index` (positions, a boolean mask or a slice), still unread."""
        return LazyColumn(self.files, self.dtype, self.positions[index], self.stats)

    def read(self, rows: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, str, bool]]]:
        """The samples at `rows` (positions in this column) as one tensor, and the rows that
        could not be read: (row, "NAME reason", whether it is refused even where bad files
        are skipped: an image of another size); theirs are zeros in the tensor."""
        chosen = self.positions[rows].tolist()
        out = np.zeros((len(chosen), *self.files.sample_shape), dtype=self.files.dtype)
        failed: list[tuple[int, str, bool]] = []
        if isinstance(self.files, StoredRows):
            out[:] = self.files.read_rows(np.asarray(chosen, dtype=np.int64))
            if out.dtype.kind == "f":
                bad = ~np.isfinite(out.reshape(len(out), -1)).all(axis=1)
                failed = [(int(i), f"{self.files.name(chosen[int(i)])} holds NaN or infinity",
                           False) for i in np.flatnonzero(bad)]
        else:
            for row, position in enumerate(chosen):
                try:
                    out[row] = self.files.read(position)
                except Unreadable as error:
                    failed.append((row, f"{self.files.name(position)} {error}",
                                   isinstance(error, WrongSize)))
        x = torch.from_numpy(out).to(self.dtype)
        if self.stats is not None:
            mean, std = self.stats
            x = (x - mean) / std
        return x, failed

    def materialize(self) -> torch.Tensor:
        """Every sample, read now (what export checks and evaluate from a run need)."""
        x, failed = self.read(torch.arange(len(self)))
        if failed:
            raise Unreadable(failed[0][1])
        return x


class Batch(NamedTuple):
    """A batch as `BatchReader` reads it: inputs in the network's order, targets by output,
    and which samples were read (None: all of them) with why the others were not."""

    inputs: list[torch.Tensor]
    targets: dict[str, torch.Tensor]
    read: torch.Tensor | None
    failures: list[str]
    refused: list[str]  # failures that skipping bad files does not excuse (another size)


class BatchReader(torch.utils.data.Dataset[Batch]):
    """A split read a batch at a time: `reader[positions]` is one whole batch."""

    def __init__(self, inputs: dict[str, torch.Tensor | LazyColumn],
                 targets: dict[str, torch.Tensor]):
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def __getitem__(self, rows: torch.Tensor) -> Batch:  # type: ignore[override]
        inputs, failures, refused, unread = [], [], [], set[int]()
        for column in self.inputs.values():
            if isinstance(column, LazyColumn):
                x, failed = column.read(rows)
                unread.update(row for row, _, _ in failed)
                failures += [said for _, said, _ in failed]
                refused += [said for _, said, always in failed if always]
            else:
                x = column[rows]
            inputs.append(x)
        targets = {name: tensor[rows] for name, tensor in self.targets.items()}
        read = None
        if unread:
            read = torch.ones(len(rows), dtype=torch.bool)
            read[sorted(unread)] = False
        return Batch(inputs, targets, read, failures, refused)


def is_lazy(inputs: dict[str, torch.Tensor | LazyColumn]) -> bool:
    """Whether any input is read from files as needed."""
    return any(isinstance(column, LazyColumn) for column in inputs.values())


def _as_is(batch: Any) -> Any:  # the dataset returns whole batches: nothing to collate
    return batch


class _Chunks(torch.utils.data.Sampler[torch.Tensor]):
    """The positions of each batch of the current pass, set before each one."""

    def __init__(self) -> None:
        self.chunks: Sequence[torch.Tensor] = []

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)


class Reader:
    """Reads the batches of one split in the order given: in the main process, or in
    `workers` processes that stay up between passes, `prefetch` batches ahead each, into
    pinned memory when training on CUDA."""

    def __init__(self, reader: BatchReader, workers: int, pin_memory: bool = False):
        self.reader, self.workers = reader, workers
        self.loader: torch.utils.data.DataLoader[Batch] | None = None
        if workers > 0:
            self.chunks = _Chunks()
            self.loader = torch.utils.data.DataLoader(
                reader, sampler=self.chunks, batch_size=None, collate_fn=_as_is,
                num_workers=workers, pin_memory=pin_memory, persistent_workers=True,
                prefetch_factor=2)

    def __call__(self, chunks: Sequence[torch.Tensor]) -> Iterator[Batch]:
        """The batches at `chunks`, in that order."""
        if self.loader is None:
            return (self.reader[rows] for rows in chunks)
        self.chunks.chunks = chunks
        return iter(self.loader)


def streaming_statistics(column: LazyColumn, axis: int | None, batch_size: int = 64,
                         workers: int = 0,
                         ) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """The mean and standard deviation (population) of `column`'s samples per channel
    (`axis` of a batch) in one pass, in float64 merged batch by batch (Chan et al.), the
    samples that could not be read, and those of them never skipped (another size).
    Memory: a batch, twice."""
    reader = Reader(BatchReader({"x": column}, {}), workers)
    chunks = list(torch.arange(len(column)).split(batch_size))
    count, mean, squares = 0, None, None
    failures: list[str] = []
    refused: list[str] = []
    for batch in reader(chunks):
        x = batch.inputs[0]
        if batch.read is not None:
            x, failures, refused = (x[batch.read], failures + batch.failures,
                                    refused + batch.refused)
        x = x.double()
        dims = [d for d in range(x.ndim) if d != axis]
        n = math.prod(x.shape[d] for d in dims)
        if n == 0:
            continue
        batch_mean = x.mean(dim=dims)
        batch_squares = x.sub_(_expand(batch_mean, x.ndim, axis)).square_().sum(dim=dims)
        if mean is None or squares is None:
            count, mean, squares = n, batch_mean, batch_squares
            continue
        delta, total = batch_mean - mean, count + n
        mean = mean + delta * (n / total)
        squares = squares + batch_squares + delta ** 2 * (count * n / total)
        count = total
    if mean is None or squares is None:
        raise Unreadable("no sample of the training split could be read")
    return mean.reshape(-1), (squares / count).sqrt().reshape(-1), failures, refused


def _expand(values: torch.Tensor, ndim: int, axis: int | None) -> torch.Tensor:
    view = [1] * ndim
    if axis is not None:
        view[axis] = -1
    return values.reshape(view)
