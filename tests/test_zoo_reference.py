"""Checks of the hand-written reference networks in ``zoo_reference.py``.

Parameter counts are taken on the meta device (no memory, no compute), so even ViT-B/16 is
free; the published counts are torchvision's ``num_params`` metadata.  Full-size output
shapes are also checked on meta; real forward passes use small inputs (or, for U-Net, a
narrow copy at the paper's 572x572 size).
"""

from __future__ import annotations

import re

import pytest
import torch
import zoo_reference as zoo
from torch import nn

# torchvision's published parameter counts (``Weights.meta["num_params"]``)
PUBLISHED = {
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
    "convnext_tiny": 28_589_128,
    "shufflenet_v2_x1_0": 2_278_604,
    "densenet121": 7_978_856,
    "vit_b_16": 86_567_656,
}
# not from torchvision: derived layer by layer in the docstrings of UNet and gpt_tiny
UNET_PARAMS = 31_030_658
GPT_TINY_PARAMS = 168_192

IMAGENET = [
    "mobilenet_v2",
    "efficientnet_b0",
    "convnext_tiny",
    "shufflenet_v2_x1_0",
    "densenet121",
    "vit_b_16",
]


def meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return getattr(zoo, name)(**kwargs)


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# --- parameter counts ---------------------------------------------------------------------


@pytest.mark.parametrize("name", IMAGENET)
def test_published_parameter_count(name: str) -> None:
    assert zoo.count_parameters(meta(name)) == PUBLISHED[name]


def test_unet_parameter_count() -> None:
    model = meta("unet_original")
    assert zoo.count_parameters(model) == UNET_PARAMS
    enc = sum(p.numel() for k, p in model.named_parameters() if k.startswith("enc"))
    dec = sum(p.numel() for k, p in model.named_parameters() if k.startswith(("up", "dec")))
    assert (enc, dec) == (18_842_048, 12_188_480)


def test_gpt_parameter_count_counts_the_tie_once() -> None:
    model = meta("gpt_tiny")
    assert zoo.count_parameters(model) == GPT_TINY_PARAMS
    # the state_dict names the tied tensor twice (tok_emb.weight and head.weight)
    state = model.state_dict()
    assert "tok_emb.weight" in state and "head.weight" in state
    assert sum(v.numel() for v in state.values()) == GPT_TINY_PARAMS + 1000 * 64


# --- full-size output shapes on meta ------------------------------------------------------


@pytest.mark.parametrize("name", IMAGENET)
def test_full_size_shape_on_meta(name: str) -> None:
    model = meta(name).eval()
    out = model(torch.empty(2, 3, 224, 224, device="meta"))
    assert out.shape == (2, 1000)


def test_unet_572_to_388_on_meta() -> None:
    model = meta("unet_original")
    out = model(torch.empty(1, 1, 572, 572, device="meta"))
    assert out.shape == (1, 2, 388, 388)


# --- state_dict layout spot checks (torchvision's key names and shapes) -------------------


def test_mobilenet_v2_keys() -> None:
    s = shapes(meta("mobilenet_v2"))
    assert s["features.0.0.weight"] == (32, 3, 3, 3)
    assert s["features.0.1.running_var"] == (32,)
    assert s["features.1.conv.0.0.weight"] == (32, 1, 3, 3)  # t=1: no expand conv
    assert s["features.1.conv.1.weight"] == (16, 32, 1, 1)
    assert s["features.1.conv.2.weight"] == (16,)
    assert s["features.2.conv.0.0.weight"] == (96, 16, 1, 1)  # expand
    assert s["features.2.conv.1.0.weight"] == (96, 1, 3, 3)  # depthwise
    assert s["features.2.conv.2.weight"] == (24, 96, 1, 1)  # project
    assert s["features.2.conv.3.num_batches_tracked"] == ()
    assert s["features.17.conv.2.weight"] == (320, 960, 1, 1)
    assert s["features.18.0.weight"] == (1280, 320, 1, 1)
    assert s["classifier.1.weight"] == (1000, 1280)
    assert "features.19.0.weight" not in s and "classifier.0.weight" not in s


