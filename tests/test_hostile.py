"""Hostile inputs: whatever an attacker or a careless user hands a command, it exits 0, 1
or 2 — never a traceback or an internal error (70) — writes nothing outside the run folder
or the `-o` path it was given, and runs no code out of its inputs.

Every case runs in a fresh temporary tree:

    tree/work/     the current folder: the spec, its data, run folders, -o files
    tree/victim/   files that hostile paths aim at (a spec, a checkpoint, secrets)
    tree/PWNED     the sentinel: code smuggled into an input would create it

`run_dlspec` snapshots the tree (paths, sizes, mtimes, SHA-256), runs one command —
in-process through `dlspec.cli.main` (fast) or as `python -m dlspec` in a subprocess
(at least once per command) — and asserts the four properties; a case can ask for more
(an exact exit code, a message located in the spec, text that must not be echoed).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from dlspec.cli import main

SENTINEL = "PWNED"
TIMEOUT_S = 120
MAX_OUTPUT = 20_000  # characters of stdout + stderr a failing command may print
LOCATED = re.compile(r"^\S+:\d+:\d+: ")
FAKE_PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
               "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
               "alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n")
PASSWD_ECHO = "root:x:0:0"
# what a message must never advise for a checkpoint: loading it with code execution allowed
UNSAFE_ADVICE = "weights_only=False"


# --- the tree, its snapshot and the runner ------------------------------------------------


@dataclass
class Tree:
    """A temporary tree: work/ (the current folder), victim/, and the sentinel's place."""

    root: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def victim(self) -> Path:
        return self.root / "victim"

    @property
    def sentinel(self) -> Path:
        return self.root / SENTINEL

    def write(self, relative: str, content: str | bytes) -> Path:
        """Write a file under work/ (folders made on the way)."""
        path = self.work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def touch_command(self) -> str:
        """A shell command that creates the sentinel."""
        return f"touch {self.sentinel}"


def make_tree(root: Path) -> Tree:
    tree = Tree(root)
    tree.work.mkdir(parents=True)
    tree.victim.mkdir()
    (tree.victim / "target.txt").write_text("the victim's own file\n")
    (tree.victim / "secret.csv").write_text("a,b,y\n1,2,0\n3,4,1\n")
    (tree.victim / "spec.yaml").write_text("dlspec: 1\nname: victim\n")
    return tree


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return make_tree(tmp_path / "tree")


