"""What `task: gan` asks of a spec's networks, checked with their shapes (`dlspec check`).

A GAN spec has exactly one network whose name contains `generator` and one whose name
contains `discriminator` (or `critic`). The generator reads latent noise — float inputs,
each optionally with `distribution: normal | uniform` — and its output is what the
discriminator reads: one float input of the same shape. A conditional GAN gives both
networks one more input, an integer class label per sample (`shape: [], dtype: int64`).
The discriminator outputs raw scores: every GAN objective applies its own squashing, so a
final sigmoid is an error (for the Wasserstein objectives it would also bound the critic).

Before training (they need the data or are about training only): supervised-training
settings a GAN run does not honour are errors rather than silently ignored
(`check_settings`), and a generator ending in tanh or sigmoid must face real samples in its
range (`check_range`).

A CycleGAN spec (`task: cyclegan`) has four networks: `generator_ab` (domain A → B),
`generator_ba` (B → A), `discriminator_a` (real or generated A?) and `discriminator_b`.
Each generator reads one image of its source domain and makes one of its target domain;
each discriminator reads one image of its domain (`check_cyclegan`). Imports no torch.
"""

from __future__ import annotations

from typing import Any

from dlspec.errors import Path, Problem, SpecError
from dlspec.graph import Graph, ShapedGraph
from dlspec.layers.registry import format_shape
from dlspec.spec.model import Spec
from dlspec.spec.sections import Loss

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
    objective = _one_objective(spec, "gan")
    generator_name, discriminator_name = gan_roles(spec, list(shaped))
    generator, discriminator = shaped[generator_name], shaped[discriminator_name]
    problems = _latent_problems(spec, generator_name, discriminator_name)
    if objective is not None and objective.type not in GAN_OBJECTIVES:
        problems.append(Problem(("loss",), f"task gan trains with a GAN objective, not "
                                f"{objective.type}", f"use one of {', '.join(GAN_OBJECTIVES)}"))
    problems += _pair_problems(spec, generator, discriminator)
    last = last_node_kind(discriminator.graph)
    if last is not None and last[0] in _SQUASHING:
        loss = objective.type if objective is not None else "non_saturating"
        problems.append(_squashed_scores(loss, discriminator_name, *last))
    if problems:
        raise SpecError(problems)


def _one_objective(spec: Spec, task: str) -> Loss | None:
    """The spec's one loss: a loss per output is for a network with several outputs, not for
    adversarial tasks."""
    if isinstance(spec.loss, dict):
        raise SpecError(Problem(("loss",), f"task {task} trains with one objective, not a loss "
                                "per output", "e.g. loss: hinge" if task == "gan" else
                                "e.g. loss: {type: cyclegan, cycle_weight: 10.0}"))
    return spec.loss


def last_node_kind(graph: Graph) -> tuple[str, str, Path] | None:
    """The kind, name and spec path of the layer a single-output network ends in."""
    if len(graph.outputs) != 1:
        return None
    (name,) = graph.outputs.values()
    node = next((n for n in graph.nodes if n.name == name), None)
    return (node.kind, node.name, node.path) if node is not None else None


def label_inputs(spec: Spec, generator: str, discriminator: str) -> tuple[str | None,
                                                                         str | None]:
    """The class-label inputs (integer) of a conditional GAN's generator and discriminator;
    (None, None) for an unconditional GAN."""
    assert spec.networks is not None

    def label(network: str) -> str | None:
        found = [n for n, d in spec.networks[network].inputs.items()  # type: ignore[index]
                 if d.dtype != "float32"]
        return found[0] if found else None

    return label(generator), label(discriminator)


