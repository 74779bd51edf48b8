"""ShapedGraph → torch.fx.GraphModule whose submodules carry the spec's layer names."""

from __future__ import annotations

import keyword
import re
from typing import TYPE_CHECKING, Any

from dlspec.graph import InitChoice, ShapedGraph
from dlspec.layers.registry import Call, Function

if TYPE_CHECKING:
    import torch
    from torch import fx


def compile_graph(shaped: ShapedGraph) -> fx.GraphModule:
    """Build the real modules (on CPU, initialised) and wire them into an fx graph.

    Example:
        >>> model = compile_graph(infer_shapes(expand(spec)["lenet5"]))
        >>> model(torch.randn(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """
    import torch
    from torch import fx

    _check_names(shaped)
    graph = fx.Graph()
    values: dict[str, fx.Node] = {}
    modules: dict[str, torch.nn.Module] = {}
    for name in shaped.graph.inputs:
        values[name] = graph.placeholder(name)
    for node, info in shaped:
        args = [values[n] for n in node.inputs]
        if info.build is None:
            values[node.name] = args[0]
        elif isinstance(info.build, Function):
            values[node.name] = _emit_function(graph, info.build, args, node.name)
        elif node.shares is not None:  # the owner's module runs here too: stored once
            values[node.name] = graph.create_node("call_module", node.shares, tuple(args),
                                                  name=node.name.replace(".", "_"))
        else:
            if node.tie is not None:  # its weight is the owner's, read where it is used
                args.append(graph.get_attr(f"{node.tie}.weight"))
            module = _instantiate(info.build, node.trainable, node.init)
            modules[node.name] = module
            values[node.name] = graph.call_module(node.name, tuple(args))
    outputs = [values[n] for n in shaped.graph.outputs.values()]
    graph.output(outputs[0] if len(outputs) == 1 else tuple(outputs))
    graph.lint()
    root = torch.nn.Module()
    for name, submodule in modules.items():  # in graph order, so state_dict follows the spec
        install(root, name, submodule)
    module = fx.GraphModule(root, graph, class_name=_class_name(shaped.graph.name))
    # names of the returned tensors, for export and prediction
    module.dlspec_outputs = list(shaped.graph.outputs)  # type: ignore[assignment]
    return module


# fx writes input names into forward()'s signature and module paths into attribute accesses
# as they are: only identifiers (and repeat indices) may reach it
_SAFE_PART = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]*|[0-9]+)$")


def _check_names(shaped: ShapedGraph) -> None:
    from dlspec.spec.model import name_problem

    names = [*shaped.graph.inputs, *(node.name for node in shaped.graph.nodes)]
    for name in names:
        parts = name.split(".")
        if not all(_SAFE_PART.match(p) and (p.isdigit() or name_problem(p) is None)
                   for p in parts):
            raise ValueError(f"unsafe name {name!r} reached the compiler")  # expand's bug


def install(root: torch.nn.Module, path: str, module: torch.nn.Module) -> None:
    """Set `root.<a>.<b>.<c> = module`, creating plain container modules on the way."""
    import torch  # also copied into `dlspec code` output, which must need nothing but torch

    *parents, leaf = path.split(".")
    for part in parents:
        if not hasattr(root, part):
            root.add_module(part, torch.nn.Module())
        root = getattr(root, part)
    root.add_module(leaf, module)


def _emit_function(graph: fx.Graph, function: Function, args: list[fx.Node],
                   name: str) -> fx.Node:
    """Functions as call_function nodes: `torch.cat([a, b])`, `torch.add(torch.add(a, b), c)`,
    `torch.clamp(x, min=0.0)`; a lifted input first gains axes: `torch.unsqueeze(b, 1)`.
    The last node carries the layer's name, so `dlspec code` reads `gated = torch.mul(x, gate)`.
    """
    import torch

    args = list(args)
    for i, count in enumerate(function.lift):
        for _ in range(count):
            args[i] = graph.call_function(torch.unsqueeze, (args[i], 1))
    kwargs = dict(function.kwargs)
    if function.pack_inputs:
        return graph.create_node("call_function", function.target, (args,), kwargs, name=name)
    if not function.fold:
        return graph.create_node("call_function", function.target, tuple(args), kwargs,
                                 name=name)
    result = args[0]
    for count, other in enumerate(args[1:], start=2):
        result = graph.create_node("call_function", function.target, (result, other), kwargs,
                                   name=name if count == len(args) else None)
    return result


