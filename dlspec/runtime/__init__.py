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
    from dlspec.runtime.metadata import ImageSpec, Metadata, Normalization, Task, TensorInfo
    from dlspec.runtime.predictor import Classification, Predictor, resolve_providers
    from dlspec.runtime.readers import Samples, read_inputs
    from dlspec.runtime.writers import Table, prediction_table, write_table

_HOMES = {
    "ImageSpec": "metadata", "Metadata": "metadata", "Normalization": "metadata",
    "Task": "metadata", "TensorInfo": "metadata",
    "Classification": "predictor", "Predictor": "predictor", "resolve_providers": "predictor",
    "Samples": "readers", "read_inputs": "readers",
    "Table": "writers", "prediction_table": "writers", "write_table": "writers",
}

__all__ = [
    "Classification", "ImageSpec", "Metadata", "Normalization", "Predictor", "Samples", "Table",
    "Task", "TensorInfo", "prediction_table", "read_inputs", "resolve_providers", "write_table",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dlspec.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dlspec.runtime.{home}"), name)
