"""Transfer learning: a tiny ResNet learns digits 0–4, then digits 5–9 from ~45 pictures.

Writes two .npz files from scikit-learn's 8×8 digits beside a copy of tiny_resnet.yaml —
digits_0to4.npz (task A, labels 0–4) and digits_5to9.npz (task B, labels 5–9 stored as
0–4) — and trains, with dlspec's Python API:

  pretrain  the spec as written: task A, all of its ~900 digits;
  scratch   task B from random weights, on 5% of its digits (the rest validate and test);
  head      task B from task A's trunk (`transfer: {init_from: pretrain/model.safetensors,
            layers: [...], freeze: [...]}`), all of it frozen: only a new head trains;
  top       the same, but layer3 trains with the new head (stem, layer1, layer2 frozen).

Prints what each transfer loaded and froze, then per run: trainable parameters, training
samples, test accuracy, the epoch whose weights were kept, the first epoch whose validation
accuracy reached --target, and seconds.
Usage: python examples/transfer_learning/run.py [--epochs N] [--pretrain-epochs N]
       [--out DIR] [--target F]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np
import yaml

import dlspec

HERE = Path(__file__).resolve().parent
SPEC = HERE / "tiny_resnet.yaml"
RUNS = ("scratch", "finetune", "freeze_low", "freeze_all")  # the spec's variants: task B


def write_tasks(folder: Path) -> dict[str, int]:
    """digits_0to4.npz and digits_5to9.npz in `folder`: x (N, 1, 8, 8) in [0, 1], y 0–4."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    counts = {}
    for name, low in (("digits_0to4", 0), ("digits_5to9", 5)):
        chosen = (digits.target >= low) & (digits.target < low + 5)
        np.savez(folder / f"{name}.npz", x=x[chosen], y=digits.target[chosen] - low)
        counts[name] = int(chosen.sum())
    return counts


def spec_with_seed(spec: Path, seed: int) -> Path:
    """The spec copy, its task-B variants drawing their split and weights from `seed`
    (seed 0 is the file as written); written beside it, so relative paths still hold."""
    if seed == 0:
        return spec
    data = yaml.safe_load(spec.read_text())
    for variant in RUNS:
        data["variants"][variant]["train"]["seed"] = seed
        data["variants"][variant]["data"]["seed"] = seed
    path = spec.with_name(f"{spec.stem}_seed{seed}.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def first_epoch_reaching(result: Any, target: float) -> int | None:
    """The first epoch whose val_accuracy is at least `target` (None: never)."""
    return next((int(row["epoch"]) for row in result.fit.history
                 if row["val_accuracy"] >= target), None)


def main() -> None:
    """Pretrain on task A; train task B from scratch and from the pretrained trunk; compare."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="override task B's epochs (40)")
    parser.add_argument("--pretrain-epochs", type=int, help="override task A's epochs (15)")
    parser.add_argument("--seeds", type=int, default=3, help="task-B splits and "
                        "initialisations to average over (default 3)")
    parser.add_argument("--out", type=Path, help="data, spec copy and run folders "
                        "(default: a temporary folder)")
    parser.add_argument("--target", type=float, default=0.9,
                        help="validation accuracy whose first epoch is reported (0.9)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="transfer_learning-"))
    out.mkdir(parents=True, exist_ok=True)
    counts = write_tasks(out)
    spec = Path(shutil.copy(SPEC, out / SPEC.name))  # npz and init_from are read beside it
    print("wrote " + ", ".join(f"{name}.npz ({count} digits)" for name, count in counts.items()),
          file=sys.stderr)

    pretrain = dlspec.train_spec(dlspec.load(spec), out / "pretrain",
                                 epochs=args.pretrain_epochs, overwrite=True)
    results: dict[str, list[Any]] = {variant: [] for variant in RUNS}
    for seed in range(args.seeds):
        seeded = spec_with_seed(spec, seed)
        for variant in RUNS:
            result = dlspec.train_spec(dlspec.load(seeded, variant),
                                       out / f"seed{seed}" / variant, epochs=args.epochs,
                                       overwrite=True)
            if result.transfer is not None and seed == 0:
                print(f"{variant}: " + "\n  ".join(result.transfer.lines()), file=sys.stderr)
            results[variant].append(result)

    print(f"{'run':10} {'task':4} {'trainable':>9} {'train_n':>7} {'test_acc':>8} "
          f"{'per_seed':>17} {'best':>5} {'to_' + format(args.target, 'g'):>6} {'sec':>5}")
    for name, runs in {"pretrain": [pretrain], **results}.items():
        model = runs[0].model
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        tests = [r.test["accuracy"] for r in runs]
        reached = [first_epoch_reaching(r, args.target) for r in runs]
        shown = "-" if None in reached else f"{mean(e for e in reached if e is not None):.1f}"
        print(f"{name:10} {'A' if name == 'pretrain' else 'B':4} {trainable:>9} "
              f"{round(mean(len(r.data.train) for r in runs)):>7} {mean(tests):>8.3f} "
              f"{'/'.join(f'{t:.3f}' for t in tests):>17} "
              f"{mean(r.fit.best_epoch for r in runs):>5.1f} "
              f"{shown:>6} "
              f"{mean(r.seconds for r in runs):>5.1f}", flush=True)
    print(f"run folders in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
