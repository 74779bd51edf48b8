"""Data at any size: images and arrays read from files batch by batch (data.cache), with
worker processes, tar shards, bad files refused or skipped, data-parallel processes reading
disjoint parts, and checkpoints within an epoch that resume exactly."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dlspec
import dlspec.data
from conftest import ROOT
from dlspec.data.lazy import LazyColumn, streaming_statistics
from dlspec.data.samples import StoredRows
from dlspec.errors import FileError, Interrupted
from dlspec.train.engine import Silent, TrainResult
from dlspec.train.supervised import _share

CLASSES = ("ant", "bee", "cat")

SPEC = """\
dlspec: 1
name: folder
inputs:
  image: {shape: [3, 10, 10]}
network:
  - conv2d: {out_channels: 4, kernel_size: 3}
  - relu
  - flatten
  - {name: out, linear: 3}
task: classification
loss: cross_entropy
optimizer: {type: adam, lr: 0.01}
data: {image_folder: images, cache: none, normalize: auto,
       split: {train: 0.6, val: 0.2, test: 0.2}}
augment: {images: {horizontal_flip: true, color_jitter: {brightness: 0.2}}}
train: {epochs: 2, batch_size: 8, seed: 0}
"""


def _write_images(folder: Path, per_class: int = 14) -> list[Path]:
    rng = np.random.default_rng(0)
    written = []
    for label, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = (rng.random((10, 10, 3)) * 90 + label * 70).astype(np.uint8)
            path = folder / name / f"{i:02d}.png"
            Image.fromarray(pixels).save(path)
            written.append(path)
    return written


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image folder of three classes beside the spec."""
    root = tmp_path_factory.mktemp("lazy")
    _write_images(root / "images")
    (root / "spec.yaml").write_text(SPEC)
    return root


def _train(spec: Path, out: Path, *overrides: str, resume: bool = False) -> TrainResult:
    return dlspec.train_spec(dlspec.load(spec, overrides=list(overrides)), out, resume=resume)


def _numbers(run: Path) -> tuple[list[dict[str, float]], dict[str, float]]:
    metrics = json.loads((run / "metrics.json").read_text())
    epochs = [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_second")}
              for r in metrics["epochs"]]
    return epochs, metrics["test"]


def _dlspec(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlspec", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_read_as_needed_with_or_without_workers_is_the_run_held_in_memory(
        folder: Path, tmp_path: Path) -> None:
    spec = folder / "spec.yaml"
    lazy = _train(spec, tmp_path / "none")
    assert isinstance(lazy.data.train.inputs["image"], LazyColumn)
    workers = _dlspec("train", spec, "--out", tmp_path / "workers", "--set",
                      "train.num_workers=2")
    assert workers.returncode == 0, workers.stderr
    held = _train(spec, tmp_path / "memory", "data.cache=memory")
    assert isinstance(held.data.train.inputs["image"], torch.Tensor)
    # the same seed: the same batches, augmentation and normalisation, to the last bit
    assert _numbers(tmp_path / "none") == _numbers(tmp_path / "workers") \
        == _numbers(tmp_path / "memory")
    assert (tmp_path / "none" / "model.safetensors").read_bytes() == \
        (tmp_path / "workers" / "model.safetensors").read_bytes()
    assert "read from the files batch by batch (cache none)" in \
        (tmp_path / "none" / "report.md").read_text()


