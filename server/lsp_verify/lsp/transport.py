"""JSON-RPC over stdio that survives a misbehaving peer, and the watch on the client process.

pygls' own stdio loop trusts its input: a request whose params do not fit gets no answer at all, a bad
``Content-Length`` desynchronises every later message, and its stdin reader thread keeps the process alive
after ``exit``. This module frames messages itself:

- a header without a usable ``Content-Length`` is skipped; a header glued to the end of a bad body, or
  swallowed by a body whose length was too large, is found again, so the stream recovers at the next message;
- a body that is not JSON gets a Parse error (-32700), a non-object an Invalid request (-32600), a request
  whose params do not fit its method an Invalid params (-32602) reply — and the server keeps serving;
- a message over :data:`MAX_MESSAGE_BYTES` is refused (Invalid request) from its header alone: its body is
  skipped as it arrives, never held;
- the lifecycle is enforced (:class:`Lifecycle`): a request after ``shutdown`` and a second ``initialize``
  get an Invalid request reply (pygls would drop the first unanswered and run the second);
- the real stdout is kept for JSON-RPC alone: file descriptor 1 is pointed at stderr, so a stray ``print``
  or a native library writing to fd 1 cannot corrupt the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
)
from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)

_HEADER = b"content-length:"
_FULL_HEADER = re.compile(rb"content-length: *\d+\r\n(?:[^\r\n]*\r\n)*\r\n", re.IGNORECASE)
PARENT_POLL_S = 2.0
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""A larger message is refused unread: no LSP message of ours comes near it, and holding one would not fit
next to the model in memory."""
_CHUNK = 65536
_MAX_LINE = 65536
_HEADER_OVERLAP = 256


def reserve_stdout() -> BinaryIO:
    """A private handle on the process's stdout for JSON-RPC; fd 1 and ``sys.stdout`` now go to stderr."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "wb", buffering=0)


class MessageTooLarge(Exception):
    """A message whose ``Content-Length`` is over :data:`MAX_MESSAGE_BYTES`; its body was skipped unread."""


class MessageReader:
    """Reads framed message bodies; recovers from bad headers and bad lengths.

    The buffer is a ``bytearray`` (appending is amortised, taking from the front is cheap) and each search
    starts where the last one stopped, so reading a body costs time linear in its size.
    """

    def __init__(self, stream: BinaryIO, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._eof = False
        self._max_bytes = max_bytes

    def _fill(self) -> bool:
        if self._eof:
            return False
        # read1 (buffered) and a raw read both return what is there instead of waiting for a full chunk.
        read1 = getattr(self._stream, "read1", None)
        chunk = read1(_CHUNK) if read1 is not None else self._stream.read(_CHUNK)
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    def _take(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def _readline(self) -> bytes | None:
        searched = 0
        while (end := self._buffer.find(b"\n", searched)) < 0:
            searched = len(self._buffer)
            if searched > _MAX_LINE:
                # Not a header line: keep only a tail that may hold the start of the next header.
                log.warning("discarding %d bytes without a line break", searched - _HEADER_OVERLAP)
                del self._buffer[: searched - _HEADER_OVERLAP]
                searched = _HEADER_OVERLAP
            if not self._fill():
                return self._take(len(self._buffer)) or None
        return self._take(end + 1)

    def _next_header(self, start: int) -> int | None:
        """Where a complete header starts in the buffer at or after ``start`` (a little before it, to find
        one that straddles two reads); None if there is none."""
        found = _FULL_HEADER.search(self._buffer, max(0, start - _HEADER_OVERLAP))
        return found.start() if found is not None else None

    def _read(self, n: int) -> bytes | None:
        searched = 0
        while len(self._buffer) < n:
            # A complete header inside a body that is still short means its Content-Length was too large:
            # no JSON text contains one (raw line breaks cannot appear in JSON strings). Cut the body there.
            if (header := self._next_header(searched)) is not None:
                return self._take(header)
            searched = len(self._buffer)
            if not self._fill():
                return None
        return self._take(n)

    def _skip(self, n: int) -> None:
        """Drop the next ``n`` bytes as they arrive (never holding more than a chunk); stop early at a
        complete header, as :meth:`_read` does."""
        while True:
            header = self._next_header(0)
            if header is not None and header < n:
                del self._buffer[:header]
                return
            if len(self._buffer) >= n:
                del self._buffer[:n]
                return
            dropped = max(0, len(self._buffer) - _HEADER_OVERLAP)
            del self._buffer[:dropped]
            n -= dropped
            if not self._fill():
                self._buffer.clear()
                return

    def unread(self, data: bytes) -> None:
        self._buffer[:0] = data

    def read_body(self) -> bytes | None:
        """The next message body (None at end of input); MessageTooLarge for one over the size cap, whose
        body has then been skipped so that the next call reads the message after it."""
        length: int | None = None
        while True:
            line = self._readline()
            if line is None:
                return None
            start = line.lower().find(_HEADER)
            if start > 0:  # a header glued to the tail of a body that was cut short or too long
                log.warning("discarding %d stray bytes before a header", start)
                line = line[start:]
            if not line.strip():
                if length is None:
                    continue  # a blank line outside a header block, or a header block without a length
                if length > self._max_bytes:
                    self._skip(length)
                    raise MessageTooLarge(
                        f"message of {length} bytes refused: the limit is {self._max_bytes} bytes"
                    )
                return self._read(length)
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                try:
                    length = int(value.strip())
                    if length < 0:
                        raise ValueError(length)
                except ValueError:
                    log.warning("ignoring a message with a bad header: %r", line[:80])
                    length = None


def decode(reader: MessageReader, body: bytes) -> Any:
    """The JSON value of ``body``; a body that swallowed the next message's header gives that header back."""
    try:
        return json.loads(body)
    except ValueError:
        glued = body.lower().find(_HEADER)
        if glued > 0:
            reader.unread(body[glued:])
            body = body[:glued]
        raise JsonRpcParseError(f"message is not valid JSON: {body[:80]!r}") from None


