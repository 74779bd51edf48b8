"""Tab completion of commands, options and spec paths, and each command's own usage for an
unknown option."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def dlspec(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlspec", *args], capture_output=True,
                          text=True, cwd=cwd)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_options_and_spec_files(tmp_path: Path) -> None:
    script = dlspec("completion", "bash")
    assert script.returncode == 0, script.stderr
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "lenet5.yaml").write_text("dlspec: 1\n")
    (tmp_path / "specs" / "lenet5.txt").write_text("not a spec\n")
    (tmp_path / "completion.bash").write_text(script.stdout)

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        program = (f"source completion.bash; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1};"
                   f' COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; _shtab_dlspec;'
                   ' printf "%s\\n" "${COMPREPLY[@]}"')
        done = subprocess.run(["bash", "-c", program], capture_output=True, text=True,
                              cwd=tmp_path, check=True)
        return sorted(done.stdout.split())

    assert complete("dlspec", "tr") == ["train"]
    assert "completion" in complete("dlspec", "")
    assert complete("dlspec", "train", "--ep") == ["--epochs"]
    assert complete("dlspec", "train", "sp") == ["specs/"]
    assert complete("dlspec", "train", "specs/le") == ["specs/lenet5.yaml"]  # not the .txt


@pytest.mark.parametrize("shell", ["zsh", "tcsh"])
def test_other_shells_get_a_script_naming_every_command(shell: str) -> None:
    script = dlspec("completion", shell)
    assert script.returncode == 0, script.stderr
    for command in ("check", "train", "build", "export", "predict", "completion"):
        assert command in script.stdout


def test_an_unknown_option_prints_its_commands_usage() -> None:
    result = dlspec("train", "specs/mlp.yaml", "--lr", "0.1")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: dlspec train ")
    assert "unrecognized arguments: --lr 0.1" in result.stderr
    unknown = dlspec("completion", "fish")
    assert unknown.returncode == 2 and "usage: dlspec completion" in unknown.stderr
