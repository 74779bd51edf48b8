"""Forward+backward time of compiled specs against the same networks written by hand.

The compiled models are `dlspec.compile_spec("specs/resnet18.yaml")` and
`dlspec.compile_spec("specs/lenet5.yaml")`; the hand-written ones are below, in plain PyTorch:
a torchvision-style ResNet-18 (BasicBlock with a conv1x1 + batch-norm `downsample`,
in-place ReLU, `out += identity`) and LeNet-5.

Before any timing, every parameter and buffer of the compiled model is set to random values
(batch-norm running statistics included, so a mix-up cannot hide behind ones and zeros),
copied into the hand-written model by order of matching shapes, and the two are checked to
compute the same function: equal outputs in eval and train mode, and equal gradients.

Timing: torch.set_num_threads(--threads); warm-up (≥ 3 iterations and ≥ 0.5 s of each
model); then rounds, each timing one block of iterations (≥ 50 ms) of each model, alternating
which goes first, for about --budget seconds per network (half that for LeNet-5). One
iteration is `zero_grad(set_to_none=True); cross_entropy(model(x), y).backward()` in train
mode. Reported: median time per iteration of each model, the ratio compiled/hand-written of
the medians (the headline), the median and quartiles of the per-round ratios (robust to drift
in machine load) and the ratio of the minima. Target: ratio ≤ 1.02.

It also reports the fixed per-call cost of each model: the best time of a no-grad eval
forward of one small sample (1×1×32×32 for LeNet-5, 1×3×32×32 for ResNet-18), where Python
overhead (module calls, the fx GraphModule wrapper) is a visible share of the time.

Usage: python benchmarks/compiled_vs_handwritten.py [--image-size 224] [--batch 8]
       [--lenet-batch 64] [--threads 2] [--budget 40] [--networks lenet5 resnet18]
ResNet-18 runs at batch 8 × 3×224×224 (ImageNet size); about 0.4 s per iteration on
2 quiet cores. The whole script takes about 1.5 minutes (the budget, plus warm-up and checks);
--image-size 112 is about 4× cheaper per iteration.
Reports only; the exit code is 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import dlspec

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.02


# --- the hand-written networks --------------------------------------------------------------


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock (expansion 1)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet18(nn.Module):
    """torchvision.models.resnet18() without its weight-init loop (weights are copied in)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 2)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


class LeNet5(nn.Module):
    """LeNet-5 on 1×32×32: conv 6@5×5, tanh, avgpool 2, conv 16@5×5, tanh, avgpool 2,
    linear 120, tanh, linear 84, tanh, linear 10."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)
        self.s2 = nn.AvgPool2d(2)
        self.c3 = nn.Conv2d(6, 16, kernel_size=5)
        self.s4 = nn.AvgPool2d(2)
        self.c5 = nn.Linear(16 * 5 * 5, 120)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.s2(torch.tanh(self.c1(x)))
        x = self.s4(torch.tanh(self.c3(x)))
        x = torch.flatten(x, 1)
        x = torch.tanh(self.c5(x))
        x = torch.tanh(self.f6(x))
        return self.output(x)


# --- same function: copy the weights, then check ---------------------------------------------


def randomise(model: nn.Module, seed: int = 0) -> None:
    """Give every parameter and float buffer distinct random values (variances positive)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            values = torch.randn(tensor.shape, generator=generator) * 0.1
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            elif name.endswith(".weight") and tensor.dim() == 1:  # norm scales near 1
                values = values + 1.0
            tensor.copy_(values)


def copy_weights(source: nn.Module, target: nn.Module) -> list[tuple[str, str]]:
    """Copy source's state into target, pairing entries in order by matching shape and role.

    Each target entry takes the first unused source entry with the same shape whose name ends
    the same way (weight, bias, running_mean, ...). Returns the (source, target) name pairs.
    """
    src = source.state_dict()
    dst = target.state_dict()
    if len(src) != len(dst):
        raise AssertionError(f"state_dicts differ in size: compiled {len(src)} entries, "
                             f"hand-written {len(dst)}")
    unused = list(src)
    pairs = []
    for name, tensor in dst.items():
        role = name.rsplit(".", 1)[-1]
        match = next((s for s in unused if src[s].shape == tensor.shape
                      and s.rsplit(".", 1)[-1] == role), None)
        if match is None:
            raise AssertionError(f"no compiled tensor left for hand-written {name} "
                                 f"{tuple(tensor.shape)}")
        unused.remove(match)
        pairs.append((match, name))
    target.load_state_dict({t: src[s].clone() for s, t in pairs})
    return pairs


def check_same_function(compiled: nn.Module, hand: nn.Module, x: torch.Tensor,
                        y: torch.Tensor, pairs: list[tuple[str, str]]) -> str:
    """Assert equal outputs (eval and train) and equal gradients; return a one-line note."""
    tolerance = {"rtol": 1e-4, "atol": 1e-5}
    compiled.eval()
    hand.eval()
    with torch.no_grad():
        a, b = compiled(x), hand(x)
    assert torch.allclose(a, b, **tolerance), f"eval outputs differ: {(a - b).abs().max():.3g}"
    eval_diff = (a - b).abs().max().item()
    compiled.train()
    hand.train()
    for model in (compiled, hand):
        model.zero_grad(set_to_none=True)
    a, b = compiled(x), hand(x)
    assert torch.allclose(a, b, **tolerance), f"train outputs differ: {(a - b).abs().max():.3g}"
    F.cross_entropy(a, y).backward()
    F.cross_entropy(b, y).backward()
    grads_a = dict(compiled.named_parameters())
    grads_b = dict(hand.named_parameters())
    worst = 0.0
    for s, t in pairs:
        if s in grads_a:
            ga, gb = grads_a[s].grad, grads_b[t].grad
            assert ga is not None and gb is not None, f"no gradient for {s} / {t}"
            assert torch.allclose(ga, gb, rtol=1e-3, atol=1e-5), f"gradients differ at {s} / {t}"
            worst = max(worst, (ga - gb).abs().max().item())
    return (f"same function: {len(pairs)} tensors copied; max |Δ| eval output {eval_diff:.1e}, "
            f"train output {(a - b).abs().max().item():.1e}, gradient {worst:.1e}")


