"""Transfer learning from PyTorch files (.pth state dicts, as torchvision and timm publish
them) with `rename:`; and hostile weight files, which are refused without running anything.

The reference is a hand-written ResNet-18 with torchvision's exact module layout and names
(no torchvision here): its state dict, saved as a .pth, loads into specs/resnet18.yaml and the
two networks then compute the same outputs.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_specs import _torchvision_resnet18_state_dict
from torch import nn

import dlspec
from conftest import SPECS
from dlspec.errors import SpecError
from dlspec.spec.sections import TransferConfig
from dlspec.train.transfer import apply_transfer, read_weights

# --- torchvision's ResNet-18, written out (torchvision/models/resnet.py) -------------------


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                         nn.BatchNorm2d(planes))
                           if stride != 1 or inplanes != planes else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, inplanes = (64, 128, 256, 512), 64
        for i, planes in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(inplanes, planes, stride),
                                                     BasicBlock(planes, planes)))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, H/32, W/32)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _pretrained(in_channels: int = 3, num_classes: int = 1000, seed: int = 0) -> ResNet18:
    """The reference with random weights and batch-norm statistics, as if trained."""
    torch.manual_seed(seed)
    model = ResNet18(in_channels, num_classes)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(1234)
    return model.eval()


def _renamed_spec(text: str) -> str:
    """resnet18.yaml with other names than torchvision's, as another zoo would have them:
    stages stage1..stage4, the head `classifier`."""
    text = re.sub(r"\{name: layer(\d), basic:", r"{name: stage\1, basic:", text)
    return text.replace("{name: fc, linear:", "{name: classifier, linear:")


# torchvision's names → those of _renamed_spec
RENAME = {r"^layer(\d)\.": r"stage\1.", r"^fc\.": "classifier."}


def test_the_reference_has_torchvisions_state_dict() -> None:
    state = ResNet18().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == _torchvision_resnet18_state_dict()


def test_a_torchvision_pth_loads_into_resnet18_and_computes_the_same(tmp_path: Path) -> None:
    reference = _pretrained()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    x = torch.randn(1, 3, 64, 64)
    text = (SPECS / "resnet18.yaml").read_text()
    for spec, rename in ((text, {}), (_renamed_spec(text), RENAME)):
        model = dlspec.compile_spec(dlspec.loads(spec))
        report = apply_transfer(model, TransferConfig(init_from="resnet18.pth", rename=rename),
                                tmp_path)
        assert len(report.loaded) == 122 and report.loaded == list(model.state_dict())
        assert report.skipped == {} and report.unused == [] and report.entry is None
        assert len(report.renamed) == (122 - 6 if rename else 0)  # all but the stem
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(x), reference(x), rtol=0, atol=0)
    assert "classifier.weight" in model.state_dict() and "fc.weight" not in model.state_dict()
    assert report.lines() == [
        f"Transfer from {tmp_path / 'resnet18.pth'}: 122 tensors loaded, 0 skipped, 0 "
        "parameters frozen.", "- rename changed the names of 116 of the file's tensors"]


def test_a_new_head_is_reported_skipped_and_the_old_one_unused(tmp_path: Path) -> None:
    torch.save({"epoch": 90, "state_dict": _pretrained().state_dict()}, tmp_path / "ckpt.pt")
    text = (SPECS / "resnet18.yaml").read_text().replace("{name: fc, linear:",
                                                         "{name: head, linear:")
    model = dlspec.compile_spec(dlspec.loads(text, variant="digits"))  # 1 channel, 10 classes
    section = TransferConfig(init_from="ckpt.pt", freeze=["layer*"])
    report = apply_transfer(model, section, tmp_path)
    assert report.entry == "state_dict"
    assert report.skipped == {"conv1.weight": "shape (64, 3, 7, 7) in the checkpoint, "
                                              "(64, 1, 7, 7) here",
                              "head.weight": "missing from the checkpoint",
                              "head.bias": "missing from the checkpoint"}
    assert report.unused == ["fc.weight", "fc.bias"]
    assert len(report.loaded) == 119 and len(report.frozen) == 8 * 6 + 3 * 3
    lines = report.lines()
    assert lines[0].endswith("119 tensors loaded, 3 skipped (conv1.weight, head.weight, "
                             "head.bias), 57 parameters frozen; 2 of the file's tensors "
                             "unused (fc.weight, fc.bias).")
    assert "- unused in the file: fc.weight, fc.bias" in lines


def test_rename_collisions_and_names_that_match_nothing_are_located(tmp_path: Path) -> None:
    save_file({"encoder.w": torch.zeros(2), "decoder.w": torch.zeros(2)},
              str(tmp_path / "w.safetensors"))
    model = nn.Sequential(nn.Linear(2, 2))
    for rename, path, message in [
        ({r"^\w+\.": "x."}, ("transfer", "rename"),
         "'decoder.w' and 'encoder.w' are both renamed 'x.w'"),
        ({}, ("transfer", "init_from"), "none of the 2 tensors of w.safetensors has the name"),
    ]:
        with pytest.raises(SpecError, match=message) as caught:
            apply_transfer(model, TransferConfig(init_from="w.safetensors", rename=rename),
                           tmp_path)
        assert caught.value.problems[0].path == path
    # a timm/Hugging Face safetensors file under other names: rename reaches them
    save_file({"module.0.weight": torch.ones(2, 2), "module.0.bias": torch.ones(2),
               "module.head.weight": torch.ones(3)}, str(tmp_path / "w.safetensors"))
    report = apply_transfer(model, TransferConfig(init_from="w.safetensors",
                                                  rename={r"^module\.": ""}), tmp_path)
    assert report.loaded == ["0.weight", "0.bias"] and report.unused == ["module.head.weight"]
    assert "unused in the file: module.head.weight (renamed head.weight)" in report.lines()[-1]
    assert torch.equal(model[0].weight, torch.ones(2, 2))


@pytest.mark.parametrize(("rename", "message"), [
    ({"(": "x"}, "not a regular expression: missing \\), unterminated subpattern"),
    ({"(a+)+$": ""}, "a repetition inside a repetition, which can make matching take "
                     "exponential time"),
    ({"(ab|a)*": ""}, "alternatives inside a repetition"),
    ({"(a)\\1": ""}, "a back-reference"),
    ({"^(a)": "\\2"}, "bad replacement '\\\\2': invalid group reference 2"),
    ({"a" * 201: ""}, "a pattern of 201 characters is too long"),
])
def test_bad_rename_patterns_are_spec_errors_at_the_pattern(rename: dict[str, str],
                                                            message: str) -> None:
    (pattern, replacement), = rename.items()
    quoted = "'" + pattern.replace("'", "''") + "': '" + replacement.replace("'", "''") + "'"
    text = ((SPECS / "resnet18.yaml").read_text()
            + "transfer:\n  init_from: w.pth\n  rename: {" + quoted + "}\n")
    with pytest.raises(SpecError, match=message) as caught:
        dlspec.loads(text, "spec.yaml")
    problem = caught.value.problems[0]
    assert problem.path == ("transfer", "rename", pattern)
    assert problem.location is not None and problem.location.line == text.count("\n")


# --- hostile files --------------------------------------------------------------------------

class _Payload:
    """What an attacker pickles: unpickling it would call os.system."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def _zip_pth(path: Path, **records: bytes) -> None:
    """A torch.save archive of one tensor, with records replaced (`data.pkl`, `data/0`)."""
    torch.save({"w": torch.zeros(4)}, path)
    with zipfile.ZipFile(path) as archive:
        items = [(i.filename, archive.read(i.filename)) for i in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in items:
            short = name.split("/", 1)[1]
            archive.writestr(name, records.get(short, data),
                             compress_type=zipfile.ZIP_DEFLATED if short == "data/0"
                             and "deflate" in records else zipfile.ZIP_STORED)


def _hostile_files(folder: Path, marker: Path) -> dict[str, str]:
    """name → message: weight files an attacker could hand over, and why each is refused."""
    command = f"touch {marker}"
    torch.save({"w": torch.zeros(2), "x": _Payload(command)}, folder / "reduce.pth")
    torch.save({"w": torch.zeros(2), "x": _Payload(command)}, folder / "legacy.pth",
               _use_new_zipfile_serialization=False)
    (folder / "bare.pth").write_bytes(pickle.dumps(_Payload(command), protocol=2))
    buffer = io.BytesIO()
    pickle.dump({"w": _Payload(command)}, buffer, protocol=2)
    _zip_pth(folder / "inner.pth", **{"data.pkl": buffer.getvalue()})
    torch.save({"w": torch.zeros(2), "epoch": 3}, folder / "number.pth")
    torch.save([torch.zeros(2)], folder / "list.pth")
    torch.save({3: torch.zeros(2)}, folder / "key.pth")
    torch.save({}, folder / "empty.pth")
    torch.save({"state_dict": {"w": torch.zeros(2), "n": "text"}}, folder / "wrapped.pth")
    whole = (folder / "number.pth").read_bytes()
    (folder / "truncated.pth").write_bytes(whole[:len(whole) // 2])
    _zip_pth(folder / "deflated.pth", deflate=b"", **{"data/0": bytes(16)})
    (folder / "garbage.safetensors").write_bytes(b"\xff" * 64)
    (folder / "huge.safetensors").write_bytes(  # a header claiming an exabyte tensor
        (64).to_bytes(8, "little") + b'{"w":{"dtype":"F32","shape":[1000000000000000000],'
        b'"data_offsets":[0,4]}}'.ljust(64))
    refused = "refused unread, and nothing in it ran"
    return {"reduce.pth": refused, "legacy.pth": refused, "bare.pth": refused,
            "inner.pth": refused, "number.pth": "maps 'epoch' to a int, not a tensor",
            "list.pth": "it holds a list, not a state dict", "empty.pth": "holds no tensors",
            "key.pth": "has a key 3 that is not a string",
            "wrapped.pth": "its 'state_dict' entry maps 'n' to a str, not a tensor",
            "truncated.pth": "not a readable PyTorch file, or it is truncated",
            "deflated.pth": "its record 'deflated/data/0' is compressed",
            "garbage.safetensors": "neither a safetensors file nor a PyTorch file",
            "huge.safetensors": "neither a safetensors file nor a PyTorch file"}


def test_hostile_weight_files_are_refused_and_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    cases = _hostile_files(tmp_path, marker)
    for name, message in cases.items():
        with pytest.raises(SpecError, match=message) as caught:
            read_weights(tmp_path / name)
        assert caught.value.problems[0].path == ("transfer", "init_from"), name
        assert not marker.exists(), f"{name}: unpickling ran the attacker's command"
    assert pickle.loads.__module__ == "_pickle"  # the test's own payload is real:
    with pytest.raises(pickle.UnpicklingError):  # torch refuses it...
        torch.load(tmp_path / "reduce.pth", weights_only=True)
    pickle.loads((tmp_path / "bare.pth").read_bytes())  # ...where plain pickle would run it
    assert marker.exists()


# --- through the CLI --------------------------------------------------------------------------

def _dlspec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlspec", *args], capture_output=True,
                          text=True, timeout=300)


def test_train_command_fine_tunes_from_a_pth_and_refuses_a_hostile_one(tmp_path: Path) -> None:
    reference = _pretrained(in_channels=1, num_classes=10)
    # a training checkpoint of a data-parallel run: names prefixed `module.`, under "model"
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}
    torch.save({"model": state, "epoch": 90, "arch": "resnet18"}, tmp_path / "pretrained.pth")
    spec = tmp_path / "resnet18.yaml"
    spec.write_text((SPECS / "resnet18.yaml").read_text())
    images = torch.Generator().manual_seed(0)
    numpy.savez(tmp_path / "tiny.npz", x=torch.randn(64, 1, 16, 16, generator=images).numpy(),
                y=torch.randint(0, 10, (64,), generator=images).numpy())
    tiny = ["--variant", "digits", "--epochs", "1", "--set", "params.size=16", "--set",
            "data={npz: tiny.npz, split: {train: 0.5, val: 0.25, test: 0.25}}",
            "--set", "train.batch_size=32"]
    transfer = "transfer={init_from: %s, rename: {'^module\\.': ''}, freeze: [conv1, bn1, layer1]}"
    run = tmp_path / "run"
    result = _dlspec("train", str(spec), "--out", str(run), *tiny,
                     "--set", transfer % "pretrained.pth")
    assert result.returncode == 0, result.stderr
    assert (f"Transfer from {tmp_path / 'pretrained.pth'} (its 'model' entry): 122 tensors "
            "loaded, 0 skipped, 15 parameters frozen.") in result.stderr
    trained = load_file(str(run / "model.safetensors"))
    assert torch.equal(trained["layer1.0.conv1.weight"], reference.layer1[0].conv1.weight)
    assert torch.equal(trained["bn1.running_mean"], reference.bn1.running_mean)  # frozen
    assert not torch.equal(trained["fc.weight"], reference.fc.weight)  # trained
    assert "rename changed the names of 122 of the file's tensors" in (
        run / "report.md").read_text()
    # an attacker's .pth: exit 2, located at transfer.init_from, and nothing ran
    marker = tmp_path / "pwned"
    torch.save({"conv1.weight": torch.zeros(1), "x": _Payload(f"touch {marker}")},
               tmp_path / "evil.pth")
    result = _dlspec("train", str(spec), "--out", str(tmp_path / "evil"), *tiny,
                     "--set", transfer % "evil.pth")
    assert result.returncode == 2, result.stderr
    assert "transfer.init_from" in result.stderr and "nothing in it ran" in result.stderr
    assert "Traceback" not in result.stderr and not marker.exists()


def test_names_from_the_file_are_printed_harmlessly(tmp_path: Path) -> None:
    save_file({"0.weight": torch.ones(2, 2), "\x1b[2J\nfake line": torch.ones(1)},
              str(tmp_path / "w.safetensors"))
    report = apply_transfer(nn.Sequential(nn.Linear(2, 2)),
                            TransferConfig(init_from="w.safetensors"), tmp_path)
    assert report.unused == ["\x1b[2J\nfake line"]  # the data keeps the name as it is...
    text = "\n".join(report.lines())
    assert "\x1b" not in text and "?[2J?fake line" in text  # ...its account does not
    assert len(text.splitlines()) == len(report.lines())
