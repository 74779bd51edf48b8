"""Every error dlspec reports to a user, as data.

    DlspecError                 base; carries a list of Problems
     ├── SpecError              the spec is wrong (YAML, keys, values, wiring)   → exit 2
     │    ├── ShapeError        the spec is well formed but tensors don't fit    → exit 2
     │    └── FileError         another file given is wrong (checkpoint, run     → exit 2
     │                          folder, weights); never located in the spec
     └── WorkError              the work itself failed (training diverged, ...)  → exit 1
          └── Interrupted         the user pressed Ctrl-C                          → exit 130

Stages collect `Problem`s (where, what, hint) and raise one error holding all of
them; only `dlspec.cli` turns them into text and exit codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PathItem = str | int
Path = tuple[PathItem, ...]


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: Path) -> str:
    """Render `("network", 3, "conv2d")` as `network[3].conv2d` (odd keys quoted)."""
    out = ""
    for item in path:
        if isinstance(item, int):
            out += f"[{item}]"
        elif not _PLAIN_KEY.match(item):
            out += f"[{item!r}]"  # quoted so no key can break a line or the terminal
        else:
            out += f".{item}" if out else str(item)
    return out


@dataclass(frozen=True)
class Location:
    """A place in a spec file: 1-based line and column; or, for a value given on the command
    line instead (`--set optimizer.lr=...`), that argument (line and column 0, so that it
    sorts before the file's own places)."""

    file: str
    line: int
    column: int
    argument: str | None = None  # `--set optimizer.lr`: where the value came from
    path: Path | None = None  # the spec path that argument set

    def __str__(self) -> str:
        if self.argument is not None:
            return self.argument
        return f"{self.file}:{self.line}:{self.column}"


@dataclass
class Problem:
    """One thing wrong with a spec, located by its path into the document."""

    path: Path
    message: str
    hint: str | None = None
    location: Location | None = None
    # Where the node lies when it sits on the key rather than the value (unknown keys).
    on_key: bool = False
    # For a problem inside a block's definition: which use of the block it arose in.
    used_in: str | None = None
    used_at: Path | None = None
    used_at_location: Location | None = None
    # For a problem found while checking one of the spec's variants (and not in the spec).
    variant: str | None = None
    # The `--set` arguments that changed values inside the (file-located) value at fault.
    set_by: tuple[str, ...] = ()

    def render(self) -> str:
        """`FILE:LINE:COL: PATH: message (hint)` as a compiler would print it."""
        where = f"{self.location}: " if self.location else ""
        path = format_path(self.path)
        if self.location is not None and self.location.path == tuple(self.path):
            path = ""  # `--set optimizer.lr: ...` already says where
        text = f"{where}{path}: {self.message}" if path else f"{where}{self.message}"
        if self.hint:
            text += f"; {self.hint}"
        if self.used_at is not None:
            where = f" ({self.used_at_location})" if self.used_at_location else ""
            text += f"\n    note: in {self.used_in}, used at {format_path(self.used_at)}{where}"
        if self.variant is not None:
            text += f"\n    note: in variant {self.variant}"
        if self.set_by:
            text += f"\n    note: changed by {', '.join(self.set_by)}"
        return text


class DlspecError(Exception):
    """Base of every dlspec error; holds one or more problems."""

    exit_code = 1

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem((), problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))

    def __str__(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class SpecError(DlspecError):
    """The spec (or a command-line argument naming one) is wrong."""

    exit_code = 2


class ShapeError(SpecError):
    """Tensors flowing through the network do not fit the layers they reach."""


class FileError(SpecError):
    """A file other than the spec is wrong: a checkpoint, weights, the run folder. Its
    problems name that file; they are never given a location in the spec."""


class WorkError(DlspecError):
    """The work failed although the input was valid (diverged training, ONNX mismatch)."""

    exit_code = 1


class Interrupted(WorkError):
    """The user stopped the work (Ctrl-C); what was saved is named in the message."""

    exit_code = 130
