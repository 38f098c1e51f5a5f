"""The headless commands' logic: ``check`` (verify code as it is) and ``fix`` (write verified bodies).

``check`` never loads the model: it imports only syntax/ and verify/, so it is quick enough for a
pre-commit hook. Each changed function is verified as if it were a candidate for its own old version:
the *baseline* is the current file with just that function put back as HEAD has it (or taken out, when HEAD
does not have it), so mypy errors and broken tests are charged to the function that causes them, not to
every function changed in the same file.

``fix`` runs :class:`~lsp_verify.pipeline.Pipeline` per stub function. A file's verified bodies are applied
one after the other to an in-memory copy (later functions are generated and verified with the earlier ones
filled in), and ``--apply`` writes the result only if the file still has the bytes that were read.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .cancel import CancelToken
from .config import Settings, find_project_root
from .report import FunctionReport, RunReport, Status
from .syntax.target import EditTarget, TargetError
from .verify.rank import agreeing_samples
from .verify.types import Candidate, CandidateResult, Evidence

if TYPE_CHECKING:
    from .pipeline import FixReport, Pipeline, Progress
    from .verify.cascade import Verifier, VerifyPlan

SettingsFor = Callable[[Path], Settings]
"""Settings for a project root: ``[tool.lsp-verify]`` plus the command line's flags."""


class UsageError(Exception):
    """A bad argument or file: reported with exit code 2 before anything runs."""


class StatusSink(Protocol):
    """Where progress goes (the CLI's stderr status line)."""

    def started(self, message: str) -> None: ...

    def progress(self, progress: Progress) -> None: ...


class _Quiet:
    def started(self, message: str) -> None:
        pass

    def progress(self, progress: Progress) -> None:
        pass


# -- shared helpers ------------------------------------------------------------------------------------
def parse_location(spec: str, *, need_line: bool = False) -> tuple[Path, int | None]:
    """``FILE`` or ``FILE:LINE`` (1-based line) -> (absolute path, 0-based line or None)."""
    path_text, line = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isdigit() and not Path(spec).exists():
        path_text, line = head, int(tail) - 1
        if line < 0:
            raise UsageError(f"{spec}: line numbers start at 1")
    if need_line and line is None:
        raise UsageError(f"{spec}: expected FILE:LINE (a 1-based line inside the function)")
    path = Path(path_text).resolve()
    if not path.is_file():
        raise UsageError(f"{path_text}: no such file")
    return path, line


