"""The dynamic axes of an export: which axes may vary, the sizes verification tries on them,
and the names the exported outputs' axes get.

    spec's dynamic_axes ─plan_axes─▶ AxisPlan: each dynamic axis by name, with its inputs
    AxisPlan + graph ─choose_sizes─▶ SizeSets: other sizes of every axis that shape inference
                                     accepts (PyTorch takes them), and the ones it refuses
    SizeSets + model ─name_outputs─▶ output axes that vary get symbolic names: the input
                                     axis's name where they follow it

Sizes come from dlspec's own shape inference, not from trying: a size the network cannot
take (length 1 under a kernel of 3, a length beyond positional_encoding's max_len) is left
out with the reason, instead of failing on both sides and being reported as a difference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import onnx

from dlspec.errors import DlspecError, Problem, SpecError
from dlspec.export.verify import BATCH_SIZES, Case
from dlspec.graph import Graph, InputDecl, infer_shapes
from dlspec.layers.registry import Call, Function, Shape
from dlspec.spec.model import Spec, is_sequence
from dlspec.spec.sections import AxisProblem, InputShape, resolve_axes

AXES_PATH = ("export", "onnx", "dynamic_axes")
#: sizes tried on every dynamic axis besides its traced size: small ones, and one past the
#: traced size and past 64 (exporters have frozen traced sizes and small-size heuristics)
SMALL_SIZES = (1, 5, 13)
LARGE_AT_LEAST = 67

AxesSetting = Sequence[str | Mapping[str, Sequence[int | str]]]


@dataclass(frozen=True)
class DynamicAxis:
    """One symbolic size of the exported model, on one or more input axes (tied by name)."""

    name: str
    places: tuple[tuple[str, int], ...]  # (input, axis of the batched tensor: 0 is the batch)
    traced: int  # the spec's size, which the exporter traces

    def describe(self) -> str:
        """'seq (axis 1 of tokens)'."""
        where = ", ".join(f"axis {axis} of {name}" for name, axis in self.places)
        return f"{self.name} ({where})"


@dataclass
class AxisPlan:
    """What to export as dynamic: the batch axis, and the named per-sample axes.

    `auto`: nothing was asked (dynamic_axes unset): sequence axes are dynamic where the
    network allows it, fixed with a note where it does not.
    """

    batch: bool
    axes: list[DynamicAxis]
    auto: bool = False

    def dims(self, name: str) -> dict[int, str]:
        """The dynamic axes of input `name`: tensor axis → symbolic name (batch included)."""
        dims = {0: "batch"} if self.batch else {}
        for axis in self.axes:
            dims.update({dim: axis.name for input_, dim in axis.places if input_ == name})
        return dims

    def without(self, names: Collection[str]) -> AxisPlan:
        """The plan with the axes called `names` fixed at their traced size."""
        return AxisPlan(self.batch, [a for a in self.axes if a.name not in names], self.auto)

    def shapes(self, inputs: Mapping[str, InputDecl], sizes: Mapping[str, int],
               ) -> dict[str, Shape]:
        """Each input's per-sample shape with the dynamic axes at `sizes`."""
        shapes = {name: list(decl.shape) for name, decl in inputs.items()}
        for axis in self.axes:
            for name, dim in axis.places:
                shapes[name][dim - 1] = sizes.get(axis.name, axis.traced)
        return {name: tuple(shape) for name, shape in shapes.items()}


def plan_axes(spec: Spec, graph: Graph, dynamic: AxesSetting | None) -> AxisPlan:
    """The axes to export as dynamic; SpecError (at dynamic_axes) for an axis that does not
    fit the network's inputs."""
    inputs = {name: InputShape(decl.shape, is_sequence(decl.shape, decl.dtype))
              for name, decl in graph.inputs.items()}
    auto = dynamic is None
    if dynamic is None:
        dynamic = ["batch", "seq"] if any(i.sequence for i in inputs.values()) else ["batch"]
    elsewhere = {name for net in spec.network_specs().values() for name in net.inputs}
    try:
        resolved = resolve_axes(dynamic, inputs, elsewhere - set(inputs))
    except AxisProblem as problem:
        hint = problem.hint or (f"the inputs: {', '.join(problem.choices)}"
                                if problem.choices else None)
        raise SpecError(Problem((*AXES_PATH, *problem.loc), problem.message, hint)) from None
    places: dict[str, list[tuple[str, int]]] = {}
    for name, axes in resolved.items():
        for axis, axis_name in axes.items():
            places.setdefault(axis_name, []).append((name, axis + 1))
    axes_ = [DynamicAxis(name, tuple(where), graph.inputs[where[0][0]].shape[where[0][1] - 1])
             for name, where in places.items()]
    return AxisPlan("batch" in dynamic, axes_, auto)


@dataclass(frozen=True)
class SizeSet:
    """One set of sizes for the dynamic axes, and the per-sample output shapes PyTorch gives
    there (by shape inference)."""

    sizes: dict[str, int]
    outputs: dict[str, Shape]


