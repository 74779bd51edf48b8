"""The `dlspec` command: parse arguments, call the library, print results.

Exit codes: 0 success, 1 the work failed, 2 the input was wrong. Only this
module catches DlspecErrors and turns them into messages.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlspec.errors import DlspecError

EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in dlspec, not in the user's input
EXIT_BROKEN_PIPE = 141  # what the shell reports for a program stopped by SIGPIPE
# what the base install leaves out: the `full` and `runtime` extras (see pyproject.toml)
_OPTIONAL_PACKAGES = frozenset({"torch", "onnx", "onnxscript", "onnxruntime", "safetensors",
                                "sklearn", "matplotlib", "rich", "PIL", "graphviz"})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dlspec` console script; returns the exit code."""
    code = _main(argv)
    if _data_parallel_worker():
        # torch's process-group threads can abort the interpreter's teardown ("terminate
        # called without an active exception", about 1 run in 10 here) after the work is
        # done and written; a worker has nothing left to clean up, so it leaves at once
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
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
        if _other_worker():
            _wait_for_process_zero()
        _report(exc)
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlspec", description="Declare a neural network in YAML; check, compile, "
        "train and export it.")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate a spec and infer every shape")
    check.add_argument("spec", type=Path, nargs="+", help="spec file(s)")
    check.add_argument("--variant", help="check only this variant (default: the spec and "
                       "every variant)")
    check.add_argument("--no-shapes", action="store_true",
                       help="validate the format only (fast; does not import torch)")
    check.set_defaults(run=_check)

    summary = commands.add_parser("summary", help="table of layers, shapes and parameters")
    summary.add_argument("spec", type=Path)
    _add_variant_argument(summary)
    summary.add_argument("--network", help="which network of a multi-network spec")
    summary.set_defaults(run=_summary)

    code = commands.add_parser("code", help="print the model as standalone PyTorch source")
    code.add_argument("spec", type=Path)
    _add_variant_argument(code)
    code.add_argument("--network", help="which network of a multi-network spec")
    code.add_argument("-o", "--output", type=Path, help="write to this file")
    code.set_defaults(run=_code)

    train = commands.add_parser("train", help="train the network on the spec's data")
    _add_training_arguments(train)
    train.add_argument("--resume", action="store_true",
                       help="continue from the run folder's last complete checkpoint")
    train.set_defaults(run=_train)

    build = commands.add_parser("build", help="check, train and evaluate into one run folder")
    _add_training_arguments(build)
    build.set_defaults(run=_build)

    export = commands.add_parser("export", help="export to ONNX, verified in ONNX Runtime")
    export.add_argument("spec", type=Path)
    _add_variant_argument(export)
    export.add_argument("--checkpoint", type=Path,
                        help="trained weights: a run folder or its model.safetensors "
                        "(default: freshly initialised weights)")
    export.add_argument("-o", "--output", type=Path,
                        help="the .onnx file (default <spec name>.onnx, or model.onnx in the "
                        "checkpoint's run folder)")
    export.add_argument("--network", help="which network of a multi-network spec")
    export.add_argument("--opset", type=positive_int, help="override export.onnx.opset")
    export.add_argument("--dynamic", type=_axes, metavar="AXES",
                        help="dynamic axes, e.g. batch or batch,seq (default: batch, and seq "
                        "where an input is a sequence)")
    export.add_argument("--atol", type=float, help="absolute tolerance of the verification")
    export.add_argument("--rtol", type=float, help="relative tolerance of the verification")
    export.add_argument("--optimize", action="store_true", default=None,
                        help="run ONNX Runtime's graph optimisation, then verify again")
    export.add_argument("--verbose", action="store_true", help="show the exporter's own log")
    export.set_defaults(run=_export)

    schema = commands.add_parser("schema", help="print the JSON Schema of the spec format")
    schema.add_argument("-o", "--output", type=Path, help="write to this file")
    schema.set_defaults(run=_schema)

    kinds = commands.add_parser("kinds", help="list the layer kinds and their parameters")
    kinds.add_argument("kind", nargs="?", help="show one kind's parameters")
    kinds.set_defaults(run=_kinds)

    from dlspec.runtime.command import add_parser as add_predict  # imports nothing heavy

    add_predict(commands)

    from dlspec.diagram.command import add_parser as add_diagram  # imports nothing heavy

    add_diagram(commands)

    from dlspec.reference_command import add_parser as add_reference  # imports nothing heavy

    add_reference(commands)
    return parser


