"""Transfer learning: start from trained weights, load what fits, freeze what is asked.

`transfer: {init_from, rename, layers, freeze, strict}`. The weights come from

* a run folder (its model.safetensors) or any safetensors file, whatever its tensor names
  (timm's and Hugging Face's model.safetensors too);
* a PyTorch file written by `torch.save(model.state_dict(), path)`: torchvision's and timm's
  .pth / .pt / .bin weights. It is read with `torch.load(weights_only=True)`, which rebuilds
  tensors and plain containers only and refuses any other object unread, so nothing in the
  file runs. A training checkpoint that holds the state dict under "state_dict" (Lightning,
  timm's train script) or "model" (DeiT, MAE ...) is read from that entry; its other entries
  are ignored. Compressed zip records are refused (torch.save never writes them; they would
  let a small file unpack to any size).

The format is told by the file's first bytes, not its name. `rename` rewrites the file's
names (regular expressions, in order) before each of the model's tensors that `layers` selects
is looked up: loaded when the file has it with the same shape and dtype, otherwise skipped
with the reason (`strict: true` turns any skip into an error). The report also names the file's
tensors that nothing in the network took. A transfer that would load nothing is an error.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dlspec.errors import Problem, SpecError
from dlspec.spec.sections import TransferConfig
from dlspec.train.patterns import pattern_hint, selects

#: the entries of a training checkpoint that may hold its state dict, in the order tried
STATE_DICT_ENTRIES = ("state_dict", "model")
_WHERE = ("transfer", "init_from")
_SHOWN = 3  # names listed in a report's summary line before "and N more"


@dataclass
class TransferReport:
    """What `transfer` did: tensors loaded, skipped (with why) and frozen, and the file's
    tensors that matched nothing in the network (by their names in the file)."""

    source: Path
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # file name → name after `rename`
    entry: str | None = None  # the checkpoint entry the state dict was read from

    def lines(self) -> list[str]:
        """A short account for report.md and the console; the first line sums it up."""
        source = f"{self.source}" + (f" (its {self.entry!r} entry)" if self.entry else "")
        summary = (f"Transfer from {source}: {len(self.loaded)} tensors loaded, "
                   f"{len(self.skipped)} skipped{_few(list(self.skipped))}, "
                   f"{len(self.frozen)} parameters frozen")
        if self.unused:
            summary += (f"; {len(self.unused)} of the file's tensors unused"
                        f"{_few([self._as_named(n) for n in self.unused])}")
        out = [summary + "."]
        if self.renamed:
            out.append(f"- rename changed the names of {len(self.renamed)} of the file's "
                       "tensors")
        out += [f"- skipped {name}: {why}" for name, why in list(self.skipped.items())[:10]]
        if len(self.skipped) > 10:
            out.append(f"- ... and {len(self.skipped) - 10} more skipped")
        if self.unused:
            shown = ", ".join(self._as_named(n) for n in self.unused[:10])
            more = f" and {len(self.unused) - 10} more" if len(self.unused) > 10 else ""
            out.append(f"- unused in the file: {shown}{more}")
        return out

    def _as_named(self, name: str) -> str:
        """A name of the file, printable (it comes from an untrusted file)."""
        new = self.renamed.get(name)
        return _short(name) + (f" (renamed {_short(new)})" if new is not None else "")


def _few(names: list[str]) -> str:
    if not names:
        return ""
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return f" ({', '.join(names[:_SHOWN])}{more})"


def apply_transfer(model: torch.nn.Module, transfer: TransferConfig,
                   base_dir: Path) -> TransferReport:
    """Load the selected weights into `model` and freeze the `freeze` layers.

    Example:
        >>> section = TransferConfig(init_from="checkpoint.pth", rename={"^module[.]": ""})
        >>> apply_transfer(model, section, Path("specs")).lines()[0]  # doctest: +SKIP
        "Transfer from specs/checkpoint.pth (its 'model' entry): 122 tensors loaded, ..."
    """
    source = _source(transfer.init_from, base_dir)
    file_weights, entry = read_weights(source)
    weights, renamed = _renamed(file_weights, transfer.rename_rules)
    state = model.state_dict()
    names = list(state)
    _check_patterns(transfer.layers, names, "layers")
    _check_patterns(transfer.freeze, names, "freeze")
    report = TransferReport(source, renamed=renamed, entry=entry)
    chosen = {}
    for name, tensor in state.items():
        if not any(selects(p, name) for p in transfer.layers):
            continue
        if (why := _mismatch(weights.get(name), tensor)) is not None:
            report.skipped[name] = why
        else:
            chosen[name] = weights[name]
            report.loaded.append(name)
    by_new_name = {renamed.get(n, n): n for n in file_weights}
    report.unused = [by_new_name[n] for n in weights if n not in state]
    if not chosen:
        raise SpecError(_nothing_loaded(report, weights, names))
    if transfer.strict and report.skipped:
        first, why = next(iter(report.skipped.items()))
        raise SpecError(Problem(("transfer", "strict"), f"{len(report.skipped)} selected "
                                f"tensors cannot be loaded, e.g. {first}: {why}",
                                "narrow `layers`, or set strict: false"))
    model.load_state_dict(chosen, strict=False)
    for name, parameter in model.named_parameters():
        if any(selects(p, name) for p in transfer.freeze):
            parameter.requires_grad_(False)
            report.frozen.append(name)
    return report


def _mismatch(found: torch.Tensor | None, wanted: torch.Tensor) -> str | None:
    """Why the file's tensor cannot fill the model's, or None when it can."""
    if found is None:
        return "missing from the checkpoint"
    if found.layout != torch.strided:
        return f"a {str(found.layout).removeprefix('torch.')} tensor in the checkpoint"
    if found.shape != wanted.shape:
        return f"shape {tuple(found.shape)} in the checkpoint, {tuple(wanted.shape)} here"
    if found.dtype != wanted.dtype:  # loading would convert it silently
        return f"{_dtype(found.dtype)} in the checkpoint, {_dtype(wanted.dtype)} here"
    return None


def _nothing_loaded(report: TransferReport, weights: dict[str, torch.Tensor],
                    names: list[str]) -> Problem:
    """The error for a transfer that would load no tensor: most often names that differ."""
    found = [(n, why) for n, why in report.skipped.items() if n in weights]
    if found:
        name, why = found[0]
        return Problem(("transfer", "layers"), f"no tensor selected by `layers` can be loaded "
                       f"from {report.source.name}, e.g. {name}: {why}",
                       "select the layers whose shapes agree with the file's")
    theirs = ", ".join(_short(n) for n in list(weights)[:3])
    return Problem(_WHERE, f"none of the {len(weights)} tensors of {report.source.name} has "
                   f"the name of one of this network's (the file's: {theirs} ...; the "
                   f"network's: {', '.join(names[:3])} ...)", "map the file's names to the "
                   "network's with `transfer.rename` (regular expression → replacement); "
                   "`dlspec summary` shows the network's layer names")


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _source(path: str, base_dir: Path) -> Path:
    """The weights file, inside the spec's folder (a run folder means its model.safetensors)."""
    from dlspec.spec.paths import resolve_inside

    candidate = resolve_inside(base_dir, path, _WHERE)
    if candidate.is_dir():
        candidate = resolve_inside(base_dir, f"{path.rstrip('/')}/model.safetensors", _WHERE)
    if candidate.is_file():
        return candidate
    raise SpecError(Problem(_WHERE, f"no weights at '{_short(path)}' (looked in {base_dir}, the "
                            "spec's folder)", "point it at a run folder, a .safetensors file "
                            "or a .pth state_dict, relative to the spec"))


