"""What ``lsp-verify check`` and ``lsp-verify fix`` print: one record per function, three formats.

``text`` is for people, ``json`` follows ``report-schema.json`` (its ``schema_version`` changes only when a
field is removed or changes meaning), ``github`` is GitHub Actions workflow commands that annotate the
changed lines in a pull request.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from . import __version__

SCHEMA_VERSION = 1

Status = Literal["pass", "fail", "error"]
"""pass: verified; fail: the code (or every candidate) failed a check; error: could not be checked."""
Command = Literal["check", "fix"]
OutputFormat = Literal["text", "json", "github"]
FORMATS: tuple[OutputFormat, ...] = ("text", "json", "github")


@dataclasses.dataclass(frozen=True)
class FunctionReport:
    """The outcome for one function, in the terms a user acts on."""

    file: str
    """Path relative to the project root, ``/``-separated."""
    qualname: str
    line: int
    """1-based line of the ``def`` (decorators excluded when known)."""
    status: Status
    evidence: str
    """``tests``, ``types_only`` or ``none`` (see verify.types.Evidence)."""
    message: str
    """One line for a person: what passed, or the first thing that failed."""
    mypy_new_errors: tuple[str, ...] = ()
    tests_selected: tuple[str, ...] = ()
    tests_passed: tuple[str, ...] = ()
    tests_failed: tuple[str, ...] = ()
    """Selected tests that failed, errored or timed out."""
    tests_fixed: tuple[str, ...] = ()
    """Tests that failed before (HEAD, or the original code for fix) and pass now."""
    details: tuple[str, ...] = ()
    """Further lines worth reading: test failure messages, notes on the verification."""
    diff: str | None = None
    """fix only: unified diff of the verified candidate."""
    applied: bool | None = None
    """fix only: whether the candidate was written to the file (None when --apply was not given)."""
    seconds: float = 0.0
    question: dict[str, Any] | None = None
    """fix only: the question the passing candidates raise (``call``, ``options`` with their sample counts)
    and the user's ``answer`` (None when not asked or skipped); None when they all behave alike."""
    first_verified_s: float | None = None
    """fix only: seconds from the start of the function's request until the first suggestion it would accept
    passed verification (what an editor could show first); None when none did, and for check."""


@dataclasses.dataclass
class RunReport:
    command: Command
    root: str
    functions: list[FunctionReport] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    """Warnings: invalid settings, caveats that do not change the outcome."""
    error: str | None = None
    """A usage or environment error that stopped the command (exit code 2)."""
    notes: list[str] = dataclasses.field(default_factory=list)
    """Plain remarks, e.g. "no staged Python changes"."""

    @property
    def exit_code(self) -> int:
        if self.error is not None or any(f.status == "error" for f in self.functions):
            return 2
        if any(f.status == "fail" for f in self.functions):
            return 1
        return 0

    def counts(self) -> dict[str, int]:
        return {
            "functions": len(self.functions),
            "passed": sum(f.status == "pass" for f in self.functions),
            "failed": sum(f.status == "fail" for f in self.functions),
            "errors": sum(f.status == "error" for f in self.functions),
        }


def render(report: RunReport, fmt: OutputFormat, *, colour: bool = False) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "github":
        return render_github(report)
    return render_text(report, colour=colour)


# -- json ----------------------------------------------------------------------------------------------
def as_json(report: RunReport) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "lsp-verify",
        "version": __version__,
        "command": report.command,
        "root": report.root,
        "exit_code": report.exit_code,
        "summary": report.counts(),
        "error": report.error,
        "problems": list(report.problems),
        "notes": list(report.notes),
        "functions": [
            {
                "file": f.file,
                "qualname": f.qualname,
                "line": f.line,
                "status": f.status,
                "evidence": f.evidence,
                "message": f.message,
                "mypy_new_errors": list(f.mypy_new_errors),
                "tests": {
                    "selected": list(f.tests_selected),
                    "passed": list(f.tests_passed),
                    "failed": list(f.tests_failed),
                    "fixed": list(f.tests_fixed),
                },
                "details": list(f.details),
                "diff": f.diff,
                "applied": f.applied,
                "seconds": round(f.seconds, 3),
                "question": f.question,
                "first_verified_s": round(f.first_verified_s, 3) if f.first_verified_s is not None else None,
            }
            for f in report.functions
        ],
    }


