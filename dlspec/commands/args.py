"""Argument types and arguments that several commands share."""

from __future__ import annotations

import argparse
from pathlib import Path


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def axes(text: str) -> list[str]:
    """argparse type: dynamic ONNX axes, `batch` or `batch,seq`."""
    names = [axis.strip() for axis in text.split(",") if axis.strip()]
    unknown = [axis for axis in names if axis not in ("batch", "seq")]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown axis {unknown[0]!r}; the axes are batch "
                                         "and seq")
    return names


def add_variant_argument(parser: argparse.ArgumentParser) -> None:
    """--variant: one of the spec's `variants:`."""
    parser.add_argument("--variant", help="use this variant of the spec (its `variants:`)")


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    """--set KEY=VALUE (repeatable): a value of the spec, as if the file said it."""
    parser.add_argument("--set", action="append", dest="overrides", metavar="KEY=VALUE",
                        help="set a value of the spec, e.g. --set optimizer.lr=1e-3 --set "
                        "train.epochs=5 (KEY: a dotted path; VALUE: YAML); repeatable")


def add_network_argument(parser: argparse.ArgumentParser) -> None:
    """--network: one network of a multi-network spec."""
    parser.add_argument("--network", help="which network of a multi-network spec")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments `train` and `build` share: the spec, its variant and overrides, the run
    folder (and whether to resume or replace the run in it), epochs, devices."""
    parser.add_argument("spec", type=Path)
    add_variant_argument(parser)
    add_override_argument(parser)
    parser.add_argument("--out", type=Path, help="run folder (default runs/<spec name>, or "
                        "runs/<spec name>-2, -3, ... when that holds a run)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run folder's last complete checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run the run folder holds")
    parser.add_argument("--epochs", type=positive_int, help="override train.epochs")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"],
                        help="override train.device")
    parser.add_argument("--nproc", type=positive_int, default=1, metavar="N",
                        help="train data-parallel in N processes (DistributedDataParallel "
                        "through torchrun; gloo on CPU, one GPU each with nccl)")
