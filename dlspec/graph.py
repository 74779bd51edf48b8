"""The resolved network: named nodes wired by name, and shape inference over them.

`expand` (dlspec.spec.expand) turns a Spec into Graphs; `infer_shapes` runs every
layer on PyTorch's meta device — no memory, no arithmetic — so each edge gets
its exact shape and dtype, and each node its parameter and MAC counts. A layer
that cannot take its input is reported with both layers' names and shapes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dlspec.errors import Path, Problem, ShapeError
from dlspec.layers.registry import (
    Call,
    Function,
    LayerParams,
    Shape,
    ShapeProblem,
    format_shape,
    lookup_kind,
)


@dataclass(frozen=True)
class Scope:
    """A named group of nodes: a block instance, residual, parallel, sequential or repeat."""

    name: str  # qualified: "stage1.0"
    kind: str  # "block", "residual", "parallel", "sequential", "repeat"
    label: str  # "basic(channels=64)", "×2"
    path: Path
    # a repeat whose first copy differs: what every copy is, and what the first changes
    note: str | None = None


@dataclass(frozen=True)
class InitChoice:
    """How to initialise a layer's weights and biases (None: PyTorch's default): a scheme's
    name, a constant, or explicit values as nested lists."""

    weight: str | float | list[Any] | None = None
    bias: str | float | list[Any] | None = None

    def explicit(self) -> dict[str, list[Any]]:
        """The explicit values given, by `weight`/`bias`."""
        return {k: v for k, v in (("weight", self.weight), ("bias", self.bias))
                if isinstance(v, list)}


@dataclass
class Node:
    """One layer in the resolved graph."""

    name: str  # qualified and unique: "stage1.0.conv2d_1"
    kind: str
    params: LayerParams
    inputs: list[str]  # node or graph-input names
    path: Path  # where the layer is written in the spec
    scopes: tuple[Scope, ...] = ()
    trainable: bool = True
    init: InitChoice | None = None
    # read only for their shapes (a shortcut projection matches the body's output)
    shape_inputs: list[str] = field(default_factory=list)
    # where a block was used, when the node comes from a block's definition
    used_at: Path | None = None
    # advice for a shape error that expansion knows better than the kind (residual merges)
    shape_hint: str | None = None
    # runs the module of this node instead of its own (`share:`): weights stored once
    shares: str | None = None
    # a linear layer whose weight is this node's weight (`tie:`)
    tie: str | None = None


@dataclass(frozen=True)
class InputDecl:
    """A network input: per-sample shape and dtype."""

    shape: Shape
    dtype: str = "float32"


@dataclass
class Graph:
    """A network as named nodes in an order where every node follows its inputs."""

    name: str
    inputs: dict[str, InputDecl]
    nodes: list[Node]
    outputs: dict[str, str]  # output name → node or input name

    def node(self, name: str) -> Node:
        """The node called `name`."""
        return self._index()[name]

    def _index(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}


@dataclass(frozen=True)
class TensorInfo:
    """Shape (batch axis excluded) and dtype of one edge."""

    shape: Shape
    dtype: str

    def __str__(self) -> str:
        return format_shape(self.shape)


@dataclass
class NodeInfo:
    """What shape inference learnt about a node."""

    output: TensorInfo
    build: Call | Function | None  # None: the node passes its input through
    params: int = 0
    trainable_params: int = 0
    macs: int = 0
    buffers: int = 0  # elements of its buffers (running statistics, positional tables)


@dataclass
class ShapedGraph:
    """A Graph with a TensorInfo on every edge and counts for every node."""

    graph: Graph
    tensors: dict[str, TensorInfo]  # node and input names → their output
    info: dict[str, NodeInfo]

    @property
    def total_params(self) -> int:
        """Parameters in the whole network."""
        return sum(i.params for i in self.info.values())

    @property
    def trainable_params(self) -> int:
        """Parameters that training updates."""
        return sum(i.trainable_params for i in self.info.values())

    @property
    def total_macs(self) -> int:
        """Estimated multiply-accumulates for one sample's forward pass (0 unless counted)."""
        return sum(i.macs for i in self.info.values())

    def outputs(self) -> dict[str, TensorInfo]:
        """Each network output and its tensor."""
        return {k: self.tensors[v] for k, v in self.graph.outputs.items()}

    def __iter__(self) -> Iterator[tuple[Node, NodeInfo]]:
        return ((n, self.info[n.name]) for n in self.graph.nodes)


