"""Sigmoid's gradients vanish in a deep network; tanh, ReLU and GELU keep them alive.

Trains examples/activations/deep_mlp.yaml (eight hidden layers of 32 units on two spirals)
once per activation, with every `relu` of the spec replaced by that activation, and
`train.log_grad_norms` on. Prints, per activation, the test accuracy and the mean gradient
norm of the first and the last hidden layer (grad_norm/fc1 and grad_norm/fc8 in each run's
metrics.csv, averaged over the epochs), and draws every layer's norm into grad_norms.png.
Usage: python examples/activations/run.py [--epochs N] [--out DIR] [--activations A ...]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import yaml

import dlspec

HERE = Path(__file__).resolve().parent
SPEC = HERE / "deep_mlp.yaml"
ACTIVATIONS = ("sigmoid", "tanh", "relu", "gelu")


def spec_for(activation: str, epochs: int | None) -> dlspec.spec.model.Spec:
    """deep_mlp.yaml with each `relu` layer replaced by `activation`."""
    data = yaml.safe_load(SPEC.read_text())
    data["name"] = f"deep_mlp_{activation}"
    data["network"] = [activation if layer == "relu" else layer for layer in data["network"]]
    if epochs is not None:
        data["train"]["epochs"] = epochs
    return dlspec.loads(yaml.safe_dump(data, sort_keys=False), f"{SPEC.name} with {activation}")


def mean_grad_norms(run_dir: Path) -> dict[str, float]:
    """Each layer's gradient norm from the run's metrics.csv, averaged over the epochs."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    layers = [k for k in rows[0] if k.startswith("grad_norm/")]
    return {k.split("/", 1)[1]: sum(float(r[k]) for r in rows) / len(rows) for k in layers}


def plot(norms: dict[str, dict[str, float]], path: Path) -> None:
    """Mean gradient norm against depth, one line per activation (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6.4, 3.8), constrained_layout=True)
    for activation, layers in norms.items():
        axis.plot(list(layers), list(layers.values()), marker="o", label=activation)
    axis.set(yscale="log", xlabel="layer (input → output)", ylabel="mean gradient norm",
             title="deep_mlp.yaml: gradient norm per layer")
    axis.grid(alpha=0.3)
    axis.legend(frameon=False)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    """Train one network per activation; print accuracies and first/last-layer gradients."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="override the spec's epochs (40)")
    parser.add_argument("--out", type=Path, help="run folders (default: a temporary folder)")
    parser.add_argument("--activations", nargs="+", choices=ACTIVATIONS, default=ACTIVATIONS,
                        help="activations to compare (default: all four)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="activations-"))
    print(f"{'activation':10} {'test_acc':>8} {'grad_fc1':>10} {'grad_fc8':>10} "
          f"{'fc1/fc8':>9}")
    norms = {}
    for activation in args.activations:
        result = dlspec.train_spec(spec_for(activation, args.epochs), out / activation,
                                   overwrite=True)
        norms[activation] = layers = mean_grad_norms(result.run_dir)
        first, last = layers["fc1"], layers["fc8"]
        print(f"{activation:10} {result.test['accuracy']:>8.3f} {first:>10.2e} {last:>10.2e} "
              f"{first / last:>9.1e}", flush=True)
    plot(norms, out / "grad_norms.png")
    print(f"run folders and grad_norms.png in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
