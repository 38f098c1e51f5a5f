"""Ranking verified candidates: passing ones first, most evidence first, then self-consistency.

Passing candidates are ordered by

1. how many selected tests they pass (more evidence first);
2. the size of their *agreement group*: candidates that behave alike (same outcome on every selected test)
   and are the same code up to formatting (same normalised key). Each candidate brings
   ``Candidate.duplicates + 1`` votes, since de-duplicated sequences still voted for it;
3. mean log-probability under the model;

then the failing candidates, in the order they were generated.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from .types import CandidateResult


def _group(result: CandidateResult) -> tuple[tuple[tuple[str, str], ...], str]:
    return (result.behaviour, result.candidate.key)


def rank(results: Sequence[CandidateResult]) -> list[CandidateResult]:
    """``results`` in the order to show them (see the module docstring)."""
    passing = [r for r in results if r.passed]
    failing = sorted((r for r in results if not r.passed), key=lambda r: r.candidate.index)
    votes: collections.Counter[tuple[tuple[tuple[str, str], ...], str]] = collections.Counter()
    for result in passing:
        votes[_group(result)] += result.candidate.duplicates + 1
    passing.sort(
        key=lambda r: (
            -len(r.tests_passed),
            -votes[_group(r)],
            -r.candidate.mean_logprob,
            r.candidate.index,
        )
    )
    return [*passing, *failing]