Entry = tuple[Any, ...]


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path under `root`: folders, links (their target) and files (size, mtime, hash)."""
    found: dict[str, Entry] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = ("dir",)
            elif not path.is_file():  # a FIFO or a device: reading it could block
                found[key] = ("special",)
            else:
                stat = path.stat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[key] = ("file", stat.st_size, stat.st_mtime_ns, digest)
    return found


def changes(before: dict[str, Entry], after: dict[str, Entry],
            allowed: Iterable[str]) -> list[str]:
    """Paths created, changed or removed outside the allowed ones (relative to the root)."""
    prefixes = [a.rstrip("/") for a in allowed]
    # the folders on the way to an allowed path (runs/ for runs/tiny) may be made too
    parents = {p.rsplit("/", i)[0] for p in prefixes for i in range(1, p.count("/") + 1)}

    def free(key: str) -> bool:
        if key in parents and after.get(key) == ("dir",):
            return True
        return any(key == p or key.startswith(p + "/") for p in prefixes)

    changed = [k for k in sorted(set(before) | set(after))
               if before.get(k) != after.get(k) and not free(k)]
    return [f"{k}: {'created' if k not in before else 'removed' if k not in after else 'changed'}"
            for k in changed]


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_dlspec(tree: Tree, *args: str, allowed: Sequence[str] = (),
               expect: Iterable[int] = (0, 1, 2), located: str | None = None,
               forbidden: Sequence[str] = (), subprocess_: bool = False,
               stdout_path: str | None = None, timeout: float = TIMEOUT_S) -> Outcome:
    """Run `dlspec ARGS` in tree/work and assert that it behaved.

    `allowed`: paths relative to work/ that may be written (the run folder, the -o file).
    `expect`: the exit codes that are right for this input (always within 0, 1, 2).
    `located`: the spec path whose file:line:column the first error line must start with.
    `forbidden`: text that must not appear in the output (an echoed secret, unsafe advice).
    `stdout_path`: a file standard output goes to (e.g. /dev/full).
    `timeout`: seconds a subprocess may take; one that hangs fails the test.
    """
    before = snapshot(tree.root)
    if subprocess_:
        try:
            outcome = _in_subprocess(tree, args, stdout_path, timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"dlspec {' '.join(args)} still ran after {timeout:g} s: it hangs")
    else:
        outcome = _in_process(tree, args, stdout_path)
    after = snapshot(tree.root)
    shown = f"dlspec {' '.join(args)} → exit {outcome.code}\n--- stdout\n" \
            f"{outcome.out[-3000:]}\n--- stderr\n{outcome.err[-3000:]}"
    expect = set(expect)
    assert expect <= {0, 1, 2}
    assert outcome.code in {0, 1, 2}, f"exit code outside 0, 1, 2:\n{shown}"
    assert "Traceback" not in outcome.text, f"a traceback:\n{shown}"
    assert "internal error" not in outcome.text, f"an internal error:\n{shown}"
    assert not tree.sentinel.exists(), f"the sentinel was created: code ran\n{shown}"
    outside = changes(before, after, [f"work/{a}" for a in allowed])
    assert not outside, f"files written outside the allowed paths {list(allowed)}: {outside}\n" \
                        f"{shown}"
    assert outcome.code in expect, f"expected exit {sorted(expect)}:\n{shown}"
    if outcome.code != 0:
        assert outcome.err.strip(), f"exit {outcome.code} without a message:\n{shown}"
        assert len(outcome.text) <= MAX_OUTPUT, f"{len(outcome.text)} characters of output"
    if located is not None and outcome.code == 2:
        first = outcome.err.strip().splitlines()[0]
        assert first.startswith(f"{located}:") and LOCATED.match(first), \
            f"the first error line is not located in {located}:\n{shown}"
    for text in forbidden:
        assert text not in outcome.text, f"the output holds {text!r}:\n{shown}"
    return outcome


def _in_process(tree: Tree, args: Sequence[str], stdout_path: str | None) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tree.work)
    try:
        with contextlib.ExitStack() as stack:
            sink = out if stdout_path is None else stack.enter_context(open(stdout_path, "w"))
            stack.enter_context(contextlib.redirect_stdout(sink))
            stack.enter_context(contextlib.redirect_stderr(err))
            code = main(list(args))  # any exception escaping main fails the test here
    finally:
        os.chdir(cwd)
    return Outcome(code, out.getvalue(), err.getvalue())


def _in_subprocess(tree: Tree, args: Sequence[str], stdout_path: str | None,
                   timeout: float) -> Outcome:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    command = [sys.executable, "-m", "dlspec", *args]
    if stdout_path is None:
        result = subprocess.run(command, cwd=tree.work, capture_output=True, text=True,
                                timeout=timeout, env=env)
        return Outcome(result.returncode, result.stdout, result.stderr)
    with open(stdout_path, "w") as sink:
        result = subprocess.run(command, cwd=tree.work, stdout=sink, stderr=subprocess.PIPE,
                                text=True, timeout=timeout, env=env)
    return Outcome(result.returncode, "", result.stderr)


# --- specs ----------------------------------------------------------------------------------

SECTIONS = {
    "head": "dlspec: 1\nname: tiny\n",
    "inputs": "inputs:\n  x: {shape: [4]}\n",
    "network": "network:\n  - {name: hidden, linear: 8}\n  - relu\n  - {name: out, linear: 2}\n",
    "task": "task: {type: classification, num_classes: 2}\nloss: cross_entropy\n",
    "optimizer": "optimizer: {type: adam, lr: 0.01}\n",
    "data": "data: {csv: data.csv, target: y, split: {train: 0.5, val: 0.25, test: 0.25}}\n",
    "train": "train: {epochs: 1, batch_size: 8, seed: 0}\n",
    "export": "",
}
IMAGE_SECTIONS = {
    "inputs": "inputs:\n  image: {shape: [1, 8, 8]}\n",
    "network": "network:\n  - flatten\n  - {name: out, linear: 2}\n",
    "data": "data: {image_folder: images, grayscale: true, resize: [8, 8], "
            "split: {train: 0.5, val: 0.25, test: 0.25}}\n",
}


def tiny(**changed: str) -> str:
    """The tiny CSV classifier spec, with whole sections replaced (YAML text)."""
    sections = {**SECTIONS, **changed}
    return "".join(textwrap.dedent(text).lstrip("\n") for text in sections.values())


def tiny_images(**changed: str) -> str:
    """A tiny classifier of 8×8 grey images read from images/<class>/."""
    return tiny(**{**IMAGE_SECTIONS, **changed})


def data_csv(rows: int = 32) -> str:
    rng = np.random.default_rng(0)
    lines = ["a,b,c,d,y"] + [",".join(f"{v:.3f}" for v in rng.normal(size=4)) + f",{i % 2}"
                             for i in range(rows)]
    return "\n".join(lines) + "\n"


def png(side: int = 8, value: int = 128) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (side, side), value).save(buffer, format="PNG")
    return buffer.getvalue()


def write_images(tree: Tree, folder: str = "images", per_class: int = 8) -> None:
    for label, value in (("cat", 40), ("dog", 200)):
        for i in range(per_class):
            tree.write(f"{folder}/{label}/{i}.png", png(value=value + i))


def bomb_png(side: int = 20_000) -> bytes:
    """A 1-bit palette PNG of side×side pixels (400 million for 20000) in about 50 KB."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", side, side, 1, 3, 0, 0, 0)
    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    block = row * 500
    data = b"".join(packer.compress(block) for _ in range(side // 500)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"PLTE", b"\0\0\0\xff\xff\xff")
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def huge_npy(shape: tuple[int, ...] = (100_000, 1_000_000)) -> bytes:
    """An .npy file whose header announces 10^11 float32s, followed by 16 bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * 16


class _Sentinel:
    """Pickled, this runs `touch SENTINEL` when loaded by an unrestricted unpickler."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def evil_pickle(tree: Tree) -> bytes:
    return pickle.dumps({"epoch": 1, "state": _Sentinel(tree.touch_command())})


def evil_torch_file(tree: Tree) -> bytes:
    """A torch.save zip whose pickle calls os.system on load (unless weights_only)."""
    import torch

    buffer = io.BytesIO()
    torch.save({"epoch": 1, "state": _Sentinel(tree.touch_command())}, buffer)
    return buffer.getvalue()


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


# --- the catalogue -------------------------------------------------------------------------

Setup = Callable[[Tree], None]


@dataclass
class Case:
    """One hostile input: the files it needs, the command, and what is right."""

    id: str
    args: tuple[str, ...]
    setup: Setup
    expect: tuple[int, ...] = (2,)
    located: bool = False  # the error is in spec.yaml: the first line says where
    allowed: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    check: Callable[[Tree, Outcome], None] | None = None
    subprocess_: bool = False
    timeout: float = TIMEOUT_S  # a subprocess that takes longer hangs

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


def spec_files(text: str | Callable[[Tree], str], csv: bool = True, images: bool = False,
               extra: Setup | None = None) -> Setup:
    """Setup writing spec.yaml (text, or made from the tree) and the data it reads."""
    def setup(tree: Tree) -> None:
        tree.write("spec.yaml", text(tree) if callable(text) else text)
        if csv:
            tree.write("data.csv", data_csv())
        if images:
            write_images(tree)
        if extra is not None:
            extra(tree)

    return setup


def _expression_blocks(expression: str, value: str) -> str:
    return tiny(network=f"""\
        blocks:
          wide:
            params: {{n: int}}
            layers:
              - linear: {expression}
        network:
          - {{wide: {{n: {value}}}}}
          - {{name: out, linear: 2}}
        """)


def _symlink(link: str, target: Callable[[Tree], Path]) -> Setup:
    def setup(tree: Tree) -> None:
        path = tree.work / link
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target(tree))

    return setup


def _chain(*setups: Setup) -> Setup:
    def setup(tree: Tree) -> None:
        for one in setups:
            one(tree)

    return setup


HOSTILE_YAML = {
    "python-object-tag": lambda t: tiny() + f"extra: !!python/object/apply:os.system "
                                            f"['{t.touch_command()}']\n",
    "python-name-tag": lambda t: tiny(head="dlspec: 1\nname: !!python/name:os.system\n"),
    "alias-bomb": lambda t: tiny() + "lol:\n" + textwrap.indent(alias_bomb(), "  "),
    "deep-list-nesting": lambda t: tiny(network="network: " + "[" * 5000 + "]" * 5000 + "\n"),
    "deep-mapping-nesting": lambda t: tiny(network="network:\n  - " + "{a: " * 3000
                                           + "1" + "}" * 3000 + "\n"),
    "binary-garbage": lambda t: tiny() + "junk: \x00\x01\x02\xff\n",
    "ansi-escape-in-key": lambda t: tiny() + '"\\e[2J\\e[31mred": 1\n',
}

RESERVED_NAMES = ["__init__", "__class__", "_modules", "forward", "training", "self",
                  "torch", "state_dict"]

CHECK_CASES = [
    Case("check-onnx-file-traversal", ("check", "spec.yaml"),
         spec_files(tiny(export="export: {onnx: {file: ../victim/target.txt}}\n")),
         located=True),
    Case("check-onnx-file-absolute", ("check", "spec.yaml"),
         spec_files(lambda t: tiny(export=f"export: {{onnx: {{file: {t.victim}/target.txt}}}}\n")),
         located=True),
    Case("check-onnx-file-home", ("check", "spec.yaml"),
         spec_files(tiny(export="export: {onnx: {file: ~/model.onnx}}\n")), located=True),
    Case("check-data-csv-traversal", ("check", "spec.yaml"),
         spec_files(tiny(data="data: {csv: ../victim/secret.csv, target: y}\n")),
         located=True),
    Case("check-data-csv-etc-passwd", ("check", "spec.yaml"),
         spec_files(tiny(data="data: {csv: /etc/passwd, target: zzz, delimiter: '|'}\n")),
         located=True, forbidden=(PASSWD_ECHO,)),
    Case("check-image-folder-traversal", ("check", "spec.yaml"),
         spec_files(tiny_images(data="data: {image_folder: ../victim, resize: [8, 8]}\n")),
         located=True),
    Case("check-npz-control-characters", ("check", "spec.yaml"),
         spec_files(tiny(data='data: {npz: "data\\e[2J\\u202e.npz"}\n')), located=True,
         forbidden=("\x1b", "\u202e")),
    *[Case(f"check-reserved-layer-name-{name}", ("check", "spec.yaml"),
           spec_files(tiny(network=f"network:\n  - {{name: {name}, linear: 8}}\n"
                                   "  - {name: out, linear: 2}\n")), located=True)
      for name in RESERVED_NAMES],
    Case("check-reserved-input-name", ("check", "spec.yaml"),
         spec_files(tiny(inputs="inputs:\n  self: {shape: [4]}\n")), located=True),
    Case("check-expression-overflow", ("check", "spec.yaml"),
         spec_files(_expression_blocks("$(n * n * n * n * n * n * n * n * n * n)",
                                       "100000000000000000000")), located=True),
    Case("check-expression-float-overflow", ("check", "spec.yaml"),
         spec_files(_expression_blocks("$(n * n)", "1.0e+308")), located=True),
    Case("check-expression-division-by-zero", ("check", "spec.yaml"),
         spec_files(_expression_blocks("$(n // (n - n))", "3")), located=True),
    Case("check-absurd-linear", ("check", "spec.yaml"),
         spec_files(tiny(network="network:\n  - linear: 1000000000000\n  - linear: 2\n")),
         located=True),
    Case("check-absurd-out-channels", ("check", "spec.yaml"),
         spec_files(tiny(inputs="inputs:\n  image: {shape: [3, 32, 32]}\n",
                         network="network:\n  - {conv2d: {out_channels: 1000000000000, "
                                 "kernel_size: 3}}\n  - flatten\n  - linear: 2\n")),
         located=True),
    Case("check-absurd-input-shape", ("check", "spec.yaml"),
         spec_files(tiny(inputs="inputs:\n  x: {shape: [100000, 100000, 100000]}\n",
                         network="network:\n  - flatten\n  - linear: 2\n")), located=True),
    Case("check-absurd-embedding", ("check", "spec.yaml"),
         spec_files(tiny(inputs="inputs:\n  t: {shape: [8], dtype: int64}\n",
                         network="network:\n  - {embedding: {num_embeddings: 1000000000000, "
                                 "embedding_dim: 1000000}}\n  - flatten\n  - linear: 2\n")),
         located=True),
    *[Case(f"check-yaml-{name}", ("check", "spec.yaml"), spec_files(text), located=True,
           forbidden=("\x1b",))
      for name, text in HOSTILE_YAML.items()],
    Case("check-spec-is-a-folder", ("check", "."), spec_files(tiny()),
         forbidden=("no such spec file",)),
    Case("check-spec-is-a-fifo-like-device", ("check", "/dev/zero"), spec_files(tiny())),
    Case("check-spec-is-a-fifo", ("check", "--no-shapes", "spec.yaml"),
         lambda t: os.mkfifo(t.work / "spec.yaml"), subprocess_=True, timeout=30),
    Case("check-spec-is-a-symlink-to-passwd", ("check", "spec.yaml"),
         _symlink("spec.yaml", lambda t: Path("/etc/passwd")), forbidden=(PASSWD_ECHO,)),
    Case("check-spec-of-two-megabytes", ("check", "spec.yaml"),
         spec_files(tiny() + "# " + "x" * (2 << 20) + "\n")),
    Case("check-twenty-thousand-unknown-keys", ("check", "--no-shapes", "spec.yaml"),
         spec_files(tiny() + "".join(f"unknown_{i}: {i}\n" for i in range(20_000))),
         located=True, subprocess_=True, timeout=60),
    Case("check-variant-name-with-escapes", ("check", "spec.yaml", "--variant", "\x1b[2Jx"),
         spec_files(tiny()), forbidden=("\x1b",)),
    Case("check-nan-learning-rate", ("check", "spec.yaml"),
         spec_files(tiny(optimizer="optimizer: {type: adam, lr: .nan}\n")), located=True),
    Case("check-infinite-epochs", ("check", "spec.yaml"),
         spec_files(tiny(train="train: {epochs: .inf, batch_size: 8}\n")), located=True),
    Case("check-huge-batch-size", ("check", "spec.yaml"),
         spec_files(tiny(train="train: {epochs: 1, batch_size: 100000000000000000000}\n")),
         expect=(0, 2)),
    Case("check-num-workers-absurd", ("check", "spec.yaml"),
         spec_files(tiny(train="train: {epochs: 1, batch_size: 8, num_workers: 100000}\n")),
         located=True),
]

SUMMARY_CASES = [
    Case("summary-reserved-layer-name", ("summary", "spec.yaml"),
         spec_files(tiny(network="network:\n  - {name: __class__, linear: 8}\n  - linear: 2\n")),
         located=True, subprocess_=True),
    Case("summary-absurd-sizes", ("summary", "spec.yaml"),
         spec_files(tiny(network="network:\n  - linear: 1000000000000\n  - linear: 2\n")),
         located=True),
    Case("summary-expression-overflow", ("summary", "spec.yaml"),
         spec_files(_expression_blocks("$(n * n * n * n * n * n * n * n * n * n)",
                                       "100000000000000000000")), located=True),
]


def _hostile_description(tree: Tree) -> str:
    payload = f'"""\nimport os; os.system("{tree.touch_command()}")\n"""'
    return tiny(head="dlspec: 1\nname: tiny\ndescription: " + json.dumps(payload) + "\n")


CODE_CASES = [
    Case("code-reserved-layer-name", ("code", "spec.yaml"),
         spec_files(tiny(network="network:\n  - {name: _modules, linear: 8}\n  - linear: 2\n")),
         located=True),
    Case("code-output-is-a-folder", ("code", "spec.yaml", "-o", "folder"),
         _chain(spec_files(tiny()), lambda t: (t.work / "folder").mkdir())),
    Case("code-output-below-a-file", ("code", "spec.yaml", "-o", "data.csv/model.py"),
         spec_files(tiny())),
    Case("code-hostile-description", ("code", "spec.yaml", "-o", "model.py"),
         spec_files(_hostile_description), expect=(0,), allowed=("model.py",)),
]

# file names of specs that try to break out of the generated module's docstring or comment
HOSTILE_SPEC_NAMES = [
    'x""";__import__("os").system("touch {sentinel}");""".yaml',
    "x'''+__import__('os').system('touch {sentinel}')+'''.yaml",
    "x\nimport os; os.system('touch {sentinel}')\n#.yaml",
    "x\r__import__('os').system('touch {sentinel}')\r.yaml",
    "x\\\n__import__('os').system('touch {sentinel}')#.yaml",
    "x\u2028__import__('os').system('touch {sentinel}')\u2028.yaml",
]


def _copy_built(tree: Tree, built: Path) -> None:
    """Copy the built image run (spec, images, runs/tiny) into the tree's work folder."""
    shutil.copytree(built, tree.work, dirs_exist_ok=True, symlinks=True)


def _zero(name: str) -> Callable[[Tree, Path], None]:
    return lambda tree, run: (run / name).write_bytes(b"")


def _truncate(name: str) -> Callable[[Tree, Path], None]:
    def change(tree: Tree, run: Path) -> None:
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])

    return change


