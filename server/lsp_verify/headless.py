"""What the headless commands (``check``, ``fix``, ``generate``) share: usage errors, the status sink, file
locations, diffs, and the per-function report record. (Reading and writing the files: :mod:`.sourcefile`.)

The commands themselves live in :mod:`lsp_verify.check` and :mod:`lsp_verify.fix`; :mod:`lsp_verify.cli`
only parses arguments and prints.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .config import Settings
from .report import FunctionReport, Status
from .syntax.target import EditTarget
from .verify.types import CandidateResult, Evidence

if TYPE_CHECKING:
    from .pipeline import Progress

SettingsFor = Callable[[Path], Settings]
"""Settings for a project root: ``[tool.lsp-verify]`` plus the command line's flags."""


class UsageError(Exception):
    """A bad argument or file: reported with exit code 2 before anything runs."""


class StatusSink(Protocol):
    """Where progress goes (the CLI's stderr status line)."""

    def started(self, message: str) -> None: ...

    def progress(self, progress: Progress) -> None: ...


class Quiet:
    """A status sink that shows nothing."""

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


def relpath_in(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def is_test_file(relpath: str) -> bool:
    name = relpath.rsplit("/", 1)[-1]
    parts = relpath.split("/")[:-1]
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name in ("conftest.py", "tests.py", "test.py")  # the last two: unittest's discovery finds them
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
        line=def_line(target) + 1,
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
    return ", ".join(result.evidence_parts)


def def_line(target: EditTarget) -> int:
    """0-based line of the ``def`` itself (after decorators)."""
    for offset, line in enumerate(target.header.splitlines()):
        if line.lstrip().startswith(("def ", "async def ", "async\tdef")):
            return target.def_start_line + offset
    return target.def_start_line
