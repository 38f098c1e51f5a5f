"""Shared pytest fixtures. Each area owns one clearly marked block; add yours as a new block."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lsp_verify.model.engine import Engine
    from lsp_verify.model.source import ModelFile
    from lsp_verify.verify.pytest_run import Collection, PytestRunner
    from lsp_verify.verify.sandbox import WorkerProcess
    from lsp_verify.verify.shadow import ShadowRoot

# ============================================================================================================
# model: the embedded GGUF and ONE shared engine (loading costs seconds and ~0.5 GB: do it once per session)
# ============================================================================================================


@pytest.fixture(scope="session")
def model_file() -> ModelFile:
    """The embedded default model, assembled into the per-user cache on first use (skips if not installed)."""
    from lsp_verify.model.source import ModelNotFound, resolve_model

    try:
        return resolve_model()
    except ModelNotFound as exc:
        pytest.skip(f"embedded model not available: {exc}")


@pytest.fixture(scope="session")
def engine(model_file: ModelFile) -> Iterator[Engine]:
    """One engine for the whole session: n_ctx 2048, 8 sequences. Tests must use fixed seeds."""
    from lsp_verify.model.engine import Engine

    with Engine(model_file.path, n_ctx=2048, n_seq_max=8) as eng:
        yield eng


# ============================================================================================================
# end of model block
# ============================================================================================================


# ============================================================================================================
# discovery: pytest's own collection of a project, as the verifier makes it
# ============================================================================================================


@pytest.fixture
def make_test_runner() -> Iterator[Callable[..., tuple[PytestRunner, ShadowRoot, WorkerProcess]]]:
    """``make_test_runner(root, timeout_s=30)``: the verifier's pytest runner for the project at ``root``: a
    fork server and fresh processes, both sandboxed, with shadows in their own private directory."""
    import sys

    from lsp_verify.verify.pytest_run import FreshProcess, PytestRunner
    from lsp_verify.verify.sandbox import Limits, WorkerProcess, choose_isolation
    from lsp_verify.verify.shadow import ShadowRoot

    opened: list[tuple[WorkerProcess, ShadowRoot]] = []

    def make(root: Path, timeout_s: float = 30.0) -> tuple[PytestRunner, ShadowRoot, WorkerProcess]:
        root = root.resolve()
        shadows = ShadowRoot(root)
        isolation = choose_isolation("auto")
        readable = (root, *(Path(p) for p in sys.path if p))
        worker = WorkerProcess(
            "pytest", limits=Limits(), isolation=isolation, writable=[shadows.path], readable=readable,
            cwd=shadows.path,
        )  # fmt: skip
        opened.append((worker, shadows))
        fresh = FreshProcess(Limits(), isolation, (shadows.path,), readable)
        return PytestRunner(worker, shadows, timeout_s, fresh), shadows, worker

    yield make
    for worker, shadows in opened:
        worker.close()
        shadows.close()


@pytest.fixture
def collect_tests(
    make_test_runner: Callable[..., tuple[PytestRunner, ShadowRoot, WorkerProcess]],
) -> Callable[[Path], Collection]:
    """``collect_tests(root)``: real pytest's collection of the project at ``root`` (fork server and fresh
    process, as ``Verifier.prepare`` makes it), through a shadow of it."""
    from lsp_verify.cancel import CancelToken

    def collect(root: Path) -> Collection:
        runner, shadows, _ = make_test_runner(root)
        anchor = next(path for path in sorted(root.rglob("*.py")) if "__pycache__" not in path.parts)
        shadow = shadows.create(anchor.relative_to(root), anchor.read_text(encoding="utf-8"))
        try:
            return runner.collect(shadow, CancelToken())
        finally:
            shadow.remove()

    return collect


# ============================================================================================================
# end of discovery block
# ============================================================================================================


# ============================================================================================================
# pytest plugins: the projects the tests make run pytest with none of this environment's plugins autoloaded
# ============================================================================================================

# The projects these tests make have no environment of their own, so their tests run on this one's Python,
# with every pytest11 plugin installed here for lsp-verify's own tests: pytest-lsp (importing lsprotocol:
# 0.9 s of CPU), pytest-asyncio, xdist, pytest-cov, pytest-timeout, Hypothesis. Imported by each fresh pytest
# process and fork server a `check` starts, they were about half of its CPU and nothing a test here judges.
# So each test's environment sets PYTEST_DISABLE_PLUGIN_AUTOLOAD, as a user's may: pytest then loads no
# plugin by entry point, and lsp-verify's fork server imports none (`_worker._preimport`). It is set after
# this process's own plugins are loaded, so only the processes the tests start see it. A test of how a
# project's installed plugins are handled is marked `installed_plugins` and runs with them.
PLUGIN_AUTOLOAD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"


@pytest.fixture(scope="session", autouse=True)
def _projects_autoload_no_plugins() -> Iterator[None]:
    before = os.environ.get(PLUGIN_AUTOLOAD)
    os.environ[PLUGIN_AUTOLOAD] = "1"
    yield
    if before is None:
        os.environ.pop(PLUGIN_AUTOLOAD, None)
    else:
        os.environ[PLUGIN_AUTOLOAD] = before


@pytest.fixture(autouse=True)
def _installed_plugins_where_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("installed_plugins"):
        monkeypatch.delenv(PLUGIN_AUTOLOAD, raising=False)


# ============================================================================================================
# end of pytest plugins block
# ============================================================================================================