def read_source(path: Path) -> tuple[str, str]:
    """(text, sha256 of the bytes) of a Python file; UsageError when it is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    return text, hashlib.sha256(data).hexdigest()


def unified_diff(before: str, after: str, relpath: str) -> str:
    """A ``git apply``-able unified diff of one file."""
    lines = difflib.unified_diff(
        _diff_lines(before), _diff_lines(after), fromfile=f"a/{relpath}", tofile=f"b/{relpath}", n=3
    )
    return "".join(lines)


def _diff_lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


class FileChanged(Exception):
    """The file no longer holds the bytes the edit was computed from."""


def write_if_unchanged(path: Path, text: str, expected_sha256: str) -> None:
    """Replace ``path`` with ``text`` atomically, only while it still hashes to ``expected_sha256``.

    The new content goes to a temporary file in the same directory (same file system), gets the original's
    permission bits, is flushed to disk, and is renamed over the original: a reader sees the old file or the
    new one, never half of either.
    """
    current = path.read_bytes()
    if hashlib.sha256(current).hexdigest() != expected_sha256:
        raise FileChanged(f"{path} changed since it was read; not written (run lsp-verify fix again)")
    mode = stat.S_IMODE(path.stat().st_mode)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".lsp-verify.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        # Last look right before the rename: an editor that saved meanwhile wins.
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected_sha256:
            raise FileChanged(f"{path} changed since it was read; not written (run lsp-verify fix again)")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _relpath(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _is_test_file(relpath: str) -> bool:
    name = relpath.rsplit("/", 1)[-1]
    parts = relpath.split("/")[:-1]
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or any(part in ("tests", "test") for part in parts)
    )


def function_report(
    target: EditTarget,
    result: CandidateResult,
    relpath: str,
    *,
    status: Status | None = None,
    message: str | None = None,
    mypy_errors: Sequence[str] | None = None,
    details: Sequence[str] = (),
    diff: str | None = None,
    applied: bool | None = None,
) -> FunctionReport:
    """The report record for one verified (or failed) function."""
    failed = tuple(o.nodeid for o in result.outcomes if o.outcome in ("failed", "error", "timeout"))
    test_messages = tuple(
        f"{o.nodeid} {o.outcome}: {o.message}".rstrip(": ")
        for o in result.outcomes
        if o.outcome in ("failed", "error", "timeout")
    )
    return FunctionReport(
        file=relpath,
        qualname=target.qualname,
        line=_def_line(target) + 1,
        status=status or ("pass" if result.passed else "fail"),
        evidence=result.evidence.value if result.passed else Evidence.NONE.value,
        message=message or describe(result),
        mypy_new_errors=tuple(result.new_mypy_errors if mypy_errors is None else mypy_errors),
        tests_selected=result.tests_selected,
        tests_passed=result.tests_passed,
        tests_failed=failed,
        tests_fixed=result.tests_fixed,
        details=(*test_messages, *details),
        diff=diff,
        applied=applied,
        seconds=result.seconds,
    )


def describe(result: CandidateResult) -> str:
    """One line: what passed, or the first thing that failed."""
    if not result.passed:
        return result.first_error or "failed"
    parts = ["mypy: no new errors"]
    if result.evidence is Evidence.TESTS:
        parts.append(f"tests: {len(result.tests_passed)}/{len(result.tests_selected)} passed")
        if result.tests_fixed:
            parts.append(f"fixed {len(result.tests_fixed)}")
    else:
        parts.append("types only (no nearby tests)")
    return ", ".join(parts)


def _def_line(target: EditTarget) -> int:
    """0-based line of the ``def`` itself (after decorators)."""
    for offset, line in enumerate(target.header.splitlines()):
        if line.lstrip().startswith(("def ", "async def ", "async\tdef")):
            return target.def_start_line + offset
    return target.def_start_line


# -- check ---------------------------------------------------------------------------------------------
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

    status = status or _Quiet()
    cancel = cancel or CancelToken()
    cwd = (cwd or Path.cwd()).resolve()
    anchor = (cwd / options.paths[0]).resolve() if options.paths else cwd
    git_root = gitdiff.repo_root(anchor)
    root = find_project_root(anchor) if options.paths else (git_root or find_project_root(anchor))
    report = RunReport(command="check", root=str(root))

    try:
        files = _select_files(options, cwd, git_root)
    except (UsageError, gitdiff.GitError) as exc:
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
            if not _is_test_file(relpath) and path.is_file():
                out.append(_FileToCheck(path, relpath, read_source(path)[0], at_base(relpath)))
        return out

    if not options.paths:
        if git_root is None:
            raise UsageError("not in a git repository: give the files to check (lsp-verify check FILE...)")
        out = []
        if options.base is not None:
            for relpath in gitdiff.changed_python_files(git_root, options.base):
                path = git_root / relpath
                if not _is_test_file(relpath):
                    text = read_source(path)[0]
                    out.append(_FileToCheck(path, relpath, text, at_base(relpath), changed_only=True))
            return out
        for change in gitdiff.staged_python_files(git_root):
            staged = gitdiff.staged_text(git_root, change.relpath)
            if staged is None or _is_test_file(change.relpath):
                continue
            head = None if change.added else gitdiff.head_text(git_root, change.relpath)
            out.append(_FileToCheck(change.path, change.relpath, staged, head, change.lines))
        return out

    out = []
    for given in options.paths:
        path = (cwd / given).resolve()
        if not path.is_file():
            raise UsageError(f"{given}: no such file")
        relpath = _relpath(path, git_root) if git_root else path.name
        if path.suffix not in (".py", ".pyi") or _is_test_file(relpath):
            continue  # tests are what functions are checked against, not functions to check
        text = read_source(path)[0]
        out.append(_FileToCheck(path, relpath, text, at_base(relpath), changed_only=options.changed_only))
    return out


def _check_file(
    verifier: Verifier, item: _FileToCheck, root: Path, status: StatusSink, cancel: CancelToken
) -> list[FunctionReport]:
    from .syntax.splice import normalise, parse_error
    from .syntax.targets import function_targets, functions_touching_lines
    from .verify.cascade import VerifyError

    relpath = _relpath(item.path, root)
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
        status.started(f"checking {relpath}:{_def_line(target) + 1} {target.qualname}")
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
                    _def_line(target) + 1,
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


# -- fix -----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FixOptions:
    specs: tuple[str, ...] = ()
    """PATH (every stub in it) or FILE:LINE (the function at that 1-based line)."""
    apply: bool = False


@dataclasses.dataclass
class _FixFile:
    path: Path
    lines: list[int | None] = dataclasses.field(default_factory=list)
    """0-based lines of the requested functions; None means every stub."""


PipelineFactory = Callable[[Settings], "Pipeline"]


def run_fix(
    options: FixOptions,
    *,
    settings_for: SettingsFor,
    status: StatusSink | None = None,
    cancel: CancelToken | None = None,
    cwd: Path | None = None,
    pipeline_factory: PipelineFactory | None = None,
) -> RunReport:
    """Generate, verify and (with ``apply``) write a body for each target. Never raises for bad input."""
    from .model.engine import EngineError
    from .model.source import ModelError
    from .verify.cascade import VerifyError

    status = status or _Quiet()
    cancel = cancel or CancelToken()
    cwd = (cwd or Path.cwd()).resolve()
    report = RunReport(command="fix", root=str(cwd))
    try:
        files = _fix_files(options, cwd)
    except UsageError as exc:
        report.error = str(exc)
        return report
    if not files:
        report.notes.append("no Python files in the staged change")
        return report

    root = find_project_root(files[0].path)
    report.root = str(root)
    settings = settings_for(root)
    report.problems.extend(settings.problems)

    # Read and target every file first: a bad file is a usage error before the model is loaded.
    plans: list[tuple[_FixFile, str, str, list[EditTarget]]] = []
    try:
        for item in files:
            text, digest = read_source(item.path)
            plans.append((item, text, digest, _fix_targets(item, text)))
    except (UsageError, TargetError) as exc:
        report.error = str(exc)
        return report
    if not any(targets for *_, targets in plans):
        report.notes.append("no stub function found (give FILE:LINE to rewrite a specific function)")
        return report

    if pipeline_factory is None:
        from .pipeline import Pipeline

        pipeline_factory = Pipeline
    pipeline = pipeline_factory(settings)
    try:
        status.started("loading the model")
        pipeline.engine()
        for item, text, digest, targets in plans:
            report.functions.extend(
                _fix_file(pipeline, item.path, text, digest, targets, root, options, settings, status, cancel)
            )
    except (ModelError, EngineError, ImportError) as exc:
        report.error = (
            str(exc) if not isinstance(exc, ImportError) else f"llama-cpp-python is not usable: {exc}"
        )
    except VerifyError as exc:
        report.error = str(exc)
    finally:
        pipeline.close()
    return report


def _fix_files(options: FixOptions, cwd: Path) -> list[_FixFile]:
    from . import gitdiff

    by_path: dict[Path, _FixFile] = {}
    if not options.specs:
        git_root = gitdiff.repo_root(cwd)
        if git_root is None:
            raise UsageError("not in a git repository: give the files to fix (lsp-verify fix FILE...)")
        try:
            staged = gitdiff.staged_python_files(git_root)
        except gitdiff.GitError as exc:
            raise UsageError(str(exc)) from exc
        for change in staged:
            if not _is_test_file(change.relpath) and change.path.is_file():
                by_path.setdefault(change.path.resolve(), _FixFile(change.path.resolve())).lines.append(None)
        return list(by_path.values())
    for spec in options.specs:
        directory = (cwd / spec).resolve()
        if directory.is_dir():
            # Every stub in the package's source files (tests and hidden directories left out).
            for path in sorted(directory.rglob("*.py")):
                relative = path.relative_to(directory).as_posix()
                if not _is_test_file(relative) and not any(p.startswith(".") for p in relative.split("/")):
                    by_path.setdefault(path, _FixFile(path)).lines.append(None)
            continue
        path, line = parse_location(str(cwd / spec))
        by_path.setdefault(path, _FixFile(path)).lines.append(line)
    return list(by_path.values())


def _fix_targets(item: _FixFile, text: str) -> list[EditTarget]:
    """The functions to write in one file, each once, in document order."""
    from .syntax.splice import parse_error
    from .syntax.targets import find_stub_targets, target_at

    problem = parse_error(text)
    if problem is not None:
        raise UsageError(f"{item.path}: the file does not parse ({problem}); fix the syntax first")
    chosen: dict[int, EditTarget] = {}
    for line in item.lines:
        found = find_stub_targets(text, item.path) if line is None else [target_at(text, item.path, line)]
        for target in found:
            chosen.setdefault(target.body_start_byte, target)
    return [chosen[key] for key in sorted(chosen)]


def _fix_file(
    pipeline: Pipeline,
    path: Path,
    original: str,
    digest: str,
    targets: list[EditTarget],
    root: Path,
    options: FixOptions,
    settings: Settings,
    status: StatusSink,
    cancel: CancelToken,
) -> list[FunctionReport]:
    from .pipeline import FixRequest
    from .syntax.targets import function_targets

    relpath = _relpath(path, root)
    text = original
    reports: list[FunctionReport] = []
    for wanted in targets:
        # Earlier bodies in this file may have moved the function: find it again by name in the new text.
        current = _same_function(function_targets(text, path), wanted, targets)
        status.started(f"fixing {relpath}:{_def_line(current) + 1} {current.qualname}")
        fix = pipeline.run(
            FixRequest(path=path, text=text, root=root, line=current.body_start_line),
            cancel=cancel,
            on_progress=status.progress,
        )
        reports.append(_fix_outcome(fix, text, relpath, settings))
        best = _accepted(fix, settings)
        if best is not None:
            text = best.candidate.new_text

    if options.apply and text != original:
        try:
            write_if_unchanged(path, text, digest)
        except (FileChanged, OSError) as exc:
            message = str(exc) if isinstance(exc, FileChanged) else f"{path}: cannot write: {exc}"
            return [
                dataclasses.replace(r, status="error", applied=False, message=message)
                if r.status == "pass"
                else r
                for r in reports
            ]
        return [dataclasses.replace(r, applied=True) if r.status == "pass" else r for r in reports]
    return reports


def _same_function(found: list[EditTarget], wanted: EditTarget, all_wanted: list[EditTarget]) -> EditTarget:
    occurrence = [t.qualname for t in all_wanted if t.def_start_line < wanted.def_start_line].count(
        wanted.qualname
    )
    matches = [t for t in found if t.qualname == wanted.qualname]
    return matches[min(occurrence, len(matches) - 1)] if matches else wanted


def _accepted(fix: FixReport, settings: Settings) -> CandidateResult | None:
    for result in fix.passing:
        if settings.require_tests and result.evidence is not Evidence.TESTS:
            continue
        return result
    return None


def _fix_outcome(fix: FixReport, text: str, relpath: str, settings: Settings) -> FunctionReport:
    best = _accepted(fix, settings)
    summary = fix.message.splitlines()
    details = tuple(summary[1:])
    if best is not None:
        diff = unified_diff(text, best.candidate.new_text, relpath)
        how = "behave alike" if best.probe_outputs else "agree"
        votes = agreeing_samples(fix.results, best)
        message = (
            f"verified: {describe(best)}; {votes} of {fix.n_generated} samples {how}, {fix.seconds:.1f}s"
        )
        return function_report(fix.target, best, relpath, message=message, details=fix.notes, diff=diff)
    if fix.passing and settings.require_tests:
        message = "only types-only candidates passed, and --require-tests refuses them (no nearby tests)"
    else:
        message = summary[0] if summary else "no candidate passed verification"
    failed = fix.results[0] if fix.results else None
    return FunctionReport(
        file=relpath,
        qualname=fix.target.qualname,
        line=_def_line(fix.target) + 1,
        status="fail",
        evidence="none",
        message=message,
        mypy_new_errors=failed.new_mypy_errors if failed else (),
        tests_selected=failed.tests_selected if failed else (),
        details=details,
        seconds=fix.seconds,
    )


# -- generate ------------------------------------------------------------------------------------------
def generate_candidates(
    path: Path, line: int, *, settings_for: SettingsFor, status: StatusSink | None = None
) -> list[tuple[str, str]]:
    """The distinct candidates the model writes for the function at 0-based ``line``, NOT verified.

    The prompt is the pipeline's own (same target, same nearby tests), so what this prints is what the
    verifier would be given. Returns (unified diff, note) per distinct candidate, in sequence order.
    """
    from .model.types import Generation
    from .pipeline import FixRequest, Pipeline, candidate_from
    from .syntax.targets import target_at

    status = status or _Quiet()
    text, _ = read_source(path)
    root = find_project_root(path)
    settings = settings_for(root)
    try:
        target = target_at(text, path, line)
    except TargetError as exc:
        raise UsageError(str(exc)) from exc
    relpath = _relpath(path, root)
    pipeline = Pipeline(settings)
    try:
        status.started(f"selecting the tests near {target.qualname}")
        request = FixRequest(path=path, text=text, root=root, line=line)
        plan = pipeline.verifier(root).prepare(target, text, CancelToken())
        status.started("loading the model")
        prompt, params = pipeline.prompt(request, target, plan)
        status.started(f"generating {settings.k} candidates for {target.qualname}")
        generations: list[Generation] = pipeline.engine().generate(prompt, params)
    finally:
        pipeline.close()

    seen: dict[str, int] = {}
    out: list[tuple[str, str]] = []
    for generation in generations:
        candidate = candidate_from(generation, prompt, text, target)
        if candidate is None or candidate.key in seen:
            continue
        seen[candidate.key] = len(out)
        note = (
            f"sequence {generation.index}, {generation.n_tokens} tokens, mean logprob "
            f"{generation.mean_logprob:.3f}, finished by {generation.finish_reason}"
        )
        out.append((unified_diff(text, candidate.new_text, relpath), note))
    return out
