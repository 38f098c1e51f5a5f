"""Work-done progress (``$/progress`` begin/report/end) for one long request.

The pipeline reports from its worker thread; every notification is handed to the event loop, the only thread
that writes to the client, so messages keep their order and never interleave on the wire. Percentages only
grow, as LSP asks.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from ..pipeline import Progress

log = logging.getLogger(__name__)


class WorkDoneProgress:
    """``$/progress`` for one request, under a server-created token (nothing is sent to a client that can't
    show it)."""

    def __init__(self, server: LanguageServer, title: str, *, enabled: bool) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self.title = title
        self.token: str = f"lsp-verify/{uuid.uuid4()}"
        self.enabled = enabled
        self._percentage = 0
        self._last_message = ""
        self._ended = False

    async def begin(self, message: str) -> None:
        if self.enabled:
            try:
                await self._server.work_done_progress.create_async(self.token)
            except Exception as exc:  # the client refused the token: carry on without progress
                log.warning("window/workDoneProgress/create failed (%s); no progress for %r", exc, self.title)
                self.enabled = False
                return
        self._send(
            types.WorkDoneProgressBegin(title=self.title, message=message, percentage=0, cancellable=True)
        )

    def report(self, message: str, percentage: int | None = None) -> None:
        """Thread-safe; repeated messages are dropped."""
        if percentage is not None:
            self._percentage = max(self._percentage, min(percentage, 100))
        if message == self._last_message:
            return
        self._last_message = message
        value = types.WorkDoneProgressReport(message=message, percentage=self._percentage, cancellable=True)
        self._loop.call_soon_threadsafe(self._send, value)

    def pipeline_progress(self, progress: Progress) -> None:
        """The pipeline's callback (runs on the worker thread)."""
        self.report(progress.message, percentage(progress))

    def end(self, message: str) -> None:
        """Called on the loop thread once the request is answered (or failed)."""
        if not self._ended:
            self._ended = True
            self._send(types.WorkDoneProgressEnd(message=message))

    def _send(
        self, value: types.WorkDoneProgressBegin | types.WorkDoneProgressReport | types.WorkDoneProgressEnd
    ) -> None:
        if not self.enabled or (self._ended and not isinstance(value, types.WorkDoneProgressEnd)):
            return
        self._server.progress(types.ProgressParams(token=self.token, value=value))


def percentage(progress: Progress) -> int:
    """0-5 before generation, then generation and verification each fill half of the rest."""
    if progress.stage == "done":
        return 100
    total = max(progress.total, 1)
    if progress.stage in ("target", "baseline"):
        return 2
    return int(5 + 45 * min(progress.generated, total) / total + 50 * min(progress.verified, total) / total)
