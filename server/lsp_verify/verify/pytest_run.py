"""pytest in a shadow: which tests exist (collection) and how the selected ones fare (runs).

Collection is pytest's own (``--collect-only`` with the project's rootdir, ini/pyproject configuration,
conftest files and installed plugins): every item with the file and qualified name of the function it runs.
Our code never decides what is a test; ``test_index`` only decides which collected tests are near a function.

Runs go through the pytest fork server (``_worker.py pytest``): pytest and the installed plugins are
imported once, and each run is a forked child with its own process group, CPU limit and deadline, so a
candidate never pays pytest's start-up (measured: ~1.9 s for a plain ``pytest`` process with this venv's
plugins, ~0.15 s for a forked run; see bench/verification.py). Each run writes one JSON line per test
event to a file, so a run killed at its deadline still tells which tests finished and which one hung.

A pre-imported fork server is not ``python -m pytest``: plugins are imported before the project's
configuration is read, and modules they import are already loaded (no import-time warnings, no
import-order effects). So once per configuration the collection is made both ways, and a project whose
configuration loads a plugin with ``-p``, or whose fork-server collection differs from (or fails where) a
fresh process succeeds, gets every run in a fresh process (``_worker.py once``): slower, but the same as the
project's own ``python -m pytest``. (``filterwarnings = error`` alone does not: see :data:`_PREIMPORTED`.)

After the run the child records where the edited module was imported from; a run in which it came from
the user's tree (an installed or editable copy winning over the shadow) cannot pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..cancel import CancelToken
from ..config import pytest_config_file
from .interpreter import ProjectPython, own_python
from .overlap import alongside
from .sandbox import (
    CONFINES_WRITES,
    WORKER_SCRIPT,
    Isolation,
    Limits,
    WorkerError,
    WorkerProcess,
    run_process,
)
from .shadow import Shadow, ShadowRoot
from .types import TestOutcome

# pytest's exit codes that mean "could not even run": interrupted (collection errors), internal error,
# usage error (a conftest that does not import lands here).
_BROKEN_EXIT_CODES = frozenset({2, 3, 4})


@dataclasses.dataclass(frozen=True)
class TestRun:
    __test__ = False  # not a pytest test class, despite the name

    outcomes: tuple[TestOutcome, ...]
    collect_errors: tuple[tuple[str, str], ...] = ()
    """(node id or path, message) of everything that failed to collect, conftest files included."""
    exit_code: int = 0
    timed_out: bool = False
    leaked_imports: tuple[str, ...] = ()
    """Files of the edited module imported from outside the shadow (must be empty for a pass)."""
    problem: str = ""
    """Why the run produced no usable result (worker failure, broken configuration), else empty."""
    log: str = ""
    seconds: float = 0.0
    calls: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    """With ``trace_calls``: per test item, the workspace's functions it entered - (file relative to the
    root, qualified name without ``<locals>``) - as :mod:`.callers` reads them."""
    stopped: tuple[str, ...] = ()
    """The tests that were running when the run was cut at its time limit (outcome ``timeout``) or its
    process crashed (outcome ``error``): the tests after them did not run."""
    stopped_for_s: float = 0.0
    """How long the last of ``stopped`` had been running when the run was cut at its time limit."""

    @property
    def by_nodeid(self) -> dict[str, TestOutcome]:
        return {outcome.nodeid: outcome for outcome in self.outcomes}


NOTHING_COLLECTED = "no test could be collected; "
"""How :attr:`Collection.problem` begins when every test file failed to collect (the first one follows)."""

DEFAULT_PYTHON_FILES = ("test_*.py", "*_test.py")
UNITTEST_FILES = "test*.py"
"""unittest's discovery pattern: with the default ``python_files``, files it matches that hold ``TestCase``
classes are collected too (``_worker._unittest_discovery``)."""
_CONTINUATIONS = 3
"""How many times a run cut at its time limit is continued where it was cut (see
:meth:`PytestRunner._continued`): each continuation may take the whole limit again."""
_RECHECKS = 8
"""At most this many files that failed to collect in the whole suite are collected again on their own (a
fork-server collection of one file takes a few tenths of a second; a project with many broken files, e.g.
an optional dependency missing, keeps the rest as they are)."""


@dataclasses.dataclass(frozen=True)
class CollectedTest:
    """One item pytest collected."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    file: str
    """The file it was collected from (relative to the root, ``/``-separated)."""
    def_file: str
    """The file defining the function it runs (differs for inherited tests; empty when unknown)."""
    qualname: str
    """The function's ``__qualname__``, e.g. ``AreaTests.test_square`` (empty for non-function items)."""
    line: int
    """0-based first line of the function's definition (its first decorator), -1 when unknown."""
    doctest: bool = False
    """A docstring's examples (``--doctest-modules``), not a test function."""


