"""The run folder: made and checked writable before any work, and locked while a run writes it.

The lock is an `flock` on `.dlspec.lock` in the folder, which holds who took it (pid, host,
command, since when). The kernel releases an flock when its process dies, however it dies,
so a killed run never blocks the next; the next finds the dead holder's note still in the
file and says it took the lock over. Locks are re-entrant within a process (`dlspec build`
holds the folder while `train_spec` takes it again), and data-parallel workers take none:
the command that launched them holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dlspec.errors import FileError, Problem, WorkError

LOCK = ".dlspec.lock"
_held: dict[Path, int] = {}  # folders this process holds, with how many times


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
        try:
            yield note
        finally:
            del _held[key]
            os.ftruncate(descriptor, 0)  # a clean end leaves no holder behind
            if created:
                _remove_if_unused(run_dir)
    finally:
        os.close(descriptor)  # closing releases the flock


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
              "command": (command or _command())[:300],
              "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    os.ftruncate(descriptor, 0)
    os.lseek(descriptor, 0, os.SEEK_SET)
    os.write(descriptor, json.dumps(holder).encode())


def _command() -> str:
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
