"""Checkpoints a killed run resumes from exactly: weights in safetensors, state beside them.

A checkpoint is `checkpoint.safetensors` (the model), `checkpoint.best.safetensors` (the best
weights so far of the evaluated model, in supervised runs), `checkpoint.state.pt` (optimizer,
schedules, RNG states, history, the monitor's best score and what the run was trained with;
loaded weights-only, so it can hold no code) and `checkpoint.complete`, the marker that
commits them: `{"epoch": N, "best_epoch": B}`.

Every file carries the epoch it belongs to (safetensors metadata, the state's `epoch`). A
save stages each file as `.NAME.next` (fsync'ed), replaces the marker atomically (the
commit), then renames the staged files into place. A kill before the marker leaves the
previous checkpoint whole; a kill after it leaves staged files that the next load renames
into place, since their epochs are the marker's. Files in the run folder are untrusted: a
symlink, a torn or foreign file, a pickle with code is refused with a FileError (exit 2).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_file, save_model

from dlspec.errors import FileError, Problem, WorkError
from dlspec.runfiles import CHECKPOINT_BEST as BEST
from dlspec.runfiles import CHECKPOINT_MARKER as MARKER
from dlspec.runfiles import CHECKPOINT_STATE as STATE
from dlspec.runfiles import CHECKPOINT_WEIGHTS as WEIGHTS

_EPOCH = "dlspec_epoch"  # safetensors metadata key: the epoch a weights file belongs to
_MARKER_BYTES = 4096


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write a file through `write(temporary_path)`, then fsync and rename it into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    write(temporary)
    _fsync(temporary)
    os.replace(temporary, path)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def writing(run_dir: Path) -> Iterator[None]:
    """Turn a failed write in the run folder (a full disk, a folder made read-only while
    training) into a WorkError naming it."""
    try:
        yield
    except OSError as exc:
        raise WorkError(Problem((), f"cannot write in the run folder {run_dir}: "
                                f"{exc.strerror or exc}"
                                + (f" ({exc.filename})" if exc.filename else ""),
                                "free space or fix its permissions; `--resume` continues "
                                "from the last complete checkpoint")) from None


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """The model's weights as safetensors (shared tensors handled), atomically."""
    write_atomically(path, lambda tmp: save_model(model, str(tmp)))


def _staged(path: Path) -> Path:
    return path.with_name(f".{path.name}.next")


def save_checkpoint(folder: Path, model: torch.nn.Module, state: dict[str, Any],
                    best: dict[str, torch.Tensor] | None = None,
                    best_epoch: int | None = None) -> None:
    """Stage weights, best weights (`best`: None keeps the file as it is) and state, commit
    them with the marker naming `state["epoch"]`, then move them into place."""
    with writing(folder):  # a full disk is a failed run (exit 1), whoever saves
        epoch = int(state["epoch"])
        files = [folder / WEIGHTS, folder / STATE]
        save_model(model, str(_staged(folder / WEIGHTS)),
                   metadata={_EPOCH: str(_stamp_of_state(state))})
        if best is not None and best_epoch is not None:
            tensors = {k: v.detach().cpu().clone().contiguous() for k, v in best.items()}
            save_file(tensors, str(_staged(folder / BEST)), metadata={_EPOCH: str(best_epoch)})
            files.append(folder / BEST)
        torch.save(state, _staged(folder / STATE))
        for path in files:
            _fsync(_staged(path))
        marker = {"epoch": epoch} | ({"best_epoch": best_epoch} if best_epoch is not None else {})
        if state.get("within") is not None:  # taken between batches of the next epoch
            marker["batch"] = int(state["within"]["batch"])
        write_atomically(folder / MARKER, lambda tmp: tmp.write_text(json.dumps(marker)))
        for path in files:
            os.replace(_staged(path), path)


def mark_outputs_written(folder: Path) -> None:
    """Record in the marker that the run's outputs (model.safetensors, metrics, report) of
    its last checkpoint are written: resuming it then has nothing left to do."""
    marker = _read_marker(folder / MARKER)
    write_atomically(folder / MARKER,
                     lambda tmp: tmp.write_text(json.dumps(marker | {"outputs": True})))


