"""The guards of a change that ``lsp-verify check`` runs over a whole project, beside each function's.

Nearby tests are found by name, and a test can reach a function without naming it: through a fixture, a
re-export under another name, or another function of the module that calls it. So a trusted check of a
change also runs the project's whole test suite on it once (:func:`suite_guard`, bounded by
``suite_guard_timeout_s``): a test that fails now, that no function's own check ran, and that passes with the
file as the base has it, is charged to the changed function whose revert alone makes it pass again, or to
the file (``<module>``) when no single revert does (a change outside any function, or several together).
A test that fails alone with the base too may need the tests before it (a registry an earlier test fills):
it is run in the suite's order without the change (:func:`_in_order`), and fails the file when it passes
there. A change that stops tests from being collected at all (a module-level import that fails) breaks them
without any test failing: :func:`collection_guard` compares the collection with the base revision's, with
or without the suite guard, and fails the file whose base collects what the change does not. The modules
that import a change are type-checked with it (:func:`type_guard`): an error the change adds there is
charged to the function whose revert removes it. A changed file that holds no function to check (a data
file, a deleted module, conftest.py, a test module) goes through the guards alone, and fails as a whole
when putting it back as the base has it is what the tests need.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .cancel import CancelToken
from .headless import StatusSink, def_line, is_test_file, relpath_in
from .report import FunctionReport, RunReport
from .syntax.target import EditTarget
from .verify.shadow import Content, mirrored
from .verify.types import TestOutcome

if TYPE_CHECKING:
    from .verify.cascade import Verifier
    from .verify.mypy_check import MypyError, MypyRun
    from .verify.pytest_run import Collection, TestRun


FAILING = frozenset({"failed", "error", "timeout"})


@dataclasses.dataclass(frozen=True)
class FileToCheck:
    """A Python source file whose functions ``check`` verifies, as it is now and at the base."""

    path: Path
    relpath: str
    text: str
    base_text: str | None
    """The file in the base revision (None: a new file, or no git repository)."""
    lines: frozenset[int] | None = None
    """0-based lines whose functions to check; None means every function."""
    changed_only: bool = False

    @functools.cached_property
    def key(self) -> str:
        """The text normalised as a candidate's (:func:`~lsp_verify.syntax.splice.normalise`): computed
        once for all the file's functions."""
        from .syntax.splice import normalise

        return normalise(self.text)


MAX_SCAN_FILES = 5000
"""How far the scans for the modules and members that import a change read (:func:`_dependents`,
:func:`lsp_verify.monorepo.importers`): a repository of more Python files is not read for them."""


@dataclasses.dataclass(frozen=True, eq=False)
class Job:
    """One function to check: where it is now and the text it is judged against."""

    item: FileToCheck
    relpath: str
    """Relative to the project's root (what pytest and the verifier are given)."""
    target: EditTarget
    baseline: str
    """The file with just this function as the base has it (see :func:`.check.function_baseline`)."""
    is_new: bool
    shown: str = ""
    """Relative to the report's root (what the user is shown); empty: ``relpath``."""


@dataclasses.dataclass(frozen=True)
class Change:
    """A changed file as the guards see it (:func:`collection_guard`, :func:`suite_guard`): what it holds
    now and at the base - source text, or the bytes of a file that is not a Python source; None: absent (the
    change deletes it, or adds it) - and, for a Python source, the functions checked in it."""

    path: Path
    now: Content
    base: Content
    jobs: tuple[Job, ...] = ()

    def as_base(self, base_name: str) -> str:
        """The file as the base has it, for a message: "this file as HEAD has it"."""
        if self.base is None:
            return "without this file, which the change adds"
        if self.now is None:
            return f"with this file, which the change deletes, as {base_name} has it"
        return f"with this file as {base_name} has it"