def test_auto_cache_says_what_it_chose(folder: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    spec = folder / "spec.yaml"
    small = _train(spec, tmp_path / "small", "data.cache=auto", "train.epochs=1")
    assert isinstance(small.data.train.inputs["image"], torch.Tensor)
    assert "held in memory (" in small.data.source and "cache auto)" in small.data.source
    monkeypatch.setattr(dlspec.data, "CACHE_BUDGET", 1000)  # bytes: far below the images
    large = _train(spec, tmp_path / "large", "data.cache=auto", "train.epochs=1")
    assert isinstance(large.data.train.inputs["image"], LazyColumn)
    assert "cache auto: 49.2 KiB decoded is over the 1000 bytes budget" in large.data.source


def test_streaming_statistics_are_those_of_the_whole_split(folder: Path) -> None:
    result = _train(folder / "spec.yaml", folder / "stats", "train.epochs=1")
    column = result.data.train.inputs["image"]
    assert isinstance(column, LazyColumn)
    pixels = np.stack([column.files.read(int(i)) for i in column.positions]).astype(np.float64)
    stats = result.data.normalization["image"]
    assert np.allclose(stats["mean"], pixels.mean(axis=(0, 2, 3)), rtol=0, atol=1e-12)
    assert np.allclose(stats["std"], pixels.std(axis=(0, 2, 3)), rtol=0, atol=1e-12)
    # and in batches of any size, with workers
    unnormalised = LazyColumn(column.files, torch.float32, column.positions)
    mean, std, failures, refused = streaming_statistics(unnormalised, 1, batch_size=5,
                                                        workers=2)
    assert not failures and not refused
    assert torch.allclose(mean, torch.tensor(stats["mean"], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(std, torch.tensor(stats["std"], dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("cache", ["none", "memory"])
def test_a_bad_image_is_refused_by_path_or_skipped_and_counted(
        tmp_path: Path, cache: str) -> None:
    written = _write_images(tmp_path / "images")
    written[3].write_bytes(written[3].read_bytes()[:60])  # truncated
    (tmp_path / "images" / "bee" / "bad.png").write_text("not an image")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    refused = _dlspec("train", spec, "--out", tmp_path / "run", "--set", f"data.cache={cache}")
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    assert "images/ant/03.png is a truncated or corrupt image" in refused.stderr \
        or "images/bee/bad.png is not an image Pillow can read" in refused.stderr
    assert "data.bad_files: skip" in refused.stderr
    skipped = _train(spec, tmp_path / "skipped", f"data.cache={cache}", "data.bad_files=skip")
    report = (tmp_path / "skipped" / "report.md").read_text()
    assert "2 unreadable files skipped" in report
    assert "images/bee/bad.png" in report
    trained = len(skipped.data.train) + len(skipped.data.val or []) + len(skipped.data.test or [])
    assert trained == (43 if cache == "none" else 41)  # lazily, they are left out as met


@pytest.mark.parametrize("cache", ["none", "memory"])
def test_an_image_of_another_size_is_refused_even_when_bad_files_are_skipped(
        tmp_path: Path, cache: str) -> None:
    written = _write_images(tmp_path / "images", per_class=4)
    Image.new("RGB", (12, 9)).save(written[5])
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    result = _dlspec("train", spec, "--out", tmp_path / "run", "--set", f"data.cache={cache}",
                     "--set", "data.bad_files=skip", "--set", "data.normalize=null")
    assert result.returncode == 2, result.stderr
    assert "images/bee/01.png is 9×12, but the images of images are 10×10" in result.stderr
    assert "add `resize: [height, width]`" in result.stderr


def _shard(path: Path, samples: list[tuple[str, bytes, bytes]],
           extra: tarfile.TarInfo | None = None) -> None:
    with tarfile.open(path, "w") as tar:
        for key, image, label in samples:
            for suffix, payload in ((".png", image), (".cls", label)):
                info = tarfile.TarInfo(key + suffix)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size) if extra.isreg() else None)


def _samples(images: list[Path]) -> list[tuple[str, bytes, bytes]]:
    return [(f"{p.parent.name}_{p.stem}", p.read_bytes(),
             str(CLASSES.index(p.parent.name)).encode()) for p in images]


def test_tar_shards_train_like_the_folder_they_hold(folder: Path, tmp_path: Path) -> None:
    images = sorted((folder / "images").rglob("*.png"))
    (tmp_path / "shards").mkdir()
    _shard(tmp_path / "shards" / "part-0.tar", _samples(images[::2]))
    _shard(tmp_path / "shards" / "part-1.tar", _samples(images[1::2]))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("image_folder: images", "shards: shards"))
    result = _dlspec("train", spec, "--out", tmp_path / "run", "--set", "train.num_workers=2")
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "run" / "report.md").read_text()
    assert "tar shards shards (2 shards, 3 classes), 42 samples" in report
    history, test = _numbers(tmp_path / "run")
    assert test["accuracy"] > 0.5  # the classes differ in brightness: learnable


@pytest.mark.parametrize(("member", "said"), [
    ("../escape.png", "member '../escape.png' leads outside the archive"),
    ("/etc/passwd.png", "member '/etc/passwd.png' leads outside the archive"),
    ("link.png", "member 'link.png' is a link or a device, not a file"),
    ("lonely.png", "sample 'lonely' has an image but no .cls member"),
    ("word.cls", "word.cls holds 'seven', not a class index"),
])
def test_hostile_or_broken_shards_are_refused_naming_the_member(
        folder: Path, tmp_path: Path, member: str, said: str) -> None:
    images = sorted((folder / "images").rglob("*.png"))[:3]
    extra = tarfile.TarInfo(member)
    if member == "link.png":
        extra.type, extra.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        extra.size = 5
    samples = _samples(images)
    if member == "word.cls":
        samples.append(("word", images[0].read_bytes(), b"seven"))
        extra = None
    (tmp_path / "shards").mkdir()
    _shard(tmp_path / "shards" / "a.tar", samples, extra)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("image_folder: images", "shards: shards"))
    result = _dlspec("train", spec, "--out", tmp_path / "run")
    assert result.returncode == 2, result.stderr
    assert said in result.stderr and "data.shards" in result.stderr
    assert not (tmp_path / "escape.png").exists()


