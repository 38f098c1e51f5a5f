"""Plain data types of the verification stage."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Literal

StageName = Literal["parse", "mypy", "tests"]


class Evidence(enum.Enum):
    """How strongly a passing candidate is backed."""

    TESTS = "tests"
    """Parses, adds no mypy error, and every selected nearby test passes."""
    TYPES_ONLY = "types_only"
    """Parses and adds no mypy error, but no nearby test exists to run."""
    NONE = "none"
    """Failed a check (or was not checked)."""


@dataclasses.dataclass(frozen=True)
class StageResult:
    stage: StageName
    ok: bool
    seconds: float
    detail: str = ""
    """For a failure, the first error: the message a repair step or a user can act on."""


@dataclasses.dataclass(frozen=True)
class TestOutcome:
    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    """pytest node id, e.g. ``tests/test_calc.py::test_add`` or a doctest id."""
    outcome: Literal["passed", "failed", "error", "skipped", "timeout"]
    message: str = ""


def unbacked_counts(naming: Sequence[TestOutcome]) -> str:
    """How the tests that name a function came to back nothing: "1 skipped, 2 failing before this change
    too" (a skipped test - ``skipif``, ``importorskip``, an xfail that failed as expected - checked
    nothing)."""
    skipped = sum(1 for o in naming if o.outcome == "skipped")
    counts = [f"{skipped} skipped"] if skipped else []
    if len(naming) > skipped:
        counts.append(f"{len(naming) - skipped} failing before this change too")
    return ", ".join(counts)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One generated body, spliced into the document."""

    index: int
    body: str
    """The replacement for the target's body range (indented as in the file)."""
    new_text: str
    """The whole document with the body spliced in."""
    key: str
    """Normalised syntax tree: equal keys mean equal code up to formatting and comments."""
    mean_logprob: float = 0.0
    n_tokens: int = 0
    generated_s: float = 0.0
    duplicates: int = 0
    """How many other generated sequences normalised to the same code (self-consistency votes)."""


@dataclasses.dataclass(frozen=True)
class CandidateResult:
    candidate: Candidate
    passed: bool
    evidence: Evidence
    stages: tuple[StageResult, ...]
    tests_selected: tuple[str, ...] = ()
    tests_passed: tuple[str, ...] = ()
    tests_fixed: tuple[str, ...] = ()
    """Tests that failed on the original code and pass with this candidate."""
    tests_broken: tuple[str, ...] = ()
    """Tests that passed on the original code and fail (or error/time out) with this candidate."""
    new_mypy_errors: tuple[str, ...] = ()
    outcomes: tuple[TestOutcome, ...] = ()
    tests_naming: tuple[str, ...] = ()
    """Those of the outcomes' tests that name the target (the rest guard the module)."""
    mypy_restricted: bool = False
    """mypy ran with our restricted configuration (untrusted workspace), not the project's."""
    probe_outputs: tuple[str, ...] = ()
    """One fingerprint per probe input (result digest or ``!Exception``); empty when not probed."""
    probe_shown: tuple[str | None, ...] = ()
    """Per probe input, the output a question may offer (``repr`` / ``!Exception`` / None); see
    :class:`~lsp_verify.verify.probe.ProbeOutputs`."""
    seconds: float = 0.0
    verified_at_s: float = 0.0
    """Time from the start of the request until this result was known."""

    @property
    def first_error(self) -> str | None:
        for stage in self.stages:
            if not stage.ok:
                return f"{stage.stage}: {stage.detail}"
        return None

    @property
    def mypy_evidence(self) -> str:
        """What the mypy stage showed, as reports say it: "mypy: skipped" when it did not run."""
        name = "mypy (restricted config)" if self.mypy_restricted else "mypy"
        stage = next((stage for stage in self.stages if stage.stage == "mypy"), None)
        if stage is None:
            return "mypy: skipped"
        if stage.ok:
            return f"{name}: no new errors"
        return f"{name}: new errors" if self.new_mypy_errors else f"{name}: failed"

    @property
    def evidence_parts(self) -> list[str]:
        """What backs a passing candidate, as every report says it: mypy, then the tests (or why none)."""
        parts = [self.mypy_evidence]
        # A passing candidate's selected tests that fail failed on the original code too (a sibling's stale
        # docstring example, a broken guard test): said, so that "1/2 passed" on a pass is not a riddle.
        old = (
            sum(1 for o in self.outcomes if o.outcome in ("failed", "error", "timeout")) if self.passed else 0
        )
        already = f", {old} failing before this change too (not counted)" if old else ""
        if self.evidence is Evidence.TESTS:
            parts.append(f"tests: {len(self.tests_passed)}/{len(self.tests_selected)} passed{already}")
            if self.tests_fixed:
                parts.append(f"fixed {len(self.tests_fixed)}")
        elif self.evidence is Evidence.TYPES_ONLY:
            named = set(self.tests_naming)
            naming = [o for o in self.outcomes if o.nodeid in named]
            if naming:  # tests name it, but none of them passed
                parts.append(
                    f"types only (no test that names it passed: {unbacked_counts(naming)}; "
                    f"{len(self.tests_passed)}/{len(self.tests_selected)} passed)"
                )
            elif self.tests_selected:  # the module's tests ran as guards, and none of them names it
                parts.append(
                    f"types only (no test names it; guard tests: "
                    f"{len(self.tests_passed)}/{len(self.tests_selected)} passed{already})"
                )
            else:
                parts.append("types only (no nearby tests)")
        return parts

    @property
    def behaviour(self) -> tuple[tuple[str, str], ...]:
        """Outcome on every selected test: candidates with equal behaviour agree (self-consistency)."""
        return tuple(sorted((o.nodeid, o.outcome) for o in self.outcomes))
