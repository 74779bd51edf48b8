"""An exported ONNX file checked three ways: `onnx.checker` (full), ONNX shape inference, and
ONNX Runtime against the PyTorch module on the same random inputs.

The runtime comparison uses batch sizes 1, 2 and 7 (where the batch axis is dynamic) and, on
every other dynamic axis, the sizes `dlspec.export.axes` chose: sizes that differ from the
example the exporter traced, because exporters are known to freeze traced sizes into Reshape
nodes, and that the network itself takes.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch

from dlspec.graph import InputDecl
from dlspec.layers.registry import Shape

BATCH_SIZES = (1, 2, 7)
_TORCH_DTYPES = {"float32": torch.float32, "int64": torch.int64, "int32": torch.int32,
                 "bool": torch.bool}


@dataclass(frozen=True)
class Case:
    """One set of input sizes to compare at."""

    batch: int
    sizes: dict[str, int]  # dynamic axis name → its size here ({} without dynamic axes)
    shapes: dict[str, Shape]  # each input's per-sample shape at these sizes


@dataclass
class Comparison:
    """ONNX Runtime against PyTorch on one set of input sizes."""

    batch: int
    # output name → (max absolute difference, max relative difference, within tolerance)
    outputs: dict[str, tuple[float, float, bool]]
    error: str | None = None  # ONNX Runtime refused to run at these sizes
    sizes: dict[str, int] = field(default_factory=dict)  # the dynamic axes' sizes

    @property
    def sequence(self) -> int | None:
        """The size of the `seq` axis, if there is one."""
        return self.sizes.get("seq")

    @property
    def passed(self) -> bool:
        """Whether every output is within tolerance."""
        return self.error is None and all(ok for _, _, ok in self.outputs.values())

    def describe(self) -> str:
        """'batch 7, seq 13: logits max abs 2.1e-07, rel 3.0e-06'."""
        sizes = ", ".join([f"batch {self.batch}",
                           *(f"{name} {size}" for name, size in self.sizes.items())])
        if self.error is not None:
            return f"{sizes}: ONNX Runtime failed: {self.error}"
        shown = "; ".join(f"{name} max abs {a:.2g}, rel {r:.2g}" + ("" if ok else " (too far)")
                          for name, (a, r, ok) in self.outputs.items())
        return f"{sizes}: {shown}"


def check_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with inferred shapes on every edge, after the full `onnx.checker` check."""
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                 data_prop=True)
    onnx.checker.check_model(inferred, full_check=True)
    return inferred


def compare(module: torch.nn.Module, model_bytes: bytes, inputs: dict[str, InputDecl],
            outputs: list[str], cases: Sequence[Case], *, atol: float, rtol: float,
            token_limit: int, seed: int = 0) -> list[Comparison]:
    """Run ONNX Runtime and `module` (in eval mode) on random inputs at every case's sizes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: a failed run is reported by the comparison
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    module.eval()
    results = []
    for case in cases:
        sample = {name: _random(decl, (case.batch, *case.shapes[name]), token_limit, generator)
                  for name, decl in inputs.items()}
        try:
            # torch.fx prints a failing forward's traceback to stderr before raising; the
            # failure is reported below, as the comparison at this size
            with torch.inference_mode(), contextlib.redirect_stderr(io.StringIO()):
                expected = module(*sample.values())
        except Exception as exc:  # noqa: BLE001 - the network itself rejects this size
            error = "PyTorch fails at this size too: " + " ".join(str(exc).split())[:200]
            results.append(Comparison(case.batch, {}, error, case.sizes))
            continue
        expected = list(expected) if isinstance(expected, tuple | list) else [expected]
        try:
            got = session.run(outputs, {name: t.numpy() for name, t in sample.items()})
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors share no base class
            error = " ".join(str(exc).split())[:300]
            results.append(Comparison(case.batch, {}, error, case.sizes))
            continue
        results.append(Comparison(case.batch, {
            name: _difference(e.float().numpy(), np.asarray(g, dtype=np.float32), atol, rtol)
            for name, e, g in zip(outputs, expected, got, strict=True)}, sizes=case.sizes))
    return results


def _random(decl: InputDecl, shape: tuple[int, ...], token_limit: int,
            generator: torch.Generator) -> torch.Tensor:
    if decl.dtype == "float32":
        return torch.randn(shape, generator=generator)
    high = 2 if decl.dtype == "bool" else token_limit
    return torch.randint(0, high, shape, generator=generator).to(_TORCH_DTYPES[decl.dtype])


def _difference(expected: np.ndarray, got: np.ndarray, atol: float,
                rtol: float) -> tuple[float, float, bool]:
    if expected.shape != got.shape:
        return float("inf"), float("inf"), False
    # NaN where PyTorch has NaN (log or sqrt of the random negative inputs), and the same
    # infinities, agree; a NaN or inf on one side only is a difference
    same = (expected == got) | (np.isnan(expected) & np.isnan(got))
    with np.errstate(invalid="ignore"):
        gap = np.where(same, 0.0, np.abs(expected - got))
    gap = np.where(np.isnan(gap), np.inf, gap)
    scale = np.maximum(np.abs(np.nan_to_num(expected)), 1e-12)
    absolute = float(gap.max()) if gap.size else 0.0
    relative = float((gap / scale).max()) if gap.size else 0.0
    return absolute, relative, bool(np.allclose(got, expected, atol=atol, rtol=rtol,
                                                equal_nan=True))
