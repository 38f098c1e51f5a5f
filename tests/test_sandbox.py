"""The sandboxed runner: deadlines kill whole process groups, limits hold, isolation is reported."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from lsp_verify.verify.sandbox import Limits, WorkerProcess, choose_isolation, isolation_report, run_process


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


def test_closing_a_worker_while_it_starts_leaves_no_process(tmp_path: Path) -> None:
    """A verifier closed while its warm-up thread is still starting the worker (the server closes
    verifiers when settings change, right after it warmed them up) must not leave that worker behind."""
    for delay in (0.0, 0.05, 0.3):
        worker = WorkerProcess(
            "pytest",
            limits=Limits(),
            isolation=choose_isolation("auto"),
            writable=[tmp_path],
            readable=[tmp_path, *(Path(p) for p in sys.path if p)],
            cwd=tmp_path,
        )
        warm = threading.Thread(target=worker.warm_up)
        warm.start()
        time.sleep(delay)
        worker.close()
        warm.join(timeout=60)
        assert not warm.is_alive()
        process = worker._process
        assert process is None, "closed, yet a worker process is held"
        worker.warm_up()  # after close: starts nothing
        assert worker._process is None and worker.starts <= 1