@dataclasses.dataclass(frozen=True)
class Collection:
    """What pytest collects in the workspace, and how its tests must be run."""

    tests: tuple[CollectedTest, ...]
    errors: tuple[tuple[str, str], ...] = ()
    """(file, one-line reason) of each file that failed to collect; the other files' tests still count."""
    problem: str = ""
    """Why nothing could be collected (one line naming the file), else empty."""
    python_files: tuple[str, ...] = DEFAULT_PYTHON_FILES
    """The project's ``python_files`` patterns: a new file matching one may hold tests."""
    doctest_modules: bool = False
    """The project's own runs collect modules' doctests (``--doctest-modules`` in its addopts): then a
    module whose doctests it does not collect is one its configuration leaves out (``testpaths``)."""
    fresh_process: str = ""
    """Why each run needs a fresh ``python -m pytest``-like process (empty: the fork server reproduces
    the project's own runs)."""
    seconds: float = 0.0
    unimported: tuple[tuple[str, str], ...] = ()
    """(file, one-line reason) of each file only unittest's discovery pattern found (``tests.py``) that could
    not be imported: no error (a framework's tests that need its runner), but a change that causes it breaks
    every test in it (``check_guards.collection_guard`` compares with the base revision)."""
    order_dependent: tuple[tuple[str, str], ...] = ()
    """(node id or file, one-line reason) of what failed to collect in the whole suite only: collected on
    its own, the file collects (another test file changed global state first, e.g. turned warnings into
    errors at import). Its tests are in ``tests``: a run by name collects them as pytest alone would."""


def function_ids(node_ids: Iterable[str]) -> tuple[str, ...]:
    """The test functions of ``node_ids``, each once, in order: what a run is asked for. A parametrised
    case's id is what one collection called it, and another process need not call it alike (cases drawn
    from a set or a dict, an id made from an object's address): isodate's ``test_parse[4-1985-expected1-%Y]``
    names another case in each run, and a run asked for it finds nothing ("not found", exit 4)."""
    return tuple(dict.fromkeys(function_id(node_id) for node_id in node_ids))


_CASE = re.compile(r"(?<=[^:\[])\[.*\]\Z", re.DOTALL)
"""A parametrised case's ``[...]`` suffix: after a name (not the ``[`` that starts the name of a plugin's
item, pytest-mypy-testing's ``test_x.py::[mypy]test_y``), up to the end (an id may hold ``::`` or ``[``)."""


def function_id(node_id: str) -> str:
    """The test function a node id names: the id without a parametrised case's ``[...]`` (a directory's
    brackets before the first ``::`` are the path's own)."""
    start = node_id.find("::")
    case = _CASE.search(node_id, start + 2) if start >= 0 else None
    return node_id[: case.start()] if case else node_id


def pytest_args(shadow: Shadow, node_ids: Sequence[str], doctest_file: str | None) -> list[str]:
    """Arguments for one run: pytest's cache inside the shadow (a fresh one per shadow: the ``cache``
    fixture works, and nothing one candidate's run stored is read by another's), fixed rootdir, and the
    configuration file a plain ``python -m pytest`` at the project's root reads."""
    root = shadow.root
    args = [
        "-o",
        f"cache_dir={root / '.pytest_cache'}",
        "-q",
        "--no-header",
        "--color=no",
        f"--rootdir={root}",
    ]
    config = project_config_file(shadow)
    if config is not None:
        args.append(f"--config-file={config}")
    else:
        # None, as plain pytest at the root reads none; left to itself, a run naming tests/test_x.py::test_y
        # would look from tests/ up and take a tests/pytest.ini (deselecting, say, what it marks slow). An
        # empty configuration, and conftest.py files looked up no higher than the root, as without one.
        args += [f"--config-file={os.devnull}", f"--confcutdir={root}"]
    if doctest_file is not None:
        args += ["--doctest-modules", doctest_file]
    return [*args, *node_ids]


def project_config_file(shadow: Shadow) -> Path | None:
    """The pytest configuration file of the project: in the first directory from the shadow's root up
    (within the shadow: a monorepo's top is mirrored around a member) that holds one, as pytest finds it with
    no arguments. Without it a run naming ``tests/test_x.py::test_y`` looks from ``tests/`` up, and a
    ``tests/pytest.ini`` that declares markers there replaced the project's ``filterwarnings = error``
    (and its conftest.py files above, which ``confcutdir`` then cut off). Where none holds one, the root's
    ``pyproject.toml`` even without a pytest table, as pytest (8.1 on) takes it then."""
    for directory in (shadow.root, *shadow.root.parents):
        name = pytest_config_file(directory)
        if name:
            return directory / name
        if directory == shadow.outer:
            break
    fallback = shadow.root / "pyproject.toml"
    return fallback if fallback.is_file() else None


@dataclasses.dataclass(frozen=True)
class FreshProcess:
    """How to start a fresh sandboxed interpreter for one run (``_worker.py once``)."""

    limits: Limits
    isolation: Isolation
    writable: tuple[Path, ...]
    readable: tuple[Path, ...]
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    python: ProjectPython = dataclasses.field(default_factory=own_python)
    """The interpreter that runs the project's tests (``interpreter.project_python``)."""


