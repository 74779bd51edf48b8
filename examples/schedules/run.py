"""One network, ten learning-rate schedules: the curves they follow and where they end.

Trains examples/schedules/digits_mlp.yaml once per schedule of schedules.yaml (constant,
step, exponential, polynomial, cosine, cosine with warm restarts, linear warm-up + cosine,
one-cycle, cyclic, reduce-on-plateau), reads the learning rate each run actually used from
its metrics.csv (`lr` column, one value per epoch) and draws them, beside each run's
training loss, into lr_and_loss.png in the output folder (two panels). Prints the first,
highest and last learning rate, the last training loss and the final validation and test
accuracy per schedule.
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
    """Two panels: every schedule's learning rate per epoch, and its training loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rates, losses) = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    colours = plt.get_cmap("tab10")
    for i, (name, curve) in enumerate(curves.items()):
        style = {"color": colours(i % 10), "ls": "-" if i < 10 else "--", "lw": 1.6}
        rates.plot(curve["epoch"], curve["lr"], marker=".", ms=4, label=name, **style)
        losses.plot(curve["epoch"], curve["train_loss"],
                    label=f"{name} (test {tests[name]:.3f})", **style)
    rates.set(xlabel="epoch", ylabel="learning rate (metrics.csv `lr`)",
              title="learning rate of each epoch")
    losses.set(xlabel="epoch", ylabel="training loss (metrics.csv `train_loss`)", yscale="log",
               title="training loss")
    for axis in (rates, losses):
        axis.grid(alpha=0.3)
    losses.legend(frameon=False, fontsize="small", ncol=2)
    fig.suptitle("digits_mlp.yaml, SGD with momentum 0.9 and base lr 0.1, one run per schedule",
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
    print(f"{'schedule':18} {'first_lr':>9} {'max_lr':>8} {'final_lr':>9} {'train_loss':>10} "
          f"{'val_acc':>8} {'test_acc':>8}")
    curves, tests = {}, {}
    for name in args.schedules:
        result = dlspec.train_spec(spec_for(name, args.epochs), out / name,
                                   overwrite=True)
        curves[name] = columns = history(result.run_dir)
        tests[name] = result.test["accuracy"]
        print(f"{name:18} {columns['lr'][0]:>9.2e} {max(columns['lr']):>8.4f} "
              f"{columns['lr'][-1]:>9.2e} {columns['train_loss'][-1]:>10.2e} "
              f"{columns['val_accuracy'][-1]:>8.3f} {result.test['accuracy']:>8.3f}",
              flush=True)
    plot(curves, tests, out / "lr_and_loss.png")
    print(f"run folders and lr_and_loss.png in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