def suite_guard(
    verifier: Verifier,
    changed: list[Change],
    report: RunReport,
    base_name: str,
    timeout_s: float,
    status: StatusSink,
    cancel: CancelToken,
    collection_lost: Lost | None = None,
) -> TestRun | None:
    """The whole suite on the change (see the module docstring); adds what it finds to ``report``.
    ``collection_lost``: what the collection guard found the change stops from being collected. Returns the
    suite's run with the change (None: it did not run)."""
    from .verify.cascade import VerifyError

    if not changed:
        return None
    first = changed[0]
    status.started("running the whole test suite on the change (for tests that reach a function unnamed)")
    try:
        suite = verifier.suite(first.path, first.now, cancel)
        if not suite:
            if any(not change.jobs for change in changed):
                report.notes.append(
                    "no test is collected here: what the change to files without functions broke is unknown"
                )
            return None
        also = {change.path: change.now for change in changed[1:]}  # staged texts, not the work tree's
        now, unfinished = _run_through(verifier, first.path, first.now, suite, also, timeout_s, cancel)
    except VerifyError as exc:
        # Said once: the collection guard's failure already says why, and what to do is to undo the change.
        why = "its tests cannot be collected with it (above)" if collection_lost else str(exc)
        report.notes.append(f"the whole test suite was not run on the change: {why}")
        return None
    if unfinished and not now.outcomes:
        report.notes.append(
            f"the whole test suite was not run on the change ({unfinished}; suite_guard_timeout_s): only the "
            "tests near each function guarded it"
        )
        return now
    for nodeid in now.stopped:
        report.notes.append(
            f"the whole test suite stopped in {nodeid}; run again on its own: {_outcome_in(now, nodeid)}"
        )
    if unfinished:
        report.notes.append(
            f"the whole test suite did not finish on the change ({unfinished}; suite_guard_timeout_s): the "
            "tests that did not run guarded only the functions they are near"
        )
    # Failing tests a function's check already failed for; one it forgave (failing before too, as that
    # function's own baseline had the rest of the change in it) is looked at again.
    caught = {nodeid for f in report.functions if f.status != "pass" for nodeid in f.tests_failed}
    failing = tuple(o.nodeid for o in now.outcomes if o.outcome in FAILING and o.nodeid not in caught)
    ran = len(now.outcomes)
    if collection_lost and not ran:  # pytest stops at a collection error before running any test
        report.notes.append(
            "the whole test suite was not run on the change: its tests cannot be collected with it (above)"
        )
        return now
    report.notes.append(
        f"the whole test suite ({ran} test{'s' if ran != 1 else ''}) also ran on the change"
        + (f": {len(failing)} failing that no function's own check ran" if failing else "")
    )
    if now.collect_errors and not collection_lost:
        where, message = now.collect_errors[0]
        report.notes.append(f"part of the whole test suite did not run ({where}): {message}")
    if not failing:
        return now
    at_base = _base_tests(verifier, changed, cancel)
    added = _added(at_base, failing)
    if added:
        # Not in the base at all: nothing to put back, and a run that names them there finds nothing (pytest
        # then runs none of the tests it is asked for).
        failing = tuple(nodeid for nodeid in failing if nodeid not in added)
        report.functions.extend(_added_failures(added, base_name, now))
    if not failing:
        return now
    unexplained = failing
    now_of: dict[Path, Content] = {change.path: change.now for change in changed}
    if len(changed) > 1:
        # One run with the whole change undone tells the tests it broke from those that failed before it.
        try:
            undone = _rerun(
                verifier,
                first.path,
                first.base,
                failing,
                now.stopped,
                _undone(changed[1:]),
                timeout_s,
                cancel,
            )
        except VerifyError as exc:
            report.notes.append(f"the whole test suite's failures were not traced to the change: {exc}")
            return now
        failing = _not_failing(undone, failing)
    explained: set[str] = set()
    deadline = time.monotonic() + timeout_s
    for change in changed:
        cancel.raise_if_cancelled()
        if not failing or time.monotonic() > deadline:
            break
        relpath = relpath_in(change.path, verifier.root)
        rest = {path: content for path, content in now_of.items() if path != change.path}
        try:
            base = _rerun(verifier, change.path, change.base, failing, now.stopped, rest, timeout_s, cancel)
            broken = _not_failing(base, failing)
            explained.update(broken)
            blamed: set[str] = set()
            for job in change.jobs:
                if not broken or job.baseline == change.now:  # an unchanged function broke nothing
                    continue
                reverted = _rerun(
                    verifier, change.path, job.baseline, broken, now.stopped, rest, timeout_s, cancel
                )
                fixed = _not_failing(reverted, broken)
                if fixed:
                    blamed.update(fixed)
                    _charge(report, job, fixed, now, _fares(reverted, fixed[0]), base_name)
        except VerifyError as exc:
            report.notes.append(f"the whole test suite's failures were not traced to {relpath}: {exc}")
            continue
        left = tuple(nodeid for nodeid in broken if nodeid not in blamed)
        if left:
            alone = ", and no one function's change alone breaks it" if change.jobs else ""
            report.functions.append(
                _suite_failure(
                    relpath, left, f"{_fares(base, left[0])} {change.as_base(base_name)}{alone}", now
                )
            )
    whole = tuple(nodeid for nodeid in failing if nodeid not in explained)
    if whole and len(changed) > 1:  # known to pass with the change undone: never left unsaid
        why = _untraced(deadline, "breaks it", f"{timeout_s:g} s (suite_guard_timeout_s)")
        report.functions.append(
            _suite_failure(
                relpath_in(first.path, verifier.root),
                whole,
                f"{_fares(undone, whole[0])} with the whole change "
                f"({named_changes(changed, verifier.root)}) as {base_name} has it, " + why,
                now,
            )
        )
    reported = set(explained) | (set(whole) if len(changed) > 1 else set())
    left = tuple(nodeid for nodeid in unexplained if nodeid not in reported)
    if left:
        _in_order(verifier, changed, suite, left, at_base, now, report, base_name, deadline, cancel)
    # A function that passed lists the tests it forgave (failing before it too): they checked nothing.
    charged = {nodeid for f in report.functions if f.status != "pass" for nodeid in f.tests_failed}
    old = [nodeid for nodeid in unexplained if nodeid not in charged]
    if old:
        report.notes.append(_checked_nothing(now, old, base_name))
    return now


