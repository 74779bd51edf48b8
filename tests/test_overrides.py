"""Steering experiments: `--set KEY=VALUE`, run folders that are never silently replaced, and
what a run folder records to be repeated (spec.resolved.yaml, environment.json)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from test_train import MOONS

import dlspec
from conftest import ROOT
from dlspec.errors import FileError, SpecError

TINY = MOONS.replace("num_samples: 300", "num_samples: 120").replace("epochs: 4", "epochs: 1")

PARAMS = """\
dlspec: 1
name: wide
params: {width: 8}
inputs:
  x: {shape: [4]}
network:
  - {name: hidden, linear: $width}
  - relu
  - {name: out, linear: 3}
"""


def _dlspec(*args: object, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlspec", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def _epochs(run: Path) -> list[int]:
    with open(run / "metrics.csv") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


# --- --set -------------------------------------------------------------------------------


def test_set_values_are_typed_reach_the_run_and_are_recorded(tmp_path: Path) -> None:
    spec = tmp_path / "moons.yaml"
    spec.write_text(TINY)
    run = tmp_path / "run"
    result = _dlspec("train", spec, "--out", run, "--set", "train.epochs=2",
                     "--set", "optimizer.lr=5e-1", "--set", "data.split={train: 0.8, val: 0.2}")
    assert result.returncode == 0, result.stderr
    assert _epochs(run) == [1, 2]  # an int, as if the file said it
    resolved = yaml.safe_load((run / "spec.resolved.yaml").read_text())
    assert resolved["optimizer"]["lr"] == 0.5 and resolved["train"]["epochs"] == 2
    assert resolved["data"]["split"] == {"train": 0.8, "val": 0.2, "test": 0.0}
    # every default written out, and the file is a spec that trains the same run
    assert resolved["train"]["checkpoint_every"] == 1 and resolved["train"]["device"] == "auto"
    assert resolved["optimizer"]["betas"] == [0.9, 0.999]
    again = dlspec.load(run / "spec.resolved.yaml")
    assert again.optimizer.lr == 0.5 and again.train.batch_size == 32
    environment = json.loads((run / "environment.json").read_text())
    assert environment["overrides"] == ["train.epochs=2", "optimizer.lr=5e-1",
                                        "data.split={train: 0.8, val: 0.2}"]
    assert environment["command"].startswith(f"dlspec train {spec} --out {run} --set ")
    assert environment["variant"] is None and environment["spec_file"] == str(spec)
    for key in ("dlspec", "python", "torch", "numpy", "platform"):
        assert isinstance(environment[key], str) and environment[key], key
    assert environment["device"] == "cpu" and environment["processes"] == 1
    assert environment["torch_threads"] >= 1
    assert datetime.fromisoformat(environment["date"]).utcoffset().total_seconds() == 0


@pytest.mark.parametrize(("setting", "expected"), [
    ("optimizer.lr=fast", "--set optimizer.lr: expected a number"),
    ("optimizer.lr=-1", "--set optimizer.lr: lr must be greater than 0"),
    ("optimizer.lrr=0.1", "--set optimizer.lrr: unknown key 'lrr'; did you mean 'lr'?"),
    ("trian.epochs=2", "--set trian.epochs: trian: unknown key 'trian'; did you mean 'train'?"),
    ("optimizer={type: adam, lr: 0}", "--set optimizer: optimizer.lr: lr must be greater"),
    ("network.7.linear=4", "--set network.7.linear: network has 3 entries, so there is no "
                           "entry 7"),
    ("network.1.linear=4", "--set network.1.linear: network.1 is 'relu', a string"),
    ("optimizer.lr.x=1", "--set optimizer.lr.x: optimizer.lr is 0.02, a number"),
    ("params.width=4", "--set params.width: the spec has no parameter 'width'"),
    ("variants.x=1", "--set variants.x: --set cannot change `variants`"),
    ("optimizer.lr", "--set optimizer.lr: 'optimizer.lr' is not KEY=VALUE"),
    ("=3", "--set =3: the key is empty"),
    ("train.epochs=", "--set train.epochs: no value after '='"),
    ("train.epochs=[1,", "--set train.epochs: '[1,' is not a YAML value"),
])
def test_a_wrong_set_is_exit_2_located_at_the_argument(tmp_path: Path, setting: str,
                                                       expected: str) -> None:
    spec = tmp_path / "moons.yaml"
    spec.write_text(TINY)
    result = _dlspec("check", "--no-shapes", spec, "--set", setting)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(expected), result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_set_params_changes_the_shapes_check_reports(tmp_path: Path) -> None:
    spec = tmp_path / "wide.yaml"
    spec.write_text(PARAMS)
    assert dlspec.shapes(dlspec.load(spec))["wide"].total_params == 67  # width 8
    wider = _dlspec("check", spec, "--set", "params.width=64", "--set", "network.2.linear=5")
    assert wider.returncode == 0, wider.stderr
    assert wider.stdout == f"ok {spec}: wide: x 4 → output 5; 645 parameters\n"


def test_the_library_takes_overrides_as_strings_or_a_mapping(tmp_path: Path) -> None:
    spec = tmp_path / "wide.yaml"
    spec.write_text(PARAMS + "variants:\n  narrow: {params: {width: 2}}\n")
    assert dlspec.load(spec).network[0]["linear"] == 8
    # after the variant, before the parameters: --set wins over the variant
    chosen = dlspec.load(spec, "narrow", ["params.width=16"])
    assert chosen.name == "wide_narrow" and chosen.network[0]["linear"] == 16
    given = dlspec.load(spec, overrides={"network[2].linear": 6, "description": "a: b"})
    assert given.network[2]["linear"] == 6 and given.description == "a: b"  # taken as given
    assert dlspec.loads(TINY, overrides=["schedule=null"]).schedule is None
    # a problem of a whole value in the file says which --set changed something in it
    with pytest.raises(SpecError) as error:
        dlspec.loads(TINY, "t.yaml", overrides=["data.split.val=0.5"])
    assert str(error.value).splitlines() == [
        "t.yaml:13:61: data.split: split fractions must sum to 1, got 1.3 (train 0.6 + val "
        "0.5 + test 0.2)", "    note: changed by --set data.split.val"]
    with pytest.raises(SpecError) as error:
        dlspec.load(spec, overrides={"params.width": {"a": 1}})
    assert str(error.value).startswith("--set params.width: expected an integer or ")


# --- run folders -------------------------------------------------------------------------


def test_a_run_folder_that_holds_a_run_is_never_silently_replaced(tmp_path: Path) -> None:
    spec = tmp_path / "moons.yaml"
    spec.write_text(TINY)
    run = tmp_path / "run"
    dlspec.train_spec(dlspec.load(spec), run)
    again = _dlspec("train", spec, "--out", run, "--set", "train.epochs=2")
    assert again.returncode == 2, again.stderr
    assert again.stderr == (f"{run}: the run folder holds a run already (its checkpoint is at "
                            "epoch 1); give --resume to continue it or --overwrite to replace "
                            "it (or --out another folder)\n")
    assert _epochs(run) == [1]  # untouched
    replaced = _dlspec("train", spec, "--out", run, "--set", "train.epochs=2", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stderr.startswith("epoch 1/2")  # started over: nothing resumed
    assert _epochs(run) == [1, 2]
    both = _dlspec("build", spec, "--out", run, "--resume", "--overwrite")
    assert both.returncode == 2 and "give one of them" in both.stderr


def test_without_out_a_new_run_gets_the_next_free_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "moons.yaml"
    spec.write_text(TINY)
    monkeypatch.chdir(tmp_path)
    assert dlspec.train_spec(dlspec.load(spec)).run_dir == Path("runs/moons")
    second = _dlspec("train", spec, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stderr.startswith("note: runs/moons holds a run already; this run goes to "
                                    "runs/moons-2 (--resume continues runs/moons, --overwrite "
                                    "replaces it)\n")
    assert second.stdout.startswith("trained runs/moons-2: ")
    third = dlspec.train_spec(dlspec.load(spec))
    assert third.run_dir == Path("runs/moons-3")
    assert third.fit.notes[0].startswith("runs/moons holds a run already; this run goes to "
                                         "runs/moons-3")
    resumed = dlspec.train_spec(dlspec.load(spec), epochs=2, resume=True)
    assert resumed.run_dir == Path("runs/moons")  # --resume: the spec's own folder
    assert _epochs(tmp_path / "runs" / "moons") == [1, 2]
    record = json.loads((tmp_path / "runs" / "moons-3" / "environment.json").read_text())
    assert record["overrides"] == [] and record["resumed"] is False
    assert json.loads((tmp_path / "runs" / "moons" / "environment.json").read_text())[
        "resumed"] is True


def test_the_library_refuses_and_replaces_as_the_cli_does(tmp_path: Path) -> None:
    spec = dlspec.loads(TINY)
    dlspec.train_spec(spec, tmp_path / "run")
    with pytest.raises(FileError, match="give --resume to continue it or --overwrite") as error:
        dlspec.train_spec(spec, tmp_path / "run")
    assert error.value.exit_code == 2 and str(error.value).startswith(str(tmp_path / "run"))
    with pytest.raises(FileError, match="holds a run already"):
        dlspec.build_run(spec, tmp_path / "run")  # before anything is trained or exported
    replaced = dlspec.train_spec(spec, tmp_path / "run", epochs=2, overwrite=True)
    assert [int(r["epoch"]) for r in replaced.fit.history] == [1, 2]
    record = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert record["spec_file"] == "<string>" and record["command"]


def test_data_parallel_workers_train_into_the_folder_their_launcher_chose(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "moons.yaml"
    spec.write_text(TINY)
    monkeypatch.chdir(tmp_path)
    dlspec.train_spec(dlspec.load(spec))  # runs/moons holds a run
    result = _dlspec("train", spec, "--nproc", "2", "--set", "train.epochs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("note: runs/moons holds a run already; this run goes to "
                                    "runs/moons-2")
    assert result.stdout.startswith("trained runs/moons-2: ")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["moons", "moons-2"]
    assert _epochs(tmp_path / "runs" / "moons-2") == [1, 2]
    record = json.loads((tmp_path / "runs" / "moons-2" / "environment.json").read_text())
    assert record["processes"] == 2 and record["overrides"] == ["train.epochs=2"]
    assert "--out runs/moons-2" in record["command"]  # what each worker was told