class PytestRunner:
    """Collects and runs tests in shadows, through one pre-imported fork server or, for a project that the
    fork server cannot reproduce, a fresh process per run; one run at a time."""

    def __init__(
        self,
        worker: WorkerProcess,
        shadows: ShadowRoot,
        timeout_s: float,
        fresh: FreshProcess,
        refused: str = "",
    ) -> None:
        self._worker = worker
        self._shadows = shadows
        self._timeout_s = timeout_s
        self._fresh = fresh
        self._refused = refused
        """Why nothing may be collected or run (an untrusted workspace): every collection and run is then
        this problem, without starting a process."""
        self._fresh_reason = ""
        """Set by :meth:`collect`: why runs use a fresh process (empty: the fork server)."""
        self._conftests: list[str] = []
        """Set by :meth:`collect`: the conftest.py files the whole collection loaded (relative to the
        shadow's root), which every run loads too."""

    # -- collection --------------------------------------------------------------------------------------

    def collect(self, shadow: Shadow, cancel: CancelToken) -> Collection:
        """pytest's collection of the whole workspace (as seen through ``shadow``), made both in the fork
        server and in a fresh process; the fresh process's is the truth, and decides how runs are made."""
        if self._refused:
            return Collection((), problem=self._refused)
        timeout = max(2 * self._timeout_s, 15.0)  # a whole suite collects slower than a few tests run
        args = ["--collect-only", *pytest_args(shadow, (), None)]
        # Both at once: the fork server mostly waits on its own child, and a wall-clock second saved here
        # is saved on every `lsp-verify check` run.
        forked_run, (fresh_events, fresh_answer, fresh_log) = alongside(
            "lsp-verify-collect",
            lambda: self._request(shadow, "collect", args, timeout, cancel, False),
            lambda: self._request(shadow, "collect", args, timeout, cancel, True),
        )
        try:
            forked_events, forked_answer, forked_log = forked_run.result()
        except WorkerError as exc:
            forked, forked_reason = None, f"the pre-imported pytest server failed ({exc})"
        else:
            forked = _collection(forked_events, forked_answer, forked_log, shadow.root, timeout)
            forked_reason = _preloaded_reason(forked_events)
        fresh = _collection(fresh_events, fresh_answer, fresh_log, shadow.root, timeout)
        reason = _fresh_reason_from_config(fresh_events) or forked_reason
        differs = forked is not None and (forked.problem or _signature(forked) != _signature(fresh))
        if differs and not reason and not fresh.problem:
            reason = "a pre-imported pytest collects this project differently from `python -m pytest`"
        self._fresh_reason = reason
        self._conftests = next(
            (list(map(str, e.get("files", ()))) for e in fresh_events if e.get("event") == "conftests"), []
        )
        return self._recheck_alone(shadow, dataclasses.replace(fresh, fresh_process=reason), timeout, cancel)

    def _recheck_alone(
        self, shadow: Shadow, collection: Collection, timeout: float, cancel: CancelToken
    ) -> Collection:
        """``collection`` with each test file that failed to collect collected again on its own (the first
        :data:`_RECHECKS`): an error that does not repeat there came from what another file did first (a
        module-level ``warnings.simplefilter("error")``, a patched import), and does not hide the file's
        tests from a run that names them; it moves to ``order_dependent`` and the file's tests are added."""
        files = list(
            dict.fromkeys(
                file
                for where, _ in collection.errors
                if (file := where.split("::", 1)[0]).endswith(".py")
                and Path(file).name != "conftest.py"
                and (shadow.root / file).is_file()
            )
        )[:_RECHECKS]
        alone: dict[str, Collection] = {}
        for file in files:
            args = ["--collect-only", *pytest_args(shadow, (file,), None)]
            try:
                events, answer, log = self._request(
                    shadow, "collect", args, timeout, cancel, bool(self._fresh_reason)
                )
            except WorkerError:
                continue  # not confirmed either way: the error stands
            cancel.raise_if_cancelled()
            again = _collection(events, answer, log, shadow.root, timeout)
            if not again.problem and not again.errors:
                alone[file] = again
        if not alone:
            return collection
        known = {test.nodeid for test in collection.tests}
        added = tuple(t for each in alone.values() for t in each.tests if t.nodeid not in known)
        return dataclasses.replace(
            collection,
            tests=collection.tests + added,
            errors=tuple(e for e in collection.errors if e[0].split("::", 1)[0] not in alone),
            order_dependent=tuple(e for e in collection.errors if e[0].split("::", 1)[0] in alone),
        )

    def _request(
        self,
        shadow: Shadow,
        op: str,
        args: list[str],
        timeout: float,
        cancel: CancelToken,
        fresh: bool,
        extra: dict[str, object] | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
        """Send one request to the fork server or run it in a fresh process: (events, answer, log)."""
        result_file = self._shadows.scratch(f"{op}-result")
        log_file = self._shadows.scratch(f"{op}-log")
        request_file = self._shadows.scratch(f"{op}-request")
        request = {
            "op": op,
            "cwd": str(shadow.root),
            "workspace": str(self._shadows.workspace),
            **({"top": str(self._shadows.top), "outer": str(shadow.outer)} if self._shadows.top else {}),
            "args": args if fresh else [*args, "-W", _PREIMPORTED],
            "result_file": str(result_file),
            "log_file": str(log_file),
            "timeout": timeout,
            **(extra or {}),
        }
        try:
            if fresh:
                if self._fresh.isolation in CONFINES_WRITES:
                    request["writable"] = [str(path) for path in self._fresh.writable]
                request_file.write_text(json.dumps(request), encoding="utf-8")
                bootstrap = (
                    "import runpy, sys; del sys.path[0]; "
                    f"sys.argv = ['lsp-verify-worker', 'once', {str(request_file)!r}]; "
                    f"runpy.run_path({str(WORKER_SCRIPT)!r}, run_name='__main__')"
                )
                limits = dataclasses.replace(self._fresh.limits, cpu_s=int(timeout) + 2)
                ran = run_process(
                    [self._fresh.python.executable, "-B", "-c", bootstrap],
                    cwd=shadow.root,
                    timeout_s=timeout,
                    limits=limits,
                    isolation=self._fresh.isolation,
                    writable=self._fresh.writable,
                    readable=(*self._fresh.readable, *self._fresh.python.readable, WORKER_SCRIPT.parent),
                    cancel=cancel,
                    env=self._fresh.env,
                )
                answer: dict[str, Any] = {
                    "status": "timeout" if ran.timed_out else "ok",
                    "exit": ran.returncode,
                    "seconds": ran.seconds,
                }
                log = ran.output
            else:
                answer = self._worker.request(request, cancel)
                log = _read_text(log_file)
            return _read_events(result_file), answer, log
        finally:
            for scratch in (result_file, log_file, request_file):
                scratch.unlink(missing_ok=True)

    # -- runs --------------------------------------------------------------------------------------------

    def run(
        self,
        shadow: Shadow,
        node_ids: Sequence[str],
        doctest_file: str | None,
        original_file: Path,
        cancel: CancelToken,
        *,
        timeout_s: float | None = None,
        trace_calls: bool = False,
    ) -> TestRun:
        """``timeout_s``: how long the whole run may take (default: the runner's test timeout).
        ``trace_calls``: record which of the workspace's functions each test enters (:attr:`TestRun.calls`),
        in a process of its own, so that the fork server stays free for the runs that verify candidates.

        A linked shadow is read-only where it links to the workspace (bubblewrap mounts it so): a test that
        writes beside itself (``Path(__file__).parent / "out.json"``) fails there with and without a change
        alike, and so guards nothing - a change it would fail passed. When a run's failures say so, the
        shadow is made a copy and the run made again, and every later shadow is a copy (as without
        bubblewrap: the writes stay in the shadow).

        The same holds for tests that find the project through their own resolved path
        (``sys.path.insert(0, str(Path(__file__).resolve().parents[1]))``, ``os.path.realpath`` in a
        conftest.py): a link resolves into the workspace, so they imported the user's module in place of the
        candidate (:attr:`TestRun.leaked_imports`) and the run could not judge it. In a copy they resolve
        inside the shadow."""
        if self._refused:
            return TestRun((), problem=self._refused)
        timeout = self._timeout_s if timeout_s is None else timeout_s
        args = pytest_args(shadow, node_ids, doctest_file)
        files: dict[str, object] = {"edited_file": str(shadow.edited), "forbidden_file": str(original_file)}
        if trace_calls:
            files["trace_calls"] = True
        run = self._run(shadow, args, files, timeout, cancel, trace_calls)
        if shadow.linked is not None and (_writes_refused(run) or _resolved_into(run, shadow.linked)):
            self._shadows.copy = True
            shadow.materialize()
            run = self._run(shadow, args, files, timeout, cancel, trace_calls)
        if timeout_s is None and not trace_calls:
            run = self._continued(shadow, args, files, run, timeout, cancel)
        return run

    def _continued(
        self,
        shadow: Shadow,
        args: list[str],
        files: dict[str, object],
        run: TestRun,
        timeout: float,
        cancel: CancelToken,
    ) -> TestRun:
        """``run``, continued where its time limit cut it when the test it cut had run for less than half
        of it: the tests together took longer than one run may (a guard module of hundreds of tests, one of
        them slow, on a loaded machine), which is no sign of a hang - a candidate whose run was cut where
        its baseline's was not failed for it, its change harmless (more_itertools' ``test_primes``). The
        tests that did not finish run again in a run of their own (those that did are deselected), at most
        :data:`_CONTINUATIONS` times; a test that holds a run up for most of its limit stays a timeout."""
        runs = [run]
        while (
            run.timed_out and run.stopped and run.stopped_for_s < timeout / 2 and len(runs) <= _CONTINUATIONS
        ):
            cancel.raise_if_cancelled()
            finished = [o.nodeid for r in runs for o in r.outcomes if o.nodeid not in r.stopped]
            deselected = [part for nodeid in finished for part in ("--deselect", nodeid)]
            run = self._run(shadow, [*args, *deselected], files, timeout, cancel, False)
            runs.append(run)
        if len(runs) == 1:
            return run
        outcomes: dict[str, TestOutcome] = {}
        for each in runs:
            outcomes.update((o.nodeid, o) for o in each.outcomes)
        return dataclasses.replace(
            run,
            outcomes=tuple(outcomes.values()),
            collect_errors=runs[0].collect_errors,
            leaked_imports=tuple(sorted({path for each in runs for path in each.leaked_imports})),
            seconds=sum(each.seconds for each in runs),
        )

    def _run(
        self,
        shadow: Shadow,
        args: list[str],
        files: dict[str, object],
        timeout: float,
        cancel: CancelToken,
        trace_calls: bool,
    ) -> TestRun:
        fresh = bool(self._fresh_reason) or trace_calls
        if self._conftests:  # what a whole run loads besides the conftests on the named tests' paths
            files = {**files, "conftests": self._conftests}
        try:
            events, answer, log = self._request(shadow, "pytest", args, timeout, cancel, fresh, files)
        except WorkerError:
            # The fork server is an optimisation: whatever broke it, a fresh process is the project's own
            # `python -m pytest`, and a project whose tests pass must not be told they could not run.
            self._fresh_reason = self._fresh_reason or "the pre-imported pytest server failed"
            events, answer, log = self._request(shadow, "pytest", args, timeout, cancel, True, files)
        ended = time.monotonic()
        timed_out = answer.get("status") == "timeout"
        outcomes: dict[str, TestOutcome] = {}
        started: list[str] = []
        since: dict[str, float] = {}
        finished: set[str] = set()
        collect_errors: list[tuple[str, str]] = []
        leaked: list[str] = []
        calls: list[tuple[str, tuple[tuple[str, str], ...]]] = []
        for event in events:
            kind = event.get("event")
            if kind == "calls":
                entered = tuple((str(path), str(name)) for path, name in event.get("functions", []))
                calls.append((str(event["nodeid"]), entered))
            elif kind == "start":
                started.append(str(event["nodeid"]))
                since[str(event["nodeid"])] = float(event.get("t", ended))
            elif kind == "finish":
                finished.add(str(event["nodeid"]))
            elif kind == "report":
                nodeid = str(event["nodeid"])
                previous = outcomes.get(nodeid)
                # A teardown error after a passed call turns the test into an error; never the reverse.
                if previous is None or previous.outcome in ("passed", "skipped"):
                    # Paths in the shadow, which is gone when the user reads this, as the user's own.
                    message = str(event.get("message", "")).replace(f"{shadow.root}{os.sep}", "")
                    outcomes[nodeid] = TestOutcome(nodeid, event["outcome"], message)
            elif kind == "collect_error":
                message = str(event.get("message", ""))
                collect_errors.append(
                    (str(event["nodeid"]) or "conftest", _one_line(message, shadow.root) or message)
                )
            elif kind == "imports":
                leaked += [str(path) for path in event.get("leaked", [])]
        # A test that started and did not finish stopped the run, though its call may have passed.
        unfinished = tuple(nodeid for nodeid in dict.fromkeys(started) if nodeid not in finished)
        stop: TestOutcome | None = None  # the outcome of an unfinished test (its node id aside)
        if timed_out:
            stop = TestOutcome("", "timeout", f"still running after {timeout:g} s (killed)")
            if not started:
                outcomes["<session>"] = TestOutcome(
                    "<session>", "timeout", f"collection still running after {timeout:g} s"
                )
        exit_code = int(answer.get("exit", -1))
        problem = ""
        if not timed_out and exit_code in _BROKEN_EXIT_CODES and not collect_errors:
            collect_errors.append(("pytest", _last_lines(log) or f"pytest exited with code {exit_code}"))
        if not timed_out and (exit_code < 0 or exit_code == 70):
            crash = _crash(exit_code, log)
            problem = f"the test run crashed {crash}"
            stop = TestOutcome("", "error", f"the test run crashed while this test ran {crash}")
        elif not timed_out and unfinished:
            # The process ended inside a test with a status of its own (os._exit(1), a C library's
            # exit(0)): plain pytest's run ends there too, and no test after it runs.
            stop = TestOutcome("", "error", f"the test run ended while this test ran (exit {exit_code})")
        elif not timed_out and exit_code == 1 and not outcomes and not collect_errors:
            # Exit 1 is "tests failed", but none ran: pytest stopped on an exception of its own.
            why = _one_line(log, shadow.root) or _last_lines(log)
            problem = f"pytest stopped before any test ran (exit 1): {why}"
        if stop is not None:
            for nodeid in unfinished:
                previous = outcomes.get(nodeid)
                if previous is None or previous.outcome in ("passed", "skipped"):  # a failure says more
                    outcomes[nodeid] = dataclasses.replace(stop, nodeid=nodeid)
        return TestRun(
            outcomes=tuple(outcomes.values()),
            collect_errors=tuple(collect_errors),
            exit_code=exit_code,
            timed_out=timed_out,
            leaked_imports=tuple(sorted(set(leaked))),
            problem=problem,
            log=log[-4000:],
            seconds=float(answer.get("seconds", 0.0)),
            calls=tuple(calls),
            stopped=unfinished if stop else (),
            stopped_for_s=ended - since[unfinished[-1]] if timed_out and unfinished else 0.0,
        )


def _writes_refused(run: TestRun) -> bool:
    """Whether a test of ``run`` failed, or a file failed to collect, for writing to a read-only file."""
    refused = "Read-only file system"
    return any(o.outcome in ("failed", "error") and refused in o.message for o in run.outcomes) or any(
        refused in message for _, message in run.collect_errors
    )


def _resolved_into(run: TestRun, workspace: Path) -> bool:
    """Whether ``run`` imported the edited module from inside ``workspace``: through a link of the shadow
    that its tests resolved (an installed copy elsewhere is not mended by copying the shadow)."""
    return any(Path(path).is_relative_to(workspace.resolve()) for path in run.leaked_imports)


def failure_summary(message: str) -> str:
    """One line for a failed test's message: for a doctest, the example with what it expected and got."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if not lines[-1].endswith(("DocTestFailure", "UnexpectedException")):
        # pytest's "E" lines: the exception's own line first (``assert 4 == 3``, ``AssertionError: Lists
        # differ: ...``), then what explains it.
        said = next((line[1:].strip() for line in lines if line.startswith("E ") and line[1:].strip()), "")
        return (said or lines[-1].strip())[:500]
    example = next((line for line in lines if ">>>" in line), "")
    source = example[example.index(">>>") :].strip() if example else "a doctest example"
    if lines[-1].endswith("UnexpectedException"):
        raised = next((line for line in lines if line.startswith("UNEXPECTED EXCEPTION:")), "")
        what = raised.removeprefix("UNEXPECTED EXCEPTION:").strip() or lines[-2].strip()
        return f"{source} raised {what}"[:500]
    expected, got = _doctest_block(lines, "Expected"), _doctest_block(lines, "Got")
    summary = f"{source} expected {expected or 'nothing'}, got {got or 'nothing'}"
    if not expected and got in ("True", "False"):
        summary += (
            " (the example gives no expected output: put the expected value on the line after it, "
            "e.g. `True` after a comparison)"
        )
    return summary[:500]


def _doctest_block(lines: list[str], label: str) -> str:
    """The indented block after ``Expected:`` / ``Got:`` in a doctest report, on one line."""
    for i, line in enumerate(lines):
        if line.strip() == f"{label}:":
            block = []
            for following in lines[i + 1 :]:
                if not following.startswith((" ", "\t")):
                    break
                block.append(following.strip())
            return " / ".join(block)
    return ""


def _read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in _read_text(path).splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a kill
    return events


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


_LAST_WORDS = re.compile(r"(Fatal Python error: |lsp-verify worker child failed: ).*")
"""faulthandler's first line, or the worker's own (pytest's progress dots may come before it on its line)."""


def _crash(exit_code: int, log: str) -> str:
    """Why a test process ended without its result: the signal that killed it and Python's fatal error
    (faulthandler's first line: the traceback after it is the runner's own frames), or the worker's last
    words (``MemoryError()`` under ``memory_limit_mb``), or the log's last lines."""
    how = f"exit {exit_code}"
    if exit_code < 0:
        with contextlib.suppress(ValueError):
            how += f", {signal.Signals(-exit_code).name}"
    said = _LAST_WORDS.search(log)
    return f"({how}): {said.group(0).strip() if said else _last_lines(log)}"


def _last_lines(text: str, count: int = 4) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])[:800]


