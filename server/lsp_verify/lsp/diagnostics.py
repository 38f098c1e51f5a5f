"""Diagnostics on save: what ``lsp-verify check`` finds in the functions a document changed, at their lines.

On ``didSave`` (and on ``didOpen``, for a file opened with uncommitted changes) the functions that differ
from git HEAD - outside git, from the text the file had when it was opened - are checked exactly as
:func:`lsp_verify.check.check_text` checks them, in the pipeline's warm verifier, on the pipeline worker.
The handlers only start a debounced task and return: saves in quick succession run one check, for the last
version; an edit, a newer save or closing the file cancels it. What is published:

- a file that does not parse: one diagnostic at the syntax error;
- a new mypy error: at its line;
- the nearby tests the change breaks: one diagnostic at the function's name ("test_ordinal fails: expected
  'st', got 'th'", "(and 3 more failing tests)"), with ``relatedInformation`` at each test; a test killed at
  ``test_timeout_s`` is a timeout there;
- a function that could not be checked at all (its tests cannot be collected): a warning at its name - an
  error when the change itself stops them from collecting (the function renamed, its tests still importing
  the old name), as ``lsp-verify check`` fails it;
- a change that stops the tests from being collected (a module-level import that fails): one diagnostic on
  the first line.

Each diagnostic of a function carries, in ``data``, what the quick fix "Fix `name` (verified)" needs
(:func:`quick_fixes`): the failing test's source and error go into the model's prompt. The full set is
published after every check, so what was fixed disappears. An untrusted workspace is checked by types
only, as the verifier does for code actions.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.uris import from_fs_path
from pygls.workspace import TextDocument

from ..cancel import Cancelled, CancelToken
from ..check import FunctionCheck, check_text
from ..headless import def_line
from ..syntax import pyast
from ..syntax.target import EditTarget
from ..verify.pytest_run import failure_summary
from ..verify.types import TestOutcome
from . import actions, jobs

if TYPE_CHECKING:
    from .server import VerifyServer

log = logging.getLogger(__name__)

SOURCE = "lsp-verify"
DEBOUNCE_S = 0.3
"""A burst of saves (format on save, "save all") runs one check, for the text of the last one."""
FIX_KIND = types.CodeActionKind.QuickFix
_MYPY_LINE = re.compile(r"line (\d+): (.*)")
_ASSERT_EQ = re.compile(r"^(?:AssertionError: )?assert (.+?) == (.+)$")
_ERROR_PREFIX = re.compile(r"^E(?:\s+|$)")


@dataclasses.dataclass(frozen=True)
class FixHint:
    """What a diagnostic's quick fix needs (kept in ``Diagnostic.data``)."""

    uri: str
    line: int
    """0-based line of the function's ``def`` when checked (with ``name``: one quick fix per function)."""
    name: str
    feedback: str
    """The failure shown to the model: the error and the failing test's source."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: object) -> FixHint | None:
        if not isinstance(data, dict):
            return None
        uri, line, name, feedback = (data.get(k) for k in ("uri", "line", "name", "feedback"))
        if not (isinstance(uri, str) and isinstance(line, int) and isinstance(name, str)):
            return None
        return cls(uri, line, name, feedback if isinstance(feedback, str) else "")


class OnSaveChecks:
    """The server's on-save checks: one debounced task per document and the text each was opened with."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._opened: dict[str, str] = {}
        self._published: set[str] = set()

    def opened(self, ls: VerifyServer, doc: TextDocument) -> None:
        # Outside git the text as opened is the base; a repeated didOpen starts the document afresh.
        self._opened[doc.uri] = doc.source
        self.schedule(ls, doc.uri)

    def schedule(self, ls: VerifyServer, uri: str) -> None:
        """Check ``uri`` once no newer save arrived for :data:`DEBOUNCE_S`; a newer call replaces this."""
        if not ls.settings.check_on_save or not uri.startswith("file:") or not uri.endswith((".py", ".pyi")):
            return
        older = self._tasks.pop(uri, None)
        if older is not None:
            older.cancel()
        version = ls.workspace.get_text_document(uri).version
        self._tasks[uri] = asyncio.get_running_loop().create_task(self._check(ls, uri, version))

    def closed(self, ls: VerifyServer, uri: str) -> None:
        task = self._tasks.pop(uri, None)
        if task is not None:
            task.cancel()
        self._opened.pop(uri, None)
        if uri in self._published:
            self._published.discard(uri)
            ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    async def _check(self, ls: VerifyServer, uri: str, version: int | None) -> None:
        await asyncio.sleep(DEBOUNCE_S)
        doc = ls.workspace.get_text_document(uri)
        if doc.version != version:
            return  # typed after the save: the text saved is gone, and the next save checks the new one
        text, path = doc.source, Path(doc.path)
        where = ls.request_for(path, text, None, version)  # its project, folder and trust
        opened = self._opened.get(uri, text)
        pipeline = ls.pipeline
        if pipeline is None:
            return

        def work(token: CancelToken) -> list[FunctionCheck]:
            base = base_text(path, opened)
            if base == text:
                return []  # nothing changed: no verifier needed
            verifier = pipeline.verifier(where.root, where.workspace, where.trusted)
            return check_text(verifier, path, text, base, token)

        job = ls.worker.submit(work, key=(uri, "check on save"), uri=uri)
        try:
            checks = await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            job.cancel(jobs.SUPERSEDED)
            raise
        except Cancelled:
            return
        except Exception as exc:
            log.exception("the check on save of %s failed", uri)
            ls.show(types.MessageType.Error, f"lsp-verify could not check {path.name} on save: {exc}")
            return
        finally:
            if self._tasks.get(uri) is asyncio.current_task():
                del self._tasks[uri]
        current = ls.workspace.text_documents.get(unquote(uri))  # pygls keys its documents unquoted
        if current is None or current.version != version:
            return  # closed or edited meanwhile: the next save checks the new text
        diagnostics = to_diagnostics(checks, uri, text, where.root, doc)
        if not checks and uri not in self._published:
            return  # nothing changed, nothing shown
        self._published.add(uri)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version)
        )
        ls.log_to_client(
            f"lsp-verify: checked {path.name} (version {version}) on save: {len(checks)} changed "
            f"function(s), {len(diagnostics)} problem(s)"
        )


