"""Deployment runtime: exported ONNX models run with onnxruntime and numpy, never torch.

    >>> from dlspec.runtime import Predictor
    >>> predictor = Predictor("runs/lenet5/model.onnx")         # provider "auto"
    >>> predictor.classify(images).classes                      # images: (N, 1, 32, 32)

Names are imported on first use, so `import dlspec.runtime` (and registering the `predict`
command) loads neither numpy nor onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlspec.contract import ImageSpec, Metadata, Normalization, Task, TensorInfo
    from dlspec.runtime.predictor import Classification, Predictor, resolve_providers
    from dlspec.runtime.readers import Samples, read_inputs
    from dlspec.runtime.writers import Table, prediction_table, write_table

_CONTRACT, _PREDICTOR = "dlspec.contract", "dlspec.runtime.predictor"
_READERS, _WRITERS = "dlspec.runtime.readers", "dlspec.runtime.writers"
_HOMES = {  # name → the module that defines it (the metadata types: the ONNX contract)
    "ImageSpec": _CONTRACT, "Metadata": _CONTRACT, "Normalization": _CONTRACT,
    "Task": _CONTRACT, "TensorInfo": _CONTRACT,
    "Classification": _PREDICTOR, "Predictor": _PREDICTOR, "resolve_providers": _PREDICTOR,
    "Samples": _READERS, "read_inputs": _READERS,
    "Table": _WRITERS, "prediction_table": _WRITERS, "write_table": _WRITERS,
}

__all__ = [
    "Classification", "ImageSpec", "Metadata", "Normalization", "Predictor", "Samples", "Table",
    "Task", "TensorInfo", "prediction_table", "read_inputs", "resolve_providers", "write_table",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dlspec.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
