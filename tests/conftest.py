"""Shared fixtures: small specs written inline, and the repository's paths."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

if "PYTEST_XDIST_WORKER" in os.environ:
    # one torch thread per worker and per process a test starts: the workers already keep
    # every core busy, and oversubscribed threads make torch many times slower
    os.environ["OMP_NUM_THREADS"] = "1"

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write dedented YAML text to a file in tmp_path and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


HEADER = """\
dlspec: 1
name: tiny
inputs:
  x: {shape: [4]}
"""


def spec_text(network: str, header: str = HEADER) -> str:
    """A spec with the standard tiny header and the given `network:` body."""
    return header + textwrap.dedent(network).lstrip("\n")
