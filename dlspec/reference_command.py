"""The `dlspec reference` command: print or write the spec reference (Markdown).

`add_parser` registers it with the main CLI; only argparse is imported up front. The
module also runs on its own: `python -m dlspec.reference_command [-o FILE]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = (
    "Print the spec reference as Markdown: the top-level keys, layer entries, structures, "
    "every layer kind with its fields, defaults and a checked example, and the training "
    "sections, all read from the layer registry and the spec's models. The committed copy "
    "is docs/spec-reference.md (`dlspec reference -o docs/spec-reference.md`).")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `reference` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("reference", help="print the spec reference (Markdown)",
                                 description=DESCRIPTION)
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `reference`, and `run` as the parser's action."""
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write to FILE (default: standard output)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Generate the reference; write it to -o FILE or standard output."""
    from dlspec.reference import spec_reference

    text = spec_reference()
    if args.output is None:
        stream = getattr(sys.stdout, "buffer", None)  # UTF-8 whatever the locale says
        if stream is None:
            sys.stdout.write(text)
        else:
            sys.stdout.flush()
            stream.write(text.encode("utf-8"))
            stream.flush()
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
