"""The model zoo: every spec in specs/ checks, compiles and runs, with the shapes that shape
inference promised; the classic architectures have exactly their published parameter counts.

Parametrised over a glob of specs/, so a new spec is covered without editing this file. The
forward pass of the big ImageNet models (> 20M parameters) on the CPU is marked slow; on every
run they are still compiled and run on the meta device (shapes, no memory), and their
parameter counts asserted through shape inference.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dlspec
from conftest import ROOT, SPECS
from dlspec.graph import ShapedGraph
from dlspec.spec.model import Spec

SPEC_PATHS = sorted(SPECS.glob("*.yaml"))
SCHEMA_COMMENT = "# yaml-language-server: $schema=../schemas/dlspec.schema.json"
BIG = 20_000_000  # parameters above which the forward pass is a slow test
BACKWARD_MACS = 1_000_000_000  # per sample, below which a backward pass is cheap enough too

# The published parameter counts of the reference implementations (torchvision for the
# ImageNet models; LeCun et al. 1998 with full C3 connectivity for LeNet-5).
PUBLISHED = {
    "lenet5": 61_706,
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet152": 60_192_808,
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
    "shufflenet_v2": 2_278_604,
    "densenet121": 7_978_856,
    # convnext_tiny (28,589,128) and vit_b_16 (86,567,656) are counted, and checked against
    # their references at small inputs, in test_zoo_specs.py: here they would add full-size
    # CPU forward passes to test_big_model_runs_on_cpu
}


@functools.cache
def _load(path: Path) -> Spec:
    return dlspec.load(path)


@functools.cache
def _shapes(path: Path) -> dict[str, ShapedGraph]:
    return dlspec.shapes(_load(path))


def _is_big(path: Path) -> bool:
    return sum(g.total_params for g in _shapes(path).values()) > BIG


def _random_inputs(shaped: ShapedGraph, batch: int = 2) -> list[torch.Tensor]:
    inputs = []
    for decl in shaped.graph.inputs.values():
        shape, dtype = (batch, *decl.shape), getattr(torch, decl.dtype)
        if decl.dtype.startswith(("int", "uint")):  # token ids 0/1: valid for any vocabulary
            inputs.append(torch.randint(0, 2, shape, dtype=dtype))
        else:
            inputs.append(torch.randn(shape, dtype=dtype))
    return inputs


def _as_tuple(output: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return output if isinstance(output, tuple) else (output,)


def _assert_outputs_match(outputs: tuple[torch.Tensor, ...], shaped: ShapedGraph,
                          batch: int) -> None:
    expected = shaped.outputs()
    assert len(outputs) == len(expected)
    for tensor, (name, info) in zip(outputs, expected.items(), strict=True):
        assert tuple(tensor.shape) == (batch, *info.shape), name
        assert str(tensor.dtype).removeprefix("torch.") == info.dtype, name


def test_the_zoo_is_there() -> None:
    names = {p.stem for p in SPEC_PATHS}
    assert set(PUBLISHED) <= names
    assert {"perceptron", "mlp", "lstm", "gru", "bilstm", "rnn", "transformer_encoder",
            "inception_block", "unet_small", "dcgan", "cgan", "wgan_gp", "cyclegan",
            "multi_input"} <= names


@pytest.mark.parametrize("path", SPEC_PATHS, ids=lambda p: p.stem)
def test_first_line_is_the_schema_comment(path: Path) -> None:
    first, second = path.read_text(encoding="utf-8").splitlines()[:2]
    assert first == SCHEMA_COMMENT
    assert second.startswith("# "), "the second line says what the architecture is"


@pytest.mark.parametrize("path", SPEC_PATHS, ids=lambda p: p.stem)
def test_spec_loads_and_every_shape_is_inferred(path: Path) -> None:
    spec = _load(path)
    assert spec.name == path.stem
    shaped = _shapes(path)
    assert shaped
    for graph in shaped.values():
        assert graph.total_params > 0
        assert graph.trainable_params == graph.total_params
        assert graph.outputs()
        assert all(node.name in graph.tensors for node in graph.graph.nodes)


@pytest.mark.parametrize("path", SPEC_PATHS, ids=lambda p: p.stem)
def test_compiled_module_runs_with_the_inferred_shapes(path: Path) -> None:
    """Compile and run a batch of 2; a big model is compiled and run on the meta device
    (shapes only, no memory), its real forward pass is test_big_model_runs_on_cpu."""
    spec = _load(path)
    big = _is_big(path)
    torch.manual_seed(0)
    for network, shaped in _shapes(path).items():
        with torch.device("meta" if big else "cpu"):
            model = dlspec.compile_spec(spec, network)
            inputs = _random_inputs(shaped)
        assert isinstance(model, torch.fx.GraphModule)
        assert sum(p.numel() for p in model.parameters()) == shaped.total_params
        if big or shaped.total_macs > BACKWARD_MACS:
            model.eval()
            with torch.inference_mode():
                outputs = _as_tuple(model(*inputs))
            _assert_outputs_match(outputs, shaped, batch=2)
            continue
        model.train()
        outputs = _as_tuple(model(*inputs))
        _assert_outputs_match(outputs, shaped, batch=2)
        sum(o.float().sum() for o in outputs).backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, f"no gradient reaches {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("path", [SPECS / f"{name}.yaml" for name, count in PUBLISHED.items()
                                  if count > BIG], ids=lambda p: p.stem)
def test_big_model_runs_on_cpu(path: Path) -> None:
    """The real forward pass of the big reference models (the smaller ones run it above)."""
    assert _is_big(path)
    torch.manual_seed(0)
    for network, shaped in _shapes(path).items():
        model = dlspec.compile_spec(_load(path), network).eval()
        with torch.inference_mode():
            outputs = _as_tuple(model(*_random_inputs(shaped)))
        _assert_outputs_match(outputs, shaped, batch=2)
        assert all(torch.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize(("name", "count"), sorted(PUBLISHED.items()))
def test_published_parameter_counts(name: str, count: int) -> None:
    (shaped,) = _shapes(SPECS / f"{name}.yaml").values()
    assert shaped.total_params == count


def test_cli_checks_every_spec() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dlspec", "check", *(str(p.relative_to(ROOT)) for p in SPEC_PATHS)],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("ok ") for line in lines), result.stdout
    # one ok line per network: a single-network spec gets one, dcgan one per network
    seen: dict[str, list[str]] = {}
    for line in lines:
        match = re.match(r"ok specs/(\w+)\.yaml: (\w+): .* → .*; [\d,]+ parameters$", line)
        assert match, line
        seen.setdefault(match.group(1), []).append(match.group(2))
    assert set(seen) == {p.stem for p in SPEC_PATHS}
    for path in SPEC_PATHS:  # the spec's networks, then each variant's
        base = _load(path)
        expected = [*dlspec.graphs(base), *(name for variant in (base.variants or {})
                    for name in dlspec.graphs(dlspec.load(path, variant)))]
        assert sorted(seen[path.stem]) == sorted(expected)


# --- ResNet-18 against torchvision's module layout -----------------------------------


def _torchvision_resnet18_state_dict() -> dict[str, tuple[int, ...]]:
    """Key → shape of torchvision's `resnet18().state_dict()`, written out from its source.

    Stem conv1/bn1; layer1..4 of two BasicBlocks (conv1, bn1, conv2, bn2) where the first
    block of layers 2-4 has `downsample` = 1×1 conv (0) + batch norm (1); fc. Convolutions
    have no bias; each BatchNorm2d holds weight, bias, running_mean, running_var and
    num_batches_tracked. 20 convs + 20 × 5 batch-norm entries + fc's 2 = 122 entries
    (62 parameters, 60 buffers).
    """
    keys: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.{name}"] = (c,)
        keys[f"{prefix}.num_batches_tracked"] = ()

    keys["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    in_c = 64
    for layer, c in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{layer}.{block}"
            keys[f"{p}.conv1.weight"] = (c, in_c, 3, 3)
            bn(f"{p}.bn1", c)
            keys[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if block == 0 and in_c != c:
                keys[f"{p}.downsample.0.weight"] = (c, in_c, 1, 1)
                bn(f"{p}.downsample.1", c)
            in_c = c
    keys["fc.weight"] = (1000, 512)
    keys["fc.bias"] = (1000,)
    return keys


def test_resnet18_state_dict_is_torchvisions() -> None:
    model = dlspec.compile_spec(_load(SPECS / "resnet18.yaml"))
    state = model.state_dict()
    reference = _torchvision_resnet18_state_dict()
    assert len(reference) == 122
    assert sum(1 for _ in model.parameters()) == 62
    assert not any(k.startswith("layer1.0.downsample") for k in state), \
        "layer1 keeps its shape: identity shortcut, no projection"
    # the same keys in the same order with the same shapes: a torchvision file loads as it is
    assert list(state) == list(reference)
    assert {k: tuple(v.shape) for k, v in state.items()} == reference


@pytest.mark.parametrize("name", ["resnet50", "resnet152"])
def test_bottleneck_is_v1_5_with_the_stride_on_the_3x3(name: str) -> None:
    graph = dlspec.graphs(_load(SPECS / f"{name}.yaml"))[name]
    for stage in ("layer2", "layer3", "layer4"):
        prefix = f"{stage}.0."
        assert graph.node(prefix + "conv1").params.stride == 1
        assert graph.node(prefix + "conv2").params.stride == 2
        assert graph.node(prefix + "conv2").params.kernel_size == 3


# --- GANs: the reference implementations' networks --------------------------------------

# junyanz/pytorch-CycleGAN-and-pix2pix defaults (resnet_9blocks, basic PatchGAN); the toy
# networks of Gulrajani et al.'s gan_toy.py (DIM 512)
GAN_PARAMETERS = {
    "cyclegan": {"generator_ab": 11_378_179, "generator_ba": 11_378_179,
                 "discriminator_a": 2_764_737, "discriminator_b": 2_764_737},
    "wgan_gp": {"generator": 527_874, "discriminator": 527_361},
}


@pytest.mark.parametrize("name", sorted(GAN_PARAMETERS))
def test_gan_parameter_counts(name: str) -> None:
    shaped = _shapes(SPECS / f"{name}.yaml")
    assert {k: v.total_params for k, v in shaped.items()} == GAN_PARAMETERS[name]


def _reference_cyclegan_generator(channels: int = 3, width: int = 64,
                                  blocks: int = 9) -> torch.nn.Sequential:
    """ResnetGenerator of pytorch-CycleGAN-and-pix2pix (instance norm, so biased convs;
    reflection padding as separate layers; no dropout), written out."""
    nn = torch.nn

    def norm_relu(c: int) -> list[nn.Module]:
        return [nn.InstanceNorm2d(c), nn.ReLU(True)]

    class ResnetBlock(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.conv_block = nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(True),
                nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv_block(x)

    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, width, 7),
                               *norm_relu(width)]
    for mult in (1, 2):
        layers += [nn.Conv2d(width * mult, width * mult * 2, 3, stride=2, padding=1),
                   *norm_relu(width * mult * 2)]
    layers += [ResnetBlock(width * 4) for _ in range(blocks)]
    for mult in (4, 2):
        layers += [nn.ConvTranspose2d(width * mult, width * mult // 2, 3, stride=2, padding=1,
                                      output_padding=1), *norm_relu(width * mult // 2)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def test_cyclegan_generator_computes_what_the_reference_does() -> None:
    # reflection padding inside the convolution (padding_mode: reflect) is the reference's
    # ReflectionPad2d + unpadded convolution: same weights in the same order, same outputs
    spec = _load(SPECS / "cyclegan.yaml")
    torch.manual_seed(0)
    ours = dlspec.compile_spec(spec, "generator_ab").eval()
    reference = _reference_cyclegan_generator().eval()
    ours_weights, reference_weights = list(ours.parameters()), list(reference.parameters())
    assert [p.shape for p in ours_weights] == [p.shape for p in reference_weights]
    with torch.no_grad():
        for mine, theirs in zip(ours_weights, reference_weights, strict=True):
            theirs.copy_(mine)
    image = torch.randn(2, 3, 32, 32)  # any size a multiple of 4 runs the same network
    with torch.inference_mode():
        assert torch.allclose(ours(image), reference(image), atol=1e-5)
