"""`dlspec kinds`: the layer kinds, or one kind's parameters."""

from __future__ import annotations

import argparse

from dlspec.commands.common import usage


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `kinds` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("kinds", help="list the layer kinds and their parameters")
    parser.add_argument("kind", nargs="?", help="show one kind's parameters")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """List every kind, or describe the one asked for."""
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
        raise usage(f"unknown layer kind {args.kind!r}" + (f"; {hint}" if hint else ""))
    print(f"{kind.name} ({kind.family}): {(kind.__doc__ or '').strip()}")
    if kind.main:
        print(f"  shorthand: `{kind.name}: VALUE` sets {kind.main}")
    for field in kind_fields(kind):
        default = "required" if field.required else f"default {field.default!r}"
        inferred = " (inferred from the input)" if field.inferred else ""
        print(f"  {field.key}: {type_name(field.schema)}, {default}{inferred}")
    return 0
