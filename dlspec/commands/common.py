"""What several commands print or refuse the same way."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from dlspec.errors import DlspecError, Problem, SpecError

if TYPE_CHECKING:
    from dlspec.train.engine import TrainResult

# `check` of a spec with thousands of mistakes prints the first ones; exc.problems has all
MAX_PRINTED_PROBLEMS = 50

T = TypeVar("T")


def report(error: DlspecError) -> None:
    """Print an error's problems to stderr, compiler-style."""
    print_problems(error.problems)


def print_problems(problems: Sequence[Problem]) -> None:
    """Print problems to stderr, compiler-style: the first MAX_PRINTED_PROBLEMS of them."""
    lines = [problem.render() for problem in problems[:MAX_PRINTED_PROBLEMS]]
    if len(problems) > MAX_PRINTED_PROBLEMS:
        more = len(problems) - MAX_PRINTED_PROBLEMS
        lines.append(f"… and {more:,} more problem{'s' if more > 1 else ''}")
    if lines:
        print("\n".join(lines), file=sys.stderr)


def usage(message: str) -> DlspecError:
    """The error for arguments that do not fit the spec (exit 2)."""
    return SpecError(message)


def pick(shaped: dict[str, T], network: str | None, spec_name: str) -> dict[str, T]:
    """The networks --network chose: all of them when it is not given."""
    if network is None:
        return shaped
    if network not in shaped:
        raise usage(f"spec {spec_name} has no network {network!r}; it has "
                    f"{', '.join(shaped)}")
    return {network: shaped[network]}


def emit(text: str, output: Path | None) -> None:
    """Write `text` to standard output, or to the file -o named."""
    if output is None:
        sys.stdout.write(text)
        return
    from dlspec.user_files import write_user_file

    write_user_file(output, text.encode("utf-8"))
    print(f"wrote {output}", file=sys.stderr)


def test_line(result: TrainResult) -> str:
    """A run's numbers in one line: the test split's, else the last epoch's."""
    numbers = result.test or (result.fit.history[-1] if result.fit.history else {})
    where = "test" if result.test else "last epoch"
    hidden = ("epoch", "seconds", "samples_per_second", "lr")
    shown = ", ".join(f"{k} {v:.4f}" for k, v in numbers.items()
                      if k not in hidden and not k.startswith("lr/"))
    return f"{where}: {shown} ({result.seconds:.1f} s; {result.fit.stop_reason})"
