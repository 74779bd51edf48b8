"""The library's entry points: load → expand → infer shapes → compile; train; export.

The whole build (check → train → evaluate → export → diagram → report) is
`dlspec.pipeline.build_run`.

Every function raises a DlspecError whose problems carry file locations.
Nothing here imports torch until shapes or modules are asked for.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dlspec.errors import DlspecError, FileError, Problem, SpecError, WorkError
from dlspec.graph import Graph, ShapedGraph, infer_shapes
from dlspec.runfiles import ONNX, WEIGHTS
from dlspec.spec.expand import expand
from dlspec.spec.load import Document, load_yaml_file, load_yaml_text
from dlspec.spec.model import NetworkPart, Spec
from dlspec.spec.naming import naming_problems
from dlspec.spec.overrides import Overrides
from dlspec.spec.validation import problems_from_validation
from dlspec.spec.variants import resolve

if TYPE_CHECKING:
    import torch
    from torch import fx

    from dlspec.export.exporter import ExportResult
    from dlspec.export.metadata import DeploymentInfo
    from dlspec.spec.sections import OnnxExport
    from dlspec.tasks import Task
    from dlspec.train.engine import Callbacks, TrainResult


def load(path: str | Path, variant: str | None = None,
         overrides: Overrides | None = None) -> Spec:
    """Read and validate a spec file; `variant` selects one of its `variants:`; `overrides`
    set values as `--set` does: `["optimizer.lr=1e-3", "train.epochs=5"]` (values read as
    YAML) or `{"optimizer.lr": 1e-3}` (values as given), see dlspec.spec.overrides.

    Example:
        >>> spec = dlspec.load("specs/lenet5.yaml")
        >>> spec.name
        'lenet5'
        >>> dlspec.load("specs/resnet18.yaml", variant="digits").name
        'resnet18_digits'
        >>> dlspec.load("specs/lenet5.yaml", overrides=["optimizer.lr=0.01"]).optimizer.lr
        0.01
    """
    return validate(load_yaml_file(path), variant, overrides)


def loads(text: str, file: str = "<string>", variant: str | None = None,
          overrides: Overrides | None = None) -> Spec:
    """Read and validate a spec from YAML text (`variant`, `overrides`: as `load`)."""
    return validate(load_yaml_text(text, file), variant, overrides)


def validate(document: Document, variant: str | None = None,
             overrides: Overrides | None = None) -> Spec:
    """Validate a loaded YAML document against the spec format (after choosing `variant`,
    applying `overrides` and substituting the spec's `params`)."""
    with located(document):
        if not isinstance(document.data, dict):
            raise SpecError(Problem((), "a spec is a mapping with keys such as dlspec, name, "
                                    "inputs and network"))
        document = resolve(document, variant, overrides)
    with located(document):
        try:
            spec = Spec.model_validate(document.data)
        except ValidationError as exc:
            problems = problems_from_validation(exc, document.data, Spec)
            raise SpecError(problems + _wiring_problems(document.data)) from None
    spec._document = document
    return spec


def _wiring_problems(data: dict[str, Any]) -> list[Problem]:
    """Expansion problems of a spec whose other sections failed, so all are reported at once."""
    part = {k: v for k, v in data.items() if k in NetworkPart.model_fields}
    try:
        expand(NetworkPart.model_validate(part))
    except ValidationError:
        return []  # already reported by the whole-spec validation
    except SpecError as exc:
        return exc.problems
    return []


def graphs(spec: Spec) -> dict[str, Graph]:
    """Expand blocks, repeats and wiring: one Graph per network; the names the data, losses
    and metrics give inputs and outputs are checked against it."""
    with located(spec.document):
        return _named(spec, expand(spec))


def _named(spec: Spec, expanded: dict[str, Graph]) -> dict[str, Graph]:
    problems = naming_problems(spec, expanded)
    if problems:
        raise SpecError(problems)
    return expanded


def shapes(spec: Spec, count_macs: bool = False) -> dict[str, ShapedGraph]:
    """Graphs with every tensor's shape inferred (imports torch); MACs on request."""
    with located(spec.document):
        shaped = {name: infer_shapes(graph, count_macs)
                  for name, graph in _named(spec, expand(spec)).items()}
        if spec.task is not None:  # the networks against each other, as the task says
            from dlspec.tasks import get_task

            get_task(spec.task.type).check(spec, shaped)
        return shaped


def compile_spec(spec: Spec | str | Path, network: str | None = None) -> fx.GraphModule:
    """Compile a spec (or spec file) into a torch.fx.GraphModule; `network` chooses one
    network of a spec that has several.

    Example:
        >>> model = dlspec.compile_spec("specs/lenet5.yaml")
        >>> model(torch.randn(1, 1, 32, 32)).shape
        torch.Size([1, 10])
    """
    from dlspec.compile import compile_graph

    if not isinstance(spec, Spec):
        spec = load(spec)
    networks = graphs(spec)
    if network is None:
        if len(networks) > 1:
            raise SpecError(Problem((), f"spec {spec.name} has several networks "
                                    f"({', '.join(networks)}); say which one to build"))
        network = next(iter(networks))
    if network not in networks:
        raise SpecError(Problem((), f"spec {spec.name} has no network {network!r}; it has "
                                f"{', '.join(networks)}"))
    with located(spec.document):
        return compile_graph(infer_shapes(networks[network]))


def build(spec: Spec | str | Path, network: str | None = None) -> fx.GraphModule:
    """Deprecated: the old name of `compile_spec` (a build is now `dlspec.build_run`)."""
    warnings.warn("dlspec.build is deprecated and will be removed in the next release; use "
                  "dlspec.compile_spec to compile a spec (dlspec.build_run runs a whole build)",
                  DeprecationWarning, stacklevel=2)
    return compile_spec(spec, network)


def train_spec(spec: Spec | str | Path, out: str | Path | None = None, *,
               epochs: int | None = None, device: str | None = None, resume: bool = False,
               overwrite: bool = False, callbacks: Callbacks | None = None,
               command: Sequence[str] | None = None) -> TrainResult:
    """Train a spec's network on its data; write the run folder.

    The run folder is `out`; without it runs/<name>, or runs/<name>-2, -3, ... when that
    holds a run already (`result.fit.notes` says so). A folder that holds a run is refused
    (FileError, exit 2 in the CLI) unless `resume` (continue it) or `overwrite` (replace
    it). The folder records the spec with every default (spec.resolved.yaml) and the
    environment (environment.json, with `command`, the command line: default this
    process's).

    `callbacks` hears training as it goes: an object with `on_epoch_start(epoch, epochs,
    batches)`, `on_batch(batch, loss, samples)` and `on_epoch_end(record)` (the epoch's
    numbers as metrics.csv holds them: `epoch`, `train_loss`, `val_loss`, ..., `seconds`).

    A `task: gan` spec trains its generator against its discriminator (dlspec.train.gan).

    (Not `dlspec.train`: that name is the `dlspec.train` package.)

    Example:
        >>> result = dlspec.train_spec("specs/lenet5.yaml", epochs=5)
        >>> result.test["accuracy"]
        0.97...
    """
    from dlspec.train.runfolder import choose_run_folder, claimed

    if not isinstance(spec, Spec):
        spec = load(spec)
    run_dir, moved = choose_run_folder(out, spec.name, resume=resume, overwrite=overwrite)
    task, shaped = _trainer(spec)  # every spec check before the run folder is touched
    from dlspec.train.engine import train

    with claimed(run_dir, resume=resume, overwrite=overwrite) as note, \
            located(spec.document):
        result = train(task, spec, shaped, run_dir, epochs=epochs, device=device,
                       resume=resume, callbacks=callbacks, command=command)
    result.fit.notes[:0] = [n for n in (moved, note) if n is not None]
    return result


def _trainer(spec: Spec) -> tuple[Task, dict[str, ShapedGraph]]:
    """The spec's task and its shaped networks (the task's checks run)."""
    from dlspec.tasks import get_task

    if spec.task is None:
        with located(spec.document):
            raise SpecError(Problem((), "training needs a `task:` (e.g. task: classification)"))
    return get_task(spec.task.type), shapes(spec)


def export_spec(spec: Spec | str | Path, out: str | Path | None = None, *,
                checkpoint: str | Path | None = None, network: str | None = None,
                opset: int | None = None, dynamic: list[str] | None = None,
                atol: float | None = None, rtol: float | None = None,
                optimize: bool | None = None, verbose: bool = False,
                info: DeploymentInfo | None = None,
                module: torch.nn.Module | None = None) -> list[ExportResult]:
    """Export a spec's network(s) to verified ONNX files; one `ExportResult` per file.

    `checkpoint` is a model.safetensors or a run folder (its data.json adds labels and
    normalisation to the file's metadata); without it the weights are freshly initialised.
    Options left None come from the spec's `export.onnx` section. A GAN exports its
    generators unless `network` names another. `out` is the file (several networks: its
    stem gets each network's name); default `<spec name>.onnx`, or the run folder's
    model.onnx when exporting a run.

    Example:
        >>> [r.path.name for r in dlspec.export_spec("specs/lenet5.yaml", "lenet5.onnx")]
        ['lenet5.onnx']
    """
    from dlspec.compile import compile_graph
    from dlspec.export.exporter import ExportOptions, export_network, load_weights
    from dlspec.export.metadata import DeploymentInfo

    if not isinstance(spec, Spec):
        spec = load(spec)
    chosen = _networks_to_export(spec, network)
    if checkpoint is not None and len(chosen) > 1 and not all(
            (Path(checkpoint) / f"{name}.safetensors").is_file() for name in chosen):
        raise SpecError(Problem((), "a checkpoint holds one network's weights; this spec has "
                                f"{', '.join(chosen)}", "choose one with --network, or give "
                                "a run folder with each network's <network>.safetensors"))
    section = _onnx_section(spec)
    if opset is not None and not 14 <= opset <= 21:
        raise SpecError(Problem((), f"opset {opset} is not supported", "use 14 to 21"))
    options = ExportOptions(
        opset=opset or section.opset,
        dynamic=dynamic if dynamic is not None else section.dynamic_axes,
        atol=atol if atol is not None else section.atol,
        rtol=rtol if rtol is not None else section.rtol,
        optimize=optimize if optimize is not None else section.optimize, verbose=verbose)
    if info is None and checkpoint is not None:
        info = DeploymentInfo.beside(Path(checkpoint))
    target = _export_path(spec, out, checkpoint, section.file)
    results = []
    import torch

    with located(spec.document):
        for name, graph in chosen.items():
            shaped = infer_shapes(graph)
            model: torch.nn.Module
            if module is None:
                torch.manual_seed(spec.train.seed)  # the same untrained weights every time
                model = compile_graph(shaped)
                if checkpoint is not None:
                    load_weights(model, _weights_file(Path(checkpoint), name))
            else:  # a trained module, or trained modules by name (a CycleGAN's generators)
                model = module[name] if isinstance(module, torch.nn.ModuleDict) else module
            path = target if len(chosen) == 1 else target.with_name(
                f"{target.stem}.{name}{target.suffix}")
            results.append(export_network(model, shaped, spec, path, options, info))
    return results


def _networks_to_export(spec: Spec, network: str | None) -> dict[str, Graph]:
    networks = graphs(spec)
    if network is not None:
        if network not in networks:
            raise SpecError(Problem((), f"spec {spec.name} has no network {network!r}; it has "
                                    f"{', '.join(networks)}"))
        return {network: networks[network]}
    if spec.task is not None:
        from dlspec.tasks import get_task

        return get_task(spec.task.type).exported(networks)
    return networks


def _onnx_section(spec: Spec) -> OnnxExport:
    from dlspec.spec.sections import OnnxExport

    if spec.export is None or spec.export.onnx is None:
        return OnnxExport()
    return spec.export.onnx


def _weights_file(checkpoint: Path, network: str) -> Path:
    if checkpoint.is_dir():
        # a run of several networks keeps each in <network>.safetensors
        own = checkpoint / f"{network}.safetensors"
        return own if own.is_file() else checkpoint / WEIGHTS
    if not checkpoint.exists():
        raise FileError(Problem((), f"no checkpoint {checkpoint}",
                                "give a run folder or its model.safetensors"))
    return checkpoint


def _export_path(spec: Spec, out: str | Path | None, checkpoint: str | Path | None,
                 file: str | None) -> Path:
    if out is not None:
        return Path(out)
    if checkpoint is not None:
        folder = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
        return folder / (file or ONNX)
    return Path(file or f"{spec.name}.onnx")


@contextmanager
def located(document: Document | None) -> Iterator[None]:
    """Give every problem of the spec raised inside the block its file:line:column.

    A failed work (WorkError) or a wrong other file (FileError: a checkpoint, the run
    folder) is not about the spec: its problems stay without a spec location.
    """
    try:
        yield
    except DlspecError as exc:
        if document is not None and not isinstance(exc, WorkError | FileError):
            for problem in exc.problems:
                if problem.location is None:
                    problem.location = document.locate(problem.path, problem.on_key)
                    if problem.location.argument is None:  # at the file's line; say which
                        problem.set_by = document.set_within(problem.path)  # --set led there
                if problem.used_at is not None:
                    problem.used_at_location = document.locate(problem.used_at)
            exc.problems.sort(key=_position)
        raise


def _position(problem: Problem) -> tuple[int, int]:
    where = problem.location
    return (where.line, where.column) if where else (0, 0)


