"""`dlspec kinds`: the layer kinds and structures, or one's parameters (a structure's keys)."""

from __future__ import annotations

import argparse

from dlspec.commands.common import usage


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `kinds` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("kinds", help="list the layer kinds and their parameters")
    parser.add_argument("kind", nargs="?", help="show one kind's parameters, or a structure's "
                        "keys (residual, parallel, sequential, split, chunk; block)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """List every kind and structure, or describe the one asked for."""
    from dlspec.layers.registry import kind_names, lookup_kind, suggest
    from dlspec.reference import kind_fields, kind_summary, type_name
    from dlspec.spec.structure_docs import STRUCTURES

    if args.kind is None:
        for name in kind_names():
            kind = lookup_kind(name)
            assert kind is not None
            print(f"{name:24} {kind.family:14} {kind_summary(kind)}")
        for name, structure in STRUCTURES.items():
            print(f"{name:24} {structure.what:14} {structure.summary}")
        return 0
    if (doc := STRUCTURES.get(args.kind)) is not None:
        print("\n".join(doc.lines()))
        return 0
    kind = lookup_kind(args.kind)
    if kind is None or kind.hidden:
        hint = suggest(args.kind, [*kind_names(), *STRUCTURES])
        raise usage(f"unknown layer kind or structure {args.kind!r}"
                    + (f"; {hint}" if hint else "; a block of a spec is defined under its "
                       "`blocks:` (`dlspec kinds block` shows how)"))
    print(f"{kind.name} ({kind.family}): {(kind.__doc__ or '').strip()}")
    if kind.main:
        print(f"  shorthand: `{kind.name}: VALUE` sets {kind.main}")
    for field in kind_fields(kind):
        default = "required" if field.required else f"default {field.default!r}"
        inferred = " (inferred from the input)" if field.inferred else ""
        print(f"  {field.key}: {type_name(field.schema)}, {default}{inferred}")
    return 0
