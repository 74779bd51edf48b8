"""One network, eight learning-rate schedules: the curves they follow and where they end.

Trains examples/schedules/digits_mlp.yaml once per schedule of schedules.yaml (constant,
step, cosine, cosine with warm restarts, linear warm-up + cosine, one-cycle, cyclic,
reduce-on-plateau), reads the learning rate each run actually used from its metrics.csv
(`lr` column, one value per epoch) and draws all of them, with the validation accuracy,
into lr_schedules.png in the output folder. Prints the first, highest and
last learning rate and the final validation and test accuracy per schedule.
Usage: python examples/schedules/run.py [--epochs N] [--out DIR] [--schedules S ...]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

import dlspec

HERE = Path(__file__).resolve().parent
SPEC = HERE / "digits_mlp.yaml"
SCHEDULES: dict[str, Any] = yaml.safe_load((HERE / "schedules.yaml").read_text())


def spec_for(name: str, epochs: int | None) -> dlspec.spec.model.Spec:
    """digits_mlp.yaml with the schedule `name` of schedules.yaml."""
    data = yaml.safe_load(SPEC.read_text())
    data["name"] = f"digits_mlp_{name}"
    data["schedule"] = SCHEDULES[name]
    if epochs is not None:
        data["train"]["epochs"] = epochs
    return dlspec.loads(yaml.safe_dump(data, sort_keys=False), f"{SPEC.name} with {name}")


def history(run_dir: Path) -> dict[str, list[float]]:
    """The run's metrics.csv as columns."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in rows[0]}


def plot(curves: dict[str, dict[str, list[float]]], tests: dict[str, float],
         path: Path) -> None:
    """One panel per schedule: the learning rate per epoch and the validation accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, len(curves))
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), sharex=True,
                             sharey=True, constrained_layout=True, squeeze=False)
    top = max(max(c["lr"]) for c in curves.values())
    for axis, (name, curve) in zip(axes.flat, curves.items(), strict=False):
        axis.plot(curve["epoch"], curve["lr"], color="tab:purple", marker=".")
        axis.set(title=f"{name}: test {tests[name]:.3f}", ylim=(0, top * 1.1))
        axis.grid(alpha=0.3)
        accuracy = axis.twinx()
        accuracy.plot(curve["epoch"], curve["val_accuracy"], color="tab:gray", ls="--", lw=1)
        accuracy.set_ylim(0.8, 1.0)
        accuracy.tick_params(labelsize="small", colors="tab:gray")
    for axis in axes.flat[len(curves):]:
        axis.set_visible(False)
    for axis in axes[:, 0]:
        axis.set_ylabel("learning rate")
    for axis in axes[-1]:
        axis.set_xlabel("epoch")
    fig.suptitle("digits_mlp.yaml (SGD, momentum 0.9, base lr 0.1): the lr of each epoch "
                 "from metrics.csv (purple) and the validation accuracy (grey, right axis)",
                 fontsize="medium")
    fig.savefig(path, dpi=72)
    plt.close(fig)


def main() -> None:
    """Train once per schedule; print final lr, validation and test accuracy; plot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="override the spec's epochs (30)")
    parser.add_argument("--out", type=Path, help="run folders (default: a temporary folder)")
    parser.add_argument("--schedules", nargs="+", choices=tuple(SCHEDULES),
                        default=tuple(SCHEDULES), help="schedules to compare (default: all)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="schedules-"))
    print(f"{'schedule':18} {'first_lr':>9} {'max_lr':>8} {'final_lr':>9} {'val_acc':>8} "
          f"{'test_acc':>8}")
    curves, tests = {}, {}
    for name in args.schedules:
        result = dlspec.train_spec(spec_for(name, args.epochs), out / name)
        curves[name] = columns = history(result.run_dir)
        tests[name] = result.test["accuracy"]
        print(f"{name:18} {columns['lr'][0]:>9.2e} {max(columns['lr']):>8.4f} "
              f"{columns['lr'][-1]:>9.2e} "
              f"{columns['val_accuracy'][-1]:>8.3f} {result.test['accuracy']:>8.3f}",
              flush=True)
    plot(curves, tests, out / "lr_schedules.png")
    print(f"run folders and lr_schedules.png in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