# --- timing ----------------------------------------------------------------------------------


def step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
    return step


def block_time(step: Callable[[], None], iterations: int) -> float:
    """Mean seconds per iteration over one block."""
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    return (time.perf_counter() - start) / iterations


def compare(title: str, compiled: nn.Module, hand: nn.Module, x: torch.Tensor, y: torch.Tensor,
            budget: float, min_rounds: int, probe: torch.Tensor) -> dict[str, float]:
    """Check the two models agree, then time them interleaved for about `budget` seconds."""
    print(f"\n{title}")
    randomise(compiled)
    pairs = copy_weights(compiled, hand)
    print("  " + check_same_function(compiled, hand, x, y, pairs))
    compiled.train()
    hand.train()
    steps = {"compiled": step_fn(compiled, x, y), "hand-written": step_fn(hand, x, y)}
    # warm-up: at least 3 iterations and 0.5 s of each model; the fastest sizes the blocks
    one = min(block_time(step, 1) for step in steps.values() for _ in range(3))
    per_block = max(1, round(0.05 / one))  # blocks of ≥ 50 ms, so the timer's cost is nil
    for step in steps.values():
        block_time(step, max(1, round(0.5 / one)))
    times: dict[str, list[float]] = {k: [] for k in steps}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or (time.perf_counter() - start < budget and rounds < 1000):
        order = list(steps) if rounds % 2 == 0 else list(steps)[::-1]
        for key in order:
            times[key].append(block_time(steps[key], per_block))
        rounds += 1
    med = {k: statistics.median(v) for k, v in times.items()}
    with torch.no_grad():
        for model in (compiled, hand):
            model.eval()
        number = max(1, round(0.01 / timeit.timeit(lambda: hand(probe), number=1)))
        call = {"compiled": float("inf"), "hand-written": float("inf")}
        for _ in range(15):  # interleaved; best of 15 blocks of ≈ 10 ms
            for key, model in (("compiled", compiled), ("hand-written", hand)):
                seconds = timeit.timeit(lambda m=model: m(probe), number=number) / number
                call[key] = min(call[key], seconds)
    ratio = med["compiled"] / med["hand-written"]
    paired = [a / b for a, b in zip(times["compiled"], times["hand-written"], strict=True)]
    q = statistics.quantiles(paired, n=4)
    best = min(times["compiled"]) / min(times["hand-written"])
    print(f"  {rounds} rounds × {per_block} iteration(s) per model, interleaved, after warm-up")
    for key, value in med.items():
        print(f"  {key:13} median {value * 1e3:9.2f} ms/iteration "
              f"(min {min(times[key]) * 1e3:.2f}); no-grad forward of {shape(probe)} "
              f"{call[key] * 1e6:.0f} µs")
    verdict = "pass" if ratio <= TARGET_RATIO else "FAIL"
    print(f"  ratio compiled/hand-written: {ratio:.3f} of medians; per-round ratios: median "
          f"{statistics.median(paired):.3f}, quartiles {q[0]:.3f}–{q[2]:.3f}; of minima "
          f"{best:.3f}")
    noisy = q[2] - q[0] > 0.1 or abs(statistics.median(paired) - ratio) > 0.02
    print(f"  target ≤ {TARGET_RATIO}: {verdict}"
          + ("  (noisy: the machine was busy; rerun when it is quiet)" if noisy else ""))
    return {"ratio": ratio, **med}


def shape(tensor: torch.Tensor) -> str:
    return "×".join(str(d) for d in tensor.shape)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=224, help="ResNet-18 input side")
    parser.add_argument("--batch", type=int, default=8, help="ResNet-18 batch")
    parser.add_argument("--lenet-batch", type=int, default=64)
    parser.add_argument("--budget", type=float, default=40.0,
                        help="seconds of timed iterations per network (both models)")
    parser.add_argument("--networks", nargs="+", choices=["lenet5", "resnet18"],
                        default=["lenet5", "resnet18"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    if os.getloadavg()[0] > (os.cpu_count() or 1) / 2:
        print("warning: the machine is busy; timings will be noisy")

    if "lenet5" in args.networks:
        lenet5(args)
    if "resnet18" in args.networks:
        resnet18(args)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


def lenet5(args: argparse.Namespace) -> None:
    lenet = dlspec.compile_spec(ROOT / "specs/lenet5.yaml")
    x = torch.randn(args.lenet_batch, 1, 32, 32)
    y = torch.randint(0, 10, (args.lenet_batch,))
    compare(f"LeNet-5, batch {args.lenet_batch} × 1×32×32", lenet, LeNet5(), x, y,
            budget=args.budget / 2, min_rounds=10, probe=x[:1])


def resnet18(args: argparse.Namespace) -> None:
    resnet = dlspec.compile_spec(ROOT / "specs/resnet18.yaml")
    size = args.image_size
    x = torch.randn(args.batch, 3, size, size)
    y = torch.randint(0, 1000, (args.batch,))
    compare(f"ResNet-18, batch {args.batch} × 3×{size}×{size}", resnet, ResNet18(), x, y,
            budget=args.budget, min_rounds=5, probe=torch.randn(1, 3, 32, 32))


if __name__ == "__main__":
    sys.exit(main())
