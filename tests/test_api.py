"""The public Python API: names, types and the library build pipeline."""

from __future__ import annotations

import inspect
import typing
import warnings
from pathlib import Path

import pytest

import dlspec
from conftest import SPECS

TINY = """\
dlspec: 1
name: tiny_moons
inputs:
  x: {shape: [2]}
network:
  - {name: hidden, linear: 8}
  - relu
  - {name: out, linear: 2}
task: classification
loss: cross_entropy
optimizer: {type: adam, lr: 0.02}
data: {dataset: moons, num_samples: 120, noise: 0.1, split: {train: 0.6, val: 0.2, test: 0.2}}
train: {epochs: 1, batch_size: 32, seed: 0}
"""


def test_compile_spec_compiles_and_build_is_a_deprecated_alias() -> None:
    import torch

    model = dlspec.compile_spec(SPECS / "lenet5.yaml")
    assert isinstance(model, torch.fx.GraphModule)
    with pytest.warns(DeprecationWarning, match="use dlspec.compile_spec") as caught:
        old = dlspec.build(SPECS / "lenet5.yaml")
    assert caught[0].filename == __file__  # the warning points at the caller
    assert type(old).__name__ == type(model).__name__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dlspec.compile_spec(SPECS / "mlp.yaml")  # the new name warns of nothing


@pytest.mark.parametrize("name", [n for n in dlspec.__all__
                                  if callable(getattr(dlspec, n)) and n[0].islower()])
def test_public_functions_have_no_any_in_their_signatures(name: str) -> None:
    function = getattr(dlspec, name)
    hints = typing.get_type_hints(function, vars(inspect.getmodule(function)) | _checking())
    assert hints.get("return") is not None, f"{name} says nothing of what it returns"
    assert all(hint is not typing.Any for hint in hints.values()), (name, hints)
    assert "Any" not in str(inspect.signature(function)), inspect.signature(function)


def _checking() -> dict[str, object]:
    """The names the API modules import only for type checking."""
    import torch
    from torch import fx

    from dlspec.export.exporter import ExportResult
    from dlspec.export.metadata import DeploymentInfo
    from dlspec.spec.sections import OnnxExport
    from dlspec.train.engine import Callbacks, TrainResult

    return {"torch": torch, "fx": fx, "ExportResult": ExportResult,
            "DeploymentInfo": DeploymentInfo, "OnnxExport": OnnxExport, "Callbacks": Callbacks,
            "TrainResult": TrainResult}


class Heard:
    """Callbacks that keep what training told them."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self.batches = 0

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        assert 1 <= epoch <= epochs and batches > 0

    def on_batch(self, batch: int, loss: float, samples: int) -> None:
        self.batches += 1

    def on_epoch_end(self, record: dict[str, float]) -> None:
        self.epochs.append(record)


def test_build_run_checks_trains_exports_draws_and_reports(tmp_path: Path) -> None:
    spec = dlspec.loads(TINY, "tiny.yaml")
    heard, said = Heard(), []
    result = dlspec.build_run(spec, tmp_path / "run", callbacks=heard, on_note=said.append)
    assert isinstance(result, dlspec.BuildResult)
    assert result.run_dir == tmp_path / "run"
    assert result.train is not None and result.train.test is not None
    assert "accuracy" in result.train.test
    assert [r.path for r in result.exports] == [tmp_path / "run" / "model.onnx"]
    assert all(c.passed for r in result.exports for c in r.comparisons)
    assert tmp_path / "run" / "architecture.dot" in result.diagram
    assert result.report == tmp_path / "run" / "report.md"
    report = result.report.read_text()
    assert "Export: [model.onnx](model.onnx), verified in ONNX Runtime" in report
    assert "Diagram: [architecture" in report
    # the notes, in step order, as on_note heard them
    assert said == result.notes
    assert said[0] == "check: ok tiny_moons: 42 parameters"
    assert said[-2].startswith(f"export: {tmp_path / 'run' / 'model.onnx'} (")
    assert said[-1].startswith("diagram: ")
    assert len(heard.epochs) == 1 and heard.batches > 0