def test_efficientnet_b0_keys_and_stochastic_depth() -> None:
    model = meta("efficientnet_b0")
    s = shapes(model)
    assert s["features.0.0.weight"] == (32, 3, 3, 3)
    assert s["features.1.0.block.0.0.weight"] == (32, 1, 3, 3)  # expand 1: depthwise first
    assert s["features.1.0.block.1.fc1.weight"] == (8, 32, 1, 1)
    assert s["features.1.0.block.1.fc2.bias"] == (32,)
    assert s["features.1.0.block.2.0.weight"] == (16, 32, 1, 1)
    assert s["features.2.0.block.0.0.weight"] == (96, 16, 1, 1)
    assert s["features.2.0.block.1.0.weight"] == (96, 1, 3, 3)
    assert s["features.2.0.block.2.fc1.weight"] == (4, 96, 1, 1)  # squeeze = in // 4
    assert s["features.2.0.block.3.0.weight"] == (24, 96, 1, 1)
    assert s["features.3.0.block.1.0.weight"] == (144, 1, 5, 5)
    assert s["features.6.3.block.2.fc1.weight"] == (48, 1152, 1, 1)
    assert s["features.8.0.weight"] == (1280, 320, 1, 1)
    assert s["classifier.1.weight"] == (1000, 1280)
    assert not any(k.startswith("features.9") for k in s)
    probs = [m.p for m in model.modules() if isinstance(m, zoo.StochasticDepth)]
    assert probs == [0.2 * i / 16 for i in range(16)]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    # torchvision's efficientnet_b0 uses nn.BatchNorm2d defaults (only B5-B7 use 1e-3 / 0.01)
    assert bns and all(m.eps == 1e-5 and m.momentum == 0.1 for m in bns)
    tf = meta("efficientnet_b0", bn_eps=1e-3, bn_momentum=0.01)
    assert all(
        m.eps == 1e-3 and m.momentum == 0.01 for m in tf.modules() if isinstance(m, nn.BatchNorm2d)
    )


def test_convnext_tiny_keys_exact() -> None:
    model = meta("convnext_tiny")
    expected = {
        "features.0.0.weight",
        "features.0.0.bias",
        "features.0.1.weight",
        "features.0.1.bias",
        "classifier.0.weight",
        "classifier.0.bias",
        "classifier.2.weight",
        "classifier.2.bias",
    }
    for stage, n in zip((1, 3, 5, 7), (3, 3, 9, 3), strict=True):
        for b in range(n):
            p = f"features.{stage}.{b}."
            expected.add(p + "layer_scale")
            for i in (0, 2, 3, 5):
                expected |= {f"{p}block.{i}.weight", f"{p}block.{i}.bias"}
    for down in (2, 4, 6):
        for i in (0, 1):
            expected |= {f"features.{down}.{i}.weight", f"features.{down}.{i}.bias"}
    s = shapes(model)
    assert set(s) == expected
    assert s["features.0.0.weight"] == (96, 3, 4, 4)
    assert s["features.1.0.block.0.weight"] == (96, 1, 7, 7)
    assert s["features.1.0.block.3.weight"] == (384, 96)
    assert s["features.1.0.layer_scale"] == (96, 1, 1)
    assert s["features.2.1.weight"] == (192, 96, 2, 2)
    assert s["features.7.2.block.5.weight"] == (768, 3072)
    assert s["classifier.2.weight"] == (1000, 768)
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 18 + 1 + 3 + 1 and all(m.eps == 1e-6 for m in norms)
    probs = [m.p for m in model.modules() if isinstance(m, zoo.StochasticDepth)]
    assert probs == [0.1 * i / 17 for i in range(18)] and probs[-1] == pytest.approx(0.1)


