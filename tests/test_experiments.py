"""`dlspec runs` and `dlspec compare`: run folders listed and set side by side, through the
real CLI, and run folders that are not what dlspec writes refused cleanly (exit 2)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from test_runtime import run_python, torch_modules
from test_train import MOONS

import dlspec
from conftest import ROOT
from dlspec.errors import FileError
from dlspec.experiments.compare import compare_runs
from dlspec.experiments.records import read_run
from dlspec.experiments.runs import list_runs

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/ with two trained runs differing in optimizer.lr."""
    folder = tmp_path_factory.mktemp("experiments") / "runs"
    dlspec.train_spec(dlspec.loads(MOONS), folder / "moons-a", epochs=2)
    faster = MOONS.replace("lr: 0.02", "lr: 0.05")
    dlspec.train_spec(dlspec.loads(faster), folder / "moons-b", epochs=2)
    os.utime(folder / "moons-a" / "metrics.json", (1_700_000_000, 1_700_000_000))
    return folder


def cli(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess."""
    return subprocess.run([sys.executable, "-m", "dlspec", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def copy_run(runs: Path, name: str, tmp_path: Path) -> Path:
    """A copy of run moons-a, alone in a folder of runs, to spoil."""
    target = tmp_path / "runs" / name
    shutil.copytree(runs / "moons-a", target)
    return target


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


# --------------------------------------------------------------------------- runs


def test_runs_lists_each_run_with_its_numbers_oldest_first(runs: Path) -> None:
    result = cli("runs", runs)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["run", "spec", "status", "epochs", "best", "monitored", "test",
                              "date"]
    assert [row.split()[0] for row in rows] == ["moons-a", "moons-b"]  # a is older
    for row in rows:
        name, spec, status, epochs, best, monitor, value, metric, test = row.split()[:9]
        history = metrics_of(runs / name)
        losses = [r["val_loss"] for r in history["epochs"]]
        assert (spec, status, epochs) == ("moons", "completed", "2")
        assert int(best) == losses.index(min(losses)) + 1
        assert (monitor, value) == ("val_loss", f"{min(losses):.4f}")
        assert (metric, test) == ("accuracy", f"{history['test']['accuracy']:.4f}")


def test_runs_json_holds_the_numbers_of_metrics_json(runs: Path) -> None:
    result = run_python("-X", "importtime", "-m", "dlspec", "runs", str(runs), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert torch_modules(result.stderr) == []  # listing runs needs no torch
    listed = {run["name"]: run for run in json.loads(result.stdout)}
    assert set(listed) == {"moons-a", "moons-b"}
    for name, run in listed.items():
        metrics = metrics_of(runs / name)
        assert run["test"] == metrics["test"]
        assert run["epochs"] == run["planned_epochs"] == 2
        assert run["best_value"] == min(r["val_loss"] for r in metrics["epochs"])
        assert run["seconds"] == pytest.approx(sum(r["seconds"] for r in metrics["epochs"]))


def test_runs_tells_interrupted_failed_and_running_runs(runs: Path, tmp_path: Path) -> None:
    # what a kill (or Ctrl-C) mid-run leaves: a checkpoint whose outputs are not written
    interrupted = tmp_path / "runs" / "killed"
    interrupted.mkdir(parents=True)
    (interrupted / "checkpoint.complete").write_text('{"epoch": 1, "best_epoch": 1}')
    # what a NaN loss at epoch 2 leaves: the outputs, a report saying so, no outputs mark
    failed = copy_run(runs, "diverged", tmp_path)
    (failed / "checkpoint.complete").write_text('{"epoch": 1, "best_epoch": 1}')
    with open(failed / "report.md", "a") as report:
        report.write("\nThe run failed: the loss became nan at epoch 2, batch 3.\n")
    # a run being written: its lock names a live process of this host (this one)
    running = copy_run(runs, "training", tmp_path)
    (running / ".dlspec.lock").write_text(json.dumps(
        {"pid": os.getpid(), "host": socket.gethostname(), "command": "dlspec train"}))
    # ... and one killed while it held the lock: the note is left, its process is gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = copy_run(runs, "stale", tmp_path)
    (stale / "checkpoint.complete").write_text('{"epoch": 2, "best_epoch": 2}')
    (stale / ".dlspec.lock").write_text(json.dumps(
        {"pid": int(dead.stdout), "host": socket.gethostname()}))
    statuses = {run.path.name: run.status for run in list_runs(tmp_path / "runs").runs}
    assert statuses == {"killed": "interrupted", "diverged": "failed", "training": "running",
                        "stale": "interrupted"}


def test_an_early_stopped_run(tmp_path: Path) -> None:
    spec = MOONS.replace("metrics: [accuracy, f1]}", "metrics: [accuracy, f1], "
                         "early_stopping: {metric: val_accuracy, mode: max, patience: 1, "
                         "min_delta: 0.5}}")
    dlspec.train_spec(dlspec.loads(spec), tmp_path / "stopped", epochs=5)
    run = read_run(tmp_path / "stopped")
    assert (run.status, run.epochs, run.planned) == ("early-stopped", 2, 5)
    assert (run.monitor, run.best_epoch) == ("val_accuracy", 1)  # min_delta: 1 never beaten


def test_runs_of_an_empty_or_missing_folder(tmp_path: Path) -> None:
    empty = cli("runs", tmp_path)
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr.startswith("no runs under ")
    missing = cli("runs", tmp_path / "nowhere")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@pytest.mark.parametrize(("content", "said"), [
    (b"{not json", "it is not JSON"),
    (b"[1, 2, 3]", "it holds a JSON a list, not an object"),
    (b'{"epochs": {"epoch": 1}}', '"epochs" is an object, not a list'),
    (b'{"epochs": [{"epoch": 1, "val_loss": 1e999}]}', "not a finite number"),
    (b'{"epochs": [{"epoch": 1, "val_loss": NaN}]}', "not a finite number"),
    (b'{"epochs": [{"epoch": 1, "val_loss": ' + b"9" * 400 + b"}]}", "not a finite number"),
    (b'{"epochs": [{"epoch": 1, "val_loss": ' + b"9" * 5000 + b"}]}", "it is not JSON"),
    (b'{"epochs": [{"epoch": true}]}', "not a finite number"),
    (b'{"epochs": [{"epoch": 2}, {"epoch": 1}]}', "not a whole number after the last"),
    (b'{"epochs": [], "test": "0.9"}', '"test" is a string'),
    (b"[" * 100_000 + b"]" * 100_000, "it is not JSON"),
    (b"\xff\xfe", "it is not JSON"),
], ids=["broken", "list", "epochs-object", "overflow", "nan", "huge-int", "too-many-digits",
        "bool", "epochs-backwards", "test-string", "deep", "binary"])
def test_a_malformed_metrics_json_is_refused_naming_it(runs: Path, tmp_path: Path,
                                                       content: bytes, said: str) -> None:
    spoiled = copy_run(runs, "spoiled", tmp_path)
    shutil.copytree(runs / "moons-b", tmp_path / "runs" / "good")
    (spoiled / "metrics.json").write_bytes(content)
    listed = cli("runs", tmp_path / "runs")
    assert listed.returncode == 2, listed.stderr
    assert listed.stderr.startswith(f"{spoiled / 'metrics.json'}: ")
    assert said in listed.stderr and "Traceback" not in listed.stderr
    assert listed.stdout.splitlines()[1].startswith("good ")  # the others are still listed
    compared = cli("compare", spoiled, runs / "moons-b", "-o", tmp_path / "c.png")
    assert compared.returncode == 2 and said in compared.stderr
    assert not (tmp_path / "c.png").exists()


def test_a_huge_metrics_json_is_refused_unread(runs: Path, tmp_path: Path) -> None:
    spoiled = copy_run(runs, "huge", tmp_path)
    with open(spoiled / "metrics.json", "wb") as handle:
        handle.truncate(2**40)  # a terabyte, sparse: reading it would never end
    with pytest.raises(FileError, match="larger than the 67,108,864 bytes"):
        read_run(spoiled)
    (spoiled / "metrics.json").unlink()
    (spoiled / "metrics.json").symlink_to("/dev/zero")
    with pytest.raises(FileError, match="not a regular file"):
        read_run(spoiled)


@pytest.mark.parametrize("content", [b"- a list\n", b"key: [unclosed\n",
                                     b"!!python/object/apply:os.system ['true']\n",
                                     b"a: &a [*a, *a]\n"])
def test_a_malformed_resolved_spec(runs: Path, tmp_path: Path, content: bytes) -> None:
    spoiled = copy_run(runs, "spoiled", tmp_path)
    (spoiled / "spec.resolved.yaml").write_bytes(content)
    result = cli("compare", spoiled, runs / "moons-b", "-o", tmp_path / "c.png")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{spoiled / 'spec.resolved.yaml'}: ")


# --------------------------------------------------------------------------- compare


def test_compare_prints_the_numbers_and_the_spec_fields_that_differ(runs: Path,
                                                                    tmp_path: Path) -> None:
    picture = tmp_path / "out" / "compare.png"
    result = cli("compare", runs / "moons-a", runs / "moons-b", "-o", picture)
    assert result.returncode == 0, result.stderr
    rows = {line.split("  ")[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert result.stdout.splitlines()[0].split() == ["moons-a", "moons-b"]
    assert rows["spec optimizer.lr"][-2:] == ["0.02", "0.05"]
    assert not [row for row in rows if row.startswith("spec ") and row != "spec optimizer.lr"]
    for i, name in enumerate(["moons-a", "moons-b"]):
        metrics = metrics_of(runs / name)
        assert rows["test accuracy"][2 + i] == f"{metrics['test']['accuracy']:.4f}"
        assert rows["final val_loss"][2 + i] == f"{metrics['epochs'][-1]['val_loss']:.4f}"
    assert rows["status"][1:] == ["completed", "completed"]
    data = picture.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000
    with Image.open(picture) as image:
        assert image.width > 1000 and image.height > 300  # loss, accuracy and f1 panels
    assert result.stderr == f"wrote {picture}\n"


def test_compare_json_holds_the_table_for_scripts(runs: Path, tmp_path: Path) -> None:
    result = cli("compare", runs / "moons-a", runs / "moons-b", "--json", "-o",
                 tmp_path / "c.png")
    assert result.returncode == 0, result.stderr
    compared = json.loads(result.stdout)
    assert [run["label"] for run in compared["runs"]] == ["moons-a", "moons-b"]
    assert compared["differences"] == {"optimizer.lr": ["0.02", "0.05"]}
    for run, name in zip(compared["runs"], ["moons-a", "moons-b"], strict=True):
        metrics = metrics_of(runs / name)
        assert run["test"] == metrics["test"]
        assert run["final"]["val_loss"] == metrics["epochs"][-1]["val_loss"]
    assert (tmp_path / "c.png").is_file()


def test_compare_refuses_what_it_cannot_compare(runs: Path, tmp_path: Path) -> None:
    one = cli("compare", runs / "moons-a", "-o", tmp_path / "c.png")
    assert one.returncode == 2 and "two runs or more" in one.stderr
    other = cli("compare", runs / "moons-a", tmp_path, "-o", tmp_path / "c.png")
    assert other.returncode == 2 and "is not a run folder" in other.stderr
    wrong = cli("compare", runs / "moons-a", runs / "moons-b", "-o", tmp_path / "c.svg")
    assert wrong.returncode == 2 and "PNG" in wrong.stderr
    (tmp_path / "x.png").mkdir()
    folder = cli("compare", runs / "moons-a", runs / "moons-b", "-o", tmp_path / "x.png")
    assert folder.returncode == 2 and "it is a folder" in folder.stderr


def test_compare_names_runs_apart_and_shows_unset_fields(runs: Path, tmp_path: Path) -> None:
    twin = tmp_path / "elsewhere" / "moons-a"
    shutil.copytree(runs / "moons-a", twin)
    text = (twin / "spec.resolved.yaml").read_text().replace("  seed: 3\n", "")
    (twin / "spec.resolved.yaml").write_text(text)
    comparison = compare_runs([runs / "moons-a", twin])
    assert comparison.names == ["runs/moons-a", "elsewhere/moons-a"]
    assert comparison.differences == {"train.seed": ["3", "-"]}
