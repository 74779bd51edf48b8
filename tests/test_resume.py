"""Resume that ends as if never stopped; what a resume may change; NaN stops; the run folder's
lock and checks; hostile checkpoint files."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import dlspec
from conftest import ROOT
from dlspec.cli import main
from dlspec.errors import FileError, WorkError

# the learning rate is so high that validation loss wanders: its best epoch (4) is neither
# the first nor the last, so kills before, at and after it differ
WANDERING = """\
dlspec: 1
name: wandering
inputs:
  x: {shape: [2]}
network:
  - {name: hidden, linear: 16}
  - relu
  - {name: out, linear: 2}
task: classification
loss: cross_entropy
optimizer: {type: adam, lr: 1.0}
data: {dataset: moons, num_samples: 2000, noise: 0.1, split: {train: 0.6, val: 0.2, test: 0.2}}
train: {epochs: 6, batch_size: 16, seed: 3, metrics: [accuracy, f1]}
"""

SMALL = """\
dlspec: 1
name: small
inputs:
  x: {shape: [2]}
network:
  - {name: hidden, linear: 8}
  - relu
  - {name: out, linear: 2}
task: classification
loss: cross_entropy
optimizer: {type: adam, lr: 0.02}
schedule: {type: step, step_size: 2, gamma: 0.5}
data: {dataset: moons, num_samples: 200, noise: 0.1, split: {train: 0.6, val: 0.2, test: 0.2}}
train: {epochs: 4, batch_size: 32, seed: 3}
"""


def _dlspec(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlspec", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def _start(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dlspec", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)


def _marker_epoch(run: Path) -> int | None:
    try:
        return int(json.loads((run / "checkpoint.complete").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return None


def _kill_at(process: subprocess.Popen[str], run: Path, epoch: int) -> None:
    """SIGKILL the run as soon as its checkpoint marker names `epoch`."""
    while _marker_epoch(run) != epoch:
        assert process.poll() is None, f"the run ended before epoch {epoch}"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # epochs take tenths of a second: the kill lands before the next checkpoint
    assert _marker_epoch(run) == epoch


def _numbers(run: Path) -> tuple[list[dict[str, float]], dict[str, float]]:
    metrics = json.loads((run / "metrics.json").read_text())
    epochs = [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_second")}
              for r in metrics["epochs"]]
    return epochs, metrics["test"]


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wandering spec trained without a stop, through the real CLI."""
    folder = tmp_path_factory.mktemp("whole")
    (folder / "spec.yaml").write_text(WANDERING)
    result = _dlspec("train", folder / "spec.yaml", "--out", folder / "run")
    assert result.returncode == 0, result.stderr
    return folder


