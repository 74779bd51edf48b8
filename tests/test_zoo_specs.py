"""The model-zoo specs written with the newer language features — MobileNetV2,
EfficientNet-B0, ConvNeXt-Tiny, ShuffleNet V2, DenseNet-121, ViT-B/16, the original U-Net and
a small GPT — against the hand-written references of ``zoo_reference.py``.

Each spec has its reference's exact parameter count (shape inference on the meta device, so
even ViT-B/16 costs nothing). Then the reference's weights are loaded into the compiled spec
and both networks must compute the same outputs in evaluation mode on a small input. The
spec's names are its own (`stage2.0.block.depthwise...`, not torchvision's
`features.2.1.block.1.0...`: names may not start with a digit), so the CNNs are matched by
order — the n-th reference tensor of a shape goes to the n-th spec tensor of that shape, both
in the order the layers run — and ViT and the GPT, whose names are close to the reference's,
by renaming. Both models are built on the meta device and the reference's tensors, filled
with random values, are assigned to both: no initialisation, no copies, a few seconds in all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import zoo_reference as zoo
from torch import nn

import dlspec
from conftest import SPECS

# spec → its reference's parameter count (torchvision's published counts; the U-Net's and
# the GPT's derived layer by layer in zoo_reference's docstrings)
COUNTS = {
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
    "convnext_tiny": 28_589_128,
    "shufflenet_v2": 2_278_604,
    "densenet121": 7_978_856,
    "vit_b_16": 86_567_656,
    "unet": 31_030_658,
    "gpt_small": 168_192,
}
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def _load(name: str, variant: str | None = None, **params: object) -> dlspec.Spec:
    return dlspec.load(SPECS / f"{name}.yaml", variant,
                       {f"params.{k}": v for k, v in params.items()} or None)


@pytest.mark.parametrize(("name", "count"), COUNTS.items())
def test_parameter_count_is_the_references(name: str, count: int) -> None:
    (shaped,) = dlspec.shapes(_load(name)).values()
    assert shaped.total_params == count


def test_full_size_inputs_and_outputs() -> None:
    outputs = {name: next(iter(dlspec.shapes(_load(name)).values())).outputs()["output"].shape
               for name in COUNTS}
    assert outputs == {**dict.fromkeys(
        ["mobilenet_v2", "efficientnet_b0", "convnext_tiny", "shufflenet_v2", "densenet121",
         "vit_b_16"], (1000,)), "unet": (2, 388, 388), "gpt_small": (64, 1000)}
    (unet,) = dlspec.graphs(_load("unet")).values()
    assert unet.inputs["image"].shape == (1, 572, 572)


# --- the same weights give the same outputs ------------------------------------------------


def _reference(build: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """The reference built on meta and filled with random values that keep a deep network's
    activations in range: weights N(0, 1/fan_in), norm scales and running variances around
    1, biases, running means and other vectors around 0 (ConvNeXt's 1e-6 layer scale and
    ViT's zero head would otherwise hide what comes before them)."""
    with torch.device("meta"):
        model = build()
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                tensor.zero_()
            elif key.endswith("running_var") or (tensor.dim() == 1 and key.endswith("weight")):
                tensor.uniform_(0.5, 1.5, generator=generator)
            elif tensor.dim() == 1:
                tensor.uniform_(-0.2, 0.2, generator=generator)
            else:
                fan_in = max(1, tensor[0].numel())
                tensor.normal_(0.0, 1 / math.sqrt(fan_in), generator=generator)
    return model.eval()


def _by_order(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]
              ) -> dict[str, str]:
    """Their key → our key: the n-th of their tensors of a shape is our n-th of that shape."""
    queues: dict[tuple[int, ...], list[str]] = {}
    for key, tensor in ours.items():
        queues.setdefault(tuple(tensor.shape), []).append(key)
    mapping = {}
    for key, tensor in theirs.items():
        queue = queues.get(tuple(tensor.shape))
        assert queue, f"no tensor of shape {tuple(tensor.shape)} left for {key}"
        mapping[key] = queue.pop(0)
    assert not any(queues.values()), "tensors of the spec that the reference lacks"
    return mapping


def _compiled(spec: dlspec.Spec) -> torch.fx.GraphModule:
    with torch.device("meta"):
        return dlspec.compile_spec(spec)


