"""The real server starts the verifier's workers when the session starts, not at the first request.

No model is needed: the workers (mypy and pytest fork servers) are the verifier's, and the model itself
stays unloaded until a request needs it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp

from .conftest import SERVER, EditorClient, cmdline, config, copy_project, descendants, start, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


def workers(pid: int) -> list[str]:
    """The modes of the verifier fork servers running under server ``pid`` (sandbox wrappers skipped)."""
    modes = []
    for child in descendants(pid):
        command = cmdline(child)
        if "lsp-verify-worker" in command and not command.split(" ")[0].endswith("bwrap"):
            modes.append("mypy" if "'mypy'" in command else "pytest")
    return sorted(modes)


@pytest_lsp.fixture(scope="module", config=config(SERVER))
async def trusted(lsp_client: EditorClient, tmp_path_factory: pytest.TempPathFactory):
    await start(lsp_client, copy_project(tmp_path_factory.mktemp("warm") / "lsp_project"), trusted=True)
    yield
    started = descendants(_pid(lsp_client))
    await lsp_client.shutdown_session()
    # The warmed-up workers go with the server, although no request ever used them.
    assert await wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in started), timeout=10)


@pytest_lsp.fixture(scope="module", config=config(SERVER))
async def untrusted(lsp_client: EditorClient, tmp_path_factory: pytest.TempPathFactory):
    await start(lsp_client, copy_project(tmp_path_factory.mktemp("warm-untrusted") / "lsp_project"))
    yield
    await lsp_client.shutdown_session()


def _pid(client: EditorClient) -> int:
    assert client._server is not None
    return client._server.pid


async def test_workers_start_with_the_session(trusted: EditorClient) -> None:
    pid = _pid(trusted)
    assert await wait_until(lambda: workers(pid) == ["mypy", "pytest"], timeout=30), workers(pid)


async def test_an_untrusted_session_starts_no_test_worker(untrusted: EditorClient) -> None:
    pid = _pid(untrusted)
    assert await wait_until(lambda: workers(pid) == ["mypy"], timeout=30), workers(pid)