def _instantiate(call: Call, trainable: bool, init: InitChoice | None) -> torch.nn.Module:
    module = call.instantiate()
    if init is not None:
        initialise(module, init)
    if not trainable:
        module.requires_grad_(False)
    return module


# scheme → (torch.nn.init function, its keyword arguments); compile and `dlspec code` share it
INIT_SCHEMES: dict[str, tuple[str, dict[str, Any]]] = {
    "kaiming_normal": ("kaiming_normal_", {"nonlinearity": "relu"}),
    "kaiming_uniform": ("kaiming_uniform_", {"nonlinearity": "relu"}),
    "xavier_normal": ("xavier_normal_", {}),
    "xavier_uniform": ("xavier_uniform_", {}),
    "orthogonal": ("orthogonal_", {}),
    "normal": ("normal_", {"mean": 0.0, "std": 0.02}),  # DCGAN's N(0, 0.02)
    "trunc_normal": ("trunc_normal_", {"mean": 0.0, "std": 0.02}),
    "uniform": ("uniform_", {"a": -0.05, "b": 0.05}),
    "zeros": ("zeros_", {}),
    "ones": ("ones_", {}),
}
_FAN_BASED = ("kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "orthogonal")


def init_plan(module: torch.nn.Module,
              init: InitChoice) -> list[tuple[str, str, dict[str, Any]]]:
    """(parameter name, nn.init function, kwargs) for each parameter the scheme touches."""
    from dlspec.layers.modules import LearnedTensor

    plan: list[tuple[str, str, dict[str, Any]]] = []
    if isinstance(module, LearnedTensor):
        return plan  # a `parameter` has its own init (layer scale 1e-6): a block's is not for it
    for name, parameter in module.named_parameters():
        is_bias = name.rsplit(".", 1)[-1].startswith("bias")
        scheme = init.bias if is_bias else init.weight
        if scheme is None or scheme == "default":
            continue
        if isinstance(scheme, list):  # explicit values, shape-checked by shape inference
            plan.append((name, "copy_", {"values": scheme}))
            continue
        if not isinstance(scheme, str):
            plan.append((name, "constant_", {"val": float(scheme)}))
            continue
        if scheme in _FAN_BASED and parameter.dim() < 2:
            continue  # fan-based schemes need a matrix; vectors keep PyTorch's defaults
        function, kwargs = INIT_SCHEMES[scheme]
        plan.append((name, function, kwargs))
    return plan


def initialise(module: torch.nn.Module, init: InitChoice) -> None:
    """Apply an init scheme: `weight` to weights and kernels, `bias` to biases."""
    import torch

    with torch.no_grad():
        for name, function, kwargs in init_plan(module, init):
            parameter = module.get_parameter(name)
            if function == "copy_":
                parameter.copy_(torch.tensor(kwargs["values"], dtype=parameter.dtype))
            else:
                getattr(torch.nn.init, function)(parameter, **kwargs)


def _class_name(name: str) -> str:
    """`lenet5` → `Lenet5`: an identifier that names nothing else in `dlspec code`'s output."""
    from dlspec.layers import modules

    candidate = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
    if not candidate.isidentifier():
        return "Model"
    # `none` would become the keyword None; `reshape` the Reshape class copied beside it
    taken = {"install", "torch", "nn", *vars(modules)}
    if keyword.iskeyword(candidate) or candidate in taken:
        candidate += "Model"
    return candidate