def _checked_nothing(now: TestRun, old: list[str], base_name: str) -> str:
    """What the tests that fail with and without the change say: nothing of it. Failing here and passing
    in the user's own runs, they are where this environment differs from theirs (a test reading the home
    directory, the network, a tool that is not installed) - a change they would catch passed unseen."""
    shown = f"{old[0]}: {_outcome_in(now, old[0])}" + (", ..." if len(old) > 1 else "")
    tests, fail, they = ("tests", "fail", "they pass") if len(old) > 1 else ("test", "fails", "it passes")
    return (
        f"{len(old)} {tests} of the whole suite {fail} here with the change and as {base_name} has it, so "
        f"checked nothing of it ({shown}); if {they} in your own `python -m pytest`, the sandbox differs "
        "from your environment there"
    )


def _in_order(
    verifier: Verifier,
    changed: list[Change],
    suite: tuple[str, ...],
    failing: tuple[str, ...],
    at_base: tuple[set[str], set[str]] | None,
    now: TestRun,
    report: RunReport,
    base_name: str,
    deadline: float,
    cancel: CancelToken,
) -> None:
    """Tests that fail in the whole suite with the change and fail alone without it (``failing``), run
    again without the change in the suite's order: those that pass there depend on the tests before them
    (a registry, a cache, a module's state that an earlier test fills) and the change broke them in the
    suite - run alone, they only looked as if they were failing before it. Within what is left of the
    suite guard's time (``deadline``), one run of the suite up to the last of them, without the change's
    own new tests (pytest runs none of the tests it is asked for when one is missing)."""
    from .verify.cascade import VerifyError
    from .verify.pytest_run import function_id

    if at_base is None:
        return
    if time.monotonic() > deadline:
        more = f" and {len(failing) - 1} more" if len(failing) > 1 else ""
        report.notes.append(
            f"{failing[0]}{more}, failing with the change and alone at {base_name} too, did not run in "
            f"the suite's order at {base_name} (suite_guard_timeout_s ran out): whether the change broke one "
            "that needs the tests before it is unknown"
        )
        return
    known, _ = at_base
    wanted = {function_id(nodeid) for nodeid in failing}
    last = max((index for index, nodeid in enumerate(suite) if nodeid in wanted), default=-1)
    prefix = tuple(nodeid for nodeid in suite[: last + 1] if nodeid in known)
    if not prefix:
        return
    first = changed[0]
    try:
        base, _ = _run_through(
            verifier,
            first.path,
            first.base,
            prefix,
            _undone(changed[1:]),
            max(deadline - time.monotonic(), 1.0),
            cancel,
        )
    except VerifyError as exc:
        report.notes.append(
            f"the whole test suite's failures were not run in its order without the change: {exc}"
        )
        return
    broken = _not_failing(base, failing)
    if not broken:
        return
    if len(changed) == 1:
        what = first.as_base(base_name)
    else:
        what = f"with the whole change ({named_changes(changed, verifier.root)}) as {base_name} has it"
    report.functions.append(
        _suite_failure(
            relpath_in(first.path, verifier.root),
            broken,
            f"{_fares(base, broken[0])} in the whole test suite {what} (alone it fails there too: it "
            "depends on the tests run before it)",
            now,
        )
    )


def _run_through(
    verifier: Verifier,
    path: Path,
    content: Content,
    node_ids: tuple[str, ...],
    also: dict[Path, Content],
    timeout_s: float,
    cancel: CancelToken,
) -> tuple[TestRun, str]:
    """``node_ids`` (test functions) run with ``path`` holding ``content``, as far as ``timeout_s`` allows.
    A test that stops the run - still running at the time limit, or the test process crashed in it (a change
    that loops without end, runs out of memory, crashes an extension) - is run again on its own within one
    run's time limit (``test_timeout_s``), for its own outcome; when it hangs or crashes there too, the tests
    after it run next, within ``timeout_s`` of their own (the stopped run spent it all waiting): at most
    :data:`_STOPS` times. One that finishes on its own was only the test running when a slow suite ran out
    of time: the rest is left unrun. Returns the runs as one (:attr:`TestRun.stopped`: the tests that
    stopped a run) and why some tests did not run (empty: all ran)."""
    from .verify.pytest_run import function_ids

    runs: list[TestRun] = []
    stopped: list[str] = []
    left = node_ids
    while True:
        run = verifier.run_tests(path, content, left, cancel, timeout_s=timeout_s, also=also)
        runs.append(run)
        if not run.stopped:
            why = f"it did not finish within {timeout_s:g} s" if run.timed_out else run.problem
            return _merged(runs, stopped), why
        again = verifier.run_tests(path, content, function_ids(run.stopped), cancel, also=also)
        runs.append(again)
        if run.timed_out and not again.timed_out:
            # It finishes on its own: the suite is slow, not held up by it.
            return _merged(runs, stopped), f"it did not finish within {timeout_s:g} s"
        stopped += run.stopped
        done = set(function_ids(o.nodeid for r in runs for o in r.outcomes))
        left = tuple(node_id for node_id in node_ids if node_id not in done)
        if not left:
            return _merged(runs, stopped), ""
        if len(stopped) >= _STOPS:
            return _merged(runs, stopped), f"{len(left)} test functions left after {len(stopped)} stopped it"


_STOPS = 3
"""How many tests may stop the whole suite's run (each costs up to ``suite_guard_timeout_s`` and
``test_timeout_s``) before the rest is left unrun."""