@dataclass
class Checkpoint:
    """A checkpoint read back: its state, the best weights so far, the marker's promises."""

    state: dict[str, Any]
    best: dict[str, torch.Tensor] | None
    outputs_written: bool

    @property
    def epoch(self) -> int:
        """The last epoch the checkpoint holds."""
        return int(self.state["epoch"])


def has_checkpoint(folder: Path) -> bool:
    """Whether the folder holds a checkpoint marker (a symlink counts: it is refused later)."""
    marker = folder / MARKER
    return marker.is_symlink() or marker.exists()


def load_checkpoint(folder: Path, model: torch.nn.Module, *,
                    check_state: Callable[[dict[str, Any]], None] | None = None,
                    best_like: torch.nn.Module | None = None) -> Checkpoint | None:
    """Restore the latest committed checkpoint's weights into `model` (None: there is none).

    `check_state(state)` runs before any weights are loaded (it compares what the run was
    trained with); `best_like` is the module whose state the best weights must fit.
    """
    if not has_checkpoint(folder):
        return None
    marker = _read_marker(folder / MARKER)
    epoch = marker["epoch"] if "batch" not in marker else f"{marker['epoch']}+{marker['batch']}"
    read: list[dict[str, Any]] = []  # each state _settle reads: the last is the one it keeps

    def state_epoch(path: Path) -> object:
        read.append(read_state(path))
        return _stamp_of_state(read[-1])

    _settle(folder / STATE, epoch, state_epoch)
    state = read[-1]
    if check_state is not None:
        check_state(state)
    weights = _settle(folder / WEIGHTS, epoch, _weights_epoch)
    _load_into(model, weights)
    best = None
    if best_like is not None:
        if marker.get("best_epoch") is None:
            raise _bad(folder / MARKER, "it names no best epoch, and this run keeps its best "
                       "weights")
        path = _settle(folder / BEST, marker["best_epoch"], _weights_epoch)
        best = read_weights(path, best_like.state_dict())
    return Checkpoint(state, best, marker.get("outputs") is True)


def _read_marker(path: Path) -> dict[str, Any]:
    _refuse_link(path)
    try:
        with open(path, "rb") as handle:
            text = handle.read(_MARKER_BYTES + 1)
        marker = json.loads(text) if len(text) <= _MARKER_BYTES else None
    except (OSError, ValueError) as exc:
        raise _bad(path, f"it cannot be read as JSON ({_short(exc)})") from None
    if not isinstance(marker, dict):
        raise _bad(path, "it is not a JSON object such as {\"epoch\": 3}")
    for key in ("epoch", "best_epoch"):
        value = marker.get(key)
        if key == "best_epoch" and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _bad(path, f"its {key} is {_short(repr(value))}, not an epoch number of 1 "
                       "or more")
    batch = marker.get("batch", 1)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise _bad(path, f"its batch is {_short(repr(batch))}, not a batch number of 1 or more")
    if marker.get("best_epoch") is not None and marker["best_epoch"] > marker["epoch"]:
        raise _bad(path, f"its best epoch {marker['best_epoch']} is after its epoch "
                   f"{marker['epoch']}")
    return marker


def _stamp_of_state(state: dict[str, Any]) -> object:
    """What names a checkpoint: its epoch, and the batch after which it was taken when it
    was taken within the next epoch ("3+120"); its files and marker must say the same."""
    within = state.get("within")
    if isinstance(within, dict) and "batch" in within:
        return f"{state['epoch']}+{within['batch']}"
    return state["epoch"]


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _settle(path: Path, epoch: object, epoch_of: Callable[[Path], object]) -> Path:
    """The file of the marker's epoch: in place, or staged by a save that was killed after
    its commit (then moved into place now)."""
    staged = _staged(path)
    for candidate in (path, staged):
        _refuse_link(candidate)
    if path.exists() and epoch_of(path) == epoch:
        return path
    if staged.exists() and _epoch_or_none(staged, epoch_of) == epoch:
        with contextlib.suppress(FileNotFoundError):  # a data-parallel worker moved it
            os.replace(staged, path)
        return path
    if not path.exists():
        raise _bad(path, "it is missing")
    raise _bad(path, f"it is of epoch {_short(epoch_of(path))}, but {MARKER} says {epoch}")


