"""The `dlspec` command: the entry point, and errors turned into messages and exit codes.

Exit codes: 0 success, 1 the work failed, 2 the input was wrong. Only this module catches
DlspecErrors and turns them into messages. The commands themselves are registered one way,
one module each (see `dlspec.commands`); nothing imports this module.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from dlspec.commands import build_parser
from dlspec.commands.common import report
from dlspec.commands.workers import data_parallel_worker, other_worker, wait_for_process_zero
from dlspec.errors import DlspecError

EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in dlspec, not in the user's input
EXIT_BROKEN_PIPE = 141  # what the shell reports for a program stopped by SIGPIPE
# what the base install leaves out: the `full` and `runtime` extras (see pyproject.toml)
_OPTIONAL_PACKAGES = frozenset({"torch", "onnx", "onnxscript", "onnxruntime", "safetensors",
                                "sklearn", "matplotlib", "rich", "PIL", "graphviz"})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dlspec` console script; returns the exit code."""
    code = _main(argv)
    if data_parallel_worker():
        # torch's process-group threads can abort the interpreter's teardown ("terminate
        # called without an active exception", about 1 run in 10 here) after the work is
        # done and written; a worker has nothing left to clean up, so it leaves at once
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = _parse(parser, argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    command: Callable[[argparse.Namespace], int] = args.run
    stdout, sys.stdout = sys.stdout, _GuardedStdout(sys.stdout)  # type: ignore[assignment]
    try:
        code = command(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below and not at exit
        return code
    except StdoutError as exc:  # `dlspec schema > /dev/full`
        sys.stdout = stdout
        _silence_stdout()
        print(f"dlspec {args.command}: cannot write to standard output: {exc}",
              file=sys.stderr)
        return 1
    except DlspecError as exc:
        if other_worker():
            wait_for_process_zero()
        report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dlspec kinds | head`: the reader left; stop quietly
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _OPTIONAL_PACKAGES:
            return _internal_error(exc)
        extra = "runtime" if args.command == "predict" else "full"
        print(f"dlspec {args.command}: needs {exc.name}, which is not installed; "
              f"install it with: pip install 'dlspec[{extra}]'", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - no user ever sees a traceback
        return _internal_error(exc)
    finally:
        if isinstance(sys.stdout, _GuardedStdout):
            sys.stdout = stdout


class StdoutError(Exception):
    """Standard output cannot be written (a full disk, a failing device)."""


class _GuardedStdout:
    """sys.stdout whose write errors are told apart from the command's own OSErrors."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: Any) -> int:
        """Write to the real stdout; StdoutError when that fails."""
        if self._stream is None:  # started with stdout closed (`dlspec schema >&-`)
            raise StdoutError("it is closed")
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            raise  # the reader left: handled on its own, quietly
        except OSError as exc:
            raise StdoutError(exc.strerror or str(exc)) from None

    def flush(self) -> None:
        """Flush the real stdout; StdoutError when that fails."""
        if self._stream is None:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutError(exc.strerror or str(exc)) from None

    @property
    def buffer(self) -> _GuardedStdout:
        """The binary stream below, guarded the same way (for UTF-8 bytes written directly)."""
        return _GuardedStdout(self._stream.buffer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _silence_stdout() -> None:
    # Python flushes stdout again at exit and would report the broken pipe a second time
    try:
        fileno = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # a test's captured stdout, or none at all
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)


def _internal_error(exc: Exception) -> int:
    first_line = (str(exc).splitlines() or [""])[0]
    print(f"dlspec: internal error: {type(exc).__name__}: {first_line}\n"
          "this is a bug in dlspec; please report it with the spec that caused it",
          file=sys.stderr)
    return EXIT_INTERNAL


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed arguments; an unknown option is reported with its command's usage (not
    the top-level one), exit 2."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        commands = next(a for a in parser._actions
                        if isinstance(a, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


if __name__ == "__main__":
    sys.exit(main())
