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

Nearby tests are found by name, and a test can reach a function without naming it: through a fixture, a
re-export under another name, or another function of the module that calls it. So a trusted check of a
change also runs the project's whole test suite on it once (:func:`_suite_guard`, bounded by
``suite_guard_timeout_s``): a test that fails now, that no function's own check ran, and that passes with the
file as the base has it, is charged to the changed function whose revert alone makes it pass again, or to
the file (``<module>``) when no single revert does (a change outside any function, or several together).
A test that fails alone with the base too may need the tests before it (a registry an earlier test fills):
it is run in the suite's order without the change (:func:`_in_order`), and fails the file when it passes
there. A change that stops tests from being collected at all (a module-level import that fails) breaks them
without any test failing: :func:`_collection_guard` compares the collection with the base revision's, with
or without the suite guard, and fails the file whose base collects what the change does not. A changed file
that holds no function to check (a data file, a deleted module, conftest.py, a test module) goes through the
two guards alone, and fails as a whole when putting it back as the base has it is what the tests need.

Each file is checked in its own project (a monorepo's member), with that project's tests. The other projects
of the repository whose code imports a package the change touches run the same guards with their own
tests and modules on the change (:class:`_DependentGuard`), so a change to one member that breaks another's
tests or types fails.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import functools
import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .cancel import CancelToken
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
from .report import FunctionReport, RunReport
from .sourcefile import SourceError, read_source
from .syntax.target import EditTarget, TargetError
from .verify.shadow import Content, mirrored
from .verify.types import Candidate, CandidateResult, Evidence, TestOutcome

if TYPE_CHECKING:
    from .gitdiff import FileChange
    from .verify.cascade import KnownRuns, Verifier, VerifyPlan
    from .verify.mypy_check import MypyError, MypyRun
    from .verify.pytest_run import Collection, TestRun

BATCH_ABOVE = 3
"""Batch when more functions than this are checked. Below it the batch's fixed cost (a mypy and a test run
per file, a base run for changed functions) saves little over three runs per function, and one function
checked on its own is exact by construction."""

_FAILING = frozenset({"failed", "error", "timeout"})


@dataclasses.dataclass(frozen=True)
class CheckOptions:
    paths: tuple[Path, ...] = ()
    all_files: bool = False
    changed_only: bool = False
    """Only the functions whose source differs from the base revision (every function of a new file)."""
    base: str | None = None
    """The revision a change is judged against (default HEAD). Without paths: check the work tree's
    changes since ``base`` instead of the staged change."""


@dataclasses.dataclass(frozen=True)
class _FileToCheck:
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
    others = [_Change(git_root / c.relpath, c.now, c.base) for c in changed if git_root and not c.skipped]
    report.notes.extend(f"{c.relpath}: not checked ({c.skipped})" for c in changed if c.skipped)
    if not files and not others:
        report.notes.append("no changes to check" if not options.paths else "no Python source files given")
        return report

    # Each file is checked in its own project, as pytest would run its tests: the members of a monorepo
    # each have their own configuration, conftest.py files and tests (config.find_project_root).
    projects: dict[Path, tuple[list[_FileToCheck], list[_Change]]] = {}
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
    checked: dict[Path, _Checked] = {}
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
        checked[project] = _Checked(part, changes, len(report.functions))
        _merge(report, part, relpath_in(project, root))
    if git_root is not None and len(projects) < _MAX_DEPENDENT_SCAN_PROJECTS:
        dependents = _importers(git_root, projects)
        for n, (dependent, imports) in enumerate(dependents.items()):
            guard = _DependentGuard(dependent, imports, checked, report, root, options.base or "HEAD")
            if n < _MAX_DEPENDENT_GUARDS:
                guard.run(settings_for(dependent), staged_tree, status, cancel)
            else:
                why = f"the first {_MAX_DEPENDENT_GUARDS} of the {len(dependents)} that import it were run"
                guard.not_run(sorted(set(imports.touched.values())), why)
    if not report.functions and report.error is None and not others:
        report.notes.append("the change touches no function: nothing to verify")
    return report


_MAX_DEPENDENT_SCAN_PROJECTS = 8
_MAX_DEPENDENT_GUARDS = 8
"""At most this many other projects that import the change have their tests run on it (each up to
``suite_guard_timeout_s``); the rest are named in the notes."""
_MAX_DEPENDENT_SCAN_FILES = 5000
"""How far :func:`_importers` looks: a change to more projects, or a repository of more Python files, is not
read for the members that import it."""


def _importers(
    git_root: Path, projects: Mapping[Path, tuple[list[_FileToCheck], list[_Change]]]
) -> dict[Path, _Imports]:
    """The projects of the repository (a monorepo's members) whose code imports a package that this change
    touches in another project - directly, or through a package of a third project that imports it (``app``
    imports ``lib``, which imports the changed ``core``: ``app``'s tests run ``core``'s change as much as
    ``lib``'s do) - those that import one directly first. A static scan of the tracked files, none past
    :data:`_MAX_DEPENDENT_SCAN_FILES`."""
    from . import gitdiff

    touched: dict[str, Path] = {}  # top-level package -> its project
    for project, (items, others) in projects.items():
        for path in [item.path for item in items] + [c.path for c in others if c.path.suffix == ".py"]:
            for top in _top_levels(project, path):
                touched.setdefault(top, project)
    if not touched:
        return {}
    try:
        files = gitdiff.tracked_python_files(git_root)
    except gitdiff.GitError:
        return {}
    if len(files) > _MAX_DEPENDENT_SCAN_FILES:
        return {}
    roots: dict[Path, Path] = {}
    imported: dict[Path, list[tuple[Path, frozenset[str]]]] = {}  # project -> its files' imported packages
    own: dict[Path, set[str]] = {}  # project -> the top-level packages its code defines
    for relpath in files:
        path = git_root / relpath
        if path.parent not in roots:
            roots[path.parent] = find_project_root(path.parent)
        project = roots[path.parent]
        # A project of the change is one too: its own guards undo its change alone, never another's. A
        # project under a tests directory is test data: the tests around it run it.
        if _TEST_DIRECTORIES.intersection(relpath_in(project, git_root).split("/")):
            continue
        try:
            with path.open("rb") as source:
                text = source.read(1 << 20).decode("utf-8", "replace")
        except OSError:
            continue
        imported.setdefault(project, []).append((path, _imported_packages(text)))
        own.setdefault(project, set()).update(_top_levels(project, path))
    # Which touched packages importing a package runs (a touched one: itself), and whose that package is.
    reaches = {top: {top} for top in touched}
    owner = dict(touched)
    found: dict[Path, dict[str, str]] = {}  # project -> touched package -> the package it imports it by
    grown = True
    while grown:
        grown = False
        for project, modules in imported.items():
            for path, names in modules:
                for name in names.intersection(reaches):
                    if path.is_relative_to(owner[name]):  # the package's own project
                        continue
                    for top in reaches[name] - found.get(project, {}).keys():
                        if path.is_relative_to(touched[top]):  # back to the change (a imports b imports a)
                            continue
                        found.setdefault(project, {})[top] = name
                        grown = True
                        for package in own.get(project, ()):
                            if owner.setdefault(package, project) == project:
                                reaches.setdefault(package, set()).add(top)
    imports = {
        project: _Imports({top: touched[top] for top in by}, {top: n for top, n in by.items() if n != top})
        for project, by in found.items()
    }
    # Under the cap, those that import the change directly run first.
    return dict(sorted(imports.items(), key=lambda item: (item[1].only_through, item[0])))


@dataclasses.dataclass(frozen=True)
class _Imports:
    """What a project imports of a change: the touched top-level packages, each with the changed project it
    is in; and, for those it imports only through another project's package, that package."""

    touched: dict[str, Path]
    through: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def only_through(self) -> bool:
        return len(self.through) == len(self.touched)

    def named(self, changed: Iterable[Path]) -> str:
        """The packages of the projects ``changed`` it imports: "`core` (through `lib`), `util`"."""
        return ", ".join(
            f"`{top}`" + (f" (through `{self.through[top]}`)" if top in self.through else "")
            for top, project in sorted(self.touched.items())
            if project in changed
        )


def _top_levels(project: Path, path: Path) -> set[str]:
    """The top-level packages a source file of ``project`` is imported under (none for a test file): its
    name on its own, and from its project (``src/``) where a namespace package lies between (PEP 420)."""
    from .verify.test_index import import_name, module_names

    if is_test_file(relpath_in(path, project)):
        return set()
    return {import_name(project, path).split(".", 1)[0], module_names(project, path)[-1].split(".", 1)[0]}


_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([A-Za-z_]\w*)|import[ \t]+([^\n#;]+))", re.MULTILINE)
_NAME = re.compile(r"[A-Za-z_]\w*")


def _imported_packages(text: str) -> frozenset[str]:
    """The top-level packages a module's text imports (``from a.b import c``, ``import a, b.c as d``), read
    line by line, indented imports included; relative imports are its own package's."""
    names: set[str] = set()
    for match in _IMPORT.finditer(text):
        parts = [match[1]] if match[1] else match[2].split(",")
        names.update(m[0] for m in map(_NAME.match, map(str.strip, parts)) if m)
    return frozenset(names)


_TEST_DIRECTORIES = frozenset({"tests", "test", "testing"})


@dataclasses.dataclass(frozen=True)
class _Checked:
    """A project's part of the check: its report (paths relative to the project), its changed files as the
    guards see them, and where its functions start in the whole report."""

    report: RunReport
    changes: list[_Change]
    offset: int


@dataclasses.dataclass
class _DependentGuard:
    """The guards of the change run with the tests and modules of ``project``, another project of the
    repository (a monorepo's member) whose code imports packages the change touches (``imports``, see
    :func:`_importers`). Each project is checked with its own tests, so a
    change to ``packages/a``'s ``alib`` that breaks ``packages/b``'s tests passed: here ``packages/b``'s
    collection, whole suite and modules that import the change are run and type-checked on it as
    :func:`_collection_guard`, :func:`_suite_guard` and :func:`_type_guard` do a project's own (only
    ``packages/b``'s modules' errors count), in its shadow with the change shown where ``packages/a`` lies
    beside it (``ShadowRoot(top=...)``: its ``pythonpath = ["../a/src"]`` and an editable install of
    ``alib`` both lead there). What they find is charged to the change's functions and files in
    ``report``, paths and test ids from the repository's top. Where the runs cannot show the change (no
    bubblewrap: a copied shadow is the project alone), or the tests do not run (an untrusted workspace,
    ``suite_guard_timeout_s = 0``), a note says that they were not run."""

    project: Path
    imports: _Imports
    checked: dict[Path, _Checked]
    report: RunReport
    root: Path
    """The report's root: paths and test ids are shown from there."""
    base_name: str

    def run(
        self, settings: Settings, tree: dict[Path, Content], status: StatusSink, cancel: CancelToken
    ) -> None:
        from .verify.cascade import Verifier, VerifyError

        changed = sorted(set(self.imports.touched.values()))
        if not settings.trusted:
            self.not_run(changed, "an untrusted workspace's tests do not run")
            return
        if settings.suite_guard_timeout_s <= 0:
            self.not_run(changed, "suite_guard_timeout_s = 0")
            return
        try:
            verifier = Verifier(self.project, settings, tree=tree, reach="off")
        except VerifyError as exc:
            self.not_run(changed, str(exc))
            return
        with verifier:
            shown = [p for p in changed if p.is_relative_to(verifier.root) or _sees(verifier.around, p)]
            if len(shown) < len(changed):
                why = (
                    "its tests are shown another project's change only under bubblewrap, which this machine "
                    "or the `sandbox` setting does not give"
                )
                self.not_run([p for p in changed if p not in shown], why)
            for project in shown:
                if self.checked[project].changes:
                    self._guard(verifier, project, settings, status, cancel)

    def _guard(
        self, verifier: Verifier, changed: Path, settings: Settings, status: StatusSink, cancel: CancelToken
    ) -> None:
        from .verify.cascade import VerifyError

        checked = self.checked[changed]
        tops = self.imports.named([changed])
        status.started(
            f"running the tests of {relpath_in(self.project, self.root)}, which imports {tops}, on the change"
        )
        part = RunReport(command="check", root=str(changed), functions=list(checked.report.functions))
        lost = ""
        try:
            lost = _collection_guard(verifier, checked.changes, part, self.base_name, cancel)
        except VerifyError as exc:
            part.notes.append(f"whether the change stops its tests from being collected is unknown: {exc}")
        timeout_s = settings.suite_guard_timeout_s
        now = _suite_guard(verifier, checked.changes, part, self.base_name, timeout_s, status, cancel, lost)
        first = checked.changes[0]
        tests = verifier.test_modules(first.path, first.now, cancel)
        _type_guard(verifier, checked.changes, tests, part, self.base_name, status, cancel, changed)
        if now is not None and now.leaked_imports:
            part.notes.append(
                f"its tests imported the changed module from {', '.join(now.leaked_imports)}, not from "
                f"{relpath_in(changed, self.root)}: the change was not tested there"
            )
        self._fold(part, checked, (lost.split(": ", 1)[0],) if lost else ())

    def _fold(self, part: RunReport, checked: _Checked, lost: tuple[str, ...]) -> None:
        """What the guards found (``part``: the changed project's functions, then its files' failures) into
        the whole report, the dependent's test ids and files (and the test files that ``lost`` their tests)
        shown from the report's root."""
        dependent = relpath_in(self.project, self.root)
        prefix = "" if dependent == "." else f"{dependent}/"
        names = set(lost)
        for function in part.functions:
            names.update(function.tests_failed, (n.split("::", 1)[0] for n in function.tests_failed))
            names.update(error.split(": ", 1)[0] for error in function.mypy_new_errors)
        ours = sorted((n for n in names if n and not n.startswith(("/", "../"))), key=len, reverse=True)
        pattern = (
            re.compile(rf"(?<![\w./-])(?:{'|'.join(map(re.escape, ours))})") if ours and prefix else None
        )

        def shown(text: str) -> str:
            text = text.replace(f"{self.root}{os.sep}", "")  # the change's files, named from the dependent
            return pattern.sub(lambda match: prefix + match[0], text) if pattern else text

        def tests(nodeids: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(prefix + nodeid for nodeid in nodeids)

        original = checked.report.functions
        for index, function in enumerate(part.functions):
            if index < len(original):  # a function of the change, failed by the guards
                before, at = original[index], checked.offset + index
                was = self.report.functions[at]
                if function is before or was.status != "pass":
                    continue
            else:  # a file of the change, failed as a whole
                before = FunctionReport(function.file, function.qualname, function.line, "pass", "none", "")
                at, was = None, dataclasses.replace(before, file=relpath_in(Path(function.file), self.root))
            # The guards append tests and mypy errors to a function's report, and prepend details.
            folded = dataclasses.replace(
                was,
                status=function.status,
                evidence=function.evidence,
                message=shown(function.message),
                tests_selected=was.tests_selected
                + tests(function.tests_selected[len(before.tests_selected) :]),
                tests_failed=was.tests_failed + tests(function.tests_failed[len(before.tests_failed) :]),
                mypy_new_errors=was.mypy_new_errors
                + tuple(map(shown, function.mypy_new_errors[len(before.mypy_new_errors) :])),
                details=tuple(map(shown, function.details[: len(function.details) - len(before.details)]))
                + was.details,
            )
            if at is None:
                self.report.functions.append(folded)
            else:
                self.report.functions[at] = folded
        self.report.notes.extend(f"{dependent}: {note}" for note in part.notes)

    def not_run(self, changed: list[Path], why: str) -> None:
        """Say that this project's tests were not run on the change to the projects ``changed``, and why."""

        def named(path: Path) -> str:
            return relpath_in(path, self.root) or "."

        tops = self.imports.named(changed)
        self.report.notes.append(
            f"{named(self.project)} imports {tops}, which this change touches "
            f"({', '.join(named(project) for project in changed)}), and is a project of its own: its tests "
            f"were not run on the change ({why}; run `python -m pytest` there)"
        )


def _sees(around: Path | None, project: Path) -> bool:
    return around is not None and project.resolve().is_relative_to(around)


def _check_project(
    root: Path,
    files: list[_FileToCheck],
    others: list[_Change],
    options: CheckOptions,
    settings: Settings,
    report: RunReport,
    status: StatusSink,
    cancel: CancelToken,
    shown_from: Path,
    tree: dict[Path, Content],
) -> list[_Change]:
    """Check ``files``, all of the project at ``root``, into ``report`` (paths relative to ``root``; the
    progress shown relative to ``shown_from``, the final report's root); ``others``, the project's changed
    files that are not Python sources, only through the guards; every run sees the files of ``tree`` with
    that content instead of the work tree's (:func:`_staged_tree`). Returns the project's changed files as
    the guards saw them (for the guards of the projects that import it: :class:`_DependentGuard`)."""
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
                    _Change(item.path, item.text, item.base_text)
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
            _Change(item.path, item.text, item.base_text, tuple(file_jobs))
            for item, (_, file_jobs) in zip(files, work, strict=True)
            if item.base_text is not None and item.text != item.base_text
        ]
        changed += others  # after the sources: the suite runs with the first change as it is
        base_name = options.base or "HEAD"
        lost = ""
        if settings.trusted and changed:
            try:
                lost = _collection_guard(verifier, changed, report, base_name, cancel)
                if lost:
                    _failed_by_collection(report, lost)
            except VerifyError as exc:
                report.notes.append(f"whether the change stops tests from being collected is unknown: {exc}")
        if settings.trusted and settings.suite_guard_timeout_s > 0:
            timeout_s = settings.suite_guard_timeout_s
            _suite_guard(verifier, changed, report, base_name, timeout_s, status, cancel, lost)
        if others and not (settings.trusted and settings.suite_guard_timeout_s > 0):
            report.notes.append(_unguarded(others, root, settings.trusted))
        if changed:
            _type_guard(verifier, changed, tests, report, base_name, status, cancel)
        return changed


def _unguarded(others: list[_Change], root: Path, trusted: bool) -> str:
    """The note for changed files no guard ran the tests on (see :class:`_Change`)."""
    shown = _named(others, root)
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
) -> tuple[list[_FileToCheck], list[FileChange]]:
    """The Python source files whose functions to check, and the other changed files, which no function
    holds (deleted modules, test modules and conftest.py, data and configuration files) but whose change can
    break the tests all the same: the guards run the tests on them (:class:`_Change`)."""
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
                out.append(_FileToCheck(path, relpath, read_source(path).text, at_base(relpath)))
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
                    _FileToCheck(git_root / relpath, relpath, text, at_base(relpath), changed_only=True)
                )
            return out, [change for change in changes if change.relpath not in sources]
        for staged_file in gitdiff.staged_python_files(git_root):
            staged = gitdiff.staged_text(git_root, staged_file.relpath)
            if staged is None or not _is_source(staged_file.relpath):
                continue
            head = None if staged_file.added else gitdiff.head_text(git_root, staged_file.relpath)
            out.append(_FileToCheck(staged_file.path, staged_file.relpath, staged, head, staged_file.lines))
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
        out.append(_FileToCheck(path, relpath, text, at_base(relpath), changed_only=options.changed_only))
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


@dataclasses.dataclass(frozen=True, eq=False)
class _Job:
    """One function to check: where it is now and the text it is judged against."""

    item: _FileToCheck
    relpath: str
    """Relative to the project's root (what pytest and the verifier are given)."""
    target: EditTarget
    baseline: str
    """The file with just this function as the base has it (see :func:`function_baseline`)."""
    is_new: bool
    shown: str = ""
    """Relative to the report's root (what the user is shown); empty: ``relpath``."""


@dataclasses.dataclass(frozen=True)
class _Change:
    """A changed file as the guards see it (:func:`_collection_guard`, :func:`_suite_guard`): what it holds
    now and at the base - source text, or the bytes of a file that is not a Python source; None: absent (the
    change deletes it, or adds it) - and, for a Python source, the functions checked in it."""

    path: Path
    now: Content
    base: Content
    jobs: tuple[_Job, ...] = ()

    def as_base(self, base_name: str) -> str:
        """The file as the base has it, for a message: "this file as HEAD has it"."""
        if self.base is None:
            return "without this file, which the change adds"
        if self.now is None:
            return f"with this file, which the change deletes, as {base_name} has it"
        return f"with this file as {base_name} has it"


def _functions_of(
    item: _FileToCheck, root: Path, shown_from: Path | None = None
) -> tuple[list[FunctionReport], list[_Job]]:
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
        jobs.append(_Job(item, relpath, target, baseline, is_new=old is None, shown=shown))
    return [], jobs


def _check_function(
    verifier: Verifier, job: _Job, status: StatusSink, cancel: CancelToken, known: KnownRuns | None
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
    return _judge_check(target, result, plan, job.relpath, is_new=job.is_new)


def _verify_job(
    verifier: Verifier, job: _Job, cancel: CancelToken, known: KnownRuns | None
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


def _called_at_import(verifier: Verifier, job: _Job, cancel: CancelToken) -> VerifyPlan:
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


def _error_report(job: _Job, exc: Exception, seconds: float) -> FunctionReport:
    line = def_line(job.target) + 1
    return FunctionReport(job.relpath, job.target.qualname, line, "error", "none", str(exc), seconds=seconds)


def _suite_guard(
    verifier: Verifier,
    changed: list[_Change],
    report: RunReport,
    base_name: str,
    timeout_s: float,
    status: StatusSink,
    cancel: CancelToken,
    collection_lost: str = "",
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
            f"the whole test suite stopped in {nodeid}; run again on its own: {_stop(now, nodeid)}"
        )
    if unfinished:
        report.notes.append(
            f"the whole test suite did not finish on the change ({unfinished}; suite_guard_timeout_s): the "
            "tests that did not run guarded only the functions they are near"
        )
    # Failing tests a function's check already failed for; one it forgave (failing before too, as that
    # function's own baseline had the rest of the change in it) is looked at again.
    caught = {nodeid for f in report.functions if f.status != "pass" for nodeid in f.tests_failed}
    failing = tuple(o.nodeid for o in now.outcomes if o.outcome in _FAILING and o.nodeid not in caught)
    ran = len(now.outcomes)
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
                f"{_fares(undone, whole[0])} with the whole change ({_named(changed, verifier.root)}) as "
                f"{base_name} has it, " + why,
                now,
            )
        )
    reported = set(explained) | (set(whole) if len(changed) > 1 else set())
    left = tuple(nodeid for nodeid in unexplained if nodeid not in reported)
    if left:
        _in_order(verifier, changed, suite, left, at_base, now, report, base_name, deadline, cancel)
    return now


def _in_order(
    verifier: Verifier,
    changed: list[_Change],
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
        what = f"with the whole change ({_named(changed, verifier.root)}) as {base_name} has it"
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


def _stop(run: TestRun, nodeid: str) -> str:
    """How a test stopped the whole suite's run, and how it fared on its own."""
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


def _named(changes: list[_Change], root: Path) -> str:
    """The changed files, for a message: the first three, and how many more."""
    files = ", ".join(relpath_in(change.path, root) for change in changes[:3])
    return files + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")


def _undone(changes: list[_Change]) -> dict[Path, Content]:
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
"""At most this many modules that import the change are type-checked with it (:func:`_type_guard`), those
beside the changed files first."""


def _type_guard(
    verifier: Verifier,
    changed: list[_Change],
    tests: frozenset[str],
    report: RunReport,
    base_name: str,
    status: StatusSink,
    cancel: CancelToken,
    changed_in: Path | None = None,
) -> None:
    """A change breaks code that no test runs: a caller of a function whose signature changed, a module that
    imports a name the change removes, a module-level statement mypy rejects - and each function's own
    check sees only its file, with the rest of the change in its baseline too. So mypy runs once over the
    changed modules and the modules that import them (:func:`~.syntax.imports.importers`) with the change,
    and once with the whole change undone; an error only the first run has, that no function's check
    already charged, is charged to the changed function whose revert alone removes it, else to the file
    (``<module>``) whose revert does, else to the change as a whole. ``changed_in``: the project the change
    is in, when it is not the verifier's (:class:`_DependentGuard`): only the errors of the verifier's own
    modules that import it count (the changed modules are their project's to check, by its configuration)."""
    from .verify.mypy_check import added_errors

    root = verifier.root
    sources = [
        c for c in changed if c.path.suffix in (".py", ".pyi") and not _is_test_module(c.path, root, tests)
    ]
    if not sources:
        return
    dependents, more = _dependents(root, sources, tests, changed_in or root)
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
        whole = f"with the whole change ({_named(changed, root)}) as {base_name} has it"
        _fail_file(report, relpath_in(sources[0].path, root), new, root, whole)


def _with_sources(
    new: Mapping[Path, list[MypyError]], sources: list[_Change], overlays: Mapping[Path, Content]
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
    root: Path, sources: list[_Change], tests: frozenset[str], sources_in: Path
) -> tuple[list[Path], int]:
    """The project's tracked modules (test modules aside) that import one of ``sources`` (files of the
    project at ``sources_in``: this one, or another that it imports), at most :data:`_TYPE_GUARD_FILES` of
    them, and how many more there are (negative: the repository has more than
    :data:`_MAX_DEPENDENT_SCAN_FILES` Python files, this many, and none was read)."""
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
    if len(tracked) > _MAX_DEPENDENT_SCAN_FILES:
        return [], -len(tracked)
    changed = {name for change in sources for name in module_names(sources_in, change.path)}
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
    new: dict[Path, list[MypyError]], run: Mapping[Path, MypyRun], sources: list[_Change]
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
    report: RunReport, job: _Job, errors: Mapping[Path, list[MypyError]], root: Path, base_name: str
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


def _collection_guard(
    verifier: Verifier,
    changed: list[_Change],
    report: RunReport,
    base_name: str,
    cancel: CancelToken,
) -> str:
    """A change that stops tests from being collected breaks every one of them, whichever function they
    test: a module-level import that fails, a syntax error in a module every test file imports. When the
    collection with the change has errors (or files it could not import) that the collection with the whole
    change undone has not, the changed files are put back one at a time (those the error names first), and
    the first whose base collects what the change does not fails as a whole; when none does alone (a package
    deleted whole), the change fails as a whole. Returns what the change lost (empty: nothing)."""
    first = changed[0]
    now = verifier.collection(first.path, first.now, cancel)
    if not (now.problem or now.errors or now.unimported):
        return ""
    lost = ""
    if len(changed) > 1:
        undone = verifier.collection(first.path, first.base, cancel, cached=False, also=_undone(changed[1:]))
        lost = _collection_lost(undone, now)
        if not lost:
            return ""  # the tests collected no better before the change
    deadline = time.monotonic() + _TRACE_BUDGET_S
    for change in sorted(changed, key=lambda change: not _named_in(change, verifier.root, lost)):
        found = _collection_failure(verifier, change, now, base_name, cancel)
        if found is not None:
            report.functions.append(found[0])
            return found[1]
        if time.monotonic() > deadline:
            break
    if lost:
        why = _untraced(deadline, "stops them", f"{_TRACE_BUDGET_S:g} s")
        report.functions.append(
            FunctionReport(
                relpath_in(first.path, verifier.root),
                "<module>",
                1,
                "fail",
                "tests",
                f"the tests cannot be collected with this change ({lost}); they are with the whole change "
                f"({_named(changed, verifier.root)}) as {base_name} has it, {why}",
            )
        )
    return lost


def _failed_by_collection(report: RunReport, lost: str) -> None:
    """Once the change is known to stop tests from being collected (``lost``: where, then why): a function
    that could not be checked for that reason (an error, exit 2, as for a broken environment) fails - the
    change breaks its tests (a function renamed, its old name still imported by them)."""
    report.functions[:] = [_blamed_on_collection(function, lost) for function in report.functions]


def _blamed_on_collection(function: FunctionReport, lost: str) -> FunctionReport:
    """``function`` failed, when it could not be checked because its tests cannot be collected where the
    change lost them (``lost``: where, then why); else as it is."""
    from .verify.pytest_run import NOTHING_COLLECTED

    # The function's own check may have seen the file's error where the change's collection saw nothing at
    # all collect ("no test could be collected; tests/test_x.py: ..."): the file is what they share.
    where = lost.removeprefix(NOTHING_COLLECTED).split(": ", 1)[0]
    if function.status == "error" and "cannot be collected" in function.message and where in function.message:
        from .verify.cascade import FIX_COLLECTION, FIX_TEST_FILES

        message = function.message.removesuffix(f" {FIX_TEST_FILES}").removesuffix(f" {FIX_COLLECTION}")
        return dataclasses.replace(function, status="fail", message=f"with this change, {message}")
    return function


def _named_in(change: _Change, root: Path, message: str) -> bool:
    """Whether ``message`` names ``change``'s file, by its path or as a module (``pkg.sub`` for
    ``pkg/sub/__init__.py``)."""
    relpath = relpath_in(change.path, root)
    module = relpath.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    return bool(message) and (relpath in message or f"'{module}'" in message or f"{module}." in message)


def _collection_failure(
    verifier: Verifier, change: _Change, now: Collection, base_name: str, cancel: CancelToken
) -> tuple[FunctionReport, str] | None:
    """The failure of ``change``'s file as a whole, and what was lost, when the collection with it as the
    base has it holds what ``now`` (the collection with the change) lost; None when ``now`` has no error to
    look into, or the base collection has the same (see :func:`_collection_guard`)."""
    if not (now.problem or now.errors or now.unimported):
        return None
    cancel.raise_if_cancelled()
    lost = _collection_lost(verifier.collection(change.path, change.base, cancel, cached=False), now)
    if not lost:
        return None
    return FunctionReport(
        relpath_in(change.path, verifier.root),
        "<module>",
        1,
        "fail",
        "tests",
        f"the tests cannot be collected with this change ({lost}); they are {change.as_base(base_name)}",
    ), lost


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


def _collection_lost(base: Collection, now: Collection) -> str:
    """What collects in ``base`` and not in ``now``, in one line (empty: nothing)."""
    if now.problem and not base.problem:
        return now.problem
    for failed, known in ((now.errors, base.errors), (now.unimported, base.unimported)):
        before = {where for where, _ in known}
        for where, why in failed:
            if where not in before:
                return f"{where}: {why}"
    return ""


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
            return outcomes[node_id].outcome not in _FAILING
        found = cases.get(function_id(node_id), [])
        return bool(found) and not any(outcome in _FAILING for outcome in found)

    return tuple(n for n in node_ids if holds(n))


def _base_tests(
    verifier: Verifier, changed: list[_Change], cancel: CancelToken
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
    report: RunReport, job: _Job, fixed: tuple[str, ...], now: TestRun, fares: str, base_name: str
) -> None:
    """Turn ``job``'s report into a failure for the tests ``fixed`` by reverting it alone (``fares``: how
    the first of them fares then, "it passes")."""
    relpath, line = job.relpath, def_line(job.target) + 1
    for n, function in enumerate(report.functions):
        if (function.file, function.qualname, function.line) != (relpath, job.target.qualname, line):
            continue
        if function.status != "pass":
            return  # already failed (or could not be checked): its own reason stands
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

    item = _FileToCheck(path, relpath_in(path, verifier.root), text, base_text, changed_only=True)
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
        report = _judge_check(job.target, result, plan, job.relpath, is_new=job.is_new)
        before = plan.baseline_by_nodeid
        charged = tuple(
            o
            for o in result.outcomes
            if o.outcome in _FAILING and (job.is_new or before.get(o.nodeid, o).outcome not in _FAILING)
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
            found = _collection_failure(verifier, _Change(path, text, base_text), now, "the base", cancel)
        except VerifyError:
            found = None  # the functions' own checks said why, if it matters to them
        if found is not None:
            failure, lost = found
            # A function whose tests the change stops from being collected (renamed, its old name still
            # imported by them) fails, as `check` says, rather than "could not be checked".
            out = [
                dataclasses.replace(check, report=_blamed_on_collection(check.report, lost)) for check in out
            ]
            out.append(FunctionCheck(failure))
    if base_text is not None and base_text != text and not early:
        # What imports this module, type-checked with the saved text and without it (see _type_guard).
        judged = RunReport(command="check", root=str(verifier.root), functions=[c.report for c in out])
        change = _Change(path, text, base_text, tuple(jobs))
        _type_guard(verifier, [change], frozenset(), judged, "the base", Quiet(), cancel)
        kept = judged.functions[: len(out)]
        out = [dataclasses.replace(check, report=now) for check, now in zip(out, kept, strict=True)]
        out += [FunctionCheck(added) for added in judged.functions[len(out) :]]
    return out


def _run_batches(
    verifier: Verifier, jobs: list[_Job], status: StatusSink, cancel: CancelToken
) -> dict[int, KnownRuns]:
    """The batch (see the module docstring): the runs each function may take its verdict from, keyed by
    ``id(job)``; a function left out is verified on its own."""
    from .verify.cascade import KnownRuns, VerifyError

    by_file: dict[Path, list[_Job]] = {}
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


def _is_on_disk(item: _FileToCheck) -> bool:
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
        if outcome.outcome in _FAILING and not as_is:
            return None
        kept.append((position, outcome))
    if len(seen) != len(rank):
        return None
    kept.sort(key=lambda pair: pair[0])
    return dataclasses.replace(run, outcomes=tuple(outcome for _, outcome in kept))


def _behaviour(run: TestRun) -> list[tuple[str, str]]:
    return [(outcome.nodeid, outcome.outcome) for outcome in run.outcomes]


def _judge_check(
    target: EditTarget, result: CandidateResult, plan: VerifyPlan, relpath: str, *, is_new: bool
) -> FunctionReport:
    """The cascade's verdict, except that tests failing with and without the change do not count against an
    existing function: like mypy errors, only what the change breaks is charged to it. (A new function's
    baseline is a stub, so every failing test counts for it.)"""
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
    passed = dataclasses.replace(result, passed=True, evidence=Evidence.TESTS)
    message = f"{describe(passed)}: {', '.join(already)}"  # "..., 1 failing before this change too (...)"
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