def _epoch_or_none(path: Path, epoch_of: Callable[[Path], object]) -> object:
    try:
        return epoch_of(path)
    except FileError:  # a staged file torn by a kill before its commit
        return None


def _refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise _bad(path, "it is a symbolic link; a run folder's checkpoint files must be the "
                   "files dlspec wrote")


def _weights_epoch(path: Path) -> object:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as handle:
            value = (handle.metadata() or {}).get(_EPOCH)
    except (OSError, SafetensorError) as exc:
        raise _bad(path, f"it is not a readable safetensors file ({_short(exc)})") from None
    return int(value) if isinstance(value, str) and value.isdigit() else value


def read_state(path: Path) -> dict[str, Any]:
    """A checkpoint state, loaded weights-only: plain data and tensors, never code."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols
            state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise _bad(path, "it holds Python objects other than tensors and plain data, which "
                   "dlspec never writes; it was refused unread (nothing in it ran)") from None
    except (OSError, EOFError, ValueError, RuntimeError, zipfile.BadZipFile, KeyError,
            TypeError, AttributeError, IndexError, MemoryError) as exc:
        raise _bad(path, f"it is not a checkpoint state dlspec wrote, or it is truncated "
                   f"({_short(exc)})") from None
    if not isinstance(state, dict) or not _whole(state.get("epoch")):
        raise _bad(path, "it is not a checkpoint state dlspec wrote (no epoch in it)")
    return state


def read_weights(path: Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file that must be exactly `expected`'s names, dtypes and
    shapes; FileError naming the first that is not."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _check_tensors(path, expected, strict=True)
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise _bad(path, f"it is not a readable safetensors file ({_short(exc)})") from None


def _check_tensors(path: Path, expected: dict[str, torch.Tensor], strict: bool) -> None:
    """Compare the file's header (names, dtypes, shapes) with `expected` before reading
    any data; `strict`: every expected name must be there."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as handle:
            found = {name: handle.get_slice(name) for name in handle.keys()}  # noqa: SIM118
            header = {name: (s.get_dtype(), tuple(s.get_shape())) for name, s in found.items()}
    except (OSError, SafetensorError) as exc:
        raise _bad(path, f"it is not a readable safetensors file ({_short(exc)})") from None
    for name, (dtype, shape) in header.items():
        if name not in expected:
            raise _bad(path, f"it holds a tensor {_short(name)} that the network lacks")
        want = expected[name]
        if _dtype_name(want.dtype) != dtype or tuple(want.shape) != shape:
            raise _bad(path, f"its tensor {name} is {dtype} {list(shape)}; the network's is "
                       f"{_dtype_name(want.dtype)} {list(want.shape)}")
    missing = [name for name in expected if name not in header]
    if strict and missing:
        raise _bad(path, f"it lacks the network's tensor {missing[0]}")


_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
           torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
           torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


def _dtype_name(dtype: torch.dtype) -> str:
    return _DTYPES.get(dtype, str(dtype))


def _load_into(model: torch.nn.Module, path: Path) -> None:
    from safetensors import SafetensorError

    _check_tensors(path, model.state_dict(), strict=False)  # shared tensors are kept once
    try:
        missing, unexpected = load_model(model, str(path), strict=False)
    except (OSError, SafetensorError, RuntimeError) as exc:
        raise _bad(path, f"it cannot be loaded ({_short(exc)})") from None
    if missing or unexpected:
        raise _bad(path, f"it does not match this spec's network (missing "
                   f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")


def _short(value: object, limit: int = 160) -> str:
    """A short, printable excerpt of something read from an untrusted file."""
    text = value if isinstance(value, str) else repr(value) if not isinstance(
        value, BaseException) else str(value).splitlines()[0] if str(value) else type(
        value).__name__
    text = text.encode("ascii", "backslashreplace").decode()
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def _bad(path: Path, why: str) -> FileError:
    return FileError(Problem((), f"{path}: {why}", "remove the run folder's checkpoint.* "
                             "files (or train into a new --out folder) to start over"))
