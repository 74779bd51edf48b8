"""The `dlspec predict` command: an exported model run on files of inputs, without torch.

`add_parser` registers it with the main CLI. Only argparse is imported up front, so
registering the command costs the other commands nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from dlspec.commands.args import positive_int

DESCRIPTION = ("Run an exported ONNX model with onnxruntime (torch is not imported) on an "
               ".npy, .npz or .csv file or a folder of images, and write one row per sample: "
               "class, probability and per-class probabilities for classifiers, the raw "
               "outputs otherwise (-o FILE.npz: each output's raw array, named after it; "
               "FILE.npy: the one output's). Inputs are normalised with the statistics in "
               "the model; NaN or infinite inputs are refused. A CSV one column too wide "
               "for the model, that column being its labels (the run's label column, or "
               "label, target or y), has it left out. A segmentation model writes "
               "masks (PNG files, or -o masks.npy), a CycleGAN generator the translated "
               "images (PNG files named after the inputs and keeping their sub-folders, or -o "
               "FILE.npy). "
               "With --sample N, a GAN generator draws N new samples instead.")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `predict` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("predict", help="run an exported ONNX model on inputs "
                                 "(no torch)", description=DESCRIPTION)
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `predict`, and `run` as the parser's action."""
    parser.add_argument("model", type=Path, help="an .onnx file (from `dlspec export`, or "
                        "any ONNX model), or a run folder holding model.onnx")
    parser.add_argument("input", type=Path, nargs="?", help=".npy, .npz or .csv file, or a "
                        "folder of images (searched recursively)")
    parser.add_argument("--sample", type=positive_int, metavar="N",
                        help="a GAN generator: draw N new samples instead of reading inputs "
                        "(images as PNG files in the -o folder, default samples/; other "
                        "samples as one .npy or .csv file, default samples.npy)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the latent noise of --sample (default 0)")
    parser.add_argument("--label", metavar="CLASS",
                        help="a conditional GAN generator: --sample makes this class (index "
                        "or name); default every class in turn")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write FILE.csv or FILE.json (a row per sample, columns per "
                        "output), or FILE.npz / FILE.npy (the raw output arrays); default: "
                        "CSV on stdout")
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="auto",
                        help="onnxruntime execution provider (default auto: CUDA if "
                        "available, else CPU)")
    parser.add_argument("--batch-size", type=positive_int, default=256, metavar="N",
                        help="samples per model call (default 256)")
    parser.add_argument("--threads", type=positive_int, metavar="N",
                        help="onnxruntime intra-op threads (default: onnxruntime's choice)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Predict, write the table, print a one-line summary to stderr; returns the exit code."""
    from dlspec.runtime.predictor import Predictor
    from dlspec.runtime.readers import label_columns_beside, read_inputs
    from dlspec.runtime.untrusted import excerpt, printable
    from dlspec.runtime.writers import (
        check_arrays_output,
        check_output,
        output_format,
        prediction_table,
        write_arrays,
        write_table,
    )
    from dlspec.tasks import task_has

    if (args.input is None) == (args.sample is None):
        from dlspec.errors import SpecError

        raise SpecError("predict needs an INPUT file or folder, or --sample N for a generator "
                        "(not both)")
    if args.sample is not None:
        return _sample(args)
    if args.label is not None:
        from dlspec.errors import SpecError

        raise SpecError("--label chooses the class of --sample N; it needs --sample")
    start = time.perf_counter()
    predictor = Predictor(args.model, args.provider, threads=args.threads)
    task = predictor.metadata.task
    if task is not None and task_has(task.type, "classifies_pixels"):
        return _segment(args, predictor, start)
    if predictor.metadata.translation is not None:
        return _translate(args, predictor, start)
    arrays = args.output is not None and output_format(args.output) in ("npy", "npz")
    if arrays:
        check_arrays_output(args.output, [o.name for o in predictor.outputs])
    elif args.output is not None:
        check_output(args.output, folder=False)
    columns = (label_columns_beside(predictor.path) if args.input.suffix.lower() == ".csv"
               else ())
    samples = read_inputs(args.input, predictor.inputs, predictor.metadata.images,
                          label_columns=columns)
    if samples.labels is not None:
        print(f"{printable(str(args.input))}: left out column {excerpt(samples.labels.column)}, "
              "the labels (the model does not take them)", file=sys.stderr)
    model_start = time.perf_counter()
    outputs = predictor.predict(samples.arrays, batch_size=args.batch_size)
    model_seconds = time.perf_counter() - model_start
    if arrays:
        write_arrays(outputs, args.output)
    else:
        write_table(prediction_table(predictor, outputs, samples.names), args.output)
    wrote = f"; wrote {args.output}" if args.output else ""
    print(f"predicted {len(samples):,} samples with {predictor.path.name} on "
          f"{predictor.provider} in {time.perf_counter() - start:.2f} s "
          f"(model {model_seconds * 1000:.1f} ms){wrote}", file=sys.stderr)
    return 0


def _segment(args: argparse.Namespace, predictor: Any, start: float) -> int:
    """A segmentation model: a mask per sample, as PNG files or one .npy array."""
    from dlspec.runtime.masks import class_maps, write_masks
    from dlspec.runtime.readers import read_inputs

    _check_images_output(args.output, "masks")
    samples = read_inputs(args.input, predictor.inputs, predictor.metadata.images)
    outputs = predictor.predict(samples.arrays, batch_size=args.batch_size)
    logits = outputs[predictor.outputs[0].name]
    masks = class_maps(logits)
    classes = max(logits.shape[1], 2)
    paths = write_masks(masks, classes, args.output, samples.names)
    where = str(paths[0].parent) + "/" if len(paths) > 1 or args.output is None or \
        args.output.suffix.lower() != ".npy" else str(paths[0])
    print(f"segmented {len(masks):,} samples ({masks.shape[1]}×{masks.shape[2]} masks, "
          f"{classes} classes) with {predictor.path.name} on {predictor.provider} in "
          f"{time.perf_counter() - start:.2f} s; wrote {where}", file=sys.stderr)
    return 0


def _translate(args: argparse.Namespace, predictor: Any, start: float) -> int:
    """A CycleGAN generator: the input images translated into the other domain, as PNG
    files named after the inputs (or one .npy array)."""
    from dlspec.runtime.readers import read_inputs
    from dlspec.runtime.sampling import as_data, write_samples

    _check_images_output(args.output, "translated")
    samples = read_inputs(args.input, predictor.inputs, predictor.metadata.images)
    outputs = predictor.predict(samples.arrays, batch_size=args.batch_size)
    translated = as_data(outputs[predictor.outputs[0].name],
                         predictor.metadata.translation.output_normalization, images=True)
    paths = write_samples(translated, args.output, True, samples.names, folder="translated")
    where = str(paths[0]) if len(paths) == 1 and paths[0].suffix == ".npy" else \
        str(paths[0].parent) + "/"
    print(f"translated {len(translated):,} images with {predictor.path.name} on "
          f"{predictor.provider} in {time.perf_counter() - start:.2f} s; wrote {where}",
          file=sys.stderr)
    return 0


def _check_images_output(output: Path | None, default: str) -> None:
    """Before the model runs: `-o FILE.npy` must be a writable file, any other -o (or the
    default folder) a writable folder."""
    from dlspec.runtime.writers import check_output

    is_file = output is not None and output.suffix.lower() == ".npy"
    check_output(output or Path(default), folder=not is_file)


def _sample(args: argparse.Namespace) -> int:
    """--sample N: draw from a generator, write the samples, say where they went."""
    from dlspec.runtime.predictor import Predictor
    from dlspec.runtime.sampling import draw_samples, generator_of, write_samples

    start = time.perf_counter()
    predictor = Predictor(args.model, args.provider, threads=args.threads)
    samples = draw_samples(predictor, args.sample, args.seed, args.batch_size, args.label)
    paths = write_samples(samples, args.output, generator_of(predictor).images)
    where = str(paths[0].parent) + "/" if len(paths) > 1 else str(paths[0])
    print(f"sampled {len(samples):,} from {predictor.path.name} on {predictor.provider} in "
          f"{time.perf_counter() - start:.2f} s; wrote {where}", file=sys.stderr)
    return 0
