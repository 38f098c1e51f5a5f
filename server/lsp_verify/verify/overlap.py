"""Running one call on a thread of its own while the caller does another: the two verifier workers (mypy,
pytest; collection in the fork server and in a fresh process) wait on their own children, so their runs
overlap.

Not a ``concurrent.futures.ThreadPoolExecutor``: its ``submit`` holds that module's process-wide shutdown
lock while it starts the pool's thread, and the interpreter's at-fork hooks take and give back the same
lock around every ``fork`` made with a ``preexec_fn`` -- which is how the verifier starts its sandboxed
processes, from other threads. On CPython 3.11 a CLI run crashed inside that ``submit`` with "RuntimeError:
release unlocked lock" (twice more in tests, never in CI); a plain thread never touches that lock.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

T = TypeVar("T")
U = TypeVar("U")
P = ParamSpec("P")

__all__ = ["alongside", "in_thread"]


def in_thread(
    name: str, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> concurrent.futures.Future[T]:
    """Start ``call(*args, **kwargs)`` on a new daemon thread named ``name``; its result or exception comes
    through the returned future (``result()`` waits for the thread to end)."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()
    future.set_running_or_notify_cancel()

    def run() -> None:
        try:
            result = call(*args, **kwargs)
        except BaseException as exc:  # the caller's result() raises it
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def alongside(
    name: str, background: Callable[[], T], foreground: Callable[[], U]
) -> tuple[concurrent.futures.Future[T], U]:
    """``background()`` on a thread named ``name`` while ``foreground()`` runs here; returns once both have
    ended (also when ``foreground`` raises: nothing is left running on what the caller cleans up next), with
    the background's future (done: ``result()`` gives its value or raises its exception) and the
    foreground's value."""
    future = in_thread(name, background)
    try:
        value = foreground()
    finally:
        concurrent.futures.wait([future])
    return future, value
