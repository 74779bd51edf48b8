"""`task: reconstruction`: outputs that reproduce the inputs (autoencoders)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlspec.errors import Problem, SpecError
from dlspec.tasks.registry import register_task
from dlspec.tasks.supervised import SupervisedTask

if TYPE_CHECKING:
    from dlspec.data import DataSplits


@register_task
class Reconstruction(SupervisedTask):
    """The network's one input is its target: the data's labels are set aside."""

    name = "reconstruction"
    example = "specs/autoencoder.yaml"
    summary = "outputs that reproduce the inputs (autoencoders; labels set aside)"
    default_metrics = ("mse",)

    def prepare_data(self, data: DataSplits) -> DataSplits:
        """Every split with its input as its target."""
        from dataclasses import replace

        from dlspec.data import TensorSet

        if len(data.train.inputs) != 1:
            raise SpecError(Problem(("inputs",), "task reconstruction rebuilds one input, but "
                                    f"the network reads {len(data.train.inputs)}"))

        def rebuilt(split: TensorSet | None) -> TensorSet | None:
            if split is None:
                return None
            ((name, x),) = split.inputs.items()
            return TensorSet({name: x}, {name: x})

        train = rebuilt(data.train)
        assert train is not None
        return replace(data, train=train, val=rebuilt(data.val), test=rebuilt(data.test),
                       num_classes=None, labels=None, target_normalization=None)
