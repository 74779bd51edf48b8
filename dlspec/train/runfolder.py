"""The run folder: chosen, made and checked writable before any work, never silently
replaced, and locked while a run writes it.

Without `--out` a run goes to runs/<name>, or, when that holds a run already, to the first of
runs/<name>-2, runs/<name>-3, ... that does not. A folder that holds a run (its checkpoint,
metrics or resolved spec) is trained into again only with `--resume` (continue it) or
`--overwrite` (replace it: its checkpoint is removed first, so nothing can resume the old run;
the new run writes its files over the old ones).

The lock is an `flock` on `.dlspec.lock` in the folder, which holds who took it (pid, host,
command, since when). The kernel releases an flock when its process dies, however it dies,
so a killed run never blocks the next; the next finds the dead holder's note still in the
file and says it took the lock over. Locks are re-entrant within a process (`dlspec build`
holds the folder while `train_spec` takes it again), and data-parallel workers take none:
the command that launched them holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dlspec.errors import FileError, Location, Problem, SpecError, WorkError
from dlspec.runfiles import LOCK, RUN_FILES

RUNS = Path("runs")  # where runs go without --out
# set for the workers `--nproc` starts: their launcher chose, claimed and holds the folder
# (workers a user starts with torchrun themselves check it, each before any writes)
LAUNCHER_HOLDS = "DLSPEC_LAUNCHER_HOLDS_RUN_FOLDER"
_held: dict[Path, int] = {}  # folders this process holds, with how many times


def holds_run(folder: Path) -> bool:
    """Whether `folder` holds a run: its checkpoint (even one cut short) or its outputs."""
    from dlspec.train.checkpoint import MARKER, STATE

    if not folder.is_dir():
        return False
    return any((folder / name).exists() or (folder / name).is_symlink()
               for name in (MARKER, STATE, *RUN_FILES))


def choose_run_folder(out: str | Path | None, name: str, *, resume: bool = False,
                      overwrite: bool = False) -> tuple[Path, str | None]:
    """The run folder: `out`; else runs/<name>, or (neither `resume` nor `overwrite`, and
    runs/<name> holds a run) the first of runs/<name>-2, -3, ... that does not. A note when
    the folder is not runs/<name>, for the user."""
    if resume and overwrite:
        raise SpecError(Problem((), "--resume continues the run in the folder and "
                                "--overwrite replaces it", "give one of them"))
    if out is not None:
        return Path(out), None
    first = RUNS / name
    if resume or overwrite or not holds_run(first):
        return first, None
    number = 2
    while holds_run(RUNS / f"{name}-{number}"):
        number += 1
    chosen = RUNS / f"{name}-{number}"
    return chosen, (f"{first} holds a run already; this run goes to {chosen} (--resume "
                    f"continues {first}, --overwrite replaces it)")


@contextmanager
def claimed(run_dir: Path, *, resume: bool = False, overwrite: bool = False,
            command: str | None = None) -> Iterator[str | None]:
    """`locked(run_dir)`, refusing a folder that holds a run unless `resume` or `overwrite`
    (FileError, exit 2); with `overwrite` the old run's checkpoint is removed first. Yields
    what `locked` yields. Workers of `--nproc` claim nothing: their launcher did."""
    with locked(run_dir, command) as note:
        if os.environ.get(LAUNCHER_HOLDS) != "1":
            if not (resume or overwrite) and holds_run(run_dir):
                raise FileError(Problem(
                    (), f"the run folder holds a run already{_finished(run_dir)}",
                    "give --resume to continue it or --overwrite to replace it (or --out "
                    "another folder)", location=Location(str(run_dir), 0, 0,
                                                         argument=str(run_dir))))
            if overwrite:
                _remove_checkpoint(run_dir)
        yield note


def _finished(run_dir: Path) -> str:
    """` (checkpoint at epoch N)` from the folder's checkpoint marker, when it says so."""
    from dlspec.train.checkpoint import MARKER

    try:  # untrusted: no symlink, no FIFO, a few bytes
        descriptor = os.open(run_dir / MARKER, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        try:
            regular = stat.S_ISREG(os.fstat(descriptor).st_mode)
            marker = json.loads(os.read(descriptor, 4096)) if regular else None
        finally:
            os.close(descriptor)
        epoch = marker.get("epoch") if isinstance(marker, dict) else None
    except (OSError, ValueError):
        return ""
    return f" (its checkpoint is at epoch {epoch})" if type(epoch) is int else ""


def _remove_checkpoint(run_dir: Path) -> None:
    """The replaced run's checkpoint, marker first: a --resume, or the new run cut short
    before its first checkpoint, can then never continue the old run."""
    from dlspec.train.checkpoint import BEST, MARKER, STATE, WEIGHTS

    try:
        for name in (MARKER, STATE, WEIGHTS, BEST):
            (run_dir / name).unlink(missing_ok=True)
    except OSError as exc:
        raise FileError(Problem((), f"cannot replace the run in {run_dir}: "
                                f"{exc.strerror or exc} ({exc.filename})",
                                "remove its checkpoint files yourself, or give --out another "
                                "folder")) from None


def prepare_run_folder(run_dir: Path) -> None:
    """Create the run folder and check that files can be written in it (FileError if not)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise FileError(Problem((), f"the run folder {run_dir} is a file, not a folder",
                                "give --out a folder (it is created when missing)"))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".dlspec-write-check-"):
            pass
    except OSError as exc:
        raise FileError(Problem((), f"cannot write the run folder {run_dir}: "
                                f"{exc.strerror or exc}", "give --out a folder you can "
                                "write")) from None


@contextmanager
def locked(run_dir: Path, command: str | None = None) -> Iterator[str | None]:
    """Hold the run folder for this process while the block runs; yields a note when it
    took over a lock left by a process that is gone (None otherwise).

    Raises WorkError naming the holder when another live process holds it.
    """
    if "TORCHELASTIC_RUN_ID" in os.environ:  # a data-parallel worker: its launcher holds it
        yield None
        return
    created = not run_dir.exists()
    prepare_run_folder(run_dir)
    key = run_dir.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield None
        finally:
            _held[key] -= 1
        return
    path = run_dir / LOCK
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise FileError(Problem((), f"cannot lock the run folder {run_dir}: {path} "
                                f"cannot be opened ({exc.strerror or exc})",
                                f"remove {path} if it is not a plain file")) from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkError(Problem((), f"the run folder {run_dir} is in use: "
                                    f"{_describe(_read(descriptor))}",
                                    "wait for that run to end, or train into another "
                                    "folder with --out")) from None
        previous = _read(descriptor)
        note = (f"took over the run folder {run_dir}, left locked by a run that is no "
                f"longer running ({_describe(previous)})" if previous else None)
        _write(descriptor, command)
        _held[key] = 1
        _locks.add(descriptor)
        try:
            yield note
        finally:
            del _held[key]
            _locks.discard(descriptor)
            os.ftruncate(descriptor, 0)  # a clean end leaves no holder behind
            if created:
                _remove_if_unused(run_dir)
    finally:
        os.close(descriptor)  # closing releases the flock


# the descriptors of the locks this process holds. A forked child (a DataLoader worker)
# closes its copies: a copy would keep the lock after this process died, until the child
# noticed and ended, and a resume meanwhile would find the folder in use by a dead run
_locks: set[int] = set()


def _close_inherited_locks() -> None:
    for descriptor in list(_locks):
        with contextlib.suppress(OSError):
            os.close(descriptor)  # the parent's lock stands: it still holds its descriptor
    _locks.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


def _remove_if_unused(run_dir: Path) -> None:
    """A folder this run created and left holding only the lock (it failed before writing
    anything, e.g. on bad data) is removed, so a failed run leaves no trace."""
    try:
        if [entry.name for entry in run_dir.iterdir()] == [LOCK]:
            (run_dir / LOCK).unlink()
            run_dir.rmdir()
    except OSError:
        pass  # another process came in meanwhile: its folder now


def _read(descriptor: int) -> dict[str, object]:
    os.lseek(descriptor, 0, os.SEEK_SET)
    text = os.read(descriptor, 4096)
    try:
        holder = json.loads(text) if text else {}
    except ValueError:
        return {"pid": "?"}
    return holder if isinstance(holder, dict) else {"pid": "?"}


def _write(descriptor: int, command: str | None) -> None:
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "command": (command or command_line())[:300],
              "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    os.ftruncate(descriptor, 0)
    os.lseek(descriptor, 0, os.SEEK_SET)
    os.write(descriptor, json.dumps(holder).encode())


def command_line() -> str:
    """This process's command line, as a user would type it: `dlspec train spec.yaml ...`."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program in ("__main__.py", "dlspec"):
        program = "dlspec"
    return " ".join([program, *sys.argv[1:]])


def _describe(holder: dict[str, object]) -> str:
    """`process 1234 on host h, `dlspec train x.yaml`, since ...` from a lock file's note."""
    text = (f"process {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"`{holder.get('command', '?')}`, since {holder.get('since', '?')}")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text[:400]
