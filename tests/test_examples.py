"""Examples stay runnable: each runs here (at its full, small size) and shows its result."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_perceptron_learns_and_nand_but_not_xor_while_the_mlp_learns_all() -> None:
    result = subprocess.run([sys.executable, "examples/perceptron_vs_mlp/run.py"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]]
            for line in result.stdout.splitlines()[1:]}
    assert rows["and"] == [1.0, 1.0] and rows["nand"] == [1.0, 1.0]
    perceptron, mlp = rows["xor"]
    assert perceptron < 0.8 and mlp >= 0.95
