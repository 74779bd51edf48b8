"""The real `dlspec` command in a subprocess: outputs, exit codes and light imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dlspec as dlspec_api
from conftest import ROOT, SPECS
from dlspec.errors import SpecError


def dlspec(*args: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    prefix = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "dlspec"]
    return subprocess.run([*prefix, *args], capture_output=True, text=True, cwd=ROOT)


def test_check_prints_shapes_and_parameters() -> None:
    result = dlspec("check", "specs/lenet5.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok specs/lenet5.yaml: lenet5: image 1×32×32 → ")
    assert "61,706 parameters" in result.stdout


def test_bad_spec_is_located_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("dlspec: 1\nname: bad\ninputs:\n  x: {shape: [1, 8, 8]}\nnetwork:\n"
                   "  - conv2d: {out_channels: 4, kernal_size: 3}\n  - lienar: 3\n")
    result = dlspec("check", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == (f"{bad}:6:31: network[0].conv2d.kernal_size: unknown key 'kernal_size'; "
                        "did you mean 'kernel_size'?")
    assert lines[1].startswith(f"{bad}:7:5: network[1].lienar: unknown layer kind 'lienar'; "
                               "did you mean 'linear'?")


def test_summary_lists_layers_and_totals() -> None:
    result = dlspec("summary", "specs/lenet5.yaml")
    assert result.returncode == 0, result.stderr
    for text in ("conv2d", "6×28×28", "total parameters 61,706", "MACs"):
        assert text in result.stdout


def test_schema_and_kinds_commands(tmp_path: Path) -> None:
    result = dlspec("schema", "-o", str(tmp_path / "s.json"))
    assert result.returncode == 0
    assert json.loads((tmp_path / "s.json").read_text())["$defs"]["Layer"]
    kinds = dlspec("kinds")
    assert kinds.returncode == 0 and "conv2d" in kinds.stdout and "lstm" in kinds.stdout
    one = dlspec("kinds", "linaer")
    assert one.returncode == 2 and "did you mean 'linear'" in one.stderr


def test_a_reader_that_stops_early_gets_no_error() -> None:
    # `dlspec kinds | head -0`: the reader is gone before the first line is written
    process = subprocess.Popen([sys.executable, "-m", "dlspec", "kinds"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    assert process.wait(timeout=60) == 141
    assert process.stderr.read() == ""


def test_usage_errors_exit_2() -> None:
    assert dlspec("check", "specs/does-not-exist.yaml").returncode == 2
    assert dlspec("frobnicate").returncode == 2
    assert dlspec("code", str(SPECS / "lenet5.yaml"), "--network", "nope").returncode == 2


def _imports_torch(result: subprocess.CompletedProcess[str]) -> bool:
    return any(line.split("|")[-1].strip() == "torch" for line in result.stderr.splitlines())


def test_light_paths_do_not_import_torch() -> None:
    for args in (("check", "--no-shapes", "specs/resnet50.yaml"), ("schema",)):
        result = dlspec(*args, importtime=True)
        assert result.returncode == 0, result.stderr[-2000:]
        assert not _imports_torch(result), f"dlspec {' '.join(args)} imported torch"
    heavy = dlspec("check", "specs/lenet5.yaml", importtime=True)
    assert _imports_torch(heavy)  # the probe itself works


def test_a_full_disk_on_stdout_is_a_clear_exit_1() -> None:
    for args in (["schema"], ["kinds"], ["code", "specs/mlp.yaml"]):
        with open("/dev/full", "w") as full:
            result = subprocess.run([sys.executable, "-m", "dlspec", *args], stdout=full,
                                    stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr == (f"dlspec {args[0]}: cannot write to standard output: "
                                 "No space left on device\n")
    closed = subprocess.run([sys.executable, "-m", "dlspec", "schema"], stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, timeout=120, preexec_fn=lambda: os.close(1))
    assert closed.returncode == 1, closed.stderr
    assert closed.stderr == "dlspec schema: cannot write to standard output: it is closed\n"


def test_output_to_a_folder_or_below_a_file_is_refused(tmp_path: Path) -> None:
    result = dlspec("code", "specs/mlp.yaml", "-o", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == f"cannot write {tmp_path}: it is a folder; give a file path inside it\n"
    file = tmp_path / "file.txt"
    file.write_text("keep me")
    result = dlspec("schema", "-o", str(file / "sub" / "schema.json"))
    assert result.returncode == 2
    assert result.stderr == (f"cannot write {file / 'sub' / 'schema.json'}: {file} is a file, "
                             "not a folder\n")
    assert file.read_text() == "keep me"


def test_a_folder_fifo_or_device_given_as_the_spec_is_named_for_what_it_is(tmp_path: Path
                                                                           ) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "net.yaml").write_text("dlspec: 1\n")
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    result = subprocess.run([sys.executable, "-m", "dlspec", "check", str(folder), str(fifo),
                             "/dev/zero"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{folder} is a folder, not a spec file; give one of its specs: net.yaml",
        f"{fifo} is not a regular file (a FIFO); give a .yaml spec file",
        "/dev/zero is not a regular file (a device); give a .yaml spec file"]


def test_thousands_of_problems_print_the_first_50(tmp_path: Path) -> None:
    spec = tmp_path / "many.yaml"
    keys = "".join(f"bogus_{i}: 1\n" for i in range(2000))
    spec.write_text("dlspec: 1\nname: many\ninputs:\n  x: {shape: [4]}\nnetwork: [relu]\n"
                    + keys)
    result = dlspec("check", str(spec))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 51 and lines[-1] == "… and 1,950 more problems"
    assert lines[0].startswith(f"{spec}:6:1: bogus_0: unknown key 'bogus_0'")
    with pytest.raises(SpecError) as caught:  # the library keeps every one
        dlspec_api.load(spec)
    assert len(caught.value.problems) == 2000


def _imported_modules(path: Path) -> set[str]:
    """The modules a file imports (`import a.b`, `from a.b import c`, `from a import b`)."""
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_of_the_package_imports_the_cli() -> None:
    # cli.py is the top: only the entry points (pyproject's console script, __main__) use it
    package = ROOT / "dlspec"
    entry_points = {package / "cli.py", package / "__main__.py"}
    importers = [str(path.relative_to(ROOT)) for path in sorted(package.rglob("*.py"))
                 if path not in entry_points and "dlspec.cli" in _imported_modules(path)]
    assert importers == []


def test_every_command_is_registered_one_way() -> None:
    import argparse
    import importlib

    from dlspec.commands import COMMANDS, build_parser

    (commands,) = [a for a in build_parser()._actions
                   if isinstance(a, argparse._SubParsersAction)]
    runs = {name: sub.get_default("run") for name, sub in commands.choices.items()}
    modules = [importlib.import_module(name) for name in COMMANDS]
    # one module a command: it registers the command (add_parser) and runs it (run)
    assert len(runs) == len(modules)
    assert {module.run for module in modules} == set(runs.values())


def test_predict_registers_and_helps_without_torch() -> None:
    result = dlspec("predict", "--help", importtime=True)
    assert result.returncode == 0 and "--sample" in result.stdout
    assert not _imports_torch(result)
