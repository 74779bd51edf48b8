"""The exporter: a compiled network → one .onnx file, verified before it is reported.

    fx.GraphModule ─torch.onnx.export (dynamo)─▶ ONNX ─checker, shape inference─▶
        ─ONNX Runtime vs PyTorch at batch 1, 2, 7 × other sizes of each dynamic axis─▶
                                                  MODEL.onnx (or MODEL.failed.onnx)

Input and output names are the spec's; the batch axis is dynamic, and so is the sequence
axis of sequence inputs where the network allows it, or the axes `export.onnx.dynamic_axes`
names (`dlspec.export.axes`: which sizes are compared, and the outputs' axis names). The
file's `metadata_props` carry what deployment needs: keys and values as `dlspec.contract`
defines them, filled by `metadata.py`; `dlspec.runtime` reads them through the same
contract, without torch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch

from dlspec.errors import FileError, Problem, SpecError, WorkError
from dlspec.export.axes import (
    AXES_PATH,
    AxesSetting,
    AxisPlan,
    SizeSets,
    cases,
    choose_sizes,
    compared_at,
    name_outputs,
    plan_axes,
)
from dlspec.export.metadata import DeploymentInfo, TensorSpec, metadata_props
from dlspec.export.verify import Comparison, check_model, compare
from dlspec.graph import InputDecl, ShapedGraph
from dlspec.spec.model import Spec
from dlspec.user_files import write_user_file

DYNAMIC_AXES = ("batch", "seq")


@dataclass
class ExportOptions:
    """How to export: the spec's `export.onnx` section with command-line overrides applied."""

    opset: int = 18
    # None: batch, and seq where the network allows it; else as export.onnx.dynamic_axes
    dynamic: AxesSetting | None = None
    atol: float = 1e-4
    rtol: float = 1e-3
    optimize: bool = False
    verbose: bool = False


@dataclass
class ExportResult:
    """A verified export: the file, its interface and how it compared with PyTorch."""

    path: Path
    opset: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    comparisons: list[Comparison]
    seconds: float
    notes: list[str] = field(default_factory=list)
    compared_at: str = ""  # the sizes compared: 'batch 1, 2, 7 × seq 1, 5, 13, 67'

    def lines(self) -> list[str]:
        """A short human summary: file, size, opset, interface, verification."""
        size = self.path.stat().st_size / 1e6
        worst = {name: max(c.outputs[name][0] for c in self.comparisons)
                 for name in self.comparisons[0].outputs}
        return [
            f"{self.path} ({size:.2f} MB, opset {self.opset}, {self.seconds:.1f} s)",
            "  inputs:  " + ", ".join(t.describe() for t in self.inputs),
            "  outputs: " + ", ".join(t.describe() for t in self.outputs),
            f"  verified in ONNX Runtime against PyTorch at {self.compared_at}: max abs "
            "difference "
            + ", ".join(f"{name} {gap:.2g}" for name, gap in worst.items()),
            *(f"  note: {note}" for note in self.notes),
        ]


