"""bench/reach.py on one small library: its table row says which functions only reached tests judge, and a
broken candidate for one of them is refused with the traced run and passed without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_callers import _slugs_project

REPO = Path(__file__).resolve().parents[1]


def test_the_reach_benchmark_prints_a_row_per_library(tmp_path: Path) -> None:
    _slugs_project(tmp_path / "libs" / "slugs-project")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "reach.py"), "--libs", str(tmp_path / "libs"), "--mutate", "1",
         "slugs-project"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| slugs-project"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # functions, named (slugify, shout), reached with nothing before (_normalize), refused before / after
    assert cells[1:6] == ["3", "2", "0", "1", "0"], row
    assert cells[8:10] == ["0/1", "1/1"], row