def _collection(
    events: list[dict[str, Any]], answer: dict[str, Any], log: str, root: Path, timeout: float
) -> Collection:
    """A :class:`Collection` from a collect run's events, exit status and log."""
    tests = tuple(
        CollectedTest(
            nodeid=str(event["nodeid"]),
            file=str(event.get("file", "")),
            def_file=str(event.get("def_file", "")),
            qualname=str(event.get("qualname", "")),
            line=int(event.get("line", -1)),
            doctest=bool(event.get("doctest", False)),
        )
        for event in events
        if event.get("event") == "item"
    )
    config = next((event for event in events if event.get("event") == "config"), {})
    python_files = tuple(str(p) for p in config.get("python_files", ())) or DEFAULT_PYTHON_FILES
    doctest_modules = bool(config.get("doctest_modules", False))
    errors = tuple(
        (_error_location(str(event["nodeid"]), root), _one_line(str(event.get("message", "")), root))
        for event in events
        if event.get("event") == "collect_error"
    )
    unimported = tuple(
        (str(event["nodeid"]), _one_line(str(event.get("message", "")), root))
        for event in events
        if event.get("event") == "unittest_unimported"
    )
    seconds = float(answer.get("seconds", 0.0))
    problem = ""
    exit_code = int(answer.get("exit", -1))
    if answer.get("status") == "timeout":
        finished = {str(e["nodeid"]) for e in events if e.get("event") in ("collect_done", "collect_error")}
        stuck = [str(e["nodeid"]) for e in events if e.get("event") == "collect_start"]
        stuck = [nodeid for nodeid in stuck if nodeid not in finished]
        where = f"collecting {stuck[-1]}" if stuck else "loading the pytest configuration and conftest.py"
        problem = f"{where} did not finish within {timeout:g} s (killed)"
    elif exit_code not in (0, 1, 2, 5) or (exit_code in (1, 2) and not errors and not tests):
        # Exit 1 with nothing collected is an exception pytest did not catch (a conftest hook pluggy
        # refuses, say): "no tests" would leave every function to its types while its tests exist.
        problem = _one_line(log, root) or f"pytest --collect-only exited with code {exit_code}"
        config_file = pytest_config_file(root)
        if config_file and "conftest" not in problem:  # a missing plugin, a bad option: the config says so
            problem = f"{config_file}: {problem}"
    elif errors and not tests:
        where, message = errors[0]
        problem = f"{NOTHING_COLLECTED}{where}: {message}"
    return Collection(
        tests=tests,
        errors=errors,
        problem=problem,
        python_files=python_files,
        doctest_modules=doctest_modules,
        seconds=seconds,
        unimported=unimported,
    )