def _replace(name: str, content: Callable[[Tree], bytes]) -> Callable[[Tree, Path], None]:
    return lambda tree, run: (run / name).write_bytes(content(tree))


def _link_to_victim(name: str) -> Callable[[Tree, Path], None]:
    def change(tree: Tree, run: Path) -> None:
        other = tree.victim / name
        shutil.copy(run / name, other)  # a real checkpoint file, elsewhere
        (run / name).unlink()
        (run / name).symlink_to(other)

    return change


def _wrong_dtypes(tree: Tree, run: Path) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(run / "checkpoint.safetensors"), "pt") as handle:
        tensors = {k: handle.get_tensor(k).to(torch.int64) for k in handle.keys()}  # noqa: SIM118
        metadata = handle.metadata()
    save_file(tensors, str(run / "checkpoint.safetensors"), metadata=metadata)


def _marker(text: str) -> Callable[[Tree, Path], None]:
    return lambda tree, run: (run / "checkpoint.complete").write_text(text)


RESUME_CHANGES: dict[str, Callable[[Tree, Path], None]] = {
    "weights-zero-bytes": _zero("checkpoint.safetensors"),
    "weights-truncated": _truncate("checkpoint.safetensors"),
    "weights-wrong-dtypes": _wrong_dtypes,
    "weights-symlink-to-another-file": _link_to_victim("checkpoint.safetensors"),
    "weights-are-a-pickle": _replace("checkpoint.safetensors", evil_pickle),
    "state-zero-bytes": _zero("checkpoint.state.pt"),
    "state-truncated": _truncate("checkpoint.state.pt"),
    "state-pickle-with-reduce": _replace("checkpoint.state.pt", evil_pickle),
    "state-torch-zip-with-reduce": _replace("checkpoint.state.pt", evil_torch_file),
    "state-symlink-to-another-file": _link_to_victim("checkpoint.state.pt"),
    "marker-negative-epoch": _marker('{"epoch": -5}'),
    "marker-huge-epoch": _marker('{"epoch": 100000000000000000000000}'),
    "marker-not-json": _marker("\x00\x01garbage"),
    "marker-wrong-type": _marker('["epoch", 1]'),
}


