"""dlspec: declare a neural network in YAML; get it checked, compiled, trained and exported.

Example:
    >>> import dlspec
    >>> spec = dlspec.load("specs/lenet5.yaml")
    >>> model = dlspec.build(spec)      # a torch.fx.GraphModule named like the spec's layers

The functions below load on first use, so that `dlspec predict` (dlspec.runtime) starts
without the spec compiler and `import dlspec` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlspec.errors import DlspecError, ShapeError, SpecError, WorkError

if TYPE_CHECKING:
    from dlspec.api import build, export_spec, graphs, load, loads, shapes, train_spec, validate

__version__ = "0.1.0"
__all__ = ["build", "export_spec", "graphs", "load", "loads", "shapes", "train_spec", "validate",
           "DlspecError", "ShapeError", "SpecError", "WorkError", "__version__"]
_API = frozenset(__all__[:8])


def __getattr__(name: str) -> Any:
    if name in _API:
        from dlspec import api

        return getattr(api, name)
    raise AttributeError(f"module 'dlspec' has no attribute {name!r}")