def test_kills_before_at_and_after_the_best_epoch_resume_to_the_same_run(
        whole: Path, tmp_path: Path) -> None:
    history, test = _numbers(whole / "run")
    best = min(history, key=lambda r: r["val_loss"])["epoch"]
    assert best == 4 and len(history) == 6  # the best epoch is in the middle
    spec, run = whole / "spec.yaml", tmp_path / "run"
    process = _start("train", spec, "--out", run)
    for epoch, resume in ((2, False), (4, True), (5, True)):  # before, at, after the best
        if resume:
            process = _start("train", spec, "--out", run, "--resume")
        _kill_at(process, run, epoch)
        assert not (run / "model.safetensors").exists()
    resumed = _dlspec("train", spec, "--out", run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.startswith("epoch 6/6")  # it continued after the last kill
    assert (run / "model.safetensors").read_bytes() == \
        (whole / "run" / "model.safetensors").read_bytes()
    assert _numbers(run) == (history, test)


def test_resuming_a_finished_run_changes_nothing(whole: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(whole / "run", run)
    def files() -> dict[str, tuple[bytes, int]]:  # the lock file is the only one touched
        return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir()
                if p.name != ".dlspec.lock"}

    before = files()
    result = _dlspec("train", whole / "spec.yaml", "--out", run, "--resume")
    assert result.returncode == 0, result.stderr
    assert f"note: run {run} already finished at epoch 6 (completed); nothing to resume" \
        in result.stderr
    assert result.stdout.startswith(f"already trained {run}: test: ")
    assert files() == before


def test_a_run_killed_after_its_last_checkpoint_writes_its_outputs_on_resume(
        tmp_path: Path) -> None:
    spec = dlspec.loads(SMALL)
    whole = dlspec.train_spec(spec, tmp_path / "whole")
    run = tmp_path / "run"
    shutil.copytree(tmp_path / "whole", run)
    # as if killed after the final checkpoint, before the outputs
    (run / "checkpoint.complete").write_text(json.dumps({"epoch": 4, "best_epoch": 4}))
    for name in ("model.safetensors", "metrics.json"):
        (run / name).unlink()
    resumed = dlspec.train_spec(spec, run, resume=True)
    assert "before its outputs were written: writing them now" in resumed.fit.notes[0]
    assert (run / "model.safetensors").read_bytes() == \
        (tmp_path / "whole" / "model.safetensors").read_bytes()
    assert resumed.test == whole.test and _numbers(run) == _numbers(tmp_path / "whole")


def test_an_early_stopped_run_is_finished(tmp_path: Path) -> None:
    text = SMALL.replace("train: {epochs: 4,", "train: {epochs: 40, early_stopping: "
                         "{metric: val_loss, patience: 1, min_delta: 0.5},")
    first = dlspec.train_spec(dlspec.loads(text), tmp_path / "run")
    assert first.fit.stop_reason.startswith("early stopping")
    again = dlspec.train_spec(dlspec.loads(text), tmp_path / "run", resume=True)
    assert again.fit.already_done and "nothing to resume" in again.fit.notes[0]
    assert again.test == first.test


def test_raising_epochs_continues_a_finished_run(tmp_path: Path) -> None:
    spec = dlspec.loads(SMALL)
    longer = dlspec.train_spec(spec, tmp_path / "longer", epochs=6)
    dlspec.train_spec(spec, tmp_path / "run")
    extended = dlspec.train_spec(spec, tmp_path / "run", epochs=6, resume=True)
    assert extended.fit.notes == ["resumed with train.epochs 4 → 6"]
    assert _numbers(tmp_path / "run") == _numbers(tmp_path / "longer")
    assert extended.test == longer.test
    with pytest.raises(FileError, match="the checkpoint is at epoch 6, past the 5 epochs"):
        dlspec.train_spec(spec, tmp_path / "run", epochs=5, resume=True)


@pytest.mark.parametrize(("change", "message"), [
    (("{type: adam, lr: 0.02}", "{type: sgd, lr: 0.02}"),
     "trained with optimizer.type adam; the spec now says sgd"),
    (("{type: adam, lr: 0.02}", "{type: adam, lr: 0.01}"),
     "trained with optimizer.lr 0.02; the spec now says 0.01 (optimizer.lr differs)"),
    (("{type: step, step_size: 2, gamma: 0.5}", "{type: step, step_size: 3, gamma: 0.5}"),
     "schedule.step_size 2; the spec now says 3"),
    (("{type: step, step_size: 2, gamma: 0.5}", "{type: cosine}"),
     "(schedule.type, schedule.step_size, schedule.gamma"),
    (("seed: 3", "seed: 4"), "train.seed 3; the spec now says 4"),
    (("linear: 8}", "linear: 9}"), "network[0].linear"),
])
def test_resuming_with_a_changed_spec_is_refused_naming_the_fields(
        tmp_path: Path, change: tuple[str, str], message: str) -> None:
    dlspec.train_spec(dlspec.loads(SMALL), tmp_path / "run", epochs=2)
    changed = dlspec.loads(SMALL.replace(*change))
    with pytest.raises(FileError, match="cannot resume") as error:
        dlspec.train_spec(changed, tmp_path / "run", resume=True)
    assert message in str(error.value)
    assert error.value.problems[0].location is None  # about the run folder, not a line
    assert "new run folder" in str(error.value)


def test_a_schedule_whose_length_follows_epochs_cannot_be_extended(tmp_path: Path) -> None:
    text = SMALL.replace("{type: step, step_size: 2, gamma: 0.5}", "{type: cosine}")
    dlspec.train_spec(dlspec.loads(text), tmp_path / "run", epochs=2)
    with pytest.raises(FileError, match=r"another learning-rate schedule plan \(its length "
                       r"follows train.epochs, which changed\)"):
        dlspec.train_spec(dlspec.loads(text), tmp_path / "run", epochs=3, resume=True)


def test_a_changed_optimizer_is_exit_2_through_the_cli(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SMALL)
    dlspec.train_spec(dlspec.load(spec), tmp_path / "run", epochs=2)
    spec.write_text(SMALL.replace("type: adam", "type: sgd"))
    result = _dlspec("train", spec, "--out", tmp_path / "run", "--resume")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{tmp_path / 'run'}: cannot resume: the checkpoint was "
                                    "trained with optimizer.type adam")


