"""The one worker thread that runs pipeline work, and the registry of jobs the handlers can cancel.

The pipeline (model, mypy, test runs) is not run concurrently with itself: every request is queued here and
runs alone, so the event loop stays free to answer initialize, didChange, codeAction and cancels within
milliseconds. A newer request for the same function supersedes (cancels) the older one, queued or running.
Settings changes and cache invalidation are queued too, so they never happen under a running request.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from ..cancel import Cancelled, CancelToken

log = logging.getLogger(__name__)

T = TypeVar("T")

SUPERSEDED = "superseded by a newer request for the same function"
CONTENT_MODIFIED = "the document changed while the request ran"
CLIENT_CANCELLED = "cancelled by the client"
SHUTTING_DOWN = "the server is shutting down"


@dataclasses.dataclass(eq=False)
class Job(Generic[T]):
    """One unit of pipeline work with the token that stops it and the future that carries its outcome."""

    key: Hashable | None
    """Jobs with equal keys supersede each other (None: never superseded)."""
    uri: str | None
    work: Callable[[CancelToken], T]
    token: CancelToken = dataclasses.field(default_factory=CancelToken)
    future: concurrent.futures.Future[T] = dataclasses.field(default_factory=concurrent.futures.Future)
    request_id: int | str | None = None
    progress_token: int | str | None = None
    number: int = 0

    def cancel(self, reason: str) -> None:
        self.token.cancel(reason)


@dataclasses.dataclass(eq=False)
class _Marker:
    """Queued behind the current jobs; set once the worker reaches it."""

    done: threading.Event


class Worker:
    """Runs queued jobs one at a time on a daemon thread: a stuck native call cannot keep the process up."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Job[Any] | _Marker | None] = queue.Queue()
        self._jobs: list[Job[Any]] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._thread = threading.Thread(target=self._loop, name="lsp-verify-pipeline", daemon=True)
        self._thread.start()

    def submit(
        self,
        work: Callable[[CancelToken], T],
        *,
        key: Hashable | None = None,
        uri: str | None = None,
        request_id: int | str | None = None,
        progress_token: int | str | None = None,
    ) -> Job[T]:
        job: Job[T] = Job(
            key=key,
            uri=uri,
            work=work,
            request_id=request_id,
            progress_token=progress_token,
            number=next(self._numbers),
        )
        with self._lock:
            older = [j for j in self._jobs if key is not None and j.key == key]
            self._jobs.append(job)
        for old in older:
            log.info("job %d: %s", old.number, SUPERSEDED)
            old.cancel(SUPERSEDED)
        self._queue.put(job)
        return job

    def cancel(self, predicate: Callable[[Job[Any]], bool], reason: str) -> int:
        """Cancel every queued or running job matching ``predicate``; returns how many."""
        with self._lock:
            chosen = [job for job in self._jobs if predicate(job)]
        for job in chosen:
            job.cancel(reason)
        return len(chosen)

    def cancel_all(self, reason: str) -> None:
        self.cancel(lambda job: True, reason)

    def idle(self, timeout: float) -> bool:
        """Wait until no job is queued or running; True when that happened within ``timeout``."""
        done = threading.Event()
        self._queue.put(_Marker(done))
        return done.wait(timeout)

    def stop(self) -> None:
        self._queue.put(None)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if isinstance(job, _Marker):
                job.done.set()
                continue
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._jobs.remove(job)

    @staticmethod
    def _run(job: Job[Any]) -> None:
        if not job.future.set_running_or_notify_cancel():
            return  # the waiting handler was cancelled before the job started
        if job.token.cancelled:
            job.future.set_exception(Cancelled(job.token.reason))
            return
        try:
            job.future.set_result(job.work(job.token))
        except BaseException as exc:  # the handler awaiting the future decides what the user sees
            if not isinstance(exc, Exception):
                log.exception("job %d stopped the worker", job.number)
            job.future.set_exception(exc)