def _latent_problems(spec: Spec, generator: str, discriminator: str) -> list[Problem]:
    assert spec.networks is not None
    problems = []
    generator_label, discriminator_label = label_inputs(spec, generator, discriminator)
    for network in (generator, discriminator):
        inputs = spec.networks[network].inputs
        integers = [name for name, decl in inputs.items() if decl.dtype != "float32"]
        for name in integers[1:]:
            problems.append(Problem(("networks", network, "inputs", name), f"{network} reads "
                                    f"{len(integers)} integer inputs; a conditional GAN has "
                                    "one class label", "keep one label input"))
        for name in integers[:1]:
            decl = inputs[name]
            if decl.dtype == "bool" or list(decl.shape) != []:
                problems.append(Problem(
                    ("networks", network, "inputs", name), f"{network}'s input {name} is "
                    f"{decl.dtype} of shape {list(decl.shape)}; a GAN's float inputs are its "
                    "latent noise and an integer input is a class label, one per sample",
                    f"declare it {name}: {{shape: [], dtype: int64}}"))
    if (generator_label is None) != (discriminator_label is None):
        has, lacks = ((generator, discriminator) if generator_label is not None
                      else (discriminator, generator))
        problems.append(Problem(("networks", lacks, "inputs"), f"{has} reads a class label "
                                f"({generator_label or discriminator_label}) but {lacks} does "
                                "not: a conditional GAN's discriminator judges each sample "
                                "with its label", f"add a label input to {lacks}, e.g. "
                                "label: {shape: [], dtype: int64}"))
    if not any(d.dtype == "float32" for d in spec.networks[generator].inputs.values()):
        problems.append(Problem(("networks", generator, "inputs"), "the generator has no "
                                "float input for its latent noise",
                                "add one, e.g. z: {shape: [100]}"))
    for network, net in spec.networks.items():
        if network == generator:
            continue
        for name, decl in net.inputs.items():
            if decl.distribution is not None:
                problems.append(Problem(
                    ("networks", network, "inputs", name, "distribution"),
                    f"`distribution` says how a generator's latent noise is drawn; {network} "
                    f"is not the generator ({generator})", "remove it"))
    samples = [n for n, d in spec.networks[discriminator].inputs.items() if d.dtype == "float32"]
    if len(samples) != 1:
        problems.append(Problem(("networks", discriminator, "inputs"), "the discriminator "
                                "reads one sample (a float input), real or generated, and for "
                                f"a conditional GAN its label; it declares {len(samples)} "
                                "float inputs"))
    return problems


def check_label_embeddings(shaped: dict[str, ShapedGraph], labels: dict[str, str],
                           num_classes: int) -> None:
    """SpecError when an embedding that reads a class label has rows for fewer classes
    than the data has (network → its label input in `labels`)."""
    problems = []
    for network, label in labels.items():
        for node in shaped[network].graph.nodes:
            rows = getattr(node.params, "num_embeddings", None)
            if label in node.inputs and rows is not None and rows < num_classes:
                problems.append(Problem(node.path + ("num_embeddings",), f"{node.name} embeds "
                                        f"the class label in {rows} rows, but the data has "
                                        f"{num_classes} classes",
                                        f"num_embeddings: {num_classes}"))
    if problems:
        raise SpecError(problems)


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
        if decl.dtype == "float32" and tuple(decl.shape) != tuple(made.shape):
            last = last_node_kind(generator.graph)
            path: Path = last[2] if last is not None else ("networks", name)
            problems.append(Problem(
                path, "the generator's output is "
                f"{format_shape(tuple(made.shape))} per sample, but the discriminator "
                f"({discriminator.graph.name}) reads {input_name} as "
                f"{format_shape(tuple(decl.shape))}", "make them the same shape"))
    return problems