def _assign(model: nn.Module, reference: nn.Module,
            mapping: dict[str, str] | None = None) -> nn.Module:
    """Load the reference's tensors into `model` under `mapping` (default: by order),
    reshaped where the spec keeps a learned tensor without its leading 1s."""
    ours, theirs = model.state_dict(), reference.state_dict()
    mapping = mapping if mapping is not None else _by_order(ours, theirs)
    assert sorted(mapping.values()) == sorted(ours), "every spec tensor is loaded, once"
    state = {mine: theirs[key].reshape(ours[mine].shape) for key, mine in mapping.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _assert_same_outputs(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        ours, theirs = model(x), reference(x)
    assert theirs.abs().max() > 0.1  # a real signal, not a vanishing one
    torch.testing.assert_close(ours, theirs, **TOLERANCE)


CNNS = {  # spec → reference builder; compared at 3×32×32
    "mobilenet_v2": zoo.mobilenet_v2,
    "efficientnet_b0": zoo.efficientnet_b0,
    "convnext_tiny": zoo.convnext_tiny,
    "shufflenet_v2": zoo.shufflenet_v2_x1_0,
    "densenet121": zoo.densenet121,
}


@pytest.mark.parametrize("name", CNNS)
def test_cnn_computes_what_the_reference_does(name: str) -> None:
    reference = _reference(CNNS[name])
    model = _assign(_compiled(_load(name, size=32)), reference)
    _assert_same_outputs(model, reference, torch.randn(2, 3, 32, 32))


def test_vit_computes_what_the_reference_does() -> None:
    reference = _reference(lambda: zoo.vit_b_16(image_size=32))  # 2×2 patches + class token
    model = _compiled(_load("vit_b_16", size=32))

    def rename(key: str) -> str:
        key = re.sub(r"^encoder\.layers\.encoder_layer_(\d+)\.", r"encoder.\1.", key)
        key = key.replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2.")
        return {"class_token": "class_token.weight", "encoder.pos_embedding":
                "pos_embedding.weight"}.get(key, key.removeprefix("heads.")
                                            .replace("encoder.ln.", "ln."))
    mapping = {key: rename(key) for key in reference.state_dict()}
    assert mapping["encoder.layers.encoder_layer_11.self_attention.in_proj_weight"] == \
        "encoder.11.self_attention.in_proj_weight"
    _assign(model, reference, mapping)
    _assert_same_outputs(model, reference, torch.randn(2, 3, 32, 32))


def test_unet_computes_what_the_reference_does() -> None:
    # the narrow variant (width 8) at 188×188, the smallest size the unpadded convolutions take
    spec = _load("unet", "small")
    (shaped,) = dlspec.shapes(spec).values()
    reference = _reference(lambda: zoo.unet_original(base=8))
    assert shaped.total_params == zoo.count_parameters(reference) == 485_682
    model = _assign(_compiled(spec), reference)
    # the decoder block's four uses: same layers, each level's own weights
    assert [k for k in model.state_dict() if k.startswith("dec2.")] == [
        "dec2.up.weight", "dec2.up.bias", "dec2.conv.conv1.weight", "dec2.conv.conv1.bias",
        "dec2.conv.conv2.weight", "dec2.conv.conv2.bias"]
    _assert_same_outputs(model, reference, torch.randn(2, 1, 188, 188))


def test_gpt_computes_what_the_reference_does() -> None:
    reference = _reference(zoo.gpt_tiny)
    reference.head.weight = reference.tok_emb.weight  # to_empty unties; tie again
    model = _compiled(_load("gpt_small", dropout=0.0))
    state = model.state_dict()
    assert "head.weight" not in state  # tied: the head reads tok_emb.weight, stored once
    assert sum(p.numel() for p in model.parameters()) == zoo.count_parameters(reference)
    mapping = {re.sub(r"^blocks\.(\d+)\.", r"blocks.layers.\1.", key).replace(
        "ln_f.", "blocks.norm."): key for key in reference.state_dict() if key != "head.weight"}
    _assign(model, reference, {theirs: ours for ours, theirs in mapping.items()})
    tokens = torch.randint(0, 1000, (2, 64))
    _assert_same_outputs(model, reference, tokens)
    # causal: what follows a position changes nothing before it
    changed = tokens.clone()
    changed[:, 40:] = 7
    with torch.inference_mode():
        assert torch.equal(model(tokens)[:, :40], model(changed)[:, :40])


# --- what only training sees ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("efficientnet_b0", {"stage2": 0.025, "stage3": 0.05, "stage4": 0.08125,
                         "stage5": 0.11875, "stage6": 0.1625}),
    ("convnext_tiny", {"stage1": 0.0059, "stage2": 0.0235, "stage3": 0.0588, "stage4": 0.0941}),
])
def test_stochastic_depth_per_stage(name: str, expected: dict[str, float]) -> None:
    (graph,) = dlspec.graphs(_load(name)).values()
    found: dict[str, set[float]] = {}
    for node in graph.nodes:
        if node.kind == "drop_path":
            found.setdefault(node.name.split(".")[0], set()).add(node.params.p)
    assert found == {stage: {p} for stage, p in expected.items()}


def test_the_zoo_specs_are_in_the_spec_folder() -> None:
    assert {p.stem for p in Path(SPECS).glob("*.yaml")} >= set(COUNTS)
