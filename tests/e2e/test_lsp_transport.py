"""The server process on raw bytes: malformed JSON-RPC, a vanished client, files changed on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pygls.uris import from_fs_path

from .conftest import FAKE_SERVER, children_of, server_env

pytestmark = pytest.mark.e2e


def frame(message: dict[str, Any] | str | bytes) -> bytes:
    body = (
        message
        if isinstance(message, bytes)
        else (message if isinstance(message, str) else json.dumps(message))
    )
    data = body.encode() if isinstance(body, str) else body
    return b"Content-Length: %d\r\n\r\n%s" % (len(data), data)


class RawServer:
    """A server process and a reader thread collecting every message it writes."""

    def __init__(self, root: Path, **env: str) -> None:
        self.root = root
        self.process = subprocess.Popen(
            FAKE_SERVER,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=server_env(**env),
        )
        self.messages: list[dict[str, Any]] = []
        self.stderr = b""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        while header := stdout.readline():
            if header.lower().startswith(b"content-length:"):
                length = int(header.split(b":")[1])
                while stdout.readline().strip():
                    pass
                self.messages.append(json.loads(stdout.read(length)))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr += line

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def reply(self, msg_id: object, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if message.get("id") == msg_id and ("result" in message or "error" in message):
                    return message
            time.sleep(0.02)
        raise AssertionError(f"no reply to {msg_id!r}; got {self.messages}")

    def initialize(self, msg_id: int = 1, process_id: int | None = None) -> dict[str, Any]:
        params = {
            "processId": process_id if process_id is not None else os.getpid(),
            "rootUri": from_fs_path(str(self.root)),
            "capabilities": {},
            "initializationOptions": {"trusted": True},
        }
        self.send(frame({"jsonrpc": "2.0", "id": msg_id, "method": "initialize", "params": params}))
        reply = self.reply(msg_id)
        self.send(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        return reply

    def stop(self) -> int:
        self.send(frame({"jsonrpc": "2.0", "id": "bye", "method": "shutdown"}))
        self.reply("bye")
        self.send(frame({"jsonrpc": "2.0", "method": "exit"}))
        return self.process.wait(timeout=10)


@pytest.fixture
def raw(project: Path):
    server = RawServer(project)
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def test_malformed_messages_get_errors_and_the_server_keeps_serving(raw: RawServer) -> None:
    assert "capabilities" in raw.initialize()["result"]

    raw.send(b"Content-Length: nine\r\n\r\n{}")  # a bad header, its body glued to the next message
    raw.send(frame('{"jsonrpc": "2.0", "id": 2, "method": '))  # not JSON
    raw.send(frame(b"\xff\xfe garbage"))
    raw.send(frame("[1, 2, 3]"))  # not an object
    raw.send(frame({"jsonrpc": "2.0", "id": 3, "method": "no/suchMethod", "params": {}}))
    raw.send(frame({"jsonrpc": "2.0", "id": 4, "method": "textDocument/codeAction", "params": {"range": 7}}))
    raw.send(b"Content-Length: 9999\r\n\r\n{}")  # a length past the body: the next header is recovered
    raw.send(
        frame({"jsonrpc": "2.0", "id": 5, "method": "workspace/executeCommand", "params": {"command": "x"}})
    )
    raw.send(frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"oops": True}}))
    raw.send(
        frame({"jsonrpc": "2.0", "id": 6, "method": "workspace/executeCommand", "params": {"command": "x"}})
    )

    assert raw.reply(3)["error"]["code"] == -32601  # MethodNotFound
    assert raw.reply(4)["error"]["code"] == -32602  # InvalidParams
    assert raw.reply(6)["error"]["code"] == -32602  # still serving after all of the above
    codes = [m["error"]["code"] for m in raw.messages if m.get("id") is None and "error" in m]
    assert codes.count(-32700) >= 2 and -32600 in codes  # Parse error, Invalid request
    assert raw.process.poll() is None
    assert raw.stop() == 0


def test_exits_when_the_client_process_dies(project: Path) -> None:
    client = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    server = RawServer(project)
    try:
        server.initialize(process_id=client.pid)
        client.kill()
        client.wait()
        assert server.process.wait(timeout=10) == 1
    finally:
        if server.process.poll() is None:
            server.process.kill()


def test_exit_without_shutdown_and_end_of_input(project: Path) -> None:
    server = RawServer(project)
    server.initialize()
    pid = server.process.pid
    assert children_of(pid) == []
    server.send(frame({"jsonrpc": "2.0", "method": "exit"}))
    assert server.process.wait(timeout=10) == 1  # exit without shutdown: 1, as LSP asks

    server = RawServer(project)
    server.initialize()
    assert server.process.stdin is not None
    server.process.stdin.close()
    assert server.process.wait(timeout=10) == 1


def test_files_changed_on_disk_invalidate_the_pipeline(project: Path, tmp_path: Path) -> None:
    log = tmp_path / "invalidated.log"
    server = RawServer(project, LSPV_FAKE_LOG=str(log))
    try:
        server.initialize()
        deadline = time.monotonic() + 5
        while b"watching" not in server.stderr and time.monotonic() < deadline:
            time.sleep(0.05)
        (project / "tests" / "test_extra.py").write_text("def test_extra() -> None:\n    pass\n")
        (project / "notes.txt").write_text("not python\n")
        deadline = time.monotonic() + 10
        while not (log.exists() and "test_extra.py" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"invalidated {project / 'tests' / 'test_extra.py'}" in log.read_text()
        assert "notes.txt" not in log.read_text()
        assert server.stop() == 0
    finally:
        (project / "tests" / "test_extra.py").unlink(missing_ok=True)
        (project / "notes.txt").unlink(missing_ok=True)
        if server.process.poll() is None:
            server.process.kill()


# -- lifecycle and robustness ----------------------------------------------------------------------------
def request(raw: RawServer, msg_id: object, method: str, params: object = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        message["params"] = params
    raw.send(frame(message))
    return raw.reply(msg_id)


def notify(raw: RawServer, method: str, params: object) -> None:
    raw.send(frame({"jsonrpc": "2.0", "method": method, "params": params}))


def test_requests_after_shutdown_are_refused_and_exit_still_exits(raw: RawServer) -> None:
    raw.initialize()
    assert request(raw, "bye", "shutdown") == {"jsonrpc": "2.0", "id": "bye", "result": None}

    late = request(raw, 2, "workspace/executeCommand", {"command": "lsp-verify.showReport"})
    again = request(raw, 3, "shutdown")

    assert late["error"]["code"] == -32600 and "shut down" in late["error"]["message"]
    assert again["error"]["code"] == -32600
    raw.send(frame({"jsonrpc": "2.0", "method": "exit"}))
    assert raw.process.wait(timeout=10) == 0


def test_a_second_initialize_is_refused_and_the_session_goes_on(raw: RawServer, project: Path) -> None:
    raw.initialize()

    second = request(
        raw,
        2,
        "initialize",
        {"processId": None, "rootUri": None, "capabilities": {}, "initializationOptions": {}},
    )

    assert second["error"]["code"] == -32600 and "already initialized" in second["error"]["message"]
    report = request(raw, 3, "workspace/executeCommand", {"command": "lsp-verify.showReport"})
    assert report == {"jsonrpc": "2.0", "id": 3, "result": None}, "still serving"
    assert raw.stop() == 0


def action_version(raw: RawServer, msg_id: int, uri: str, line: int) -> int:
    """The document version the server offers the action at ``line`` for (what it thinks it has)."""
    params = {
        "textDocument": {"uri": uri},
        "range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 0}},
        "context": {"diagnostics": []},
    }
    (action,) = request(raw, msg_id, "textDocument/codeAction", params)["result"]
    assert "`add`" in action["title"], action
    (args,) = action["command"]["arguments"]
    return int(args["version"])


def test_a_change_outside_the_document_is_refused_and_the_document_kept(
    raw: RawServer, project: Path
) -> None:
    raw.initialize()
    path = project / "mathutil.py"
    uri = from_fs_path(str(path))
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    def_line = next(i for i, line in enumerate(lines) if line.startswith("def add"))
    document = {"uri": uri, "languageId": "python", "version": 1, "text": text}
    notify(raw, "textDocument/didOpen", {"textDocument": document})
    assert action_version(raw, 2, uri, def_line) == 1

    far = {"start": {"line": len(lines) + 5, "character": 0}, "end": {"line": len(lines) + 5, "character": 0}}
    reversed_range = {"start": {"line": def_line, "character": 4}, "end": {"line": 0, "character": 0}}
    for version, bad in ((2, far), (3, reversed_range)):
        change = {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": bad, "text": "x"}],
        }
        notify(raw, "textDocument/didChange", change)

    assert action_version(raw, 3, uri, def_line) == 1, "the refused changes left the document as it was"
    shown = [m["params"]["message"] for m in raw.messages if m.get("method") == "window/showMessage"]
    assert sum("ignored an edit of mathutil.py" in message for message in shown) == 2, shown
    assert any("past the end of the document" in message for message in shown)
    assert any("ends before it starts" in message for message in shown)

    # A valid change still applies: one line inserted above the function moves it down.
    top = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
    change = {
        "textDocument": {"uri": uri, "version": 4},
        "contentChanges": [{"range": top, "text": "# new\n"}],
    }
    notify(raw, "textDocument/didChange", change)
    assert action_version(raw, 4, uri, def_line + 1) == 4
    assert raw.stop() == 0


def test_an_oversized_message_is_refused_unread_and_the_next_one_served(raw: RawServer) -> None:
    raw.initialize()
    pid = raw.process.pid

    def peak_rss_kib() -> int:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))

    before = peak_rss_kib()
    size = 80 * 1024 * 1024  # over the 64 MiB cap
    raw.send(b"Content-Length: %d\r\n\r\n" % size)
    chunk = b'{"jsonrpc": "2.0", "id": 9, "method": "x", "params": "' + b"a" * (1024 * 1024)
    sent = 0
    while sent < size:
        piece = chunk[: size - sent]
        raw.send(piece)
        sent += len(piece)
        chunk = b"a" * (1024 * 1024)
    after = request(raw, 2, "workspace/executeCommand", {"command": "lsp-verify.showReport"})

    assert after == {"jsonrpc": "2.0", "id": 2, "result": None}
    refused = [m for m in raw.messages if m.get("id") is None and "error" in m]
    assert [m["error"]["code"] for m in refused] == [-32600]
    assert "refused" in refused[0]["error"]["message"]
    assert peak_rss_kib() - before < 32 * 1024, "the body was held in memory"
    assert 9 not in [m.get("id") for m in raw.messages]
    assert raw.stop() == 0
