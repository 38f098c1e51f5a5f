"""Ranking: passing candidates first, by tests passed, then agreement votes, then log-probability."""

from __future__ import annotations

from lsp_verify.verify.rank import rank
from lsp_verify.verify.types import Candidate, CandidateResult, Evidence, StageResult, TestOutcome


def result(
    index: int,
    passed: bool,
    key: str,
    logprob: float = -1.0,
    duplicates: int = 0,
    tests: tuple[str, ...] = ("t::a",),
) -> CandidateResult:
    candidate = Candidate(index, body=key, new_text=key, key=key, mean_logprob=logprob, duplicates=duplicates)
    outcomes = tuple(TestOutcome(t, "passed" if passed else "failed") for t in tests)
    return CandidateResult(
        candidate=candidate,
        passed=passed,
        evidence=Evidence.TESTS if passed else Evidence.NONE,
        stages=(StageResult("tests", passed, 0.1),),
        tests_selected=tests,
        tests_passed=tests if passed else (),
        outcomes=outcomes,
    )


def test_failing_candidates_come_last_in_generation_order() -> None:
    ranked = rank([result(2, False, "x"), result(0, True, "a"), result(1, False, "y")])
    assert [r.candidate.index for r in ranked] == [0, 1, 2]


def test_more_tests_passed_beats_more_votes_and_logprob() -> None:
    few = result(0, True, "a", logprob=-0.1, duplicates=5, tests=("t::a",))
    many = result(1, True, "b", logprob=-3.0, tests=("t::a", "t::b"))
    assert [r.candidate.index for r in rank([few, many])] == [1, 0]


def test_votes_count_duplicates_before_logprob() -> None:
    likely = result(0, True, "a", logprob=-0.1)
    voted = result(1, True, "b", logprob=-2.0, duplicates=2)
    assert [r.candidate.index for r in rank([likely, voted])] == [1, 0]


def test_logprob_breaks_ties() -> None:
    low = result(0, True, "a", logprob=-2.0)
    high = result(1, True, "b", logprob=-0.5)
    assert [r.candidate.index for r in rank([low, high])] == [1, 0]