def _rerun(
    verifier: Verifier,
    path: Path,
    content: Content,
    node_ids: tuple[str, ...],
    stuck: tuple[str, ...],
    also: dict[Path, Content],
    timeout_s: float,
    cancel: CancelToken,
) -> TestRun:
    """``node_ids`` (from the whole suite's run) again with ``path`` holding ``content``: the ``stuck``
    among them (tests that stopped the suite's run) in a run of their own within one run's time limit, so
    that one still hanging there does not hold up the rest for ``timeout_s``."""
    from .verify.pytest_run import function_ids

    hung = set(function_ids(stuck))
    functions = function_ids(node_ids)
    plain = tuple(node_id for node_id in functions if node_id not in hung)
    held = tuple(node_id for node_id in functions if node_id in hung)
    runs = [_run_through(verifier, path, content, plain, also, timeout_s, cancel)[0]] if plain else []
    if held:
        runs.append(verifier.run_tests(path, content, held, cancel, also=also))
    return _merged(runs, [])


def _merged(runs: list[TestRun], stopped: list[str]) -> TestRun:
    """Runs of the same workspace as one: a test's last outcome stands (a stopped test's own run after the
    run it stopped)."""
    from .verify.pytest_run import TestRun

    outcomes: dict[str, TestOutcome] = {}
    for run in runs:
        outcomes.update((o.nodeid, o) for o in run.outcomes if o.nodeid != "<session>")
    last = runs[-1] if runs else TestRun(())
    return dataclasses.replace(
        last,
        outcomes=tuple(outcomes.values()),
        collect_errors=runs[0].collect_errors if runs else (),
        leaked_imports=tuple(sorted({path for run in runs for path in run.leaked_imports})),
        seconds=sum(run.seconds for run in runs),
        stopped=tuple(stopped),
    )


def _fares(run: TestRun, nodeid: str) -> str:
    """How ``nodeid``, which does not fail in ``run``, fares there: "it passes" or "it is skipped" (also an
    expected failure's outcome) - as its function's cases do, when ``run`` names it otherwise."""
    from .verify.pytest_run import function_id

    outcomes = [o.outcome for o in run.outcomes if function_id(o.nodeid) == function_id(nodeid)]
    outcome = run.by_nodeid[nodeid].outcome if nodeid in run.by_nodeid else min(outcomes, default="passed")
    return "it passes" if outcome == "passed" else "it is skipped"


def _outcome_in(run: TestRun, nodeid: str) -> str:
    """How a test fared in ``run``, as a message says it: "it passes", or why it failed (a test that
    stopped the whole suite's run, run again on its own; one failing with and without a change)."""
    outcome = run.by_nodeid.get(nodeid)
    if outcome is None or outcome.outcome == "passed":
        return "it passes"
    from .verify.pytest_run import failure_summary

    return failure_summary(outcome.message) or outcome.outcome


def _untraced(deadline: float, does: str, budget: str) -> str:
    """Why a failure is the whole change's: no one file's change alone ``does`` it, or the time to find the
    one (``budget``) ran out first."""
    if time.monotonic() <= deadline:
        return f"and no one file's change alone {does}"
    return f"not traced to one file within {budget}"


def named_changes(changes: list[Change], root: Path) -> str:
    """The changed files, for a message: the first three, and how many more."""
    files = ", ".join(relpath_in(change.path, root) for change in changes[:3])
    return files + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")


def _undone(changes: list[Change]) -> dict[Path, Content]:
    return {change.path: change.base for change in changes}


def _suite_failure(relpath: str, failed: tuple[str, ...], why: str, now: TestRun) -> FunctionReport:
    """The failure of ``relpath`` as a whole for the tests ``failed`` in the run ``now``, and ``why``."""
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return FunctionReport(
        relpath,
        "<module>",
        1,
        "fail",
        "tests",
        f"tests: {failed[0]} {_failed(now.by_nodeid[failed[0]])}{more}: {why}",
        tests_selected=failed,
        tests_failed=failed,
        details=_failure_lines(now, failed),
    )


_TYPE_GUARD_FILES = 200
"""At most this many modules that import the change are type-checked with it (:func:`type_guard`), those
beside the changed files first."""


