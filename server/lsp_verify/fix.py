"""``lsp-verify fix`` (write verified bodies) and ``lsp-verify generate`` (show unverified candidates).

``fix`` runs :class:`~lsp_verify.pipeline.Pipeline` per stub function. When the verified candidates behave
differently, the question that tells them apart is reported (``--format json``: ``question``) and, with an
asker (``--ask`` on a terminal, :func:`terminal_asker`), asked (:mod:`lsp_verify.ask`); answers kept as tests
are appended to the conventional test module when the file is written. A file's verified bodies are applied
one after the other to an in-memory copy (later functions are generated and verified with the earlier ones
filled in), and ``--apply`` writes the result only if the file still has the bytes that were read (in place,
in the file's own encoding: :mod:`.sourcefile`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .cancel import CancelToken
from .config import Settings, find_project_root, repository_top
from .headless import (
    Quiet,
    SettingsFor,
    StatusSink,
    UsageError,
    def_line,
    describe,
    function_report,
    is_test_file,
    parse_location,
    relpath_in,
    unified_diff,
)
from .report import FunctionReport, RunReport
from .sourcefile import FileChanged, SourceError, SourceFile, read_source, write_if_unchanged
from .syntax.target import EditTarget, TargetError
from .verify.question import TestEdit
from .verify.rank import agreeing_samples
from .verify.types import CandidateResult, Evidence

if TYPE_CHECKING:
    from .ask import Asked, Asker
    from .pipeline import FixReport, Pipeline
    from .verify.question import Answer, Question


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
    asker: Asker | None = None,
) -> RunReport:
    """Generate, verify and (with ``apply``) write a body for each target. Never raises for bad input.

    ``asker``: asks the user which output is right when the verified candidates disagree (None: only report
    the question)."""
    from .model.engine import EngineError
    from .model.source import ModelError
    from .verify.cascade import VerifyError

    status = status or Quiet()
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

    # Each file is fixed in its own project (config.find_project_root: a monorepo's members are projects of
    # their own); the settings that shape generation are the first one's, and paths are reported relative to
    # the repository's top.
    root = find_project_root(files[0].path)
    shown_from = repository_top(root) or root
    report.root = str(shown_from)
    settings = settings_for(root)
    report.problems.extend(settings.problems)

    # Read and target every file first: a bad file is a usage error before the model is loaded.
    plans: list[tuple[SourceFile, list[EditTarget]]] = []
    try:
        for item in files:
            source = read_source(item.path)
            plans.append((source, _fix_targets(item, source.text)))
    except (UsageError, SourceError, TargetError) as exc:
        report.error = str(exc)
        return report
    if not any(targets for *_, targets in plans):
        report.notes.append("no stub function found (give FILE:LINE to rewrite a specific function)")
        return report

    if pipeline_factory is None:
        from .pipeline import Pipeline

        # One run, judged once: it waits for the tests that reach each function through others.
        pipeline_factory = functools.partial(Pipeline, reach="wait")
    pipeline = pipeline_factory(settings)
    try:
        status.started("loading the model")
        pipeline.engine()
        for source, targets in plans:
            report.functions.extend(
                _fix_file(pipeline, source, targets, shown_from, options, settings, status, cancel, asker)
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
            raise UsageError(f"{gitdiff.no_repository(cwd)}: give the files to fix (lsp-verify fix FILE...)")
        try:
            staged = gitdiff.staged_python_files(git_root)
        except gitdiff.GitError as exc:
            raise UsageError(str(exc)) from exc
        for change in staged:
            if not is_test_file(change.relpath) and change.path.is_file():
                by_path.setdefault(change.path.resolve(), _FixFile(change.path.resolve())).lines.append(None)
        return list(by_path.values())
    for spec in options.specs:
        directory = (cwd / spec).resolve()
        if directory.is_dir():
            # Every stub in the package's source files (tests and hidden directories left out).
            for path in sorted(directory.rglob("*.py")):
                relative = path.relative_to(directory).as_posix()
                if not is_test_file(relative) and not any(p.startswith(".") for p in relative.split("/")):
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
    source: SourceFile,
    targets: list[EditTarget],
    shown_from: Path,
    options: FixOptions,
    settings: Settings,
    status: StatusSink,
    cancel: CancelToken,
    asker: Asker | None = None,
) -> list[FunctionReport]:
    from .ask import ask_and_keep
    from .model.prompts import PromptTooLarge
    from .pipeline import FixRequest
    from .syntax.targets import function_targets

    path, original = source.path, source.text
    relpath = relpath_in(path, shown_from)
    root = find_project_root(path)
    text = original
    reports: list[FunctionReport] = []
    tests: list[TestEdit] = []
    for wanted in targets:
        # Earlier bodies in this file may have moved the function: find it again by name in the new text.
        current = _same_function(function_targets(text, path), wanted, targets)
        status.started(f"fixing {relpath}:{def_line(current) + 1} {current.qualname}")
        request = FixRequest(path=path, text=text, root=root, line=current.body_start_line)
        try:
            fix = pipeline.run(request, cancel=cancel, on_progress=status.progress)
            asked = ask_and_keep(
                settings,
                request,
                fix,
                asker,
                lambda again: pipeline.run(again, cancel=cancel, on_progress=status.progress),
            )
        except PromptTooLarge as exc:  # this function only: the file's other functions may still fit
            line = def_line(current) + 1
            reports.append(FunctionReport(relpath, current.qualname, line, "error", "none", str(exc)))
            continue
        fix = asked.fix
        outcome = _fix_outcome(fix, text, relpath, settings)
        best = _accepted(fix, settings)
        reports.append(_with_question(outcome, asked, shown_from, best is not None))
        if best is not None:
            text = best.candidate.new_text
            if asked.tests is not None:
                tests.append(asked.tests)

    if options.apply and text != original:
        try:
            write_if_unchanged(source, text)
        except (FileChanged, SourceError, OSError) as exc:
            message = str(exc) if not isinstance(exc, OSError) else f"{path}: cannot write: {exc}"
            return [
                dataclasses.replace(r, status="error", applied=False, message=message)
                if r.status == "pass"
                else r
                for r in reports
            ]
        problem = _append_tests(tests)
        if problem is not None:
            return [
                dataclasses.replace(r, applied=True, details=(*r.details, problem))
                if r.status == "pass"
                else r
                for r in reports
            ]
        return [dataclasses.replace(r, applied=True) if r.status == "pass" else r for r in reports]
    return reports


def _with_question(outcome: FunctionReport, asked: Asked, root: Path, accepted: bool) -> FunctionReport:
    """The report with the question (and answer), and the answer's test in the diff."""
    if asked.question is None:
        return outcome
    call, answer = asked.question["call"], asked.question["answer"]
    options = " or ".join(f"{o['output']} ({o['samples']})" for o in asked.question["options"])
    if answer is None:
        line = f"question: {call} -> {options}? (lsp-verify fix --ask asks it)"
    else:
        line = f"answered: {call} -> {answer}" + (
            " (no candidate returned it: repaired with it as a doctest)" if asked.repaired else ""
        )
    diff = outcome.diff
    if accepted and asked.tests is not None and diff is not None:
        before = asked.tests.path.read_text(encoding="utf-8") if asked.tests.exists else ""
        diff += unified_diff(before, before + asked.tests.text, relpath_in(asked.tests.path, root))
    return dataclasses.replace(outcome, question=asked.question, details=(*outcome.details, line), diff=diff)


