"""The question in the editor, end to end: a real client, the real server process, the real pipeline,
verifier, probes and pytest; only the model is scripted (``question_server.py``).

question (``window/showMessageRequest``) -> answer (an option, or "another value…" typed through
``lsp-verify/askValue``) -> the verified edit with the answer kept as a test; and, for a client without
message action items, one code action per answer.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import ClientServerConfig, client_capabilities

from .conftest import EditorClient, code_actions, line_of, make_editor_client, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SCALE = '''\
def scale(xs: list[int], factor: int) -> list[int]:
    """Each element of ``xs`` times ``factor``."""
    ...
'''
RIGHT = "    return [x * factor for x in xs]\n"
RIGHT_TOO = "    return [factor * x for x in xs]\n"
WRONG = "    return xs * factor\n"
EXISTING_TESTS = "def test_nothing_yet() -> None:\n    pass\n"


def question_client() -> EditorClient:
    client = make_editor_client()
    client.asked: list[types.ShowMessageRequestParams] = []  # type: ignore[attr-defined]
    client.value_requests: list[dict[str, Any]] = []  # type: ignore[attr-defined]
    client.pick: Callable[[types.ShowMessageRequestParams], str] = lambda p: "skip"  # type: ignore[attr-defined]
    client.values: list[str] = []  # type: ignore[attr-defined]

    @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    def show_message_request(
        client: EditorClient, params: types.ShowMessageRequestParams
    ) -> types.MessageActionItem:
        client.asked.append(params)
        return types.MessageActionItem(title=client.pick(params))

    @client.feature("lsp-verify/askValue")
    def ask_value(client: EditorClient, params: Any) -> str | None:
        client.value_requests.append(
            {"prompt": getattr(params, "prompt", None), "error": getattr(params, "error", None)}
        )
        return client.values.pop(0) if client.values else None

    return client


SERVER = [sys.executable, str(Path(__file__).resolve().parent / "question_server.py")]


def make_project(root: Path) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "ops"\nversion = "0"\n')
    (root / "ops.py").write_text(SCALE)
    (root / "tests" / "test_ops.py").write_text(EXISTING_TESTS)
    return root


async def start(client: EditorClient, root: Path, capabilities: types.ClientCapabilities) -> None:
    uri = from_fs_path(str(root)) or ""
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities,
            root_uri=uri,
            workspace_folders=[types.WorkspaceFolder(uri=uri, name=root.name)],
            initialization_options={"trusted": True, "k": 4},
        )
    )


def right_output(call: str) -> list[int]:
    xs, factor = ast.literal_eval(f"({call.removeprefix('scale(')[:-1]},)")
    return [x * factor for x in xs]


def pytest_passes(client: EditorClient, root: Path) -> str:
    """Write the client's buffers to disk and run the kept test with real pytest."""
    for uri, (_, text) in client.documents.items():
        Path(uri.removeprefix("file://")).write_text(text)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_ops.py"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    return run.stdout


ROUNDS = json.dumps([[RIGHT, RIGHT_TOO, WRONG, RIGHT]])


CONFIG = ClientServerConfig(
    server_command=SERVER, server_env=server_env(LSPV_ROUNDS=ROUNDS), client_factory=question_client
)


@pytest_lsp.fixture(scope="module", config=CONFIG)
async def asking(lsp_client: EditorClient, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """VS Code's capabilities, plus "another value…" (the extension answers lsp-verify/askValue)."""
    lsp_client.root = make_project(  # type: ignore[attr-defined]
        tmp_path_factory.mktemp("ask") / "proj"
    )
    capabilities = client_capabilities("visual_studio_code")
    capabilities.experimental = {"lspVerifyAskValue": True}
    await start(lsp_client, lsp_client.root, capabilities)  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(scope="module", config=CONFIG)
async def silent(lsp_client: EditorClient, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A client without window.showMessage.messageActionItem."""
    lsp_client.root = make_project(  # type: ignore[attr-defined]
        tmp_path_factory.mktemp("silent") / "proj"
    )
    capabilities = client_capabilities("visual_studio_code")
    assert capabilities.window is not None
    capabilities.window.show_message = None
    await start(lsp_client, lsp_client.root, capabilities)  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_question_answer_and_a_verified_edit_with_the_new_test(asking: Any) -> None:
    client, project = asking, asking.root
    uri = client.open(project / "ops.py")
    client.open(project / "tests" / "test_ops.py")

    def pick_value(params: types.ShowMessageRequestParams) -> str:
        call = re.search(r"`(scale\(.*?\))`", params.message)
        assert call is not None
        client.values = ["[1, 2", repr(right_output(call[1]))]  # a parse error first: asked again
        return "another value…"

    client.pick = pick_value
    line = line_of(SCALE, "...")
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="lsp-verify.verifyAndApply", arguments=[{"uri": uri, "line": line}]
        )
    )

    (asked,) = client.asked
    call = re.search(r"`(scale\(.*?\))`", asked.message)[1]  # type: ignore[index]
    titles = [a.title for a in asked.actions or []]
    assert titles == [f"{right_output(call)!r}  (3 samples)", titles[1], "another value…", "skip"]
    assert titles[1].endswith("(1 sample)")
    first, second = client.value_requests
    assert first["error"] is None and second["error"].startswith("'[1, 2' is not a Python literal")
    assert result["applied"] is True, result
    assert "[x * factor for x in xs]" in client.text(uri) or "[factor * x for x in xs]" in client.text(uri)
    tests = client.text(from_fs_path(str(project / "tests" / "test_ops.py")))
    assert tests.startswith(EXISTING_TESTS) and f"assert {call} == {right_output(call)!r}" in tests
    assert "2 passed" in pytest_passes(client, project)


async def test_without_message_action_items_each_answer_is_a_code_action(silent: Any) -> None:
    client, project = silent, silent.root
    uri = client.open(project / "ops.py")
    client.open(project / "tests" / "test_ops.py")
    line = line_of(SCALE, "...")
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="lsp-verify.verifyAndApply", arguments=[{"uri": uri, "line": line}]
        )
    )

    assert result["applied"] is False and "Pick the right output among the code actions" in result["message"]
    assert client.asked == [] and client.text(uri) == SCALE
    answers = [a for a in await code_actions(client, uri, line) if a.edit is not None]
    assert len(answers) == 2
    call = re.match(r"(scale\(.*?\)) →", answers[0].title)[1]  # type: ignore[index]
    assert answers[0].title == f"{call} → {right_output(call)!r}  (3 samples) (lsp-verify: the right output?)"
    assert client.apply(answers[0].edit)
    assert "[x * factor for x in xs]" in client.text(uri) or "[factor * x for x in xs]" in client.text(uri)
    assert "2 passed" in pytest_passes(client, project)