def type_guard(
    verifier: Verifier,
    changed: list[Change],
    tests: frozenset[str],
    report: RunReport,
    base_name: str,
    status: StatusSink,
    cancel: CancelToken,
    changed_in: Path | None = None,
    through: Iterable[str] = (),
) -> None:
    """A change breaks code that no test runs: a caller of a function whose signature changed, a module that
    imports a name the change removes, a module-level statement mypy rejects - and each function's own
    check sees only its file, with the rest of the change in its baseline too. So mypy runs once over the
    changed modules and the modules that import them (:func:`~.syntax.imports.importers`) with the change,
    and once with the whole change undone; an error only the first run has, that no function's check
    already charged, is charged to the changed function whose revert alone removes it, else to the file
    (``<module>``) whose revert does, else to the change as a whole. ``changed_in``: the project the change
    is in, when it is not the verifier's (:class:`.monorepo.DependentGuard`): only the errors of the
    verifier's own modules that import it count (the changed modules are their project's to check, by its
    configuration); ``through``: the packages of a third project by which they import it - their modules that
    import those are checked too (``lib.make() -> core.Scale``: a change to ``Scale`` breaks a caller of
    ``make`` that never names ``core``)."""
    from .verify.mypy_check import added_errors

    root = verifier.root
    sources = [
        c for c in changed if c.path.suffix in (".py", ".pyi") and not _is_test_module(c.path, root, tests)
    ]
    if not sources:
        return
    dependents, more = _dependents(root, sources, tests, changed_in or root, frozenset(through))
    if changed_in is not None and not dependents:
        return
    if more < 0:
        report.notes.append(
            f"the repository has {-more} Python files: the modules that import the change were not looked "
            "for (mypy checked the changed modules alone)"
        )
    elif more:
        report.notes.append(
            f"{len(dependents) + more} modules import the changed ones: mypy checked the change in the "
            f"{len(dependents)} nearest (and the changed modules)"
        )
    importing = f"{len(dependents)} module{'s' if len(dependents) != 1 else ''} that import it"
    status.started(f"type-checking the change and the {importing}")
    now_of: dict[Path, Content] = {change.path: change.now for change in changed}
    files = [change.path for change in sources if change.now is not None] + dependents
    now = _type_check(verifier, files, now_of, cancel)
    if not any(run.errors or run.crashed for run in now.values()):
        return  # no error at all with the change: none is new
    base: dict[Path, MypyRun] = {}
    if not any(run.crashed for run in now.values()):
        at_base = [change.path for change in sources if change.base is not None] + dependents
        base = _type_check(verifier, at_base, _undone(changed), cancel)
    crashed = next((run.crashed for run in (*now.values(), *base.values()) if run.crashed), "")
    if crashed:
        report.notes.append(f"the modules that import the change were not type-checked with it: {crashed}")
        return
    new: dict[Path, list[MypyError]] = {}
    for path in files:
        # What a function's own check reported is its failure already ("line 3: message  [code]").
        charged = collections.Counter(
            shown.split(": ", 1)[-1]
            for f in report.functions
            if f.file == relpath_in(path, root)
            for shown in f.mypy_new_errors
        )
        errors = []
        for error in added_errors(
            base[path].errors if path in base else (), now[path].errors, same_lines=path in dependents
        ):
            shown = str(error).split(": ", 1)[-1]
            if charged[shown] > 0:
                charged[shown] -= 1
            else:
                errors.append(error)
        if errors and (changed_in is None or path in dependents):
            new[path] = errors
    deadline = time.monotonic() + _TRACE_BUDGET_S
    for change in sources:
        for job in change.jobs:
            if not new or job.baseline == change.now or time.monotonic() > deadline:
                continue
            cancel.raise_if_cancelled()
            overlays = {**now_of, change.path: job.baseline}
            reverted_job = _type_check(verifier, _with_sources(new, sources, overlays), overlays, cancel)
            gone = _gone(new, reverted_job, sources)
            if gone:
                _charge_types(report, job, gone, root, base_name)
        if not new:
            break
        if len(sources) == 1:  # the run with the change undone is the run with this file undone
            reverted, new = new, {}
        elif time.monotonic() <= deadline:
            cancel.raise_if_cancelled()
            overlays = {**now_of, change.path: change.base}
            reverted_file = _type_check(verifier, _with_sources(new, sources, overlays), overlays, cancel)
            reverted = _gone(new, reverted_file, sources)
        else:
            continue
        if reverted:
            _fail_file(report, relpath_in(change.path, root), reverted, root, change.as_base(base_name))
    if new:
        whole = f"with the whole change ({named_changes(changed, root)}) as {base_name} has it"
        _fail_file(report, relpath_in(sources[0].path, root), new, root, whole)


def _with_sources(
    new: Mapping[Path, list[MypyError]], sources: list[Change], overlays: Mapping[Path, Content]
) -> list[Path]:
    """The files of ``new`` and the changed modules present in ``overlays``: given by their paths in the
    shadow, never found through a relative ``mypy_path``, whose path would be the same in every shadow (see
    ``MypyChecker.check_files``)."""
    present = [change.path for change in sources if overlays.get(change.path) is not None]
    return list(dict.fromkeys([*new, *present]))


_TYPE_CHECK_ALONE = 20
"""When mypy cannot check the type guard's files in one run (two scripts of one module name, a module found
twice under two names), each is checked in a run of its own - up to this many files."""


def _type_check(
    verifier: Verifier, files: list[Path], overlays: Mapping[Path, Content], cancel: CancelToken
) -> dict[Path, MypyRun]:
    """mypy over ``files`` in one run (see :meth:`Verifier.type_check`), else one run each."""
    runs = verifier.type_check(files, overlays, cancel)
    if len(files) < 2 or len(files) > _TYPE_CHECK_ALONE or not any(run.crashed for run in runs.values()):
        return runs
    return {path: verifier.type_check([path], overlays, cancel)[path] for path in files}


def _is_test_module(path: Path, root: Path, tests: frozenset[str]) -> bool:
    relpath = relpath_in(path, root)
    return relpath in tests or is_test_file(relpath)


