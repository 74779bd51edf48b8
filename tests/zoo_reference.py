"""Hand-written PyTorch reference implementations of well-known networks.

Each torchvision-derived model here reproduces torchvision's module tree exactly: the same
attribute names, the same nesting (``nn.Sequential`` indices included), the same parameter
and buffer shapes, so that ``state_dict().keys()`` equal torchvision's and a torchvision
checkpoint loads with ``load_state_dict(strict=True)``.  The forward passes follow
torchvision's operation order (where norms and activations sit, eps values, where stochastic
depth is applied, in-place residual adds), so that the same weights give the same outputs.
torchvision itself is not needed (nor installed): everything is plain ``torch.nn``.

The layouts were written against torchvision's ``torchvision/models/*.py`` and
``torchvision/ops/{misc,stochastic_depth}.py`` (0.13+ layout; ``Conv2dNormActivation`` is an
``nn.Sequential`` of conv, norm, activation, so its children are ``.0``, ``.1``, ``.2``).

Besides those, two models without a torchvision counterpart:

* ``unet_original`` -- the U-Net of Ronneberger et al. 2015, exactly as the paper's figure 1;
* ``gpt_tiny`` -- a small GPT-2-style decoder built from ``nn.TransformerEncoderLayer``.

This is a plain module of classes and builders for the tests (``test_zoo_reference.py``);
it holds no test functions.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Conv2dNormActivation",
    "SqueezeExcitation",
    "StochasticDepth",
    "Permute",
    "MLP",
    "MobileNetV2",
    "mobilenet_v2",
    "EfficientNet",
    "efficientnet_b0",
    "ConvNeXt",
    "LayerNorm2d",
    "convnext_tiny",
    "ShuffleNetV2",
    "shufflenet_v2_x1_0",
    "channel_shuffle",
    "DenseNet",
    "densenet121",
    "VisionTransformer",
    "vit_b_16",
    "UNet",
    "unet_original",
    "GPTTiny",
    "gpt_tiny",
    "count_parameters",
]


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a tied weight counts once, as ``parameters()`` does)."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# torchvision.ops building blocks
# ---------------------------------------------------------------------------------------------


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision.models._utils._make_divisible (from the TF MobileNet code): round ``v`` to
    the nearest multiple of ``divisor`` that is not below 90 % of ``v``."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """torchvision.ops.misc.Conv2dNormActivation: ``Sequential(conv, norm, activation)``.

    Children: ``0`` Conv2d, ``1`` norm (if any), then the activation (if any) at the next
    index.  ``padding`` defaults to ``(kernel_size - 1) // 2 * dilation`` ("same" for odd
    kernels at stride 1); the conv has a bias only when there is no norm, unless ``bias``
    says otherwise.  The activation is built with ``inplace=True``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        norm_layer: Callable[..., nn.Module] | None = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
        dilation: int = 1,
        inplace: bool | None = True,
        bias: bool | None = None,
    ) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        if bias is None:
            bias = norm_layer is None
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation=dilation,
                groups=groups,
                bias=bias,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            params = {} if inplace is None else {"inplace": inplace}
            layers.append(activation_layer(**params))
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """torchvision.ops.misc.SqueezeExcitation (Hu et al. 2018, "Squeeze-and-Excitation
    Networks", arXiv:1709.01507).

    ``avgpool`` (AdaptiveAvgPool2d(1)) -> ``fc1`` (1x1 conv with bias) -> ``activation`` ->
    ``fc2`` (1x1 conv with bias) -> ``scale_activation`` (Sigmoid); the result multiplies the
    input (``scale * input``).  Keys: ``fc1.weight``, ``fc1.bias``, ``fc2.weight``, ``fc2.bias``.
    """

    def __init__(
        self,
        input_channels: int,
        squeeze_channels: int,
        activation: Callable[..., nn.Module] = nn.ReLU,
        scale_activation: Callable[..., nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, input: Tensor) -> Tensor:
        scale = self.avgpool(input)
        scale = self.fc1(scale)
        scale = self.activation(scale)
        scale = self.fc2(scale)
        return self.scale_activation(scale)

    def forward(self, input: Tensor) -> Tensor:
        scale = self._scale(input)
        return scale * input


def stochastic_depth(input: Tensor, p: float, mode: str, training: bool = True) -> Tensor:
    """torchvision.ops.stochastic_depth (Huang et al. 2016, "Deep Networks with Stochastic
    Depth", arXiv:1603.09382).  Identity when not training or ``p == 0``; otherwise multiplies
    by a Bernoulli(1 - p) mask (one draw per sample in "row" mode, one per batch in "batch"
    mode) scaled by ``1 / (1 - p)``."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if mode not in ("batch", "row"):
        raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
    if not training or p == 0.0:
        return input
    survival_rate = 1.0 - p
    size = [input.shape[0]] + [1] * (input.ndim - 1) if mode == "row" else [1] * input.ndim
    noise = torch.empty(size, dtype=input.dtype, device=input.device)
    noise = noise.bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return input * noise


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth: module form of :func:`stochastic_depth` (no
    parameters, no buffers)."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, input: Tensor) -> Tensor:
        return stochastic_depth(input, self.p, self.mode, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class Permute(nn.Module):
    """torchvision.ops.misc.Permute: ``torch.permute(x, dims)`` as a module."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return torch.permute(x, self.dims)


class MLP(nn.Sequential):
    """torchvision.ops.misc.MLP: for every hidden size but the last, ``Linear`` -> [norm] ->
    activation -> ``Dropout``; then a final ``Linear`` -> ``Dropout``.  With two sizes and no
    norm the children are ``0`` Linear, ``1`` activation, ``2`` Dropout, ``3`` Linear,
    ``4`` Dropout."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: list[int],
        norm_layer: Callable[..., nn.Module] | None = None,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
        inplace: bool | None = None,
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        params = {} if inplace is None else {"inplace": inplace}
        layers: list[nn.Module] = []
        in_dim = in_channels
        for hidden_dim in hidden_channels[:-1]:
            layers.append(nn.Linear(in_dim, hidden_dim, bias=bias))
            if norm_layer is not None:
                layers.append(norm_layer(hidden_dim))
            if activation_layer is not None:
                layers.append(activation_layer(**params))
            layers.append(nn.Dropout(dropout, **params))
            in_dim = hidden_dim
        layers.append(nn.Linear(in_dim, hidden_channels[-1], bias=bias))
        layers.append(nn.Dropout(dropout, **params))
        super().__init__(*layers)


# ---------------------------------------------------------------------------------------------
# MobileNetV2
# ---------------------------------------------------------------------------------------------


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual block (torchvision.models.mobilenetv2.InvertedResidual).

    ``conv`` is a Sequential: [``Conv2dNormActivation`` 1x1 expand, ReLU6] (only when
    ``expand_ratio != 1``), ``Conv2dNormActivation`` 3x3 depthwise (stride here, ReLU6),
    ``Conv2d`` 1x1 project (no bias), ``BatchNorm2d`` (linear bottleneck: no activation).
    Residual ``x + conv(x)`` when stride 1 and in == out channels.
    """

    def __init__(
        self,
        inp: int,
        oup: int,
        stride: int,
        expand_ratio: int,
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.stride = stride
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2 instead of {stride}")
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = self.stride == 1 and inp == oup

        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(
                Conv2dNormActivation(
                    inp, hidden_dim, kernel_size=1, norm_layer=norm_layer, activation_layer=nn.ReLU6
                )
            )
        layers.extend(
            [
                Conv2dNormActivation(
                    hidden_dim,
                    hidden_dim,
                    stride=stride,
                    groups=hidden_dim,
                    norm_layer=norm_layer,
                    activation_layer=nn.ReLU6,
                ),
                nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
                norm_layer(oup),
            ]
        )
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup
        self._is_cn = stride > 1

    def forward(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear
    Bottlenecks", arXiv:1801.04381), torchvision layout.

    ``features``: ``0`` Conv2dNormActivation(3, 32, 3x3, stride 2, BN, ReLU6); ``1``..``17``
    InvertedResidual blocks from the (t, c, n, s) table, the stride on the first block of each
    group; ``18`` Conv2dNormActivation(320, 1280, 1x1, BN, ReLU6).  Then
    ``adaptive_avg_pool2d(1)`` + flatten (functional, not modules) and ``classifier``:
    ``0`` Dropout(0.2), ``1`` Linear(1280, num_classes).  BatchNorm2d has default
    eps 1e-5 / momentum 0.1.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        inverted_residual_setting: list[list[int]] | None = None,
        round_nearest: int = 8,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        norm_layer = nn.BatchNorm2d
        input_channel = 32
        last_channel = 1280
        if inverted_residual_setting is None:
            inverted_residual_setting = [
                # t, c, n, s
                [1, 16, 1, 1],
                [6, 24, 2, 2],
                [6, 32, 3, 2],
                [6, 64, 4, 2],
                [6, 96, 3, 1],
                [6, 160, 3, 2],
                [6, 320, 1, 1],
            ]
        input_channel = _make_divisible(input_channel * width_mult, round_nearest)
        self.last_channel = _make_divisible(last_channel * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [
            Conv2dNormActivation(
                3, input_channel, stride=2, norm_layer=norm_layer, activation_layer=nn.ReLU6
            )
        ]
        for t, c, n, s in inverted_residual_setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                stride = s if i == 0 else 1
                features.append(
                    InvertedResidual(
                        input_channel, output_channel, stride, expand_ratio=t, norm_layer=norm_layer
                    )
                )
                input_channel = output_channel
        features.append(
            Conv2dNormActivation(
                input_channel,
                self.last_channel,
                kernel_size=1,
                norm_layer=norm_layer,
                activation_layer=nn.ReLU6,
            )
        )
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(self.last_channel, num_classes),
        )

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)


def mobilenet_v2(num_classes: int = 1000) -> MobileNetV2:
    """MobileNetV2, width 1.0 (torchvision ``mobilenet_v2``): 3,504,872 parameters."""
    return MobileNetV2(num_classes=num_classes)


# ---------------------------------------------------------------------------------------------
# EfficientNet-B0
# ---------------------------------------------------------------------------------------------


class MBConvConfig:
    """One stage row of EfficientNet's table 1 (torchvision.models.efficientnet.MBConvConfig),
    with width/depth scaling applied."""

    def __init__(
        self,
        expand_ratio: float,
        kernel: int,
        stride: int,
        input_channels: int,
        out_channels: int,
        num_layers: int,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
    ) -> None:
        self.expand_ratio = expand_ratio
        self.kernel = kernel
        self.stride = stride
        self.input_channels = self.adjust_channels(input_channels, width_mult)
        self.out_channels = self.adjust_channels(out_channels, width_mult)
        self.num_layers = int(math.ceil(num_layers * depth_mult))

    @staticmethod
    def adjust_channels(channels: int, width_mult: float, min_value: int | None = None) -> int:
        return _make_divisible(channels * width_mult, 8, min_value)

    def copy(self) -> MBConvConfig:
        new = MBConvConfig.__new__(MBConvConfig)
        new.__dict__.update(self.__dict__)
        return new


class MBConv(nn.Module):
    """EfficientNet mobile inverted bottleneck (torchvision.models.efficientnet.MBConv).

    ``block`` Sequential: [``Conv2dNormActivation`` 1x1 expand, SiLU] (only if the expanded
    width differs from the input width, i.e. not in stage 1), ``Conv2dNormActivation``
    kxk depthwise (stride here, SiLU), ``SqueezeExcitation(expanded, max(1, in // 4), SiLU)``
    (squeeze width from the block's *input* channels), ``Conv2dNormActivation`` 1x1 project
    with no activation.  With a residual (stride 1 and in == out): ``result =
    stochastic_depth(block(x)); result += x`` -- stochastic depth only on residual blocks,
    applied to the branch before the add.
    """

    def __init__(
        self,
        cnf: MBConvConfig,
        stochastic_depth_prob: float,
        norm_layer: Callable[..., nn.Module],
        se_layer: Callable[..., nn.Module] = SqueezeExcitation,
    ) -> None:
        super().__init__()
        if not (1 <= cnf.stride <= 2):
            raise ValueError("illegal stride value")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels

        layers: list[nn.Module] = []
        activation_layer = nn.SiLU
        expanded_channels = cnf.adjust_channels(cnf.input_channels, cnf.expand_ratio)
        if expanded_channels != cnf.input_channels:
            layers.append(
                Conv2dNormActivation(
                    cnf.input_channels,
                    expanded_channels,
                    kernel_size=1,
                    norm_layer=norm_layer,
                    activation_layer=activation_layer,
                )
            )
        layers.append(
            Conv2dNormActivation(
                expanded_channels,
                expanded_channels,
                kernel_size=cnf.kernel,
                stride=cnf.stride,
                groups=expanded_channels,
                norm_layer=norm_layer,
                activation_layer=activation_layer,
            )
        )
        squeeze_channels = max(1, cnf.input_channels // 4)
        layers.append(
            se_layer(expanded_channels, squeeze_channels, activation=partial(nn.SiLU, inplace=True))
        )
        layers.append(
            Conv2dNormActivation(
                expanded_channels,
                cnf.out_channels,
                kernel_size=1,
                norm_layer=norm_layer,
                activation_layer=None,
            )
        )
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = cnf.out_channels

    def forward(self, input: Tensor) -> Tensor:
        result = self.block(input)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += input
        return result


class EfficientNet(nn.Module):
    """EfficientNet (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional
    Neural Networks", arXiv:1905.11946), torchvision layout (V1 part).

    ``features``: ``0`` Conv2dNormActivation(3, 32, 3x3, stride 2, BN, SiLU); ``1``..``7``
    one ``nn.Sequential`` of ``MBConv`` per stage (stride on the stage's first block);
    ``8`` Conv2dNormActivation(320, 4 * 320 = 1280, 1x1, BN, SiLU).  ``avgpool``
    (AdaptiveAvgPool2d(1)), ``torch.flatten(x, 1)``, ``classifier``: ``0``
    Dropout(p, inplace=True), ``1`` Linear.  Stochastic depth prob of block ``i`` (counting
    all blocks from 0, 16 in B0) is ``stochastic_depth_prob * i / 16``: linear from 0 up to
    (but not reaching) 0.2.
    """

    def __init__(
        self,
        inverted_residual_setting: Sequence[MBConvConfig],
        dropout: float,
        stochastic_depth_prob: float = 0.2,
        num_classes: int = 1000,
        norm_layer: Callable[..., nn.Module] | None = None,
        last_channel: int | None = None,
    ) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d

        layers: list[nn.Module] = []
        firstconv_output_channels = inverted_residual_setting[0].input_channels
        layers.append(
            Conv2dNormActivation(
                3,
                firstconv_output_channels,
                kernel_size=3,
                stride=2,
                norm_layer=norm_layer,
                activation_layer=nn.SiLU,
            )
        )
        total_stage_blocks = sum(cnf.num_layers for cnf in inverted_residual_setting)
        stage_block_id = 0
        for cnf in inverted_residual_setting:
            stage: list[nn.Module] = []
            for _ in range(cnf.num_layers):
                block_cnf = cnf.copy()
                if stage:
                    block_cnf.input_channels = block_cnf.out_channels
                    block_cnf.stride = 1
                sd_prob = stochastic_depth_prob * float(stage_block_id) / total_stage_blocks
                stage.append(MBConv(block_cnf, sd_prob, norm_layer))
                stage_block_id += 1
            layers.append(nn.Sequential(*stage))

        lastconv_input_channels = inverted_residual_setting[-1].out_channels
        lastconv_output_channels = (
            last_channel if last_channel is not None else 4 * lastconv_input_channels
        )
        layers.append(
            Conv2dNormActivation(
                lastconv_input_channels,
                lastconv_output_channels,
                kernel_size=1,
                norm_layer=norm_layer,
                activation_layer=nn.SiLU,
            )
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(lastconv_output_channels, num_classes),
        )

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                init_range = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -init_range, init_range)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def efficientnet_b0(
    num_classes: int = 1000,
    stochastic_depth_prob: float = 0.2,
    bn_eps: float = 1e-5,
    bn_momentum: float = 0.1,
) -> EfficientNet:
    """EfficientNet-B0 (torchvision ``efficientnet_b0``): 5,288,548 parameters.

    Stage table (expand, kernel, stride, in, out, layers): (1,3,1,32,16,1), (6,3,2,16,24,2),
    (6,5,2,24,40,2), (6,3,2,40,80,3), (6,5,1,80,112,3), (6,5,2,112,192,4), (6,3,1,192,320,1);
    classifier dropout 0.2.

    BatchNorm: torchvision's ``efficientnet_b0`` passes no ``norm_layer``, so B0..B4 use plain
    ``nn.BatchNorm2d`` (eps 1e-5, momentum 0.1); only B5..B7 get
    ``partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)`` and V2-S/M/L ``eps=1e-3``.  (The
    TF-original / "tf_efficientnet_b0" of timm uses eps 1e-3; pass ``bn_eps=1e-3,
    bn_momentum=0.01`` to get that.)
    """
    bneck_conf = partial(MBConvConfig, width_mult=1.0, depth_mult=1.0)
    setting = [
        bneck_conf(1, 3, 1, 32, 16, 1),
        bneck_conf(6, 3, 2, 16, 24, 2),
        bneck_conf(6, 5, 2, 24, 40, 2),
        bneck_conf(6, 3, 2, 40, 80, 3),
        bneck_conf(6, 5, 1, 80, 112, 3),
        bneck_conf(6, 5, 2, 112, 192, 4),
        bneck_conf(6, 3, 1, 192, 320, 1),
    ]
    if bn_eps == 1e-5 and bn_momentum == 0.1:
        norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d
    else:
        norm_layer = partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)
    return EfficientNet(
        setting,
        dropout=0.2,
        stochastic_depth_prob=stochastic_depth_prob,
        num_classes=num_classes,
        norm_layer=norm_layer,
    )


# ---------------------------------------------------------------------------------------------
# ConvNeXt-Tiny
# ---------------------------------------------------------------------------------------------


class LayerNorm2d(nn.LayerNorm):
    """torchvision.models.convnext.LayerNorm2d: LayerNorm over the channel axis of an NCHW
    tensor (permute to NHWC, ``F.layer_norm`` over C, permute back).  A subclass of
    ``nn.LayerNorm``, so its keys are ``weight`` and ``bias`` of shape (C,)."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        x = x.permute(0, 3, 1, 2)
        return x


class CNBlock(nn.Module):
    """ConvNeXt block (torchvision.models.convnext.CNBlock).

    ``block`` Sequential: ``0`` Conv2d(dim, dim, 7x7, padding 3, groups=dim, bias),
    ``1`` Permute(0,2,3,1), ``2`` nn.LayerNorm(dim, eps=1e-6), ``3`` Linear(dim, 4 dim),
    ``4`` GELU (exact), ``5`` Linear(4 dim, dim), ``6`` Permute(0,3,1,2).
    ``layer_scale`` is a bare ``nn.Parameter`` of shape (dim, 1, 1) initialised to 1e-6.
    ``result = layer_scale * block(x); result = stochastic_depth(result); result += x``.
    """

    def __init__(
        self,
        dim: int,
        layer_scale: float,
        stochastic_depth_prob: float,
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True),
            Permute([0, 2, 3, 1]),
            norm_layer(dim),
            nn.Linear(in_features=dim, out_features=4 * dim, bias=True),
            nn.GELU(),
            nn.Linear(in_features=4 * dim, out_features=dim, bias=True),
            Permute([0, 3, 1, 2]),
        )
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * layer_scale)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")

    def forward(self, input: Tensor) -> Tensor:
        result = self.layer_scale * self.block(input)
        result = self.stochastic_depth(result)
        result += input
        return result


class ConvNeXt(nn.Module):
    """ConvNeXt (Liu et al. 2022, "A ConvNet for the 2020s", arXiv:2201.03545), torchvision
    layout.

    ``features``: ``0`` stem = Conv2dNormActivation(3, 96, 4x4, stride 4, padding 0,
    LayerNorm2d(eps 1e-6), no activation, conv bias=True), i.e. children ``0.0`` conv and
    ``0.1`` norm; then alternately a stage ``nn.Sequential`` of CNBlocks (``1``, ``3``,
    ``5``, ``7``) and a downsampling ``nn.Sequential(LayerNorm2d(eps 1e-6), Conv2d 2x2
    stride 2 with bias)`` (``2``, ``4``, ``6``).  ``avgpool`` (AdaptiveAvgPool2d(1)),
    ``classifier``: ``0`` LayerNorm2d(768, eps 1e-6), ``1`` Flatten(1), ``2`` Linear.
    Stochastic depth of block ``i`` of ``N`` (all stages, from 0) is ``p * i / (N - 1)``:
    linear from 0 to exactly ``p`` on the last block.
    """

    def __init__(
        self,
        block_setting: list[tuple[int, int | None, int]],
        stochastic_depth_prob: float = 0.0,
        layer_scale: float = 1e-6,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        norm_layer = partial(LayerNorm2d, eps=1e-6)
        layers: list[nn.Module] = []
        firstconv_output_channels = block_setting[0][0]
        layers.append(
            Conv2dNormActivation(
                3,
                firstconv_output_channels,
                kernel_size=4,
                stride=4,
                padding=0,
                norm_layer=norm_layer,
                activation_layer=None,
                bias=True,
            )
        )
        total_stage_blocks = sum(n for _, _, n in block_setting)
        stage_block_id = 0
        for input_channels, out_channels, num_layers in block_setting:
            stage: list[nn.Module] = []
            for _ in range(num_layers):
                sd_prob = stochastic_depth_prob * stage_block_id / (total_stage_blocks - 1.0)
                stage.append(CNBlock(input_channels, layer_scale, sd_prob))
                stage_block_id += 1
            layers.append(nn.Sequential(*stage))
            if out_channels is not None:
                layers.append(
                    nn.Sequential(
                        norm_layer(input_channels),
                        nn.Conv2d(input_channels, out_channels, kernel_size=2, stride=2),
                    )
                )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last_in, last_out, _ = block_setting[-1]
        lastconv_output_channels = last_out if last_out is not None else last_in
        self.classifier = nn.Sequential(
            norm_layer(lastconv_output_channels),
            nn.Flatten(1),
            nn.Linear(lastconv_output_channels, num_classes),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        return self.classifier(x)


def convnext_tiny(num_classes: int = 1000, stochastic_depth_prob: float = 0.1) -> ConvNeXt:
    """ConvNeXt-Tiny (torchvision ``convnext_tiny``): depths (3, 3, 9, 3), widths
    (96, 192, 384, 768), layer scale 1e-6, stochastic depth 0.1; 28,589,128 parameters."""
    block_setting: list[tuple[int, int | None, int]] = [
        (96, 192, 3),
        (192, 384, 3),
        (384, 768, 9),
        (768, None, 3),
    ]
    return ConvNeXt(
        block_setting, stochastic_depth_prob=stochastic_depth_prob, num_classes=num_classes
    )


# ---------------------------------------------------------------------------------------------
# ShuffleNetV2 x1.0
# ---------------------------------------------------------------------------------------------


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """torchvision.models.shufflenetv2.channel_shuffle: view (N, g, C/g, H, W), swap the two
    channel axes, flatten back; for g=2 the output channel order is
    ``[c0, c_{C/2}, c1, c_{C/2+1}, ...]`` (interleave the two halves)."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, -1, height, width)


class ShuffleInvertedResidual(nn.Module):
    """ShuffleNetV2 unit (torchvision.models.shufflenetv2.InvertedResidual).

    stride 2 (first unit of a stage): ``branch1`` = Sequential(``0`` 3x3 depthwise conv
    stride 2 pad 1 no bias, ``1`` BN, ``2`` 1x1 conv no bias, ``3`` BN, ``4`` ReLU) on the
    whole input; ``branch2`` = Sequential(``0`` 1x1 conv, ``1`` BN, ``2`` ReLU, ``3`` 3x3
    depthwise stride 2, ``4`` BN, ``5`` 1x1 conv, ``6`` BN, ``7`` ReLU) on the whole input;
    ``out = cat(branch1(x), branch2(x))``.
    stride 1: ``branch1`` is an *empty* Sequential (no keys); ``x1, x2 = x.chunk(2, dim=1)``
    (first half, second half), ``out = cat(x1, branch2(x2))``.
    Then ``channel_shuffle(out, 2)``.  No activation after either depthwise conv.
    """

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        if not (1 <= stride <= 3):
            raise ValueError("illegal stride value")
        self.stride = stride
        branch_features = oup // 2
        if (self.stride == 1) and (inp != branch_features << 1):
            raise ValueError(f"Invalid combination of stride {stride}, inp {inp} and oup {oup}")

        if self.stride > 1:
            self.branch1 = nn.Sequential(
                self.depthwise_conv(inp, inp, kernel_size=3, stride=self.stride, padding=1),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch_features, kernel_size=1, stride=1, padding=0, bias=False),
                nn.BatchNorm2d(branch_features),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()

        self.branch2 = nn.Sequential(
            nn.Conv2d(
                inp if (self.stride > 1) else branch_features,
                branch_features,
                kernel_size=1,
                stride=1,
                padding=0,
                bias=False,
            ),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True),
            self.depthwise_conv(
                branch_features, branch_features, kernel_size=3, stride=self.stride, padding=1
            ),
            nn.BatchNorm2d(branch_features),
            nn.Conv2d(
                branch_features, branch_features, kernel_size=1, stride=1, padding=0, bias=False
            ),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True),
        )

    @staticmethod
    def depthwise_conv(
        i: int, o: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = False
    ) -> nn.Conv2d:
        return nn.Conv2d(i, o, kernel_size, stride, padding, bias=bias, groups=i)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 (Ma et al. 2018, "ShuffleNet V2: Practical Guidelines for Efficient CNN
    Architecture Design", arXiv:1807.11164), torchvision layout.

    ``conv1`` Sequential(``0`` Conv2d(3, 24, 3x3, stride 2, pad 1, no bias), ``1`` BN,
    ``2`` ReLU); ``maxpool`` MaxPool2d(3, 2, padding 1); ``stage2``/``stage3``/``stage4``
    Sequentials of units (first has stride 2); ``conv5`` Sequential(``0`` 1x1 conv no bias,
    ``1`` BN, ``2`` ReLU); ``x.mean([2, 3])``; ``fc`` Linear.  BatchNorm2d defaults
    (eps 1e-5).
    """

    def __init__(
        self,
        stages_repeats: list[int],
        stages_out_channels: list[int],
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        if len(stages_repeats) != 3:
            raise ValueError("expected stages_repeats as list of 3 positive ints")
        if len(stages_out_channels) != 5:
            raise ValueError("expected stages_out_channels as list of 5 positive ints")
        self._stage_out_channels = stages_out_channels

        input_channels = 3
        output_channels = self._stage_out_channels[0]
        self.conv1 = nn.Sequential(
            nn.Conv2d(input_channels, output_channels, 3, 2, 1, bias=False),
            nn.BatchNorm2d(output_channels),
            nn.ReLU(inplace=True),
        )
        input_channels = output_channels
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.stage2: nn.Sequential
        self.stage3: nn.Sequential
        self.stage4: nn.Sequential
        stage_names = [f"stage{i}" for i in (2, 3, 4)]
        for name, repeats, output_channels in zip(
            stage_names, stages_repeats, self._stage_out_channels[1:], strict=False
        ):
            seq = [ShuffleInvertedResidual(input_channels, output_channels, 2)]
            for _ in range(repeats - 1):
                seq.append(ShuffleInvertedResidual(output_channels, output_channels, 1))
            setattr(self, name, nn.Sequential(*seq))
            input_channels = output_channels

        output_channels = self._stage_out_channels[-1]
        self.conv5 = nn.Sequential(
            nn.Conv2d(input_channels, output_channels, 1, 1, 0, bias=False),
            nn.BatchNorm2d(output_channels),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(output_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = self.maxpool(x)
        x = self.stage2(x)
        x = self.stage3(x)
        x = self.stage4(x)
        x = self.conv5(x)
        x = x.mean([2, 3])
        return self.fc(x)


def shufflenet_v2_x1_0(num_classes: int = 1000) -> ShuffleNetV2:
    """ShuffleNetV2 x1.0 (torchvision ``shufflenet_v2_x1_0``): repeats (4, 8, 4), channels
    (24, 116, 232, 464, 1024); 2,278,604 parameters."""
    return ShuffleNetV2([4, 8, 4], [24, 116, 232, 464, 1024], num_classes=num_classes)


# ---------------------------------------------------------------------------------------------
# DenseNet-121
# ---------------------------------------------------------------------------------------------


class _DenseLayer(nn.Module):
    """DenseNet-BC layer (torchvision.models.densenet._DenseLayer): on the channel concat of
    all previous features, ``norm1`` BN -> ``relu1`` -> ``conv1`` 1x1 (bn_size * k, no bias)
    -> ``norm2`` BN -> ``relu2`` -> ``conv2`` 3x3 pad 1 (k, no bias) [-> dropout].
    Pre-activation order: BN and ReLU come *before* each conv."""

    def __init__(
        self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(
            num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False
        )
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False
        )
        self.drop_rate = float(drop_rate)

    def forward(self, prev_features: list[Tensor]) -> Tensor:
        concated_features = torch.cat(prev_features, 1)
        bottleneck_output = self.conv1(self.relu1(self.norm1(concated_features)))
        new_features = self.conv2(self.relu2(self.norm2(bottleneck_output)))
        if self.drop_rate > 0:
            new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
        return new_features


class _DenseBlock(nn.ModuleDict):
    """torchvision.models.densenet._DenseBlock: a ModuleDict ``denselayer1``..``denselayerN``;
    the output is ``cat([input, new_1, ..., new_N], dim=1)`` (input first)."""

    def __init__(
        self,
        num_layers: int,
        num_input_features: int,
        bn_size: int,
        growth_rate: int,
        drop_rate: float,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(
                num_input_features + i * growth_rate,
                growth_rate=growth_rate,
                bn_size=bn_size,
                drop_rate=drop_rate,
            )
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features: Tensor) -> Tensor:
        features = [init_features]
        for _, layer in self.items():
            new_features = layer(features)
            features.append(new_features)
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    """torchvision.models.densenet._Transition: ``norm`` BN -> ``relu`` -> ``conv`` 1x1
    (halves the channels, no bias) -> ``pool`` AvgPool2d(2, 2)."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(
            num_input_features, num_output_features, kernel_size=1, stride=1, bias=False
        )
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """DenseNet-BC (Huang et al. 2017, "Densely Connected Convolutional Networks",
    arXiv:1608.06993), torchvision layout.

    ``features`` is a named Sequential: ``conv0`` (7x7, stride 2, pad 3, no bias), ``norm0``,
    ``relu0``, ``pool0`` (MaxPool 3, 2, pad 1), then ``denseblock1``, ``transition1``, ...,
    ``denseblock4`` (no transition after the last), ``norm5`` (BN, no ReLU inside
    ``features``).  Forward: ``F.relu(features(x))``, adaptive avg pool to 1x1, flatten,
    ``classifier`` Linear.  (torchvision's ``memory_efficient`` checkpointing only changes
    memory, not values or keys, and is left out.)
    """

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple[int, int, int, int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    (
                        "conv0",
                        nn.Conv2d(
                            3, num_init_features, kernel_size=7, stride=2, padding=3, bias=False
                        ),
                    ),
                    ("norm0", nn.BatchNorm2d(num_init_features)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ]
            )
        )
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(
                num_layers=num_layers,
                num_input_features=num_features,
                bn_size=bn_size,
                growth_rate=growth_rate,
                drop_rate=drop_rate,
            )
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                trans = _Transition(
                    num_input_features=num_features, num_output_features=num_features // 2
                )
                self.features.add_module(f"transition{i + 1}", trans)
                num_features = num_features // 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        features = self.features(x)
        out = F.relu(features, inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        out = torch.flatten(out, 1)
        return self.classifier(out)


def densenet121(num_classes: int = 1000) -> DenseNet:
    """DenseNet-121 (torchvision ``densenet121``): k=32, blocks (6, 12, 24, 16), 64 initial
    features, bn_size 4; 7,978,856 parameters."""
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes)