def test_shufflenet_v2_keys() -> None:
    s = shapes(meta("shufflenet_v2_x1_0"))
    assert s["conv1.0.weight"] == (24, 3, 3, 3)
    assert s["stage2.0.branch1.0.weight"] == (24, 1, 3, 3)
    assert s["stage2.0.branch1.2.weight"] == (58, 24, 1, 1)
    assert s["stage2.0.branch1.3.weight"] == (58,)
    assert s["stage2.0.branch2.0.weight"] == (58, 24, 1, 1)
    assert s["stage2.0.branch2.3.weight"] == (58, 1, 3, 3)
    assert s["stage2.0.branch2.5.weight"] == (58, 58, 1, 1)
    assert s["stage2.1.branch2.0.weight"] == (58, 58, 1, 1)
    assert not any(k.startswith("stage2.1.branch1") for k in s)  # empty Sequential
    assert s["stage3.7.branch2.6.weight"] == (116,)
    assert s["stage4.3.branch2.5.weight"] == (232, 232, 1, 1)
    assert s["conv5.0.weight"] == (1024, 464, 1, 1)
    assert s["fc.weight"] == (1000, 1024)
    assert "stage3.8.branch2.0.weight" not in s and "stage4.4.branch2.0.weight" not in s


def test_densenet121_keys_exact() -> None:
    s = shapes(meta("densenet121"))
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = {"features.conv0.weight", "classifier.weight", "classifier.bias"}
    expected |= {f"features.norm0.{t}" for t in bn} | {f"features.norm5.{t}" for t in bn}
    for b, n in enumerate((6, 12, 24, 16), start=1):
        for layer in range(1, n + 1):
            p = f"features.denseblock{b}.denselayer{layer}."
            expected |= {p + "conv1.weight", p + "conv2.weight"}
            expected |= {f"{p}norm{i}.{t}" for i in (1, 2) for t in bn}
        if b < 4:
            expected |= {f"features.transition{b}.norm.{t}" for t in bn}
            expected.add(f"features.transition{b}.conv.weight")
    assert set(s) == expected
    assert s["features.denseblock1.denselayer1.norm1.weight"] == (64,)
    assert s["features.denseblock1.denselayer1.conv1.weight"] == (128, 64, 1, 1)
    assert s["features.denseblock1.denselayer1.conv2.weight"] == (32, 128, 3, 3)
    assert s["features.denseblock1.denselayer6.norm1.weight"] == (224,)
    assert s["features.transition1.conv.weight"] == (128, 256, 1, 1)
    assert s["features.transition3.conv.weight"] == (512, 1024, 1, 1)
    assert s["features.norm5.weight"] == (1024,)
    assert s["classifier.weight"] == (1000, 1024)