def _error_location(nodeid: str, root: Path) -> str:
    """Where a collection error happened: a directory's failure is its conftest.py's."""
    if not nodeid.endswith(".py") and (root / nodeid / "conftest.py").is_file():
        return f"{nodeid}/conftest.py" if nodeid else "conftest.py"
    return nodeid or "conftest.py"


_PREIMPORTED = "ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning"
"""A filter for fork-server runs only: pytest warns that it cannot rewrite the asserts of the plugins the
server imported before it, a warning ``python -m pytest`` never gives (it marks them first), and which
``filterwarnings = error`` - common in maintained projects - would turn into a failed run. Every other
warning is the project's own business. (Which warnings a pre-imported pytest misses in earnest - a plugin's
import warning, which under ``error`` stops ``python -m pytest`` - shows as collections that differ.)"""


def _fresh_reason_from_config(events: list[dict[str, Any]]) -> str:
    """Why the project's own configuration rules out a pre-imported pytest (empty: it does not)."""
    config = next((event for event in events if event.get("event") == "config"), {})
    addopts = [str(option) for option in config.get("addopts", ())]
    if any(option == "-p" or (option.startswith("-p") and not option.startswith("--")) for option in addopts):
        return "the project's pytest addopts load a plugin with -p, which must be imported before the others"
    return ""