# ---------------------------------------------------------------------------------------------
# ViT-B/16
# ---------------------------------------------------------------------------------------------


# torchvision's ViT norm_layer default: partial(nn.LayerNorm, eps=1e-6)
_LAYER_NORM_EPS_1E6 = partial(nn.LayerNorm, eps=1e-6)


class MLPBlock(MLP):
    """torchvision.models.vision_transformer.MLPBlock: ``MLP(in, [mlp_dim, in], GELU,
    dropout)``; keys ``0.weight``/``0.bias`` (fc1) and ``3.weight``/``3.bias`` (fc2)."""

    def __init__(self, in_dim: int, mlp_dim: int, dropout: float) -> None:
        super().__init__(
            in_dim, [mlp_dim, in_dim], activation_layer=nn.GELU, inplace=None, dropout=dropout
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.normal_(m.bias, std=1e-6)


class EncoderBlock(nn.Module):
    """torchvision.models.vision_transformer.EncoderBlock (pre-norm):
    ``x = dropout(self_attention(ln_1(input))) + input``; ``return x + mlp(ln_2(x))``.
    ``self_attention`` is ``nn.MultiheadAttention(batch_first=True)`` (keys
    ``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``) called with
    ``need_weights=False``; LayerNorms eps 1e-6."""

    def __init__(
        self,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float,
        attention_dropout: float,
        norm_layer: Callable[..., nn.Module] = _LAYER_NORM_EPS_1E6,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.ln_1 = norm_layer(hidden_dim)
        self.self_attention = nn.MultiheadAttention(
            hidden_dim, num_heads, dropout=attention_dropout, batch_first=True
        )
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = norm_layer(hidden_dim)
        self.mlp = MLPBlock(hidden_dim, mlp_dim, dropout)

    def forward(self, input: Tensor) -> Tensor:
        torch._assert(input.dim() == 3, f"Expected (batch, seq, hidden) got {input.shape}")
        x = self.ln_1(input)
        x, _ = self.self_attention(query=x, key=x, value=x, need_weights=False)
        x = self.dropout(x)
        x = x + input
        y = self.ln_2(x)
        y = self.mlp(y)
        return x + y


class Encoder(nn.Module):
    """torchvision.models.vision_transformer.Encoder: ``pos_embedding`` is a bare
    ``nn.Parameter`` of shape (1, seq_length, hidden) added to the input, then ``dropout``,
    ``layers`` (a Sequential with *named* children ``encoder_layer_0``..), then ``ln``."""

    def __init__(
        self,
        seq_length: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float,
        attention_dropout: float,
        norm_layer: Callable[..., nn.Module] = _LAYER_NORM_EPS_1E6,
    ) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden_dim).normal_(std=0.02))
        self.dropout = nn.Dropout(dropout)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(num_layers):
            layers[f"encoder_layer_{i}"] = EncoderBlock(
                num_heads, hidden_dim, mlp_dim, dropout, attention_dropout, norm_layer
            )
        self.layers = nn.Sequential(layers)
        self.ln = norm_layer(hidden_dim)

    def forward(self, input: Tensor) -> Tensor:
        torch._assert(input.dim() == 3, f"Expected (batch, seq, hidden) got {input.shape}")
        input = input + self.pos_embedding
        return self.ln(self.layers(self.dropout(input)))


