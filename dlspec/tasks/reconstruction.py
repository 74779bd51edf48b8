"""`task: reconstruction`: outputs that reproduce the inputs (autoencoders)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from dlspec.errors import Problem, SpecError
from dlspec.tasks.registry import register_task
from dlspec.tasks.supervised import SupervisedTask, with_targets

if TYPE_CHECKING:
    from pathlib import Path

    from dlspec.data import DataSplits
    from dlspec.graph import ShapedGraph
    from dlspec.spec.model import Spec


@register_task
class Reconstruction(SupervisedTask):
    """The network's one input is its target: the data's labels are set aside."""

    name = "reconstruction"
    example = "specs/autoencoder.yaml"
    summary = "outputs that reproduce the inputs (autoencoders; labels set aside)"
    default_metrics = ("mse",)

    def load(self, spec: Spec, shaped: ShapedGraph, base: Path) -> DataSplits:
        """Every split with its one input as the target of the output shaped like it (the
        data's own labels set aside); other outputs, e.g. a bottleneck's `features`, have no
        target."""
        from dlspec.data import load_data
        from dlspec.graph import format_shape

        assert spec.data is not None
        inputs = dict(shaped.graph.inputs)
        if len(inputs) != 1:
            raise SpecError(Problem(("inputs",), "task reconstruction rebuilds one input, but "
                                    f"the network reads {len(inputs)}"))
        ((source, declared),) = inputs.items()
        outputs = shaped.outputs()
        alike = [name for name, info in outputs.items()
                 if tuple(info.shape) == tuple(declared.shape)]
        if len(alike) != 1:
            said = ", ".join(f"{name} {format_shape(tuple(info.shape))}"
                             for name, info in outputs.items())
            raise SpecError(Problem(("outputs",), f"task reconstruction trains the output "
                                    f"shaped like input {source} "
                                    f"{format_shape(tuple(declared.shape))}; "
                                    + ("none is" if not alike else "several are")
                                    + f" ({said})", "reshape the last layer to the input's "
                                    "shape" if not alike else None))
        data = load_data(spec.data, spec.task, inputs, seed=spec.train.seed, base_dir=base)
        rebuilt = with_targets(data, lambda split: {alike[0]: split.tensors()[source]})
        return replace(rebuilt, num_classes=None, labels=None, target_normalization=None,
                       target_classes={alike[0]: None}, target_labels={alike[0]: None})
