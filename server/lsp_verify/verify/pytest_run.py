"""The test stage: run selected pytest node ids (and the edited module's doctests) in a shadow.

Runs go through the pytest fork server (``_worker.py pytest``): pytest and the installed plugins are
imported once, and each run is a forked child with its own process group, CPU limit and deadline, so a
candidate never pays pytest's start-up (measured: ~1.9 s for a plain ``pytest`` process with this venv's
plugins, ~0.15 s for a forked run; see bench/verification.py). Each run writes one JSON line per test
event to a file, so a run killed at its deadline still tells which tests finished and which one hung.

After the run the child records where the edited module was imported from; a run in which it came from
the user's tree (an installed or editable copy winning over the shadow) cannot pass.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..cancel import CancelToken
from .sandbox import WorkerError, WorkerProcess
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

    @property
    def by_nodeid(self) -> dict[str, TestOutcome]:
        return {outcome.nodeid: outcome for outcome in self.outcomes}


def pytest_args(root: Path, node_ids: Sequence[str], doctest_file: str | None) -> list[str]:
    """Arguments for one run: no cache provider (it would write .pytest_cache), fixed rootdir."""
    args = ["-p", "no:cacheprovider", "-q", "--no-header", "--color=no", f"--rootdir={root}"]
    if doctest_file is not None:
        args += ["--doctest-modules", doctest_file]
    return [*args, *node_ids]


class PytestRunner:
    """Runs tests in shadows through one pre-imported fork server; one run at a time."""

    def __init__(self, worker: WorkerProcess, shadows: ShadowRoot, timeout_s: float) -> None:
        self._worker = worker
        self._shadows = shadows
        self._timeout_s = timeout_s

    def run(
        self,
        shadow: Shadow,
        node_ids: Sequence[str],
        doctest_file: str | None,
        original_file: Path,
        cancel: CancelToken,
    ) -> TestRun:
        result_file = self._shadows.scratch("pytest-result")
        log_file = self._shadows.scratch("pytest-log")
        request = {
            "op": "pytest",
            "cwd": str(shadow.root),
            "args": pytest_args(shadow.root, node_ids, doctest_file),
            "result_file": str(result_file),
            "log_file": str(log_file),
            "timeout": self._timeout_s,
            "edited_file": str(shadow.edited),
            "forbidden_file": str(original_file),
        }
        try:
            try:
                answer = self._worker.request(request, cancel)
            except WorkerError as exc:
                return TestRun((), problem=f"the test runner failed: {exc}")
            events = _read_events(result_file)
            log = _read_text(log_file)
        finally:
            result_file.unlink(missing_ok=True)
            log_file.unlink(missing_ok=True)
        timed_out = answer.get("status") == "timeout"
        outcomes: dict[str, TestOutcome] = {}
        started: list[str] = []
        collect_errors: list[tuple[str, str]] = []
        leaked: list[str] = []
        for event in events:
            kind = event.get("event")
            if kind == "start":
                started.append(str(event["nodeid"]))
            elif kind == "report":
                nodeid = str(event["nodeid"])
                previous = outcomes.get(nodeid)
                # A teardown error after a passed call turns the test into an error; never the reverse.
                if previous is None or previous.outcome in ("passed", "skipped"):
                    outcomes[nodeid] = TestOutcome(nodeid, event["outcome"], str(event.get("message", "")))
            elif kind == "collect_error":
                collect_errors.append((str(event["nodeid"]) or "conftest", str(event.get("message", ""))))
            elif kind == "imports":
                leaked += [str(path) for path in event.get("leaked", [])]
        if timed_out:
            for nodeid in started:
                if nodeid not in outcomes:
                    outcomes[nodeid] = TestOutcome(
                        nodeid, "timeout", f"still running after {self._timeout_s:g} s (killed)"
                    )
            if not started:
                outcomes["<session>"] = TestOutcome(
                    "<session>", "timeout", f"collection still running after {self._timeout_s:g} s"
                )
        exit_code = int(answer.get("exit", -1))
        problem = ""
        if not timed_out and exit_code in _BROKEN_EXIT_CODES and not collect_errors:
            collect_errors.append(("pytest", _last_lines(log) or f"pytest exited with code {exit_code}"))
        if not timed_out and (exit_code < 0 or exit_code == 70):
            problem = f"the test run crashed (exit {exit_code}): {_last_lines(log)}"
        return TestRun(
            outcomes=tuple(outcomes.values()),
            collect_errors=tuple(collect_errors),
            exit_code=exit_code,
            timed_out=timed_out,
            leaked_imports=tuple(sorted(set(leaked))),
            problem=problem,
            log=log[-4000:],
            seconds=float(answer.get("seconds", 0.0)),
        )


def failure_summary(message: str) -> str:
    """One line for a failed test's message: for a doctest, the example with what it expected and got."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if not lines[-1].endswith(("DocTestFailure", "UnexpectedException")):
        return lines[-1].strip()
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


def _last_lines(text: str, count: int = 4) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])[:800]