def _dependents(
    root: Path, sources: list[Change], tests: frozenset[str], sources_in: Path, through: frozenset[str]
) -> tuple[list[Path], int]:
    """The project's tracked modules (test modules aside) that import one of ``sources`` (files of the
    project at ``sources_in``: this one, or another that it imports), or a module of the packages
    ``through`` (by which it imports them), at most :data:`_TYPE_GUARD_FILES` of
    them, and how many more there are (negative: the repository has more than
    :data:`MAX_SCAN_FILES` Python files, this many, and none was read)."""
    from . import gitdiff
    from .syntax.imports import ModuleImports, imported_modules, importers
    from .verify.test_index import module_name, module_names

    top = gitdiff.repo_root(root)
    if top is None:
        return [], 0
    try:
        tracked = gitdiff.tracked_python_files(top)
    except gitdiff.GitError:
        return [], 0
    if len(tracked) > MAX_SCAN_FILES:
        return [], -len(tracked)
    changed = {name for change in sources for name in module_names(sources_in, change.path)} | through
    paths = {change.path for change in sources}
    # Read only files that name a changed module or a package above one: the rest cannot import it.
    words = {part for name in changed for part in name.split(".")}
    mentions = re.compile(rf"\b({'|'.join(map(re.escape, sorted(words)))})\b")
    files: dict[str, ModuleImports] = {}
    for relpath in tracked:
        path = top / relpath
        if not path.is_relative_to(root) or path in paths or not mirrored(path.relative_to(root)):
            continue
        if _is_test_module(path, root, tests):
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "import" not in text or not mentions.search(text):
            continue
        is_package = path.name == "__init__.py"
        imported = imported_modules(text, module_name(root, path), is_package)
        if imported is not None:
            files[str(path)] = ModuleImports(frozenset(module_names(root, path)), imported, is_package)
    near = {change.path.parent for change in sources}
    found = sorted(
        (Path(path) for path in importers(files, changed)), key=lambda p: (p.parent not in near, p)
    )
    return found[:_TYPE_GUARD_FILES], max(0, len(found) - _TYPE_GUARD_FILES)


def _gone(
    new: dict[Path, list[MypyError]], run: Mapping[Path, MypyRun], sources: list[Change]
) -> dict[Path, list[MypyError]]:
    """The errors of ``new`` that ``run`` (another mypy run of the same files) does not have; taken out of
    ``new``."""
    from .verify.mypy_check import added_errors

    gone: dict[Path, list[MypyError]] = {}
    for path, errors in list(new.items()):
        if run[path].crashed:
            continue
        same_lines = all(path != change.path for change in sources)
        vanished = added_errors(run[path].errors, errors, same_lines=same_lines)
        if vanished:
            gone[path] = vanished
            left = added_errors(vanished, errors, same_lines=same_lines)
            if left:
                new[path] = left
            else:
                del new[path]
    return gone


def _shown_errors(errors: Mapping[Path, list[MypyError]], root: Path) -> tuple[str, ...]:
    return tuple(f"{relpath_in(path, root)}: {error}" for path, found in errors.items() for error in found)


def _fail_file(
    report: RunReport, relpath: str, errors: Mapping[Path, list[MypyError]], root: Path, why: str
) -> None:
    """``relpath`` fails as a whole for the mypy ``errors`` (per file) that are gone ``why`` - unless it
    failed as a whole already (its tests cannot be collected, say): that reason stands."""
    if any(f.file == relpath and f.qualname == "<module>" and f.status == "fail" for f in report.functions):
        return
    shown = _shown_errors(errors, root)
    more = f" (and {len(shown) - 1} more)" if len(shown) > 1 else ""
    report.functions.append(
        FunctionReport(
            relpath,
            "<module>",
            1,
            "fail",
            "none",
            f"mypy: {shown[0]}{more}: not reported {why}",
            mypy_new_errors=shown,
        )
    )


def _charge_types(
    report: RunReport, job: Job, errors: Mapping[Path, list[MypyError]], root: Path, base_name: str
) -> None:
    """Turn ``job``'s report into a failure for the mypy ``errors`` that reverting it alone removes."""
    relpath, line = job.relpath, def_line(job.target) + 1
    shown = _shown_errors(errors, root)
    elsewhere = sorted({relpath_in(path, root) for path in errors} - {relpath})
    verb = "imports" if len(elsewhere) == 1 else "import"
    where = f" (found by type-checking {', '.join(elsewhere)}, which {verb} the change)" if elsewhere else ""
    for n, function in enumerate(report.functions):
        if (function.file, function.qualname, function.line) != (relpath, job.target.qualname, line):
            continue
        if function.status == "fail":  # its own reason stands; the errors its change adds are listed
            errors_now = function.mypy_new_errors + shown
            report.functions[n] = dataclasses.replace(function, mypy_new_errors=errors_now)
            return
        if function.status != "pass":
            return
        more = f" (and {len(shown) - 1} more)" if len(shown) > 1 else ""
        report.functions[n] = dataclasses.replace(
            function,
            status="fail",
            evidence="none",
            message=f"mypy: {shown[0]}{more}: not reported with {job.target.qualname} as {base_name} has "
            f"it{where}",
            mypy_new_errors=function.mypy_new_errors + shown,
        )
        return