class StreamWriter:
    """pygls' writer interface over the reserved stdout (only the event loop thread writes)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        self._stream.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.close()


def send_error(server: LanguageServer, msg_id: int | str | None, error: JsonRpcException) -> None:
    """An error response written directly (the id may be null, which pygls' response types do not allow)."""
    response = {"jsonrpc": "2.0", "id": msg_id, "error": {"code": error.code, "message": error.message}}
    body = json.dumps(response)
    writer = server.protocol.writer
    if writer is not None:
        writer.write(f"Content-Length: {len(body)}\r\n\r\n{body}".encode())


@dataclasses.dataclass
class Lifecycle:
    """Where the session is in LSP's ``initialize`` ... ``shutdown``, ``exit`` sequence."""

    initialized: bool = False
    shut_down: bool = False

    def refusal(self, method: object) -> JsonRpcException | None:
        """Why a request for ``method`` may not run now, or None."""
        if self.shut_down and method != "exit":
            return JsonRpcInvalidRequest(f"{method}: the server is shut down; only exit is accepted")
        if method == "initialize" and self.initialized:
            return JsonRpcInvalidRequest("initialize: the server is already initialized")
        return None

    def handled(self, method: object) -> None:
        if method == "initialize":
            self.initialized = True
        elif method == "shutdown":
            self.shut_down = True


def dispatch(server: LanguageServer, data: Any, lifecycle: Lifecycle) -> None:
    """Hand one decoded message to pygls, answering what pygls would leave unanswered."""
    msg_id = data.get("id") if isinstance(data, dict) else None
    is_request = isinstance(data, dict) and "method" in data and "id" in data
    if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
        log.warning("not a JSON-RPC 2.0 message: %.200r", data)
        if is_request or not isinstance(data, dict):
            send_error(server, msg_id, JsonRpcInvalidRequest("expected a JSON-RPC 2.0 object"))
        return
    method = data.get("method")
    if is_request and (refusal := lifecycle.refusal(method)) is not None:
        log.warning("refused: %s", refusal.message)
        send_error(server, msg_id, refusal)
        return
    try:
        message = server.protocol.structure_message(data)
    except JsonRpcException as exc:
        log.warning("bad %s message: %s", data.get("method", "response"), exc)
        if is_request:
            send_error(server, msg_id, type(exc)(f"invalid params for {method}: {exc.__cause__ or exc}"))
        return
    if is_request:
        lifecycle.handled(method)
    try:
        server.protocol.handle_message(message)
    except JsonRpcException as exc:
        if is_request:
            send_error(server, msg_id, exc)
    except Exception as exc:
        log.exception("failed to handle %s", data.get("method", "a response"))
        if is_request:
            send_error(server, msg_id, JsonRpcInternalError(str(exc)))


async def serve_stdio(
    server: LanguageServer, stdin: BinaryIO, stdout: BinaryIO, client_alive: Callable[[], bool]
) -> None:
    """Serve until ``exit`` (pygls raises SystemExit), end of input or the client process is gone."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    server.protocol.set_writer(StreamWriter(stdout))
    reader = MessageReader(stdin)
    lifecycle = Lifecycle()

    def on_message(result: Any) -> None:
        if isinstance(result, JsonRpcException):
            send_error(server, None, result)
        else:
            dispatch(server, result, lifecycle)

    def read_loop() -> None:
        while True:
            try:
                body = reader.read_body()
            except MessageTooLarge as exc:
                log.warning("%s", exc)
                loop.call_soon_threadsafe(on_message, JsonRpcInvalidRequest(str(exc)))
                continue
            if body is None:
                break
            try:
                message: Any = decode(reader, body)
            except JsonRpcParseError as exc:
                message = exc
            loop.call_soon_threadsafe(on_message, message)
        log.info("end of input")
        loop.call_soon_threadsafe(stopped.set)

    threading.Thread(target=read_loop, name="lsp-verify-stdin", daemon=True).start()
    while not stopped.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stopped.wait(), PARENT_POLL_S)
        if not client_alive():
            log.warning("the client process is gone; exiting")
            return


def process_alive(pid: int | None) -> bool:
    """Whether process ``pid`` still exists (True when unknown)."""
    if pid is None or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a dead client whose own parent has not reaped it yet
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
