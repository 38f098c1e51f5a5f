"""OpenAI-compatible servers for the remote engine's tests: a scripted one, and the real ``llama-server``.

:class:`ScriptedServer` is a real HTTP server (threaded ``http.server`` on 127.0.0.1, a free port) whose
answers a test scripts: the candidate texts it streams, whether it honours ``n``, and faults (a status with
Retry-After, malformed JSON, a choice without text, a stream that stalls). It records every request.

:func:`llama_server_binary` finds the ``llama-server`` that ``scripts/build-llama-server.sh`` builds into the
cache; :func:`start_llama_server` runs it on the embedded GGUF. Tests that need it skip, with the reason,
when it has not been built.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class Reply:
    """One scripted answer to ``POST /v1/completions``."""

    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes | None = None
    """Sent as is (``application/json``) instead of a stream."""
    events: list[str] | None = None
    """``data:`` payloads of an event stream, sent in order (``[DONE]`` is not added)."""
    stall_s: float = 0.0
    """Sleep this long after the events before closing (a stalled stream)."""


def completion_events(texts: list[str], *, n: int, chunk: int = 4, logprob: float = -0.5) -> list[str]:
    """An event stream like llama-server's: ``n`` choices (texts[i % len(texts)]), interleaved in chunks
    of ``chunk`` characters, each with a logprob per chunk, then a finish reason each and ``[DONE]``."""
    pieces = [
        [t[j : j + chunk] for j in range(0, len(t), chunk)] for t in (texts[i % len(texts)] for i in range(n))
    ]
    events = []
    for step in range(max(len(p) for p in pieces)):
        for i, choice in enumerate(pieces):
            if step < len(choice):
                events.append(
                    json.dumps(
                        {
                            "choices": [
                                {
                                    "index": i,
                                    "text": choice[step],
                                    "finish_reason": None,
                                    "logprobs": {"content": [{"token": choice[step], "logprob": logprob}]},
                                }
                            ]
                        }
                    )
                )
    for i in range(n):
        events.append(json.dumps({"choices": [{"index": i, "text": "", "finish_reason": "stop"}]}))
    events.append("[DONE]")
    return events


class ScriptedServer:
    """A scripted OpenAI-compatible ``/v1`` on 127.0.0.1. ``completions(request_json) -> Reply`` answers
    each completion request; by default every choice streams ``texts`` (honouring ``n`` if ``honour_n``)."""

    def __init__(
        self,
        texts: list[str] | None = None,
        *,
        models: tuple[str, ...] = ("scripted-coder",),
        honour_n: bool = True,
        completions: Callable[[dict[str, Any]], Reply] | None = None,
        models_reply: Reply | None = None,
    ) -> None:
        self.texts = texts or ["    return a + b\n```"]
        self.models = models
        self.honour_n = honour_n
        self.completions = completions or self.default_reply
        self.models_reply = models_reply
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.record(self, None)
                if self.path.rstrip("/") != "/v1/models":
                    return self.send(Reply(status=404, body=b'{"error": {"message": "not found"}}'))
                reply = server.models_reply or Reply(
                    body=json.dumps({"object": "list", "data": [{"id": m} for m in server.models]}).encode()
                )
                self.send(reply)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"null")
                server.record(self, payload)
                if self.path.rstrip("/") != "/v1/completions":
                    return self.send(Reply(status=404, body=b'{"error": {"message": "not found"}}'))
                self.send(server.completions(payload))

            def send(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                try:
                    if reply.events is None:
                        body = reply.body or b""
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        time.sleep(reply.stall_s)
                        return
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for event in reply.events:
                        self.wfile.write(f"data: {event}\n\n".encode())
                        self.wfile.flush()
                    time.sleep(reply.stall_s)
                    self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up (it had what it needed, or it was cancelled)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def default_reply(self, request: dict[str, Any]) -> Reply:
        n = int(request.get("n", 1)) if self.honour_n else 1
        if not request.get("stream"):
            choices = [
                {"index": i, "text": self.texts[i % len(self.texts)], "finish_reason": "stop"}
                for i in range(n)
            ]
            return Reply(body=json.dumps({"choices": choices}).encode())
        return Reply(events=completion_events(self.texts, n=n))

    def record(self, handler: BaseHTTPRequestHandler, payload: Any) -> None:
        with self._lock:
            self.requests.append((handler.command, handler.path, dict(handler.headers.items()), payload))

    def completion_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p for method, path, _, p in self.requests if method == "POST"]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """An http://127.0.0.1 URL where nothing listens (a port that was just free)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# --------------------------------------------------------------------------------------------- llama-server


def llama_server_binary() -> Path | None:
    """The cached ``llama-server`` that scripts/build-llama-server.sh built for the installed
    llama-cpp-python (it links that wheel's llama.cpp), or None."""
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return None
    default = Path.home() / ".cache" / "lsp-verify" / "llama-server"
    root = Path(os.environ.get("LSP_VERIFY_LLAMA_SERVER_CACHE", default))
    binary = root / version / "bin" / "llama-server"
    return binary if os.access(binary, os.X_OK) else None


SKIP_REASON = "llama-server is not built (bash scripts/build-llama-server.sh builds it into the cache)"


@contextlib.contextmanager
def start_llama_server(
    model: Path, *, parallel: int = 4, ctx_total: int = 4096, threads: int = 2, timeout_s: float = 180
) -> Iterator[str]:
    """Run the cached llama-server on ``model`` with ``--parallel`` sequences sharing one unified KV cache of
    ``ctx_total`` cells, as the in-process engine does; yields its ``/v1`` URL once ``/health`` says 200."""
    binary = llama_server_binary()
    if binary is None:
        raise FileNotFoundError(SKIP_REASON)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        str(binary),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--parallel",
        str(parallel),
        "-c",
        str(ctx_total),
        "--kv-unified",
        "-t",
        str(threads),
        "--no-webui",
    ]
    # Its log goes to a file: a pipe nobody reads would fill up and block the server.
    log_file = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                log_tail = Path(log_file.name).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"llama-server exited with {proc.returncode}: {log_tail}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"llama-server did not become healthy in {timeout_s}s")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()
        Path(log_file.name).unlink(missing_ok=True)