def test_vit_b_16_keys_exact() -> None:
    s = shapes(meta("vit_b_16"))
    per_layer = [
        "ln_1.weight",
        "ln_1.bias",
        "self_attention.in_proj_weight",
        "self_attention.in_proj_bias",
        "self_attention.out_proj.weight",
        "self_attention.out_proj.bias",
        "ln_2.weight",
        "ln_2.bias",
        "mlp.0.weight",
        "mlp.0.bias",
        "mlp.3.weight",
        "mlp.3.bias",
    ]
    expected = {
        "class_token",
        "conv_proj.weight",
        "conv_proj.bias",
        "encoder.pos_embedding",
        "encoder.ln.weight",
        "encoder.ln.bias",
        "heads.head.weight",
        "heads.head.bias",
    }
    expected |= {f"encoder.layers.encoder_layer_{i}.{k}" for i in range(12) for k in per_layer}
    assert set(s) == expected
    assert s["class_token"] == (1, 1, 768)
    assert s["conv_proj.weight"] == (768, 3, 16, 16)
    assert s["encoder.pos_embedding"] == (1, 197, 768)
    assert s["encoder.layers.encoder_layer_0.self_attention.in_proj_weight"] == (2304, 768)
    assert s["encoder.layers.encoder_layer_11.mlp.3.weight"] == (768, 3072)
    assert s["heads.head.weight"] == (1000, 768)
    norms = [m for m in meta("vit_b_16").modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 25 and all(m.eps == 1e-6 for m in norms)


def test_unet_and_gpt_keys() -> None:
    u = shapes(meta("unet_original"))
    assert u["enc1.0.weight"] == (64, 1, 3, 3) and u["enc5.2.weight"] == (1024, 1024, 3, 3)
    assert u["up4.weight"] == (1024, 512, 2, 2)  # ConvTranspose2d: (in, out, k, k)
    assert u["dec4.0.weight"] == (512, 1024, 3, 3) and u["head.weight"] == (2, 64, 1, 1)
    assert all(
        m.padding == (0, 0) for m in meta("unet_original").modules() if isinstance(m, nn.Conv2d)
    )
    g = shapes(meta("gpt_tiny"))
    assert g["pos_emb.weight"] == (64, 64)
    assert g["blocks.1.self_attn.in_proj_weight"] == (192, 64)
    assert g["blocks.0.linear1.weight"] == (256, 64) and g["ln_f.weight"] == (64,)
    assert "head.bias" not in g
    assert all(re.match(r"(tok_emb|pos_emb|ln_f|head|blocks\.[01])\.", k) for k in g)


# --- real forward passes at small sizes (eval) --------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["mobilenet_v2", "efficientnet_b0", "convnext_tiny", "shufflenet_v2_x1_0", "densenet121"],
)
def test_small_forward(name: str) -> None:
    torch.manual_seed(0)
    model = getattr(zoo, name)(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        again = model(x)  # eval: dropout and stochastic depth are identities
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert torch.equal(out, again)


def test_small_vit_forward() -> None:
    torch.manual_seed(0)
    model = zoo.VisionTransformer(
        image_size=32,
        patch_size=16,
        num_layers=2,
        num_heads=4,
        hidden_dim=32,
        mlp_dim=64,
        num_classes=5,
    ).eval()
    assert model.encoder.pos_embedding.shape == (1, 5, 32)
    nn.init.normal_(model.get_parameter("heads.head.weight"))  # torchvision zero-inits it
    with torch.no_grad():
        out = model(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 5) and out.abs().sum() > 0


def test_unet_forward_572_narrow() -> None:
    torch.manual_seed(0)
    model = zoo.unet_original(base=4).eval()  # same topology, 1/16 of the width
    with torch.no_grad():
        out = model(torch.randn(1, 1, 572, 572))
    assert out.shape == (1, 2, 388, 388)


# --- behaviour of the building blocks -----------------------------------------------------


def test_stochastic_depth_is_identity_in_eval_and_drops_rows_in_training() -> None:
    sd = zoo.StochasticDepth(0.5, "row")
    x = torch.ones(64, 3, 2, 2)
    assert sd.eval()(x) is x
    torch.manual_seed(0)
    y = sd.train()(x)
    per_row = y.flatten(1)
    assert set(per_row.unique().tolist()) == {0.0, 2.0}
    assert all(len(r.unique()) == 1 for r in per_row)  # one draw per sample
    assert zoo.StochasticDepth(0.0, "row").train()(x) is x


def test_channel_shuffle_and_shufflenet_split() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert zoo.channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    unit = zoo.ShuffleInvertedResidual(8, 8, 1).eval()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        out = unit(x)
    # the first half passes through untouched and lands on the even channels
    assert torch.equal(out[:, 0::2], x[:, :4])


def test_gpt_tied_weight_is_one_tensor() -> None:
    model = zoo.gpt_tiny()
    assert model.head.weight is model.tok_emb.weight
    state = model.state_dict()
    assert state["head.weight"].data_ptr() == state["tok_emb.weight"].data_ptr()
    assert zoo.count_parameters(model) == GPT_TINY_PARAMS


@pytest.mark.parametrize("grad", [True, False])
def test_gpt_is_causal(grad: bool) -> None:
    torch.manual_seed(0)
    model = zoo.gpt_tiny().eval()  # no_grad + eval takes nn.TransformerEncoderLayer's fast path
    idx = torch.randint(0, 1000, (2, 64))
    changed = idx.clone()
    changed[:, 40] = (changed[:, 40] + 1) % 1000
    with torch.set_grad_enabled(grad):
        a = model(idx)
        b = model(changed)
    assert a.shape == (2, 64, 1000)
    torch.testing.assert_close(a[:, :40], b[:, :40], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 40:], b[:, 40:])
    with pytest.raises(ValueError):
        model(torch.zeros(1, 65, dtype=torch.long))
