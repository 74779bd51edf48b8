"""Reading image files batch by batch: dlspec's reader against a hand-written one, and memory
that does not grow with the dataset.

1. Speed. A generated folder of 20,000 JPEGs at 64×64 (10 class folders). One epoch of
   training batches (batch 64, shuffled, normalised) read with 2 worker processes by
   dlspec — `load_data` with `cache: none`, then the session's reader (`Reader` over a
   `BatchReader`, the batches `chunks` draws) — against a hand-written `Dataset` (Pillow
   open + convert + numpy + torch, normalise) with torch's `DataLoader` (same workers,
   batch size, shuffling). Worker start-up is inside both timings. Rounds alternate which
   goes first; the ratio is of the medians.
2. Memory. `dlspec train` (one epoch of a small CNN, `cache: none`, `normalize: auto` so
   the statistics pass streams too, `num_workers: 0` so every byte is in the one process)
   over 5,000 and over 50,000 such images, as subprocesses; their peak RSS (`wait4`).

Usage: python benchmarks/data_loading.py [--images 20000] [--small 5000] [--large 50000]
       [--rounds 3] [--workers 2]
Reports only; the exit code is 0 whatever it measures. ~5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
SPEC = """\
dlspec: 1
name: files
inputs:
  image: {{shape: [3, 64, 64]}}
network:
  - conv2d: {{out_channels: 8, kernel_size: 3, stride: 2}}
  - relu
  - adaptive_avgpool2d: 1
  - flatten
  - linear: 10
task: classification
loss: cross_entropy
optimizer: {{type: adam, lr: 0.001}}
data: {{image_folder: {folder}, cache: none, normalize: auto,
       split: {{train: 0.9, val: 0.05, test: 0.05}}}}
train: {{epochs: 1, batch_size: 64, seed: 0, num_workers: 0}}
"""


def make_folder(root: Path, count: int, seed: int = 0) -> Path:
    """`count` 64×64 JPEGs in 10 class folders (smooth noise: JPEG-sized like photos)."""
    rng = np.random.default_rng(seed)
    for label in range(10):
        (root / f"class{label}").mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    for i in range(count):
        tile = np.roll(base, i % 16, axis=0) ^ np.uint8(i % 251)
        image = Image.fromarray(tile).resize((64, 64), Image.Resampling.BILINEAR)
        image.save(root / f"class{i % 10}" / f"{i:06d}.jpg", quality=90)
    return root


class HandWritten(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """What a PyTorch user writes: file list, Pillow, normalise per sample."""

    def __init__(self, root: Path):
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.files = [(path, label) for label, name in enumerate(classes)
                      for path in sorted((root / name).iterdir())]
        self.mean = torch.tensor(MEAN)[:, None, None]
        self.std = torch.tensor(STD)[:, None, None]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.files[index]
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        x = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0
        return (x - self.mean) / self.std, label


def hand_written_epoch(root: Path, workers: int, batch: int) -> float:
    began = time.perf_counter()
    loader = torch.utils.data.DataLoader(HandWritten(root), batch_size=batch, shuffle=True,
                                         num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    for x, _ in loader:
        x.sum()
    return time.perf_counter() - began


def dlspec_epoch(root: Path, workers: int, batch: int) -> float:
    from dlspec.data import load_data
    from dlspec.data.lazy import BatchReader, Reader
    from dlspec.graph import InputDecl
    from dlspec.spec.sections import DataConfig, NormalizeStats, TaskConfig
    from dlspec.train.supervised import chunks

    began = time.perf_counter()
    config = DataConfig(image_folder=root.name, cache="none",
                        normalize=NormalizeStats(mean=MEAN, std=STD),
                        split={"train": 1.0, "val": 0.0, "test": 0.0})
    splits = load_data(config, TaskConfig(type="classification"),
                       {"image": InputDecl((3, 64, 64))}, seed=0, base_dir=root.parent,
                       streamable=True, workers=workers)
    train = splits.train
    reader = Reader(BatchReader(train.inputs, train.targets), workers)
    for step in reader(chunks(len(train), batch, torch.Generator().manual_seed(0))):
        step.inputs[0].sum()
    return time.perf_counter() - began


def peak_rss(spec: Path) -> tuple[float, float]:
    """`dlspec train SPEC` as a subprocess: its peak RSS (MB) and wall seconds."""
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "dlspec", "train", str(spec), "--out",
                                str(spec.parent / f"run-{spec.stem}")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"dlspec train {spec} failed: {process.stderr.read().decode()[-500:]}"
                         if process.stderr else "dlspec train failed")
    return usage.ru_maxrss / 1024, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=5_000)
    parser.add_argument("--large", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; torch "
          f"{torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        began = time.perf_counter()
        folder = make_folder(base / "images", args.images)
        print(f"generated {args.images:,} JPEGs in {time.perf_counter() - began:.1f} s")
        ours, theirs = [], []
        for round_ in range(args.rounds):
            order = [(dlspec_epoch, ours), (hand_written_epoch, theirs)]
            for epoch, times in order if round_ % 2 == 0 else order[::-1]:
                times.append(epoch(folder, args.workers, args.batch))
            print(f"round {round_ + 1}: dlspec {ours[-1]:.2f} s, hand-written "
                  f"{theirs[-1]:.2f} s")
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"one epoch, {args.images:,} images, {args.workers} workers, batch {args.batch}:"
              f" dlspec {statistics.median(ours):.2f} s / hand-written "
              f"{statistics.median(theirs):.2f} s = {ratio:.3f} (target ≤ 1.05)")
        rss = {}
        for count in (args.small, args.large):
            folder = make_folder(base / f"set{count}", count, seed=count)
            spec = base / f"files{count}.yaml"
            spec.write_text(SPEC.format(folder=folder.name))
            rss[count] = peak_rss(spec)
            print(f"dlspec train over {count:,} images (cache none): peak RSS "
                  f"{rss[count][0]:.0f} MB, {rss[count][1]:.1f} s")
        grown = rss[args.large][0] - rss[args.small][0]
        print(f"peak RSS at {args.large:,} − at {args.small:,}: {grown:+.0f} MB "
              "(target within 200 MB)")


if __name__ == "__main__":
    main()
