"""dlspec: declare a neural network in YAML; get it checked, compiled, trained and exported.

Example:
    >>> import dlspec
    >>> spec = dlspec.load("specs/lenet5.yaml")
    >>> model = dlspec.build(spec)      # a torch.fx.GraphModule named like the spec's layers
"""

from dlspec.api import build, export_spec, graphs, load, loads, shapes, train_spec, validate
from dlspec.errors import DlspecError, ShapeError, SpecError, WorkError

__version__ = "0.1.0"
__all__ = ["build", "export_spec", "graphs", "load", "loads", "shapes", "train_spec", "validate",
           "DlspecError", "ShapeError", "SpecError", "WorkError", "__version__"]