def _add_variant_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", help="use this variant of the spec (its `variants:`)")


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path)
    _add_variant_argument(parser)
    parser.add_argument("--out", type=Path, help="run folder (default runs/<spec name>)")
    parser.add_argument("--epochs", type=positive_int, help="override train.epochs")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"],
                        help="override train.device")
    parser.add_argument("--nproc", type=positive_int, default=1, metavar="N",
                        help="train data-parallel in N processes (DistributedDataParallel "
                        "through torchrun; gloo on CPU, one GPU each with nccl)")


def _axes(text: str) -> list[str]:
    axes = [axis.strip() for axis in text.split(",") if axis.strip()]
    unknown = [axis for axis in axes if axis not in ("batch", "seq")]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown axis {unknown[0]!r}; the axes are batch "
                                         "and seq")
    return axes


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _version() -> str:
    from dlspec import __version__

    return f"dlspec {__version__}"


def _check(args: argparse.Namespace) -> int:
    codes = [_check_file(path, args.variant, args.no_shapes) for path in args.spec]
    return max(codes, default=0)


def _check_file(path: Path, variant: str | None, no_shapes: bool) -> int:
    """Check one spec: the variant asked for, or the spec itself and then each variant.

    The file is read once. A problem the spec itself has is reported once, not again for
    every variant that inherits it; a problem only a variant has names the variant.
    """
    import dlspec
    from dlspec.spec.load import load_yaml_file

    try:
        document = load_yaml_file(path)
    except DlspecError as exc:
        _report(exc)
        return exc.exit_code
    code = 0
    reported: set[str] = set()
    variants: list[str | None] = [variant]
    while variants:
        current = variants.pop(0)
        try:
            spec = dlspec.validate(document, current)
            if variant is None and current is None:
                variants += list(spec.variants or {})  # only once the spec itself is valid
            _check_one(spec, path, no_shapes)
        except DlspecError as exc:
            code = max(code, exc.exit_code)
            new = [p for p in exc.problems if p.render() not in reported]
            reported.update(p.render() for p in new)
            for problem in new:
                problem.variant = current if variant is None else None
            _print_problems(new)
    return code


# `check` of a spec with thousands of mistakes prints the first ones; exc.problems has all
MAX_PRINTED_PROBLEMS = 50


def _report(error: DlspecError) -> None:
    """Print an error's problems to stderr, compiler-style."""
    _print_problems(error.problems)


def _print_problems(problems: list[Any]) -> None:
    lines = [problem.render() for problem in problems[:MAX_PRINTED_PROBLEMS]]
    if len(problems) > MAX_PRINTED_PROBLEMS:
        more = len(problems) - MAX_PRINTED_PROBLEMS
        lines.append(f"… and {more:,} more problem{'s' if more > 1 else ''}")
    if lines:
        print("\n".join(lines), file=sys.stderr)


def _check_one(spec: Any, path: Path, no_shapes: bool) -> None:
    import dlspec

    if no_shapes:
        graphs = dlspec.graphs(spec)
        print(f"ok {path}: {', '.join(graphs)} "
              f"({sum(len(g.nodes) for g in graphs.values())} layers; shapes not checked)")
        return
    for name, shaped in dlspec.shapes(spec).items():
        ins = ", ".join(f"{k} {t}" + _dtype(t.dtype) for k, t in shaped.tensors.items()
                        if k in shaped.graph.inputs)
        outs = ", ".join(f"{k} {t}" + _dtype(t.dtype) for k, t in shaped.outputs().items())
        print(f"ok {path}: {name}: {ins} → {outs}; {shaped.total_params:,} parameters")


def _dtype(dtype: str) -> str:
    return "" if dtype == "float32" else f" ({dtype})"


def _summary(args: argparse.Namespace) -> int:
    import dlspec
    from dlspec.summary import render_summary

    spec = dlspec.load(args.spec, args.variant)
    shaped = _pick(dlspec.shapes(spec, count_macs=True), args.network, spec.name)
    for name, graph in shaped.items():
        render_summary(graph, title=name)
    return 0


def _code(args: argparse.Namespace) -> int:
    import dlspec
    from dlspec.codegen import generate_code

    spec = dlspec.load(args.spec, args.variant)
    shaped = _pick(dlspec.shapes(spec), args.network, spec.name)
    if len(shaped) > 1:
        raise _usage(f"spec {spec.name} has several networks ({', '.join(shaped)}); "
                     "choose one with --network")
    source = generate_code(next(iter(shaped.values())), str(args.spec))
    _emit(source, args.output)
    return 0


