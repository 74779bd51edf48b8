"""How much memory a network needs, against how much this machine has.

Shape inference runs on the meta device, so a spec asking for 10^12 output channels passes
it; the model is built in this machine's memory only later (training, export) and would
fail there after minutes, or take the machine down. `check_fits` refuses it at `check` time,
with the numbers. Torch-free: it reads only the inferred shapes and parameter counts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

from dlspec.errors import Path, Problem

BYTES_PER_ELEMENT = 4  # float32: how modules are built and how training starts
# when the operating system does not say how much memory there is
FALLBACK_MEMORY = 1 << 40


def physical_memory() -> int:
    """Bytes of physical memory on this machine (1 TiB when the system does not say)."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return FALLBACK_MEMORY
    return pages * page_size if pages > 0 and page_size > 0 else FALLBACK_MEMORY


def format_bytes(count: int) -> str:
    """`25769803776` → `24 GiB`; absurd counts stay readable (`7.9 EiB`, `1.6e+09 EiB`)."""
    for unit, shift in (("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20),
                        ("KiB", 10)):
        if count >= 1 << shift:
            return f"{_float(count >> (shift - 10)) / 1024:.3g} {unit}"
    return f"{count} bytes"


def format_count(count: int) -> str:
    """`61706` → `61,706`; beyond a trillion in powers of ten (`1.97e+18`)."""
    return f"{count:,}" if count < 10**12 else f"{_float(count):.3g}"


def _float(count: int) -> float:
    return float(count) if count.bit_length() < 1000 else math.inf


def check_fits(params: Iterable[tuple[Path, str, int]],
               activations: Iterable[tuple[Path, str, int]],
               memory: int | None = None) -> Problem | None:
    """A Problem when the parameters plus one sample's activations exceed this machine's memory.

    `params` lists (spec path, layer name, parameters and buffers) per layer; `activations`
    (spec path, what it is, values per sample) per tensor. The problem is located where most
    of the memory comes from.
    """
    params, activations = list(params), list(activations)
    memory = physical_memory() if memory is None else memory
    total_params = sum(n for _, _, n in params)
    total_activations = sum(n for _, _, n in activations)
    needed = (total_params + total_activations) * BYTES_PER_ELEMENT
    if needed <= memory:
        return None
    parameters_dominate = total_params >= total_activations
    path, name, largest = max(params if parameters_dominate else activations,
                              key=lambda item: item[2])
    what = (f"{name} alone has {format_count(largest)} weights" if parameters_dominate else
            f"{name} alone is {format_count(largest)} values per sample")
    return Problem(path, f"the network needs {format_bytes(needed)} as float32 "
                   f"({format_count(total_params)} weights and "
                   f"{format_count(total_activations)} activation values for one sample); "
                   f"this machine has {format_bytes(memory)} of memory; {what}",
                   "make the layers smaller (out_channels, out_features, kernel_size, repeat) "
                   "or the input")