class ShapesSoFar:
    """Shapes of a network's nodes while expansion is still making them, inferred only when
    asked: a block that reads `$in.channels` needs the shape of what feeds it."""

    def __init__(self, inputs: dict[str, InputDecl], nodes: list[Node]):
        self.tensors = {n: TensorInfo(d.shape, d.dtype) for n, d in inputs.items()}
        self.nodes = nodes  # the expander's list, which grows
        self.done = 0
        self.problems: list[Problem] = []  # why a shape is unknown, for the report

    def shape(self, name: str) -> Shape | None:
        """The per-sample shape of node or input `name`; None when a layer before it failed
        (its own error is reported by shape inference)."""
        if name not in self.tensors:
            self._advance()
        tensor = self.tensors.get(name)
        return tensor.shape if tensor is not None else None

    def _advance(self) -> None:
        import torch

        with torch.device("meta"):
            while self.done < len(self.nodes):
                node = self.nodes[self.done]
                self.done += 1
                if any(n not in self.tensors for n in (*node.inputs, *node.shape_inputs)):
                    continue
                try:
                    self.tensors[node.name] = _infer_node(node, self.tensors, False).output
                except ShapeProblem as exc:
                    self.problems.append(_shape_problem(node, exc, self.tensors))


def infer_shapes(graph: Graph, count_macs: bool = False) -> ShapedGraph:
    """Build every layer on the meta device and run it; raise ShapeError listing all misfits.

    `count_macs` runs each layer under torch's FlopCounterMode, whose first use imports
    torch._dynamo (~2 s): `dlspec summary` asks for it, `dlspec check` does not.
    """
    import torch

    tensors = {name: TensorInfo(decl.shape, decl.dtype) for name, decl in graph.inputs.items()}
    info: dict[str, NodeInfo] = {}
    problems: list[Problem] = []
    with torch.device("meta"):
        for node in graph.nodes:
            if any(name not in tensors for name in (*node.inputs, *node.shape_inputs)):
                continue  # an input already failed; its error is reported
            try:
                info[node.name] = _linked(node, _infer_node(node, tensors, count_macs), info)
                tensors[node.name] = info[node.name].output
            except ShapeProblem as exc:
                problems.append(_shape_problem(node, exc, tensors))
    if problems:
        raise ShapeError(problems)
    shaped = ShapedGraph(graph, tensors, info)
    if (problem := _memory_problem(shaped)) is not None:
        raise ShapeError([problem])
    return shaped


def _linked(node: Node, info: NodeInfo, known: dict[str, NodeInfo]) -> NodeInfo:
    """A node that shares another's module or ties to its weight: check that they fit, and
    count the shared weights once (at their owner)."""
    if node.shares is not None:
        owner = known.get(node.shares)
        if owner is None:
            raise ShapeProblem(f"cannot share the weights of {node.shares}, whose own shapes "
                               "failed")
        mine = info.build.source() if isinstance(info.build, Call) else None
        theirs = owner.build.source() if isinstance(owner.build, Call) else None
        if mine != theirs:
            raise ShapeProblem(f"cannot share the weights of {node.shares}: it is {theirs}, "
                               f"but here the layer would be {mine}",
                               "shared layers need the same sizes: give both the same "
                               "parameters and inputs of the same shape")
        info.params = info.trainable_params = info.buffers = 0
    if node.tie is not None:
        info = _tied(node, info, known)
    return info


