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
    class_name = type(dlspec.compile_spec(spec, network)).__name__
    return namespace[class_name]()  # type: ignore[operator]


@pytest.mark.parametrize("name", [n for n in SPEC_NAMES if n in
                                  ("lenet5", "mlp", "resnet18", "lstm", "bilstm",
                                   "transformer_encoder", "unet_small", "multi_input")])
def test_generated_code_matches_the_compiled_module(name: str) -> None:
    spec = dlspec.load(SPECS / f"{name}.yaml")
    network = next(iter(dlspec.graphs(spec)))
    compiled = dlspec.compile_spec(spec, network).eval()
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


# ------------------------------------------------------------------ hostile input

SENTINEL = "SENTINEL"
RUN = f'__import__("os").system("touch {SENTINEL}")'
HOSTILE_FILE_NAMES = [
    f'x""";{RUN};""".yaml',
    f"x''';{RUN};'''.yaml",
    f"nl\nimport os; {RUN}\n#.yaml",
    f'back\\""";{RUN};"""\\.yaml',
    f"cr\r{RUN}#.yaml",
    f"ls\u2028{RUN}#.yaml",
    f'bidi\u202e""";{RUN};#.yaml',
    f'#""" {RUN} #.yaml',
]
HOSTILE_SPEC = f"""\
dlspec: 1
name: hostile
description: '""\"; {RUN.replace("'", "''")} # \u2028 \\ \u202e'
inputs:
  x: {{shape: [4]}}
  y: {{shape: [4]}}
network:
  - {{name: a, linear: 6, from: x}}
  - {{name: b, linear: 6, from: y}}
  - {{concat: {{}}, from: [a, b]}}
  - {{reshape: [3, 4]}}
  - flatten
"""


def test_hostile_file_names_and_descriptions_never_run_as_code(tmp_path: Path) -> None:
    specs = []
    for i, name in enumerate(HOSTILE_FILE_NAMES):
        folder = tmp_path / f"s{i}"  # each in its own folder: names stay what they are
        folder.mkdir()
        specs.append(folder / name)
        specs[-1].write_text(HOSTILE_SPEC, encoding="utf-8")
    # the real command once; the library for the rest (the CLI passes the path the same way)
    outputs = [tmp_path / "out0.py"]
    result = subprocess.run([sys.executable, "-m", "dlspec", "code", str(specs[0]), "-o",
                             str(outputs[0])], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for i, spec in enumerate(specs[1:], start=1):
        source = generate_code(dlspec.shapes(dlspec.load(spec))["hostile"], str(spec))
        outputs.append(tmp_path / f"out{i}.py")
        outputs[-1].write_text(source, encoding="utf-8")
    probe = ("import importlib.util, sys, torch\n"
             "for path in sys.argv[1:]:\n"
             "    spec = importlib.util.spec_from_file_location('generated', path)\n"
             "    module = importlib.util.module_from_spec(spec)\n"
             "    spec.loader.exec_module(module)\n"
             "    out = module.Hostile()(torch.randn(2, 4), torch.randn(2, 4))\n"
             "    assert out.shape == (2, 12), out.shape\n"
             "    assert module.__doc__.startswith('hostile: generated by dlspec')\n")
    run = subprocess.run([sys.executable, "-c", probe, *map(str, outputs)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / SENTINEL).exists(), "generated code ran a command"


@pytest.mark.parametrize("name", ['a"b', "a'b", "a\\nb", "a#b", "a b", "a.b", "é", "a\u2028b",
                                  "a\u202eb", "__init__"])
def test_hostile_layer_names_are_refused(name: str) -> None:
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    text = ('dlspec: 1\nname: t\ninputs:\n  x: {shape: [4]}\nnetwork:\n'
            f'  - {{name: "{quoted}", linear: 2}}\n')
    with pytest.raises(dlspec.SpecError):
        dlspec.graphs(dlspec.loads(text))