@dataclass
class SizeSets:
    """The sizes to compare at (`sets`; the traced sizes in `traced`), and what was left out."""

    traced: SizeSet
    sets: list[SizeSet]
    refused: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # axis → (size, why)
    fixed: dict[str, str] = field(default_factory=dict)  # axis → why it cannot vary at all

    def notes(self, names: Collection[str]) -> list[str]:
        """One line per axis of `names` with sizes the network refuses: which, and why (at
        the smallest, and at the largest when that is another reason)."""
        lines = []
        for name, refused in self.refused.items():
            if name in self.fixed or name not in names or not refused:
                continue
            shown = ", ".join(str(size) for size, _ in refused)
            # the largest size's reason too, when another layer gives it
            other = refused[-1][1].split(":")[0] != refused[0][1].split(":")[0]
            ends = [refused[0]] + ([refused[-1]] if other else [])
            why = "; ".join(f"at {size}: {reason}" for size, reason in ends)
            lines.append(f"{name} not compared at {shown}: the network itself refuses "
                         f"{'it' if len(refused) == 1 else 'them'} ({why})")
        return lines


def choose_sizes(graph: Graph, plan: AxisPlan) -> SizeSets:
    """The sizes to verify every dynamic axis at: SMALL_SIZES and one past the traced size
    (and past 64), each where shape inference accepts it; else the largest accepted size
    between, or twice the traced size (networks that halve and re-join need a multiple).
    An axis that takes no other size is listed in `fixed`, with the reason."""
    probe = _Probe(graph, plan)
    traced = {axis.name: axis.traced for axis in plan.axes}
    base = probe.outputs(traced)
    assert base is not None  # the spec's own sizes were inferred before export
    result = SizeSets(SizeSet(traced, base), [])
    accepted: dict[str, list[int]] = {}
    for axis in plan.axes:
        ok, refused = _sizes_for(axis, probe, traced)
        result.refused[axis.name] = refused
        accepted[axis.name] = ok
        if not ok:  # the largest size tried tells most (small ones fail on kernels)
            size, why = max(refused) if refused else (0, "no other size was found")
            result.fixed[axis.name] = (f"the network takes no other {axis.name} than "
                                       f"{axis.traced} (at {size}: {why})")
    varying = [axis for axis in plan.axes if accepted[axis.name]]
    count = max((len(accepted[a.name]) for a in varying), default=0)
    for k in range(count):  # the k-th size of each axis, rotated: axes differ in a set
        sizes = dict(traced)
        for j, axis in enumerate(varying):
            options = accepted[axis.name]
            sizes[axis.name] = options[(k + j) % len(options)]
        outputs = probe.outputs(sizes)
        if outputs is None:  # each size alone is fine, not together: try them one at a time
            for axis in varying:
                alone = {**traced, axis.name: sizes[axis.name]}
                if (shapes := probe.outputs(alone)) is not None:
                    result.sets.append(SizeSet(alone, shapes))
            continue
        result.sets.append(SizeSet(sizes, outputs))
    if not result.sets:
        result.sets.append(result.traced)
    return result


def _sizes_for(axis: DynamicAxis, probe: _Probe, traced: dict[str, int],
               ) -> tuple[list[int], list[tuple[int, str]]]:
    """Sizes of one axis (the others at their traced sizes) the network takes, and the ones
    it refuses with the reason."""
    ok: list[int] = []
    refused: list[tuple[int, str]] = []

    def tried(size: int) -> bool:
        why = probe.refusal({**traced, axis.name: size})
        if why is None:
            ok.append(size)
        else:
            refused.append((size, why))
        return why is None

    for size in SMALL_SIZES:
        if size != axis.traced:
            tried(size)
    large = max(LARGE_AT_LEAST, axis.traced + 5)
    if not tried(large):
        fits, low, high = axis.traced, axis.traced, large  # low fits, high does not
        while high - low > 1:
            middle = (low + high) // 2
            if probe.refusal({**traced, axis.name: middle}) is None:
                low = fits = middle
            else:
                high = middle
        if high < large:  # the first size refused on the way (max_len + 1) says most
            refused[-1] = (high, probe.refusal({**traced, axis.name: high}) or "")
        if fits > axis.traced:
            ok.append(fits)
        elif axis.traced * 2 != large:
            tried(axis.traced * 2)
    if not any(size < axis.traced for size in ok) and axis.traced > 2:
        half = axis.traced // 2
        if half not in SMALL_SIZES:
            tried(half)
    return sorted(ok), sorted(refused)