def _train(args: argparse.Namespace) -> int:
    if _launches_workers(args):
        import dlspec

        # spec errors once, before any worker starts
        spec = dlspec.load(args.spec, args.variant)
        dlspec.shapes(spec)
        _refuse_workers_for_gans(spec, args)
        with _held(args.out or Path("runs") / spec.name):
            return _launch_workers(args)
    result = _run_training(args, resume=args.resume)
    if not _other_worker():
        done = "already trained" if result.fit.already_done else "trained"
        print(f"{done} {result.run_dir}: " + _test_line(result))
    return 0


@contextmanager
def _held(run_dir: Path) -> Iterator[None]:
    """Hold the run folder while this command writes it (see dlspec.train.runfolder)."""
    from dlspec.train.runfolder import locked

    with locked(run_dir) as note:
        if note is not None:
            print(f"note: {note}", file=sys.stderr)
        yield


def _build(args: argparse.Namespace) -> int:
    import dlspec

    spec = dlspec.load(args.spec, args.variant)
    for name, shaped in dlspec.shapes(spec).items():
        print(f"check: ok {name}: {shaped.total_params:,} parameters", file=sys.stderr)
    with _held(args.out or Path("runs") / spec.name):  # training, export and diagram
        return _build_in(args, spec)


def _build_in(args: argparse.Namespace, spec: Any) -> int:
    if _launches_workers(args):
        _refuse_workers_for_gans(spec, args)
        code = _launch_workers(args)
        if code != 0:
            return code
        run_dir, line, module, info = args.out or Path("runs") / spec.name, "see report.md", \
            None, None
    else:
        result = _run_training(args, resume=False, spec=spec)
        run_dir, line, module = result.run_dir, _test_line(result), result.model
        from dlspec.train.run import deployment_info

        info = result.info if result.info is not None else deployment_info(result.data)
    done = [_build_export(spec, run_dir, module, info), _build_diagram(spec, run_dir)]
    with open(run_dir / "report.md", "a") as report:
        report.writelines(f"\n{entry}\n" for entry in done)
    print(f"built {run_dir}: {line}")
    return 0


def _build_diagram(spec: Any, run_dir: Path) -> str:
    """build's diagram step: architecture.svg and architecture.dot in the run folder."""
    from dlspec.diagram import draw

    result = draw(spec, run_dir / "architecture.svg")  # every network (a GAN: both)
    note = result.note()  # None unless Graphviz's `dot` is missing
    if note is not None:
        print(f"diagram: {note}", file=sys.stderr)
        return ("Diagram: [architecture.dot](architecture.dot) (not rendered: Graphviz's `dot` "
                "is not installed).")
    print("diagram: wrote " + ", ".join(str(p) for p in result.paths), file=sys.stderr)
    return "Diagram: [architecture.svg](architecture.svg) ([DOT source](architecture.dot))."


def _build_export(spec: Any, run_dir: Path, module: Any, info: Any) -> str:
    """build's export step: the trained network as a verified ONNX file in the run folder."""
    import dlspec

    if spec.export is not None and spec.export.onnx is None:
        print("export: off (export.onnx: false)", file=sys.stderr)
        return "Export: off in the spec (`export.onnx: false`)."
    section = spec.export.onnx if spec.export is not None else None
    path = run_dir / (section.file if section is not None and section.file else "model.onnx")
    checkpoint = run_dir / "model.safetensors" if module is None else None
    results = dlspec.export_spec(spec, path, checkpoint=checkpoint, module=module,
                                 info=info)
    for result in results:
        print("export: " + "\n".join(result.lines()), file=sys.stderr)
    return "Export: " + "; ".join(
        f"[{r.path.name}]({r.path.name}), verified in ONNX Runtime against PyTorch "
        f"(max abs difference {max(c.outputs[o][0] for c in r.comparisons for o in c.outputs):.2g})"
        for r in results) + "."


def _export(args: argparse.Namespace) -> int:
    import dlspec

    results = dlspec.export_spec(
        dlspec.load(args.spec, args.variant), args.output, checkpoint=args.checkpoint,
        network=args.network,
        opset=args.opset, dynamic=args.dynamic, atol=args.atol, rtol=args.rtol,
        optimize=args.optimize, verbose=args.verbose)
    if args.checkpoint is None:
        print("note: exported with freshly initialised weights (no --checkpoint)",
              file=sys.stderr)
    for result in results:
        print("exported " + "\n".join(result.lines()))
    return 0


def _launches_workers(args: argparse.Namespace) -> bool:
    """--nproc N in the command a user typed (workers, started by it, train themselves)."""
    return bool(args.nproc > 1 and "TORCHELASTIC_RUN_ID" not in os.environ)


