"""The server's protocol behaviour through a real client, over the scripted pipeline (no model).

What is real: the server process, JSON-RPC, handlers, the pipeline worker, progress, cancellation, targets and
splicing. What is scripted: the candidates and their verdicts (see fake_server.py).
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
    FAKE_SERVER,
    EditorClient,
    children_of,
    code_actions,
    config,
    line_of,
    progress_kinds,
    start,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_lsp.fixture(scope="module", config=config(FAKE_SERVER, LSPV_FAKE_DELAY="0.05"))
async def client(lsp_client: EditorClient, project: Path):
    await start(lsp_client, project, trusted=True, k=4)
    yield
    await lsp_client.shutdown_session()


async def test_capabilities_and_instant_actions(client: EditorClient, project: Path) -> None:
    uri = client.open(project / "mathutil.py")
    text = client.text(uri)

    started = time.monotonic()
    actions = await code_actions(client, uri, line_of(text, "def add"))
    assert time.monotonic() - started < 1.0
    assert [a.title for a in actions] == ["Complete `add` (verified)"]
    # VS Code resolves `edit`: offering computes nothing, picking the action does.
    assert actions[0].edit is None and actions[0].command is None and actions[0].data["version"] == 1

    fix = await code_actions(client, uri, line_of(text, "return x * 2"))
    assert [a.title for a in fix] == ["Fix `double` (verified)"]
    assert await code_actions(client, uri, 0) == []


async def test_resolve_applies_a_verified_versioned_edit_with_progress(
    client: EditorClient, project: Path
) -> None:
    uri = client.open(project / "mathutil.py")
    before = client.text(uri)
    client.progress_reports.clear()
    (action,) = await code_actions(client, uri, line_of(before, "def add"))

    resolved = await client.code_action_resolve_async(action)

    assert resolved.edit is not None
    (change,) = resolved.edit.document_changes or []
    assert isinstance(change, types.TextDocumentEdit) and change.text_document.version == client.doc_version(
        uri
    )
    assert client.apply(resolved.edit)
    after = client.text(uri)
    ast.parse(after)
    assert "    return a + b\n" in after
    assert after.replace("    return a + b\n", "    ...\n", 1) == before  # only the body changed
    (kinds,) = progress_kinds(client)
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"
    assert set(kinds[1:-1]) == {"WorkDoneProgressReport"}
    (values,) = client.progress_reports.values()
    messages = [v.message for v in values[1:-1]]
    assert (
        "generating 1/4" in messages
        and "verifying 1/4 — tests" in messages
        and "1 passed, 1 verified" in messages
    )
    percentages = [v.percentage for v in values[1:-1]]
    assert percentages == sorted(percentages)


async def test_command_applies_through_apply_edit(client: EditorClient, project: Path) -> None:
    uri = client.open(project / "mathutil.py")
    line = line_of(client.text(uri), "def add")
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="lsp-verify.verifyAndApply", arguments=[uri, {"line": line, "character": 0}]
        )
    )
    assert result["applied"] is True
    assert "    return a + b\n" in client.text(uri)


async def test_nothing_passed_says_why(client: EditorClient, project: Path) -> None:
    uri = client.open(project / "secret.py")
    before = client.text(uri)
    client.messages.clear()
    (action,) = await code_actions(client, uri, line_of(before, "def magic"))

    resolved = await client.code_action_resolve_async(action)

    assert resolved.edit is None
    assert client.text(uri) == before
    (message,) = client.messages
    assert message.type == types.MessageType.Warning
    assert "magic: 0 of 1 distinct candidates passed" in message.message
    assert "candidate 1: tests: test_magic: assert 42 == 48151623" in message.message


async def test_show_report_returns_every_candidate(client: EditorClient) -> None:
    client.shown_documents.clear()
    markdown = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="lsp-verify.showReport", arguments=[])
    )
    assert markdown.startswith("# lsp-verify: `magic`")
    assert "## 1. candidate 1 — failed" in markdown and "| tests | no |" in markdown
    assert any(m.message == markdown for m in client.log_messages)
    (shown,) = client.shown_documents
    assert Path(shown.uri.removeprefix("file://")).read_text(encoding="utf-8") == markdown


async def test_edit_offered_for_an_older_version_is_refused(client: EditorClient, project: Path) -> None:
    uri = client.open(project / "mathutil.py")
    (action,) = await code_actions(client, uri, line_of(client.text(uri), "def add"))
    client.replace_text(uri, "# a comment on top\n" + client.text(uri))
    edited = client.text(uri)

    with pytest.raises(JsonRpcException) as error:
        await client.code_action_resolve_async(action)

    assert error.value.code == -32801  # ContentModified
    assert client.text(uri) == edited


async def test_bad_params_and_unknown_commands_get_errors(client: EditorClient) -> None:
    with pytest.raises(JsonRpcException) as error:
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="lsp-verify.verifyAndApply", arguments=[{"uri": 3}])
        )
    assert error.value.code == -32602
    with pytest.raises(JsonRpcException) as error:
        await client.workspace_execute_command_async(types.ExecuteCommandParams(command="no.such.command"))
    assert error.value.code == -32602


# -- slow candidates: cancellation and stale documents ---------------------------------------------------
@pytest_lsp.fixture(scope="module", config=config(FAKE_SERVER, LSPV_FAKE_DELAY="30"))
async def slow(lsp_client: EditorClient, project: Path):
    await start(lsp_client, project, trusted=True, k=4)
    yield
    await lsp_client.shutdown_session()


def _server_pid(client: EditorClient) -> int:
    assert client._server is not None
    return client._server.pid


async def _resolve_in_background(
    client: EditorClient, uri: str, function: str, msg_id: str
) -> asyncio.Future:
    (action,) = await code_actions(client, uri, line_of(client.text(uri), f"def {function}"))
    future = asyncio.ensure_future(
        client.protocol.send_request_async(types.CODE_ACTION_RESOLVE, action, msg_id=msg_id)
    )
    # Running: the worker holds a child process for the first candidate.
    assert await wait_until(lambda: children_of(_server_pid(client)) != [])
    return future


async def test_cancel_request_stops_the_work_and_its_children(slow: EditorClient, project: Path) -> None:
    uri = slow.open(project / "mathutil.py")
    future = await _resolve_in_background(slow, uri, "add", "cancel-me")

    started = time.monotonic()
    # Still answering while the pipeline works.
    assert await code_actions(slow, uri, line_of(slow.text(uri), "def add"))
    assert time.monotonic() - started < 1.0
    slow.cancel_request(types.CancelParams(id="cancel-me"))

    with pytest.raises(JsonRpcException) as error:
        await future
    assert error.value.code == -32800  # RequestCancelled
    assert await wait_until(lambda: children_of(_server_pid(slow)) == [], timeout=3)
    assert slow.text(uri) == (project / "mathutil.py").read_text(encoding="utf-8")


async def test_progress_cancel_stops_the_work(slow: EditorClient, project: Path) -> None:
    uri = slow.open(project / "mathutil.py")
    slow.progress_reports.clear()
    future = await _resolve_in_background(slow, uri, "add", "progress-cancel")
    # The worker's child can start before the progress the server began reaches the client (a loaded machine).
    assert await wait_until(lambda: bool(slow.progress_reports))
    (token,) = slow.progress_reports

    slow.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))

    with pytest.raises(JsonRpcException) as error:
        await future
    assert error.value.code == -32800
    assert await wait_until(lambda: children_of(_server_pid(slow)) == [], timeout=3)
    assert progress_kinds(slow)[0][-1] == "WorkDoneProgressEnd"


async def test_typing_during_the_request_is_not_overwritten(slow: EditorClient, project: Path) -> None:
    uri = slow.open(project / "mathutil.py")
    future = await _resolve_in_background(slow, uri, "add", "stale")

    slow.replace_text(uri, slow.text(uri).replace("def double", "def twice"))
    typed = slow.text(uri)

    with pytest.raises(JsonRpcException) as error:
        await future
    assert error.value.code == -32801  # ContentModified: nothing computed for the old text is applied
    assert slow.text(uri) == typed
    assert await wait_until(lambda: children_of(_server_pid(slow)) == [], timeout=3)


# -- settings ------------------------------------------------------------------------------------------
@pytest_lsp.fixture(scope="module", config=config(FAKE_SERVER))
async def untrusted(lsp_client: EditorClient, project: Path):
    lsp_client.set_configuration({"maxTokens": "lots", "trusted": True}, section="lspVerify")
    await start(lsp_client, project, k="many", temperature=-1)
    yield
    await lsp_client.shutdown_session()


async def test_bad_settings_are_reported_and_trust_stays_with_the_editor(untrusted: EditorClient) -> None:
    assert await wait_until(lambda: untrusted.messages != [])
    (message,) = untrusted.messages
    assert message.type == types.MessageType.Warning
    assert "invalid value 'many' for 'k'" in message.message
    assert "invalid value -1 for 'temperature'" in message.message
    assert "invalid value 'lots' for 'maxTokens'" in message.message
    assert "lspVerify.trusted is ignored" in message.message


async def test_untrusted_actions_say_tests_are_not_run(untrusted: EditorClient, project: Path) -> None:
    uri = untrusted.open(project / "mathutil.py")
    (action,) = await code_actions(untrusted, uri, line_of(untrusted.text(uri), "def add"))
    assert action.title == "Complete `add` (types only — workspace not trusted)"
    assert any('"trusted": true' in m.message for m in untrusted.log_messages)

    resolved = await untrusted.code_action_resolve_async(action)
    assert resolved.edit is not None
    report = await untrusted.workspace_execute_command_async(
        types.ExecuteCommandParams(command="lsp-verify.showReport")
    )
    assert "passed (types_only)" in report and "| tests |" not in report
    assert "untrusted workspace: tests not run" in report


async def test_configuration_changes_are_read_again(untrusted: EditorClient) -> None:
    untrusted.set_configuration({"k": 0}, section="lspVerify")
    untrusted.messages.clear()
    untrusted.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    assert await wait_until(lambda: untrusted.messages != [])
    assert "workspace/configuration lspVerify: invalid value 0 for 'k'" in untrusted.messages[0].message