def _tied(node: Node, info: NodeInfo, known: dict[str, NodeInfo]) -> NodeInfo:
    """A linear layer that reads its weight from node.tie: a TiedLinear holding its bias."""
    from dlspec.layers import modules

    owner = known.get(node.tie or "")
    assert isinstance(info.build, Call) and node.tie is not None
    if owner is None or not isinstance(owner.build, Call):
        raise ShapeProblem(f"cannot tie to {node.tie}, whose own shapes failed")
    weight = tuple(owner.build.instantiate().weight.shape)  # on the meta device: free
    out_features, in_features = info.build.args[1], info.build.args[0]
    if weight != (out_features, in_features):
        raise ShapeProblem(
            f"its weight would be {format_shape((out_features, in_features))} (out × in), but "
            f"{node.tie}'s weight is {format_shape(weight)}",
            f"a tied head maps {weight[1]} features to {weight[0]}: read a {weight[1]}-wide "
            f"input and give it {weight[0]} outputs")
    bias = info.build.kwargs.get("bias", True)
    build = Call(modules.TiedLinear, in_features, out_features, bias=bias).producing(
        info.output.shape)
    counted = out_features if bias else 0
    return NodeInfo(info.output, build, counted, counted if node.trainable else 0,
                    info.macs, info.buffers)


def _memory_problem(shaped: ShapedGraph) -> Problem | None:
    """Refuse a network whose weights and one sample's activations exceed this machine's memory
    (meta tensors cost nothing, so nothing above has noticed)."""
    from dlspec.memory import check_fits

    made = [(node, info) for node, info in shaped if info.build is not None]
    first = shaped.graph.nodes[0].path if shaped.graph.nodes else ()
    # an input is declared under inputs:, or under networks.NAME.inputs
    prefix = first[:2] if first[:1] == ("networks",) else ()
    inputs = [((*prefix, "inputs", name), f"the input {name}",
               math.prod(shaped.tensors[name].shape)) for name in shaped.graph.inputs]
    outputs = [(node.path, f"{node.name}'s output", math.prod(info.output.shape))
               for node, info in made]
    problem = check_fits(((node.path, node.name, info.params + info.buffers)
                          for node, info in made), inputs + outputs)
    if problem is None:
        return None
    culprit = next((n for n in shaped.graph.nodes if n.path == problem.path), None)
    if culprit is not None and culprit.used_at is not None:
        block = next((s for s in reversed(culprit.scopes) if s.kind == "block"), None)
        problem.used_at = culprit.used_at
        problem.used_in = f"block {block.label} ({block.name})" if block else None
    return problem


def _infer_node(node: Node, tensors: dict[str, TensorInfo], count_macs: bool) -> NodeInfo:
    kind = lookup_kind(node.kind)
    assert kind is not None, node.kind  # expansion only creates registered kinds
    incoming = [tensors[name] for name in node.inputs]
    _check_dtypes(kind.name, kind.input_dtypes(node.params, len(incoming)), incoming)
    build = kind.build(node.params, [t.shape for t in incoming]
                       + [tensors[n].shape for n in node.shape_inputs])
    if build is None:
        return NodeInfo(incoming[0], None)
    try:
        return _measure(node, build, incoming, known_output(kind, build, incoming),
                        count_macs)
    except (RuntimeError, ValueError, IndexError, TypeError, OverflowError) as exc:
        # torch's own message is precise; say which layer and input it is about
        message = (str(exc).splitlines() or [type(exc).__name__])[0]
        if "overflow" in message.lower():
            message = "its sizes are too large for PyTorch to represent"
        raise ShapeProblem(message) from None


def known_output(kind: Any, build: Call | Function,
                 incoming: list[TensorInfo]) -> TensorInfo | None:
    """The output a kind declares (or preserves), without running anything."""
    shape = incoming[0].shape if kind.preserves_shape else build.output
    if shape is None:
        return None
    dtype = "float32" if kind.accepts == "int" else incoming[0].dtype  # embeddings make floats
    return TensorInfo(tuple(shape), dtype)


