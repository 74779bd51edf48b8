"""`dlspec check`: validate specs and infer every shape; every problem located."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from dlspec.commands.args import add_override_argument
from dlspec.commands.common import print_problems, report
from dlspec.errors import DlspecError

if TYPE_CHECKING:
    from dlspec.spec.model import Spec


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `check` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("check", help="validate a spec and infer every shape")
    parser.add_argument("spec", type=Path, nargs="+", help="spec file(s)")
    parser.add_argument("--variant", help="check only this variant (default: the spec and "
                        "every variant)")
    add_override_argument(parser)
    parser.add_argument("--no-shapes", action="store_true",
                        help="validate the format only (fast; does not import torch)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check each spec file; the worst exit code."""
    codes = [_check_file(path, args.variant, args.no_shapes, args.overrides)
             for path in args.spec]
    return max(codes, default=0)


def _check_file(path: Path, variant: str | None, no_shapes: bool,
                overrides: list[str] | None = None) -> int:
    """Check one spec: the variant asked for, or the spec itself and then each variant
    (each with the `--set` overrides applied).

    The file is read once. A problem the spec itself has is reported once, not again for
    every variant that inherits it; a problem only a variant has names the variant.
    """
    import dlspec
    from dlspec.spec.load import load_yaml_file

    try:
        document = load_yaml_file(path)
    except DlspecError as exc:
        report(exc)
        return exc.exit_code
    code = 0
    reported: set[str] = set()
    variants: list[str | None] = [variant]
    while variants:
        current = variants.pop(0)
        try:
            spec = dlspec.validate(document, current, overrides)
            if variant is None and current is None:
                variants += list(spec.variants or {})  # only once the spec itself is valid
            _check_one(spec, path, no_shapes)
        except DlspecError as exc:
            code = max(code, exc.exit_code)
            new = [p for p in exc.problems if p.render() not in reported]
            reported.update(p.render() for p in new)
            for problem in new:
                problem.variant = current if variant is None else None
            print_problems(new)
    return code


def _check_one(spec: Spec, path: Path, no_shapes: bool) -> None:
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


