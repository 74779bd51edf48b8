"""Paths written in a spec: files it reads stay inside the spec's folder, files it writes
inside the run folder.

A spec is something people download and share, so the path it names is checked twice: here
lexically when the spec is validated (no absolute paths, drive letters, `..`, control
characters or empty parts), and again by `resolve_inside` where the file is opened, after
symlinks are followed. Paths given on the command line are the user's own and are not
checked here.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Annotated

from pydantic import AfterValidator

from dlspec.errors import Path as SpecPath
from dlspec.errors import Problem, SpecError

MAX_PATH_LENGTH = 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
READ_HINT = ("a spec reads only inside its own folder: give a path relative to it, such as "
             "data/train.csv")
WRITE_HINT = ("a spec writes only inside the run folder: give a file name such as "
              "model.onnx")


def path_problem(written: str) -> str | None:
    """Why `written` may not appear in a spec as a path, or None when it may."""
    if len(written) > MAX_PATH_LENGTH:
        return f"a path of {len(written)} characters is too long (at most {MAX_PATH_LENGTH})"
    shown = _shown(written)
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in written):
        return f"the path {shown} holds control or invisible characters"
    if written.startswith(("/", "\\", "~")) or _DRIVE.match(written):
        return f"the path {shown} is absolute"
    if ":" in written:  # a drive-relative path or an NTFS stream on Windows
        return f"the path {shown} holds ':'"
    parts = written.replace("\\", "/").removesuffix("/").split("/")  # `images/` is a folder
    if ".." in parts:
        return f"the path {shown} climbs out of its folder with '..'"
    if "" in parts:
        return f"the path {shown} has an empty part"
    return None


def _confined(hint: str) -> AfterValidator:
    """A validator that refuses what `path_problem` refuses, with `hint` after the reason."""
    def check(value: str) -> str:
        if problem := path_problem(value):
            raise ValueError(f"{problem}; {hint}")
        return value
    return AfterValidator(check)


#: a file or folder the spec reads, relative to the spec's folder
ReadPath = Annotated[str, _confined(READ_HINT)]
#: a file the spec writes, relative to the run folder
WritePath = Annotated[str, _confined(WRITE_HINT)]


def resolve_inside(base_dir: Path, written: str, key: SpecPath) -> Path:
    """`base_dir / written` with symlinks followed; SpecError at `key` when it leaves `base_dir`.

    Example:
        >>> resolve_inside(Path("specs"), "data/train.csv", ("data", "csv"))  # doctest: +SKIP
        PosixPath('/home/me/dlspec/specs/data/train.csv')
    """
    if problem := path_problem(written):
        raise SpecError(Problem(key, problem, READ_HINT))
    root = base_dir.resolve()
    path = (root / PurePosixPath(written.replace("\\", "/"))).resolve()
    if not path.is_relative_to(root):
        raise SpecError(Problem(key, f"{_shown(written)} leads outside the spec's folder {root} "
                                "(through a symbolic link)", "copy or move the file into "
                                "the spec's folder"))
    return path


def inside_run(run_dir: Path, written: str, key: SpecPath) -> Path:
    """Where a file the spec names is written in `run_dir`; SpecError at `key` if elsewhere."""
    if problem := path_problem(written):
        raise SpecError(Problem(key, problem, WRITE_HINT))
    root = run_dir.resolve()
    path = root / PurePosixPath(written.replace("\\", "/"))
    if not path.resolve().is_relative_to(root):
        raise SpecError(Problem(key, f"{_shown(written)} leads outside the run folder {root} "
                                "(through a symbolic link)", WRITE_HINT))
    return path


def _shown(written: str) -> str:
    text = repr(written)  # escaped: a path cannot break the message's line or the terminal
    return text if len(text) <= 80 else text[:76] + "...'"