# the learning rate grows a hundredfold an epoch: epochs 1 and 2 learn, then the loss explodes
DIVERGING = SMALL.replace("optimizer: {type: adam, lr: 0.02}", "optimizer: {type: sgd, lr: 0.05}"
                          ).replace("{type: step, step_size: 2, gamma: 0.5}",
                                    "{type: exponential, gamma: 1.0e+6}").replace(
    "epochs: 4", "epochs: 8")


def test_a_nan_stop_keeps_the_best_weights_and_the_run_folder(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(DIVERGING)
    run = tmp_path / "run"
    result = _dlspec("train", spec, "--out", run)
    assert result.returncode == 1, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("the loss became "), message  # no spec location: not about it
    assert "lower optimizer.lr or add train.grad_clip and train again with --overwrite" \
        in message and "weights_only" not in message
    history, test = _numbers(run)
    assert len(history) >= 1 and test is None
    best = min(history, key=lambda r: r["val_loss"])
    model = load_file(run / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in model.values())
    report = (run / "report.md").read_text()
    assert f"best epoch {int(best['epoch'])}" in report and "The run failed: the loss became" \
        in report
    assert (run / "curves.png").is_file() and (run / "metrics.csv").is_file()


def test_a_second_run_into_a_held_folder_is_refused_and_a_dead_holder_taken_over(
        tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SMALL.replace("epochs: 4", "epochs: 100000"))
    run = tmp_path / "run"
    first = _start("train", spec, "--out", run)
    try:
        while _marker_epoch(run) is None:
            assert first.poll() is None, "the first run ended"
            time.sleep(0.01)
        second = _dlspec("train", spec, "--out", run, "--epochs", "1")
        assert second.returncode == 1, second.stderr
        assert second.stderr.startswith(f"the run folder {run} is in use: process {first.pid} "
                                        f"on host ")
        assert f"`dlspec train {spec} --out {run}`, since " in second.stderr
        assert "--out" in second.stderr.splitlines()[-1]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the killed run left a checkpoint: a new run replaces it only when told to
    third = _dlspec("train", spec, "--out", run, "--epochs", "1", "--overwrite")
    assert third.returncode == 0, third.stderr
    assert f"note: took over the run folder {run}, left locked by a run that is no longer " \
        f"running (process {first.pid} " in third.stderr
    assert (run / ".dlspec.lock").read_text() == ""  # released at the end


def test_build_holds_its_folder_and_train_takes_it_again_in_the_same_process(
        tmp_path: Path) -> None:
    from dlspec.train.runfolder import locked

    with locked(tmp_path / "run") as note:
        assert note is None
        result = dlspec.train_spec(dlspec.loads(SMALL), tmp_path / "run", epochs=1)
        assert result.fit.notes == []
        holder = json.loads((tmp_path / "run" / ".dlspec.lock").read_text())
        assert holder["pid"] == os.getpid()


def test_an_out_that_is_a_file_or_cannot_be_written_is_refused_before_training(
        tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SMALL)
    (tmp_path / "file").write_text("mine")
    result = _dlspec("train", spec, "--out", tmp_path / "file")
    assert result.returncode == 2
    assert result.stderr.startswith(f"the run folder {tmp_path / 'file'} is a file, not a "
                                    "folder")
    assert (tmp_path / "file").read_text() == "mine"
    result = _dlspec("build", spec, "--out", tmp_path / "file" / "run")
    assert result.returncode == 2 and "cannot write the run folder" in result.stderr
    assert "epoch" not in result.stderr  # before any training


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_folder_is_refused_before_training(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    with pytest.raises(FileError, match="cannot write the run folder"):
        dlspec.train_spec(dlspec.loads(SMALL), tmp_path / "ro" / "run")


# ------------------------------------------------------------------ hostile checkpoint files


class _Sentinel:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def _huge_state(path: Path) -> None:
    """A state whose tensor announces 10^11 elements (its data holds 10)."""
    torch.save({"epoch": 2, "t": torch.zeros(10)}, path)
    with zipfile.ZipFile(path) as source:
        files = {name: source.read(name) for name in source.namelist()}
    name = next(n for n in files if n.endswith("data.pkl"))
    big = b"\x8a\x08" + struct.pack("<q", 10**11)  # LONG1 in place of BININT1 10
    files[name] = files[name].replace(b"K\x0at", big + b"t").replace(b"K\x0a\x85", big + b"\x85")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for key, data in files.items():
            target.writestr(key, data)


def _retyped(path: Path) -> None:
    save_file({k: v.double() for k, v in load_file(path).items()}, path,
              metadata={"dlspec_epoch": "2"})


def _reshaped(path: Path) -> None:
    save_file({k: torch.zeros(3, *v.shape) for k, v in load_file(path).items()}, path,
              metadata={"dlspec_epoch": "2"})


def _marker(text: str) -> Callable[[Path], None]:
    return lambda run: (run / "checkpoint.complete").write_text(text)


def _file(name: str, change: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda run: change(run / name)


HOSTILE: dict[str, tuple[Callable[[Path], None], str]] = {
    "empty weights": (_file("checkpoint.safetensors", lambda p: p.write_bytes(b"")),
                      "checkpoint.safetensors: it is not a readable safetensors file"),
    "truncated weights": (_file("checkpoint.safetensors",
                                lambda p: p.write_bytes(p.read_bytes()[:200])),
                          "checkpoint.safetensors: it is not a readable safetensors file"),
    "float64 weights": (_file("checkpoint.safetensors", _retyped),
                        "its tensor hidden.bias is F64 [8]; the network's is F32 [8]"),
    "reshaped weights": (_file("checkpoint.safetensors", _reshaped),
                         "its tensor hidden.bias is F32 [3, 8]; the network's is F32 [8]"),
    "reshaped best": (_file("checkpoint.best.safetensors", _reshaped),
                      "checkpoint.best.safetensors: its tensor hidden.bias is F32 [3, 8]"),
    "missing best": (_file("checkpoint.best.safetensors", Path.unlink),
                     "checkpoint.best.safetensors: it is missing"),
    "empty state": (_file("checkpoint.state.pt", lambda p: p.write_bytes(b"")),
                    "checkpoint.state.pt: it is not a checkpoint state dlspec wrote"),
    "truncated state": (_file("checkpoint.state.pt",
                              lambda p: p.write_bytes(p.read_bytes()[:500])),
                        "checkpoint.state.pt: it is not a checkpoint state dlspec wrote"),
    "huge state": (_file("checkpoint.state.pt", _huge_state),
                   "checkpoint.state.pt: it is not a checkpoint state dlspec wrote"),
    "state of a list": (_file("checkpoint.state.pt", lambda p: torch.save([1, 2], p)),
                        "checkpoint.state.pt: it is not a checkpoint state dlspec wrote"),
    "state of another epoch": (_file("checkpoint.state.pt",
                                     lambda p: torch.save({"epoch": 1}, p)),
                               "checkpoint.state.pt: it is of epoch 1, but checkpoint.complete "
                               "says 2"),
    "state without optimizer": (
        _file("checkpoint.state.pt", lambda p: torch.save(
            {k: v for k, v in torch.load(p, weights_only=True).items() if k != "optimizers"},
            p)), "checkpoint.state.pt: it does not hold the state of this run ('optimizers')"),
    "weights symlink": (lambda run: (run / "checkpoint.safetensors").unlink() or (
        run / "checkpoint.safetensors").symlink_to(run / "model.safetensors"),
        "checkpoint.safetensors: it is a symbolic link"),
    "marker list": (_marker("[2]"), "it is not a JSON object"),
    "marker garbage": (_marker("\x00\xff{"), "checkpoint.complete: it cannot be read as JSON"),
    "marker epoch text": (_marker('{"epoch": "2"}'),
                          "its epoch is '2', not an epoch number of 1 or more"),
    "marker epoch -5": (_marker('{"epoch": -5, "best_epoch": 1}'),
                        "its epoch is -5, not an epoch number of 1 or more"),
    "marker epoch true": (_marker('{"epoch": true}'),
                          "its epoch is True, not an epoch number of 1 or more"),
    "marker best after epoch": (_marker('{"epoch": 2, "best_epoch": 3}'),
                                "its best epoch 3 is after its epoch 2"),
}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of SMALL that stopped after 2 of its 4 epochs."""
    folder = tmp_path_factory.mktemp("stopped")
    (folder / "spec.yaml").write_text(SMALL)
    dlspec.train_spec(dlspec.load(folder / "spec.yaml"), folder / "run", epochs=2)
    return folder


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_checkpoint_is_refused_naming_the_file(
        stopped: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(stopped / "run", run, symlinks=True)
    change, message = HOSTILE[case]
    change(run)
    code = main(["train", str(stopped / "spec.yaml"), "--out", str(run), "--resume",
                 "--epochs", "4"])
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert message in stderr, stderr
    assert stderr.startswith(str(run)) and "internal error" not in stderr
    assert "weights_only" not in stderr
    # nothing trained, nothing written
    assert (run / "metrics.json").read_bytes() == (stopped / "run" / "metrics.json").read_bytes()


def test_a_pickle_that_runs_code_is_refused_unread(stopped: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(stopped / "run", run)
    sentinel = tmp_path / "ran"
    (run / "checkpoint.state.pt").unlink()
    torch.save({"epoch": 2, "x": _Sentinel(sentinel)}, run / "checkpoint.state.pt")
    result = _dlspec("train", stopped / "spec.yaml", "--out", run, "--resume")
    assert result.returncode == 2, result.stderr
    assert "checkpoint.state.pt: it holds Python objects other than tensors and plain data" \
        in result.stderr
    assert "weights_only" not in result.stderr and "Traceback" not in result.stderr
    with open(run / "plain.pkl", "wb") as handle:  # a plain pickle, not torch's zip
        pickle.dump({"epoch": 2, "x": _Sentinel(sentinel)}, handle)
    os.replace(run / "plain.pkl", run / "checkpoint.state.pt")
    result = _dlspec("train", stopped / "spec.yaml", "--out", run, "--resume")
    assert result.returncode == 2 and "nothing in it ran" in result.stderr
    assert not sentinel.exists()


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b""), "cannot read the checkpoint"),
    (lambda p: p.write_bytes(b"\x80\x04K\x01."), "cannot read the checkpoint"),
    (_retyped, "hidden.weight is float64 there, float32 in the spec"),
    (_reshaped, "hidden.weight is (3, 8, 2) there, (8, 2) in the spec"),
])
def test_export_refuses_a_hostile_checkpoint(stopped: Path, tmp_path: Path,
                                             make: Callable[[Path], None], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "model.safetensors"
    shutil.copy(stopped / "run" / "model.safetensors", weights)
    make(weights)
    code = main(["export", str(stopped / "spec.yaml"), "--checkpoint", str(weights), "-o",
                 str(tmp_path / "out.onnx")])
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert message in stderr and stderr.startswith(f"cannot read the checkpoint {weights}"
                                                   if "cannot" in message else str(weights))
    assert not (tmp_path / "out.onnx").exists()


def test_a_transfer_source_of_another_dtype_loads_nothing_and_says_why(
        stopped: Path, tmp_path: Path) -> None:
    source = tmp_path / "source.safetensors"
    shutil.copy(stopped / "run" / "model.safetensors", source)
    _retyped(source)
    text = SMALL + "transfer: {init_from: source.safetensors}\n"
    (tmp_path / "spec.yaml").write_text(text)
    with pytest.raises(dlspec.SpecError, match=r"transfer.layers: no tensor selected by `layers` "
                       r"can be loaded from source.safetensors, e.g. hidden.weight: float64 in "
                       r"the checkpoint, float32 here"):
        dlspec.train_spec(dlspec.load(tmp_path / "spec.yaml"), tmp_path / "run", epochs=1)


def test_a_diverged_error_is_a_work_error_without_location(tmp_path: Path) -> None:
    with pytest.raises(WorkError) as error:
        dlspec.train_spec(dlspec.loads(DIVERGING, "d.yaml"), tmp_path / "run")
    assert error.value.problems[0].location is None


def test_a_gan_resumes_its_last_weights_and_a_finished_gan_is_left_alone(
        tmp_path: Path) -> None:
    from test_gan import toy, train

    text = toy(train=", ema: 0.9")
    train(text, tmp_path / "run", epochs=2)  # a GAN keeps its last weights, not a best
    before = (tmp_path / "run" / "model.safetensors").stat().st_mtime_ns
    again: Any = train(text, tmp_path / "run", epochs=2, resume=True)
    assert again.fit.already_done and "nothing to resume" in again.fit.notes[0]
    assert (tmp_path / "run" / "model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(FileError, match=r"optimizer\.generator\.lr 0\.001; the spec now "
                       r"says 0\.091"):
        train(text.replace("lr: ", "lr: 9"), tmp_path / "run", epochs=3, resume=True)


class _Killed(BaseException):
    """Stands for a SIGKILL at one exact instant."""


def test_a_kill_between_commit_and_rename_rolls_the_checkpoint_forward(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlspec.train import checkpoint

    spec = dlspec.loads(SMALL)
    whole = dlspec.train_spec(spec, tmp_path / "whole")
    replace = os.replace

    def killed_after_commit(source: Path, target: Path) -> None:
        if Path(source).name == ".checkpoint.safetensors.next" and \
                _marker_epoch(tmp_path / "run") == 3:
            raise _Killed  # epoch 3 is committed; its files are still staged
        replace(source, target)

    monkeypatch.setattr(checkpoint.os, "replace", killed_after_commit)
    with pytest.raises(_Killed):
        dlspec.train_spec(spec, tmp_path / "run")
    monkeypatch.setattr(checkpoint.os, "replace", replace)
    run = tmp_path / "run"
    assert (run / ".checkpoint.safetensors.next").is_file() and _marker_epoch(run) == 3
    trained: list[int] = []

    class Epochs:
        def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
            trained.append(epoch)

        def on_batch(self, batch: int, loss: float, samples: int) -> None: ...

        def on_epoch_end(self, record: dict[str, float]) -> None: ...

    resumed = dlspec.train_spec(spec, run, resume=True, callbacks=Epochs())
    assert trained == [4]  # epoch 3's staged files were moved into place, not lost
    assert not (run / ".checkpoint.safetensors.next").exists()
    assert resumed.test == whole.test
    assert (run / "model.safetensors").read_bytes() == \
        (tmp_path / "whole" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("content", [b"", b"\x80\x04K\x01.", b"{\"not\": \"safetensors\"}"])
def test_a_hostile_transfer_source_is_refused_at_its_line(tmp_path: Path,
                                                          content: bytes) -> None:
    (tmp_path / "source.safetensors").write_bytes(content)
    (tmp_path / "spec.yaml").write_text(SMALL + "transfer: {init_from: source.safetensors}\n")
    with pytest.raises(dlspec.SpecError, match=r"spec.yaml:15:23: transfer.init_from: "
                       r".*source.safetensors: it is (neither a safetensors file nor a "
                       r"PyTorch file|not a readable PyTorch file)"):
        dlspec.train_spec(dlspec.load(tmp_path / "spec.yaml"), tmp_path / "run", epochs=1)


def test_a_full_disk_while_checkpointing_is_a_work_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlspec.train import checkpoint

    def full(*args: object, **options: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_model", full)
    with pytest.raises(WorkError, match=f"cannot write in the run folder {tmp_path / 'run'}: "
                       "No space left on device") as error:
        dlspec.train_spec(dlspec.loads(SMALL), tmp_path / "run", epochs=1)
    assert error.value.exit_code == 1 and error.value.problems[0].location is None