def _refuse_workers_for_gans(spec: Any, args: argparse.Namespace) -> None:
    if spec.task is not None and spec.task.type in ("gan", "cyclegan"):
        raise _usage(f"{args.spec}: task {spec.task.type} trains in one process; --nproc is "
                     "for supervised training")


def _launch_workers(args: argparse.Namespace) -> int:
    from dlspec.train.distributed import launch

    argv = list(args.argv)
    argv[argv.index(args.command)] = "train"  # build's other steps stay in this process
    return launch(argv, args.nproc)


def _data_parallel_worker() -> bool:
    """Whether this process is one of the workers `--nproc` started."""
    return "TORCHELASTIC_RUN_ID" in os.environ


# how long a failing worker other than process 0 waits to be stopped by the launcher
_WORKER_REPORT_WAIT_S = 30.0


def _wait_for_process_zero() -> None:
    # Data-parallel workers fail alike, and process 0 speaks for all: when it fails, the
    # launcher stops the other workers. Leaving first would let the launcher stop process 0
    # before it has said why, so this worker waits; it speaks for itself only when process
    # 0 did not fail the same way (and is then stopped by the launcher in its turn).
    import time

    time.sleep(_WORKER_REPORT_WAIT_S)


def _other_worker() -> bool:
    """Whether this is a data-parallel worker other than process 0, which speaks for all."""
    return _data_parallel_worker() and os.environ.get("RANK", "0") != "0"


def _run_training(args: argparse.Namespace, resume: bool, spec: Any = None) -> Any:
    import dlspec
    from dlspec.progress import progress_for

    progress = None if _other_worker() else progress_for()
    try:
        result = dlspec.train_spec(spec or dlspec.load(args.spec, args.variant), args.out,
                                   epochs=args.epochs, device=args.device, resume=resume,
                                   callbacks=progress)
    finally:
        if progress is not None:
            progress.close()
    if not _other_worker():
        if result.transfer is not None:
            print(result.transfer.lines()[0], file=sys.stderr)
        for note in result.fit.notes:  # what a resume found or changed, a lock taken over
            print(f"note: {note}", file=sys.stderr)
    return result


def _test_line(result: Any) -> str:
    numbers = result.test or (result.fit.history[-1] if result.fit.history else {})
    where = "test" if result.test else "last epoch"
    hidden = ("epoch", "seconds", "samples_per_second", "lr")
    shown = ", ".join(f"{k} {v:.4f}" for k, v in numbers.items()
                      if k not in hidden and not k.startswith("lr/"))
    return f"{where}: {shown} ({result.seconds:.1f} s; {result.fit.stop_reason})"


def _schema(args: argparse.Namespace) -> int:
    from dlspec.spec.schema import schema_text

    _emit(schema_text(), args.output)
    return 0


def _kinds(args: argparse.Namespace) -> int:
    from dlspec.layers.registry import kind_names, lookup_kind, suggest
    from dlspec.reference import kind_fields, kind_summary, type_name

    if args.kind is None:
        for name in kind_names():
            kind = lookup_kind(name)
            assert kind is not None
            print(f"{name:24} {kind.family:14} {kind_summary(kind)}")
        return 0
    kind = lookup_kind(args.kind)
    if kind is None or kind.hidden:
        hint = suggest(args.kind, kind_names())
        raise _usage(f"unknown layer kind {args.kind!r}" + (f"; {hint}" if hint else ""))
    print(f"{kind.name} ({kind.family}): {(kind.__doc__ or '').strip()}")
    if kind.main:
        print(f"  shorthand: `{kind.name}: VALUE` sets {kind.main}")
    for field in kind_fields(kind):
        default = "required" if field.required else f"default {field.default!r}"
        inferred = " (inferred from the input)" if field.inferred else ""
        print(f"  {field.key}: {type_name(field.schema)}, {default}{inferred}")
    return 0


def _pick(shaped: dict[str, Any], network: str | None, spec_name: str) -> dict[str, Any]:
    if network is None:
        return shaped
    if network not in shaped:
        raise _usage(f"spec {spec_name} has no network {network!r}; it has "
                     f"{', '.join(shaped)}")
    return {network: shaped[network]}


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    from dlspec.user_files import write_user_file

    write_user_file(output, text.encode("utf-8"))
    print(f"wrote {output}", file=sys.stderr)


def _usage(message: str) -> DlspecError:
    from dlspec.errors import SpecError

    return SpecError(message)


if __name__ == "__main__":
    sys.exit(main())
