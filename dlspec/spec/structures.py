"""Expansion of structures — residual, parallel, sequential — and of blocks.

Mixed into the expander (dlspec.spec.expand), whose `layer`, `layers` and
`error` these methods build on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlspec.errors import Path
from dlspec.graph import InitChoice, Scope
from dlspec.layers.registry import LayerKind, lookup_kind, suggest
from dlspec.spec import expr
from dlspec.spec.context import Context, Outputs
from dlspec.spec.entries import describe
from dlspec.spec.model import (
    PARAM_TYPE_WORDS,
    BlockSpec,
    NetworkPart,
    name_problem,
    param_type_matches,
)

STRUCTURES = ("residual", "parallel", "sequential")
MERGES = ("add", "concat", "multiply")


class StructureExpansion:
    """Structure and block expansion, as methods of the expander."""

    if TYPE_CHECKING:  # provided by dlspec.spec.expand._Expander
        spec: NetworkPart
        branch_names: dict[str, str]

        def error(self, path: Path, message: str, hint: str | None = None,
                  context: Context | None = None, on_key: bool = False) -> None: ...

        def layer(self, layer_kind: LayerKind, args: Any, path: Path, context: Context,
                  local: str, sources: list[str], flags: tuple[bool, InitChoice | None],
                  shape_inputs: list[str] | None = None,
                  shape_hint: str | None = None) -> str | None: ...

        def layers(self, entries: list[Any], path: Path, context: Context,
                   current: Outputs | None, allow_split: bool = False) -> Outputs | None: ...

        def single(self, sources: list[str], path: Path, context: Context) -> str | None: ...

        def ref_error(self, path: Path, context: Context) -> Any: ...

    def structure_sequential(self, args: Any, path: Path, context: Context, local: str,
                             sources: list[str], sub: dict[str, Any]) -> Outputs | None:
        layers = args.get("layers") if isinstance(args, dict) and set(args) == {"layers"} else args
        if not isinstance(layers, list) or not layers:
            self.error(path, "sequential takes a list of layers", context=context)
            return None
        scope = Scope(context.prefix + local, "sequential", "", path)
        inner = context.child(local, scope, **sub)
        return self.layers(layers, path if layers is args else (*path, "layers"), inner,
                           self.single(sources, path, context))

    def structure_residual(self, args: Any, path: Path, context: Context, local: str,
                           sources: list[str], sub: dict[str, Any]) -> str | None:
        fields = self.structure_fields(args, path, context, required=("body",),
                                       optional={"shortcut": "identity", "merge": "add"})
        if fields is None:
            return None
        x = self.single(sources, path, context)
        if x is None:
            return None
        scope = Scope(context.prefix + local, "residual", "", path)
        inner = context.child(local, scope, **sub)
        body = self.layer_list(fields["body"], (*path, "body"), inner, x)
        if body is None:
            return None
        shortcut = self.shortcut(fields["shortcut"], (*path, "shortcut"), inner, x, body)
        if shortcut is None:
            return None
        merge = fields["merge"]
        if merge not in MERGES:
            self.error((*path, "merge"), f"residual merge must be add, concat or multiply, "
                       f"found {merge!r}", suggest(str(merge), MERGES),
                       context)
            return None
        kind = lookup_kind(merge)
        assert kind is not None
        hint = ("the shortcut is the identity: give the residual `shortcut: project` (or a list "
                "of layers) to match the body's output" if shortcut == x else None)
        return self.layer(kind, None, path, inner, merge, [body, shortcut],
                          (inner.trainable, inner.init), shape_hint=hint)

    def shortcut(self, value: Any, path: Path, context: Context, x: str,
                 body: str) -> str | None:
        if value == "identity":
            return x
        if value == "project":
            projection = lookup_kind("projection")
            assert projection is not None
            return self.layer(projection, None, path, context, "shortcut", [x],
                              (context.trainable, context.init), shape_inputs=[body])
        if isinstance(value, list):
            scope = Scope(context.prefix + "shortcut", "sequential", "shortcut", path)
            return self.layer_list(value, path, context.child("shortcut", scope), x)
        self.error(path, f"shortcut must be identity, project or a list of layers, found "
                   f"{describe(value)}", suggest(str(value), ["identity", "project"]), context)
        return None

    def structure_parallel(self, args: Any, path: Path, context: Context, local: str,
                           sources: list[str], sub: dict[str, Any]) -> Outputs | None:
        if isinstance(args, list):
            args = {"branches": args}
        fields = self.structure_fields(args, path, context, required=("branches",),
                                       optional={"merge": "none", "dim": 1})
        if fields is None:
            return None
        branches = fields["branches"]
        if isinstance(branches, list):
            branches = {str(i): b for i, b in enumerate(branches)}
        elif isinstance(branches, dict):
            for key in branches:
                if problem := name_problem(key):
                    self.error((*path, "branches", key), problem, context=context, on_key=True)
                    return None
        if not isinstance(branches, dict) or len(branches) < 2:
            self.error((*path, "branches"), "parallel needs two or more branches, each a list "
                       "of layers", context=context)
            return None
        x = self.single(sources, path, context)
        if x is None:
            return None
        scope = Scope(context.prefix + local, "parallel", "", path)
        inner = context.child(local, scope, **sub)
        outs = []
        for key, layers in branches.items():
            branch_path = (*path, "branches", int(key) if key.isdigit() else key)
            branch_scope = Scope(inner.prefix + key, "sequential", key, branch_path)
            out = self.layer_list(layers, branch_path, inner.child(key, branch_scope), x)
            if out is None:
                return None
            self.branch_names[out] = key if not key.isdigit() else f"{local}_{key}"
            outs.append(out)
        merge = fields["merge"]
        if merge == "none":
            return outs
        kind = lookup_kind(merge) if merge in MERGES else None
        if kind is None:
            self.error((*path, "merge"), f"parallel merge must be none, concat, add or "
                       f"multiply, found {merge!r}",
                       suggest(str(merge), ("none", *MERGES)), context)
            return None
        args = {"dim": fields["dim"]} if merge == "concat" else None
        return self.layer(kind, args, path, inner, merge, outs, (inner.trainable, inner.init))

    def structure_fields(self, args: Any, path: Path, context: Context,
                         required: tuple[str, ...],
                         optional: dict[str, Any]) -> dict[str, Any] | None:
        if not isinstance(args, dict):
            self.error(path, f"expected a mapping with {', '.join(required)}, found "
                       f"{describe(args)}", context=context)
            return None
        allowed = [*required, *optional]
        for key in args:
            if key not in allowed:
                self.error((*path, key), f"unknown key {key!r}",
                           suggest(key, allowed) or f"allowed: {', '.join(allowed)}",
                           context, on_key=True)
                return None
        for key in required:
            if key not in args:
                self.error(path, f"missing {key!r}", context=context)
                return None
        return {**optional, **expr.substitute(
            {k: v for k, v in args.items() if k not in required}, context.env,
            self.ref_error(path, context)), **{k: args[k] for k in required}}

    def layer_list(self, layers: Any, path: Path, context: Context, x: str) -> str | None:
        if not isinstance(layers, list) or not layers:
            self.error(path, f"expected a list of layers, found {describe(layers)}",
                       context=context)
            return None
        out = self.layers(layers, path, context, x)
        return out if isinstance(out, str) else None

    def block(self, block_name: str, args: Any, path: Path, context: Context, local: str,
              sources: list[str], sub: dict[str, Any]) -> Outputs | None:
        block = self.spec.blocks[block_name]
        if block_name in context.blocks:
            chain = " → ".join([*context.blocks, block_name])
            self.error((*path, block_name), f"block {block_name!r} uses itself ({chain})",
                       "blocks may not be recursive", context)
            return None
        args = expr.substitute(args, context.env, self.ref_error(path, context))
        env = self.bind_block_params(block_name, block, args, (*path, block_name), context)
        x = self.single(sources, path, context)
        if env is None or x is None:
            return None
        label = f"{block_name}(" + ", ".join(f"{k}={v}" for k, v in env.items()) + ")"
        scope = Scope(context.prefix + local, "block", label, path)
        inner = context.child(local, scope, env=env, parent=None,
                              blocks=(*context.blocks, block_name),
                              used_at=context.used_at or path, **sub)
        return self.layers(block.layers, ("blocks", block_name, "layers"), inner, x)

    def bind_block_params(self, block_name: str, block: BlockSpec, args: Any, path: Path,
                          context: Context) -> dict[str, Any] | None:
        if args is None:
            args = {}
        if not isinstance(args, dict):
            self.error(path, f"block {block_name} takes a mapping of its parameters "
                       f"({', '.join(block.params) or 'none'})", context=context)
            return None
        env: dict[str, Any] = {}
        ok = True
        for key, value in args.items():
            decl = block.params.get(key)
            if decl is None:
                self.error((*path, key), f"block {block_name} has no parameter {key!r}",
                           suggest(key, list(block.params)), context, on_key=True)
                ok = False
            elif not param_type_matches(decl.type, value):
                self.error((*path, key), f"parameter {key} of block {block_name} must be "
                           f"{PARAM_TYPE_WORDS[decl.type]}, found {describe(value)}",
                           context=context)
                ok = False
            else:
                env[key] = value
        for key, decl in block.params.items():
            if key not in env and decl.required and key not in args:
                self.error(path, f"block {block_name} needs parameter {key!r}",
                           f"add `{key}: ...`", context)
                ok = False
            elif key not in env and not decl.required:
                env[key] = decl.default
        return env if ok else None
