"""Ranking: passing candidates first, by tests passed, then agreement votes, then log-probability."""

from __future__ import annotations

import dataclasses

from lsp_verify.verify.rank import agreeing_samples, rank
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


def probed(r: CandidateResult, *outputs: str) -> CandidateResult:
    return dataclasses.replace(r, probe_outputs=outputs)


def test_behaviour_agreement_beats_identical_code() -> None:
    """Two identical samples that behave differently from three distinct bodies that behave alike."""
    twice = probed(result(0, True, "w", logprob=-0.1, duplicates=1), "1", "2", "!IndexError")
    alike = [probed(result(i, True, f"r{i}", logprob=-1.0), "1", "3", "!IndexError") for i in (1, 2, 3)]
    ranked = rank([twice, *alike])
    assert ranked[0].candidate.index == 1  # the behaviour three samples share; log-probability breaks ties
    assert ranked[-1].candidate.index == 0
    assert agreeing_samples(ranked, ranked[0]) == 3
    assert agreeing_samples(ranked, twice) == 2


def test_exact_agreement_first_then_near_agreement_breaks_ties() -> None:
    a = probed(result(0, True, "a", logprob=-2.0), "1", "2", "3", "4")
    b = probed(result(1, True, "b", logprob=-1.0), "1", "2", "3", "!ValueError")
    c = probed(result(2, True, "c", logprob=-0.1), "9", "9", "9", "4")
    # One vote each for every behaviour; near agreement a: 1 + .75 + .25, b: 1 + .75, c: 1 + .25.
    assert [r.candidate.index for r in rank([a, b, c])] == [0, 1, 2]
    twice = probed(result(3, True, "d", logprob=-3.0, duplicates=1), "9", "9", "9", "9")
    assert rank([a, b, c, twice])[0].candidate.index == 3  # two votes for one behaviour beat near agreement


def test_unprobed_candidates_fall_back_to_identical_code_votes() -> None:
    plain = result(0, True, "a", logprob=-0.1)
    voted = result(1, True, "b", logprob=-2.0, duplicates=2)
    assert [r.candidate.index for r in rank([plain, voted])] == [1, 0]
    assert agreeing_samples([plain, voted], voted) == 3