# --------------------------------------------------------------------------- reading files


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """The named tensors of a safetensors or PyTorch (torch.save) file, and the checkpoint
    entry they were read from (None: the file is the state dict itself).

    Never runs code from the file: safetensors holds no code, and a PyTorch file is read
    weights-only. Anything else wrong with the file is a SpecError at transfer.init_from.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(4)
    except OSError as exc:
        raise _bad(path, f"it cannot be read ({_short(exc)})") from None
    if head == b"PK\x03\x04" or head[:1] == b"\x80":  # a zip archive, or a bare pickle
        return _state_dict(path, _torch_load(path, zipped=head[:1] == b"P"))
    return _safetensors(path), None


def _safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (OSError, SafetensorError, ValueError, RuntimeError, MemoryError) as exc:
        raise _bad(path, f"it is neither a safetensors file nor a PyTorch file saved with "
                   f"torch.save ({_short(exc)})") from None


def _torch_load(path: Path, zipped: bool) -> Any:
    if zipped:
        _check_records(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise _bad(path, "it holds Python objects other than tensors and plain data; it was "
                   "refused unread, and nothing in it ran",
                   "save only the weights: torch.save(model.state_dict(), path)") from None
    except Exception as exc:  # a damaged file makes torch.load raise many kinds of error
        # (a safetensors one for a bare pickle of a number): each means the same here
        raise _bad(path, f"it is not a readable PyTorch file, or it is truncated "
                   f"({_short(exc)})") from None


def _check_records(path: Path) -> None:
    """torch.save stores its zip records uncompressed; a compressed one could unpack to any
    size from a small file, so it is refused before torch reads it."""
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise _bad(path, f"it is not a readable PyTorch file, or it is truncated "
                   f"({_short(exc)})") from None
    packed = [r.filename for r in records if r.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise _bad(path, f"its record '{_short(packed[0])}' is compressed, which torch.save "
                   "never does; it was refused unread")


def _state_dict(path: Path, loaded: Any) -> tuple[dict[str, torch.Tensor], str | None]:
    """The name → tensor mapping in what torch.load returned: the object itself, or its
    "state_dict" or "model" entry."""
    if not isinstance(loaded, dict):
        raise _bad(path, f"it holds a {type(loaded).__name__}, not a state dict (a mapping of "
                   "names to tensors)")
    entry = None
    if not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        entry = next((k for k in STATE_DICT_ENTRIES if isinstance(loaded.get(k), dict)), None)
        if entry is not None:
            loaded = loaded[entry]
    for name, value in loaded.items():
        if not isinstance(name, str):
            raise _bad(path, f"its state dict has a key {_short(name)} that is not a string")
        if not isinstance(value, torch.Tensor):
            where = f"its {entry!r} entry" if entry else "it"
            raise _bad(path, f"{where} maps '{_short(name)}' to a {type(value).__name__}, not a "
                       "tensor", "give a file saved with torch.save(model.state_dict(), path)"
                       ", or a checkpoint holding that under 'state_dict' or 'model'")
    if not loaded:
        raise _bad(path, "it holds no tensors")
    return dict(loaded), entry


def _renamed(weights: dict[str, torch.Tensor], rules: list[tuple[str, str]],
             ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The file's tensors under their names after `rename`, and old → new for each changed."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    out: dict[str, torch.Tensor] = {}
    renamed: dict[str, str] = {}
    origin: dict[str, str] = {}
    for name, tensor in weights.items():
        new = name
        for pattern, replacement in compiled:
            new = pattern.sub(replacement, new)
        if new in origin:
            raise SpecError(Problem(("transfer", "rename"), f"the file's tensors "
                                    f"'{_short(origin[new])}' and '{_short(name)}' are "
                                    f"both renamed '{_short(new)}'",
                                    "make the patterns tell them apart"))
        origin[new] = name
        out[new] = tensor
        if new != name:
            renamed[name] = new
    return out, renamed


def _short(value: object, limit: int = 80) -> str:
    """A short, printable excerpt of something read from an untrusted file (a name, a key,
    an error message); other objects by their type alone, never by their repr."""
    if isinstance(value, BaseException):
        value = str(value).strip().splitlines()[0] if str(value).strip() else type(value).__name__
    elif isinstance(value, int | float | bytes) and not isinstance(value, bool):
        value = repr(value)[:limit + 1]
    elif not isinstance(value, str):
        value = f"<{type(value).__name__}>"
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= limit else text[:limit] + "..."


def _bad(path: Path, why: str, hint: str | None = None) -> SpecError:
    return SpecError(Problem(_WHERE, f"{path}: {why}", hint or "give a run folder, a "
                             ".safetensors file or a PyTorch state_dict (.pth, .pt)"))


def _check_patterns(patterns: list[str], names: list[str], key: str) -> None:
    problems = [Problem(("transfer", key, i), f"pattern {pattern!r} matches no layer",
                        pattern_hint(pattern, names))
                for i, pattern in enumerate(patterns)
                if not any(selects(pattern, name) for name in names)]
    if problems:
        raise SpecError(problems)
