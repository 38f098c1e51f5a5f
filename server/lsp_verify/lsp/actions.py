"""Code actions offered at the cursor, and the markdown report of a run.

Offering is instant: it needs only tree-sitter (:func:`lsp_verify.syntax.targets.target_at`). The expensive
work runs when the user picks an action, through ``codeAction/resolve`` (the edit is computed lazily) when
the client can resolve ``edit``, else through the ``lsp-verify.verifyAndApply`` command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from lsprotocol import types

from ..pipeline import FixReport, describe_evidence
from ..syntax.target import EditTarget, TargetKind
from ..verify.types import CandidateResult

ACTION_KIND = types.CodeActionKind.RefactorRewrite
VERIFY_AND_APPLY = "lsp-verify.verifyAndApply"
SHOW_REPORT = "lsp-verify.showReport"
UNTRUSTED_LABEL = "types only — workspace not trusted"
UNTRUSTED_HELP = (
    "The workspace is not trusted, so its tests are not run: candidates are checked by parsing and mypy "
    "only, and mypy with a configuration of lsp-verify's that keeps only the project's check options (no "
    "plugins, python_executable, reports or caches of its choosing). To run the nearby tests, mark the "
    'workspace trusted (initializationOptions "trusted": true).'
)


@dataclasses.dataclass(frozen=True)
class FixArgs:
    """Where to write: the document, a 0-based line in the function and the version the user saw."""

    uri: str
    line: int
    version: int | None = None
    feedback: str | None = None
    """A failure to show the model (a quick fix for a diagnostic: the failing test's source and error)."""

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.feedback is None:
            del data["feedback"]
        return data

    @classmethod
    def from_json(cls, args: Sequence[Any]) -> FixArgs:
        """Accepts ``[{uri, line[, version]}]`` and ``[uri, position]`` (position ``{line, character}``)."""
        feedback = None
        if len(args) == 1 and isinstance(args[0], Mapping):
            data = args[0]
            uri, line, version = data.get("uri"), data.get("line"), data.get("version")
            feedback = data.get("feedback")
        elif len(args) == 2 and isinstance(args[1], Mapping):
            uri, line, version = args[0], args[1].get("line"), None
        else:
            raise ValueError("expected [{uri, line}] or [uri, {line, character}]")
        if not isinstance(uri, str) or not isinstance(line, int) or isinstance(line, bool) or line < 0:
            raise ValueError(f"expected a document uri and a 0-based line, got uri={uri!r}, line={line!r}")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise ValueError(f"version must be an integer, got {version!r}")
        if feedback is not None and not isinstance(feedback, str):
            raise ValueError(f"feedback must be a string, got {feedback!r}")
        return cls(uri=uri, line=line, version=version, feedback=feedback)


def action_title(target: EditTarget, trusted: bool) -> str:
    verb = "Complete" if target.kind is TargetKind.STUB else "Fix"
    suffix = "verified" if trusted else UNTRUSTED_LABEL
    return f"{verb} `{target.name}` ({suffix})"


def wanted(only: Sequence[str] | None, ours: str = ACTION_KIND) -> bool:
    """Whether the client's ``context.only`` filter admits the kind ``ours``."""
    return not only or any(kind == ours or ours.startswith(f"{kind}.") for kind in only)


def code_action(target: EditTarget, args: FixArgs, *, trusted: bool, lazy_edit: bool) -> types.CodeAction:
    """The action for ``target``: resolved lazily (``data``) or carried out by the command."""
    title = action_title(target, trusted)
    action = types.CodeAction(title=title, kind=ACTION_KIND, is_preferred=target.kind is TargetKind.STUB)
    if lazy_edit:
        action.data = args.to_json()
    else:
        action.command = types.Command(title=title, command=VERIFY_AND_APPLY, arguments=[args.to_json()])
    return action


def report_markdown(report: FixReport, *, uri: str, trusted: bool) -> str:
    """Every candidate of a run with its evidence and, for failures, the first error."""
    target = report.target
    lines = [
        f"# lsp-verify: `{target.qualname}`",
        "",
        f"- document: {uri} (version {target.version})",
        f"- generated: {report.n_generated}, distinct: {len(report.results)}, passed: {len(report.passing)}",
        f"- time: {report.seconds:.1f}s"
        + (
            f", first verified after {report.first_verified_s:.1f}s"
            if report.first_verified_s is not None
            else ""
        ),
    ]
    if not trusted:
        lines.append(f"- {UNTRUSTED_HELP}")
    lines += ["", "## Summary", "", "```text", report.message, "```"]
    for rank, result in enumerate(report.results, start=1):
        lines += ["", *_candidate_markdown(rank, result)]
    return "\n".join(lines) + "\n"


def _candidate_markdown(rank: int, result: CandidateResult) -> list[str]:
    candidate = result.candidate
    verdict = f"passed ({result.evidence.value})" if result.passed else "failed"
    out = [
        f"## {rank}. candidate {candidate.index + 1} — {verdict}",
        "",
        f"- evidence: {describe_evidence(result)}",
        f"- votes: {candidate.duplicates + 1}, mean log-probability: {candidate.mean_logprob:.3f}",
    ]
    if result.probe_outputs:
        failures = sum(1 for output in result.probe_outputs if output.startswith("!"))
        out.append(
            f"- behaviour: called on {len(result.probe_outputs)} probe inputs"
            + (f" ({failures} raised or timed out)" if failures else "")
        )
    if result.first_error:
        out.append(f"- first failure: {result.first_error}")
    out += ["", "| check | ok | seconds | detail |", "| --- | --- | --- | --- |"]
    for stage in result.stages:
        detail = stage.detail.replace("|", "\\|").replace("\n", " ")[:200]
        out.append(f"| {stage.stage} | {'yes' if stage.ok else 'no'} | {stage.seconds:.2f} | {detail} |")
    for outcome in result.outcomes:
        out.append(
            f"- test `{outcome.nodeid}`: {outcome.outcome}"
            + (f" — {outcome.message}" if outcome.message else "")
        )
    for error in result.new_mypy_errors:
        out.append(f"- new mypy error: {error}")
    out += ["", "```python", candidate.body.rstrip("\n"), "```"]
    return out
