"""Bad input gets a clear error, and nothing else.

Every file in tests/bad_specs/ holds one mistake and says, in its header, what
`dlspec check` must report first:

    # what the mistake is
    # expect: LINE:COL PATH        location and path prefix of the first error
    # message: word; other words   all must appear in that line (any case)

The path may be empty for errors about the whole document (YAML syntax). The
resource-limit tests run the real command in a subprocess, as a user would.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dlspec.cli import main

BAD_SPECS = Path(__file__).resolve().parent / "bad_specs"
LOCATED = re.compile(r"^\S+:\d+:\d+: ")
NOTE = re.compile(r"^\s+note: ")
EXPECT = re.compile(r"^#\s*expect:\s*(\d+):(\d+)(?:\s+(\S+))?\s*$")
MESSAGE = re.compile(r"^#\s*message:\s*(.*)$")


@dataclass(frozen=True)
class Expectation:
    line: int
    column: int
    path: str
    words: tuple[str, ...]


def read_expectation(spec: Path) -> Expectation:
    """Parse the `# expect:` and `# message:` header lines of a bad spec."""
    where: re.Match[str] | None = None
    words: tuple[str, ...] | None = None
    for raw in spec.read_text(encoding="utf-8").splitlines():
        if not raw.startswith("#"):
            break
        if match := EXPECT.match(raw):
            where = match
        elif match := MESSAGE.match(raw):
            words = tuple(w.strip() for w in match.group(1).split(";") if w.strip())
    assert where is not None, f"{spec.name}: no `# expect: LINE:COL PATH` header"
    assert words, f"{spec.name}: no `# message: word; word` header"
    return Expectation(int(where.group(1)), int(where.group(2)), where.group(3) or "", words)


def run_cli(args: list[str], timeout: float = 30) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the real `dlspec` command; return its result and the CPU time it used.

    CPU time (user + system of the child) rather than wall time: the suite runs tests in
    parallel on two cores, and the limit is about dlspec's work, not the machine's load.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([sys.executable, "-m", "dlspec", *args], capture_output=True,
                            text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, used


def assert_only_located_errors(stderr: str) -> None:
    """Every line is `FILE:LINE:COL: ...` or an indented note; never a traceback."""
    assert "Traceback" not in stderr
    assert "internal error" not in stderr
    lines = stderr.splitlines()
    assert lines, "no error was printed"
    for line in lines:
        assert LOCATED.match(line) or NOTE.match(line), f"unlocated line: {line!r}"


BAD = sorted(BAD_SPECS.glob("*.yaml"))


def test_there_are_at_least_40_bad_specs() -> None:
    assert len(BAD) >= 40


@pytest.mark.parametrize("spec", BAD, ids=[p.stem for p in BAD])
def test_bad_spec_gets_one_clear_located_error(spec: Path, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    expected = read_expectation(spec)
    code = main(["check", str(spec)])
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}, expected 2\n{err}"
    assert_only_located_errors(err)
    first = err.splitlines()[0]
    location = f"{spec}:{expected.line}:{expected.column}: "
    assert first.startswith(location + expected.path), (
        f"expected the first error at {expected.line}:{expected.column} "
        f"{expected.path or '(no path)'}\n got: {first}")
    message = first[len(location):].lower()
    missing = [w for w in expected.words if w.lower() not in message]
    assert not missing, f"missing {missing} in: {first}"


def test_the_real_command_reports_each_bad_file_in_turn() -> None:
    names = ["kernel_larger_than_input", "unknown_kind_conv2", "duplicate_key"]
    files = [BAD_SPECS / f"{name}.yaml" for name in names]
    result, _ = run_cli(["check", *map(str, files)])
    assert result.returncode == 2, result.stderr
    assert_only_located_errors(result.stderr)
    blocks = [line.split(":", 1)[0] for line in result.stderr.splitlines()
              if LOCATED.match(line)]
    assert blocks == [str(f) for f in files], result.stderr
    for file in files:
        expected = read_expectation(file)
        assert f"{file}:{expected.line}:{expected.column}: {expected.path}" in result.stderr


# --- resource limits: each exits 2 within 2 s, with no traceback ------------------------

ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{name}: &{name} [{','.join([f'*{prev}'] * 10)}]\n"
    for prev, name in zip("abcdefg", "bcdefgh", strict=True)
)  # 10**8 values when expanded


def assert_refused_quickly(path: Path) -> None:
    result, seconds = run_cli(["check", str(path)])
    assert result.returncode == 2, result.stderr
    assert_only_located_errors(result.stderr)
    assert result.stderr.startswith(f"{path}:")
    assert seconds < 2, f"took {seconds:.2f} s"


def test_a_300_byte_alias_bomb_is_refused(tmp_path: Path) -> None:
    assert len(ALIAS_BOMB) <= 300
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert_refused_quickly(path)


def test_a_1000_level_nested_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 1000 + "]" * 1000 + "\n")
    assert_refused_quickly(path)


def test_a_file_over_1_mib_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("dlspec: 1\nname: big\n# " + "x" * (1 << 20) + "\n")
    assert_refused_quickly(path)


def test_a_self_referencing_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("dlspec: 1\nname: loop\ninputs: &a {x: *a}\n")
    assert_refused_quickly(path)


def test_nesting_built_from_aliases_is_refused(tmp_path: Path) -> None:
    # each line nests only 60 deep, but each alias adds another 60 levels when expanded
    lines = ["a0: &a0 " + "[" * 60 + "x" + "]" * 60]
    lines += [f"a{i}: &a{i} " + "[" * 60 + f"*a{i - 1}" + "]" * 60 for i in range(1, 25)]
    path = tmp_path / "alias_depth.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert_refused_quickly(path)


def test_a_small_spec_expanding_past_the_layer_limit_stops_early(tmp_path: Path) -> None:
    path = tmp_path / "nested_repeat.yaml"
    path.write_text("dlspec: 1\nname: big\ninputs:\n  x: {shape: [8]}\nblocks:\n  d:\n"
                    "    layers: [{relu, repeat: 10000}]\nnetwork:\n  - {d, repeat: 10000}\n")
    try:
        result, seconds = run_cli(["check", str(path)], timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("expansion went on for 10 s after passing the layer limit")
    assert result.returncode == 2, result.stderr
    assert_only_located_errors(result.stderr)
    assert "50,000" in result.stderr


def test_an_error_in_a_repeated_block_is_reported_once(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    path = tmp_path / "repeated.yaml"
    path.write_text("dlspec: 1\nname: r\ninputs:\n  x: {shape: [8]}\nblocks:\n  d:\n"
                    "    layers: [{relu, from: nope}]\nnetwork:\n  - {d, repeat: 50}\n")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert_only_located_errors(err)
    errors = [line for line in err.splitlines() if LOCATED.match(line)]
    assert len(errors) == 1, f"{len(errors)} errors:\n" + "\n".join(errors[:5])
