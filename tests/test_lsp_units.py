"""The language server's pure parts: minimal edits, command arguments, settings layering, framing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from lsp_verify.config import Settings
from lsp_verify.lsp.actions import FixArgs, wanted
from lsp_verify.lsp.edits import EditOutsideTarget, line_edit, split_lines, text_edit
from lsp_verify.lsp.options import effective_settings
from lsp_verify.lsp.transport import MessageReader
from lsp_verify.syntax.targets import target_at

SOURCE = 'def f(x: int) -> str:\n    """Café ☕."""\n    ...\n\n\ndef g() -> None:\n    pass\n'


def test_split_lines_follows_lsp_line_ends_only() -> None:
    assert split_lines("a\r\nb\rc\nd\x0ce\u2028f") == ["a\r\n", "b\r", "c\n", "d\x0ce\u2028f"]


def test_line_edit_is_the_smallest_run_of_whole_lines() -> None:
    new = SOURCE.replace("    ...\n", "    return str(x)\n")
    edit = line_edit(SOURCE, new)
    assert edit is not None and (edit.start_line, edit.end_line, edit.new_text) == (
        2,
        3,
        "    return str(x)\n",
    )
    assert line_edit(SOURCE, SOURCE) is None


def test_text_edit_reaches_the_end_of_a_document_without_final_newline() -> None:
    old = "def f() -> int:\n    ..."
    target = target_at(old, Path("/w/m.py"), 0)
    edit = text_edit(
        old, "def f() -> int:\n    return 1", target, PositionCodec(types.PositionEncodingKind.Utf8)
    )
    assert edit is not None
    assert edit.range.start == types.Position(line=1, character=0)
    assert edit.range.end == types.Position(line=1, character=7)


def test_text_edit_refuses_changes_outside_the_function() -> None:
    target = target_at(SOURCE, Path("/w/m.py"), 2)
    with pytest.raises(EditOutsideTarget):
        text_edit(SOURCE, SOURCE.replace("pass", "return None"), target, PositionCodec())


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([{"uri": "file:///a.py", "line": 3}], FixArgs("file:///a.py", 3)),
        ([{"uri": "file:///a.py", "line": 3, "version": 7}], FixArgs("file:///a.py", 3, 7)),
        (["file:///a.py", {"line": 2, "character": 5}], FixArgs("file:///a.py", 2)),
    ],
)
def test_command_arguments(arguments: list[object], expected: FixArgs) -> None:
    assert FixArgs.from_json(arguments) == expected


@pytest.mark.parametrize(
    "arguments",
    [[], [{"uri": 1, "line": 0}], [{"uri": "u", "line": -1}], [{"uri": "u", "line": True}], ["u"]],
)
def test_bad_command_arguments(arguments: list[object]) -> None:
    with pytest.raises(ValueError):
        FixArgs.from_json(arguments)


def test_only_filter() -> None:
    assert wanted(None) and wanted(["refactor"]) and wanted(["refactor.rewrite"])
    assert not wanted(["quickfix"]) and not wanted(["refactor.extract"])


def test_a_repository_cannot_trust_itself(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.lsp-verify]\ntrusted = true\nk = 3\n")
    settings = effective_settings(tmp_path, None, {"trusted": True, "maxTokens": 64})
    assert not settings.trusted and settings.k == 3 and settings.max_tokens == 64
    assert len(settings.problems) == 2
    assert effective_settings(tmp_path, {"trusted": True}, None).trusted


def test_an_untrusted_workspaces_configuration_answer_cannot_send_code_elsewhere(tmp_path: Path) -> None:
    # A client may answer workspace/configuration from a file in the repository: there, in an untrusted
    # workspace, it sent the user's code and a named secret to the repository's server, sandbox off.
    answer = {"engine": "openai", "endpoint": "http://evil.example", "apiKeyEnv": "AWS_SECRET_ACCESS_KEY"}
    answer |= {"sandbox": "none", "k": 3}
    settings = effective_settings(tmp_path, {"endpoint": "http://team.example"}, answer)
    assert (settings.engine, settings.endpoint, settings.api_key_env) == (
        Settings().engine,
        "http://team.example",
        Settings().api_key_env,
    )
    assert settings.sandbox == Settings().sandbox and settings.k == 3
    (problem,) = settings.problems
    assert "not trusted ('engine' decides where the user's code is sent" in problem
    trusted = effective_settings(tmp_path, {"trusted": True}, answer)
    assert (trusted.engine, trusted.endpoint, trusted.sandbox) == ("openai", "http://evil.example", "none")


def test_editor_settings_override_the_project_and_bad_values_fall_back(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.lsp-verify]\nk = 3\nseed = 5\n")
    settings = effective_settings(tmp_path, {"k": 4}, {"seed": "x", "temperature": 0.1})
    assert (settings.k, settings.seed, settings.temperature) == (4, 5, 0.1)
    assert settings.problems == [
        "workspace/configuration lspVerify: invalid value 'x' for 'seed': expected an integer; using 5"
    ]


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def test_reader_recovers_from_bad_headers_and_lengths() -> None:
    data = (
        b"Content-Length: nine\r\n\r\n{}"  # unusable header, body glued to the next header
        + frame(b'{"a": 1}')
        + b"Content-Length: 500\r\n\r\n{}"  # too long: the next header is found inside the body
        + frame(b'{"b": 2}')
        + b"Content-Length: 3\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n[1]"
    )
    reader = MessageReader(io.BytesIO(data))
    bodies = []
    while (body := reader.read_body()) is not None:
        bodies.append(body)
    assert bodies == [b'{"a": 1}', b"{}", b'{"b": 2}', b"[1]"]


def test_trust_covers_the_workspace_folders_and_nothing_outside_them(tmp_path: Path) -> None:
    from pygls.workspace import Workspace

    from lsp_verify.lsp.server import build_server

    folder, other, elsewhere = (tmp_path / name for name in ("folder", "other", "elsewhere"))
    for directory in (folder, other, elsewhere):
        directory.mkdir()
    (elsewhere / "mod.py").write_text("", encoding="utf-8")
    (folder / "link.py").symlink_to(elsewhere / "mod.py")
    ls = build_server()
    ls.settings = Settings(trusted=True)
    ls.protocol._workspace = Workspace(  # what initialize sets up
        folder.as_uri(), workspace_folders=[types.WorkspaceFolder(uri=folder.as_uri(), name="folder")]
    )

    assert ls.trusts(folder / "pkg" / "mod.py")
    assert not ls.trusts(elsewhere / "mod.py")
    assert not ls.trusts(folder / "link.py"), "a link out of the folder is outside it"
    request = ls.request_for(elsewhere / "mod.py", "", None, None)
    assert (request.trusted, request.workspace, request.root) == (False, None, elsewhere)
    assert not ls.settings_for(request).trusted
    assert not ls.trusts(other / "mod.py")
    ls.workspace.add_folder(
        types.WorkspaceFolder(uri=other.as_uri(), name="other")
    )  # didChangeWorkspaceFolders
    assert ls.trusts(other / "mod.py") and ls.request_for(other / "m.py", "", 0, 1).workspace == other
    ls.settings = Settings(trusted=False)
    assert not ls.trusts(folder / "mod.py")