# --- the parametrised tests ----------------------------------------------------------------


def _run_case(tree: Tree, case: Case) -> Outcome:
    case.setup(tree)
    outcome = run_dlspec(tree, *case.args, allowed=case.allowed, expect=case.expect,
                         located="spec.yaml" if case.located else None,
                         forbidden=case.forbidden, subprocess_=case.subprocess_,
                         timeout=case.timeout)
    if case.check is not None:
        case.check(tree, outcome)
    return outcome


@pytest.mark.parametrize("case", [c.param() for c in CHECK_CASES + SUMMARY_CASES + CODE_CASES])
def test_hostile_spec(tree: Tree, case: Case) -> None:
    _run_case(tree, case)


def test_hostile_spec_file_names_do_not_escape_the_generated_code(tree: Tree) -> None:
    tree.write("data.csv", data_csv())
    outputs = []
    for i, pattern in enumerate(HOSTILE_SPEC_NAMES):
        name = pattern.format(sentinel=SENTINEL)  # imported from the tree's root, below
        (tree.work / name).write_text(tiny())
        run_dlspec(tree, "code", name, "-o", f"model{i}.py", expect=(0,),
                   allowed=(f"model{i}.py",), subprocess_=i == 0)
        outputs.append(f"model{i}.py")
    _run_case(tree, next(c for c in CODE_CASES if c.id == "code-hostile-description"))
    outputs = [f"work/{path}" for path in (*outputs, "model.py")]
    importer = "import runpy, sys\nfor path in sys.argv[1:]:\n    runpy.run_path(path)\n"
    result = subprocess.run([sys.executable, "-c", importer, *outputs], cwd=tree.root,
                            capture_output=True, text=True, timeout=TIMEOUT_S,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert not tree.sentinel.exists(), "importing the generated code ran a command"


def test_stdout_on_a_full_device(tree: Tree) -> None:
    tree.write("spec.yaml", tiny())
    tree.write("data.csv", data_csv())
    for command in ("check", "summary", "code"):
        outcome = run_dlspec(tree, command, "spec.yaml", stdout_path="/dev/full", expect=(1,))
        assert "standard output" in outcome.err
    outcome = run_dlspec(tree, "check", "--no-shapes", "spec.yaml", stdout_path="/dev/full",
                         expect=(1,), subprocess_=True)  # the real stdout, not a Python file
    assert "standard output" in outcome.err


@pytest.fixture(scope="module")
def read_only_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder nobody can write into: chmod 555, or where root is refused too (/sys)."""
    if os.geteuid() != 0:
        folder = tmp_path_factory.mktemp("read-only")
        folder.chmod(0o555)
        return folder
    for candidate in (Path("/sys/kernel"), Path("/proc/sys")):
        probe = candidate / "dlspec-probe"
        try:
            probe.mkdir()
        except OSError:
            return candidate
        probe.rmdir()
    pytest.skip("no read-only folder for root here")


# --- training, resume and build over one real run -----------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean `dlspec build` of the tiny image classifier: it writes only runs/tiny.

    The work folder it leaves (spec.yaml, images/, runs/tiny with its checkpoint and
    model.onnx) is the template the resume, export and predict cases copy.
    """
    tree = make_tree(tmp_path_factory.mktemp("built") / "tree")
    tree.write("spec.yaml", tiny_images())
    write_images(tree)
    run_dlspec(tree, "build", "spec.yaml", expect=(0,), allowed=("runs/tiny",))
    for name in ("model.onnx", "checkpoint.safetensors", "checkpoint.state.pt",
                 "checkpoint.complete", "model.safetensors"):
        assert (tree.work / "runs" / "tiny" / name).is_file(), name
    return tree.work


@pytest.mark.parametrize("change", sorted(RESUME_CHANGES))
def test_resume_from_a_hostile_checkpoint(tree: Tree, built: Path, change: str) -> None:
    _copy_built(tree, built)
    run = tree.work / "runs" / "tiny"
    RESUME_CHANGES[change](tree, run)
    outcome = run_dlspec(tree, "train", "spec.yaml", "--resume", "--epochs", "2",
                         allowed=("runs/tiny",), expect=(2,), forbidden=(UNSAFE_ADVICE,))
    assert "checkpoint" in outcome.err


def test_resuming_a_finished_run_changes_nothing(tree: Tree, built: Path) -> None:
    _copy_built(tree, built)
    run = tree.work / "runs" / "tiny"
    kept = {name: (run / name).read_bytes() for name in ("model.safetensors", "metrics.json")}
    run_dlspec(tree, "train", "spec.yaml", "--resume", allowed=("runs/tiny",), expect=(0,))
    for name, data in kept.items():
        assert (run / name).read_bytes() == data, f"{name} was rewritten"


def _train_case(id: str, setup: Setup, *args: str, expect: tuple[int, ...] = (2,),
                located: bool = False, forbidden: tuple[str, ...] = (),
                allowed: tuple[str, ...] = ("runs/tiny",), subprocess_: bool = False) -> Case:
    return Case(id, ("train", "spec.yaml", *args), setup, expect=expect, located=located,
                allowed=allowed, forbidden=forbidden, subprocess_=subprocess_)


def _nan_targets(tree: Tree) -> None:
    tree.write("data.csv", "a,b,c,d,y\n" + "".join(
        f"{i},{i},{i},{i},{'nan' if i == 5 else 'inf' if i == 9 else i / 10}\n"
        for i in range(32)))


REGRESSION = dict(network="network:\n  - linear: 1\n",
                  task="task: regression\nloss: mse\n")

TRAIN_CASES = [
    _train_case("train-out-is-a-file", spec_files(tiny()), "--out", "data.csv",
                allowed=()),
    _train_case("train-out-below-a-file", spec_files(tiny()), "--out", "data.csv/run",
                allowed=()),
    _train_case("train-nan-and-inf-targets", spec_files(tiny(**REGRESSION), csv=False,
                                                        extra=_nan_targets)),
    _train_case("train-passwd-like-csv",
                spec_files(tiny(data="data: {csv: passwd.csv, target: zzz, delimiter: '|'}\n"),
                           extra=lambda t: t.write("passwd.csv", FAKE_PASSWD)),
                forbidden=(PASSWD_ECHO,)),
    _train_case("train-csv-symlink-to-etc-passwd",
                spec_files(tiny(data="data: {csv: link.csv, target: zzz, delimiter: ':'}\n"),
                           extra=_symlink("link.csv", lambda t: Path("/etc/passwd"))),
                forbidden=(PASSWD_ECHO,)),
    _train_case("train-csv-symlink-out-of-the-folder",
                spec_files(tiny(data="data: {csv: link.csv, target: y}\n"),
                           extra=_symlink("link.csv", lambda t: t.victim / "secret.csv"))),
    Case("train-csv-is-a-fifo", ("train", "spec.yaml"),
         spec_files(tiny(), csv=False, extra=lambda t: os.mkfifo(t.work / "data.csv")),
         allowed=("runs/tiny",), subprocess_=True, timeout=30),
    _train_case("train-image-symlink-out-of-the-folder",
                spec_files(tiny_images(), csv=False, images=True,
                           extra=_chain(lambda t: (t.victim / "secret.png").write_bytes(png()),
                                        _symlink("images/cat/secret.png",
                                                 lambda t: t.victim / "secret.png")))),
    _train_case("train-csv-is-binary",
                spec_files(tiny(), csv=False,
                           extra=lambda t: t.write("data.csv", bytes(range(256)) * 64))),
    _train_case("train-decompression-bomb-in-image-folder",
                spec_files(tiny_images(), csv=False, images=True,
                           extra=lambda t: t.write("images/cat/bomb.png", bomb_png())),
                subprocess_=True),
    _train_case("train-npz-announcing-1e11-elements",
                spec_files(tiny(data="data: {npz: data.npz}\n"), csv=False,
                           extra=lambda t: t.write("data.npz", _npz({"x": huge_npy(),
                                                                     "y": huge_npy()})))),
    _train_case("train-npz-with-pickled-objects",
                spec_files(tiny(data="data: {npz: data.npz}\n"), csv=False,
                           extra=lambda t: _pickled_npz(t, t.work / "data.npz"))),
]


def _npz(members: dict[str, bytes]) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


def _pickled_npz(tree: Tree, path: Path) -> None:
    objects = np.empty(4, dtype=object)
    objects[:] = [_Sentinel(tree.touch_command())] * 4
    np.savez(path, x=objects, y=np.zeros(4))


@pytest.mark.parametrize("case", [c.param() for c in TRAIN_CASES])
def test_hostile_training_input(tree: Tree, case: Case) -> None:
    _run_case(tree, case)


@pytest.mark.parametrize("command", ["train", "build"])
def test_training_into_a_read_only_folder(tree: Tree, read_only_folder: Path,
                                          command: str) -> None:
    tree.write("spec.yaml", tiny())
    tree.write("data.csv", data_csv())
    outcome = run_dlspec(tree, command, "spec.yaml", "--out", str(read_only_folder / "run"),
                         expect=(1, 2))
    assert str(read_only_folder) in outcome.err
    assert "epoch 1" not in outcome.err, "the folder was found unwritable only after training"


def test_build_with_a_traversing_export_path(tree: Tree) -> None:
    tree.write("spec.yaml", tiny(export="export: {onnx: {file: ../../victim/target.txt}}\n"))
    tree.write("data.csv", data_csv())
    run_dlspec(tree, "build", "spec.yaml", allowed=("runs/tiny",), located="spec.yaml",
               expect=(2,), subprocess_=True)


def test_build_with_an_absolute_export_path(tree: Tree) -> None:
    tree.write("spec.yaml", tiny(export=f"export: {{onnx: {{file: {tree.victim}/m.onnx}}}}\n"))
    tree.write("data.csv", data_csv())
    run_dlspec(tree, "build", "spec.yaml", allowed=("runs/tiny",), located="spec.yaml",
               expect=(2,))


def test_build_out_is_a_file(tree: Tree) -> None:
    tree.write("spec.yaml", tiny())
    tree.write("data.csv", data_csv())
    run_dlspec(tree, "build", "spec.yaml", "--out", "data.csv", expect=(2,))


# --- export --------------------------------------------------------------------------------


EXPORT_CASES: dict[str, tuple[tuple[str, ...], Callable[[Tree, Path], None], tuple[int, ...],
                              tuple[str, ...]]] = {
    # id: (args after `export spec.yaml`, change to the copied tree, exits, allowed)
    "export-onnx-file-traversal": (
        (), lambda t, run: t.write("spec.yaml", tiny_images(
            export="export: {onnx: {file: ../victim/target.txt}}\n")), (2,), ()),
    "export-output-is-a-folder": (("-o", "runs"), lambda t, run: None, (2,), ()),
    "export-output-below-a-file": (("-o", "spec.yaml/m.onnx"), lambda t, run: None, (2,), ()),
    "export-output-read-only": (("-o", "/sys/kernel/m.onnx"), lambda t, run: None, (1, 2), ()),
    "export-description-with-a-lone-surrogate": (
        ("-o", "m.onnx"), lambda t, run: t.write("spec.yaml", tiny_images(
            head='dlspec: 1\nname: tiny\ndescription: "a\\ud800b\\x00c\\u202e"\n')),
        (0,), ("m.onnx",)),
    "export-checkpoint-is-a-pickle": (
        ("--checkpoint", "evil.safetensors"),
        lambda t, run: t.write("evil.safetensors", evil_pickle(t)), (2,), ()),
    "export-checkpoint-zero-bytes": (
        ("--checkpoint", "empty.safetensors"),
        lambda t, run: t.write("empty.safetensors", b""), (2,), ()),
    "export-checkpoint-is-a-folder-without-weights": (
        ("--checkpoint", "images"), lambda t, run: None, (2,), ()),
    "export-data-json-not-json": (
        ("--checkpoint", "runs/tiny"),
        lambda t, run: (run / "data.json").write_text("{not json"), (2,), ("runs/tiny",)),
    "export-data-json-wrong-types": (
        ("--checkpoint", "runs/tiny"),
        lambda t, run: (run / "data.json").write_text(
            '{"labels": 5, "normalization": [1, 2], "image_inputs": "image"}'),
        (2,), ("runs/tiny",)),
    "export-data-json-is-a-list": (
        ("--checkpoint", "runs/tiny"),
        lambda t, run: (run / "data.json").write_text("[1, 2, 3]"), (2,), ("runs/tiny",)),
    "export-data-json-symlink-to-passwd": (
        ("--checkpoint", "runs/tiny"),
        lambda t, run: ((run / "data.json").unlink(),
                        (run / "data.json").symlink_to("/etc/passwd")),
        (2,), ("runs/tiny",)),
}


@pytest.mark.parametrize("name", sorted(EXPORT_CASES))
def test_hostile_export(tree: Tree, built: Path, name: str) -> None:
    args, change, expect, allowed = EXPORT_CASES[name]
    _copy_built(tree, built)
    change(tree, tree.work / "runs" / "tiny")
    run_dlspec(tree, "export", "spec.yaml", *args, expect=expect, allowed=allowed,
               located="spec.yaml" if "traversal" in name else None,
               forbidden=(UNSAFE_ADVICE, PASSWD_ECHO),
               subprocess_=name == "export-onnx-file-traversal")


# --- predict -------------------------------------------------------------------------------


def _model(built: Path) -> bytes:
    return (built / "runs" / "tiny" / "model.onnx").read_bytes()


def _with_metadata(built: Path, **props: str) -> bytes:
    """The built model with some metadata values replaced."""
    import onnx

    model = onnx.load_from_string(_model(built))
    entries = {p.key: p.value for p in model.metadata_props}
    entries.update(props)
    del model.metadata_props[:]
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    return model.SerializeToString()


def _external_data_model(tree: Tree) -> bytes:
    """A model whose weight lives in ../victim/target.txt (ONNX external data)."""
    from onnx import TensorProto, helper

    weight = TensorProto()
    weight.name = "w"
    weight.data_type = TensorProto.FLOAT
    weight.dims.extend([4, 2])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../victim/target.txt"), ("offset", "0"),
                       ("length", "32")):
        weight.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


