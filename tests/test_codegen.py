"""`dlspec code`: standalone source that builds the same module and computes the same thing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dlspec
from conftest import SPECS
from dlspec.codegen import generate_code

SPEC_NAMES = sorted(p.stem for p in SPECS.glob("*.yaml"))


def _generated_module(spec: dlspec.spec.model.Spec, network: str) -> torch.nn.Module:
    source = generate_code(dlspec.shapes(spec)[network])
    namespace: dict[str, object] = {"__name__": "generated"}
    exec(compile(source, "generated.py", "exec"), namespace)  # tests may exec; dlspec never does
    class_name = type(dlspec.build(spec, network)).__name__
    return namespace[class_name]()  # type: ignore[operator]


@pytest.mark.parametrize("name", [n for n in SPEC_NAMES if n in
                                  ("lenet5", "mlp", "resnet18", "lstm", "bilstm",
                                   "transformer_encoder", "unet_small", "multi_input")])
def test_generated_code_matches_the_compiled_module(name: str) -> None:
    spec = dlspec.load(SPECS / f"{name}.yaml")
    network = next(iter(dlspec.graphs(spec)))
    compiled = dlspec.build(spec, network).eval()
    generated = _generated_module(spec, network).eval()
    reference = compiled.state_dict()
    assert list(generated.state_dict()) == list(reference)
    generated.load_state_dict(reference)
    torch.manual_seed(0)
    inputs = []
    for decl in dlspec.graphs(spec)[network].inputs.values():
        if decl.dtype.startswith("int"):
            inputs.append(torch.randint(0, 2, (2, *decl.shape)))
        else:
            inputs.append(torch.randn(2, *decl.shape))
    with torch.no_grad():
        expected, actual = compiled(*inputs), generated(*inputs)
    for e, a in zip(expected if isinstance(expected, tuple) else [expected],
                    actual if isinstance(actual, tuple) else [actual], strict=True):
        torch.testing.assert_close(a, e)


def test_generated_file_runs_with_torch_alone(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "dlspec", "code", str(SPECS / "lenet5.yaml"),
                             "-o", str(tmp_path / "lenet5.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    probe = ("import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__'); "
             "assert not any(m.startswith('dlspec') for m in sys.modules), 'imported dlspec'")
    run = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "lenet5.py")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "tensor" in run.stdout  # the __main__ block printed the output of a forward pass