def _squashed_scores(loss: str, discriminator: str, kind: str, node: str,
                     path: Path) -> Problem:
    if loss in ("wasserstein", "wasserstein_gp"):
        why = (f"a {loss} critic's score is unbounded (it estimates a distance); a final "
               f"{kind} bounds it and the critic stops learning")
    elif loss == "least_squares":
        why = (f"the least_squares objective pulls raw scores towards 1 (real) and 0 "
               f"(generated); through a final {kind} they saturate and the gradients vanish")
    elif loss == "hinge":
        why = (f"the hinge objective takes raw scores with margins at ±1; a final {kind} "
               "bounds them inside the margins")
    else:
        why = (f"the {loss} objective takes raw scores (logits) and applies the sigmoid "
               f"itself; a final {kind} would squash them twice")
    return Problem(path, f"{node}: the discriminator ({discriminator}) ends in a {kind}: "
                   f"{why}", f"remove the final {kind}")


# settings of supervised training that GAN training does not honour (yet): an error, never
# silently ignored
_UNSUPPORTED: dict[tuple[str, ...], str] = {
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


# and what task cyclegan does not honour besides
UNSUPPORTED_BY_CYCLEGAN: dict[tuple[str, ...], str] = {
    ("train", "n_critic"): "CycleGAN steps its generators and discriminators in turn, once "
                           "per batch",
    ("train", "ema"): "averaging generator weights is not available for CycleGAN yet",
}


def check_settings(spec: Spec, also: dict[tuple[str, ...], str] | None = None) -> None:
    """SpecError naming each training setting that task gan does not honour, nor those in
    `also` (what task cyclegan does not honour besides)."""
    task = spec.task.type if spec.task is not None else "gan"
    unsupported = dict(_UNSUPPORTED) | (also or {})
    problems = []
    for path, why in unsupported.items():
        owner: Any = spec.train if path[0] == "train" else spec
        name = path[-1]
        if getattr(owner, name) != type(owner).model_fields[name].default:
            problems.append(Problem(path, f"task {task}: {why}", "remove it"))
    if problems:
        raise SpecError(problems)


def check_range(spec: Spec, generator: ShapedGraph, real: Any, images: bool) -> None:
    """A generator ending in tanh (sigmoid) makes values in [-1, 1] ([0, 1]): real samples
    (`real`, a tensor) outside that range could never be matched, and the discriminator
    would win at once; real images must span most of it."""
    last = last_node_kind(generator.graph)
    if last is None or last[0] not in _RANGES:
        return
    low, high = _RANGES[last[0]]
    lowest, highest = real.min().item(), real.max().item()
    inside = lowest >= low - 1e-3 and highest <= high + 1e-3
    # images spanning only part of the range (pixels in [0, 1] against tanh's [-1, 1]) are
    # the usual slip: the generator would spend half its range on values never real
    spans = not images or (highest - lowest) >= 0.75 * (high - low)
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


CYCLEGAN_ROLES = ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b")
_ROLE_WORDS = {"generator_ab": "translates domain A into domain B",
               "generator_ba": "translates domain B into domain A",
               "discriminator_a": "tells real A images from generated ones",
               "discriminator_b": "tells real B images from generated ones"}


def check_cyclegan(spec: Spec, shaped: dict[str, ShapedGraph]) -> None:
    """Every problem of a `task: cyclegan` spec's four networks, raised as one SpecError."""
    if spec.networks is None:
        raise SpecError(Problem(("task",), "task cyclegan trains four networks, but the spec "
                                "declares one `network:`", "declare "
                                f"{', '.join(CYCLEGAN_ROLES)} under `networks:`"))
    missing = [name for name in CYCLEGAN_ROLES if name not in shaped]
    if missing:
        others = [name for name in shaped if name not in CYCLEGAN_ROLES]
        raise SpecError(Problem(("networks",), "task cyclegan needs the networks "
                                f"{', '.join(CYCLEGAN_ROLES)}; missing "
                                + "; ".join(f"{name} (it {_ROLE_WORDS[name]})"
                                            for name in missing),
                                f"rename {', '.join(others)}" if others else None))
    objective = _one_objective(spec, "cyclegan")
    problems = []
    if objective is not None and objective.type != "cyclegan":
        problems.append(Problem(("loss",), f"task cyclegan trains with the cyclegan loss, not "
                                f"{objective.type}", "e.g. loss: {type: cyclegan, "
                                "adversarial: least_squares, cycle_weight: 10.0}"))
    for network, net in spec.networks.items():
        if len(net.inputs) != 1 and network in CYCLEGAN_ROLES:
            problems.append(Problem(("networks", network, "inputs"), f"{network} reads one "
                                    f"input, an image; it declares {len(net.inputs)}"))
        for name, decl in net.inputs.items():
            if decl.distribution is not None:
                problems.append(Problem(("networks", network, "inputs", name, "distribution"),
                                        "`distribution` is for a GAN generator's latent "
                                        "noise; a CycleGAN network reads images", "remove it"))
    if problems:
        raise SpecError(problems)
    problems += _domain_problems(shaped, "generator_ab", "discriminator_b", "B")
    problems += _domain_problems(shaped, "generator_ba", "discriminator_a", "A")
    problems += _cycle_problems(shaped)
    identity = (objective.identity_weight if objective is not None
                and objective.type == "cyclegan" else 0.5)
    domain_a, domain_b = cyclegan_domains(shaped)
    if identity > 0 and domain_a != domain_b and not problems:
        problems.append(Problem(("loss", "identity_weight") if objective is not None
                                else ("task",), f"the identity loss feeds domain-B images "
                                f"({format_shape(domain_b)}) to generator_ab, which reads "
                                f"domain A ({format_shape(domain_a)})",
                                "set identity_weight: 0 when the domains differ in shape"))
    adversarial = (objective.adversarial.type if objective is not None
                   and objective.type == "cyclegan" else "least_squares")
    for name in ("discriminator_a", "discriminator_b"):
        last = last_node_kind(shaped[name].graph)
        if last is not None and last[0] in _SQUASHING:
            problems.append(_squashed_scores(adversarial, name, *last))
    if problems:
        raise SpecError(problems)


def _one_output(shaped: ShapedGraph) -> tuple[int, ...] | None:
    outputs = shaped.outputs()
    return tuple(next(iter(outputs.values())).shape) if len(outputs) == 1 else None


def _one_input(shaped: ShapedGraph) -> tuple[int, ...]:
    return tuple(next(iter(shaped.graph.inputs.values())).shape)


def _domain_problems(shaped: dict[str, ShapedGraph], generator: str, discriminator: str,
                     domain: str) -> list[Problem]:
    made = _one_output(shaped[generator])
    if made is None:
        return [Problem(("networks", generator, "outputs"), f"{generator} has "
                        f"{len(shaped[generator].outputs())} outputs; it makes one image")]
    judged = _one_input(shaped[discriminator])
    if made == judged:
        return []
    last = last_node_kind(shaped[generator].graph)
    return [Problem(last[2] if last is not None else ("networks", generator),
                    f"{generator} makes domain-{domain} images of "
                    f"{format_shape(made)}, but {discriminator} reads "
                    f"{format_shape(judged)}", "make them the same shape")]


def _cycle_problems(shaped: dict[str, ShapedGraph]) -> list[Problem]:
    # A → B → A and B → A → B: each generator's input is the other one's output
    problems = []
    for generator, other in (("generator_ab", "generator_ba"), ("generator_ba", "generator_ab")):
        made = _one_output(shaped[other])
        reads = _one_input(shaped[generator])
        if made is not None and made != reads:
            problems.append(Problem(("networks", generator, "inputs"), f"{generator} reads "
                                    f"{format_shape(reads)}, but {other} makes "
                                    f"{format_shape(made)}: the cycle would not close",
                                    "make them the same shape"))
    return problems


def cyclegan_domains(shaped: dict[str, ShapedGraph]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The per-sample shapes of domain A and domain B (a checked spec's)."""
    return _one_input(shaped["generator_ab"]), _one_input(shaped["generator_ba"])
