"""Where and when a benchmark ran: machine, revision and load, recorded beside every result.

A benchmark's times only mean something with the machine they came from and whether it was quiet.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lsp_verify.model.types import EngineInfo

REPO = Path(__file__).resolve().parents[1]


def machine_info(info: EngineInfo | None) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import llama_cpp

        llama_version = str(llama_cpp.__version__)
    except ImportError:
        llama_version = None
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "backend": info.backend if info else None,
        "n_threads": info.n_threads if info else None,
        "n_gpu_layers": info.n_gpu_layers if info else None,
        "model": info.model_path if info else None,
        "llama_cpp_python": llama_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_revision() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev + ("+dirty" if dirty else "")


def load_average() -> list[float] | None:
    """1/5/15-minute load: a benchmark's times only mean something on a machine that was otherwise quiet."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
