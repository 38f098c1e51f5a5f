"""The server prepares the function the cursor rests on (``prepare_ahead``), through a real client.

Over the scripted pipeline (fake_server.py), whose ``prepare`` logs what it was asked to prepare to
``prepare.log`` in the workspace and takes ``LSPV_FAKE_PREPARE`` seconds. What the preparation does for a
real request (the baseline cached, the prompt decoded) is tested on the real pipeline in
tests/test_pipeline_prepare.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types

from lsp_verify.lsp.prepare import REST_S

from .conftest import (
    FAKE_SERVER,
    EditorClient,
    code_actions,
    config,
    copy_project,
    line_of,
    start,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

SETTLE_S = REST_S + 1.0
"""Long enough for a rested cursor's preparation to have been queued and logged its start."""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "lsp_project")


@pytest_lsp.fixture(config=config(FAKE_SERVER, LSPV_FAKE_DELAY="0.05", LSPV_FAKE_PREPARE="30"))
async def client(lsp_client: EditorClient, workspace: Path):
    await start(lsp_client, workspace, trusted=True, k=2)
    yield
    await lsp_client.shutdown_session()


def log(workspace: Path) -> list[str]:
    path = workspace / "prepare.log"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


async def at(client: EditorClient, uri: str, function: str) -> list[types.CodeAction]:
    """The editor asks for code actions with the cursor on ``function``'s def line."""
    return await code_actions(client, uri, line_of(client.text(uri), f"def {function}"))


async def test_the_function_the_cursor_rests_on_is_prepared_once(
    client: EditorClient, workspace: Path
) -> None:
    uri = client.open(workspace / "mathutil.py")
    started = time.monotonic()
    assert [a.title for a in await at(client, uri, "add")] == ["Complete `add` (verified)"]
    assert time.monotonic() - started < 1.0  # offering the action still computes nothing

    assert await wait_until(lambda: log(workspace) == ["start add 1"], timeout=SETTLE_S + 5)
    # The editor asks again as the cursor moves within the function: nothing new starts.
    await at(client, uri, "add")
    await asyncio.sleep(SETTLE_S)
    assert log(workspace) == ["start add 1"]


async def test_moving_on_before_the_cursor_rests_prepares_only_where_it_stops(
    client: EditorClient, workspace: Path
) -> None:
    uri = client.open(workspace / "mathutil.py")
    await at(client, uri, "add")
    await at(client, uri, "double")  # within REST_S: add is never prepared
    assert await wait_until(lambda: log(workspace) == ["start double 1"], timeout=SETTLE_S + 5)

    # Moving to another function stops the running preparation.
    await at(client, uri, "add")
    assert await wait_until(
        lambda: log(workspace) == ["start double 1", "cancelled double 1", "start add 1"],
        timeout=SETTLE_S + 5,
    ), log(workspace)


async def test_a_request_for_another_function_stops_the_preparation_and_runs_at_once(
    client: EditorClient, workspace: Path
) -> None:
    uri = client.open(workspace / "mathutil.py")
    await at(client, uri, "double")
    assert await wait_until(lambda: log(workspace) == ["start double 1"], timeout=SETTLE_S + 5)

    started = time.monotonic()
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="lsp-verify.verifyAndApply",
            arguments=[uri, {"line": line_of(client.text(uri), "def add"), "character": 0}],
        )
    )
    assert result["applied"] is True
    assert time.monotonic() - started < 10  # not behind the 30 s preparation of double
    assert log(workspace) == ["start double 1", "cancelled double 1"]


async def test_typing_while_the_cursor_rests_prepares_nothing_for_the_old_text(
    client: EditorClient, workspace: Path
) -> None:
    uri = client.open(workspace / "mathutil.py")
    await at(client, uri, "add")
    client.replace_text(uri, client.text(uri).replace("Return the sum", "Return the total"))
    await asyncio.sleep(SETTLE_S)
    assert log(workspace) == []

    # Typing during a preparation stops it (didChange stops every job of the document).
    version = client.doc_version(uri)
    await at(client, uri, "add")
    assert await wait_until(lambda: log(workspace) == [f"start add {version}"], timeout=SETTLE_S + 5)
    client.replace_text(uri, client.text(uri).replace("Return the total", "Return the sum"))
    assert await wait_until(
        lambda: log(workspace) == [f"start add {version}", f"cancelled add {version}"], timeout=5
    )


@pytest_lsp.fixture(config=config(FAKE_SERVER, LSPV_FAKE_PREPARE="30"))
async def turned_off(lsp_client: EditorClient, workspace: Path):
    await start(lsp_client, workspace, trusted=True, k=2, prepareAhead=False)
    yield
    await lsp_client.shutdown_session()


async def test_prepare_ahead_can_be_turned_off(turned_off: EditorClient, workspace: Path) -> None:
    uri = turned_off.open(workspace / "mathutil.py")
    assert await at(turned_off, uri, "add")
    await asyncio.sleep(SETTLE_S)
    assert log(workspace) == []
