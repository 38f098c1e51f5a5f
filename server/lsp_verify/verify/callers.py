"""Which tests reach a function without naming it: read from one traced run of the whole suite.

A test that never names ``_normalize`` but calls ``slugify``, which calls it, fails when ``_normalize`` is
wrong: it tests the function as surely as one that names it, and on real libraries most of the functions no
test names are reached this way (xmltodict: 17 of its 18; funcy: 84 of 107). :mod:`.test_index` finds the
tests that name a function by reading them; these are found by running them: the whole suite, once, with a
profiler that records which of the workspace's functions each test entered
(``PytestRunner.run(trace_calls=True)``). :class:`Reach` is what that run saw, inverted: per function, the
tests that entered it.

The map is a way of choosing tests, never a verdict: a test it names is run on each candidate like any
other selected test, and judged against the original code's run of it. So a map made before the latest
edits is still safe to use - at worst it misses a test a change made reach the function, or picks one that
no longer does (which then only guards).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from ..cancel import CancelToken
from .pytest_run import TestRun, function_id

ReachMode = Literal["background", "wait", "off"]

REACHING_LIMIT = 16
"""At most this many reaching tests are run per function: the most specific first (those that entered the
fewest of the workspace's functions - unit tests of a caller before end-to-end ones), so that a helper that
every test passes through does not make each candidate run the whole suite."""


@dataclasses.dataclass(frozen=True)
class Reach:
    """Per function (file relative to the root, qualified name), the test functions whose run entered it,
    most specific first; node ids are the test functions' (parametrised cases are run by their function)."""

    tests: Mapping[tuple[str, str], tuple[str, ...]]
    traced: int
    """Test items whose calls were recorded."""
    complete: bool
    """The traced run finished within its time (else the map holds the tests that ran before it stopped)."""

    def reaching(
        self, relative: str, qualname: str, runnable: Iterable[str], limit: int = REACHING_LIMIT
    ) -> tuple[str, ...]:
        """The tests (among ``runnable``, the current collection's test functions) that entered function
        ``qualname`` of ``relative``, at most ``limit``."""
        allowed = set(runnable)
        found = [node_id for node_id in self.tests.get((relative, qualname), ()) if node_id in allowed]
        return tuple(found[:limit])


def reach_of(run: TestRun, complete: bool) -> Reach:
    """What a traced run (``TestRun.calls``) saw, per function."""
    breadth: dict[str, int] = {}  # per test function: how many functions its items entered (the fewest)
    entered_by: dict[tuple[str, str], set[str]] = {}
    for nodeid, functions in run.calls:
        test = function_id(nodeid)
        breadth[test] = min(breadth.get(test, len(functions)), len(functions))
        for function in functions:
            entered_by.setdefault(function, set()).add(test)
    tests = {
        function: tuple(sorted(found, key=lambda test: (breadth[test], test)))
        for function, found in entered_by.items()
    }
    return Reach(tests=tests, traced=len(run.calls), complete=complete)


class Tracing:
    """A project's one traced run of its suite: started by the first request that could use it, on a thread
    of its own (a process of its own, too: the fork server stays free for the runs that verify candidates).
    A request that comes before it is done goes without it, unless it asks to wait (the CLI's ``fix``: one
    request, and the map decides which tests judge it). In a long editor session the workspace changes under
    the map: after a change (:meth:`invalidate`) the next request starts the run again, at most once per
    ``refresh_after_s``, and the old map serves until the new one is done (a run that fails keeps it)."""

    def __init__(self, refresh_after_s: float = 300.0) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._cancel = CancelToken()
        self._reach: Reach | None = None
        self._refresh_after_s = refresh_after_s
        self._stale = False
        self._last_start = 0.0
        self.runs = 0
        """How many traced runs were started."""
        self.problem = ""
        """Why the last run made no map (the suite could not be collected or run), else empty."""

    def start(self, trace: Callable[[CancelToken], Reach]) -> None:
        """Start ``trace`` unless it was started before (and is current, or was started too recently)."""
        with self._lock:
            if self._thread is not None:
                running = self._thread.is_alive()
                recent = time.monotonic() - self._last_start < self._refresh_after_s
                if running or not self._stale or recent or self._cancel.cancelled:
                    return
            self._stale = False
            self._last_start = time.monotonic()
            self.runs += 1
            self._thread = threading.Thread(
                target=self._run, args=(trace,), name="lsp-verify-trace", daemon=True
            )
            self._thread.start()

    def invalidate(self) -> None:
        """The workspace changed: the map may be out of date (see the class docstring)."""
        self._stale = True

    def _run(self, trace: Callable[[CancelToken], Reach]) -> None:
        try:
            self._reach = trace(self._cancel)
            self.problem = ""
        except Exception as exc:  # without a new map, tests are chosen from the old one or as before it
            self.problem = str(exc) or type(exc).__name__
        finally:
            self._done.set()

    def reach(self, wait: bool, cancel: CancelToken) -> Reach | None:
        """The map, once made (None before, or when it could not be made); ``wait``: until it is done or
        ``cancel`` is."""
        while wait and not self._done.is_set() and not cancel.cancelled:
            self._done.wait(0.05)
        return self._reach

    def close(self) -> None:
        """Stop a run in progress, and wait until it has (its process gone) before the verifier's shadow
        and workers go."""
        self._cancel.cancel("the verifier closed")
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