def base_text(path: Path, opened: str) -> str | None:
    """What the file is compared with: git HEAD's version (None: not committed, every function is new), or
    outside git the text it was opened with."""
    from .. import gitdiff

    root = gitdiff.repo_root(path)
    if root is None:
        return opened
    try:
        return gitdiff.head_text(root, path.resolve().relative_to(root).as_posix())
    except (gitdiff.GitError, ValueError):
        return opened


def to_diagnostics(
    checks: Sequence[FunctionCheck], uri: str, text: str, root: Path, doc: TextDocument
) -> list[types.Diagnostic]:
    """The diagnostics for what :func:`check_text` found (nothing for a function that passed)."""
    lines = text.splitlines()
    out: list[types.Diagnostic] = []
    for check in checks:
        report, target = check.report, check.target
        if target is None:  # the module: it does not parse, the tests cannot be collected, or mypy
            if report.message.startswith("mypy: "):
                code = "type-error"
            else:
                code = "syntax" if report.evidence == "none" else "collection"
            out.append(_diagnostic(doc, lines, report.line - 1, report.message, code))
            continue
        if report.status == "pass":
            continue
        where = def_line(target)
        if check.result is None and report.status == "fail":  # the change stops its tests from collecting
            message = f"{target.qualname}: {report.message}"
            out.append(_diagnostic(doc, lines, where, message, "collection", target.name))
            continue
        if check.result is None:
            message = f"lsp-verify could not check {target.qualname}: {report.message}"
            out.append(_diagnostic(doc, lines, where, message, "not-checked", target.name, warning=True))
            continue
        for error in check.result.new_mypy_errors:
            match = _MYPY_LINE.match(error)
            line = int(match.group(1)) - 1 if match else where
            message = f"mypy: {match.group(2) if match else error}"
            diagnostic = _diagnostic(doc, lines, line, message, "type-error")
            diagnostic.data = FixHint(uri, where, target.name, f"{message} (line {line + 1})").to_json()
            out.append(diagnostic)
        if check.result.passed and report.status == "fail":
            # Its own check passed; what imports the module does not type-check with it (a changed
            # signature): no quick fix, which would only rewrite the body.
            message = f"{target.qualname}: {report.message}"
            out.append(_diagnostic(doc, lines, where, message, "type-error", target.name))
            continue
        if check.charged:
            out.append(_test_diagnostic(doc, lines, uri, target, where, check.charged, root))
        if not check.result.new_mypy_errors and not check.charged:
            diagnostic = _diagnostic(
                doc, lines, where, f"{target.qualname}: {report.message}", "check", target.name
            )
            diagnostic.data = FixHint(uri, where, target.name, report.message).to_json()
            out.append(diagnostic)
    return out


def quick_fixes(
    ls: VerifyServer, doc: TextDocument, diagnostics: Sequence[types.Diagnostic]
) -> list[types.CodeAction]:
    """ "Fix `name` (verified)" for each of our diagnostics in the request's context (one per function)."""
    out: list[types.CodeAction] = []
    seen: set[tuple[int, str]] = set()
    for diagnostic in diagnostics:
        hint = FixHint.from_json(diagnostic.data) if diagnostic.source == SOURCE else None
        if hint is None or hint.uri != doc.uri or (hint.line, hint.name) in seen:
            continue
        seen.add((hint.line, hint.name))
        trusted = ls.trusts(Path(doc.path))
        title = f"Fix `{hint.name}` ({'verified' if trusted else actions.UNTRUSTED_LABEL})"
        # The diagnostic's own line: inside the function, and moved by the client if lines were added above.
        line = diagnostic.range.start.line
        args = actions.FixArgs(uri=doc.uri, line=line, version=doc.version, feedback=hint.feedback)
        action = types.CodeAction(title=title, kind=FIX_KIND, diagnostics=[diagnostic], is_preferred=True)
        if ls.resolves_edit:
            action.data = args.to_json()
        else:
            action.command = types.Command(
                title=title, command=actions.VERIFY_AND_APPLY, arguments=[args.to_json()]
            )
        out.append(action)
    return out


