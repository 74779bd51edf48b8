"""Expansion of structures — residual, parallel, sequential — and of blocks.

Mixed into the expander (dlspec.spec.expand), whose `layer`, `layers` and
`error` these methods build on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dlspec.errors import Path
from dlspec.graph import InitChoice, Scope, ShapesSoFar
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

STRUCTURES = ("residual", "parallel", "sequential", "split", "chunk")
MAX_PARTS = 1024
MERGES = ("add", "concat", "multiply")


class StructureExpansion:
    """Structure and block expansion, as methods of the expander."""

    if TYPE_CHECKING:  # provided by dlspec.spec.expand._Expander
        spec: NetworkPart
        branch_names: dict[str, str]
        shapes: ShapesSoFar
        qualified: set[str]

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
                                       optional={"shortcut": "identity", "merge": "add",
                                                 "drop_path": 0.0, "flat": False})
        if fields is None or not self.residual_options(fields, path, context):
            return None
        x = self.single(sources, path, context)
        if x is None:
            return None
        # a flat residual names its layers in the enclosing scope and is drawn as part of it
        scope = None if fields["flat"] else Scope(context.prefix + local, "residual", "", path)
        inner = context.child(local, scope, flat=fields["flat"], **sub)
        body = self.layer_list(fields["body"], (*path, "body"), inner, x)
        if body is None:
            return None
        if fields["drop_path"]:  # stochastic depth: the whole body, per sample
            drop = lookup_kind("drop_path")
            assert drop is not None
            body = self.layer(drop, fields["drop_path"], (*path, "drop_path"), inner,
                              self.unused_name(inner, "drop_path"), [body],
                              (inner.trainable, inner.init))
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
        return self.layer(kind, None, path, inner, self.unused_name(inner, merge),
                          [body, shortcut], (inner.trainable, inner.init), shape_hint=hint)

    def residual_options(self, fields: dict[str, Any], path: Path, context: Context) -> bool:
        drop, flat = fields["drop_path"], fields["flat"]
        if type(drop) not in (int, float) or not 0 <= drop < 1:
            self.error((*path, "drop_path"), f"drop_path is the probability of dropping the "
                       f"body for a sample, at least 0 and below 1; found {describe(drop)}",
                       context=context)
            return False
        if type(flat) is not bool:
            self.error((*path, "flat"), f"flat is true or false; found {describe(flat)}",
                       context=context)
            return False
        return True

    def unused_name(self, context: Context, name: str) -> str:
        """`name`, or `name_2`... when a flat scope already holds it."""
        candidate, count = name, 1
        while candidate in context.names or context.prefix + candidate in self.qualified:
            count += 1
            candidate = f"{name}_{count}"
        return candidate

    def shortcut(self, value: Any, path: Path, context: Context, x: str,
                 body: str) -> str | None:
        if value == "identity":
            return x
        name = "shortcut"
        if isinstance(value, dict):  # {name: downsample, project: true} / {name, layers}
            named = self.named_shortcut(value, path, context)
            if named is None:
                return None
            name, value = named
        if value == "project":
            projection = lookup_kind("projection")
            assert projection is not None
            return self.layer(projection, None, path, context, name, [x],
                              (context.trainable, context.init), shape_inputs=[body])
        if isinstance(value, list):
            scope = Scope(context.prefix + name, "sequential", name, path)
            return self.layer_list(value, path, context.child(name, scope), x)
        self.error(path, f"shortcut must be identity, project, a list of layers, or {{name, "
                   f"project: true}} / {{name, layers}}, found {describe(value)}",
                   suggest(str(value), ["identity", "project"]), context)
        return None

    def named_shortcut(self, value: dict[str, Any], path: Path,
                       context: Context) -> tuple[str, Any] | None:
        """A shortcut given a name: `{name: downsample, project: true}` or `{name, layers}`."""
        allowed = ("name", "project", "layers")
        for key in value:
            if key not in allowed:
                self.error((*path, key), f"unknown key {key!r}", suggest(str(key), allowed)
                           or f"allowed: {', '.join(allowed)}", context, on_key=True)
                return None
        name = value.get("name", "shortcut")
        problem = (name_problem(name) if isinstance(name, str)
                   else f"a name is a string, found {describe(name)}")
        if problem is not None:
            self.error((*path, "name"), problem, context=context)
            return None
        if ("project" in value) == ("layers" in value) or value.get("project", True) is not True:
            self.error(path, "a named shortcut has `project: true` or `layers: [...]`",
                       context=context)
            return None
        return name, "project" if "project" in value else value["layers"]

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

    def structure_chunk(self, args: Any, path: Path, context: Context, local: str,
                        sources: list[str], sub: dict[str, Any]) -> Outputs | None:
        """`chunk: 2` or `{chunks: 2, dim: 1, names: [a, b]}`: equal parts along an axis."""
        fields = self.structure_fields({"chunks": args} if not isinstance(args, dict) else args,
                                       path, context, required=("chunks",),
                                       optional={"dim": 1, "names": None})
        if fields is None:
            return None
        chunks = expr.substitute(fields["chunks"], context.env, self.ref_error(path, context))
        if type(chunks) is not int or not 2 <= chunks <= MAX_PARTS:
            self.error(path if not isinstance(args, dict) else (*path, "chunks"),
                       f"chunk takes the number of parts, 2 to {MAX_PARTS}; found "
                       f"{describe(chunks)}", context=context)
            return None
        return self.parts(path, context, local, sources, sub, fields,
                          [{"chunks": chunks, "index": i} for i in range(chunks)])

    def structure_split(self, args: Any, path: Path, context: Context, local: str,
                        sources: list[str], sub: dict[str, Any]) -> Outputs | None:
        """`split: [58, 58]` or `{sizes: [...], dim: 1, names: [a, b]}`: parts of these sizes."""
        fields = self.structure_fields({"sizes": args} if not isinstance(args, dict) else args,
                                       path, context, required=("sizes",),
                                       optional={"dim": 1, "names": None})
        if fields is None:
            return None
        sizes = expr.substitute(fields["sizes"], context.env, self.ref_error(path, context))
        if not (isinstance(sizes, list) and 2 <= len(sizes) <= MAX_PARTS
                and all(type(v) is int and v > 0 for v in sizes)):
            self.error(path if not isinstance(args, dict) else (*path, "sizes"),
                       f"split takes the parts' sizes, a list of 2 to {MAX_PARTS} positive "
                       f"whole numbers; found {describe(sizes)}",
                       "for equal parts write chunk: N", context)
            return None
        return self.parts(path, context, local, sources, sub, fields,
                          [{"sizes": sizes, "index": i} for i in range(len(sizes))])

    def parts(self, path: Path, context: Context, local: str, sources: list[str],
              sub: dict[str, Any], fields: dict[str, Any],
              params: list[dict[str, Any]]) -> Outputs | None:
        """One `split_part` node per part, named NAME.0, NAME.1 ... or NAME.<names[i]>."""
        x = self.single(sources, path, context)
        if x is None:
            return None
        names = fields["names"]
        if names is None:
            names = [str(i) for i in range(len(params))]
        elif not (isinstance(names, list) and len(names) == len(params)
                  and all(isinstance(n, str) and name_problem(n) is None for n in names)
                  and len(set(names)) == len(names)):
            self.error((*path, "names"), f"names gives each of the {len(params)} parts its "
                       "own name (letters, digits, underscores)", context=context)
            return None
        kind = lookup_kind("split_part")
        assert kind is not None
        inner = context.child(local, None, **sub)
        outs = []
        for name, part in zip(names, params, strict=True):
            out = self.layer(kind, {"dim": fields["dim"], **part}, path, inner, name, [x],
                             (inner.trainable, inner.init))
            if out is None:
                return None
            self.branch_names[out] = f"{local}_{name}"
            context.names[f"{local}.{name}"] = out
            outs.append(out)
        context.parts[local] = outs
        return outs

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
        inputs = self.block_inputs(block_name, block, sources, path, context)
        if env is None or inputs is None:
            return None
        label = f"{block_name}(" + ", ".join(f"{k}={v}" for k, v in env.items()) + ")"
        shapes = {name: expr.TensorShape(name, self.shape_lookup(node))
                  for name, node in [(expr.IN_NAME, inputs[0][1]), *inputs]}
        scope = Scope(context.prefix + local, "block", label, path)
        inner = context.child(local, scope, env={**env, **shapes}, parent=None,
                              blocks=(*context.blocks, block_name),
                              used_at=context.used_at or path, **sub)
        if block.inputs is not None:
            inner.names.update(inputs)
        return self.layers(block.layers, ("blocks", block_name, "layers"), inner,
                           inputs[0][1])

    def shape_lookup(self, node: str) -> Callable[[], tuple[int, ...] | None]:
        """How `$in.channels` finds the shape of `node` when an expression reads it."""
        return lambda: self.shapes.shape(node)

    def block_inputs(self, block_name: str, block: BlockSpec, sources: list[str], path: Path,
                     context: Context) -> list[tuple[str, str]] | None:
        """(name in the block, node) per input; a block without `inputs:` reads one."""
        if block.inputs is None:
            x = self.single(sources, path, context)
            return None if x is None else [(expr.IN_NAME, x)]
        if len(sources) != len(block.inputs):
            self.error(path, f"block {block_name} reads {len(block.inputs)} inputs "
                       f"({', '.join(block.inputs)}), but receives {len(sources)}",
                       f"list them in that order: from: [{', '.join(block.inputs)}]"
                       if len(block.inputs) > 1 else "give one name in `from:`", context)
            return None
        return list(zip(block.inputs, sources, strict=True))

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
