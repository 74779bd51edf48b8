"""`task: metric_learning`: an embedding a sample, trained so that samples of one class lie
close together and samples of different classes far apart (siamese and triplet training)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from dlspec.errors import Path, Problem, SpecError
from dlspec.tasks.registry import register_task
from dlspec.tasks.supervised import SupervisedTask, with_targets

if TYPE_CHECKING:
    from pathlib import Path as FilePath

    import torch

    from dlspec.data import DataSplits
    from dlspec.graph import ShapedGraph
    from dlspec.spec.model import Spec
    from dlspec.train.engine import Run, Session


@register_task
class MetricLearning(SupervisedTask):
    """One network embeds every member of a pair or triplet (the weights are shared by
    construction); the data's classes say only which samples belong together."""

    name = "metric_learning"
    example = "specs/siamese_digits.yaml"
    summary = ("an embedding a sample: one class close together, different classes apart "
               "(contrastive, cosine_embedding or triplet loss)")
    embeds = True
    default_metrics = ("knn_accuracy",)
    # partners are drawn from the whole training split, which a process's shard is not
    data_parallel = False

    def check(self, spec: Spec, shaped: dict[str, ShapedGraph]) -> None:
        """One network with one output, a vector: the embedding."""
        if len(shaped) > 1:
            raise SpecError(Problem(("networks",), "task metric_learning trains one network, "
                                    "which embeds every member of a pair or triplet",
                                    "give one `network:`"))
        (graph,) = shaped.values()
        outputs = graph.outputs()
        if len(outputs) != 1:
            raise SpecError(Problem(("outputs",), "task metric_learning trains one output, the "
                                    f"embedding, but the network has {len(outputs)} ("
                                    + ", ".join(outputs) + ")", "keep one output"))
        ((name, info),) = outputs.items()
        if len(info.shape) != 1:
            from dlspec.graph import format_shape

            raise SpecError(Problem(_output_path(spec, graph, name), f"task metric_learning "
                                    f"embeds a sample as a vector (D,), but output {name} is "
                                    f"{format_shape(tuple(info.shape))}",
                                    "end the network with `flatten` and a `linear: D`"))
        if spec.data is not None and spec.data.pairs is not None:
            raise SpecError(Problem(("data", "pairs"), "task metric_learning draws each "
                                    "sample's partners itself, from a labelled dataset",
                                    "remove pairs:"))

    def start(self, run: Run) -> Session:
        """The metric-learning session: partners drawn each batch, k-NN accuracy measured."""
        from dlspec.train.metric_learning import start_metric_learning

        return start_metric_learning(self, run)

    def load(self, spec: Spec, shaped: ShapedGraph, base: FilePath) -> DataSplits:
        """Every split with its class indices (N,) as the target of the embedding (the data
        layer refuses targets that are not one class a sample); the class names are set
        aside (the output holds no classes)."""
        from dlspec.data import load_data

        assert spec.data is not None
        (output,) = shaped.graph.outputs
        data = load_data(spec.data, spec.task, dict(shaped.graph.inputs),
                         seed=spec.train.seed, base_dir=base)
        source = data.source
        known = data.train.target
        if len(known.reshape(-1).unique()) < 2:
            raise SpecError(Problem(("data",), f"the training split of {source} holds one "
                                    "class: there is no sample of another class to push away",
                                    "use data of two classes or more"))
        labelled = with_targets(data, lambda split: {output: _classes(split.target)})
        return replace(labelled, labels=None, target_labels={output: None})


def _classes(target: torch.Tensor) -> torch.Tensor:
    """Class indices (N,) int64 of (N,) or (N, 1) whole numbers."""
    import torch

    return target.reshape(-1).to(torch.int64)


def _output_path(spec: Spec, shaped: ShapedGraph, output: str) -> Path:
    """Where an output is written: its `outputs:` entry, else its last layer."""
    if spec.outputs is not None:
        return ("outputs", output)
    last = shaped.graph.outputs[output]
    node = next((n for n in shaped.graph.nodes if n.name == last), None)
    return node.path if node is not None else ()
