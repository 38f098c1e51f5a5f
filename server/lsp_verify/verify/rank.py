"""Ranking verified candidates: passing ones first, most evidence first, then agreement.

Agreement by behaviour follows CodeT / MBR-exec: the largest group of candidates with the same outputs on
the same inputs is the likeliest to be right. Measured on HumanEval (``bench/rerank.py``), groups of equal
outputs picked better than identical-code votes, and better than near agreement alone, which is therefore
only the tie-break.

Passing candidates are ordered by

1. how many selected tests they pass (more evidence first);
2. *agreement*: how many candidates behave like this one. With behaviour probes (``probe.py``) these are
   the candidates that return the same thing on every probe input, whatever their code looks like;
   without probes, those with the same outcome on every selected test and the same code up to formatting
   (same normalised key). Each candidate brings ``Candidate.duplicates + 1`` votes, since de-duplicated
   sequences still voted for it;
3. near agreement: among equally large groups, the one whose members agree with the others on the most
   probe inputs (:func:`~lsp_verify.verify.probe.agreement`);
4. mean log-probability under the model;

then the failing candidates, in the order they were generated.
"""

from __future__ import annotations

from collections.abc import Sequence

from .probe import agreement
from .types import CandidateResult


def _group(result: CandidateResult) -> tuple[object, ...]:
    return (result.behaviour, result.candidate.key)


def agreement_scores(passing: Sequence[CandidateResult]) -> list[tuple[int, float]]:
    """(votes for exactly this behaviour, weighted near agreement) of each passing candidate."""
    weights = [r.candidate.duplicates + 1 for r in passing]
    near = agreement([r.probe_outputs for r in passing], weights)
    scores = []
    for i, mine in enumerate(passing):
        if mine.probe_outputs:
            alike = (
                w for r, w in zip(passing, weights, strict=True) if r.probe_outputs == mine.probe_outputs
            )
        else:  # no probe: agreement is identical code with identical test outcomes
            alike = (w for r, w in zip(passing, weights, strict=True) if _group(r) == _group(mine))
        scores.append((sum(alike), near[i]))
    return scores


def rank(results: Sequence[CandidateResult]) -> list[CandidateResult]:
    """``results`` in the order to show them (see the module docstring)."""
    passing = [r for r in results if r.passed]
    failing = sorted((r for r in results if not r.passed), key=lambda r: r.candidate.index)
    scores = dict(zip((id(r) for r in passing), agreement_scores(passing), strict=True))
    passing.sort(
        key=lambda r: (
            -len(r.tests_passed),
            -scores[id(r)][0],
            -round(scores[id(r)][1], 9),
            -r.candidate.mean_logprob,
            r.candidate.index,
        )
    )
    return [*passing, *failing]


def agreeing_samples(results: Sequence[CandidateResult], best: CandidateResult) -> int:
    """Generated samples (duplicates included) among the passing ``results`` that agree with ``best``:
    the same output on every probe input when it was probed, else the same code."""
    if not best.probe_outputs:
        return best.candidate.duplicates + 1
    return sum(
        r.candidate.duplicates + 1 for r in results if r.passed and r.probe_outputs == best.probe_outputs
    )
