"""Spec parameters and variants: one file says ResNet-18 at 224×224 and a small version
that trains here; a variant's errors point into the variant."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import dlspec
from conftest import ROOT, SPECS

SPEC = """\
dlspec: 1
name: net
params: {width: 8, classes: 3}
inputs:
  x: {shape: [4]}
blocks:
  dense:
    params: {units: int}
    layers: [{name: fc, linear: $units}, relu]
network:
  - {name: hidden, dense: {units: $(width * 2)}}
  - {name: out, linear: $classes}
task: {type: classification, num_classes: 3}
data: {dataset: iris}
variants:
  wide:
    description: twice as wide
    params: {width: 16}
  small:
    params: {width: 2, classes: 2}
    task: {type: classification, num_classes: 2}
    data: {dataset: moons, num_samples: 100}
"""

VARIANT_PATHS = [pytest.param(path, variant, id=f"{path.stem}-{variant}")
                 for path in sorted(SPECS.glob("*.yaml"))
                 for variant in (dlspec.load(path).variants or {})]


def test_params_are_substituted_and_variants_override_them() -> None:
    base = dlspec.loads(SPEC)
    assert dlspec.shapes(base)["net"].tensors["hidden.fc"].shape == (16,)
    wide = dlspec.loads(SPEC, variant="wide")
    assert wide.name == "net_wide" and wide.description == "twice as wide"
    assert dlspec.shapes(wide)["net_wide"].tensors["hidden.fc"].shape == (32,)
    assert wide.data.dataset == "iris"  # sections the variant does not name stay
    small = dlspec.loads(SPEC, variant="small")
    shaped = dlspec.shapes(small)["net_small"]
    assert shaped.tensors["hidden.fc"].shape == (4,) and shaped.outputs()["output"].shape == (2,)
    assert small.data.dataset == "moons" and small.data.num_samples == 100  # replaced whole


def _error(text: str, variant: str | None = None) -> str:
    with pytest.raises(dlspec.SpecError) as caught:
        dlspec.loads(text, "v.yaml", variant=variant)
    return str(caught.value)


def test_an_error_in_a_variant_points_into_the_variant() -> None:
    text = SPEC.replace("data: {dataset: moons, num_samples: 100}",
                        "data: {dataset: moonz, num_samples: 100}")
    assert _error(text, "small").startswith("v.yaml:22:21: data.dataset: ")
    assert "moons" in _error(text, "small")  # did you mean
    dlspec.loads(text)  # the spec itself is fine


@pytest.mark.parametrize(("change", "variant", "expected"), [
    (lambda t: t, "tiny", "v.yaml:16:3: variants: spec 'net' has no variant 'tiny'; the "
                          "variants are wide, small"),
    (lambda t: t, "wdie", "did you mean 'wide'?"),
    (lambda t: t.replace("params: {width: 16}", "params: {depth: 16}"), "wide",
     "v.yaml:18:14: variants.wide.params.depth: the spec has no parameter 'depth'"),
    (lambda t: t.replace("params: {width: 16}", "blocks: {}"), "wide",
     "v.yaml:18:5: variants.wide.blocks: a variant cannot change `blocks`"),
    (lambda t: t.replace("linear: $classes", "linear: $clases"), None,
     "v.yaml:12:25: network[1].linear: unknown parameter $clases (parameters here: classes, "
     "width); declare it under params:"),
])
def test_variant_mistakes_are_located(change: Callable[[str], str], variant: str | None,
                                      expected: str) -> None:
    assert expected in _error(change(SPEC), variant)


def test_check_checks_the_spec_and_every_variant(tmp_path: Path) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(SPEC)
    result = subprocess.run([sys.executable, "-m", "dlspec", "check", str(path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [line.split(": ")[1] for line in result.stdout.splitlines()] == [
        "net", "net_wide", "net_small"]
    one = subprocess.run([sys.executable, "-m", "dlspec", "check", str(path), "--variant",
                          "small"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert one.stdout.startswith(f"ok {path}: net_small: x 4 → output 2;")


@pytest.mark.parametrize(("path", "variant"), VARIANT_PATHS)
def test_every_zoo_variant_compiles_runs_and_keeps_the_published_network(
        path: Path, variant: str) -> None:
    spec, base = dlspec.load(path, variant), dlspec.load(path)
    ours, theirs = dlspec.graphs(spec), dlspec.graphs(base)
    assert len(ours) == len(theirs)  # the same networks (a single one is named after the spec)
    for (network, shaped), base_name in zip(dlspec.shapes(spec).items(), theirs, strict=True):
        model = dlspec.compile_spec(spec, network)
        inputs = [torch.randint(0, 2, (2, *decl.shape)) if decl.dtype == "int64"
                  else torch.randn(2, *decl.shape) for decl in shaped.graph.inputs.values()]
        with torch.inference_mode():
            output = model.eval()(*inputs)
        assert tuple(output.shape) == (2, *shaped.outputs()["output"].shape)
        # the variant changes sizes, not structure: the same layers under the same names
        assert [n.name for n in ours[network].nodes] == [
            n.name for n in theirs[base_name].nodes]


def test_resnet18_digits_variant_trains_here(tmp_path: Path) -> None:
    result = dlspec.train_spec(dlspec.load(SPECS / "resnet18.yaml", "digits"),
                               tmp_path / "run", epochs=3)
    assert result.test is not None and result.test["accuracy"] > 0.8  # chance is 0.1


def test_transformer_sentiment_variant_learns_the_built_in_token_task(tmp_path: Path) -> None:
    # 4 epochs reach 0.85 here (20, the variant's own, 0.96); chance is 0.5
    result = dlspec.train_spec(dlspec.load(SPECS / "transformer_encoder.yaml", "sentiment"),
                               tmp_path / "run", epochs=4)
    assert result.test is not None and result.test["accuracy"] > 0.75


def test_check_reports_each_mistake_once_naming_the_variant_it_is_in(tmp_path: Path) -> None:
    path = tmp_path / "net.yaml"
    # one mistake only the variant `small` has, one the spec and all its variants share
    path.write_text(SPEC.replace("data: {dataset: moons, num_samples: 100}",
                                 "data: {dataset: moonz, num_samples: 100}"))
    result = subprocess.run([sys.executable, "-m", "dlspec", "check", str(path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines()[1:] == ["    note: in variant small"]
    assert result.stderr.startswith(f"{path}:22:21: data.dataset: expected one of ")
    path.write_text(SPEC.replace("{name: out, linear: $classes}",
                                 "{name: out, linear: $classes, relu: 1}"))
    result = subprocess.run([sys.executable, "-m", "dlspec", "check", str(path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr  # not once per variant
    assert result.stderr.startswith(f"{path}:12:5: network[1]: a layer has exactly one kind")


# --- variants change sections field by field ---------------------------------------------

MERGED = """\
dlspec: 1
name: net
inputs:
  x: {shape: [2]}