def test_arrays_stored_uncompressed_are_memory_mapped(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 6)).astype(np.float32)
    y = ((x[:, 0] > -0.5).astype(np.int64) + (x[:, 0] > 0.5))  # three classes
    np.savez(tmp_path / "plain.npz", x=x, y=y)
    np.savez_compressed(tmp_path / "packed.npz", x=x, y=y)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("image: {shape: [3, 10, 10]}", "x: {shape: [6]}")
                    .replace("  - conv2d: {out_channels: 4, kernel_size: 3}\n  - relu\n"
                             "  - flatten\n", "  - linear: 8\n  - relu\n")
                    .replace("image_folder: images", "npz: plain.npz")
                    .replace("augment: {images: {horizontal_flip: true, color_jitter: "
                             "{brightness: 0.2}}}\n", ""))
    lazy = _train(spec, tmp_path / "lazy")
    column = lazy.data.train.inputs["x"]
    assert isinstance(column, LazyColumn) and isinstance(column.files, StoredRows)
    held = _train(spec, tmp_path / "held", "data.cache=memory")
    assert _numbers(tmp_path / "lazy") == _numbers(tmp_path / "held")
    refused = _dlspec("train", spec, "--out", tmp_path / "packed", "--set",
                      "data.npz=packed.npz")
    assert refused.returncode == 2
    assert "data.cache" in refused.stderr and "numpy.savez" in refused.stderr
    assert held.data.train.inputs["x"].shape == (54, 6)


def test_cache_none_of_data_generated_in_memory_is_refused_at_its_line(
        tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("image_folder: images, cache: none", "dataset: digits, "
                                 "cache: none").replace("[3, 10, 10]", "[1, 8, 8]")
                    .replace("color_jitter: {brightness: 0.2}", "rotation: 5"))
    result = _dlspec("train", spec, "--out", tmp_path / "run")
    assert result.returncode == 2
    assert "`cache` applies to data read from files" in result.stderr
    assert result.stderr.startswith(f"{spec}:13:32: data.cache: ")


def test_each_process_reads_its_own_part_of_every_batch() -> None:
    for size in range(2, 40):
        for world in (2, 3, 4):
            if size < world:
                continue
            parts = [_share(size, world, rank) for rank in range(world)]
            covered = [i for start, stop in parts for i in range(start, stop)]
            assert covered == list(range(size))  # disjoint, and together the whole batch
            assert [stop - start for start, stop in parts] == \
                [len(p) for p in torch.arange(size).tensor_split(world)]


