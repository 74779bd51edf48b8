"""Layer kinds, one family per module; importing this package registers them all."""

from dlspec.layers import (  # noqa: F401  (imported for their registrations)
    activation,
    attention,
    conv,
    dense,
    learned,
    merge,
    norm,
    pool,
    recurrent,
    shortcut,
    tensor,
)
from dlspec.layers.registry import LayerKind, kind_names, lookup_kind, register

__all__ = ["LayerKind", "kind_names", "lookup_kind", "register"]
