"""`dlspec completion SHELL`: the tab-completion script of every command, option and spec path.

The script is generated from the parser itself with shtab (static: nothing runs at each tab),
so a new command or option is completed as soon as it exists. Spec arguments complete to
folders and `.yaml`/`.yml` files, other paths to files or folders.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SHELLS = ("bash", "zsh", "tcsh")
# how each shell lists spec files: folders to descend into, and YAML files
_SPEC_PREAMBLE = {
    "bash": '_shtab_dlspec_specs() {\n  compgen -d -S / -- "$1"\n'
            '  compgen -f -X "!*.@(yaml|yml)" -- "$1"\n}\nshopt -s extglob\n',
    "zsh": "",
    "tcsh": "",
}
_SPEC_FILES = {"bash": "_shtab_dlspec_specs", "zsh": "_files -g '*.(yaml|yml)'", "tcsh": "f"}


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `completion` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser(
        "completion", help="print the shell's tab-completion script",
        description="Print a tab-completion script for dlspec's commands, options and spec "
        "files. Bash: dlspec completion bash > ~/.local/share/bash-completion/completions/"
        "dlspec (or `eval \"$(dlspec completion bash)\"` in ~/.bashrc); zsh: dlspec "
        "completion zsh > \"${fpath[1]}/_dlspec\"; tcsh: eval `dlspec completion tcsh`.")
    parser.add_argument("shell", choices=SHELLS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the script for `args.shell`."""
    print(completion_script(args.shell), end="")
    return 0


def completion_script(shell: str) -> str:
    """The completion script of the whole `dlspec` parser for `shell`."""
    import shtab

    from dlspec.commands import build_parser

    parser = build_parser()
    _mark_paths(parser)
    return shtab.complete(parser, shell=shell, preamble=_SPEC_PREAMBLE[shell])


def _mark_paths(parser: argparse.ArgumentParser) -> None:
    """Tell shtab what each path argument completes to: spec files, or any file or folder."""
    import shtab

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_paths(sub)
        elif action.dest == "spec":
            action.complete = _SPEC_FILES  # type: ignore[attr-defined]
        elif action.type is Path:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