def test_failure(outcome: TestOutcome) -> str:
    """One line for a failing test: "test_x fails: expected 'st', got 'th'" or "test_x timed out: ..."."""
    name = outcome.nodeid.rsplit("::", 1)[-1]
    summary = _failure_line(outcome.message)
    if outcome.outcome == "timeout":
        return f"{name} timed out: {summary or 'killed'}"
    verb = "fails" if outcome.outcome == "failed" else "errors"
    return f"{name} {verb}: {summary}" if summary else f"{name} {verb}"


def _failure_line(message: str) -> str:
    """pytest's first error line (its ``E`` lines), an ``assert a == b`` as "expected b, got a"."""
    summary = failure_summary(message)
    if ">>>" in summary:  # a doctest: the example, what it expected and what it got
        return summary
    errors = [
        _ERROR_PREFIX.sub("", line).strip() for line in message.splitlines() if _ERROR_PREFIX.match(line)
    ]
    errors = [line for line in errors if line]
    for line in errors:
        equal = _ASSERT_EQ.match(line)
        if equal:
            return f"expected {equal.group(2)}, got {equal.group(1)}"
    return errors[0] if errors else summary


def _test_diagnostic(
    doc: TextDocument,
    lines: list[str],
    uri: str,
    target: EditTarget,
    where: int,
    failing: Sequence[TestOutcome],
    root: Path,
) -> types.Diagnostic:
    """One diagnostic for the tests a function breaks (at its name): the first test's failure, how many
    more, and each test's line and failure in ``relatedInformation``."""
    first = failing[0]
    message = test_failure(first)
    if len(failing) > 1:
        message += f" (and {len(failing) - 1} more failing test{'s' if len(failing) > 2 else ''})"
    code = "test-timeout" if first.outcome == "timeout" else "test-failure"
    diagnostic = _diagnostic(doc, lines, where, message, code, target.name)
    related = []
    source = ""
    for outcome in failing:
        test_path, test_line, test_source = _test_location(root, outcome.nodeid)
        source = source or test_source
        test_uri = from_fs_path(str(test_path)) if test_path is not None else None
        if test_uri:
            place = types.Range(start=types.Position(test_line, 0), end=types.Position(test_line, 0))
            related.append(
                types.DiagnosticRelatedInformation(types.Location(test_uri, place), test_failure(outcome))
            )
    diagnostic.related_information = related or None
    feedback = message + (f"\nThe failing test:\n```python\n{source}\n```" if source else "")
    diagnostic.data = FixHint(uri, where, target.name, feedback).to_json()
    return diagnostic


def _test_location(root: Path, nodeid: str) -> tuple[Path | None, int, str]:
    """The file, 0-based line and source of the test ``nodeid`` names (a doctest: its module's top)."""
    parts = nodeid.split("::")
    path = root / parts[0]
    try:
        text = path.read_text(encoding="utf-8")
        tree = pyast.parse_module(text)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return (path if path.is_file() else None), 0, ""
    names = [part.split("[", 1)[0] for part in parts[1:]]
    scope: list[ast.stmt] = tree.body
    found: ast.stmt | None = None
    for name in names:
        found = next(
            (
                node
                for node in scope
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node.name == name
            ),
            None,
        )
        if found is None:
            return path, 0, ""
        scope = found.body
    if found is None:
        return path, 0, ""
    first = min([found.lineno, *(d.lineno for d in getattr(found, "decorator_list", []))])
    return path, first - 1, ast.get_source_segment(text, found) or ""


def _diagnostic(
    doc: TextDocument,
    lines: list[str],
    line: int,
    message: str,
    code: str,
    name: str | None = None,
    *,
    warning: bool = False,
) -> types.Diagnostic:
    """At ``name`` on ``line`` (the function's name in its ``def``), else the line's text."""
    line = min(max(line, 0), max(len(lines) - 1, 0))
    text = lines[line] if lines else ""
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    if name is not None:
        match = re.search(rf"\bdef\s+({re.escape(name)})\b", text)
        if match:
            start, end = match.start(1), match.end(1)
    codec = doc.position_codec
    return types.Diagnostic(
        range=types.Range(
            start=types.Position(line, codec.client_num_units(text[:start])),
            end=types.Position(line, codec.client_num_units(text[:end])),
        ),
        message=message,
        severity=types.DiagnosticSeverity.Warning if warning else types.DiagnosticSeverity.Error,
        source=SOURCE,
        code=code,
    )