_TRACE_BUDGET_S = 60.0
"""How long the collection guard looks for the one file whose change stops the tests from being collected,
once it knows that the change as a whole does (and the type guard for the function or file whose change
adds an error): a collection takes seconds, and a commit may delete a package of a hundred files."""


def collection_guard(
    verifier: Verifier,
    changed: list[Change],
    report: RunReport,
    base_name: str,
    cancel: CancelToken,
) -> Lost | None:
    """A change that stops tests from being collected breaks every one of them, whichever function they
    test: a module-level import that fails, a syntax error in a module every test file imports. When the
    collection with the change has errors (or files it could not import) that the collection with the whole
    change undone has not, the changed files are put back one at a time (those the error names first), and
    the first whose base collects what the change does not fails as a whole; when none does alone (a package
    deleted whole), the change fails as a whole. Returns what the change lost (None: nothing)."""
    first = changed[0]
    now = verifier.collection(first.path, first.now, cancel)
    if not (now.problem or now.errors or now.unimported):
        return None
    lost = None
    if len(changed) > 1:
        undone = verifier.collection(first.path, first.base, cancel, cached=False, also=_undone(changed[1:]))
        lost = _collection_lost(undone, now)
        if lost is None:
            return None  # the tests collected no better before the change
    deadline = time.monotonic() + _TRACE_BUDGET_S
    for change in sorted(
        changed, key=lambda change: not _named_in(change, verifier.root, " ".join(lost.each if lost else ()))
    ):
        found = collection_failure(verifier, change, now, base_name, cancel)
        if found is not None:
            report.functions.append(found[0])
            return found[1]
        if time.monotonic() > deadline:
            break
    if lost is not None:
        why = _untraced(deadline, "stops them", f"{_TRACE_BUDGET_S:g} s")
        report.functions.append(
            FunctionReport(
                relpath_in(first.path, verifier.root),
                "<module>",
                1,
                "fail",
                "tests",
                f"the tests cannot be collected with this change ({lost}); they are with the whole change "
                f"({named_changes(changed, verifier.root)}) as {base_name} has it, {why}",
            )
        )
    return lost


def failed_by_collection(report: RunReport, lost: Lost) -> None:
    """Once the change is known to stop tests from being collected (``lost``): a function
    that could not be checked for that reason (an error, exit 2, as for a broken environment) fails - the
    change breaks its tests (a function renamed, its old name still imported by them)."""
    report.functions[:] = [blamed_on_collection(function, lost) for function in report.functions]


def blamed_on_collection(function: FunctionReport, lost: Lost) -> FunctionReport:
    """``function`` failed, when it could not be checked because its tests cannot be collected in a file
    the change lost (one file's import error can stop others that import it); else as it is."""
    if (
        function.status == "error"
        and "cannot be collected" in function.message
        and any(where in function.message for where in lost.files())
    ):
        from .verify.cascade import FIX_COLLECTION, FIX_TEST_FILES

        message = function.message.removesuffix(f" {FIX_TEST_FILES}").removesuffix(f" {FIX_COLLECTION}")
        return dataclasses.replace(function, status="fail", message=f"with this change, {message}")
    return function


def _named_in(change: Change, root: Path, message: str) -> bool:
    """Whether ``message`` names ``change``'s file, by its path or as a module (``pkg.sub`` for
    ``pkg/sub/__init__.py``)."""
    relpath = relpath_in(change.path, root)
    module = relpath.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    return bool(message) and (relpath in message or f"'{module}'" in message or f"{module}." in message)


def collection_failure(
    verifier: Verifier, change: Change, now: Collection, base_name: str, cancel: CancelToken
) -> tuple[FunctionReport, Lost] | None:
    """The failure of ``change``'s file as a whole, and what was lost, when the collection with it as the
    base has it holds what ``now`` (the collection with the change) lost; None when ``now`` has no error to
    look into, or the base collection has the same (see :func:`collection_guard`)."""
    if not (now.problem or now.errors or now.unimported):
        return None
    cancel.raise_if_cancelled()
    lost = _collection_lost(verifier.collection(change.path, change.base, cancel, cached=False), now)
    if lost is None:
        return None
    return FunctionReport(
        relpath_in(change.path, verifier.root),
        "<module>",
        1,
        "fail",
        "tests",
        f"the tests cannot be collected with this change ({lost}); they are {change.as_base(base_name)}",
    ), lost


def _collection_lost(base: Collection, now: Collection) -> Lost | None:
    """What collects in ``base`` and not in ``now`` (None: nothing)."""
    if now.problem and not base.problem:
        return Lost((now.problem,))
    lost = tuple(
        f"{where}: {why}"
        for failed, known in ((now.errors, base.errors), (now.unimported, base.unimported))
        for where, why in failed
        if where not in {where for where, _ in known}
    )
    return Lost(lost) if lost else None


@dataclasses.dataclass(frozen=True)
class Lost:
    """What the base collects and the change does not: ``where: why`` of each file, or of the whole
    collection (:attr:`Collection.problem`). Said as its first, with how many more."""

    each: tuple[str, ...]

    def __str__(self) -> str:
        more = len(self.each) - 1
        return self.each[0] + (f" (and {more} more file{'s' if more > 1 else ''})" if more else "")

    def files(self) -> tuple[str, ...]:
        """The files lost. Where nothing at all collects ("no test could be collected; tests/test_x.py:
        ..."), the file named: a function's own check may have seen that file's error."""
        from .verify.pytest_run import NOTHING_COLLECTED

        return tuple(each.removeprefix(NOTHING_COLLECTED).split(": ", 1)[0] for each in self.each)