network: [{name: hidden, linear: 8}, relu, {name: out, linear: 2}]
task: classification
loss: cross_entropy
optimizer: {type: adam, lr: 0.01, betas: [0.8, 0.9]}
schedule: {type: step, step_size: 2, gamma: 0.5}
data: {dataset: moons, num_samples: 200, noise: 0.1}
train: {epochs: 4, batch_size: 16, seed: 7, metrics: [accuracy, f1]}
variants:
  quick:
    train: {epochs: 2}
    optimizer: {lr: 0.05}
    loss: {label_smoothing: 0.1}
    data: {num_samples: 100}
  sgd:
    optimizer: {type: sgd, lr: 0.1}
    data: {dataset: circles}
    schedule: null
    train: {early_stopping: {patience: 1}, metrics: [accuracy]}
"""


def test_a_variant_changes_the_fields_it_names_and_keeps_the_others() -> None:
    quick = dlspec.loads(MERGED, "m.yaml", variant="quick")
    assert quick.train.epochs == 2  # changed
    assert (quick.train.batch_size, quick.train.seed, quick.train.metrics) == (
        16, 7, ["accuracy", "f1"])  # kept, not reset to their defaults
    assert quick.optimizer.type == "adam" and quick.optimizer.lr == 0.05  # no missing type
    assert quick.optimizer.betas == [0.8, 0.9]
    assert quick.loss.type == "cross_entropy" and quick.loss.label_smoothing == 0.1
    assert quick.data.dataset == "moons" and quick.data.num_samples == 100
    assert quick.data.noise == 0.1


def test_a_variant_of_another_type_or_source_replaces_the_section() -> None:
    sgd = dlspec.loads(MERGED, "m.yaml", variant="sgd")
    # adam's betas would be an unknown key of sgd: the section is replaced, not merged
    assert sgd.optimizer.type == "sgd" and sgd.optimizer.lr == 0.1
    assert sgd.data.dataset == "circles" and sgd.data.num_samples is None  # another source
    assert sgd.schedule is None  # null removes a section
    assert sgd.train.early_stopping is not None and sgd.train.early_stopping.patience == 1
    assert sgd.train.metrics == ["accuracy"] and sgd.train.epochs == 4  # lists replace


def test_merged_values_point_at_the_line_they_come_from() -> None:
    # an error in a value the variant gave points into the variant ...
    text = MERGED.replace("optimizer: {lr: 0.05}", "optimizer: {lr: -1}")
    assert _error(text, "quick").startswith("v.yaml:15:21: optimizer.lr: ")
    # ... and one in a value it kept, at the spec's own line
    text = MERGED.replace("batch_size: 16", "batch_size: 0")
    assert _error(text, "quick").startswith("v.yaml:11:32: train.batch_size: ")
