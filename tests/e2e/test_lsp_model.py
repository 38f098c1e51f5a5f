"""The real server with the real embedded model, through a real client (small k, short outputs, fixed seed).

Sampling decides the text, so these tests assert what a user relies on: the applied buffer parses and passes
the tests, progress arrives in order, a cancel stops the work and its child processes, a stale result is not
applied, an untrusted workspace runs no tests.
"""

from __future__ import annotations

import ast
import asyncio
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from .conftest import (
    MODEL_OPTIONS,
    SERVER,
    EditorClient,
    add_tests_pass,
    code_actions,
    config,
    copy_project,
    descendants,
    line_of,
    running_work,
    start,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.model, pytest.mark.asyncio(loop_scope="module")]


@pytest_lsp.fixture(scope="module", config=config(SERVER))
async def client(lsp_client: EditorClient, project: Path):
    await start(lsp_client, project, trusted=True, **MODEL_OPTIONS)
    yield
    await lsp_client.shutdown_session()


async def test_complete_applies_an_edit_that_passes_the_tests(
    client: EditorClient, project: Path, tmp_path: Path
) -> None:
    uri = client.open(project / "mathutil.py")
    before = client.text(uri)
    client.progress_reports.clear()
    (action,) = await code_actions(client, uri, line_of(before, "def add"))
    assert action.title == "Complete `add` (verified)"

    resolved = await client.code_action_resolve_async(action)

    assert resolved.edit is not None, [m.message for m in client.messages]
    assert client.apply(resolved.edit)
    after = client.text(uri)
    ast.parse(after)
    assert after.split("def add")[0] == before.split("def add")[0]
    assert after.split("def double")[1] == before.split("def double")[1]  # nothing outside `add` changed
    result = add_tests_pass(tmp_path, after)
    assert result.returncode == 0, result.stdout + after

    (values,) = client.progress_reports.values()
    kinds = [type(v).__name__ for v in values]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"
    assert set(kinds[1:-1]) == {"WorkDoneProgressReport"}
    messages = [v.message or "" for v in values[1:-1]]
    assert any(m.startswith("generating ") for m in messages) and any(
        m.startswith("verifying ") for m in messages
    )
    percentages = [v.percentage for v in values[1:-1]]
    assert percentages == sorted(percentages)

    report = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="lsp-verify.showReport")
    )
    assert "passed (tests)" in report and "test_add" in report


async def _generate_in_background(client: EditorClient, uri: str, msg_id: str) -> asyncio.Future:
    client.progress_reports.clear()
    (action,) = await code_actions(client, uri, line_of(client.text(uri), "def magic"))
    future = asyncio.ensure_future(
        client.protocol.send_request_async(types.CODE_ACTION_RESOLVE, action, msg_id=msg_id)
    )

    def generating() -> bool:
        return any(
            isinstance(v, types.WorkDoneProgressReport) and (v.message or "").startswith("generating")
            for values in client.progress_reports.values()
            for v in values
        )

    assert await wait_until(generating, timeout=120)
    return future


async def test_cancel_mid_generation_stops_work_and_child_processes(
    client: EditorClient, project: Path
) -> None:
    uri = client.open(project / "secret.py")
    before = client.text(uri)
    future = await _generate_in_background(client, uri, "model-cancel")

    cancelled_at = time.monotonic()
    client.cancel_request(types.CancelParams(id="model-cancel"))
    with pytest.raises(JsonRpcException) as error:
        await future
    assert error.value.code == -32800
    pid = client._server.pid  # type: ignore[union-attr]
    assert await wait_until(lambda: running_work(pid) == [], timeout=5), running_work(pid)
    assert time.monotonic() - cancelled_at < 10
    assert client.text(uri) == before


async def test_edit_during_generation_is_not_applied(client: EditorClient, project: Path) -> None:
    uri = client.open(project / "secret.py")
    future = await _generate_in_background(client, uri, "model-stale")

    client.replace_text(uri, client.text(uri).replace('"""A function', '"""Still a function'))
    typed = client.text(uri)

    with pytest.raises(JsonRpcException) as error:
        await future
    assert error.value.code == -32801
    assert client.text(uri) == typed


@pytest_lsp.fixture(scope="module", config=config(SERVER))
async def untrusted(lsp_client: EditorClient, tmp_path_factory: pytest.TempPathFactory):
    project = copy_project(tmp_path_factory.mktemp("untrusted") / "lsp_project")
    await start(lsp_client, project, "neovim", **MODEL_OPTIONS)  # utf-8 positions, no documentChanges
    lsp_client.project = project  # type: ignore[attr-defined]
    yield
    assert lsp_client._server is not None
    started = descendants(lsp_client._server.pid)
    await lsp_client.shutdown_session()
    # Exiting stops every process the server started (the verifier's fork servers included).
    assert await wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in started), timeout=10)


async def test_untrusted_workspace_runs_no_tests(untrusted: EditorClient) -> None:
    project: Path = untrusted.project  # type: ignore[attr-defined]
    uri = untrusted.open(project / "mathutil.py")
    (action,) = await code_actions(untrusted, uri, line_of(untrusted.text(uri), "def add"))
    assert action.title == "Complete `add` (types only — workspace not trusted)"

    arguments = action.command.arguments if action.command else [action.data]
    result = await untrusted.workspace_execute_command_async(
        types.ExecuteCommandParams(command="lsp-verify.verifyAndApply", arguments=arguments)
    )

    report = await untrusted.workspace_execute_command_async(
        types.ExecuteCommandParams(command="lsp-verify.showReport")
    )
    assert "untrusted workspace: tests not run" in report
    assert "| tests |" not in report and "- test `" not in report
    if result["applied"]:
        ast.parse(untrusted.text(uri))
    else:
        assert untrusted.messages, "nothing applied and nothing said"
