"""What a quality run records per problem, and the figures derived from it per k.

The pass@k estimator, the per-problem JSONL records (every sequence, every distinct candidate with its
verification and its held-out verdict), and the per-k views: the figures of the first k sequences of one
k = max run, re-ranked with the pipeline's own ``rank``.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "server") not in sys.path:
    # Run from a checkout without installing: the package lives in server/.
    sys.path.insert(0, str(REPO / "server"))

if TYPE_CHECKING:
    from lsp_verify.pipeline import FixReport


# -------------------------------------------------------------------------------------------- estimator


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), computed as a product.

    ``n`` samples of which ``c`` are correct. With fewer samples than k it degrades to "any correct".
    """
    if n <= 0:
        return 0.0
    if k > n:
        return 1.0 if c > 0 else 0.0
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


# --------------------------------------------------------------------------------------------- records


@dataclasses.dataclass
class SequenceRecord:
    """One generated sequence.

    ``index`` counts over the whole request, as the pipeline numbers candidates: round r's sequence i has
    index ``r * k + i`` (round 0 is the first; a repair round follows only when nothing passed).
    """

    index: int
    round: int
    key: str | None
    """:func:`key_id` of its body's de-duplication key (normalised code); None when no body could be read."""
    finish_reason: str
    n_tokens: int
    finished_s: float
    """From the start of the request."""


@dataclasses.dataclass
class CandidateRecord:
    """One distinct candidate: what the pipeline's verification said, and what the held-out tests say."""

    key: str
    """:func:`key_id` of the de-duplication key."""
    index: int
    body: str
    verified: bool
    evidence: str
    first_error: str | None
    verified_at_s: float
    duplicates: int
    correct: bool
    judge_result: str
    mean_logprob: float | None = None
    behaviour: str | None = None
    """:func:`key_id` of the probe outputs (equal: the candidates behaved alike); None when not probed."""


@dataclasses.dataclass
class RunRecord:
    """One ``Pipeline.run`` of a problem."""

    k: int
    temperature: float
    seconds: float
    first_verified_s: float | None
    n_generated: int
    sequences: list[SequenceRecord]
    candidates: list[CandidateRecord]
    """Rank order of the pipeline: passing candidates first."""
    message: str
    notes: list[str]

    def candidate(self, key: str | None) -> CandidateRecord | None:
        return next((c for c in self.candidates if c.key == key), None)

    def correct_sequences(self, first_round_only: bool = True) -> int:
        seqs = [s for s in self.sequences if s.round == 0 or not first_round_only]
        return sum(1 for s in seqs if (c := self.candidate(s.key)) is not None and c.correct)

    @property
    def first_round(self) -> int:
        return sum(1 for s in self.sequences if s.round == 0)


@dataclasses.dataclass
class KView:
    """The figures of one problem at one k."""

    k: int
    derived: bool
    """True when read off the first k sequences of a larger run rather than measured by a k-run."""
    n: int
    """Samples behind the pass@k estimate: the first round's sequences (a repair round is the pipeline
    reacting to failures, not the model's sampling)."""
    c: int
    """Correct samples among them."""
    surfaced_from_repair: bool
    """The surfaced suggestion came from a repair round (only the full k view can have one)."""
    surfaced: bool
    """A verified suggestion (evidence tests or types only) is shown: the editor default."""
    surfaced_correct: bool
    surfaced_evidence: str | None
    surfaced_tests: bool
    """A suggestion backed by nearby tests is shown (the require_tests policy)."""
    surfaced_tests_correct: bool
    t_first_s: float | None
    t_first_tests_s: float | None
    t_full_s: float


