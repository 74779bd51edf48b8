"""Spec → Graph: resolve blocks, repeats, structures, names and `from:` wiring.

A pure transform: no I/O, no torch. Every problem found is collected with the
path of the entry that caused it, and all are raised together as a SpecError.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dlspec.errors import Path, Problem, SpecError, format_path
from dlspec.graph import Graph, InitChoice, InputDecl, Node, Scope
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
        before = len(self.problems)
        inputs = {k: InputDecl(tuple(v.shape), v.dtype) for k, v in net.inputs.items()}
        top = Context(prefix="", env={})
        for input_name in inputs:
            top.names[input_name] = input_name
        current: Outputs | None = next(iter(inputs)) if len(inputs) == 1 else None
        result = self.layers(net.network, (*base, "network"), top, current, allow_split=True)
        outputs = self.outputs(net.outputs, result, (*base, "outputs"), top)
        if len(self.problems) > before or outputs is None:
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
            if node.name not in read:
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
            if isinstance(current, list):
                self.error((*path, i), "the layer above produces several tensors (a parallel "
                           "without merge), which only a network's last layer may do",
                           "give the parallel `merge: concat` or `merge: add`", context)
                return None
            current = self.entry(raw, (*path, i), context, current)
            if isinstance(current, list) and not allow_split and i == len(entries) - 1:
                self.error((*path, i), "a parallel without merge must be the network's last "
                           "layer", "give it `merge: concat` or `merge: add`", context)
                return None
        return current

    def entry(self, raw: Any, path: Path, context: Context,
              current: Outputs | None) -> Outputs:
        """Expand one entry; on failure return BROKEN so later layers are still checked."""
        if self.aborted:
            return BROKEN
        parsed, problems = parse_entry(raw, path, context.env)
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
        flags = (context.trainable and common.trainable is not False, _init_choice(common, context))
        if common.repeat is not None:  # copies are always indexed, even `repeat: 1`
            out = self.repeated(parsed.kind, parsed.args, path, context, local, sources, flags,
                                common.repeat)
        else:
            out = self.one(parsed.kind, parsed.args, path, context, local, sources, flags)
        out = BROKEN if out is None else out
        context.names[local] = out if isinstance(out, str) else out[-1]
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
            resolved.append(node)
        return resolved

    def unknown_source(self, name: str, path: Path, context: Context) -> None:
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
            if candidate not in context.names and candidate not in context.later:
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
        self.nodes.append(Node(context.prefix + local, layer_kind.name, params, sources, path,
                               context.scopes, flags[0], flags[1], shape_inputs or [],
                               context.used_at, shape_hint))
        return context.prefix + local

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
                 repeat: int) -> Outputs | None:
        scope = Scope(context.prefix + local, "repeat", f"×{repeat}", path)
        inner = context.child(local, scope)
        current: Outputs = sources if len(sources) > 1 else sources[0]
        for index in range(repeat):
            if self.aborted:
                return None
            inputs = [current] if isinstance(current, str) else current
            out = self.one(kind, args, path, inner, str(index), inputs, flags)
            if out is None or isinstance(out, list):
                if isinstance(out, list):
                    self.error(path, "a parallel without merge cannot be repeated",
                               context=context)
                return None
            current = out
        return current

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


def _init_choice(common: CommonKeys, context: Context) -> InitChoice | None:
    """The entry's init scheme, or the one inherited from its enclosing block/structure."""
    init = common.init
    if init is None:
        return context.init
    if isinstance(init, str):
        return InitChoice(weight=init)
    return InitChoice(weight=init.weight, bias=init.bias)
