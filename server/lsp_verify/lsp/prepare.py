"""Preparing the function under the cursor before the user asks for it (``prepare_ahead``).

Editors ask for code actions whenever the cursor moves. Once it has rested on one function for
:data:`REST_S`, the function is prepared on the worker (:meth:`Pipeline.prepare`): its tests are selected,
the baseline runs (mypy and the tests on the code as it is, cached by content) and, when the model is
loaded, the prompt is decoded into the engine. Picking *Complete/Fix (verified)* then finds all of that done
and starts generating at once: the part of the wait that a peer's unverified suggestion does not have
(``bench/latency.py``, variant ``lead-prepared``).

Preparing never delays a request for long and never runs for stale text:

* the cursor moving to another function replaces the pending preparation (and stops a running one);
* a request for another function stops any preparation; one for the same function waits for a running
  preparation and finds its results (the same work it would do first);
* an edit stops it (didChange cancels every job of the document); so do closing and shutdown;
* a failure (tests that cannot be collected, a file that does not parse) is only logged: the request, if
  one comes, reports it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..cancel import CancelToken
from ..pipeline import FixRequest
from . import jobs

if TYPE_CHECKING:
    from .server import VerifyServer

log = logging.getLogger(__name__)

REST_S = 0.4
"""How long the cursor must stay on one function before it is prepared: moving through a file prepares
nothing."""
MOVED_ON = "the cursor moved to another function"
ASKED_ELSEWHERE = "a request for another function came first"

Spot = tuple[str, str, int | None]
"""(uri, qualname, document version) of a prepared function."""


class Preparer:
    """The one pending or running preparation of a server (at most one: the cursor is in one place)."""

    def __init__(self, rest_s: float = REST_S) -> None:
        self.rest_s = rest_s
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._spot: Spot | None = None
        self._job: jobs.Job[object] | None = None

    def cursor(self, ls: VerifyServer, request: FixRequest, uri: str, qualname: str) -> None:
        """A code action was asked for at ``qualname``: prepare it once the cursor has rested there."""
        if not ls.settings.prepare_ahead or ls.pipeline is None:
            return
        spot: Spot = (uri, qualname, request.version)
        with self._lock:
            if spot == self._spot and (self._timer is not None or _alive(self._job)):
                return  # the same function again: already waiting or preparing
            self._stop(MOVED_ON)
            self._spot = spot
            timer = self._timer = threading.Timer(self.rest_s, self._submit, (ls, request, spot))
            timer.daemon = True
            timer.start()

    def asked(self, uri: str, qualname: str) -> None:
        """A request for ``qualname`` is being queued: stop preparing any other function. A preparation of
        this one that is running goes on (the request waits for it and uses what it did); one still waiting
        for the cursor to rest is dropped (the request does that work itself)."""
        with self._lock:
            if self._spot is not None and self._spot[:2] == (uri, qualname):
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                return
            self._stop(ASKED_ELSEWHERE)
            self._spot = None

    def close(self) -> None:
        with self._lock:
            self._stop(jobs.SHUTTING_DOWN)
            self._spot = None

    def _stop(self, reason: str) -> None:
        """With the lock held: the waiting timer, and the queued or running job."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._job is not None:
            self._job.cancel(reason)
            self._job = None

    def _submit(self, ls: VerifyServer, request: FixRequest, spot: Spot) -> None:
        """On the timer's thread, once the cursor has rested."""
        pipeline = ls.pipeline
        edited = ls.workspace.get_text_document(spot[0]).version != spot[2]
        with self._lock:
            if self._spot != spot:
                return  # moved on just as the timer fired
            self._timer = None
            if pipeline is None or edited:
                self._spot = None  # typed (didChange) or shut down while the cursor rested
                return
            self._job = ls.worker.submit(_work(pipeline.prepare, request, spot), uri=spot[0])


def _work(
    prepare: Callable[[FixRequest, CancelToken], object], request: FixRequest, spot: Spot
) -> Callable[[CancelToken], object]:
    def work(token: CancelToken) -> object:
        try:
            prepared = prepare(request, token)
        except Exception as exc:  # the request reports it, if one comes
            log.info("not prepared: %s in %s: %s", spot[1], spot[0], exc)
            return None
        log.info("prepared %s", prepared)
        return prepared

    return work


def _alive(job: jobs.Job[object] | None) -> bool:
    return job is not None and not job.future.done() and not job.token.cancelled
