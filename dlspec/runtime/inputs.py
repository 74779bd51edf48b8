"""What `Predictor` feeds its model: raw inputs checked, cast, normalised and padded.

Each input is matched to the model's by name, checked per sample for shape and dtype, cast
to the model's dtype, refused when it holds NaN or infinity, and normalised with the
statistics the model was trained with (`dlspec_normalization`). A model whose tensors would
not fit in memory a batch at a time is refused before any batch is allocated.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dlspec.contract import (
    NORMALIZATION,
    Normalization,
    TensorInfo,
    format_shape,
    metadata_error,
)
from dlspec.errors import Problem, SpecError
from dlspec.memory import format_bytes
from dlspec.runtime.untrusted import MAX_ARRAY_BYTES, first_nonfinite, printable

# onnxruntime's tensor types → the numpy dtypes predict handles
ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
}

Inputs = np.ndarray | Mapping[str, Any]


def checked_inputs(infos: Sequence[TensorInfo], inputs: Inputs) -> dict[str, np.ndarray]:
    """The inputs by name, checked against the model's `infos` and cast to their dtypes."""
    given = _by_name([info.name for info in infos], inputs)
    arrays = {info.name: _checked(info, given[info.name]) for info in infos}
    for name, array in arrays.items():
        _check_finite(name, array)
    counts = {name: len(array) for name, array in arrays.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name} {count}" for name, count in counts.items())
        raise SpecError(Problem((), f"the inputs hold different numbers of samples: "
                                f"{listed}", "give every input one row per sample"))
    if not any(counts.values()):
        raise SpecError(Problem((), "there are no samples to predict"))
    return arrays


def check_batch_bytes(path: Path, tensors: Sequence[TensorInfo], batch: int | None) -> None:
    """SpecError for a tensor whose batch would not fit in the memory dlspec uses at once."""
    for info in tensors:
        known = [d for d in info.per_sample if d is not None]
        size = (batch or 1) * math.prod(known) * 4
        if size > MAX_ARRAY_BYTES:  # refused before a batch of it is ever allocated
            raise SpecError(Problem((), f"{printable(str(path))}: {info.name} is "
                                    f"{format_shape(info.shape)} ({format_bytes(size)} a "
                                    f"batch), more than fit in the "
                                    f"{format_bytes(MAX_ARRAY_BYTES)} dlspec uses at once"))


def check_statistics(path: Path, name: str, array: np.ndarray,
                     stats: Normalization | None) -> None:
    """SpecError when the model's statistics for input `name` do not fit its axes."""
    if stats is None:
        return
    axis = _statistics_axis(array.ndim, stats)
    size = 1 if axis is None else array.shape[axis]
    if len(stats.mean) not in (1, size) or (axis is not None and axis >= array.ndim):
        raise metadata_error(path, NORMALIZATION, f"gives {name} "
                             f"{len(stats.mean)} means, but its axis {axis} has "
                             f"{size} entries")


def normalized(path: Path, name: str, array: np.ndarray,
               stats: Normalization | None) -> np.ndarray:
    """`array` normalised with the model's statistics for input `name` (if it has any)."""
    if stats is None:
        return array
    view = [1] * array.ndim
    axis = _statistics_axis(array.ndim, stats)
    if axis is not None and len(stats.mean) > 1:
        view[axis] = len(stats.mean)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        mean = np.asarray(stats.mean, dtype=array.dtype).reshape(view)
        std = np.asarray(stats.std, dtype=array.dtype).reshape(view)
        values = (array - mean) / std
    if not np.isfinite(values).all():
        raise metadata_error(path, NORMALIZATION, f"turns finite values of "
                             f"{name} into NaN or infinity (mean {stats.mean[:4]}, std "
                             f"{stats.std[:4]})")
    return values


def padded(array: np.ndarray, size: int) -> np.ndarray:
    """`array` with zero rows added up to `size` (a fixed-batch model's batch)."""
    if len(array) == size:
        return array
    padding = np.zeros((size - len(array), *array.shape[1:]), dtype=array.dtype)
    return np.concatenate([array, padding])


