"""The library's entry points: load → expand → infer shapes → compile.

Every function raises a DlspecError whose problems carry file locations.
Nothing here imports torch until shapes or modules are asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dlspec.errors import DlspecError, Problem, SpecError
from dlspec.graph import Graph, ShapedGraph, infer_shapes
from dlspec.spec.expand import expand
from dlspec.spec.load import Document, load_yaml_file, load_yaml_text
from dlspec.spec.model import NetworkPart, Spec
from dlspec.spec.validation import problems_from_validation

if TYPE_CHECKING:
    from torch import fx


def load(path: str | Path) -> Spec:
    """Read and validate a spec file.

    Example:
        >>> spec = dlspec.load("specs/lenet5.yaml")
        >>> spec.name
        'lenet5'
    """
    return validate(load_yaml_file(path))


def loads(text: str, file: str = "<string>") -> Spec:
    """Read and validate a spec from YAML text."""
    return validate(load_yaml_text(text, file))


def validate(document: Document) -> Spec:
    """Validate a loaded YAML document against the spec format."""
    with located(document):
        if not isinstance(document.data, dict):
            raise SpecError(Problem((), "a spec is a mapping with keys such as dlspec, name, "
                                    "inputs and network"))
        try:
            spec = Spec.model_validate(document.data)
        except ValidationError as exc:
            problems = problems_from_validation(exc, document.data, Spec)
            raise SpecError(problems + _wiring_problems(document.data)) from None
    spec._document = document
    return spec


def _wiring_problems(data: dict[str, Any]) -> list[Problem]:
    """Expansion problems of a spec whose other sections failed, so all are reported at once."""
    part = {k: v for k, v in data.items() if k in NetworkPart.model_fields}
    try:
        expand(NetworkPart.model_validate(part))
    except ValidationError:
        return []  # already reported by the whole-spec validation
    except SpecError as exc:
        return exc.problems
    return []


def graphs(spec: Spec) -> dict[str, Graph]:
    """Expand blocks, repeats and wiring: one Graph per network."""
    with located(spec.document):
        return expand(spec)


def shapes(spec: Spec, count_macs: bool = False) -> dict[str, ShapedGraph]:
    """Graphs with every tensor's shape inferred (imports torch); MACs on request."""
    with located(spec.document):
        return {name: infer_shapes(graph, count_macs) for name, graph in expand(spec).items()}


def build(spec: Spec | str | Path, network: str | None = None) -> fx.GraphModule:
    """Compile a spec (or spec file) into a torch.fx.GraphModule.

    Example:
        >>> model = dlspec.build("specs/lenet5.yaml")
        >>> model(torch.randn(1, 1, 32, 32)).shape
        torch.Size([1, 10])
    """
    from dlspec.compile import compile_graph

    if not isinstance(spec, Spec):
        spec = load(spec)
    networks = graphs(spec)
    if network is None:
        if len(networks) > 1:
            raise SpecError(Problem((), f"spec {spec.name} has several networks "
                                    f"({', '.join(networks)}); say which one to build"))
        network = next(iter(networks))
    if network not in networks:
        raise SpecError(Problem((), f"spec {spec.name} has no network {network!r}; it has "
                                f"{', '.join(networks)}"))
    with located(spec.document):
        return compile_graph(infer_shapes(networks[network]))


def train_spec(spec: Spec | str | Path, out: str | Path | None = None, *,
          epochs: int | None = None, device: str | None = None, resume: bool = False,
          callbacks: Any = None) -> Any:
    """Train a spec's network on its data; write the run folder (default runs/<name>).

    (Not `dlspec.train`: that name is the `dlspec.train` package.)

    Example:
        >>> result = dlspec.train_spec("specs/lenet5.yaml", epochs=5)
        >>> result.test["accuracy"]
        0.97...
    """
    from dlspec.train.run import train_network

    if not isinstance(spec, Spec):
        spec = load(spec)
    networks = graphs(spec)
    if len(networks) > 1:
        raise SpecError(Problem(("networks",), "training several networks together (GANs) "
                                "is not available yet"))
    (graph,) = networks.values()
    run_dir = Path(out) if out is not None else Path("runs") / spec.name
    with located(spec.document):
        return train_network(spec, infer_shapes(graph), run_dir, epochs=epochs, device=device,
                             resume=resume, callbacks=callbacks)


@contextmanager
def located(document: Document | None) -> Iterator[None]:
    """Give every problem raised inside the block its file:line:column."""
    try:
        yield
    except DlspecError as exc:
        if document is not None:
            for problem in exc.problems:
                if problem.location is None:
                    problem.location = document.locate(problem.path, problem.on_key)
                if problem.used_at is not None:
                    problem.used_at_location = document.locate(problem.used_at)
            exc.problems.sort(key=_position)
        raise


def _position(problem: Problem) -> tuple[int, int]:
    where = problem.location
    return (where.line, where.column) if where else (0, 0)


