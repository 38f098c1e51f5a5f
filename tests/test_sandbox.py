"""The sandboxed runner: deadlines kill whole process groups, limits hold, isolation is reported."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lsp_verify.verify.sandbox import Limits, choose_isolation, isolation_report, run_process


def test_timeout_kills_the_group_even_when_a_grandchild_holds_the_output(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_process(
        ["sh", "-c", "sleep 300 & sleep 300"], cwd=tmp_path, timeout_s=1.0, limits=Limits(), isolation="none"
    )
    assert result.timed_out
    assert time.monotonic() - started < 10


def test_memory_limit_stops_a_large_allocation(tmp_path: Path) -> None:
    result = run_process(
        [sys.executable, "-c", "b = bytearray(1024 * 1024 * 1024); print('allocated')"],
        cwd=tmp_path,
        timeout_s=30,
        limits=Limits(memory_mb=256),
        isolation="none",
    )
    assert result.returncode != 0
    assert "MemoryError" in result.output


def test_isolation_report_names_the_active_isolation() -> None:
    chosen = choose_isolation("auto")
    report = isolation_report("auto")
    assert report.startswith("isolation: ")
    assert {"bwrap": "bubblewrap", "unshare": "unshare", "none": "none"}[chosen] in report
    assert isolation_report("none").startswith("isolation: none")
