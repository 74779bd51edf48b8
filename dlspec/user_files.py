"""Writing a file at a path the user gave (-o, --out), with one clear error for what blocks it."""

from __future__ import annotations

from pathlib import Path

from dlspec.errors import FileError, Problem


def write_user_file(path: Path, data: bytes) -> None:
    """Write `data` to `path`, folders made on the way; FileError (exit 2) when it cannot be.

    The path is the user's own, so the message names what stands in the way: a folder of
    that name, a file where a folder should be, no permission.
    """
    if path.is_dir():
        raise FileError(Problem((), f"cannot write {path}: it is a folder",
                                "give a file path inside it"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except (FileExistsError, NotADirectoryError):  # a file where a folder should be
        blocking = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()),
                        path.parent)
        raise FileError(Problem((), f"cannot write {path}: {blocking} is a file, not a "
                                "folder")) from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        raise FileError(Problem((), f"cannot write {path}: "
                                f"{(exc.strerror or str(exc)).lower()}{where}")) from None
