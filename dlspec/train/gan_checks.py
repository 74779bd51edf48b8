"""What `task: gan` asks of a spec's networks, checked with their shapes (`dlspec check`).

A GAN spec has exactly one network whose name contains `generator` and one whose name
contains `discriminator` (or `critic`). The generator reads latent noise — float inputs,
each optionally with `distribution: normal | uniform` — and its output is what the
discriminator reads: one input of the same shape. The discriminator outputs raw scores:
every GAN objective applies its own squashing, so a final sigmoid is an error (for the
Wasserstein objectives it would also bound the critic).

Before training (they need the data or are about training only): supervised-training
settings a GAN run does not honour are errors rather than silently ignored
(`check_settings`), and a generator ending in tanh or sigmoid must face real samples in its
range (`check_range`). Imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlspec.errors import Path, Problem, SpecError
from dlspec.graph import Graph, ShapedGraph
from dlspec.layers.registry import format_shape
from dlspec.spec.model import Spec

if TYPE_CHECKING:
    from dlspec.data import DataSplits

_SQUASHING = ("sigmoid", "softmax", "log_softmax", "log_sigmoid", "tanh")
_RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}
GAN_OBJECTIVES = ("minimax", "non_saturating", "least_squares", "hinge", "wasserstein",
                  "wasserstein_gp")


def gan_roles(spec: Spec, names: list[str]) -> tuple[str, str]:
    """The names of the generator and the discriminator; SpecError when they are unclear."""
    if spec.networks is None:
        raise SpecError(Problem(("task",), "task gan trains a generator against a "
                                "discriminator, but the spec declares one `network:`",
                                "declare both under `networks:`, e.g. networks: {generator: "
                                "..., discriminator: ...}"))
    generators = [n for n in names if "generator" in n]
    discriminators = [n for n in names if "discriminator" in n or "critic" in n]
    problems = []
    for role, found in (("generator", generators), ("discriminator", discriminators)):
        if len(found) != 1:
            said = f"found {', '.join(found)}" if found else f"found {', '.join(names)}"
            problems.append(Problem(("networks",), f"task gan needs exactly one network whose "
                                    f"name contains {role!r}; {said}",
                                    "name them `generator` and `discriminator`"))
    if problems:
        raise SpecError(problems)
    return generators[0], discriminators[0]


def check_gan(spec: Spec, shaped: dict[str, ShapedGraph]) -> None:
    """Every problem of a `task: gan` spec's networks, raised together as one SpecError."""
    generator_name, discriminator_name = gan_roles(spec, list(shaped))
    generator, discriminator = shaped[generator_name], shaped[discriminator_name]
    problems = _latent_problems(spec, generator_name, discriminator_name)
    if spec.loss is not None and spec.loss.type not in GAN_OBJECTIVES:
        problems.append(Problem(("loss",), f"task gan trains with a GAN objective, not "
                                f"{spec.loss.type}", f"use one of {', '.join(GAN_OBJECTIVES)}"))
    problems += _pair_problems(spec, generator, discriminator)
    last = last_node_kind(discriminator.graph)
    if last is not None and last[0] in _SQUASHING:
        problems.append(_squashed_scores(spec, discriminator_name, *last))
    if problems:
        raise SpecError(problems)


def last_node_kind(graph: Graph) -> tuple[str, str, Path] | None:
    """The kind, name and spec path of the layer a single-output network ends in."""
    if len(graph.outputs) != 1:
        return None
    (name,) = graph.outputs.values()
    node = next((n for n in graph.nodes if n.name == name), None)
    return (node.kind, node.name, node.path) if node is not None else None


def _latent_problems(spec: Spec, generator: str, discriminator: str) -> list[Problem]:
    assert spec.networks is not None
    problems = []
    for name, decl in spec.networks[generator].inputs.items():
        if decl.dtype != "float32":
            problems.append(Problem(
                ("networks", generator, "inputs", name, "dtype"), f"the generator's input "
                f"{name} is {decl.dtype}; its latent noise is float32",
                "conditional GANs (class-label inputs) are not supported yet"))
    for network, net in spec.networks.items():
        if network == generator:
            continue
        for name, decl in net.inputs.items():
            if decl.distribution is not None:
                problems.append(Problem(
                    ("networks", network, "inputs", name, "distribution"),
                    f"`distribution` says how a generator's latent noise is drawn; {network} "
                    f"is not the generator ({generator})", "remove it"))
    if len(spec.networks[discriminator].inputs) != 1:
        problems.append(Problem(("networks", discriminator, "inputs"), "the discriminator "
                                "reads one input: a real or a generated sample"))
    return problems


