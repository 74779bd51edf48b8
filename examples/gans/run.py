"""Four adversarial specs, built with the CLI, and what each learnt.

Runs `dlspec build` on specs/wgan_gp.yaml (8 Gaussians on a ring), specs/dcgan.yaml
(digits), specs/cgan.yaml (digits, conditioned on the digit) and specs/cyclegan.yaml
`--variant digits` (digits ↔ colour-inverted digits), each in a subprocess, and reads the
numbers of the last epoch (CycleGAN: of the test images) from the run's metrics.json: mode
coverage for WGAN-GP, the digits classifier's measures for the DCGANs, round-trip errors and
the domain classifier's verdict for CycleGAN. Copies each run's last picture of samples into
OUT/pictures/ and prints one row per spec: its epochs, wall seconds and numbers.
Usage: python examples/gans/run.py [--specs NAME ...] [--epochs N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# spec → (its variant, the numbers shown, the picture that shows it best)
SPECS: dict[str, tuple[str | None, tuple[str, ...], str]] = {
    "wgan_gp": (None, ("modes_covered", "high_quality_fraction"), "epoch_{epoch:03d}.png"),
    "dcgan": (None, ("digit_confidence", "digit_class_min", "digit_class_max"),
              "epoch_{epoch:03d}.png"),
    "cgan": (None, ("digit_label_accuracy", "digit_confidence", "digit_class_min",
                    "digit_class_max"), "epoch_{epoch:03d}.png"),
    "cyclegan": ("digits", ("cycle_error_a", "cycle_error_b", "translated_as_b",
                            "translated_as_a"), "a_to_b_{epoch:03d}.png"),
}


def build(name: str, run: Path, epochs: int | None) -> float:
    """`dlspec build specs/NAME.yaml` into `run`; the wall seconds it took (exits on failure)."""
    variant = SPECS[name][0]
    command = [sys.executable, "-m", "dlspec", "build", f"specs/{name}.yaml", "--out", str(run),
               "--overwrite",
               *(["--variant", variant] if variant else []),
               *(["--epochs", str(epochs)] if epochs is not None else [])]
    print(f"$ dlspec {' '.join(command[3:])}", file=sys.stderr, flush=True)
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"dlspec build {name} failed (exit {done.returncode}):\n{done.stderr}")
    return time.perf_counter() - began


def numbers(name: str, run: Path) -> tuple[int, dict[str, float]]:
    """The run's epochs and the spec's numbers: of the test images where there are any,
    else of the last epoch."""
    metrics = json.loads((run / "metrics.json").read_text())
    last = metrics["epochs"][-1]
    measured = metrics.get("test") or last
    return int(last["epoch"]), {key: measured[key] for key in SPECS[name][1] if key in measured}


def main() -> None:
    """Build each spec, print its row, keep its picture."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--specs", nargs="+", choices=list(SPECS), default=list(SPECS))
    parser.add_argument("--epochs", type=int, help="override every spec's epochs")
    parser.add_argument("--out", type=Path, help="run folders and pictures (default: a "
                        "temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="gans-"))
    pictures = out / "pictures"
    pictures.mkdir(parents=True, exist_ok=True)
    print("spec epochs seconds numbers")
    for name in args.specs:
        run = out / name
        seconds = build(name, run, args.epochs)
        epochs, measured = numbers(name, run)
        shown = ",".join(f"{key}={value:.4g}" for key, value in measured.items())
        print(f"{name} {epochs} {seconds:.1f} {shown}", flush=True)
        picture = run / "samples" / SPECS[name][2].format(epoch=epochs)
        shutil.copy(picture, pictures / f"{name}.png")
    print(f"runs and pictures in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