def _append_tests(tests: list[TestEdit]) -> str | None:
    """Append the answers' tests to their modules; a problem line when one cannot be written."""
    for edit in tests:
        try:
            with open(edit.path, "a", encoding="utf-8") as out:
                out.write(edit.text)
        except OSError as exc:
            return f"{edit.path}: cannot write the answer's test: {exc}"
    return None


def terminal_asker(stdin: TextIO, out: TextIO, before: Callable[[], None] | None = None) -> Asker:
    """Asks on a terminal: the options numbered, another value typed as a Python literal (asked again with
    the parse error when it is not one), Enter or end of input to skip."""
    from .verify.question import SKIP, AnswerError, parse_answer

    def ask(question: Question, target: EditTarget) -> Answer:
        if before is not None:
            before()
        out.write(
            f"\n{target.qualname}: the verified candidates disagree. Which is right?\n  {question.call}\n"
        )
        for number, option in enumerate(question.options, start=1):
            plural = "s" if option.samples != 1 else ""
            out.write(f"  {number}) {option.label}    ({option.samples} sample{plural})\n")
        out.write("  or type another value (a Python literal; =3 for the number 3); Enter skips\n")
        while True:
            out.write("answer> ")
            out.flush()
            line = stdin.readline()
            if not line:
                return SKIP
            try:
                return parse_answer(line, question)
            except AnswerError as exc:
                out.write(f"  {exc}\n")

    return ask


def _same_function(found: list[EditTarget], wanted: EditTarget, all_wanted: list[EditTarget]) -> EditTarget:
    occurrence = [t.qualname for t in all_wanted if t.def_start_line < wanted.def_start_line].count(
        wanted.qualname
    )
    matches = [t for t in found if t.qualname == wanted.qualname]
    return matches[min(occurrence, len(matches) - 1)] if matches else wanted


def _acceptable(result: CandidateResult, settings: Settings) -> bool:
    return result.passed and not (settings.require_tests and result.evidence is not Evidence.TESTS)


def _accepted(fix: FixReport, settings: Settings) -> CandidateResult | None:
    return next((r for r in fix.passing if _acceptable(r, settings)), None)


def _first_verified_s(fix: FixReport, settings: Settings) -> float | None:
    """When the first suggestion this run would accept had passed: what an editor could show first. Not
    ``fix.first_verified_s`` itself, which also counts types-only candidates that --require-tests refuses."""
    times = [r.verified_at_s for r in fix.results if _acceptable(r, settings)]
    return min(times) if times else None


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
        outcome = function_report(fix.target, best, relpath, message=message, details=fix.notes, diff=diff)
        return dataclasses.replace(outcome, first_verified_s=_first_verified_s(fix, settings))
    if fix.passing and settings.require_tests:
        message = "only types-only candidates passed, and --require-tests refuses them (no nearby tests)"
    else:
        message = summary[0] if summary else "no candidate passed verification"
    failed = fix.results[0] if fix.results else None
    return FunctionReport(
        file=relpath,
        qualname=fix.target.qualname,
        line=def_line(fix.target) + 1,
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

    status = status or Quiet()
    text = read_source(path).text
    root = find_project_root(path)
    settings = settings_for(root)
    try:
        target = target_at(text, path, line)
    except TargetError as exc:
        raise UsageError(str(exc)) from exc
    relpath = relpath_in(path, root)
    pipeline = Pipeline(settings, reach="wait")
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