def export_network(module: torch.nn.Module, shaped: ShapedGraph, spec: Spec, path: Path,
                   options: ExportOptions, info: DeploymentInfo | None = None) -> ExportResult:
    """Export `module` (compiled from `shaped`) to `path` and verify it; return the result.

    SpecError (exit 2) when the network cannot be exported; WorkError (exit 1) when ONNX
    Runtime disagrees with PyTorch beyond tolerance — the file is then kept as
    `NAME.failed.onnx` for inspection.

    Example:
        >>> spec = dlspec.load("specs/lenet5.yaml")
        >>> shaped = dlspec.shapes(spec)["lenet5"]
        >>> result = export_network(compile_graph(shaped), shaped, spec, Path("lenet5.onnx"),
        ...                         ExportOptions())
        >>> [t.name for t in result.inputs]
        ['image']
    """
    began = time.perf_counter()
    _check_writable(path)  # before the slow export, not after it
    module = module.eval()
    notes: list[str] = []
    plan = plan_axes(spec, shaped.graph, options.dynamic)
    sizes = _sizes(shaped, plan, notes)
    plan = plan.without(sizes.fixed)
    model, data, comparisons, plan = _export_and_compare(
        module, shaped, spec, plan, sizes, options, info, notes)
    if plan.auto and plan.axes and not all(c.passed for c in comparisons):
        # an auto-dynamic length the graph cannot follow (e.g. adaptive pooling whose bins
        # were computed for the traced length): export the spec's own length instead
        why = next(c for c in comparisons if not c.passed).describe()
        notes.append(_fixed_note(plan, [a.name for a in plan.axes], "it does not verify at "
                                 f"other lengths ({why[:160]})"))
        plan = plan.without([a.name for a in plan.axes])
        model, data, comparisons, plan = _export_and_compare(
            module, shaped, spec, plan, sizes, options, info, notes)
    notes += sizes.notes([a.name for a in plan.axes])
    interface = _interface(model)
    failed = [c for c in comparisons if not c.passed]
    if failed:
        kept = path.with_name(path.name.removesuffix(".onnx") + ".failed.onnx")
        _write(kept, data)
        raise WorkError(Problem((), f"the export differs from PyTorch beyond tolerance (atol "
                                f"{options.atol:g}, rtol {options.rtol:g}) at "
                                f"{failed[0].describe()}",
                                f"the file is kept as {kept} for inspection"))
    _write(path, data)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return ExportResult(path, opset, interface[0], interface[1], comparisons,
                        time.perf_counter() - began, notes, compared_at(plan, sizes))


def _sizes(shaped: ShapedGraph, plan: AxisPlan, notes: list[str]) -> SizeSets:
    """The sizes to verify at. An axis the network cannot vary is fixed with a note when
    it was chosen by default, and a SpecError when the spec asked for it."""
    sizes = choose_sizes(shaped.graph, plan)
    for axis in plan.axes:
        if axis.name not in sizes.fixed:
            continue
        if not plan.auto:
            raise SpecError(Problem(AXES_PATH, f"{axis.describe()} cannot vary: "
                                    f"{sizes.fixed[axis.name]}",
                                    f"leave {axis.name} fixed, or change the layer that needs "
                                    f"its size (adaptive pooling before flatten frees an "
                                    "image's size)"))
        notes.append(_fixed_note(plan, [axis.name], sizes.fixed[axis.name]))
    return sizes


def _check_writable(path: Path, probe: bool = True) -> None:
    """FileError (exit 2) when `path` is a folder, lies below a file, or its folder cannot be
    made or written (probed with a temporary file: permission bits do not stop root)."""
    if path.is_dir():
        raise FileError(Problem((), f"cannot write {path}: it is a folder",
                                "give a file path such as model.onnx"))
    blocking = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise FileError(Problem((), f"cannot write {path}: {blocking} is a file, not a folder"))
    if not probe:
        return
    import os
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".dlspec-probe-", dir=path.parent)
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        raise FileError(Problem((), f"cannot write {path}: "
                                f"{(exc.strerror or str(exc)).lower()}")) from None


def _write(path: Path, data: bytes) -> None:
    """Write the exported bytes, folders made on the way; FileError when that fails."""
    _check_writable(path, probe=False)  # the export's own hint for a folder in the way
    write_user_file(path, data)


def _export_and_compare(module: torch.nn.Module, shaped: ShapedGraph, spec: Spec,
                        plan: AxisPlan, sizes: SizeSets, options: ExportOptions,
                        info: DeploymentInfo | None, notes: list[str],
                        ) -> tuple[onnx.ModelProto, bytes, list[Comparison], AxisPlan]:
    """Trace, check, optimise, label; compare with PyTorch. The model, its bytes, the
    comparisons and the axes that stayed dynamic."""
    model, plan = _export(module, shaped, plan, options, notes)
    if name_outputs(model, plan, sizes):
        # the exporter froze an output size it did not follow (an LSTM's length): its shape
        # annotations inside the graph are as wrong; ONNX shape inference redoes them
        del model.graph.value_info[:]
    model = _checked(model, shaped)
    if options.optimize:
        model = _checked(_optimized(model), shaped)
    for key, value in metadata_props(spec, shaped, _interface(model), info).items():
        model.metadata_props.add(key=key, value=value)
    # a YAML escape can put a lone surrogate in a description; protobuf strings are UTF-8
    model.doc_string = (spec.description or spec.name).encode(
        "utf-8", "backslashreplace").decode("utf-8")
    data = model.SerializeToString()
    inputs, outputs = dict(shaped.graph.inputs), list(shaped.graph.outputs)
    comparisons = compare(module, data, inputs, outputs, cases(plan, sizes, inputs),
                          atol=options.atol, rtol=options.rtol,
                          token_limit=_token_limit(shaped))
    return model, data, comparisons, plan