def _by_name(names: list[str], inputs: Inputs) -> Mapping[str, Any]:
    if not isinstance(inputs, Mapping):
        if len(names) != 1:
            raise SpecError(Problem((), f"the model has {len(names)} inputs "
                                    f"({', '.join(names)}); one array cannot feed them",
                                    "pass a mapping input name → array"))
        return {names[0]: inputs}
    for name in inputs:
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise SpecError(Problem((str(name),), "the model has no such input",
                                    f"{hint}its inputs are {', '.join(names)}"))
    missing = [name for name in names if name not in inputs]
    if missing:
        raise SpecError(Problem((missing[0],), "no array given for this input",
                                f"the model's inputs are {', '.join(names)}"))
    return inputs


def _checked(info: TensorInfo, value: Any) -> np.ndarray:
    """`value` as an array of the input's dtype; SpecError when its shape or type is wrong."""
    array = np.asarray(value)
    if info.dtype not in ORT_TYPES.values():
        raise SpecError(Problem((info.name,), f"the model takes {info.dtype} values, which "
                                "predict does not handle"))
    wanted = np.dtype(info.dtype)
    if array.dtype.kind not in "biuf" or not np.can_cast(array.dtype, wanted, "same_kind"):
        raise _mismatch(info, array, _dtype_hint(wanted, array.dtype))
    expected = info.per_sample
    if array.ndim != len(info.shape) or any(
            want is not None and got != want
            for got, want in zip(array.shape[1:], expected, strict=True)):
        raise _mismatch(info, array, _shape_hint(info, array))
    with np.errstate(over="ignore", invalid="ignore"):  # beyond the dtype: refused later
        return array.astype(wanted, copy=False)


def _check_finite(name: str, array: np.ndarray) -> None:
    """SpecError naming the first sample of a float input with NaN or infinity (after the
    cast to the model's dtype, so 1e39 for a float32 input counts as infinite)."""
    sample = first_nonfinite(array) if array.dtype.kind == "f" else None
    if sample is None:
        return
    raise SpecError(Problem((name,), f"sample {sample} (counting from 0) holds "
                            f"NaN or infinite values (or values beyond {array.dtype})",
                            "predictions of NaN or infinity mean nothing: fill or drop those "
                            "values"))


def _mismatch(info: TensorInfo, array: np.ndarray, hint: str) -> SpecError:
    given = format_shape(array.shape[1:]) if array.ndim else "a single value"
    return SpecError(Problem((info.name,), f"expected {info.describe()} {info.dtype} per "
                             f"sample, got {given} {array.dtype} (an array of shape "
                             f"{format_shape(array.shape)})", hint))


def _shape_hint(info: TensorInfo, array: np.ndarray) -> str:
    expected = info.per_sample
    one_sample = array.ndim == len(expected) and all(
        want is None or got == want for got, want in zip(array.shape, expected, strict=True))
    if one_sample:
        return "for one sample, add the batch axis: array[None]"
    dims = ", ".join("?" if d is None else str(d) for d in expected)
    return f"give an array of shape (N, {dims})" if dims else "give an array of shape (N,)"


def _dtype_hint(wanted: np.dtype, given: np.dtype) -> str:
    if given.kind not in "biuf":
        return f"the values must be numbers of type {wanted}"
    if wanted.kind in "iu":
        return f"the model takes whole numbers (e.g. token ids): array.astype(np.{wanted})"
    return f"convert it: array.astype(np.{wanted})"


def _statistics_axis(ndim: int, stats: Normalization) -> int | None:
    """The axis statistics apply along: channels of images, the last axis of tables and
    sequences (as training computed them), or the metadata's own `axis`."""
    if stats.axis is not None:
        return stats.axis
    if ndim >= 4:
        return 1
    return ndim - 1 if ndim >= 2 else None