class VisionTransformer(nn.Module):
    """Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words",
    arXiv:2010.11929), torchvision layout (no conv stem, no representation layer).

    ``conv_proj`` Conv2d(3, hidden, patch x patch, stride patch, bias) -> reshape to
    (N, hidden, n_patches) -> permute to (N, n_patches, hidden); prepend ``class_token``
    (bare ``nn.Parameter`` (1, 1, hidden), expanded over the batch) along dim 1; ``encoder``;
    take token 0; ``heads`` Sequential with the named child ``head`` (Linear).
    """

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        num_classes: int = 1000,
        norm_layer: Callable[..., nn.Module] = _LAYER_NORM_EPS_1E6,
    ) -> None:
        super().__init__()
        torch._assert(image_size % patch_size == 0, "Input shape indivisible by patch size!")
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.mlp_dim = mlp_dim
        self.attention_dropout = attention_dropout
        self.dropout = dropout
        self.num_classes = num_classes
        self.norm_layer = norm_layer

        self.conv_proj = nn.Conv2d(
            in_channels=3, out_channels=hidden_dim, kernel_size=patch_size, stride=patch_size
        )
        seq_length = (image_size // patch_size) ** 2
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        seq_length += 1
        self.encoder = Encoder(
            seq_length,
            num_layers,
            num_heads,
            hidden_dim,
            mlp_dim,
            dropout,
            attention_dropout,
            norm_layer,
        )
        self.seq_length = seq_length
        head = nn.Linear(hidden_dim, num_classes)
        heads_layers: OrderedDict[str, nn.Module] = OrderedDict()
        heads_layers["head"] = head
        self.heads = nn.Sequential(heads_layers)

        kh, kw = self.conv_proj.kernel_size
        fan_in = self.conv_proj.in_channels * kh * kw
        nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        if self.conv_proj.bias is not None:
            nn.init.zeros_(self.conv_proj.bias)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)

    def _process_input(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        p = self.patch_size
        torch._assert(h == self.image_size, f"Wrong image height! Expected {self.image_size}")
        torch._assert(w == self.image_size, f"Wrong image width! Expected {self.image_size}")
        n_h = h // p
        n_w = w // p
        x = self.conv_proj(x)
        x = x.reshape(n, self.hidden_dim, n_h * n_w)
        return x.permute(0, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self._process_input(x)
        n = x.shape[0]
        batch_class_token = self.class_token.expand(n, -1, -1)
        x = torch.cat([batch_class_token, x], dim=1)
        x = self.encoder(x)
        x = x[:, 0]
        return self.heads(x)


def vit_b_16(num_classes: int = 1000, image_size: int = 224) -> VisionTransformer:
    """ViT-B/16 (torchvision ``vit_b_16``): patch 16, 12 layers, 12 heads, hidden 768,
    MLP 3072, image 224 (197 tokens); 86,567,656 parameters."""
    return VisionTransformer(
        image_size=image_size,
        patch_size=16,
        num_layers=12,
        num_heads=12,
        hidden_dim=768,
        mlp_dim=3072,
        num_classes=num_classes,
    )


# ---------------------------------------------------------------------------------------------
# U-Net (original)
# ---------------------------------------------------------------------------------------------


class DoubleConv(nn.Sequential):
    """Two valid (unpadded) 3x3 convolutions with bias, each followed by ReLU: children
    ``0`` Conv2d, ``1`` ReLU, ``2`` Conv2d, ``3`` ReLU.  Shrinks each side by 4 pixels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=0),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=0),
            nn.ReLU(inplace=True),
        )


def center_crop(x: Tensor, height: int, width: int) -> Tensor:
    """Crop the spatial centre of ``x`` to ``height`` x ``width`` (U-Net's skip crop); when the
    margin is odd the extra pixel is dropped at the bottom / right."""
    h, w = x.shape[-2:]
    top = (h - height) // 2
    left = (w - width) // 2
    return x[..., top : top + height, left : left + width]


class UNet(nn.Module):
    """The original U-Net (Ronneberger, Fischer & Brox 2015, "U-Net: Convolutional Networks
    for Biomedical Image Segmentation", arXiv:1505.04597, figure 1).  No torchvision
    counterpart; the names here are this module's own.

    Contracting path: ``enc1``..``enc5`` DoubleConv (1->64, 64->128, 128->256, 256->512,
    512->1024), ``pool`` MaxPool2d(2, 2) between them.  Expanding path, for level 4..1:
    ``up{i}`` ConvTranspose2d(2C, C, 2x2, stride 2, bias) ("up-convolution" halving the
    channels), concat ``[crop(enc_i output), upsampled]`` along channels (skip first, as in the
    figure's left-to-right order), ``dec{i}`` DoubleConv(2C, C).  ``head`` 1x1 Conv2d(64,
    n_classes).  No normalisation, no padding: 572x572 in -> 388x388 out.  (The paper's
    drop-out at the end of the contracting path is a training-time augmentation with no
    parameters; it is left out.)

    Parameter count, base width 64 (every conv has a bias), ``k*k*cin*cout + cout`` each:
      enc1  1*64*9+64 = 640        + 64*64*9+64 = 36,928        ->    37,568
      enc2  64*128*9+128 = 73,856  + 128*128*9+128 = 147,584    ->   221,440
      enc3  128*256*9+256 = 295,168 + 256*256*9+256 = 590,080   ->   885,248
      enc4  256*512*9+512 = 1,180,160 + 512*512*9+512 = 2,359,808 -> 3,539,968
      enc5  512*1024*9+1024 = 4,719,616 + 1024*1024*9+1024 = 9,438,208 -> 14,157,824
      up4   1024*512*4+512 = 2,097,664;  dec4 1024*512*9+512 = 4,719,104 + 2,359,808
      up3   512*256*4+256 = 524,544;     dec3 512*256*9+256 = 1,179,904 + 590,080
      up2   256*128*4+128 = 131,200;     dec2 256*128*9+128 = 295,040 + 147,584
      up1   128*64*4+64 = 32,832;        dec1 128*64*9+64 = 73,792 + 36,928
      head  64*2+2 = 130
      contracting 37,568 + 221,440 + 885,248 + 3,539,968 + 14,157,824 = 18,842,048
      expanding   9,176,576 + 2,294,528 + 573,824 + 143,552 = 12,188,480
      total       18,842,048 + 12,188,480 + 130 = 31,030,658
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, base: int = 64) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = base, 2 * base, 4 * base, 8 * base, 16 * base
        self.enc1 = DoubleConv(in_channels, c1)
        self.enc2 = DoubleConv(c1, c2)
        self.enc3 = DoubleConv(c2, c3)
        self.enc4 = DoubleConv(c3, c4)
        self.enc5 = DoubleConv(c4, c5)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.up4 = nn.ConvTranspose2d(c5, c4, kernel_size=2, stride=2)
        self.dec4 = DoubleConv(2 * c4, c4)
        self.up3 = nn.ConvTranspose2d(c4, c3, kernel_size=2, stride=2)
        self.dec3 = DoubleConv(2 * c3, c3)
        self.up2 = nn.ConvTranspose2d(c3, c2, kernel_size=2, stride=2)
        self.dec2 = DoubleConv(2 * c2, c2)
        self.up1 = nn.ConvTranspose2d(c2, c1, kernel_size=2, stride=2)
        self.dec1 = DoubleConv(2 * c1, c1)
        self.head = nn.Conv2d(c1, n_classes, kernel_size=1)

    @staticmethod
    def _merge(skip: Tensor, up: Tensor) -> Tensor:
        return torch.cat([center_crop(skip, up.shape[-2], up.shape[-1]), up], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        e4 = self.enc4(self.pool(e3))
        e5 = self.enc5(self.pool(e4))
        d4 = self.dec4(self._merge(e4, self.up4(e5)))
        d3 = self.dec3(self._merge(e3, self.up3(d4)))
        d2 = self.dec2(self._merge(e2, self.up2(d3)))
        d1 = self.dec1(self._merge(e1, self.up1(d2)))
        return self.head(d1)


def unet_original(in_channels: int = 1, n_classes: int = 2, base: int = 64) -> UNet:
    """The 2015 U-Net: 1 input channel, 2 classes, widths 64..1024; 31,030,658 parameters."""
    return UNet(in_channels=in_channels, n_classes=n_classes, base=base)


# ---------------------------------------------------------------------------------------------
# Tiny GPT-2-style decoder
# ---------------------------------------------------------------------------------------------


class GPTTiny(nn.Module):
    """A small GPT-2-style decoder-only language model (Radford et al. 2019, "Language
    Models are Unsupervised Multitask Learners"; pre-LN blocks as in GPT-2 section 2.3).

    ``tok_emb`` Embedding(vocab, d) + ``pos_emb`` Embedding(context, d) (learned absolute
    positions, looked up with ``arange(T)``) -> ``drop`` -> ``blocks`` (a ModuleList of
    ``nn.TransformerEncoderLayer(d, heads, 4 d, dropout, activation="gelu",
    batch_first=True, norm_first=True)``, each called with a causal float mask (-inf above the
    diagonal) and ``is_causal=True``) -> ``ln_f`` LayerNorm(d) -> ``head`` Linear(d, vocab,
    bias=False) whose ``weight`` *is* ``tok_emb.weight`` (tied: one tensor, counted once by
    ``parameters()``, but present under both keys in ``state_dict()``).

    Inside each layer (norm_first): ``x = x + dropout1(self_attn(norm1(x)))``;
    ``x = x + dropout2(linear2(dropout(gelu(linear1(norm2(x))))))``.  GELU is the exact
    (erf) form, not GPT-2's tanh approximation; LayerNorm eps 1e-5 (GPT-2's value).
    """

    def __init__(
        self,
        vocab_size: int = 1000,
        context: int = 64,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.context = context
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(context, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model,
                n_heads,
                dim_feedforward=4 * d_model,
                dropout=dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(n_layers)
        )
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight

    def forward(self, idx: Tensor) -> Tensor:
        t = idx.shape[1]
        if t > self.context:
            raise ValueError(f"sequence of {t} tokens is longer than the context {self.context}")
        pos = torch.arange(t, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=idx.device, dtype=x.dtype)
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        return self.head(self.ln_f(x))


def gpt_tiny(
    vocab_size: int = 1000,
    context: int = 64,
    d_model: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    dropout: float = 0.0,
) -> GPTTiny:
    """Tiny GPT-2-style decoder: vocab 1000, context 64, d 64, 2 layers, 4 heads, FF 256;
    168,192 parameters with the tied head counted once:
    tok_emb 1000*64 = 64,000; pos_emb 64*64 = 4,096;
    per layer: in_proj 3*64*64+3*64 = 12,480, out_proj 64*64+64 = 4,160,
    linear1 64*256+256 = 16,640, linear2 256*64+64 = 16,448, norm1 + norm2 2*128 = 256
    -> 49,984, times 2 = 99,968; ln_f 128; head 0 (tied, no bias)."""
    return GPTTiny(vocab_size, context, d_model, n_layers, n_heads, dropout)