def _measure(node: Node, build: Call | Function, incoming: list[TensorInfo],
             known: TensorInfo | None, count_macs: bool) -> NodeInfo:
    """Parameters always; the output by running on meta unless known; MACs on request."""
    if isinstance(build, Function):
        if known is not None:
            return NodeInfo(known, build)
        output = apply_function(build, [_meta_tensor(t) for t in incoming])
        return NodeInfo(_tensor_info(output, node), build)
    module = build.instantiate()  # on the meta device: no memory, no initialisation cost
    if node.init is not None and node.init.explicit():
        _check_explicit_values(module, node.init.explicit())
    params = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for b in module.buffers())
    trainable = params if node.trainable else 0
    if known is not None and not (count_macs and _has_macs(module)):
        return NodeInfo(known, build, params, trainable, buffers=buffers)
    output, macs = _run(module, [_meta_tensor(t) for t in incoming], count_macs)
    return NodeInfo(_tensor_info(output, node), build, params, trainable, macs, buffers)


def _check_explicit_values(module: Any, values: dict[str, list[Any]]) -> None:
    """`init: {weight: [[-2, -2]], bias: [3]}` must give each parameter exactly its shape."""
    import numpy as np

    parameters = dict(module.named_parameters())
    for which, given in values.items():
        if which not in parameters:
            raise ShapeProblem(f"init gives {which} values, but this layer has no {which}",
                               f"its parameters: {', '.join(parameters) or 'none'}")
        try:
            shape = np.asarray(given, dtype=np.float64).shape
        except ValueError:
            raise ShapeProblem(f"init {which} values are ragged: every row needs the same "
                               "length") from None
        expected = tuple(parameters[which].shape)
        if shape != expected:
            raise ShapeProblem(f"init {which} values have shape {format_shape(shape)}, but "
                               f"the layer's {which} is {format_shape(expected)}",
                               "nn.Linear's weight is out × in" if len(expected) == 2 else None)


def _has_macs(module: Any) -> bool:
    """Whether a module may do multiply-accumulates worth counting (it has weights)."""
    return any(True for _ in module.parameters())


def _tensor_info(output: Any, node: Node) -> TensorInfo:
    import torch

    if not isinstance(output, torch.Tensor):
        raise ShapeProblem(f"{node.kind} returned {type(output).__name__}, not a tensor")
    return TensorInfo(tuple(output.shape[1:]), str(output.dtype).removeprefix("torch."))


def apply_function(function: Function, inputs: list[Any]) -> Any:
    """Apply a Function to input tensors, as the compiled graph does."""
    inputs = list(inputs)
    for i, count in enumerate(function.lift):
        for _ in range(count):
            inputs[i] = inputs[i].unsqueeze(1)
    if function.pack_inputs:
        return function.target(inputs, **function.kwargs)
    if not function.fold:
        return function.target(*inputs, **function.kwargs)
    result = inputs[0]
    for other in inputs[1:]:
        result = function.target(result, other, **function.kwargs)
    return result


def _run(module: Any, inputs: list[Any], count_macs: bool) -> tuple[Any, int]:
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    if not count_macs:
        return module(*inputs), 0
    with FlopCounterMode(display=False) as counter:
        output = module(*inputs)
    return output, counter.get_total_flops() // 2


def _meta_tensor(tensor: TensorInfo) -> Any:
    import torch

    dtype = getattr(torch, tensor.dtype)
    return torch.empty((1, *tensor.shape), dtype=dtype, device="meta")


def _check_dtypes(kind: str, dtypes: list[str], incoming: list[TensorInfo]) -> None:
    for accepts, tensor in zip(dtypes, incoming, strict=True):
        is_int = tensor.dtype.startswith(("int", "uint")) or tensor.dtype == "bool"
        if accepts == "float" and is_int:
            raise ShapeProblem(f"{kind} needs a floating-point input but receives {tensor.dtype}",
                               "token ids go through an `embedding` first")
        if accepts == "int" and not is_int:
            raise ShapeProblem(f"{kind} reads integer token ids but receives {tensor.dtype}",
                               "declare the input with dtype: int64")


def _shape_problem(node: Node, exc: ShapeProblem, tensors: dict[str, TensorInfo]) -> Problem:
    sources = ", ".join(f"{tensors[n]} from {n}" for n in node.inputs)
    message = f"{node.name}: {exc.message} (input: {sources})"
    block = next((s for s in reversed(node.scopes) if s.kind == "block"), None)
    return Problem(node.path, message, node.shape_hint or exc.hint, used_at=node.used_at,
                   used_in=f"block {block.label} ({block.name})" if block else None)