def _preloaded_reason(forked_events: list[dict[str, Any]]) -> str:
    """Why a pre-imported pytest cannot test this project: it imported the project's own package before
    any test (pytest imports pluggy and iniconfig; a plugin may import more), so a forked run would test
    that package as the server found it, never the candidate (empty: it did not)."""
    config = next((event for event in forked_events if event.get("event") == "config"), {})
    preloaded = [str(name) for name in config.get("preloaded", ())]
    if not preloaded:
        return ""
    names = ", ".join(f"`{name}`" for name in preloaded)
    return f"pytest itself imports {names}, this project's own code, before any test"


def _signature(collection: Collection) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (
        tuple(sorted(test.nodeid for test in collection.tests)),
        tuple(sorted(where for where, _ in collection.errors)),
    )


_IMPORTED_FROM = re.compile(r"cannot import name '[^']+' from '([\w.]+)' \(([^)]+)\)")
_NOT_FOUND = re.compile(r"No module named '([\w.]+)'")


def installed_elsewhere(message: str, root: Path, python: str = sys.executable) -> str | None:
    """What to do when a collection error says the tests imported one of the workspace's own packages from
    outside it (another installed copy: ``cannot import name 'x' from 'pkg.mod' (/site-packages/...)``) or
    could not import it at all (a ``src/`` layout that is not installed): the project is not installed in
    the environment of ``python``, which runs its tests. None when the error is about something else."""
    found = _IMPORTED_FROM.search(message)
    either = found or _NOT_FOUND.search(message)
    top = either[1].split(".", 1)[0] if either is not None else ""
    local = next(
        (
            path
            for base in (root, root / "src")
            for path in (base / top, base / f"{top}.py")
            if top and (path.is_file() or (path / "__init__.py").is_file())
        ),
        None,
    )
    if local is None:
        return None
    if found is None and not _has_module(local, either[1].split(".")[1:] if either is not None else []):
        return None  # the package is there and its module is not: the workspace lacks it (deleted, renamed)
    if found is not None:
        elsewhere = Path(found[2])
        installed = "site-packages" in elsewhere.parts  # a venv inside the workspace is still elsewhere
        if not installed and (not elsewhere.is_absolute() or root.resolve() in elsewhere.resolve().parents):
            return (
                None  # imported from the workspace (a path in the shadow is reported relative): a real error
            )
        imported = f"imported `{top}` from {elsewhere.parent}, not from this workspace's"
    else:
        imported = f"could not import `{top}`, though this workspace has it in"
    return (
        f"The tests {imported} {local.relative_to(root).as_posix()}: the project is not installed in the "
        f"environment that runs its tests ({python}). Install it there (`{python} -m pip install -e .`), "
        "or set `python` to the interpreter of the project's own environment."
    )


