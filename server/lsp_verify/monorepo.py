"""A change to one member of a monorepo, guarded by the members that import it.

Each file is checked in its own project (a monorepo's member), with that project's tests. The other projects
of the repository whose code imports a package the change touches - directly, or through another member's
package - run the guards of :mod:`lsp_verify.check_guards` with their own tests and modules on the change
(:class:`DependentGuard`), so a change to one member that breaks another's tests or types fails.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .cancel import CancelToken
from .check_guards import (
    MAX_SCAN_FILES,
    Change,
    FileToCheck,
    Lost,
    collection_guard,
    suite_guard,
    type_guard,
)
from .config import PROJECT_MARKERS, PYTEST_CONFIG_FILES, Settings, find_project_root
from .headless import SettingsFor, StatusSink, is_test_file, relpath_in
from .report import FunctionReport, RunReport
from .verify.shadow import Content

if TYPE_CHECKING:
    from .verify.cascade import Verifier

MAX_SCAN_PROJECTS = 8
"""A change to this many projects or more is not scanned for the other projects that import it (a note
says so)."""
MAX_GUARDS = 8
"""At most this many other projects that import the change have their tests run on it (each up to
``suite_guard_timeout_s``); the rest are named in the notes."""


def guard_importers(
    git_root: Path,
    projects: Mapping[Path, tuple[list[FileToCheck], list[Change]]],
    checked: dict[Path, Checked],
    report: RunReport,
    base_name: str,
    settings_for: SettingsFor,
    tree: dict[Path, Content],
    status: StatusSink,
    cancel: CancelToken,
) -> None:
    """Run the guards of the change (``checked``: each changed project's part) in the other projects of the
    repository that import it (:func:`importers`), up to :data:`MAX_GUARDS` of them, into ``report``."""
    from . import gitdiff

    touched = touched_packages(projects)
    if not touched:
        return  # no package: nothing to import
    try:
        files = gitdiff.tracked_python_files(git_root)
    except gitdiff.GitError:
        return
    if len(projects) >= MAX_SCAN_PROJECTS or len(files) > MAX_SCAN_FILES:
        if len(projects) >= MAX_SCAN_PROJECTS:
            why = f"the change touches {len(projects)} projects"
        elif _other_projects(git_root, projects):
            why = f"the repository has {len(files)} Python files, more than {MAX_SCAN_FILES}"
        else:
            return  # one project: nothing else imports it
        report.notes.append(
            f"the other projects of the repository that import the change were not looked for ({why}): "
            "their tests were not run on it"
        )
        return
    dependents = importers(git_root, touched, files)
    root = Path(report.root)
    for n, (dependent, imports) in enumerate(dependents.items()):
        guard = DependentGuard(dependent, imports, checked, report, root, base_name)
        if n < MAX_GUARDS:
            guard.run(settings_for(dependent), tree, status, cancel)
        else:
            why = f"the first {MAX_GUARDS} of the {len(dependents)} that import it were run"
            guard.not_run(sorted(set(imports.touched.values())), why)


def importers(git_root: Path, touched: Mapping[str, Path], files: list[str]) -> dict[Path, Imports]:
    """The projects of the repository (a monorepo's members) whose code imports a package that this change
    touches in another project (``touched``: each top-level package with its project, see
    :func:`touched_packages`) - directly, or through a package of a third project that imports it (``app``
    imports ``lib``, which imports the changed ``core``: ``app``'s tests run ``core``'s change as much as
    ``lib``'s do) - those that import one directly first. A static scan of ``files``, the tracked Python
    files."""
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
        project: Imports({top: touched[top] for top in by}, {top: n for top, n in by.items() if n != top})
        for project, by in found.items()
    }
    # Under the cap, those that import the change directly run first.
    return dict(sorted(imports.items(), key=lambda item: (item[1].only_through, item[0])))


def touched_packages(projects: Mapping[Path, tuple[list[FileToCheck], list[Change]]]) -> dict[str, Path]:
    """The top-level packages the change touches, each with its project."""
    touched: dict[str, Path] = {}
    for project, (items, others) in projects.items():
        for path in [item.path for item in items] + [c.path for c in others if c.path.suffix == ".py"]:
            for top in _top_levels(project, path):
                touched.setdefault(top, project)
    return touched


def _other_projects(git_root: Path, projects: Iterable[Path]) -> bool:
    """Whether the repository holds a project besides ``projects`` and its top: a tracked configuration file
    of one elsewhere."""
    from . import gitdiff

    names = {name for name, _ in PYTEST_CONFIG_FILES}.union(PROJECT_MARKERS)
    try:
        out = gitdiff.run_git(["ls-files", "-z", "--", *(f"*{name}" for name in names)], git_root).stdout
    except gitdiff.GitError:
        return False
    known = {git_root, *projects}
    return any(
        (git_root / os.fsdecode(relpath)).parent not in known
        for relpath in out.split(b"\0")
        if relpath and os.fsdecode(relpath).rsplit("/", 1)[-1] in names
    )


@dataclasses.dataclass(frozen=True)
class Imports:
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
    name on its own, and from its project (``src/``) where a namespace package lies between (PEP 420). Not a
    standard library module's name: another project's ``import logging`` is the standard library's, not
    that of a script ``examples/logging.py`` beside the changed code."""
    from .verify.test_index import import_name, module_names

    if is_test_file(relpath_in(path, project)):
        return set()
    names = {import_name(project, path).split(".", 1)[0], module_names(project, path)[-1].split(".", 1)[0]}
    return names - sys.stdlib_module_names


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
class Checked:
    """A project's part of the check: its report (paths relative to the project), its changed files as the
    guards see them, and where its functions start in the whole report."""

    report: RunReport
    changes: list[Change]
    offset: int


@dataclasses.dataclass
class DependentGuard:
    """The guards of the change run with the tests and modules of ``project``, another project of the
    repository (a monorepo's member) whose code imports packages the change touches (``imports``, see
    :func:`importers`). Each project is checked with its own tests, so a
    change to ``packages/a``'s ``alib`` that breaks ``packages/b``'s tests passed: here ``packages/b``'s
    collection, whole suite and modules that import the change are run and type-checked on it as
    :func:`collection_guard`, :func:`suite_guard` and :func:`type_guard` do a project's own (only
    ``packages/b``'s modules' errors count), in its shadow with the change shown where ``packages/a`` lies
    beside it (``ShadowRoot(top=...)``: its ``pythonpath = ["../a/src"]`` and an editable install of
    ``alib`` both lead there). What they find is charged to the change's functions and files in
    ``report``, paths and test ids from the repository's top. Where the runs cannot show the change (no
    bubblewrap: a copied shadow is the project alone), or the tests do not run (an untrusted workspace,
    ``suite_guard_timeout_s = 0``), a note says that they were not run."""

    project: Path
    imports: Imports
    checked: dict[Path, Checked]
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
        lost: Lost | None = None
        try:
            lost = collection_guard(verifier, checked.changes, part, self.base_name, cancel)
        except VerifyError as exc:
            part.notes.append(f"whether the change stops its tests from being collected is unknown: {exc}")
        timeout_s = settings.suite_guard_timeout_s
        now = suite_guard(verifier, checked.changes, part, self.base_name, timeout_s, status, cancel, lost)
        first = checked.changes[0]
        tests = verifier.test_modules(first.path, first.now, cancel)
        through = [name for top, name in self.imports.through.items() if self.imports.touched[top] == changed]
        type_guard(verifier, checked.changes, tests, part, self.base_name, status, cancel, changed, through)
        if now is not None and now.leaked_imports:
            part.notes.append(
                f"its tests imported the changed module from {', '.join(now.leaked_imports)}, not from "
                f"{relpath_in(changed, self.root)}: the change was not tested there"
            )
        self._fold(part, checked, lost.files() if lost else ())

    def _fold(self, part: RunReport, checked: Checked, lost: tuple[str, ...]) -> None:
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
                if function is before or was.status == "error":
                    continue
            else:  # a file of the change, failed as a whole
                before = FunctionReport(function.file, function.qualname, function.line, "pass", "none", "")
                at, was = None, dataclasses.replace(before, file=relpath_in(Path(function.file), self.root))
            # The guards append tests and mypy errors to a function's report, and details too where it failed
            # already (it keeps its reason, :func:`~.check_guards._charge`), else prepend them.
            if before.status == "fail":
                added = function.details[len(before.details) :]
            else:
                added = function.details[: len(function.details) - len(before.details)]
            failed, new = was.status == "fail", tuple(map(shown, added))
            details = was.details + new if failed else new + was.details
            folded = dataclasses.replace(
                was,
                status=function.status,
                evidence=was.evidence if failed else function.evidence,
                message=was.message if failed else shown(function.message),
                tests_selected=was.tests_selected
                + tests(function.tests_selected[len(before.tests_selected) :]),
                tests_failed=was.tests_failed + tests(function.tests_failed[len(before.tests_failed) :]),
                mypy_new_errors=was.mypy_new_errors
                + tuple(map(shown, function.mypy_new_errors[len(before.mypy_new_errors) :])),
                details=details,
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