def _not_failing(run: TestRun, node_ids: tuple[str, ...]) -> tuple[str, ...]:
    """Those of ``node_ids`` (from another run) that do not fail in ``run``: they pass, or are skipped or
    expected to fail there (a change that takes a skip off a failing test breaks the suite as surely as one
    that breaks a passing test). A parametrised case whose id ``run`` does not give (ids that differ from run
    to run: :func:`~.verify.pytest_run.function_ids`) does not fail when no case of its function does; one
    whose function ``run`` did not run at all is not known not to fail."""
    from .verify.pytest_run import function_id

    outcomes = run.by_nodeid
    cases: dict[str, list[str]] = {}
    for outcome in run.outcomes:
        cases.setdefault(function_id(outcome.nodeid), []).append(outcome.outcome)

    def holds(node_id: str) -> bool:
        if node_id in outcomes:
            return outcomes[node_id].outcome not in FAILING
        found = cases.get(function_id(node_id), [])
        return bool(found) and not any(outcome in FAILING for outcome in found)

    return tuple(n for n in node_ids if holds(n))


def _base_tests(
    verifier: Verifier, changed: list[Change], cancel: CancelToken
) -> tuple[set[str], set[str]] | None:
    """The test functions the base has and the files that could not be collected there (not known to lack
    any), from pytest's collection with the whole change undone; None when nothing could be collected."""
    from .verify.pytest_run import function_ids

    first = changed[0]
    base = verifier.collection(first.path, first.base, cancel, cached=False, also=_undone(changed[1:]))
    if base.problem:
        return None
    known = set(function_ids(test.nodeid for test in base.tests))
    return known, {where for where, _ in (*base.errors, *base.unimported)}


def _added(at_base: tuple[set[str], set[str]] | None, failing: tuple[str, ...]) -> tuple[str, ...]:
    """Those of ``failing`` (tests that fail with the change) that the base (``at_base``: see
    :func:`_base_tests`) does not have: the change adds them (a test file, a test function, a doctest in a
    text file), failing."""
    from .verify.pytest_run import function_id

    if at_base is None:
        return ()
    known, unknown = at_base
    return tuple(
        nodeid
        for nodeid in failing
        if function_id(nodeid) not in known and nodeid.split("::", 1)[0] not in unknown
    )


def _added_failures(added: tuple[str, ...], base_name: str, now: TestRun) -> list[FunctionReport]:
    """The failure of each test file for the failing tests the change adds to it (``added``)."""
    by_file: dict[str, list[str]] = {}
    for nodeid in added:
        by_file.setdefault(nodeid.split("::", 1)[0], []).append(nodeid)
    return [
        _suite_failure(relpath, tuple(tests), f"the change adds it ({base_name} collects no such test)", now)
        for relpath, tests in by_file.items()
    ]


def _failure_lines(run: TestRun, node_ids: tuple[str, ...]) -> tuple[str, ...]:
    from .verify.pytest_run import failure_summary

    outcomes = run.by_nodeid
    return tuple(f"{n} {_failed(outcomes[n])}: {failure_summary(outcomes[n].message)}" for n in node_ids)


def _failed(outcome: TestOutcome) -> str:
    """How a test failed: "failed", or "timed out" (still running at its time limit)."""
    return "timed out" if outcome.outcome == "timeout" else "failed"


def _charge(
    report: RunReport, job: Job, fixed: tuple[str, ...], now: TestRun, fares: str, base_name: str
) -> None:
    """Turn ``job``'s report into a failure for the tests ``fixed`` by reverting it alone (``fares``: how
    the first of them fares then, "it passes")."""
    relpath, line = job.relpath, def_line(job.target) + 1
    for n, function in enumerate(report.functions):
        if (function.file, function.qualname, function.line) != (relpath, job.target.qualname, line):
            continue
        if function.status == "error":
            return  # could not be checked: that is what it says
        if function.status == "fail":
            # Its own reason stands, and comes first; the suite's tests that the change breaks too follow.
            report.functions[n] = dataclasses.replace(
                function,
                tests_selected=function.tests_selected + fixed,
                tests_failed=function.tests_failed + fixed,
                details=function.details + _failure_lines(now, fixed),
            )
            return
        more = f" (and {len(fixed) - 1} more)" if len(fixed) > 1 else ""
        report.functions[n] = dataclasses.replace(
            function,
            status="fail",
            evidence="tests",
            message=(
                f"tests: {fixed[0]} {_failed(now.by_nodeid[fixed[0]])}{more}: {fares} with "
                f"{job.target.qualname} as "
                f"{base_name} has it "
                f"(found by the whole test suite: the test does not name {job.target.qualname})"
            ),
            tests_selected=function.tests_selected + fixed,
            tests_failed=function.tests_failed + fixed,
            details=_failure_lines(now, fixed) + function.details,
        )
        return
