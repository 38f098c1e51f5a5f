"""``lsp-verify check``: verify code as it is.

``check`` never loads the model: it imports only syntax/ and verify/, so it is quick enough for a
pre-commit hook. Each changed function is verified as if it were a candidate for its own old version:
the *baseline* is the current file with just that function put back as HEAD has it (or taken out, when HEAD
does not have it), so mypy errors and broken tests are charged to the function that causes them, not to
every function changed in the same file.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .cancel import CancelToken
from .config import find_project_root
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
from .verify.types import Candidate, CandidateResult, Evidence

if TYPE_CHECKING:
    from .verify.cascade import Verifier, VerifyPlan


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
    root = find_project_root(anchor) if options.paths else (git_root or find_project_root(anchor))
    report = RunReport(command="check", root=str(root))

    try:
        files = _select_files(options, cwd, git_root)
    except (UsageError, SourceError, gitdiff.GitError) as exc:
        report.error = str(exc)
        return report
    if not files:
        report.notes.append(
            "no Python changes to check" if not options.paths else "no Python source files given"
        )
        return report

    settings = settings_for(root)
    report.problems.extend(settings.problems)
    from .verify.cascade import Verifier, VerifyError

    try:
        verifier = Verifier(root, settings)
    except VerifyError as exc:  # e.g. sandbox = "bwrap" where bubblewrap cannot run: nothing ran
        report.error = str(exc)
        return report
    with verifier:
        for item in files:
            report.functions.extend(_check_file(verifier, item, root, status, cancel))
    if not report.functions:
        report.notes.append("the change touches no function: nothing to verify")
    return report


def _select_files(options: CheckOptions, cwd: Path, git_root: Path | None) -> list[_FileToCheck]:
    from . import gitdiff

    base = options.base or "HEAD"
    if (options.all_files or options.base) and git_root is None:
        raise UsageError("--all and --base need a git repository")

    def at_base(relpath: str) -> str | None:
        return gitdiff.file_at(git_root, base, relpath) if git_root is not None else None

    if options.all_files:
        assert git_root is not None
        out = []
        for relpath in gitdiff.tracked_python_files(git_root):
            path = git_root / relpath
            if not is_test_file(relpath) and path.is_file():
                out.append(_FileToCheck(path, relpath, read_source(path).text, at_base(relpath)))
        return out

    if not options.paths:
        if git_root is None:
            raise UsageError("not in a git repository: give the files to check (lsp-verify check FILE...)")
        out = []
        if options.base is not None:
            for relpath in gitdiff.changed_python_files(git_root, options.base):
                path = git_root / relpath
                if not is_test_file(relpath):
                    text = read_source(path).text
                    out.append(_FileToCheck(path, relpath, text, at_base(relpath), changed_only=True))
            return out
        for change in gitdiff.staged_python_files(git_root):
            staged = gitdiff.staged_text(git_root, change.relpath)
            if staged is None or is_test_file(change.relpath):
                continue
            head = None if change.added else gitdiff.head_text(git_root, change.relpath)
            out.append(_FileToCheck(change.path, change.relpath, staged, head, change.lines))
        return out

    out = []
    for given in options.paths:
        path = (cwd / given).resolve()
        if not path.is_file():
            raise UsageError(f"{given}: no such file")
        relpath = relpath_in(path, git_root) if git_root else path.name
        if path.suffix not in (".py", ".pyi") or is_test_file(relpath):
            continue  # tests are what functions are checked against, not functions to check
        text = read_source(path).text
        out.append(_FileToCheck(path, relpath, text, at_base(relpath), changed_only=options.changed_only))
    return out


def _check_file(
    verifier: Verifier, item: _FileToCheck, root: Path, status: StatusSink, cancel: CancelToken
) -> list[FunctionReport]:
    from .syntax.splice import normalise, parse_error
    from .syntax.targets import function_targets, functions_touching_lines
    from .verify.cascade import VerifyError

    relpath = relpath_in(item.path, root)
    problem = parse_error(item.text)
    if problem is not None:
        line = _error_line(problem)
        return [FunctionReport(relpath, "<module>", line, "fail", "none", f"does not parse: {problem}")]
    try:
        if item.lines is None:
            targets = function_targets(item.text, item.path)
        else:
            targets = functions_touching_lines(item.text, item.path, set(item.lines))
    except TargetError as exc:
        return [FunctionReport(relpath, "<module>", 1, "fail", "none", str(exc))]

    old_targets = _targets_by_name(item.base_text, item.path) if item.base_text is not None else {}
    reports = []
    seen: dict[str, int] = {}
    for target in targets:
        cancel.raise_if_cancelled()
        occurrence = seen.get(target.qualname, 0)
        seen[target.qualname] = occurrence + 1
        old = old_targets.get((target.qualname, occurrence))
        unchanged = old is not None and _source(item.text, target) == _source(item.base_text or "", old)
        if item.changed_only and unchanged:
            continue
        baseline = function_baseline(item.text, target, item.base_text, old)
        status.started(f"checking {relpath}:{def_line(target) + 1} {target.qualname}")
        started = time.monotonic()
        try:
            plan = verifier.prepare(target, baseline, cancel)
            candidate = Candidate(
                index=0, body=target.current_body, new_text=item.text, key=normalise(item.text)
            )
            result = verifier.verify(plan, candidate, cancel)
        except VerifyError as exc:
            reports.append(
                FunctionReport(
                    relpath,
                    target.qualname,
                    def_line(target) + 1,
                    "error",
                    "none",
                    str(exc),
                    seconds=time.monotonic() - started,
                )
            )
            continue
        reports.append(_judge_check(target, result, plan, relpath, is_new=old is None))
    return reports


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
    old = ", ".join(already)
    message = f"{describe(passed)}; failing before this change too (not counted): {old}"
    return function_report(target, passed, relpath, message=message, details=plan.notes)


def _targets_by_name(text: str, path: Path) -> dict[tuple[str, int], EditTarget]:
    """Every function of ``text`` keyed by (qualname, occurrence): redefinitions are told apart by order."""
    from .syntax.targets import function_targets

    try:
        targets = function_targets(text, path)
    except TargetError:
        return {}
    out: dict[tuple[str, int], EditTarget] = {}
    counts: dict[str, int] = {}
    for target in targets:
        n = counts.get(target.qualname, 0)
        counts[target.qualname] = n + 1
        out[(target.qualname, n)] = target
    return out


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
