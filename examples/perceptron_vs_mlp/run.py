"""The perceptron learns AND and NAND but not XOR; an MLP with a non-linear activation can.

Trains specs/perceptron.yaml and specs/mlp.yaml on the same three truth tables (the four
corners of the unit square, repeated with a little noise) and prints a table of test
accuracies. Usage: python examples/perceptron_vs_mlp/run.py [--epochs N] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml

import dlspec

ROOT = Path(__file__).resolve().parents[2]
PROBLEMS = ("and", "nand", "xor")
SPECS = {"perceptron": ROOT / "specs" / "perceptron.yaml", "mlp": ROOT / "specs" / "mlp.yaml"}


def spec_for(path: Path, dataset: str, epochs: int | None) -> dlspec.spec.model.Spec:
    """The spec at `path`, trained on `dataset` (a truth table) instead of its own data."""
    data = yaml.safe_load(path.read_text())
    data["data"] = {"dataset": dataset, "num_samples": 400, "noise": 0.05,
                    "split": {"train": 0.6, "val": 0.2, "test": 0.2}}
    data["task"] = {"type": "classification", "num_classes": 2}
    if epochs is not None:
        data["train"]["epochs"] = epochs
    return dlspec.loads(yaml.safe_dump(data), f"{path.name} on {dataset}")


def main() -> None:
    """Train both networks on each problem; print the test accuracies."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="override the specs' epochs")
    parser.add_argument("--out", type=Path, help="run folders (default: a temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="perceptron_vs_mlp-"))
    print(f"{'problem':8} {'perceptron':>11} {'mlp':>6}")
    for problem in PROBLEMS:
        accuracy = {}
        for name, path in SPECS.items():
            result = dlspec.train_spec(spec_for(path, problem, args.epochs),
                                       out / f"{name}-{problem}", overwrite=True)
            accuracy[name] = result.test["accuracy"]
        print(f"{problem:8} {accuracy['perceptron']:>11.2f} {accuracy['mlp']:>6.2f}")


if __name__ == "__main__":
    main()