def _has_module(package: Path, inner: list[str]) -> bool:
    """Whether the workspace's ``package`` (a directory or a module file) holds the module ``inner`` names
    (``["io", "json"]``: ``package/io/json.py`` or ``package/io/json/``); the package itself when empty."""
    if not inner:
        return True
    where = package.joinpath(*inner) if package.is_dir() else None
    return where is not None and (where.with_suffix(".py").is_file() or where.is_dir())


_FILTER_MODULE = re.compile(r"Failed to import filter module '([\w.]+)'")


def not_installed(message: str, root: Path, python: str = sys.executable) -> str | None:
    """What to do when the tests could not import a third-party module (``No module named 'freezegun'``, or
    a ``filterwarnings`` entry naming a warning class of a package that is not there): the project's test
    dependencies are not installed where its tests run. None when the module is the workspace's own (see
    :func:`installed_elsewhere`) or the error is about something else."""
    found = _NOT_FOUND.search(message) or _FILTER_MODULE.search(message)
    if found is None:
        return None
    top = found[1].split(".", 1)[0]
    for base in (root, root / "src", root / "tests", root / "test"):
        if (base / f"{top}.py").is_file() or (base / top).is_dir():
            return None  # a module of the workspace: a path problem, not a missing install
    said = f"`{top}` is not installed in the environment that runs the tests ({python})"
    sibling = _in_repository(root, top)
    if sibling is None:
        return (
            f"{said}: install the project's test dependencies there, or set `python` to the interpreter of "
            "the project's own environment."
        )
    # A monorepo member whose pytest `pythonpath` (or conftest.py) reaches a sibling with "../a/src": the
    # tests run in a copy of this project alone, where that path leads nowhere.
    holder = next(
        (d for d in sibling.parents if any((d / name).is_file() for name in ("pyproject.toml", "setup.py"))),
        sibling.parent,
    )
    project = os.path.relpath(holder, root)
    return (
        f"{said}; the repository has it beside this project, in {os.path.relpath(sibling, root)}, but the "
        "tests run in a copy of this project alone, where a path out of it (pytest's `pythonpath`, a "
        f"conftest.py's sys.path) leads nowhere. Install it there (`{python} -m pip install -e {project}`), "
        "or set `python` to an interpreter that has it."
    )


def _in_repository(root: Path, top: str) -> Path | None:
    """Where the repository around ``root`` holds the package or module ``top`` outside ``root``: in one of
    the directories above it up to the repository's top, in their ``src/``, or in a sibling project's (a
    monorepo's ``packages/a/src/alib``); None when nowhere (or not in a repository)."""
    from ..config import repository_top

    repository = repository_top(root)
    if repository is None or repository == root.resolve():
        return None
    above = root.resolve()
    while above != repository:
        above = above.parent
        bases = [above, above / "src"]
        with contextlib.suppress(OSError):
            bases += [
                child / part for child in sorted(above.iterdir()) if child.is_dir() for part in ("", "src")
            ]
        for base in bases:
            if base.is_relative_to(root.resolve()):
                continue
            for path in (base / top, base / f"{top}.py"):
                if (path / "__init__.py").is_file() or path.is_file():
                    return path
    return None


