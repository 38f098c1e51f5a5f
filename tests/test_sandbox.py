"""The sandboxed runner: deadlines kill whole process trees, limits hold, isolation is reported, and a
sandbox that was asked for is never silently dropped.

Hostile-repository tests of the whole verifier are in test_hostile_processes.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from lsp_verify.config import Settings
from lsp_verify.verify.cascade import Verifier, VerifyError
from lsp_verify.verify.mypy_check import default_cache_dir
from lsp_verify.verify.sandbox import (
    HIDE_BWRAP_ENV,
    Limits,
    SandboxUnavailable,
    WorkerProcess,
    choose_isolation,
    isolation_report,
    run_process,
)
from test_hostile_processes import processes_with, wait_until


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


def test_isolation_report_says_what_a_run_can_read_write_and_reach() -> None:
    chosen = choose_isolation("auto")
    report = isolation_report("auto")
    assert report.startswith("isolation: ")
    assert {"bwrap": "bubblewrap", "unshare": "unshare", "none": "NONE"}[chosen] in report.splitlines()[0]
    for heading in ("network:", "home directory:", "readable:", "writable:", "processes:"):
        assert f"\n{heading}" in report
    if chosen == "bwrap":
        assert "home directory: NOT visible" in report and "network: none" in report
    else:
        assert "home directory: VISIBLE" in report
    assert isolation_report("none").startswith("isolation: NONE")
    assert "network: OPEN" in isolation_report("none")


def test_sandbox_bwrap_fails_closed_where_bubblewrap_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HIDE_BWRAP_ENV, "1")
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        choose_isolation("bwrap")
    assert choose_isolation("auto") in ("unshare", "none")  # "auto" takes what is left
    assert "refused" in isolation_report("bwrap")
    marker = f"lsp-verify-closed-{uuid.uuid4().hex}"
    monkeypatch.setenv("LSP_VERIFY_TEST_MARKER", marker)
    (tmp_path / "pkg.py").write_text("def f() -> int:\n    return 1\n")
    with pytest.raises(VerifyError, match="sandbox is 'bwrap' but bubblewrap is hidden"):
        Verifier(tmp_path, Settings(trusted=True, sandbox="bwrap"))
    assert not processes_with(marker), "a worker started although the sandbox cannot run"


def test_check_with_sandbox_bwrap_and_no_bubblewrap_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.lsp-verify]\nsandbox = "bwrap"\n')
    (tmp_path / "pkg.py").write_text("def f() -> int:\n    return 1\n")
    env = {**os.environ, HIDE_BWRAP_ENV: "1"}
    done = subprocess.run(
        [sys.executable, "-m", "lsp_verify", "check", "pkg.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("lsp-verify: error:")]
    assert len(errors) == 1 and "bubblewrap" in errors[0] and "nothing was run" in errors[0], done.stderr


def test_mypy_cache_is_per_workspace_and_per_trust_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trusted run's mypy plugins can write the cache mypy trusts: it must not be another project's, nor
    this project's untrusted view's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    caches = {default_cache_dir(one, True), default_cache_dir(one, False), default_cache_dir(two, True)}
    assert len(caches) == 3
    assert default_cache_dir(one, True) == default_cache_dir(one, True)
    for cache in caches:
        assert cache.is_dir() and tmp_path / "cache" in cache.parents


def test_closing_a_worker_while_it_starts_leaves_no_process(tmp_path: Path) -> None:
    """A verifier closed while its warm-up thread is still starting the worker (the server closes
    verifiers when settings change, right after it warmed them up) must not leave that worker behind."""
    for delay in (0.0, 0.05, 0.3):
        marker = f"lsp-verify-warm-{uuid.uuid4().hex}"
        worker = WorkerProcess(
            "pytest",
            limits=Limits(),
            isolation=choose_isolation("auto"),
            writable=[tmp_path],
            readable=[tmp_path, *(Path(p) for p in sys.path if p)],
            cwd=tmp_path,
            env={"LSP_VERIFY_TEST_MARKER": marker},
        )
        warm = threading.Thread(target=worker.warm_up)
        warm.start()
        time.sleep(delay)
        worker.close()
        warm.join(timeout=60)
        assert not warm.is_alive()
        assert wait_until(lambda m=marker: not processes_with(m)), "closed, yet a worker process runs"
        worker.warm_up()  # after close: starts nothing
        assert not processes_with(marker)