def _pair_problems(spec: Spec, generator: ShapedGraph, discriminator: ShapedGraph
                   ) -> list[Problem]:
    outputs = generator.outputs()
    name = generator.graph.name
    if len(outputs) != 1:
        return [Problem(("networks", name, "outputs"), "the generator has "
                        f"{len(outputs)} outputs; it makes one sample")]
    (made,) = outputs.values()
    problems = []
    for input_name, decl in discriminator.graph.inputs.items():
        if tuple(decl.shape) != tuple(made.shape):
            last = last_node_kind(generator.graph)
            path: Path = last[2] if last is not None else ("networks", name)
            problems.append(Problem(
                path, "the generator's output is "
                f"{format_shape(tuple(made.shape))} per sample, but the discriminator "
                f"({discriminator.graph.name}) reads {input_name} as "
                f"{format_shape(tuple(decl.shape))}", "make them the same shape"))
    return problems


def _squashed_scores(spec: Spec, discriminator: str, kind: str, node: str,
                     path: Path) -> Problem:
    loss = spec.loss.type if spec.loss is not None else "non_saturating"
    if loss in ("wasserstein", "wasserstein_gp"):
        why = (f"a {loss} critic's score is unbounded (it estimates a distance); a final "
               f"{kind} bounds it and the critic stops learning")
    else:
        why = (f"the {loss} objective takes raw scores (logits) and applies the sigmoid "
               f"itself; a final {kind} would squash them twice")
    return Problem(path, f"{node}: the discriminator ({discriminator}) ends in a {kind}: "
                   f"{why}", f"remove the final {kind}")


# settings of supervised training that GAN training does not honour (yet): an error, never
# silently ignored
_UNSUPPORTED = {
    ("train", "early_stopping"): "early stopping watches a validation metric; a GAN has none",
    ("train", "metrics"): "a GAN's metrics are built in (losses, mode coverage, digits)",
    ("train", "grad_clip"): "gradient clipping is not available for GANs yet",
    ("train", "amp"): "mixed precision is not available for GANs yet",
    ("train", "precision"): "mixed precision is not available for GANs yet",
    ("train", "compile"): "torch.compile is not available for GANs yet",
    ("train", "log_grad_norms"): "gradient norms are not logged for GANs yet",
    ("augment",): "augmentation is not available for GANs yet",
    ("transfer",): "starting from trained weights is not available for GANs yet",
}


def check_settings(spec: Spec) -> None:
    """SpecError naming each training setting that task gan does not honour."""
    problems = []
    for path, why in _UNSUPPORTED.items():
        owner: Any = spec.train if path[0] == "train" else spec
        if path[-1] in owner.model_fields_set and getattr(owner, path[-1]) not in (
                None, False, "fp32"):
            problems.append(Problem(path, f"task gan: {why}", "remove it"))
    if problems:
        raise SpecError(problems)


def check_range(spec: Spec, generator: ShapedGraph, data: DataSplits) -> None:
    """A generator ending in tanh (sigmoid) makes values in [-1, 1] ([0, 1]): real samples
    outside that range could never be matched, and the discriminator would win at once;
    real images must span most of it."""
    last = last_node_kind(generator.graph)
    if last is None or last[0] not in _RANGES:
        return
    low, high = _RANGES[last[0]]
    (real,) = data.train.inputs.values()
    lowest, highest = real.min().item(), real.max().item()
    inside = lowest >= low - 1e-3 and highest <= high + 1e-3
    # images spanning only part of the range (pixels in [0, 1] against tanh's [-1, 1]) are
    # the usual slip: the generator would spend half its range on values never real
    spans = not data.image_inputs or (highest - lowest) >= 0.75 * (high - low)
    if inside and spans:
        return
    normalize = spec.data.normalize if spec.data is not None else None
    hint = ("normalize: {mean: [0.5], std: [0.5]} maps pixels in [0, 1] to [-1, 1]"
            if last[0] == "tanh" else "scale the data to [0, 1], or end the generator in "
            "the activation whose range the data has")
    raise SpecError(Problem(("data", "normalize") if normalize is not None else ("data",),
                            f"the generator ends in {last[0]} ({last[1]}), whose values lie in "
                            f"[{low:g}, {high:g}], but the real samples range over "
                            f"[{lowest:.3g}, {highest:.3g}]", hint))
