"""dlspec: declare a neural network in YAML; get it checked, compiled, trained and exported.

Example:
    >>> import dlspec
    >>> spec = dlspec.load("specs/lenet5.yaml")
    >>> model = dlspec.compile_spec(spec)   # a torch.fx.GraphModule named like the spec's layers
    >>> result = dlspec.build_run(spec)     # check → train → evaluate → export → diagram

The functions below load on first use, so that `dlspec predict` (dlspec.runtime) starts
without the spec compiler and `import dlspec` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlspec.errors import DlspecError, ShapeError, SpecError, WorkError

if TYPE_CHECKING:
    from dlspec.api import (
        build,
        compile_spec,
        export_spec,
        graphs,
        load,
        loads,
        shapes,
        train_spec,
        validate,
    )
    from dlspec.pipeline import BuildResult, build_run

__version__ = "0.1.0"
__all__ = ["build_run", "BuildResult", "compile_spec", "export_spec", "graphs", "load", "loads",
           "shapes", "train_spec", "validate", "build", "DlspecError", "ShapeError",
           "SpecError", "WorkError", "__version__"]
# each name is loaded on first use from the module that defines it (`build`: deprecated)
_HOMES = {"build_run": "dlspec.pipeline", "BuildResult": "dlspec.pipeline"} | {
    name: "dlspec.api" for name in ("compile_spec", "export_spec", "graphs", "load", "loads",
                                    "shapes", "train_spec", "validate", "build")}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is not None:
        import importlib

        return getattr(importlib.import_module(home), name)
    raise AttributeError(f"module 'dlspec' has no attribute {name!r}")
