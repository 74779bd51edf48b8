"""Names a spec uses that only its expanded network can confirm: the inputs and outputs its
data section maps, the outputs its per-output losses and metrics name.

Torch-free and file-free: `dlspec check` (also with --no-shapes) runs it on the expanded
graphs, so a misspelt output is reported before anything is read or trained.
"""

from __future__ import annotations

from dlspec.errors import Problem
from dlspec.graph import Graph
from dlspec.spec.model import Spec
from dlspec.spec.sections.data import mapping_problems, unknown_name


def naming_problems(spec: Spec, graphs: dict[str, Graph]) -> list[Problem]:
    """Every name in `data:`, `loss:` and `train.metrics` that the network does not have.

    Only a spec with one network is checked: the networks of several (GANs) read their data
    by role, and their losses are not per output.
    """
    if len(graphs) != 1:
        return []
    (graph,) = graphs.values()
    inputs, outputs = list(graph.inputs), list(graph.outputs)
    problems = mapping_problems(spec.data, inputs, outputs) if spec.data is not None else []
    if isinstance(spec.loss, dict):
        problems += [unknown_name(("loss", name), name, "output", outputs)
                     for name in spec.loss if name not in outputs]
    if isinstance(spec.train.metrics, dict):
        problems += [unknown_name(("train", "metrics", name), name, "output", outputs)
                     for name in spec.train.metrics if name not in outputs]
    return problems