def test_two_processes_reading_from_files_end_as_one_does(folder: Path,
                                                           tmp_path: Path) -> None:
    spec = folder / "spec.yaml"
    alone = _train(spec, tmp_path / "alone")
    assert alone.fit.history
    pair = _dlspec("train", spec, "--out", tmp_path / "pair", "--nproc", "2")
    assert pair.returncode == 0, pair.stderr
    ours, theirs = _numbers(tmp_path / "alone"), _numbers(tmp_path / "pair")
    for mine, other in zip(ours[0], theirs[0], strict=True):
        assert mine.keys() == other.keys()
        for key in mine:
            assert mine[key] == pytest.approx(other[key], rel=1e-4, abs=1e-5), key


def _marker(run: Path) -> dict[str, int] | None:
    try:
        return json.loads((run / "checkpoint.complete").read_text())
    except (OSError, ValueError):
        return None


def test_a_run_killed_within_an_epoch_resumes_from_its_last_batch_checkpoint(
        folder: Path, tmp_path: Path) -> None:
    spec = folder / "steps.yaml"
    spec.write_text(SPEC.replace("epochs: 2", "epochs: 2, checkpoint_steps: 1, "
                             "metrics: [accuracy, f1], log_grad_norms: true"))
    whole = _dlspec("train", spec, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "dlspec", "train", str(spec), "--out",
                                str(run), "--set", "train.num_workers=1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    while (_marker(run) or {}).get("batch") != 2 or _marker(run).get("epoch") != 1:
        assert process.poll() is None, "the run ended before epoch 2, batch 2"
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait()
    marker = _marker(run)
    assert marker is not None and marker["epoch"] == 1 and marker.get("batch", 0) >= 2
    resumed = _dlspec("train", spec, "--out", run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _numbers(run) == _numbers(tmp_path / "whole")
    assert (run / "model.safetensors").read_bytes() == \
        (tmp_path / "whole" / "model.safetensors").read_bytes()


def test_checkpoints_within_epochs_are_refused_for_a_gan(tmp_path: Path) -> None:
    spec = tmp_path / "gan.yaml"
    text = (ROOT / "specs" / "wgan_gp.yaml").read_text()  # small: refused before it trains
    spec.write_text(text.replace("train: {", "train: {checkpoint_steps: 5, ", 1))
    result = _dlspec("train", spec, "--out", tmp_path / "run", "--epochs", "1")
    assert result.returncode == 2, result.stderr
    assert "checkpoints at the end of epochs only" in result.stderr


class _StopAt(Silent):
    """Callbacks that interrupt a run after a batch of an epoch, as Ctrl-C does."""

    def __init__(self, epoch: int, batch: int):
        self.stop, self.epoch = (epoch, batch), 0

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.epoch = epoch

    def on_batch(self, batch: int, loss: float, samples: int) -> None:
        if (self.epoch, batch) == self.stop:
            raise KeyboardInterrupt


@pytest.mark.parametrize("tally", [torch.zeros(9, 9), "seven", torch.zeros(2**21)])
def test_a_hostile_epoch_state_is_refused_naming_the_checkpoint(
        folder: Path, tmp_path: Path, tally: object) -> None:
    run, steps = tmp_path / "run", ("train.checkpoint_steps=1", "train.metrics=[accuracy]")
    with pytest.raises(Interrupted):
        dlspec.train_spec(dlspec.load(folder / "spec.yaml", overrides=list(steps)), run,
                          callbacks=_StopAt(2, 3))
    assert _marker(run) == {"epoch": 1, "best_epoch": 1, "batch": 2}
    state = torch.load(run / "checkpoint.state.pt", weights_only=True)
    state["within"]["tallies"]["output"]["stats"]["classes"]["correct"] = tally
    torch.save(state, run / "checkpoint.state.pt")
    with pytest.raises(FileError, match="checkpoint.state.pt: it does not hold the state of "
                       "this run"):
        _train(folder / "spec.yaml", run, *steps, resume=True)
