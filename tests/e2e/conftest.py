"""A real LSP client (pytest-lsp) that behaves like an editor: it keeps its documents, applies
``workspace/applyEdit`` (refusing an edit for another version, as editors do) and records what it was told.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import register_lsp_features

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROJECT = REPO / "tests" / "fixtures" / "lsp_project"
SERVER = [sys.executable, "-m", "lsp_verify.lsp.server"]
FAKE_SERVER = [sys.executable, str(HERE / "fake_server.py")]

# Small and repeatable: the e2e tests share two cores with everything else.
MODEL_OPTIONS = {"k": 4, "maxTokens": 128, "seed": 0, "nCtx": 2048, "temperature": 0.7}


def server_env(**extra: str) -> dict[str, str]:
    """The environment for a server process: the package importable from the source tree."""
    path = [str(REPO / "server"), str(REPO), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p), **extra}


def copy_project(dest: Path) -> Path:
    shutil.copytree(PROJECT, dest, ignore=shutil.ignore_patterns("__pycache__", ".*_cache"))
    return dest


def add_tests_pass(tmp_path: Path, module_text: str) -> subprocess.CompletedProcess[str]:
    """Run the fixture's ``test_add`` and the module's doctests against ``module_text``, in a fresh copy."""
    project = copy_project(tmp_path / "check")
    (project / "mathutil.py").write_text(module_text, encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--doctest-modules",
            "mathutil.py",
            "tests/test_mathutil.py::test_add",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


class EditorClient(LanguageClient):
    """pytest-lsp's client plus an editor's document buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.documents: dict[str, tuple[int, str]] = {}
        self.applied: list[types.ApplyWorkspaceEditParams] = []

    def open(self, path: Path) -> str:
        uri = from_fs_path(str(path)) or ""
        text = path.read_text(encoding="utf-8")
        self.documents[uri] = (1, text)
        self.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
            )
        )
        return uri

    def replace_text(self, uri: str, text: str) -> int:
        """Replace the whole buffer (a full-document didChange); returns the new version."""
        version = self.documents[uri][0] + 1
        self.documents[uri] = (version, text)
        self.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        return version

    def text(self, uri: str) -> str:
        return self.documents[uri][1]

    def doc_version(self, uri: str) -> int:
        return self.documents[uri][0]

    def apply(self, edit: types.WorkspaceEdit) -> bool:
        """Apply ``edit`` like an editor: all or nothing, refusing a TextDocumentEdit for another version."""
        changes: list[tuple[str, int | None, list[types.TextEdit]]] = []
        for change in edit.document_changes or []:
            assert isinstance(change, types.TextDocumentEdit), change
            edits = [e for e in change.edits if isinstance(e, types.TextEdit)]
            changes.append((change.text_document.uri, change.text_document.version, edits))
        for uri, plain in (edit.changes or {}).items():
            changes.append((uri, None, list(plain)))
        for uri, version, _ in changes:
            if uri not in self.documents or (version is not None and version != self.doc_version(uri)):
                return False
        for uri, _, edits in changes:
            text = self.text(uri)
            for text_edit in sorted(
                edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
            ):
                text = splice(text, text_edit)
            self.replace_text(uri, text)
        return True


def splice(text: str, edit: types.TextEdit) -> str:
    """Apply one TextEdit (UTF-16 positions; the fixtures are ASCII)."""
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(position: types.Position) -> int:
        return min(starts[min(position.line, len(starts) - 1)] + position.character, len(text))

    return text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]


def make_editor_client() -> EditorClient:
    client = EditorClient()
    register_lsp_features(client)

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(
        client: EditorClient, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        client.applied.append(params)
        applied = client.apply(params.edit)
        return types.ApplyWorkspaceEditResult(
            applied=applied, failure_reason=None if applied else "version mismatch"
        )

    return client


def config(command: list[str], **env: str) -> ClientServerConfig:
    return ClientServerConfig(
        server_command=command, server_env=server_env(**env), client_factory=make_editor_client
    )


async def start(
    client: EditorClient, root: Path, capabilities: str = "visual_studio_code", **init_options: Any
) -> types.InitializeResult:
    params = types.InitializeParams(
        capabilities=client_capabilities(capabilities),
        root_uri=from_fs_path(str(root)),
        workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(root)) or "", name=root.name)],
        initialization_options=init_options,
    )
    return await client.initialize_session(params)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


async def code_actions(client: EditorClient, uri: str, line: int) -> list[types.CodeAction]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=line, character=4), end=types.Position(line=line, character=4)
            ),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    return [a for a in result or [] if isinstance(a, types.CodeAction)]


def progress_kinds(client: EditorClient) -> list[list[str]]:
    """For each progress token, the kinds of its notifications in arrival order."""
    return [[type(v).__name__ for v in values] for values in client.progress_reports.values()]


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def descendants(pid: int) -> dict[int, int]:
    """Every live descendant of ``pid`` -> its parent."""
    found: dict[int, int] = {}
    stack = [pid]
    while stack:
        parent = stack.pop()
        for child in children_of(parent):
            found[child] = parent
            stack.append(child)
    return found


def running_work(pid: int) -> list[str]:
    """Descendants of the server doing a request's work (a test run, a mypy run, any other subprocess).

    The verifier's fork servers (and the bubblewrap sandbox around them) stay between requests by design;
    each run is a fork of one of them, recognisable by having the same command line as its parent.
    """
    work = []
    for child, parent in descendants(pid).items():
        command = cmdline(child)
        if command.split(" ")[0].endswith("bwrap"):
            continue
        if "lsp-verify-worker" not in command or command == cmdline(parent):
            work.append(f"{child}: {command[:120]}")
    return work


async def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("ws") / "lsp_project")