def render_json(report: RunReport) -> str:
    return json.dumps(as_json(report), indent=2, ensure_ascii=False) + "\n"


# -- github --------------------------------------------------------------------------------------------
def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF are percent-encoded."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: as :func:`escape_data`, plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: Literal["error", "warning", "notice"], message: str, **properties: str | int) -> str:
    props = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items())
    return f"::{level}{' ' + props if props else ''}::{escape_data(message)}"


def render_github(report: RunReport) -> str:
    lines = [annotation("warning", problem, title="lsp-verify") for problem in report.problems]
    if report.error is not None:
        lines.append(annotation("error", report.error, title=f"lsp-verify {report.command}"))
    for f in report.functions:
        body = "\n".join([f.message, *f.details, *f.mypy_new_errors])
        if f.status == "pass":
            if f.diff is None:
                continue  # check: a passing function needs no annotation
            body = "\n".join([f.message, "", f.diff])
            lines.append(
                annotation("notice", body, file=f.file, line=f.line, title=f"lsp-verify fix: {f.qualname}")
            )
            continue
        title = f"lsp-verify {report.command}: {f.qualname}"
        lines.append(annotation("error", body, file=f.file, line=f.line, title=title))
    lines.append(_summary_line(report))
    return "\n".join(lines) + "\n"


# -- text ----------------------------------------------------------------------------------------------
_COLOURS = {"pass": "32", "fail": "31", "error": "33", "dim": "2", "add": "32", "del": "31", "hunk": "36"}


def render_text(report: RunReport, *, colour: bool = False) -> str:
    def paint(kind: str, text: str) -> str:
        return f"\x1b[{_COLOURS[kind]}m{text}\x1b[0m" if colour else text

    out: list[str] = []
    # A note every function carries (a test file that failed to collect, how the tests run) is said once,
    # after them, rather than under each of a `check --all`'s hundreds of functions.
    shared = (
        set.intersection(*(set(f.details) for f in report.functions)) if len(report.functions) > 1 else set()
    )
    for f in report.functions:
        label = paint(f.status, f.status.upper().ljust(5))
        out.append(f"{label} {f.file}:{f.line} {f.qualname} — {f.message}")
        for detail in (*(d for d in f.details if d not in shared), *f.mypy_new_errors):
            out.extend("      " + paint("dim", part) for part in detail.splitlines())
        if f.diff:
            out.extend("      " + _paint_diff_line(line, paint) for line in f.diff.splitlines())
        if f.applied:
            out.append(f"      applied to {f.file}")
    for detail in (d for d in report.functions[0].details if d in shared) if shared else ():
        out.append(paint("dim", f"every function above: {detail}"))
    out.extend(report.notes)
    if report.error is not None:
        out.append(paint("error", f"error: {report.error}"))
    out.append(_summary_line(report))
    return "\n".join(out) + "\n"


def _paint_diff_line(line: str, paint: Any) -> str:
    if line.startswith(("+++", "---")):
        return str(paint("dim", line))
    if line.startswith("+"):
        return str(paint("add", line))
    if line.startswith("-"):
        return str(paint("del", line))
    if line.startswith("@@"):
        return str(paint("hunk", line))
    return line


def _summary_line(report: RunReport) -> str:
    c = report.counts()
    verb = "checked" if report.command == "check" else "targeted"
    parts = [f"{c['passed']} passed", f"{c['failed']} failed"]
    if c["errors"]:
        parts.append(f"{c['errors']} could not be checked")
    noun = "function" if c["functions"] == 1 else "functions"
    return f"lsp-verify {report.command}: {c['functions']} {noun} {verb}: {', '.join(parts)}"
