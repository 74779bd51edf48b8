"""The whole build as one library function: check → train → evaluate → export → diagram → report.

`dlspec build` only parses its arguments, calls `build_run` and prints what it returns; a
script or a notebook gets the same run folder, and the same typed result, from one call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dlspec.runfiles import ONNX, WEIGHTS
from dlspec.spec.model import Spec

if TYPE_CHECKING:
    import torch

    from dlspec.export.exporter import ExportResult
    from dlspec.export.metadata import DeploymentInfo
    from dlspec.train.engine import Callbacks, TrainResult

REPORT = "report.md"  # in the run folder; training writes it, the later steps add to it


@dataclass
class BuildResult:
    """A finished build: the run folder and what each step made in it."""

    run_dir: Path
    # the training run; None when it trained elsewhere (`train_with`: data-parallel workers)
    train: TrainResult | None
    exports: list[ExportResult]  # the verified ONNX file(s); none with `export.onnx: false`
    diagram: list[Path]  # architecture.svg and .dot (only the .dot without Graphviz's `dot`)
    report: Path  # report.md, with the export and the diagram added
    # what the steps said, in order: checks passed, notes of training, files written
    notes: list[str] = field(default_factory=list)


def build_run(spec: Spec | str | Path, out: str | Path | None = None, *,
              epochs: int | None = None, device: str | None = None, resume: bool = False,
              overwrite: bool = False, callbacks: Callbacks | None = None,
              on_note: Callable[[str], None] | None = None,
              train_with: Callable[[Spec, Path], None] | None = None,
              command: Sequence[str] | None = None) -> BuildResult:
    """Check, train, evaluate, export and draw a spec into one run folder; what
    `dlspec build` does.

    The run folder is `out`, else runs/<name> (or runs/<name>-2, ... as `dlspec.train_spec`
    chooses it); one that holds a run is refused unless `resume` or `overwrite`, and it is
    held for the whole build (see `dlspec.train.runfolder`). `command` is the command line
    environment.json records (default: this process's). `callbacks`
    hears training's progress (see `dlspec.train_spec`); `on_note` gets each line of
    `BuildResult.notes` as its step finishes. `train_with(spec, run_dir)` trains in some other
    way instead (the CLI's `--nproc`: data-parallel worker processes), leaving the trained
    checkpoint in the run folder for the export. Raises the DlspecError of the first step that
    fails.

    Example:
        >>> result = dlspec.build_run("specs/lenet5.yaml", epochs=5)
        >>> result.train.test["accuracy"] > 0.9, [r.path.name for r in result.exports]
        (True, ['model.onnx'])
    """
    from dlspec import api
    from dlspec.train.runfolder import choose_run_folder, claimed

    if not isinstance(spec, Spec):
        spec = api.load(spec)
    run_dir, moved = choose_run_folder(out, spec.name, resume=resume, overwrite=overwrite)
    notes = _Notes(on_note)
    for name, shaped in api.shapes(spec).items():
        notes.add(f"check: ok {name}: {shaped.total_params:,} parameters")
    if moved is not None:
        notes.add(f"note: {moved}")
    # training, export and diagram
    with claimed(run_dir, resume=resume, overwrite=overwrite) as taken_over:
        if taken_over is not None:
            notes.add(f"note: {taken_over}")
        trained, module, info = None, None, None
        if train_with is not None:
            train_with(spec, run_dir)  # the export reads the checkpoint it leaves
        else:
            trained = api.train_spec(spec, run_dir, epochs=epochs, device=device,
                                     resume=resume, overwrite=overwrite, callbacks=callbacks,
                                     command=command)
            module, info = trained.model, _deployment_info(trained)
            if trained.transfer is not None:
                notes.add(trained.transfer.lines()[0])
            for note in trained.fit.notes:  # what a resume found or changed
                notes.add(f"note: {note}")
        exports, exported = _export(spec, run_dir, module, info, notes)
        diagram, drawn = _diagram(spec, run_dir, notes)
        report = run_dir / REPORT
        with open(report, "a") as file:
            file.writelines(f"\n{entry}\n" for entry in (exported, drawn))
        if spec.train.log is not None:  # the files written after training, to MLflow too
            from dlspec.train.loggers import log_run_files

            log_run_files(spec, run_dir)
    return BuildResult(run_dir, trained, exports, diagram, report, notes.lines)


class _Notes:
    """The notes of a build, each handed on as it is made."""

    def __init__(self, listener: Callable[[str], None] | None):
        self.lines: list[str] = []
        self.listener = listener

    def add(self, line: str) -> None:
        self.lines.append(line)
        if self.listener is not None:
            self.listener(line)


def _deployment_info(trained: TrainResult) -> DeploymentInfo:
    """What the export writes into the file for inference: the task's, else the data's."""
    if trained.info is not None:
        return trained.info
    from dlspec.train.supervised import deployment_info

    return deployment_info(trained.data)


def _export(spec: Spec, run_dir: Path, module: torch.nn.Module | None,
            info: DeploymentInfo | None, notes: _Notes) -> tuple[list[ExportResult], str]:
    """The trained network(s) as verified ONNX files in the run folder; the report's entry."""
    from dlspec import api

    if spec.export is not None and spec.export.onnx is None:
        notes.add("export: off (export.onnx: false)")
        return [], "Export: off in the spec (`export.onnx: false`)."
    section = spec.export.onnx if spec.export is not None else None
    path = run_dir / (section.file if section is not None and section.file else ONNX)
    checkpoint = run_dir / WEIGHTS if module is None else None
    results = api.export_spec(spec, path, checkpoint=checkpoint, module=module, info=info)
    for result in results:
        notes.add("export: " + "\n".join(result.lines()))
    return results, "Export: " + "; ".join(
        f"[{r.path.name}]({r.path.name}), verified in ONNX Runtime against PyTorch "
        f"(max abs difference {max(c.outputs[o][0] for c in r.comparisons for o in c.outputs):.2g})"
        for r in results) + "."


def _diagram(spec: Spec, run_dir: Path, notes: _Notes) -> tuple[list[Path], str]:
    """architecture.svg and architecture.dot in the run folder; the report's entry."""
    from dlspec.diagram import draw

    result = draw(spec, run_dir / "architecture.svg")  # every network (a GAN: both)
    missing = result.note()  # None unless Graphviz's `dot` is missing
    if missing is not None:
        notes.add(f"diagram: {missing}")
        return result.paths, ("Diagram: [architecture.dot](architecture.dot) (not rendered: "
                              "Graphviz's `dot` is not installed).")
    notes.add("diagram: wrote " + ", ".join(str(p) for p in result.paths))
    return result.paths, ("Diagram: [architecture.svg](architecture.svg) "
                          "([DOT source](architecture.dot)).")
