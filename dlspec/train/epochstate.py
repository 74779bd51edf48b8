"""The state of an epoch in progress, which a checkpoint taken between batches keeps
(`train.checkpoint_steps`) so that `--resume` goes on from the next batch as if the run had
never stopped.

What an epoch has gathered by then: the batch order's state when it began (its permutation
is drawn again from it; the order's state after the batches done is the checkpoint's own),
the batches done, the summed loss and sample count, the training metrics' tallies, each
head's summed loss, gradient norms and unreadable files skipped. In a data-parallel run the
tallies are summed over the processes when the checkpoint is taken: process 0 resumes with
the sums, the others with zeros, so the epoch's end sums them to the same totals.

A checkpoint is untrusted: what it holds is checked (types, sizes) before it is used, and
a state that does not fit is refused (ValueError → FileError naming the file).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from dlspec.train import distributed

if TYPE_CHECKING:
    from dlspec.train.supervised import SupervisedSession

_MAX_VALUES = 1 << 20  # a tally's counts per class: far more than any run has classes


@dataclass
class EpochProgress:
    """How far the epoch in progress has got."""

    begun: torch.Tensor  # the batch order's state when the epoch began
    batches: int = 0  # batches done
    total: float = 0.0  # the loss summed over the samples done
    count: int = 0  # the samples done


@dataclass
class EpochState:
    """An epoch in progress as a checkpoint keeps it."""

    progress: EpochProgress
    tallies: dict[str, tuple[dict[str, dict[str, torch.Tensor]], dict[str, bool]]]
    losses: dict[str, torch.Tensor]
    observed: bool
    norms: tuple[dict[str, float], int] | None
    skipped: list[str]

    @classmethod
    def taken(cls, session: SupervisedSession) -> EpochState:
        """The session's epoch now; in a data-parallel run with tallies summed over every
        process (each process must call this)."""
        processes = session.processes

        def summed(tensor: torch.Tensor) -> torch.Tensor:
            copy = tensor.detach().clone()
            if processes is not None:
                copy = distributed.sum_across(copy.to(session.device))
            return copy.cpu()

        tallies = {output: ({kind: {key: summed(value) for key, value in stats.items()}
                             for kind, stats in tally.stats.items()}, dict(tally.binary))
                   for output, tally in session.step_tallies.items()}
        losses = {output: summed(loss) for output, loss in session.step_losses.items()}
        norms = ((dict(session.norms.sums), session.norms.count) if session.norms is not None
                 else None)
        return cls(session.progress, tallies, losses, session.observed, norms,
                   sorted(session.skipped))

    def as_dict(self) -> dict[str, Any]:
        """The state as a checkpoint stores it (tensors, numbers, strings only)."""
        progress = self.progress
        return {"batch": progress.batches, "begun": progress.begun, "total": progress.total,
                "count": progress.count, "observed": self.observed,
                "tallies": {output: {"stats": stats, "binary": binary}
                            for output, (stats, binary) in self.tallies.items()},
                "losses": self.losses, "skipped": self.skipped,
                "norms": None if self.norms is None else {"sums": self.norms[0],
                                                          "count": self.norms[1]}}

    @classmethod
    def read(cls, state: dict[str, Any], session: SupervisedSession) -> EpochState:
        """The state `as_dict` stored, checked against the session; ValueError when it
        does not fit."""
        batch, count = state["batch"], state["count"]
        begun, total = state["begun"], state["total"]
        if not (isinstance(batch, int) and isinstance(count, int) and batch > 0
                and count >= 0 and isinstance(total, float)
                and isinstance(begun, torch.Tensor) and begun.dtype == torch.uint8):
            raise ValueError("the epoch in progress is not batches, samples and a loss")
        outputs = set(session.step_tallies)
        tallies = {}
        for output, held in _dict(state["tallies"]).items():
            if output not in outputs:
                raise ValueError(f"a tally of output {output!r}, which the network lacks")
            stats = {kind: {key: _counts(value) for key, value in _dict(kinds).items()}
                     for kind, kinds in _dict(held["stats"]).items()}
            binary = {kind: bool(flag) for kind, flag in _dict(held["binary"]).items()}
            tallies[output] = (stats, binary)
        losses = {output: _counts(loss) for output, loss in _dict(state["losses"]).items()
                  if output in session.step_losses}
        skipped = state["skipped"]
        if not isinstance(skipped, list) or not all(isinstance(s, str) for s in skipped):
            raise ValueError("the files skipped are not a list of names")
        norms = state["norms"]
        kept_norms = None
        if norms is not None:
            sums = {str(k): float(v) for k, v in _dict(norms["sums"]).items()}
            kept_norms = (sums, int(norms["count"]))
        return cls(EpochProgress(begun, batch, total, count), tallies, losses,
                   bool(state["observed"]), kept_norms, skipped)

    def restore(self, session: SupervisedSession) -> None:
        """Put the epoch's tallies back into the session (zeros in a data-parallel run's
        processes other than the first: the first holds the sums)."""
        first = session.processes is None or session.processes.main
        for output, (stats, binary) in self.tallies.items():
            tally = session.step_tallies[output]
            tally.stats = {kind: {key: value if first else torch.zeros_like(value)
                                  for key, value in kinds.items()}
                           for kind, kinds in stats.items()}
            tally.binary = dict(binary)
        for output, loss in self.losses.items():
            session.step_losses[output] = (loss if first else torch.zeros_like(loss)).to(
                session.device)
        session.observed = self.observed
        session.skipped.update(self.skipped)
        if self.norms is not None and session.norms is not None:
            session.norms.sums.update(self.norms[0])
            session.norms.count = self.norms[1]


def _dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError("a part of the epoch in progress is not a mapping by name")
    return value


def _counts(value: object) -> torch.Tensor:
    """A tally's statistic: a number or a vector of them, of a sane size."""
    if not isinstance(value, torch.Tensor) or value.dim() > 1 or value.numel() > _MAX_VALUES \
            or value.is_complex():
        raise ValueError("a tally is not a number or a vector of numbers")
    return value