def load_weights(module: torch.nn.Module, checkpoint: Path) -> None:
    """Load a safetensors checkpoint into `module`; FileError naming the first tensor that
    is missing, unexpected or of another shape or dtype."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        weights = load_file(str(checkpoint))
    except (OSError, SafetensorError) as exc:
        why = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise FileError(Problem((), f"cannot read the checkpoint {checkpoint}: {why}",
                                "give a model.safetensors written by `dlspec train`, or its "
                                "run folder")) from None
    state = module.state_dict()
    for name, tensor in state.items():
        if name not in weights:
            raise FileError(Problem((), f"{checkpoint} does not match the spec: it has no "
                                    f"tensor {name}", "was it trained from another spec?"))
        if weights[name].shape != tensor.shape:
            raise FileError(Problem((), f"{checkpoint} does not match the spec: {name} is "
                                    f"{tuple(weights[name].shape)} there, "
                                    f"{tuple(tensor.shape)} in the spec"))
        if weights[name].dtype != tensor.dtype:  # load_state_dict would convert it silently
            raise FileError(Problem((), f"{checkpoint} does not match the spec: {name} is "
                                    f"{str(weights[name].dtype).removeprefix('torch.')} "
                                    f"there, {str(tensor.dtype).removeprefix('torch.')} in "
                                    "the spec"))
    extra = sorted(set(weights) - set(state))
    if extra:
        raise FileError(Problem((), f"{checkpoint} does not match the spec: it has a tensor "
                                f"{extra[0]!r} that the spec's network lacks"))
    module.load_state_dict(weights)


def _export(module: torch.nn.Module, shaped: ShapedGraph, plan: AxisPlan,
            options: ExportOptions, notes: list[str]) -> tuple[onnx.ModelProto, AxisPlan]:
    """The traced ONNX model and the plan of the axes that stayed dynamic.

    With `dynamic_axes` unset, a sequence axis the network cannot leave dynamic (the trace
    fails, or freezes the length) is exported at the spec's length, with a note saying so.
    """
    try:
        model = _trace(module, shaped, plan, options)
    except SpecError as failed:
        if not plan.axes or not plan.auto:
            raise
        fixed = plan.without([a.name for a in plan.axes])
        notes.append(_fixed_note(plan, [a.name for a in plan.axes], "with it dynamic the "
                                 f"export fails ({failed.problems[0].message[:160]})"))
        return _trace(module, shaped, fixed, options), fixed
    frozen = [axis for axis in plan.axes
              if any(_fixed_axis(model, name, dim) for name, dim in axis.places)]
    if not frozen:
        return model, plan
    if not plan.auto:
        what = ("a fixed sequence length" if frozen[0].name.startswith("seq")
                else f"a fixed {frozen[0].name}")
        raise SpecError(Problem(AXES_PATH, f"the network needs {what}: the exported graph "
                                f"fixes {frozen[0].describe()} (an unrolled rnn, or adaptive "
                                "pooling into several bins, needs the length)",
                                f"leave {frozen[0].name} out of dynamic_axes"))
    notes.append(_fixed_note(plan, [a.name for a in frozen], "the exported graph fixes it"))
    return model, plan.without([a.name for a in frozen])


def _fixed_note(plan: AxisPlan, names: list[str], why: str) -> str:
    """'sequence length fixed (x 12): why'."""
    sizes = ", ".join(f"{name} {axis.traced}" for axis in plan.axes if axis.name in names
                      for name, _ in axis.places)
    return f"sequence length fixed ({sizes}): {why}"


def _fixed_axis(model: onnx.ModelProto, name: str, axis: int) -> bool:
    """Whether the exported input `name` has a fixed size on `axis`."""
    value = next(v for v in model.graph.input if v.name == name)
    return value.type.tensor_type.shape.dim[axis].HasField("dim_value")


def _trace(module: torch.nn.Module, shaped: ShapedGraph, plan: AxisPlan,
           options: ExportOptions) -> onnx.ModelProto:
    inputs, outputs = dict(shaped.graph.inputs), list(shaped.graph.outputs)
    dims = {"batch": torch.export.Dim("batch", min=1)}
    dims.update({axis.name: torch.export.Dim(axis.name, min=1) for axis in plan.axes})
    shapes = tuple({axis: dims[name] for axis, name in plan.dims(name).items()}
                   for name in inputs)
    batch = 2 if plan.batch else 1  # a fixed batch is 1: what a deployment feeds one at a time
    example = tuple(_example(decl, batch, _token_limit(shaped)) for decl in inputs.values())
    try:
        with _quiet(options.verbose):
            program = torch.onnx.export(
                module, example, input_names=list(inputs), output_names=outputs,
                opset_version=options.opset, dynamo=True, dynamic_shapes=shapes,
                external_data=False, optimize=True)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds
        raise _unexportable(shaped, _reason(exc)) from None
    if program is None:  # only for the legacy exporter
        raise WorkError(Problem((), "the ONNX exporter returned nothing"))
    return program.model_proto


def _example(decl: InputDecl, batch: int, token_limit: int) -> torch.Tensor:
    shape = (batch, *decl.shape)
    if decl.dtype == "float32":
        return torch.randn(shape)
    return torch.randint(0, 2 if decl.dtype == "bool" else token_limit, shape).to(
        {"int64": torch.int64, "int32": torch.int32, "bool": torch.bool}[decl.dtype])


def _token_limit(shaped: ShapedGraph) -> int:
    """Token ids valid for every embedding of the network."""
    sizes = [int(getattr(node.params, "num_embeddings", 0)) for node in shaped.graph.nodes
             if node.kind == "embedding"]
    return max(1, min(sizes)) if sizes else 2


def _unexportable(shaped: ShapedGraph, text: str) -> SpecError:
    """The exporter's failure, pinned on the layer it names when it names one."""
    for node in reversed(shaped.graph.nodes):
        if node.name.replace(".", "_") in text or f"'{node.name}'" in text:
            return SpecError(Problem(node.path, f"{node.name} ({node.kind}) cannot be exported "
                                     f"to ONNX: {_first_line(text)}",
                                     "change this layer, or a lower opset may lack it"))
    return SpecError(Problem(("export",), f"the network cannot be exported to ONNX: "
                             f"{_first_line(text)}", "run with --verbose for the exporter's log"))


def _first_line(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # the exporter colours its messages
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else "unknown error"


def _reason(exc: BaseException) -> str:
    """The root cause's message: the exporter wraps the error that explains the failure."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {_first_line(str(exc))}"


def _checked(model: onnx.ModelProto, shaped: ShapedGraph) -> onnx.ModelProto:
    try:
        return check_model(model)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise WorkError(Problem((), f"the exported model of {shaped.graph.name} fails ONNX's "
                                f"checks: {_first_line(str(exc))}")) from None


def _optimized(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX Runtime's offline graph optimisation (basic level: standard ONNX ops only)."""
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def _interface(model: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Names, shapes (None for dynamic axes) and dtypes of the model's inputs and outputs."""
    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        return TensorSpec(value.name, dims, dtype)

    return [spec(v) for v in model.graph.input], [spec(v) for v in model.graph.output]


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """The exporter's progress lines, warnings and log records, unless asked for."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("torch", "torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    sink = io.StringIO()
    try:
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
                contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


__all__ = ["ExportOptions", "ExportResult", "export_network", "load_weights"]
