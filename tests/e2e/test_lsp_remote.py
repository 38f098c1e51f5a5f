"""The real language server with engine "openai", through a real client: candidates come from an HTTP server
(a scripted one here; the real llama-server where it is built), verification is the real local cascade.

What a user relies on: the code action's edit is a verified body from the server, the local model is never
loaded, and a server fault is one window/showMessage line with nothing applied.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types

from openai_servers import (
    SKIP_REASON,
    ScriptedServer,
    closed_port_url,
    llama_server_binary,
    start_llama_server,
)

from .conftest import (
    SERVER,
    EditorClient,
    add_tests_pass,
    code_actions,
    config,
    copy_project,
    line_of,
    start,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

# A local model path that does not exist: loading the local model would fail the request.
REMOTE_OPTIONS = {"engine": "openai", "k": 2, "seed": 0, "modelPath": "/nonexistent/local.gguf"}


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer(["    return a - b\n```", "    return a + b\n```"]) as server:
        yield server


@pytest_lsp.fixture(scope="module", config=config(SERVER))
async def client(lsp_client: EditorClient, project: Path, scripted: ScriptedServer):
    await start(lsp_client, project, trusted=True, endpoint=scripted.url, **REMOTE_OPTIONS)
    yield
    await lsp_client.shutdown_session()


async def resolve_add(client: EditorClient, project: Path) -> tuple[str, str, types.CodeAction]:
    uri = client.open(project / "mathutil.py")
    before = client.text(uri)
    (action,) = await code_actions(client, uri, line_of(before, "def add"))
    return uri, before, await client.code_action_resolve_async(action)


async def test_code_action_applies_a_verified_body_from_the_server(
    client: EditorClient, project: Path, scripted: ScriptedServer, tmp_path: Path
) -> None:
    uri, _, resolved = await resolve_add(client, project)

    assert resolved.edit is not None, [m.message for m in client.messages]
    assert client.apply(resolved.edit)
    after = client.text(uri)
    ast.parse(after)
    assert "return a + b" in after and "return a - b" not in after, "the failing candidate is not offered"
    assert add_tests_pass(tmp_path, after).returncode == 0
    (request,) = scripted.completion_requests()
    assert request["n"] == 2 and "def add(a: int, b: int) -> int:" in request["prompt"]
    assert not [m for m in client.messages if m.type == types.MessageType.Error]


@pytest_lsp.fixture(scope="module", config=config(SERVER))
async def unreachable(lsp_client: EditorClient, tmp_path_factory: pytest.TempPathFactory):
    project = copy_project(tmp_path_factory.mktemp("down") / "lsp_project")
    await start(lsp_client, project, trusted=True, endpoint=closed_port_url(), **REMOTE_OPTIONS)
    lsp_client.project = project  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_a_server_that_is_down_is_one_message_and_no_edit(unreachable: EditorClient) -> None:
    project: Path = unreachable.project  # type: ignore[attr-defined]
    uri, before, resolved = await resolve_add(unreachable, project)

    assert resolved.edit is None
    assert unreachable.text(uri) == before and (project / "mathutil.py").read_text() == before
    assert await wait_until(lambda: any(m.type == types.MessageType.Error for m in unreachable.messages))
    (error,) = [m.message for m in unreachable.messages if m.type == types.MessageType.Error]
    assert "\n" not in error and "Traceback" not in error
    assert error.startswith(
        "lsp-verify could not check add: cannot reach the model server at http://127.0.0.1:"
    )


@pytest.fixture(scope="module")
def llama_server(model_file: Any) -> Iterator[str]:
    if llama_server_binary() is None:
        pytest.skip(SKIP_REASON)
    with start_llama_server(model_file.path, parallel=4, ctx_total=8192) as url:
        yield url


@pytest_lsp.fixture(scope="module", config=config(SERVER))
async def real(lsp_client: EditorClient, tmp_path_factory: pytest.TempPathFactory, llama_server: str):
    project = copy_project(tmp_path_factory.mktemp("real") / "lsp_project")
    options = {**REMOTE_OPTIONS, "k": 4, "maxTokens": 128, "temperature": 0.7, "nCtx": 4096}
    await start(lsp_client, project, trusted=True, endpoint=llama_server, **options)
    lsp_client.project = project  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


@pytest.mark.model
async def test_code_action_through_a_real_llama_server(real: EditorClient, tmp_path: Path) -> None:
    project: Path = real.project  # type: ignore[attr-defined]
    uri, before, resolved = await resolve_add(real, project)

    assert resolved.edit is not None, [m.message for m in real.messages]
    assert real.apply(resolved.edit)
    after = real.text(uri)
    assert after.split("def add")[0] == before.split("def add")[0]
    assert add_tests_pass(tmp_path, after).returncode == 0, after