class _Probe:
    """Shape inference of the graph with its dynamic axes at other sizes (memoised).

    A size is refused when a layer refuses it, and also when a layer would be built
    differently for it (a linear after flatten needs other in_features): the exported module
    is the one built for the traced sizes."""

    def __init__(self, graph: Graph, plan: AxisPlan):
        self.graph, self.plan = graph, plan
        self.seen: dict[tuple[tuple[str, int], ...], dict[str, Shape] | str] = {}
        self.built: dict[str, str] | None = None  # each layer's constructor at traced sizes

    def _run(self, sizes: dict[str, int]) -> dict[str, Shape] | str:
        key = tuple(sorted(sizes.items()))
        if key not in self.seen:
            self.seen[key] = self._infer(sizes)
        return self.seen[key]

    def _infer(self, sizes: dict[str, int]) -> dict[str, Shape] | str:
        shapes = self.plan.shapes(self.graph.inputs, sizes)
        inputs = {name: dataclasses.replace(decl, shape=shapes[name])
                  for name, decl in self.graph.inputs.items()}
        try:
            shaped = infer_shapes(dataclasses.replace(self.graph, inputs=inputs))
        except DlspecError as exc:
            return " ".join(exc.problems[0].message.split())[:200]
        built = {node.name: _constructor(info.build) for node, info in shaped}
        if self.built is None:
            self.built = built
        for name, made in built.items():
            if made != self.built.get(name):
                return (f"{name} is {_brief(self.built.get(name))}, built for the spec's "
                        f"sizes; this size would need {_brief(made)}")
        return {name: t.shape for name, t in shaped.outputs().items()}

    def outputs(self, sizes: dict[str, int]) -> dict[str, Shape] | None:
        """The per-sample output shapes at `sizes`; None when the network refuses them."""
        result = self._run(sizes)
        return result if isinstance(result, dict) else None

    def refusal(self, sizes: dict[str, int]) -> str | None:
        """Why the network refuses `sizes` (shape inference's first problem), or None."""
        result = self._run(sizes)
        return result if isinstance(result, str) else None


def _constructor(build: Call | Function | None) -> str:
    """What a layer is built as: its constructor call, or its function and arguments."""
    if isinstance(build, Call):
        return build.source()
    if isinstance(build, Function):
        return f"{build.target!r} {build.kwargs!r} {build.lift!r}"
    return ""


def _brief(text: str | None) -> str:
    text = text or "nothing"
    return text if len(text) <= 80 else text[:77] + "..."


def name_outputs(model: onnx.ModelProto, plan: AxisPlan, sizes: SizeSets) -> bool:
    """Give every output axis that varies a symbolic name: the dynamic axis's own where its
    size follows that axis at every size compared, `<output>_<axis>` otherwise. Returns
    whether a size the exporter had frozen was replaced (its shape annotations inside the
    graph are then as wrong, and must be inferred again)."""
    cases = [sizes.traced, *sizes.sets]
    replaced = False
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim
        if plan.batch and dims:
            replaced |= _rename(dims[0], "batch")
        if len(sizes.traced.outputs.get(value.name, ())) + 1 != len(dims):
            continue  # not an output shape inference knows (or of another rank)
        for k in range(1, len(dims)):
            seen = [case.outputs[value.name][k - 1] for case in cases]
            if len(set(seen)) == 1:
                continue
            follows = next((axis.name for axis in plan.axes
                            if [case.sizes[axis.name] for case in cases] == seen), None)
            if follows is not None:
                replaced |= _rename(dims[k], follows)
            elif dims[k].HasField("dim_value"):
                replaced |= _rename(dims[k], f"{value.name}_{k}")
    return replaced


def _rename(dim: onnx.TensorShapeProto.Dimension, name: str) -> bool:
    """Set a symbolic name; True when it replaces a fixed size."""
    frozen = dim.HasField("dim_value")
    if frozen or dim.dim_param != name:
        dim.dim_param = name  # clears dim_value: the two are a oneof
    return frozen


def size_sets(plan: AxisPlan, sizes: SizeSets) -> list[dict[str, int]]:
    """The sizes of the plan's axes at each set compared (without repeats)."""
    sets: list[dict[str, int]] = []
    for size_set in sizes.sets:
        own = {a.name: size_set.sizes.get(a.name, a.traced) for a in plan.axes}
        if own not in sets:
            sets.append(own)
    return sets


def cases(plan: AxisPlan, sizes: SizeSets, inputs: dict[str, InputDecl]) -> list[Case]:
    """What verification compares at: every batch size with every set of sizes."""
    batches = BATCH_SIZES if plan.batch else (1,)  # a fixed batch is traced at 1
    return [Case(batch, size_set, plan.shapes(inputs, size_set))
            for batch in batches for size_set in size_sets(plan, sizes)]


def compared_at(plan: AxisPlan, sizes: SizeSets) -> str:
    """'batch 1, 2, 7 × seq 1, 5, 13, 67'; '... × (height 5, width 13; height 67, width 5)'
    for several axes, whose sizes are compared in those combinations."""
    batches = BATCH_SIZES if plan.batch else (1,)
    shown = f"batch {', '.join(map(str, batches))}"
    if not plan.axes:
        return shown
    sets = size_sets(plan, sizes)
    if len(plan.axes) == 1:
        name = plan.axes[0].name
        return f"{shown} × {name} {', '.join(str(s[name]) for s in sets)}"
    return f"{shown} × (" + "; ".join(
        ", ".join(f"{a.name} {s[a.name]}" for a in plan.axes) for s in sets) + ")"


__all__ = ["AxisPlan", "DynamicAxis", "SizeSet", "SizeSets", "cases", "choose_sizes",
           "compared_at", "name_outputs", "plan_axes", "size_sets"]