@dataclasses.dataclass
class ProblemRecord:
    task_id: str
    group: str
    config: dict[str, Any]
    target: str | None
    error: str | None
    greedy: RunRecord | None
    runs: list[RunRecord]
    views: list[KView]
    wall_s: float

    def view(self, k: int) -> KView | None:
        return next((v for v in self.views if v.k == k), None)

    @property
    def greedy_correct(self) -> bool:
        return self.greedy is not None and self.greedy.correct_sequences() > 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> ProblemRecord:
        data = json.loads(line)
        return cls(
            task_id=data["task_id"],
            group=data["group"],
            config=data["config"],
            target=data["target"],
            error=data["error"],
            greedy=_run_from_dict(data["greedy"]) if data["greedy"] is not None else None,
            runs=[_run_from_dict(r) for r in data["runs"]],
            views=[KView(**v) for v in data["views"]],
            wall_s=data["wall_s"],
        )


def _run_from_dict(data: dict[str, Any]) -> RunRecord:
    fields = dict(data)
    fields["sequences"] = [SequenceRecord(**s) for s in data["sequences"]]
    fields["candidates"] = [CandidateRecord(**c) for c in data["candidates"]]
    return RunRecord(**fields)


def read_records(path: Path) -> list[ProblemRecord]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                records.append(ProblemRecord.from_json(line))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by an interrupted run: that problem runs again
    return records


# --------------------------------------------------------------------------------------- derived views


def view_of(run: RunRecord, k: int, ranked_keys: Sequence[str] | None = None) -> KView:
    """The figures of ``run`` restricted to its first ``k`` sequences.

    ``ranked_keys``: the rank order of the distinct candidates among those sequences (verified ones first),
    as the pipeline's ``rank`` puts them; None means the run's own order (k == run.k). A derived view
    (k < run.k) sees the first round only: the repair round a k-run would have had cannot be derived.
    """
    derived = k < run.k
    seqs = [s for s in run.sequences if s.index < k] if derived else run.sequences
    keys = {s.key for s in seqs if s.key is not None}
    order = list(ranked_keys) if ranked_keys is not None else [c.key for c in run.candidates]
    subset = [c for key in order if key in keys and (c := run.candidate(key)) is not None]
    passing = [c for c in subset if c.verified]
    with_tests = [c for c in passing if c.evidence == "tests"]
    best = passing[0] if passing else None
    best_tests = with_tests[0] if with_tests else None
    if derived:
        ends = [s.finished_s for s in seqs] + [c.verified_at_s for c in subset]
        t_full = max(ends, default=0.0)
        t_first = min((c.verified_at_s for c in passing), default=None)
    else:
        t_full = run.seconds
        t_first = run.first_verified_s
    return KView(
        k=k,
        derived=derived,
        n=run.first_round,
        c=run.correct_sequences(),
        surfaced_from_repair=best is not None and best.index >= run.k,
        surfaced=best is not None,
        surfaced_correct=best is not None and best.correct,
        surfaced_evidence=best.evidence if best is not None else None,
        surfaced_tests=best_tests is not None,
        surfaced_tests_correct=best_tests is not None and best_tests.correct,
        t_first_s=t_first,
        t_first_tests_s=min((c.verified_at_s for c in with_tests), default=None),
        t_full_s=t_full,
    )


def key_id(key: str) -> str:
    """A short stand-in for a de-duplication key (a normalised syntax tree) in the records."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def rerank_first_k(report: FixReport, sequences: Sequence[SequenceRecord], k: int) -> list[str]:
    """Keys of the distinct candidates among sequences < k, in the order the pipeline's ``rank`` gives them.

    Self-consistency votes are recounted over those k sequences only.
    """
    from lsp_verify.verify.rank import rank

    votes = collections.Counter(s.key for s in sequences if s.index < k and s.key is not None)
    first_index: dict[str, int] = {}
    for s in sorted(sequences, key=lambda s: s.index):
        if s.key is not None:
            first_index.setdefault(s.key, s.index)
    subset = [
        dataclasses.replace(
            r,
            candidate=dataclasses.replace(
                r.candidate,
                index=first_index[key_id(r.candidate.key)],
                duplicates=votes[key_id(r.candidate.key)] - 1,
            ),
        )
        for r in report.results
        if key_id(r.candidate.key) in votes
    ]
    return [key_id(r.candidate.key) for r in rank(subset)]