# Options that a project's addopts commonly hold, by the plugin that provides them.
_PLUGIN_OPTIONS = (
    ("--cov", "pytest-cov"),
    ("--no-cov", "pytest-cov"),
    ("-n", "pytest-xdist"),
    ("--numprocesses", "pytest-xdist"),
    ("--dist", "pytest-xdist"),
    ("--timeout", "pytest-timeout"),
    ("--reruns", "pytest-rerunfailures"),
    ("--benchmark", "pytest-benchmark"),
    ("--asyncio-mode", "pytest-asyncio"),
    ("--mypy", "pytest-mypy"),
    ("--hypothesis", "hypothesis"),
)


# Marks that a project's tests or conftest.py commonly use, by the plugin that registers them.
_PLUGIN_MARKS = {
    "no_cover": "pytest-cov",
    "timeout": "pytest-timeout",
    "asyncio": "pytest-asyncio",
    "flaky": "pytest-rerunfailures",
    "django_db": "pytest-django",
    "benchmark": "pytest-benchmark",
    "freeze_time": "pytest-freezer",
}
_UNKNOWN_MARK = re.compile(r"Unknown pytest\.mark\.(\w+)")


def missing_plugin(problem: str, python: str = sys.executable) -> str | None:
    """What to do when pytest refused the project's own options (``unrecognized arguments: --cov=pkg``) or
    marks (``Unknown pytest.mark.no_cover``, an error under ``filterwarnings = error``): a plugin the project
    relies on is not installed where the tests run. None for another problem (or a mark of no plugin
    known here: a typo is as likely)."""
    if "unrecognized arguments:" in problem:
        options = problem.split("unrecognized arguments:", 1)[1].split()
        plugins = sorted(
            {plugin for option in options for name, plugin in _PLUGIN_OPTIONS if _is(option, name)}
        )
        uses = "options"
    elif (mark := _UNKNOWN_MARK.search(problem)) is not None and mark[1] in _PLUGIN_MARKS:
        plugins, uses = [_PLUGIN_MARKS[mark[1]]], f"the mark `{mark[1]}`"
    else:
        return None
    which = f" ({', '.join(plugins)})" if plugins else ""
    return (
        f"The project uses {uses} of a plugin{which} that is not installed in the environment that runs its "
        f"tests ({python}): install it there, or set `python` to the interpreter of the project's own "
        "environment."
    )


def _is(option: str, name: str) -> bool:
    """Whether ``option`` as written (``--cov=pkg``, ``--cov-report=html``, ``-n4``) is ``name`` or one of
    its family."""
    if name.startswith("--"):
        return option == name or option.startswith((f"{name}=", f"{name}-"))
    return option.startswith(name)


_EXCEPTION_LINE = re.compile(r"^(E\s+)?([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning))\b:?(.*)$")


_SUMMARY = re.compile(r"^=+|^\d+ (tests?|errors?|passed|failed|skipped)\b|\bin \d+(\.\d+)?s\b")


def _continues(line: str) -> bool:
    """Whether a line after an exception's own line goes on with its message (pluggy's lines say which
    argument of a hook it refused) rather than starting a traceback or pytest's summary."""
    return not line.startswith(
        ("File ", "Traceback", "E ", "^", "During", "The above")
    ) and not _SUMMARY.search(line)


def _one_line(text: str, root: Path) -> str:
    """The line of pytest's output that says what went wrong, with the shadow's paths made relative:
    pytest's own ``ERROR:`` line, else the last exception line (``ZeroDivisionError: ...``)."""
    text = text.replace(f"{root}/", "").replace(str(root), ".")
    # An exception pytest did not expect is printed line by line behind "INTERNALERROR>".
    lines = [line.removeprefix("INTERNALERROR>").strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    conftest = next((line for line in lines if "while loading conftest" in line), "")
    for i, line in enumerate(lines):
        if line.startswith("ERROR:") and "while loading conftest" not in line:
            said = line.removeprefix("ERROR:").strip()
            if said.startswith("usage:"):  # argparse's usage line; what is wrong is on the "error:" line
                said = next(
                    (after.split(" error: ", 1)[1] for after in lines[i:] if " error: " in after), said
                )
            return said[:500]
    exception = ""
    for i, line in enumerate(lines):
        match = _EXCEPTION_LINE.match(line)
        if match and not match.group(2).startswith("_pytest."):
            exception = f"{match.group(2)}{':' if match.group(4) else ''}{match.group(4)}".strip()
            # The lines after an uncaught exception's own line continue its message (pluggy's say
            # which argument of a hook it refused); a traceback's lines do not.
            after = list(itertools.takewhile(_continues, lines[i + 1 : i + 3]))
            exception = " ".join([exception, *after])
        elif line.startswith("_pytest.config.ConftestImportFailure:"):
            exception = line.removeprefix("_pytest.config.ConftestImportFailure:").strip()
    if conftest:
        where = re.search(r"conftest '([^']+)'", conftest)
        named = where.group(1) if where else "conftest.py"
        return f"{named} raised at import: {exception or conftest}"[:500]
    return (exception or (lines[-1] if lines else ""))[:500]