FORMULA_NAMES = ["=cmd|' /C calc'!A0.png", "+SUM(1,2).png", "-2+3.png", "@SUM(A1).png",
                 "\tx.png", "evil\u202egnp.png", "\x1b[2Jclear.png"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _neutral_csv(path: Path) -> None:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            for cell in row:
                assert not cell.startswith(FORMULA_STARTS), f"formula cell {cell!r}"
                assert not any(ord(c) < 32 or 0x202A <= ord(c) <= 0x202E or
                               0x2066 <= ord(c) <= 0x2069 for c in cell), \
                    f"control character in cell {cell!r}"


def _formula_images(tree: Tree) -> None:
    for name in FORMULA_NAMES:
        tree.write(f"inputs/{name}", png())


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


PREDICT_CASES: dict[str, tuple[Callable[[Tree, Path], None], tuple[str, ...], tuple[int, ...],
                               tuple[str, ...]]] = {
    # id: (setup(tree, built), args after `predict`, exits, allowed)
    "predict-model-zero-bytes": (
        lambda t, b: t.write("m.onnx", b""), ("m.onnx", "x.npy"), (2,), ()),
    "predict-model-garbage": (
        lambda t, b: t.write("m.onnx", bytes(range(256)) * 100), ("m.onnx", "x.npy"), (2,), ()),
    "predict-model-is-a-pickle": (
        lambda t, b: t.write("m.onnx", evil_pickle(t)), ("m.onnx", "x.npy"), (2,), ()),
    "predict-model-truncated": (
        lambda t, b: t.write("m.onnx", _model(b)[:500]), ("m.onnx", "x.npy"), (2,), ()),
    "predict-model-external-data-traversal": (
        lambda t, b: t.write("m.onnx", _external_data_model(t)), ("m.onnx", "x.npy"), (2,), ()),
    "predict-metadata-not-json": (
        lambda t, b: t.write("m.onnx", _with_metadata(b, dlspec_task="{not json")),
        ("m.onnx", "x.npy"), (2,), ()),
    "predict-metadata-huge-input-shape": (
        lambda t, b: t.write("m.onnx", _with_metadata(b, dlspec_inputs=json.dumps(
            [{"name": "image", "shape": [None, 100000, 100000, 10], "dtype": "float32"}]))),
        ("m.onnx", "x.npy"), (2,), ()),
    "predict-metadata-huge-image-size": (
        lambda t, b: t.write("m.onnx", _with_metadata(b, dlspec_images=json.dumps(
            {"image": {"channels": 1, "size": [100000, 1000000]}}))),
        ("m.onnx", "images"), (2,), ()),
    "predict-metadata-huge-value": (
        lambda t, b: t.write("m.onnx", _with_metadata(b, dlspec_task=json.dumps(
            {"type": 5, "labels": ["x" * 100] * 10000}))),
        ("m.onnx", "x.npy"), (2,), ()),
    "predict-metadata-wrong-types": (
        lambda t, b: t.write("m.onnx", _with_metadata(
            b, dlspec_normalization='{"image": {"mean": "a", "std": [0]}}')),
        ("m.onnx", "x.npy"), (2,), ()),
    "predict-npy-announcing-1e11-elements": (
        lambda t, b: t.write("big.npy", huge_npy()), ("m.onnx", "big.npy"), (2,), ()),
    "predict-npz-announcing-1e11-elements": (
        lambda t, b: t.write("big.npz", _npz({"image": huge_npy()})), ("m.onnx", "big.npz"),
        (2,), ()),
    "predict-npy-with-pickled-objects": (
        lambda t, b: (t.work / "evil.npy").write_bytes(_npy(np.array(
            [_Sentinel(t.touch_command())] * 2, dtype=object))),
        ("m.onnx", "evil.npy"), (2,), ()),
    "predict-decompression-bomb": (
        lambda t, b: t.write("bombs/bomb.png", bomb_png()), ("m.onnx", "bombs"), (2,), ()),
    "predict-passwd-as-csv": (
        lambda t, b: t.write("passwd.csv", FAKE_PASSWD), ("m.onnx", "passwd.csv"), (2,), ()),
    "predict-input-name-with-escapes": (lambda t, b: None, ("m.onnx", "\x1b[2J.npy"), (2,), ()),
    "predict-etc-passwd": (lambda t, b: None, ("m.onnx", "/etc/passwd"), (2,), ()),
    "predict-nan-inputs": (
        lambda t, b: t.write("nan.npy", _npy(np.full((2, 1, 8, 8), np.nan, np.float32))),
        ("m.onnx", "nan.npy"), (1, 2), ()),
    "predict-output-is-a-folder": (
        lambda t, b: (t.work / "out").mkdir(), ("m.onnx", "x.npy", "-o", "out"), (2,), ()),
    "predict-output-below-a-file": (
        lambda t, b: None, ("m.onnx", "x.npy", "-o", "x.npy/out.csv"), (2,), ()),
    "predict-sample-on-a-classifier": (lambda t, b: None, ("m.onnx", "--sample", "4"), (2,), ()),
}


def _predict_tree(tree: Tree, built: Path) -> None:
    tree.write("m.onnx", _model(built))
    tree.write("x.npy", _npy(np.zeros((2, 1, 8, 8), np.float32)))
    write_images(tree, per_class=1)


@pytest.mark.parametrize("name", sorted(PREDICT_CASES))
def test_hostile_prediction_input(tree: Tree, built: Path, name: str) -> None:
    setup, args, expect, allowed = PREDICT_CASES[name]
    _predict_tree(tree, built)
    setup(tree, built)
    outcome = run_dlspec(tree, "predict", *args, expect=expect, allowed=allowed,
                         forbidden=(PASSWD_ECHO, "\x1b", "RuntimeWarning"))
    assert not re.search(r"\.py:\d+", outcome.err), "a warning shows a source path"


def test_predict_neutralises_formula_file_names(tree: Tree, built: Path) -> None:
    _predict_tree(tree, built)
    _formula_images(tree)
    run_dlspec(tree, "predict", "m.onnx", "inputs", "-o", "out.csv", expect=(0,),
               allowed=("out.csv",), subprocess_=True)
    _neutral_csv(tree.work / "out.csv")


def test_predict_neutralises_hostile_labels(tree: Tree, built: Path) -> None:
    _predict_tree(tree, built)
    import onnx

    task = json.loads(next(p.value for p in onnx.load_from_string(_model(built)).metadata_props
                           if p.key == "dlspec_task"))
    task["labels"] = ['=HYPERLINK("http://x","y")', "@SUM(A1)\x1b[2J"]
    tree.write("m.onnx", _with_metadata(built, dlspec_task=json.dumps(task)))
    outcome = run_dlspec(tree, "predict", "m.onnx", "x.npy", expect=(0,))
    path = tree.work / "stdout.csv"
    path.write_text(outcome.out, encoding="utf-8")
    _neutral_csv(path)


def test_predict_to_a_full_device(tree: Tree, built: Path) -> None:
    _predict_tree(tree, built)
    outcome = run_dlspec(tree, "predict", "m.onnx", "x.npy", stdout_path="/dev/full",
                         expect=(1,))
    assert "standard output" in outcome.err


# --- diagram -------------------------------------------------------------------------------

HOSTILE_TEXT = ('<B>bold</B> </TD></TR></TABLE> <script>alert(1)</script> & "quoted" '
                "'single' \\N \\l \\\\ ]; node [label=pwned]; { } \u202e \x1b[31m \\")


def _hostile_block_label() -> str:
    return tiny(network=f"""\
        blocks:
          tagged:
            params: {{note: {{default: {json.dumps(HOSTILE_TEXT)}}}}}
            layers:
              - {{name: inner, linear: 8}}
        network:
          - {{tagged: {{note: {json.dumps(HOSTILE_TEXT)}}}, name: block}}
          - {{name: out, linear: 2}}
        """)


def _svg_is_well_formed(tree: Tree, outcome: Outcome) -> None:
    import xml.etree.ElementTree as ElementTree

    svg = tree.work / "d.svg"
    if outcome.code == 0 and svg.exists():
        root = ElementTree.parse(svg).getroot()
        text = "".join(root.itertext())
        assert "pwned" not in {e.get("id") for e in root.iter()}, "a node was injected"
        assert not any(e.tag.endswith("script") for e in root.iter()), "a script was injected"
        assert "\x1b" not in text


DIAGRAM_CASES = [
    Case("diagram-hostile-description", ("diagram", "spec.yaml", "-o", "d.svg"),
         spec_files(tiny(head="dlspec: 1\nname: tiny\ndescription: "
                              + json.dumps(HOSTILE_TEXT) + "\n")),
         expect=(0,), allowed=("d.svg", "d.dot"), check=_svg_is_well_formed, subprocess_=True),
    Case("diagram-hostile-block-parameter", ("diagram", "spec.yaml", "-o", "d.svg"),
         spec_files(_hostile_block_label()), expect=(0, 2), allowed=("d.svg", "d.dot"),
         check=_svg_is_well_formed),
    Case("diagram-hostile-block-parameter-collapsed",
         ("diagram", "spec.yaml", "-o", "d.svg", "--depth", "1"),
         spec_files(_hostile_block_label()), expect=(0, 2), allowed=("d.svg", "d.dot"),
         check=_svg_is_well_formed),
    Case("diagram-hostile-description-dot", ("diagram", "spec.yaml", "-o", "d.dot"),
         spec_files(tiny(head="dlspec: 1\nname: tiny\ndescription: "
                              + json.dumps(HOSTILE_TEXT) + "\n")),
         expect=(0,), allowed=("d.dot",), check=lambda t, o: _dot_parses(t.work / "d.dot")),
    Case("diagram-description-with-a-lone-surrogate", ("diagram", "spec.yaml", "-o", "d.svg"),
         spec_files(tiny(head='dlspec: 1\nname: tiny\ndescription: "a\\ud800b\\x00c"\n')),
         expect=(0,), allowed=("d.svg", "d.dot"), check=_svg_is_well_formed),
    Case("diagram-reserved-layer-name", ("diagram", "spec.yaml", "-o", "d.svg"),
         spec_files(tiny(network="network:\n  - {name: __init__, linear: 8}\n  - linear: 2\n")),
         located=True),
    Case("diagram-output-is-a-folder", ("diagram", "spec.yaml", "-o", "folder.svg"),
         _chain(spec_files(tiny()), lambda t: (t.work / "folder.svg").mkdir())),
    Case("diagram-dot-output-is-a-folder", ("diagram", "spec.yaml", "-o", "d.svg"),
         _chain(spec_files(tiny()), lambda t: (t.work / "d.dot").mkdir())),
    Case("diagram-output-below-a-file", ("diagram", "spec.yaml", "-o", "data.csv/d.svg"),
         spec_files(tiny())),
    Case("diagram-absurd-sizes", ("diagram", "spec.yaml", "-o", "d.svg"),
         spec_files(tiny(network="network:\n  - linear: 1000000000000\n  - linear: 2\n")),
         located=True),
    Case("diagram-read-only-output", ("diagram", "spec.yaml", "-o", "/sys/kernel/d.svg"),
         spec_files(tiny()), expect=(1, 2)),
]


def _dot_parses(path: Path) -> None:
    result = subprocess.run(["dot", "-Tsvg", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "<title>pwned</title>" not in result.stdout, "a node was injected"


@pytest.mark.parametrize("case", [c.param() for c in DIAGRAM_CASES])
def test_hostile_diagram(tree: Tree, case: Case) -> None:
    if shutil.which("dot") is None and case.check is _svg_is_well_formed:
        pytest.skip("Graphviz's dot is not installed")
    _run_case(tree, case)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("text", ["ends in a backslash \\", 'x\\"]; pwned [label="pwned"]; y="',
                                  'x\\\\"]; pwned [label="pwned"]; y="', "\x1b[2J\u202e\ud800"])
def test_tooltip_text_cannot_break_the_dot_source(text: str) -> None:
    import graphviz

    from dlspec.diagram.style import dot_string

    graph = graphviz.Digraph("t")
    graph.node("a", "a", tooltip=dot_string(text))
    graph.node("b", "b", tooltip=dot_string(text))
    result = subprocess.run(["dot", "-Tsvg"], input=graph.source, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "<title>pwned</title>" not in result.stdout


# --- hypothesis: hostile values anywhere in a valid spec -----------------------------------

HOSTILE_VALUES = st.one_of(
    st.sampled_from([10**12, 2**31, 2**63, 2**64 + 1, 10**100, -(10**100), -1, 0, -0.0,
                     float("inf"), float("-inf"), float("nan"), 1e308, 5e-324, True, None,
                     "", "../../victim/target.txt", "/etc/passwd", "~/x", "C:\\x", "a\x00b",
                     "\x1b[2J", "\u202e", "\ud800", "$(n ** n)",
                     "$(" + "(" * 500 + "1" + ")" * 500 + ")", "$(10 ** 10 ** 10)",
                     "$(9999999999 * 9999999999 * 9999999999)",
                     "__init__", "__class__", "_modules", "x" * 10000, [], {}, [[[[[]]]]],
                     "!!python/object:os.system"]),
    st.integers(), st.floats(), st.text(max_size=20),
)

SMALL_SPEC = yaml.safe_load(tiny(export="export: {onnx: {opset: 18, file: model.onnx}}\n"))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*prefix, key))
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.append((*prefix, index))
            found += _paths(value, (*prefix, index))
    return found


SPEC_PATHS = [p for p in _paths(SMALL_SPEC) if p[0] not in ("dlspec",)]


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def _in_process_command(spec: Path, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, str(spec)])
    return code, err.getvalue()


@pytest.fixture(scope="module")
def hostile_spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile-values")
    (folder / "data.csv").write_text(data_csv())
    return folder / "spec.yaml"


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(changes=st.lists(st.tuples(st.sampled_from(SPEC_PATHS), HOSTILE_VALUES), min_size=1,
                        max_size=3))
def test_hostile_values_get_ok_or_located_errors(hostile_spec_file: Path,
                                                 changes: list[tuple[tuple[Any, ...], Any]],
                                                 ) -> None:
    data = json.loads(json.dumps(SMALL_SPEC))
    for path, value in changes:
        with contextlib.suppress(KeyError, IndexError, TypeError):  # an earlier change
            _set(data, path, value)  # may have removed the place
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    note(text)
    hostile_spec_file.write_text(text, encoding="utf-8")
    code, err = _in_process_command(hostile_spec_file, "check")
    assert code in (0, 2), f"check: exit {code}\n{err}"
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        first = err.splitlines()[0]
        assert first.startswith(f"{hostile_spec_file}:") and LOCATED.match(first), err
        return
    for command in ("summary", "code"):  # what check accepts, the next commands accept too
        code, err = _in_process_command(hostile_spec_file, command)
        assert code == 0, f"{command}: exit {code} after check passed\n{err}"


def test_hostile_values_through_the_command(tree: Tree) -> None:
    """A few of the values above, through the real command in one subprocess."""
    specs = {
        "overflow.yaml": _expression_blocks("$(n * n * n * n * n * n * n * n * n * n)",
                                            "100000000000000000000"),
        "nan.yaml": tiny(optimizer="optimizer: {type: adam, lr: .nan}\n"),
        "huge.yaml": tiny(network="network:\n  - linear: 1000000000000\n  - linear: 2\n"),
        "path.yaml": tiny(export="export: {onnx: {file: /etc/passwd}}\n"),
        "control.yaml": tiny(head='dlspec: 1\nname: "tiny\\e[2J"\n'),
    }
    for name, text in specs.items():
        tree.write(name, text)
    tree.write("data.csv", data_csv())
    outcome = run_dlspec(tree, "check", *specs, expect=(2,), forbidden=("\x1b",),
                         subprocess_=True)
    for name in specs:
        assert re.search(rf"^{re.escape(name)}:\d+:\d+: ", outcome.err, re.M), \
            f"no located error for {name}:\n{outcome.err}"
