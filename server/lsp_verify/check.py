"""``lsp-verify check``: verify code as it is.

``check`` never loads the model: it imports only syntax/ and verify/, so it is quick enough for a
pre-commit hook. Each changed function is verified as if it were a candidate for its own old version:
the *baseline* is the current file with just that function put back as HEAD has it (or taken out, when HEAD
does not have it), so mypy errors and broken tests are charged to the function that causes them, not to
every function changed in the same file.

Many functions at once (``--all``, a ``--base`` with many changes: more than :data:`BATCH_ABOVE`) are
checked as a batch instead of one by one: the union of all their nearby tests runs once on the code as it
is (a file with doctests, or staged text that differs from the work tree, gets a run of its own), mypy once
over all the files that share that run (each file's errors are its own), and for changed functions their
tests once more on the base revision's file. A function whose own tests all pass now (and, when it changed,
passed alike at the base), and that mypy cannot charge with a new error (the file has none, or the function
did not change, so its baseline *is* the file), gets its verdict from those runs through the very same
``Verifier.prepare``/``verify`` code (:class:`~lsp_verify.verify.cascade.KnownRuns`). Every other function -
a failing or missing test, a mypy error its change could cause, a new function (judged against a stub),
doctests that only one side has - is verified on its own as before, so the batch never reports a pass that
the per-function path would fail. A run stopped at its time limit (a test slower than ``test_timeout_s``)
still serves the functions whose tests all ran to an end in it.

A trusted check also runs the project's guards on the change - its whole suite, its collection, the modules
that import it type-checked (:mod:`lsp_verify.check_guards`) - and those of the other members of a monorepo
that import it (:mod:`lsp_verify.monorepo`).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .cancel import CancelToken
from .check_guards import (
    FAILING,
    Change,
    FileToCheck,
    Job,
    blamed_on_collection,
    collection_failure,
    collection_guard,
    failed_by_collection,
    named_changes,
    suite_guard,
    type_guard,
)
from .config import Settings, find_project_root
from .headless import (
    Quiet,
    SettingsFor,
    StatusSink,
    UsageError,
    def_line,
    describe,
    function_report,
    is_test_file,
    relpath_in,
)
from .monorepo import Checked, guard_importers
from .report import FunctionReport, RunReport
from .sourcefile import SourceError, read_source
from .syntax.target import EditTarget, TargetError
from .verify.shadow import Content, mirrored
from .verify.types import Candidate, CandidateResult, Evidence, TestOutcome

if TYPE_CHECKING:
    from .gitdiff import FileChange
    from .verify.cascade import KnownRuns, Verifier, VerifyPlan
    from .verify.pytest_run import TestRun

BATCH_ABOVE = 3
"""Batch when more functions than this are checked. Below it the batch's fixed cost (a mypy and a test run
per file, a base run for changed functions) saves little over three runs per function, and one function
checked on its own is exact by construction."""


@dataclasses.dataclass(frozen=True)
class CheckOptions:
    paths: tuple[Path, ...] = ()
    all_files: bool = False
    changed_only: bool = False
    """Only the functions whose source differs from the base revision (every function of a new file)."""
    base: str | None = None
    """The revision a change is judged against (default HEAD). Without paths: check the work tree's
    changes since ``base`` instead of the staged change."""


def run_check(
    options: CheckOptions,
    *,
    settings_for: SettingsFor,
    status: StatusSink | None = None,
    cancel: CancelToken | None = None,
    cwd: Path | None = None,
) -> RunReport:
    """Verify the selected functions as they are. Never raises for bad input: see ``RunReport.error``."""
    from . import gitdiff

    status = status or Quiet()
    cancel = cancel or CancelToken()
    cwd = (cwd or Path.cwd()).resolve()
    anchor = (cwd / options.paths[0]).resolve() if options.paths else cwd
    git_root = gitdiff.repo_root(anchor)
    report = RunReport(command="check", root=str(git_root or find_project_root(anchor)))

    try:
        files, changed = _select_files(options, cwd, git_root)
    except (UsageError, SourceError, gitdiff.GitError) as exc:
        report.error = str(exc)
        return report
    # (A file no shadow shows - under .git, .venv, node_modules - is nothing the tests read there.)
    changed = [change for change in changed if mirrored(Path(change.relpath))] if git_root is not None else []
    others = [Change(git_root / c.relpath, c.now, c.base) for c in changed if git_root and not c.skipped]
    report.notes.extend(f"{c.relpath}: not checked ({c.skipped})" for c in changed if c.skipped)
    if not files and not others:
        report.notes.append("no changes to check" if not options.paths else "no Python source files given")
        return report

    # Each file is checked in its own project, as pytest would run its tests: the members of a monorepo
    # each have their own configuration, conftest.py files and tests (config.find_project_root).
    projects: dict[Path, tuple[list[FileToCheck], list[Change]]] = {}
    for item in files:
        projects.setdefault(find_project_root(item.path), ([], []))[0].append(item)
    if others:
        assert git_root is not None
        python_files = gitdiff.tracked_python_files(git_root)
        for other in others:
            projects.setdefault(_project_of(other.path, git_root, python_files), ([], []))[1].append(other)
    # Reported paths are relative to the repository's top (where CI annotations point), else to the
    # one project, or to the projects' common directory.
    root = git_root or (next(iter(projects)) if len(projects) == 1 else Path(os.path.commonpath(projects)))
    report.root = str(root)
    staged_tree = _staged_tree(options, git_root, report)
    checked: dict[Path, Checked] = {}
    for project, (items, project_others) in projects.items():
        part = RunReport(command="check", root=str(project))
        changes = _check_project(
            project,
            items,
            project_others,
            options,
            settings_for(project),
            part,
            status,
            cancel,
            root,
            staged_tree,
        )
        checked[project] = Checked(part, changes, len(report.functions))
        _merge(report, part, relpath_in(project, root))
    if git_root is not None:
        guard_importers(
            git_root,
            projects,
            checked,
            report,
            options.base or "HEAD",
            settings_for,
            staged_tree,
            status,
            cancel,
        )
    if not report.functions and report.error is None and not others:
        report.notes.append("the change touches no function: nothing to verify")
    return report


def _check_project(
    root: Path,
    files: list[FileToCheck],
    others: list[Change],
    options: CheckOptions,
    settings: Settings,
    report: RunReport,
    status: StatusSink,
    cancel: CancelToken,
    shown_from: Path,
    tree: dict[Path, Content],
) -> list[Change]:
    """Check ``files``, all of the project at ``root``, into ``report`` (paths relative to ``root``; the
    progress shown relative to ``shown_from``, the final report's root); ``others``, the project's changed
    files that are not Python sources, only through the guards; every run sees the files of ``tree`` with
    that content instead of the work tree's (:func:`_staged_tree`). Returns the project's changed files as
    the guards saw them (for the guards of the projects that import it: :class:`.monorepo.DependentGuard`)."""
    report.problems.extend(settings.problems)
    from .verify.cascade import Verifier, VerifyError

    try:
        # No traced run: the whole suite runs on the change anyway (the suite guard), and a map that a
        # background run delivers halfway through would make one function's verdict depend on timing.
        verifier = Verifier(root, settings, tree=tree, reach="off")
    except VerifyError as exc:  # e.g. sandbox = "bwrap" where bubblewrap cannot run: nothing ran
        report.error = str(exc)
        return []
    with verifier:
        tests: frozenset[str] = frozenset()
        if settings.trusted and files:
            # A module pytest collects tests from is a test module, whatever its name (`python_files =
            # check_*.py`, Django's tests.py): what functions are checked against, not functions to check.
            try:
                tests = verifier.test_modules(files[0].path, files[0].text, cancel)
            except VerifyError:  # said again, with its reason, by the first function's check
                tests = frozenset()
            others = [
                *others,
                *(
                    Change(item.path, item.text, item.base_text)
                    for item in files
                    if relpath_in(item.path, root) in tests and item.text != item.base_text
                ),
            ]
            files = [item for item in files if relpath_in(item.path, root) not in tests]
        work = [_functions_of(item, root, shown_from) for item in files]
        jobs = [job for _, file_jobs in work for job in file_jobs]
        known: dict[int, KnownRuns] = {}
        if settings.trusted and len(jobs) > BATCH_ABOVE:
            known = _run_batches(verifier, jobs, status, cancel)
        for early, file_jobs in work:
            report.functions.extend(early)
            for job in file_jobs:
                report.functions.append(_check_function(verifier, job, status, cancel, known.get(id(job))))
        changed = [
            Change(item.path, item.text, item.base_text, tuple(file_jobs))
            for item, (_, file_jobs) in zip(files, work, strict=True)
            if item.base_text is not None and item.text != item.base_text
        ]
        changed += others  # after the sources: the suite runs with the first change as it is
        base_name = options.base or "HEAD"
        lost = None
        if settings.trusted and changed:
            try:
                lost = collection_guard(verifier, changed, report, base_name, cancel)
                if lost is not None:
                    failed_by_collection(report, lost)
            except VerifyError as exc:
                report.notes.append(f"whether the change stops tests from being collected is unknown: {exc}")
        if settings.trusted and settings.suite_guard_timeout_s > 0:
            timeout_s = settings.suite_guard_timeout_s
            suite_guard(verifier, changed, report, base_name, timeout_s, status, cancel, lost)
        if others and not (settings.trusted and settings.suite_guard_timeout_s > 0):
            report.notes.append(_unguarded(others, root, settings.trusted))
        if changed:
            type_guard(verifier, changed, tests, report, base_name, status, cancel)
        return changed


def _unguarded(others: list[Change], root: Path, trusted: bool) -> str:
    """The note for changed files no guard ran the tests on (see :class:`Change`)."""
    shown = named_changes(others, root)
    if not trusted:
        return (
            f"the change to {shown} holds no function: only the tests can check it, and they do not run in "
            "an untrusted workspace"
        )
    return (
        f"the change to {shown} holds no function: the tests were only collected with it, not run "
        "(suite_guard_timeout_s = 0)"
    )


def _merge(report: RunReport, part: RunReport, project: str) -> None:
    """``part``, the report of the project at ``project`` (relative to ``report.root``), into ``report``:
    its files relative to that root, its notes and error said to be that project's."""
    prefix = "" if project == "." else f"{project}/"
    for function in part.functions:
        report.functions.append(
            dataclasses.replace(
                function,
                file=prefix + function.file,
                # pytest's node ids start with a path from its rootdir, the project's.
                tests_selected=tuple(prefix + nodeid for nodeid in function.tests_selected),
                tests_passed=tuple(prefix + nodeid for nodeid in function.tests_passed),
                tests_failed=tuple(prefix + nodeid for nodeid in function.tests_failed),
                tests_fixed=tuple(prefix + nodeid for nodeid in function.tests_fixed),
            )
            if prefix
            else function
        )
    said = f"{project}: " if prefix else ""
    # A settings problem names its file, and the user's own settings are every project's: said once.
    report.problems.extend(problem for problem in part.problems if problem not in report.problems)
    report.notes.extend(said + note for note in part.notes)
    if part.error is not None:
        report.error = "; ".join(filter(None, [report.error, said + part.error]))


def _select_files(
    options: CheckOptions, cwd: Path, git_root: Path | None
) -> tuple[list[FileToCheck], list[FileChange]]:
    """The Python source files whose functions to check, and the other changed files, which no function
    holds (deleted modules, test modules and conftest.py, data and configuration files) but whose change can
    break the tests all the same: the guards run the tests on them (:class:`Change`)."""
    from . import gitdiff

    base = options.base or "HEAD"
    if (options.all_files or options.base) and git_root is None:
        raise UsageError(f"--all and --base need a git repository: {gitdiff.no_repository(cwd)}")

    def at_base(relpath: str) -> str | None:
        return gitdiff.file_at(git_root, base, relpath) if git_root is not None else None

    if options.all_files:
        assert git_root is not None
        out = []
        for relpath in gitdiff.tracked_python_files(git_root):
            path = git_root / relpath
            if not is_test_file(relpath) and path.is_file():
                out.append(FileToCheck(path, relpath, read_source(path).text, at_base(relpath)))
        return out, []

    if not options.paths:
        if git_root is None:
            raise UsageError(
                f"{gitdiff.no_repository(cwd)}: give the files to check (lsp-verify check FILE...)"
            )
        out = []
        if options.base is not None:
            changes = gitdiff.changed_files(git_root, options.base)
            sources = {
                c.relpath for c in changes if _is_source(c.relpath) and (git_root / c.relpath).is_file()
            }
            for relpath in sorted(sources):
                text = read_source(git_root / relpath).text
                out.append(
                    FileToCheck(git_root / relpath, relpath, text, at_base(relpath), changed_only=True)
                )
            return out, [change for change in changes if change.relpath not in sources]
        for staged_file in gitdiff.staged_python_files(git_root):
            staged = gitdiff.staged_text(git_root, staged_file.relpath)
            if staged is None or not _is_source(staged_file.relpath):
                continue
            head = None if staged_file.added else gitdiff.head_text(git_root, staged_file.relpath)
            out.append(FileToCheck(staged_file.path, staged_file.relpath, staged, head, staged_file.lines))
        checked = {item.relpath for item in out}
        return out, gitdiff.staged_changes(git_root, lambda relpath: relpath not in checked)

    out, others = [], []
    for given in options.paths:
        path = (cwd / given).resolve()
        if not path.is_file():
            raise UsageError(f"{given}: no such file")
        relpath = relpath_in(path, git_root) if git_root else path.name
        if not _is_source(relpath):
            # Tests are what functions are checked against, not functions to check; a changed one (or a
            # changed data file) is for the guards.
            change = gitdiff.file_change(git_root, base, relpath) if git_root is not None else None
            if change is not None:
                others.append(change)
            continue
        text = read_source(path).text
        out.append(FileToCheck(path, relpath, text, at_base(relpath), changed_only=options.changed_only))
    return out, others


def _staged_tree(options: CheckOptions, git_root: Path | None, report: RunReport) -> dict[Path, Content]:
    """For a check of the staged change: the files whose work-tree bytes differ from the index, as staged -
    what the commit will hold. A module changed and not staged must not make the staged change pass (or
    fail): pre-commit stashes such changes before its hooks run; a check run by hand sees what it would."""
    from . import gitdiff

    if git_root is None or options.paths or options.base is not None or options.all_files:
        return {}
    unstaged = gitdiff.unstaged_files(git_root)
    tree: dict[Path, Content] = {
        git_root / c.relpath: c.base for c in unstaged if not c.skipped and mirrored(Path(c.relpath))
    }
    if tree:
        shown = ", ".join(sorted(relpath_in(path, git_root) for path in tree)[:3])
        more = f" and {len(tree) - 3} more" if len(tree) > 3 else ""
        report.notes.append(
            f"checked as staged: {shown}{more} (the work tree's unstaged changes are no part of it)"
        )
    return tree


def _project_of(path: Path, git_root: Path, python_files: list[str]) -> Path:
    """The project whose tests may read ``path``, a changed file that is not a Python source: the one
    :func:`find_project_root` finds above it, but never one inside a test directory (``tests/examples/
    pyproject.toml`` is a fixture, not a project) nor one holding no Python file (no test of its own)."""
    parts = path.relative_to(git_root).parts[:-1]
    outside_tests = next((i for i, part in enumerate(parts) if part in ("tests", "test")), len(parts))
    directory = git_root.joinpath(*parts[:outside_tests])
    root = find_project_root(directory if directory.is_dir() else directory.parent)
    while root != git_root and not any((git_root / relpath).is_relative_to(root) for relpath in python_files):
        root = find_project_root(root.parent)
    return root


def _is_source(relpath: str) -> bool:
    """Whether ``relpath`` is a Python source file whose functions ``check`` verifies (not a test). A stub
    (``.pyi``) holds no code to run: mypy alone reads it, and the type guard checks its change."""
    return relpath.endswith(".py") and not is_test_file(relpath)


def _functions_of(
    item: FileToCheck, root: Path, shown_from: Path | None = None
) -> tuple[list[FunctionReport], list[Job]]:
    """The functions of ``item`` to check, or the report of why none can be (the file does not parse)."""
    from .syntax.splice import parse_error
    from .syntax.targets import function_targets, functions_touching_lines

    relpath = relpath_in(item.path, root)
    problem = parse_error(item.text)
    if problem is not None:
        line = _error_line(problem)
        return [FunctionReport(relpath, "<module>", line, "fail", "none", f"does not parse: {problem}")], []
    try:
        if item.lines is None:
            targets = function_targets(item.text, item.path)
        else:
            targets = functions_touching_lines(item.text, item.path, set(item.lines))
    except TargetError as exc:
        return [FunctionReport(relpath, "<module>", 1, "fail", "none", str(exc))], []

    old_targets = _targets_by_name(item.base_text, item.path) if item.base_text is not None else {}
    # Redefinitions (a property's getter and setter, overloads, `if`/`else` pairs) are told apart by their
    # order among all of the file's functions, not among those the diff touches: the setter alone is the
    # second `value`, and matched as the first it was judged against the getter.
    occurrences = _occurrences(targets if item.lines is None else function_targets(item.text, item.path))
    jobs = []
    for target in targets:
        occurrence = occurrences[(target.qualname, target.def_start_line)]
        old = old_targets.get((target.qualname, occurrence))
        unchanged = old is not None and _source(item.text, target) == _source(item.base_text or "", old)
        if (item.changed_only or item.lines is not None) and unchanged:
            continue  # a diff line beside it, or a blank line in it: nothing of it changed
        # An unchanged function's baseline is the file itself (no splice to make and parse).
        baseline = item.text if unchanged else function_baseline(item.text, target, item.base_text, old)
        shown = relpath_in(item.path, shown_from) if shown_from is not None else relpath
        jobs.append(Job(item, relpath, target, baseline, is_new=old is None, shown=shown))
    return [], jobs


def _check_function(
    verifier: Verifier, job: Job, status: StatusSink, cancel: CancelToken, known: KnownRuns | None
) -> FunctionReport:
    from .verify.cascade import VerifyError

    cancel.raise_if_cancelled()
    target = job.target
    status.started(f"checking {job.shown or job.relpath}:{def_line(target) + 1} {target.qualname}")
    started = time.monotonic()
    try:
        result, plan = _verify_job(verifier, job, cancel, known)
    except VerifyError as exc:
        return _error_report(job, exc, time.monotonic() - started)
    return _judge_check(target, result, plan, job.relpath, is_new=job.is_new, settings=verifier.settings)


def _verify_job(
    verifier: Verifier, job: Job, cancel: CancelToken, known: KnownRuns | None
) -> tuple[CandidateResult, VerifyPlan]:
    """The cascade on the function as it is, against its baseline; raises VerifyError."""

    from .verify.cascade import VerifyError

    target, text = job.target, job.item.text
    # The probe only feeds ranking, which a check does not do. Every selected test runs at once: a failure
    # that also failed before is forgiven (see _judge_check) only when no other selected test broke.
    try:
        plan = verifier.prepare(target, job.baseline, cancel, known, probe=False)
    except VerifyError:
        if not job.is_new or job.baseline == text:
            raise
        plan = _called_at_import(verifier, job, cancel)
    plan = dataclasses.replace(plan, own_tests_first=False)
    candidate = Candidate(index=0, body=target.current_body, new_text=text, key=job.item.key)
    return verifier.verify(plan, candidate, cancel, known=known), plan


def _called_at_import(verifier: Verifier, job: Job, cancel: CancelToken) -> VerifyPlan:
    """The plan for a new function whose stub baseline cannot be imported: the module calls the function as
    it loads (a decorator the change adds, a table built at import), so with the stub no test could even be
    collected - and "the tests cannot be collected" said of a change whose tests all pass. Its tests are
    selected and run on the file as it is (a test that fails there fails it, as any new function's does;
    one that guards the rest of the module and fails as it is was failing before the function was used),
    and mypy's errors are still new relative to the stub. Raises VerifyError as ``prepare`` does."""
    plan = verifier.prepare(job.target, job.item.text, cancel, probe=False)
    stub = verifier.run_once(job.target.path, job.baseline, (), None, cancel).mypy
    if stub.crashed:
        return plan
    return dataclasses.replace(plan, original_text=job.baseline, baseline_mypy_errors=stub.errors)


def _error_report(job: Job, exc: Exception, seconds: float) -> FunctionReport:
    line = def_line(job.target) + 1
    return FunctionReport(job.relpath, job.target.qualname, line, "error", "none", str(exc), seconds=seconds)


def _outside_functions(text: str) -> list[str] | None:
    """The lines of ``text`` outside every function's body (imports, module and class statements, and
    signatures, defaults and decorators, which run at import); None when it does not parse."""
    from .syntax.pyast import parse_module

    try:
        tree = parse_module(text)
    except (SyntaxError, ValueError):
        return None
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
            inside.update(range(node.body[0].lineno, node.end_lineno + 1))
    return [line for number, line in enumerate(text.splitlines(), 1) if number not in inside]


@dataclasses.dataclass(frozen=True)
class FunctionCheck:
    """One function of :func:`check_text`: its report and, when the cascade ran, what it found."""

    report: FunctionReport
    target: EditTarget | None = None
    """None when the file does not parse (the report is about the module)."""
    result: CandidateResult | None = None
    charged: tuple[TestOutcome, ...] = ()
    """The failing tests the change is to blame for (they passed on the baseline, or the function is new)."""


def check_text(
    verifier: Verifier, path: Path, text: str, base_text: str | None, cancel: CancelToken
) -> list[FunctionCheck]:
    """What ``lsp-verify check --changed-only`` reports for one file holding ``text``, judged against
    ``base_text`` (None: every function is new), for a caller that keeps a warm ``verifier`` (the language
    server's check on save). Raises Cancelled."""
    from .verify.cascade import VerifyError

    item = FileToCheck(path, relpath_in(path, verifier.root), text, base_text, changed_only=True)
    early, jobs = _functions_of(item, verifier.root)
    out = [FunctionCheck(report) for report in early]
    for job in jobs:
        cancel.raise_if_cancelled()
        started = time.monotonic()
        try:
            result, plan = _verify_job(verifier, job, cancel, None)
        except VerifyError as exc:
            out.append(FunctionCheck(_error_report(job, exc, time.monotonic() - started), job.target))
            continue
        report = _judge_check(
            job.target, result, plan, job.relpath, is_new=job.is_new, settings=verifier.settings
        )
        before = plan.baseline_by_nodeid
        charged = tuple(
            o
            for o in result.outcomes
            if o.outcome in FAILING and (job.is_new or before.get(o.nodeid, o).outcome not in FAILING)
        )
        out.append(FunctionCheck(report, job.target, result, charged))
    if (
        verifier.settings.trusted
        and base_text is not None
        and not early
        and _outside_functions(text) != _outside_functions(base_text)
    ):
        # Only code outside function bodies runs when a test module imports this one. The verifier's
        # collection is kept while source files change (the editor's is long-lived): made afresh here.
        try:
            now = verifier.collection(path, text, cancel, cached=False)
            found = collection_failure(verifier, Change(path, text, base_text), now, "the base", cancel)
        except VerifyError:
            found = None  # the functions' own checks said why, if it matters to them
        if found is not None:
            failure, lost = found
            # A function whose tests the change stops from being collected (renamed, its old name still
            # imported by them) fails, as `check` says, rather than "could not be checked".
            out = [
                dataclasses.replace(check, report=blamed_on_collection(check.report, lost)) for check in out
            ]
            out.append(FunctionCheck(failure))
    if base_text is not None and base_text != text and not early:
        # What imports this module, type-checked with the saved text and without it (see type_guard).
        judged = RunReport(command="check", root=str(verifier.root), functions=[c.report for c in out])
        change = Change(path, text, base_text, tuple(jobs))
        type_guard(verifier, [change], frozenset(), judged, "the base", Quiet(), cancel)
        kept = judged.functions[: len(out)]
        out = [dataclasses.replace(check, report=now) for check, now in zip(out, kept, strict=True)]
        out += [FunctionCheck(added) for added in judged.functions[len(out) :]]
    return out


def _run_batches(
    verifier: Verifier, jobs: list[Job], status: StatusSink, cancel: CancelToken
) -> dict[int, KnownRuns]:
    """The batch (see the module docstring): the runs each function may take its verdict from, keyed by
    ``id(job)``; a function left out is verified on its own."""
    from .verify.cascade import KnownRuns, VerifyError

    by_file: dict[Path, list[Job]] = {}
    for job in jobs:
        by_file.setdefault(job.item.path, []).append(job)
    nearby: dict[int, tuple[str, ...]] = {}
    for job in jobs:
        cancel.raise_if_cancelled()
        try:
            nearby[id(job)] = verifier.nearby_tests(job.target, job.baseline, cancel)
        except VerifyError:
            continue  # its own verification reports why
    files = [file_jobs for file_jobs in by_file.values() if any(id(j) in nearby for j in file_jobs)]
    # Files checked as they are on disk share one test run: any shadow shows pytest all of them as they
    # are (and where the edited module is imported from does not matter when it equals the user's file).
    # A file with doctests, or staged text that differs from the work tree, gets its own run.
    shared = [fj for fj in files if ">>>" not in fj[0].item.text and _is_on_disk(fj[0].item)]
    status.started(f"running the nearby tests of {sum(len(fj) for fj in files)} functions together")
    current: dict[Path, KnownRuns] = {}
    try:
        if shared:
            union = _union(nearby.get(id(j), ()) for fj in shared for j in fj)
            on_disk = [(fj[0].item.path, fj[0].item.text) for fj in shared]
            current.update(verifier.run_together(on_disk, union, cancel))
        for file_jobs in files:
            item = file_jobs[0].item
            if item.path in current:
                continue
            doctests = file_jobs[0].relpath if ">>>" in item.text else None
            union = _union(nearby.get(id(j), ()) for j in file_jobs)
            current[item.path] = verifier.run_once(item.path, item.text, union, doctests, cancel)
    except VerifyError:
        return {}

    known: dict[int, KnownRuns] = {}
    for file_jobs in files:
        cancel.raise_if_cancelled()
        item = file_jobs[0].item
        now = current[item.path]
        if now.mypy.crashed or not _clean(now.tests):
            continue
        doctests = file_jobs[0].relpath if ">>>" in item.text else None
        changed = [j for j in file_jobs if id(j) in nearby and j.baseline != item.text and not j.is_new]
        base: KnownRuns | None = None
        if changed and item.base_text is not None and not now.mypy.errors:
            base_doctests = file_jobs[0].relpath if ">>>" in item.base_text else None
            base_union = _union(nearby[id(j)] for j in changed)
            try:
                base = verifier.run_once(item.path, item.base_text, base_union, base_doctests, cancel)
            except VerifyError:
                base = None
        for job in file_jobs:
            ids = nearby.get(id(job))
            if ids is None or (">>>" in job.baseline) != (doctests is not None):
                continue
            mine = _passing_subset(
                now.tests, ids, doctests, as_is=job.baseline == item.text and not job.is_new
            )
            if mine is None:
                continue
            if job.baseline != item.text:
                # Its baseline differs from the file: only when the base saw the same tests pass, and mypy
                # has no error to charge it with, is the batch's word as good as its own run's.
                if job.is_new or base is None or base.mypy.crashed or not _clean(base.tests):
                    continue
                theirs = _passing_subset(base.tests, ids, doctests)
                if theirs is None or _behaviour(theirs) != _behaviour(mine):
                    continue
            known[id(job)] = KnownRuns(now.mypy, mine)
    return known


def _is_on_disk(item: FileToCheck) -> bool:
    try:
        return read_source(item.path).text == item.text
    except SourceError:
        return False


def _union(groups: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(node_id for group in groups for node_id in group))


def _clean(run: TestRun) -> bool:
    """Whether a run's outcomes can be trusted item by item (else every function is checked alone). One
    stopped at its time limit can: the test it stopped in is "timeout" and those after it have no outcome,
    so :func:`_passing_subset` gives a function the run's word only where every test of its ran to an end
    (a suite ending in a test slower than ``test_timeout_s``, mccabe's, checked every function alone)."""
    return not (run.problem or run.leaked_imports or run.collect_errors)


def _passing_subset(
    run: TestRun, node_ids: tuple[str, ...], doctest_file: str | None, *, as_is: bool = False
) -> TestRun | None:
    """``run`` cut down to what a run of ``node_ids`` (and ``doctest_file``'s doctests) alone would report,
    in its order (pytest runs its arguments in the order given, the doctest file first); None when any of
    them did not run, or failed - then the function is verified on its own - unless ``as_is``: the
    function's baseline is the very text the run was made on, so that run is its baseline too, and a
    failure in it is one it has before and after alike (what its own two runs would find, without them:
    dateutil's tz.py, 45 tests failing in this environment, took 87 separate runs of ~2 s)."""
    from .verify.pytest_run import function_id

    rank = {node_id: n for n, node_id in enumerate(node_ids)}
    kept: list[tuple[int, TestOutcome]] = []
    seen: set[str] = set()
    for outcome in run.outcomes:
        if doctest_file is not None and outcome.nodeid.startswith(f"{doctest_file}::"):
            position = -1
        else:
            function = function_id(outcome.nodeid)
            if function not in rank:
                continue
            position = rank[function]
            seen.add(function)
        if outcome.outcome in FAILING and not as_is:
            return None
        kept.append((position, outcome))
    if len(seen) != len(rank):
        return None
    kept.sort(key=lambda pair: pair[0])
    return dataclasses.replace(run, outcomes=tuple(outcome for _, outcome in kept))


def _behaviour(run: TestRun) -> list[tuple[str, str]]:
    return [(outcome.nodeid, outcome.outcome) for outcome in run.outcomes]


def _judge_check(
    target: EditTarget,
    result: CandidateResult,
    plan: VerifyPlan,
    relpath: str,
    *,
    is_new: bool,
    settings: Settings,
) -> FunctionReport:
    """The cascade's verdict, except that tests failing with and without the change do not count against an
    existing function: like mypy errors, only what the change breaks is charged to it. (A new function's
    baseline is a stub, so every failing test counts for it.) Such a pass is backed by types only when no
    test of the function passed, and ``require_tests`` then refuses it."""
    failing = [o for o in result.outcomes if o.outcome in ("failed", "error", "timeout")]
    stage = next((s for s in result.stages if not s.ok), None)
    before = plan.baseline_by_nodeid
    already = [o.nodeid for o in failing if before.get(o.nodeid, o).outcome in ("failed", "error", "timeout")]
    only_old_failures = (
        not result.passed
        and not is_new
        and stage is not None
        and stage.stage == "tests"
        and failing
        and not result.tests_broken
        and len(already) == len(failing)
    )
    if not only_old_failures:
        return function_report(target, result, relpath, details=plan.notes)
    from .verify.cascade import tests_evidence

    evidence = tests_evidence(plan, result.outcomes, result.tests_naming)
    passed = dataclasses.replace(result, passed=True, evidence=evidence)
    message = f"{describe(passed)}: {', '.join(already)}"  # "..., 1 failing before this change too (...)"
    if settings.require_tests and evidence is not Evidence.TESTS:
        return function_report(target, result, relpath, message=f"{message}, and require_tests is set")
    return function_report(target, passed, relpath, message=message, details=plan.notes)


def _occurrences(targets: Iterable[EditTarget]) -> dict[tuple[str, int], int]:
    """(qualname, def line) -> which definition of that name it is, in the file's order (0: the first)."""
    counts: dict[str, int] = {}
    out: dict[tuple[str, int], int] = {}
    for target in targets:
        out[(target.qualname, target.def_start_line)] = counts.get(target.qualname, 0)
        counts[target.qualname] = out[(target.qualname, target.def_start_line)] + 1
    return out


def _targets_by_name(text: str, path: Path) -> dict[tuple[str, int], EditTarget]:
    """Every function of ``text`` keyed by (qualname, occurrence): redefinitions are told apart by order."""
    from .syntax.targets import function_targets

    try:
        targets = function_targets(text, path)
    except TargetError:
        return {}
    occurrences = _occurrences(targets)
    return {
        (target.qualname, occurrences[(target.qualname, target.def_start_line)]): target for target in targets
    }


def _source(text: str, target: EditTarget) -> str:
    return "".join(text.splitlines(keepends=True)[target.def_start_line : target.def_end_line + 1])


def function_baseline(text: str, target: EditTarget, base: str | None, old: EditTarget | None) -> str:
    """``text`` with only ``target``'s function as it was in the base revision.

    A function the base does not have becomes a stub (``raise NotImplementedError`` after its docstring):
    its tests and doctests still import and run, and fail, so the new code is judged on its own. When
    the base's definition no longer fits (it moved into a class, say), the base's whole file is used.
    """
    from .syntax.splice import parse_error, splice_body

    if base is None or old is None:
        return splice_body(text, target, f"{target.indent}raise NotImplementedError")
    lines = text.splitlines(keepends=True)
    middle = base.splitlines(keepends=True)[old.def_start_line : old.def_end_line + 1]
    if middle and not middle[-1].endswith("\n"):
        middle[-1] += "\n"
    spliced = "".join([*lines[: target.def_start_line], *middle, *lines[target.def_end_line + 1 :]])
    return spliced if parse_error(spliced) is None else base


def _error_line(problem: str) -> int:
    match = re.match(r"line (\d+)", problem)
    return int(match.group(1)) if match else 1
