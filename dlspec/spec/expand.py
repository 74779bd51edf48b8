"""Spec → Graph: resolve blocks, repeats, structures, names and `from:` wiring.

A pure transform: no I/O, no torch. Every problem found is collected with the
path of the entry that caused it, and all are raised together as a SpecError.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dlspec.errors import Path, Problem, SpecError, format_path
from dlspec.graph import Graph, InitChoice, InputDecl, Node, Scope, ShapesSoFar
from dlspec.layers.registry import LayerKind, kind_names, lookup_kind, suggest
from dlspec.spec import expr
from dlspec.spec.context import BROKEN, Context, NameHints, Outputs
from dlspec.spec.entries import CommonKeys, parse_entry
from dlspec.spec.model import (
    NetworkPart,
    NetworkSpec,
)
from dlspec.spec.structures import STRUCTURES, StructureExpansion
from dlspec.spec.validation import problems_from_validation

MAX_NODES = 50_000



def expand(spec: NetworkPart) -> dict[str, Graph]:
    """Resolve a validated Spec (or its network part) into one Graph per network.

    Example:
        >>> graphs = expand(load("specs/lenet5.yaml"))
        >>> [n.name for n in graphs["lenet5"].nodes][:2]
        ['conv2d_1', 'tanh_1']
    """
    expander = _Expander(spec)
    expander.check_block_names()
    graphs = {}
    for name, (network, base) in expander.networks().items():
        graph = expander.network(name, network, base)
        if graph is not None:
            graphs[name] = graph
    if expander.problems:
        raise SpecError(_unique(expander.problems))
    return graphs


def _unique(problems: list[Problem]) -> list[Problem]:
    """One report per place and message: a block used ten times has one bad line, not ten."""
    seen: dict[tuple[Path, str], Problem] = {}
    for problem in problems:
        seen.setdefault((problem.path, problem.message), problem)
    return list(seen.values())


class _Expander(StructureExpansion):
    """Walks a spec's layer lists, creating nodes and collecting problems."""

    def __init__(self, spec: NetworkPart):
        self.spec = spec
        self.problems: list[Problem] = []
        self.nodes: list[Node] = []
        self.branch_names: dict[str, str] = {}  # last node of a parallel branch → branch key
        self.visited = 0  # layers expanded, including broken ones: bounds runaway repeats
        self.aborted = False
        self.name_hints = NameHints()  # bounded "did you mean" for unknown names
        self.qualified: set[str] = set()  # every node name made, across flat scopes
        self.shapes = ShapesSoFar({}, [])  # shapes of the nodes so far, for `$in.channels`

    def is_kind(self, name: str) -> bool:
        """Whether `name` is a layer kind, structure or block (not a misplaced key)."""
        return name in STRUCTURES or name in self.spec.blocks or lookup_kind(name) is not None

    def check_block_names(self) -> None:
        for name in self.spec.blocks:
            if name in STRUCTURES or lookup_kind(name) is not None:
                what = "a structure" if name in STRUCTURES else "a layer kind"
                self.error(("blocks", name), f"block {name!r} has the name of {what}",
                           "rename the block", on_key=True)

    def networks(self) -> dict[str, tuple[NetworkSpec, Path]]:
        if self.spec.networks is not None:
            return {name: (net, ("networks", name)) for name, net in self.spec.networks.items()}
        return {name: (net, ()) for name, net in self.spec.network_specs().items()}

    def error(self, path: Path, message: str, hint: str | None = None,
              context: Context | None = None, on_key: bool = False) -> None:
        self.report(Problem(path, message, hint, on_key=on_key), context)

    def report(self, problem: Problem, context: Context | None) -> None:
        """Record a problem, noting which use of a block it arose in."""
        if context is not None and context.used_at is not None:
            problem.used_in = "block " + " → ".join(context.blocks)
            problem.used_at = context.used_at
        self.problems.append(problem)

    # --- networks ----------------------------------------------------------------------

    def network(self, name: str, net: NetworkSpec, base: Path) -> Graph | None:
        self.nodes = []
        self.qualified = set()
        before = len(self.problems)
        inputs = {k: InputDecl(tuple(v.shape), v.dtype) for k, v in net.inputs.items()}
        self.shapes = ShapesSoFar(inputs, self.nodes)
        top = Context(prefix="", env={})
        for input_name in inputs:
            top.names[input_name] = input_name
        current: Outputs | None = next(iter(inputs)) if len(inputs) == 1 else None
        result = self.layers(net.network, (*base, "network"), top, current, allow_split=True)
        outputs = self.outputs(net.outputs, result, (*base, "outputs"), top)
        if len(self.problems) > before or outputs is None:
            # a `$in.channels` that could not be read: the layer that failed comes first
            self.problems[before:before] = self.shapes.problems
            return None
        graph = Graph(name, inputs, self.nodes, outputs)
        self.check_all_used(graph, (*base, "inputs"))
        return graph if len(self.problems) == before else None

    def outputs(self, declared: dict[str, str] | None, last: Outputs | None, path: Path,
                top: Context) -> dict[str, str] | None:
        if declared is None:
            if isinstance(last, list):  # a final parallel without merge: one output per branch
                return {self.branch_names.get(name, name): name for name in last}
            return {"output": last} if last is not None else None
        outputs = {}
        for out_name, local in declared.items():
            node = top.resolve(local)
            if node is None:
                self.error((*path, out_name), f"output {local!r} is not a layer name",
                           self.name_hints.suggest(local, top))
            else:
                outputs[out_name] = node
        return outputs

    def check_all_used(self, graph: Graph, inputs_path: Path) -> None:
        read = {name for node in graph.nodes for name in (*node.inputs, *node.shape_inputs)}
        read |= set(graph.outputs.values())
        for input_name in graph.inputs:
            if input_name not in read:
                self.error((*inputs_path, input_name), f"input {input_name!r} is never read",
                           "read it with `from:` or remove it")
        for node in graph.nodes:
            if node.name not in read and node.kind != "split_part":  # a part may go unread
                self.error(node.path, f"the output of {node.name} is never used",
                           "read it with `from:`, list it under `outputs:`, or remove the layer")

    # --- lists and entries -------------------------------------------------------------

    def layers(self, entries: list[Any], path: Path, context: Context,
               current: Outputs | None, allow_split: bool = False) -> Outputs | None:
        """Expand a list of layer entries top to bottom; return the last one's output."""
        context.later = {}
        for i, raw in enumerate(entries):
            if isinstance(raw, dict) and isinstance(raw.get("name"), str):
                context.later.setdefault(raw["name"], (*path, i))
        for i, raw in enumerate(entries):
            if isinstance(current, list) and not (isinstance(raw, dict) and "from" in raw):
                self.error((*path, i), "the layer above produces several tensors (a split, "
                           "or a parallel without merge), so this layer must say which it "
                           "reads", "read one part with `from: NAME.0`, or give a parallel "
                           "`merge: concat` or `merge: add`", context)
                return None
            current = self.entry(raw, (*path, i), context, current)
            if isinstance(current, list) and not allow_split and i == len(entries) - 1:
                self.error((*path, i), "a split, or a parallel without merge, must be read by "
                           "later layers or be the network's last layer",
                           "read its parts with `from:`, or give a parallel `merge: concat`",
                           context)
                return None
        return current

    def entry(self, raw: Any, path: Path, context: Context,
              current: Outputs | None) -> Outputs:
        """Expand one entry; on failure return BROKEN so later layers are still checked."""
        if self.aborted:
            return BROKEN
        parsed, problems = parse_entry(raw, path, context.env, self.is_kind)
        for problem in problems:
            self.report(problem, context)
        if parsed is None:
            if isinstance(raw, dict) and isinstance(raw.get("name"), str):
                context.names[raw["name"]] = BROKEN
                context.later.pop(raw["name"], None)
            return BROKEN
        common = parsed.common
        sources = self.sources(common, path, context, current) or [BROKEN]
        local = common.name or self.auto_name(parsed.kind, context)
        if local in context.names:
            self.error((*path, "name"), f"name {local!r} is already used in this scope",
                       "give each layer and input its own name", context)
        context.later.pop(local, None)
        if common.if_ is False or common.copies == 0:  # left out: its first input passes
            passed = sources[0]  # (a residual add `from: [body, x], if: ...` keeps the body)
            context.names[local] = passed
            return passed
        flags = (context.trainable and common.trainable is not False, _init_choice(common, context))
        start = len(self.nodes)
        out: Outputs | None
        if common.copies is not None:  # copies are always indexed, even `repeat: 1`
            out = self.repeated(parsed.kind, parsed.args, path, context, local, sources, flags,
                                common.copies, common.first_copy)
        else:
            out = self.one(parsed.kind, parsed.args, path, context, local, sources, flags)
        made = [node.name for node in self.nodes[start:]]
        if out is not None and out != BROKEN:
            if common.share is not None:
                self.share(common.share, made, path, context)
            if common.tie is not None:
                self.tie(common.tie, parsed.kind, made, path, context)
        out = BROKEN if out is None else out
        context.names[local] = out if isinstance(out, str) else out[-1]
        context.made[local] = made
        return out

    def sources(self, common: CommonKeys, path: Path, context: Context,
                current: Outputs | None) -> list[str] | None:
        names = common.sources()
        if names is None:
            if current is None:
                self.error(path, "this layer has no input: the network has several inputs "
                           f"({context.listing()})",
                           "say which one it reads with `from:`", context)
                return None
            return [current] if isinstance(current, str) else list(current)
        resolved = []
        for name in names:
            if name == common.name:
                self.error((*path, "from"), f"layer {name!r} reads itself: a layer cannot "
                           "take its own output as input",
                           "name the layer it should read instead", context)
                return None
            node = context.resolve(name)
            if node is None:
                self.unknown_source(name, (*path, "from"), context)
                return None
            parts = context.lookup("parts", name)
            resolved += parts if parts else [node]  # `from: halves` reads every part
        return resolved

    def unknown_source(self, name: str, path: Path, context: Context) -> None:
        head, dot, part = name.partition(".")
        if dot and context.resolve(head) is not None:
            parts = context.lookup("parts", head)
            listed = ", ".join(p.rsplit(".", 1)[-1] for p in parts or [])
            self.error(path, f"{head!r} has no part {part!r}" if parts else
                       f"{head!r} has a single output: read it as {head}",
                       f"its parts: {listed}" if parts else None, context)
            return
        if name in context.later:
            line_path = format_path(context.later[name])
            self.error(path, f"{name!r} is defined below ({line_path}); a layer reads only "
                       "layers above it, so this would make a cycle", context=context)
            return
        hint = self.name_hints.hint(name, context)
        if context.blocks and not hint:
            hint = ("a block's layers see only names inside the block; its input is what the "
                    "block's use reads")
        self.error(path, f"unknown layer {name!r} in from:", hint, context)

    def auto_name(self, kind: str, context: Context) -> str:
        while True:
            context.counters[kind] += 1
            candidate = f"{kind}_{context.counters[kind]}"
            if candidate not in context.names and candidate not in context.later \
                    and context.prefix + candidate not in self.qualified:
                return candidate

    # --- one layer, a repeat, a structure or a block ------------------------------------

    def one(self, kind: str, args: Any, path: Path, context: Context, local: str,
            sources: list[str], flags: tuple[bool, InitChoice | None]) -> Outputs | None:
        trainable, init = flags
        sub = {"trainable": trainable, "init": init}
        if kind in STRUCTURES:
            return getattr(self, f"structure_{kind}")(args, (*path, kind), context, local,
                                                      sources, sub)
        if kind in self.spec.blocks:
            return self.block(kind, args, path, context, local, sources, sub)
        layer_kind = lookup_kind(kind)
        if layer_kind is None or layer_kind.hidden:
            names = [*kind_names(), *self.spec.blocks, *STRUCTURES]
            self.error((*path, kind), f"unknown layer kind {kind!r}", suggest(kind, names),
                       context, on_key=True)
            return None
        return self.layer(layer_kind, args, (*path, kind), context, local, sources, flags)

    def layer(self, layer_kind: LayerKind, args: Any, path: Path, context: Context,
              local: str, sources: list[str], flags: tuple[bool, InitChoice | None],
              shape_inputs: list[str] | None = None, shape_hint: str | None = None,
              ) -> str | None:
        self.visited += 1
        if self.visited > MAX_NODES:
            if not self.aborted:
                self.error(path, f"the network expands to more than {MAX_NODES:,} layers",
                           context=context)
            self.aborted = True
            return None
        before = len(self.problems)
        args = expr.substitute(args, context.env, self.ref_error(path, context))
        if len(self.problems) > before:
            return None  # a bad $reference: validating its raw text would only add noise
        params = self.validate_params(layer_kind, args, path, context)
        if params is None or not self.check_arity(layer_kind, len(sources), path, context):
            return None
        if BROKEN in sources:
            return BROKEN  # an input failed; this layer's own parameters are still checked
        qualified = context.prefix + local
        if qualified in self.qualified:  # a flat structure names its layers in the scope above
            self.error(path, f"name {local!r} is already used in this scope",
                       "a flat residual names its layers beside the ones around it: give "
                       "each its own name", context)
            return None
        self.qualified.add(qualified)
        self.nodes.append(Node(qualified, layer_kind.name, params, sources, path,
                               context.scopes, flags[0], flags[1], shape_inputs or [],
                               context.used_at, shape_hint))
        return qualified

    def validate_params(self, layer_kind: LayerKind, args: Any, path: Path,
                        context: Context) -> Any:
        data = args
        if args is None:
            data = {}
        elif not isinstance(args, dict):
            if layer_kind.main is None:
                self.error(path, f"{layer_kind.name} takes no single value; give a mapping of "
                           f"its parameters or write just `{layer_kind.name}`", context=context)
                return None
            data = {layer_kind.main: args}
        try:
            return layer_kind.Params.model_validate(data)
        except ValidationError as exc:
            shorthand = args is not None and not isinstance(args, dict)
            for problem in problems_from_validation(exc, data, layer_kind.Params):
                problem.path = path if shorthand else (*path, *problem.path)
                self.report(problem, context)
            return None

    def check_arity(self, layer_kind: LayerKind, count: int, path: Path,
                    context: Context) -> bool:
        arity = layer_kind.arity
        low, high = (arity, arity) if isinstance(arity, int) else arity
        if count >= low and (high is None or count <= high):
            return True
        wanted = f"{low}" if low == high else f"{low} or more"
        hint = "list them with `from: [a, b]`" if low > 1 else "give one name in `from:`"
        self.error(path, f"{layer_kind.name} reads {wanted} input{'s' * (low != 1)}, "
                   f"but receives {count}", hint, context)
        return False

    def repeated(self, kind: str, args: Any, path: Path, context: Context, local: str,
                 sources: list[str], flags: tuple[bool, InitChoice | None],
                 repeat: int, first: dict[str, Any] | None = None) -> Outputs | None:
        if first is not None:
            if args is not None and not isinstance(args, dict):
                self.error((*path, "repeat", "first"), f"first: changes arguments by name, so "
                           f"write {kind}'s arguments as a mapping, not {args!r}",
                           context=context)
                return None
            note = (f"{kind}({_arguments(args, context)}) · first: "
                    f"{_arguments(first, context)}")
            first = {**(args or {}), **first}
        scope = Scope(context.prefix + local, "repeat", f"×{repeat}", path,
                      note if first is not None else None)
        inner = context.child(local, scope)
        current: Outputs = sources if len(sources) > 1 else sources[0]
        for index in range(repeat):
            if self.aborted:
                return None
            inputs = [current] if isinstance(current, str) else current
            copy_args = first if index == 0 and first is not None else args
            out = self.one(kind, copy_args, path, inner, str(index), inputs, flags)
            if out is None or isinstance(out, list):
                if isinstance(out, list):
                    self.error(path, "a parallel without merge cannot be repeated",
                               context=context)
                return None
            current = out
        return current

    # --- shared and tied weights ---------------------------------------------------------

    def share(self, name: str, made: list[str], path: Path, context: Context) -> None:
        """Make this entry's layers run the modules of entry `name`'s, layer by layer."""
        owner = self.made_by(name, (*path, "share"), context, "share")
        if owner is None:
            return
        index = {node.name: node for node in self.nodes}
        mine, theirs = [index[n] for n in made], [index[n] for n in owner]
        if [n.kind for n in mine] != [n.kind for n in theirs]:
            self.error((*path, "share"), f"share: {name!r} is made of {_kinds(theirs)}, but "
                       f"this is made of {_kinds(mine)}; sharing weights needs the same "
                       "layers in the same order", context=context)
            return
        for node, other in zip(mine, theirs, strict=True):
            node.shares = other.shares or other.name

    def tie(self, name: str, kind: str, made: list[str], path: Path,
            context: Context) -> None:
        """Make this linear layer's weight the weight of layer `name` (an embedding)."""
        owner = self.made_by(name, (*path, "tie"), context, "tie")
        if owner is None:
            return
        index = {node.name: node for node in self.nodes}
        if kind != "linear" or len(made) != 1:
            self.error((*path, "tie"), f"tie: gives a linear layer another layer's weight "
                       f"(an LM head reading its embedding's); this is {kind}"
                       + (f" repeated {len(made)} times" if kind == "linear" else ""),
                       context=context)
            return
        target = index[owner[-1]]
        if len(owner) != 1 or target.kind not in ("embedding", "linear"):
            self.error((*path, "tie"), f"tie: {name!r} is {_kinds([index[n] for n in owner])}; "
                       "a linear layer ties to an embedding or another linear layer",
                       context=context)
            return
        index[made[0]].tie = target.shares or target.name

    def made_by(self, name: str, path: Path, context: Context, key: str) -> list[str] | None:
        """The nodes entry `name` made, or None with an error."""
        owner = context.lookup("made", name)
        if owner:
            return owner
        if context.resolve(name) is None:
            self.error(path, f"{key}: unknown layer {name!r}", self.name_hints.hint(name, context),
                       context)
        else:
            self.error(path, f"{key}: {name!r} has no weights to use (an input, or a layer "
                       "left out)", context=context)
        return None

    # --- helpers -----------------------------------------------------------------------

    def single(self, sources: list[str], path: Path, context: Context) -> str | None:
        if len(sources) != 1:
            self.error(path, f"this reads one input, but receives {len(sources)}",
                       "merge them first with add or concat", context)
            return None
        return sources[0]

    def ref_error(self, path: Path, context: Context) -> Any:
        def report(sub_path: tuple[Any, ...], message: str) -> None:
            self.error((*path, *sub_path), message, context=context)
        return report


def _arguments(args: dict[str, Any] | None, context: Context) -> str:
    """`channels=256, stride=2` for a diagram's label (references resolved where they can)."""
    values = expr.substitute(args or {}, context.env, lambda *_: None)
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _kinds(nodes: list[Node]) -> str:
    kinds = [node.kind for node in nodes]
    shown = ", ".join(kinds[:4]) + (", ..." if len(kinds) > 4 else "")
    return f"{len(kinds)} layer{'s' * (len(kinds) != 1)} ({shown})"


def _init_choice(common: CommonKeys, context: Context) -> InitChoice | None:
    """The entry's init scheme, or the one inherited from its enclosing block/structure."""
    init = common.init
    if init is None:
        return context.init
    if isinstance(init, str):
        return InitChoice(weight=init)
    return InitChoice(weight=init.weight, bias=init.bias)
