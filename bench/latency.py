"""Time to the first verified suggestion, as a ratio to the time a peer shows its unverified one (issue 15).

For each HumanEval problem (the workspaces of ``bench/quality.py``), in one run on one loaded engine:

* **a** — the peer: one greedy, unverified completion of the same prompt (``Engine.generate`` with k = 1,
  temperature 0), timed from the call to its end. This is what an assistant that does not verify shows.
* **b** — lsp-verify: ``Pipeline.run`` as ``lsp-verify fix`` runs it, timed from the request's start (finding
  the function, selecting its tests, the prompt; the baseline run of the original code overlaps generation,
  for ``lead-overlap``, or comes before it) until the first candidate passes verification
  (``FixReport.first_verified_s``). One ``b`` per variant (``--variants``): the levers measured side by side,
  each with its own pipeline (and warm verifier) on the shared engine. Per variant the table also gives when
  generation started and when the candidate shown first was generated (the stages of b).

The order of a and the variants rotates from problem to problem, so warm-up and drifting load hit all alike.
A run stops at its first verified suggestion (what this measures); a problem where nothing passes runs to
the end of its repair round. The first verified suggestion and the peer's answer are judged with the
problem's held-out tests (``bench/quality.py``'s judge): the precision of what the user is shown first.

    python bench/latency.py                          # first 8 problems, variants k8 and lead
    python bench/latency.py --limit 20 --variants k8,lead,k4 --out bench/results/latency-20.md
    python bench/latency.py --limit 12 --variants lead,lead-overlap --out bench/results/latency-overlap.md
    python bench/latency.py --quorum-replay bench/results/quality-probes-first117.jsonl \
        --out bench/results/latency-quorum.md      # no model: what a quorum stop saves and costs

Prints one line per problem and writes a Markdown table (p50/p90 of b/a, precision) and per-problem JSONL.
This is a benchmark, not a test: the ratios mean something only side by side, on one otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT / "bench"))

import quality  # noqa: E402  (bench/quality.py: problems, workspaces, the held-out judge, percentiles)
import quality_report  # noqa: E402
import runinfo  # noqa: E402

if TYPE_CHECKING:
    from lsp_verify.config import Settings
    from lsp_verify.model.engine import Engine
    from lsp_verify.pipeline import Pipeline


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of running lsp-verify, measured against the peer."""

    name: str
    k: int
    lead: bool
    about: str
    overlap: bool = False
    """Generate while the baseline runs (``Pipeline(overlap_baseline=...)``); False: the baseline first."""
    prepared: bool = False
    """``Pipeline.prepare`` ran (untimed) before the request, as the server does while the cursor rests on
    the function: the baseline is cached and the prompt decoded into the engine's kept prefix."""


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("k8", 8, False, "k = 8 decoded as one batch (lsp-verify before issue 15)"),
        Variant("lead", 8, True, "k = 8, sequence 0 greedy and decoded alone first (`lead_sequence`)"),
        Variant("k4", 4, False, "a smaller first wave: k = 4 as one batch"),
        Variant("lead4", 4, True, "k = 4 with the greedy lead decoded first"),
        Variant(
            "lead-overlap",
            8,
            True,
            "`lead`, but generation starts before the baseline (mypy and the tests on the original code) "
            "has run, which goes on meanwhile (`Pipeline(overlap_baseline=True)`)",
            overlap=True,
        ),
        Variant(
            "lead-prepared",
            8,
            True,
            "`lead`, asked after the server prepared the function while the cursor rested on it "
            "(`Pipeline.prepare`, untimed: the baseline run and cached, the prompt decoded)",
            prepared=True,
        ),
    )
}
DEFAULT_VARIANTS = ("k8", "lead")
PEER = "peer"
WARM_UP = "HumanEval/53"


# ----------------------------------------------------------------------------------------------- records


@dataclasses.dataclass
class Outcome:
    """What one variant did on one problem."""

    first_verified_s: float | None
    """b: None when no candidate passed (or the run failed)."""
    correct: bool | None = None
    """Whether the first verified suggestion passes the held-out tests; None when there was none."""
    evidence: str | None = None
    from_sequence: int | None = None
    """Index of the candidate shown first (0 is the lead when the variant has one)."""
    generating_s: float | None = None
    """When generation began: finding the function, the baseline run and the prompt took this long."""
    generated_s: float | None = None
    """When the candidate shown first had been generated (the rest of b is its verification); read off the
    first round's clock, so too early for a candidate of a repair round."""
    error: str | None = None
    prepare_s: float | None = None
    """How long ``Pipeline.prepare`` took before the request (prepared variants): how long the cursor must
    rest on the function for b to be what it is."""


@dataclasses.dataclass
class ProblemRecord:
    task_id: str
    group: str
    peer_s: float | None
    """a: None when the peer run failed."""
    peer_correct: bool | None
    outcomes: dict[str, Outcome]
    peer_prepared_s: float | None = None
    """a for a peer that also decoded its prompt ahead (``--peer-prepared``); None when not measured."""

    def ratio(self, variant: str, *, peer_prepared: bool = False) -> float | None:
        """b / a (``peer_prepared``: over the prepared peer's a), or None when either is missing."""
        b = self.outcomes[variant].first_verified_s if variant in self.outcomes else None
        a = self.peer_prepared_s if peer_prepared else self.peer_s
        if b is None or not a:
            return None
        return b / a

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> ProblemRecord:
        data = json.loads(line)
        outcomes = {name: Outcome(**o) for name, o in data.pop("outcomes").items()}
        return cls(**data, outcomes=outcomes)


# --------------------------------------------------------------------------------------------- summary


def summarise(records: Sequence[ProblemRecord], variants: Sequence[str]) -> list[dict[str, Any]]:
    """Per variant: how many problems got a verified suggestion, p50/p90 of b/a over those, the median a
    and b, and the precision of the first verified suggestion (judged by the held-out tests)."""
    rows = []
    for name in variants:
        measured = [r for r in records if name in r.outcomes and r.peer_s is not None]
        ratios = [x for r in measured if (x := r.ratio(name)) is not None]
        against_prepared = [x for r in measured if (x := r.ratio(name, peer_prepared=True)) is not None]
        surfaced = [r.outcomes[name] for r in measured if r.outcomes[name].first_verified_s is not None]
        judged = [o for o in surfaced if o.correct is not None]
        rows.append(
            {
                "variant": name,
                "problems": len(measured),
                "surfaced": len(surfaced),
                "ratio_p50": quality.percentile(ratios, 50),
                "ratio_p90": quality.percentile(ratios, 90),
                "ratio_prepared_p50": quality.percentile(against_prepared, 50),
                "ratio_prepared_p90": quality.percentile(against_prepared, 90),
                "peer_prepared_p50_s": quality.percentile(
                    [r.peer_prepared_s for r in measured if r.peer_prepared_s], 50
                ),
                "prepare_p50_s": quality.percentile(
                    [o.prepare_s for o in surfaced if o.prepare_s is not None], 50
                ),
                "peer_p50_s": quality.percentile([r.peer_s for r in measured if r.peer_s], 50),
                "first_verified_p50_s": quality.percentile(
                    [o.first_verified_s for o in surfaced if o.first_verified_s is not None], 50
                ),
                "generating_p50_s": quality.percentile(
                    [o.generating_s for o in surfaced if o.generating_s is not None], 50
                ),
                "generated_p50_s": quality.percentile(
                    [o.generated_s for o in surfaced if o.generated_s is not None], 50
                ),
                "precision": sum(bool(o.correct) for o in judged) / len(judged) if judged else None,
                "correct": sum(bool(o.correct) for o in judged),
                "from_lead": sum(o.from_sequence == 0 for o in surfaced) if VARIANTS[name].lead else None,
            }
        )
    return rows


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def markdown(
    rows: Sequence[Mapping[str, Any]], records: Sequence[ProblemRecord], meta: Mapping[str, Any]
) -> str:
    peers = [r for r in records if r.peer_correct is not None]
    lines = [
        f"# bench/latency.py — {meta['date']}, revision {meta['revision']}",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores_usable']} usable cores, backend "
        f"{meta['machine']['backend']}, {meta['machine']['n_threads']} threads; model "
        f"{Path(meta['machine']['model'] or '?').name}; load average before {meta['load_before']}, "
        f"after {meta['load_after']}; "
        + (f"{meta['wall_s']:.0f} s in all." if meta.get("wall_s") is not None else "run time not recorded."),
        *([f"Records: {meta['records_note']}"] if meta.get("records_note") else []),
        "",
        "a = the peer: one greedy, unverified completion of the same prompt. b = lsp-verify's first verified "
        "suggestion, from the start of the request. Ratios over the problems where something was verified; "
        "precision = first verified suggestions that pass the held-out tests.",
        "",
        "| variant | problems | verified | b/a p50 | b/a p90 | a p50 (s) | b p50 (s) "
        "| precision of first verified | shown first: the lead |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        precision = (
            "–"
            if row["precision"] is None
            else f"{100 * row['precision']:.0f}% ({row['correct']}/{row['surfaced']})"
        )
        lead = "–" if row["from_lead"] is None else f"{row['from_lead']}/{row['surfaced']}"
        lines.append(
            f"| {row['variant']} | {row['problems']} | {row['surfaced']} | {_num(row['ratio_p50'], '.2f')} "
            f"| {_num(row['ratio_p90'], '.2f')} | {_num(row['peer_p50_s'], '.1f')} "
            f"| {_num(row['first_verified_p50_s'], '.1f')} | {precision} | {lead} |"
        )
    lines += [
        "",
        "Stages (p50 over the problems where something was verified, seconds from the request's start): "
        "generation starts after finding the function, selecting the tests, the prompt and (`overlap` off) "
        "the baseline; the candidate shown first is generated; it is verified (b).",
        "",
        "| variant | prepared ahead (untimed) | baseline overlaps generation | generation starts "
        "| shown candidate generated | first verified (b) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        overlap = "yes" if VARIANTS[row["variant"]].overlap else "no"
        prepared = f"{_num(row['prepare_p50_s'], '.1f')} s" if VARIANTS[row["variant"]].prepared else "no"
        lines.append(
            f"| {row['variant']} | {prepared} | {overlap} | {_num(row['generating_p50_s'], '.1f')} "
            f"| {_num(row['generated_p50_s'], '.1f')} | {_num(row['first_verified_p50_s'], '.1f')} |"
        )
    if any(r.peer_prepared_s is not None for r in records):
        lines += [
            "",
            "Against a peer that decoded its prompt ahead too (a', `--peer-prepared`: the same prompt "
            "decoded into the engine before its greedy completion is timed):",
            "",
            "| variant | a' p50 (s) | b/a' p50 | b/a' p90 |",
            "|---|---:|---:|---:|",
        ]
        for row in rows:
            lines.append(
                f"| {row['variant']} | {_num(row['peer_prepared_p50_s'], '.1f')} "
                f"| {_num(row['ratio_prepared_p50'], '.2f')} | {_num(row['ratio_prepared_p90'], '.2f')} |"
            )
    lines += [
        "",
        f"The peer's greedy answer passes the held-out tests in {sum(bool(r.peer_correct) for r in peers)} "
        f"of {len(peers)} problems (it is shown unverified).",
        "",
        "Variants: " + "; ".join(f"`{name}`: {VARIANTS[name].about}" for name in meta["variants"]) + ".",
        "",
        "| problem | a (s) | " + " | ".join(f"{n}: b (s), b/a" for n in meta["variants"]) + " |",
        "|---|---:|" + "---:|" * len(meta["variants"]),
    ]
    for r in records:
        cells = []
        for name in meta["variants"]:
            o = r.outcomes.get(name)
            if o is None or o.first_verified_s is None:
                cells.append("none" if o is None or o.error is None else "error")
                continue
            mark = "" if o.correct is None else (" ✓" if o.correct else " ✗")
            cells.append(f"{o.first_verified_s:.1f}, {_num(r.ratio(name), '.2f')}{mark}")
        lines.append(f"| {r.task_id} | {_num(r.peer_s, '.1f')} | " + " | ".join(cells) + " |")
    lines += ["", "✓/✗: the first verified suggestion passes/fails the held-out tests.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- runs


class SharedEngine:
    """The one loaded engine, handed to every pipeline; closing a pipeline leaves it loaded."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __getattr__(self, name: str) -> Any:
        if name == "close":
            return lambda: None
        return getattr(self.engine, name)


def measure_peer(
    pipeline: Pipeline, problem: quality.Problem, path: Path, *, prepared: bool = False
) -> tuple[float, str | None]:
    """a: the greedy k = 1 completion of the pipeline's own prompt, and the whole program it proposes
    (``prepared``: the prompt decoded into the engine first, untimed)."""
    from lsp_verify.cancel import CancelToken
    from lsp_verify.model.types import SamplingParams
    from lsp_verify.pipeline import FixRequest, candidate_from

    text = path.read_text(encoding="utf-8")
    request = FixRequest(path=path, text=text, root=path.parent, line=quality.request_line(problem, text))
    target = pipeline.target(request)
    # The peer runs no baseline: the tests near the function (what the prompt shows) are selected untimed.
    selection = pipeline.verifier(path.parent).select(target, text, CancelToken())
    if prepared:
        pipeline.engine().prefill(pipeline.prompt(request, target, selection, k=1)[0])
    start = time.monotonic()
    prompt, params = pipeline.prompt(request, target, selection, k=1)
    greedy = SamplingParams(k=1, max_tokens=params.max_tokens, temperature=0.0)
    (generation,) = pipeline.engine().generate(prompt, greedy)
    seconds = time.monotonic() - start
    candidate = candidate_from(generation, prompt, text, target)
    return seconds, candidate.new_text if candidate is not None else None


def measure_variant(
    pipeline: Pipeline, problem: quality.Problem, path: Path, *, prepared: bool = False
) -> tuple[Outcome, str | None]:
    """b: the pipeline's request until its first verified candidate (then cancelled: the rest is not b);
    ``prepared``: after ``Pipeline.prepare`` for the same request, untimed."""
    from lsp_verify.cancel import Cancelled, CancelToken
    from lsp_verify.pipeline import FixRequest, Progress
    from lsp_verify.verify.types import CandidateResult

    text = path.read_text(encoding="utf-8")
    request = FixRequest(path=path, text=text, root=path.parent, line=quality.request_line(problem, text))
    prepare_s = None
    if prepared:
        try:
            prepare_s = round(pipeline.prepare(request).seconds, 3)
        except Exception as exc:  # the request below meets the same error and records it
            print(f"  {problem.task_id}: prepare failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    cancel = CancelToken()
    first: list[CandidateResult] = []
    began: list[float] = []
    start = time.monotonic()

    def on_progress(progress: Progress) -> None:
        if progress.stage == "generating" and not began:
            began.append(time.monotonic() - start)

    def on_result(result: CandidateResult) -> None:
        if result.passed and not first:
            first.append(result)
            cancel.cancel("the first verified suggestion is all this benchmark times")

    try:
        pipeline.run(request, cancel=cancel, on_result=on_result, on_progress=on_progress)
    except Cancelled:
        pass
    except Exception as exc:  # one problem's failure is a data point, not the end of the run
        return Outcome(None, error=f"{type(exc).__name__}: {exc}"), None
    if not first:
        return Outcome(None), None
    best = first[0]
    outcome = Outcome(
        first_verified_s=round(best.verified_at_s, 3),
        evidence=best.evidence.value,
        from_sequence=best.candidate.index,
        generating_s=round(began[0], 3) if began else None,
        generated_s=round(began[0] + best.candidate.generated_s, 3) if began else None,
        prepare_s=prepare_s,
    )
    return outcome, best.candidate.new_text


def run_problem(
    problem: quality.Problem,
    root: Path,
    pipelines: Mapping[str, Pipeline],
    order: Sequence[str],
    judge_timeout: float,
    backend: quality.JudgeBackend,
    *,
    peer_prepared: bool = False,
) -> ProblemRecord:
    path = quality.write_workspace(problem, root)
    for pipeline in pipelines.values():
        pipeline.invalidate([path])  # the file changed on disk: no baseline of the last problem applies
    peer_s: float | None = None
    peer_prepared_s: float | None = None
    programs: dict[str, str] = {}
    outcomes: dict[str, Outcome] = {}
    for name in order:
        # Every side starts cold: the engine would otherwise reuse the prompt the one before it decoded
        # (the same prompt here), and whoever ran second would skip it.
        forget = getattr(pipelines[name].engine(), "forget_prompt", None)
        if forget is not None:
            forget()
        if name == PEER:
            try:
                peer_s, program = measure_peer(pipelines[PEER], problem, path)
                peer_s = round(peer_s, 3)
            except Exception as exc:
                print(f"  {problem.task_id}: peer failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                program = None
            if peer_prepared:  # the same greedy completion, its prompt decoded ahead: the same program
                if forget is not None:
                    forget()
                try:
                    peer_prepared_s = round(measure_peer(pipelines[PEER], problem, path, prepared=True)[0], 3)
                except Exception as exc:
                    print(f"  {problem.task_id}: prepared peer failed: {exc}", file=sys.stderr)
        else:
            prepared = VARIANTS[name].prepared
            outcomes[name], program = measure_variant(pipelines[name], problem, path, prepared=prepared)
        if program is not None:
            programs[name] = program
    verdicts = quality.judge(problem, programs, judge_timeout, backend)
    for name, outcome in outcomes.items():
        if name in verdicts:
            outcome.correct = verdicts[name].passed
    peer_correct = verdicts[PEER].passed if PEER in verdicts else None
    return ProblemRecord(problem.task_id, problem.group, peer_s, peer_correct, outcomes, peer_prepared_s)


def progress_line(i: int, total: int, record: ProblemRecord, variants: Sequence[str]) -> str:
    parts = [f"[{i}/{total}] {record.task_id}: a {_num(record.peer_s, '.1f')}s"]
    if record.peer_prepared_s is not None:
        parts[0] += f", a' {record.peer_prepared_s:.1f}s"
    for name in variants:
        o = record.outcomes[name]
        if o.first_verified_s is None:
            parts.append(f"{name} {'error: ' + o.error if o.error else 'nothing verified'}")
        else:
            verdict = "right" if o.correct else "wrong"
            verdict += f"; generating at {_num(o.generating_s, '.1f')}s, done {_num(o.generated_s, '.1f')}s"
            if o.prepare_s is not None:
                verdict += f"; prepared in {o.prepare_s:.1f}s"
            parts.append(
                f"{name} b {o.first_verified_s:.1f}s (x{_num(record.ratio(name), '.2f')}, {verdict})"
            )
    return ", ".join(parts)


def replay(quality_records: Sequence[quality.ProblemRecord]) -> list[ProblemRecord]:
    """An estimate of ``k8`` and ``lead`` from a quality run's records (``docs/quality.jsonl``), no model run.

    A quality run times, per problem, a greedy k = 1 pipeline run and a sampled k = 8 one, one after the
    other on a quiet machine, and judges every candidate. From them: a = when the greedy sequence ended; k8's
    b = the k = 8 run's first verified time and candidate (measured). lead's b is *estimated*: when the greedy
    candidate passed, the k = 1 run's first verified time (the lead decodes alone, as it did there; its
    verification overlapping the other sequences' decoding is not counted); otherwise a + the k = 8 run's
    first verified time (the others start after the lead: pessimistic, as they decode k - 1 and the baseline
    is already done).
    """
    out = []
    for r in quality_records:
        sampled = next((run for run in r.runs if run.k == 8), None)
        if r.greedy is None or not r.greedy.sequences or sampled is None:
            continue
        a = r.greedy.sequences[0].finished_s
        verified = [c for c in sampled.candidates if c.verified]
        first = min(verified, key=lambda c: c.verified_at_s) if verified else None
        k8 = Outcome(None)
        if first is not None and sampled.first_verified_s is not None:
            k8 = Outcome(sampled.first_verified_s, first.correct, first.evidence, first.index)
        greedy = r.greedy.candidates[0] if r.greedy.candidates else None
        if greedy is not None and greedy.verified and r.greedy.first_verified_s is not None:
            lead = Outcome(r.greedy.first_verified_s, greedy.correct, greedy.evidence, 0)
        elif k8.first_verified_s is not None:
            lead = dataclasses.replace(k8, first_verified_s=round(a + k8.first_verified_s, 3))
        else:
            lead = Outcome(None)
        peer_correct = greedy.correct if greedy is not None else False
        out.append(ProblemRecord(r.task_id, r.group, a, peer_correct, {"k8": k8, "lead": lead}))
    return out


def replay_markdown(records: Sequence[ProblemRecord], source: Path, argv: list[str] | None) -> str:
    lines = [
        f"# bench/latency.py --replay — {source.name}, {len(records)} problems",
        "",
        f"Command: `{_command(argv)}` (revision {runinfo.git_revision()}). No model run: an estimate from "
        "the records of a quality run (a greedy k = 1 and a sampled k = 8 pipeline run per problem, one "
        "after the other). `k8` is measured there; `lead` is estimated (see `replay` in bench/latency.py).",
        "",
        "| variant | group | problems | verified | b/a p50 | b/a p90 | a p50 (s) | b p50 (s) "
        "| precision of first verified |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for group in ("tests", "types", "all"):
        members = [r for r in records if group in ("all", r.group)]
        for row in summarise(members, ["k8", "lead"]):
            precision = (
                "–"
                if row["precision"] is None
                else f"{100 * row['precision']:.1f}% ({row['correct']}/{row['surfaced']})"
            )
            lines.append(
                f"| {row['variant']} | {quality_report.GROUP_LABELS[group]} | {row['problems']} "
                f"| {row['surfaced']} "
                f"| {_num(row['ratio_p50'], '.2f')} | {_num(row['ratio_p90'], '.2f')} "
                f"| {_num(row['peer_p50_s'], '.1f')} | {_num(row['first_verified_p50_s'], '.1f')} "
                f"| {precision} |"
            )
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class QuorumOutcome:
    """One problem's k-run replayed with a quorum: when it would have stopped and what it would show."""

    end_s: float
    """When the rank was decided: the stop, or the run's end when no quorum formed."""
    full_end_s: float
    stopped: bool
    samples: int
    """First-round sequences generated by then."""
    correct: bool
    """The top-ranked suggestion at the end passes the held-out tests."""
    disagree: bool
    """The passing candidates generated behave in more than one way: a question can be asked."""


def quorum_replay(run: quality.RunRecord, quorum: int) -> QuorumOutcome | None:
    """Replay one recorded k-run (``bench/quality.py`` with probes) with ``Settings.quorum``; None when no
    candidate passed. Mirrors the pipeline: a sequence's vote counts once it has finished and its body's
    candidate has passed (``agreeing_votes``: duplicates vote, agreement is equal probe outputs, else equal
    code); at the quorum, generation stops and what was generated by then is still verified (the end is the
    later of the two). The top suggestion is re-ranked from those candidates, by the votes of its behaviour
    then log-probability (the pipeline ranks by tests passed first; within one problem's plan the passing
    candidates pass the same tests). Quorum 0 is the full run."""
    first = [s for s in run.sequences if s.round == 0 and s.key is not None]
    passing = {c.key: c for c in run.candidates if c.verified}
    if not passing:
        return None

    def group(c: quality.CandidateRecord) -> str:
        return c.behaviour or c.key

    votes: list[tuple[float, str]] = []  # (when the vote counts, behaviour group)
    for s in first:
        c = passing.get(s.key or "")
        if c is not None:
            votes.append((max(s.finished_s, c.verified_at_s), group(c)))
    votes.sort()
    end, stopped = run.seconds, False
    if quorum:
        tally: dict[str, int] = {}
        for at, g in votes:
            tally[g] = tally.get(g, 0) + 1
            if tally[g] >= quorum:
                end, stopped = at, True
                break
    stop = end
    generated = [s for s in first if s.finished_s <= stop] if stopped else first
    keys = {s.key for s in generated}
    if stopped:
        end = max([stop, *(c.verified_at_s for c in run.candidates if c.key in keys)])
    shown = [c for c in passing.values() if c.key in keys]
    counted: dict[str, int] = {}
    for s in generated:
        if (c := passing.get(s.key or "")) is not None:
            counted[group(c)] = counted.get(group(c), 0) + 1
    best = max(shown, key=lambda c: (counted.get(group(c), 0), c.mean_logprob or 0.0, -c.index))
    return QuorumOutcome(end, run.seconds, stopped, len(generated), best.correct, len(counted) > 1)


def quorum_markdown(records: Sequence[quality.ProblemRecord], quorums: Sequence[int], source: Path) -> str:
    lines = [
        f"# bench/latency.py --quorum-replay — {source.name}",
        "",
        f"Command: `{_command(None)}` (revision {runinfo.git_revision()}). No model run: each problem's "
        "k = 8 run replayed with `quorum` (see `quorum_replay` in bench/latency.py). End = when the rank is "
        "decided (what was generated before the stop is verified, or the run's end); precision = the "
        "top-ranked suggestion at the end passes the "
        "held-out tests (re-ranked by behaviour votes, then log-probability, for every row alike).",
        "",
        "| quorum | problems with a pass | stopped early | samples p50 | end p50 (s) | end / full end p50 "
        "| precision of the top suggestion | passing samples disagree (a question can be asked) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for q in quorums:
        outs = [
            o for r in records for run in r.runs if run.k == 8 and (o := quorum_replay(run, q)) is not None
        ]
        if not outs:
            continue
        right = sum(o.correct for o in outs)
        shares = [o.end_s / o.full_end_s for o in outs if o.full_end_s]
        lines.append(
            f"| {q or 'off'} | {len(outs)} | {sum(o.stopped for o in outs)} "
            f"| {_num(quality.percentile([o.samples for o in outs], 50), '.0f')} "
            f"| {_num(quality.percentile([o.end_s for o in outs], 50), '.1f')} "
            f"| {_num(quality.percentile(shares, 50), '.2f')} "
            f"| {100 * right / len(outs):.1f}% ({right}/{len(outs)}) | {sum(o.disagree for o in outs)} |"
        )
    return "\n".join(lines) + "\n"


def _command(argv: list[str] | None) -> str:
    return "python " + " ".join(shlex.quote(a) for a in ["bench/latency.py", *(argv or sys.argv[1:])])


def summarise_only(records_path: Path, out: Path, variants: Sequence[str], argv: list[str] | None) -> int:
    """The table of an earlier run from its JSONL alone (what the run itself knew of the engine is lost)."""
    lines = records_path.read_text(encoding="utf-8").splitlines()
    records = [ProblemRecord.from_json(line) for line in lines if line.strip()]
    modified = datetime.datetime.fromtimestamp(records_path.stat().st_mtime, datetime.timezone.utc)
    meta = {
        "date": modified.strftime("%Y-%m-%d %H:%M UTC") + " (last record)",
        "revision": runinfo.git_revision(),
        "command": _command(argv),
        "machine": quality.machine_info(None),
        "load_before": "not recorded",
        "load_after": runinfo.load_average(),
        "wall_s": None,
        "records_note": f"{len(records)} problems from `{records_path.name}`",
        "variants": list(variants),
    }
    out.write_text(markdown(summarise(records, variants), records, meta), encoding="utf-8")
    print(out.read_text(encoding="utf-8"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--limit", type=int, default=8, help="problems to run (default 8: minutes on 2 cores)"
    )
    parser.add_argument("--offset", type=int, default=0, help="skip the first N problems")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, from {', '.join(VARIANTS)} (default {','.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument(
        "--no-warm-up",
        action="store_true",
        help=f"skip the untimed run on {WARM_UP} first (worker start-up, mypy's cache)",
    )
    parser.add_argument(
        "--peer-prepared",
        action="store_true",
        help="also time the peer with its prompt decoded ahead (a'), as a prepared variant's is",
    )
    parser.add_argument("--model", help="GGUF path (default: the embedded model)")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-timeout", type=float, default=5.0, help="held-out judge timeout per program")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latency.md")
    parser.add_argument("--records", type=Path, help="per-problem JSONL (default: --out with .jsonl)")
    parser.add_argument(
        "--summarise",
        type=Path,
        metavar="JSONL",
        help="run nothing: write --out from the records of an earlier run (one that was stopped, too)",
    )
    parser.add_argument(
        "--replay",
        type=Path,
        metavar="JSONL",
        help="run nothing: estimate k8 and lead from a quality run's records (docs/quality.jsonl)",
    )
    parser.add_argument(
        "--quorum-replay",
        type=Path,
        metavar="JSONL",
        help="run nothing: replay a quality run with probes (its records) at each of --quorums",
    )
    parser.add_argument("--quorums", default="0,2,3,4", help="quorums for --quorum-replay (0: off)")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        print(f"error: unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2

    if args.summarise is not None:
        return summarise_only(args.summarise, args.out, variants, argv)
    if args.quorum_replay is not None:
        quorums = [int(q) for q in args.quorums.split(",") if q.strip()]
        text = quorum_markdown(quality.read_records(args.quorum_replay), quorums, args.quorum_replay)
        args.out.write_text(text, encoding="utf-8")
        print(text)
        return 0
    if args.replay is not None:
        text = replay_markdown(replay(quality.read_records(args.replay)), args.replay, argv)
        args.out.write_text(text, encoding="utf-8")
        print(text)
        return 0

    from lsp_verify.config import Settings
    from lsp_verify.pipeline import Pipeline, load_engine

    start = time.monotonic()
    load_before = runinfo.load_average()
    base = Settings(model_path=args.model, max_tokens=args.max_tokens, seed=args.seed, trusted=True)
    engine = load_engine(dataclasses.replace(base, k=max(VARIANTS[v].k for v in variants)))
    shared = SharedEngine(engine)

    def pipeline_for(settings: Settings, overlap: bool = False) -> Pipeline:
        return Pipeline(
            settings,
            engine_factory=lambda _: shared,  # type: ignore[arg-type,return-value]
            overlap_baseline=overlap,
        )

    pipelines: dict[str, Pipeline] = {PEER: pipeline_for(dataclasses.replace(base, k=1))}
    for name in variants:
        v = VARIANTS[name]
        pipelines[name] = pipeline_for(dataclasses.replace(base, k=v.k, lead_sequence=v.lead), v.overlap)

    everything = quality.load_problems()
    problems = everything[args.offset : args.offset + args.limit]
    # Warm up on a problem every variant solves at once (HumanEval/53 is `add`), outside the measured ones.
    warm_up = [p for p in everything if p.task_id == WARM_UP and p not in problems][:1]
    backend = quality.detect_judge_backend(args.test_timeout)
    records_path: Path = args.records or args.out.with_suffix(".jsonl")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    records: list[ProblemRecord] = []
    try:
        with quality.workspace_root() as root:
            for pipeline in pipelines.values():
                pipeline.warm_up(root)
            if warm_up and not args.no_warm_up:
                # Every pipeline once through a problem not measured: start-up costs are not per-request.
                print(f"warming up on {warm_up[0].task_id} (not measured)", flush=True)
                run_problem(
                    warm_up[0],
                    root,
                    pipelines,
                    [PEER, *variants],
                    args.test_timeout,
                    backend,
                    peer_prepared=args.peer_prepared,
                )
            with records_path.open("w", encoding="utf-8") as out:
                for i, problem in enumerate(problems):
                    everyone = [PEER, *variants]
                    shift = i % len(everyone)
                    order = everyone[shift:] + everyone[:shift]
                    record = run_problem(
                        problem,
                        root,
                        pipelines,
                        order,
                        args.test_timeout,
                        backend,
                        peer_prepared=args.peer_prepared,
                    )
                    records.append(record)
                    out.write(record.to_json() + "\n")
                    out.flush()
                    print(progress_line(i + 1, len(problems), record, variants), flush=True)
    finally:
        for pipeline in pipelines.values():
            pipeline.close()
        info = engine.info
        engine.close()

    rows = summarise(records, variants)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": runinfo.git_revision(),
        "command": _command(argv),
        "machine": quality.machine_info(info),
        "load_before": load_before,
        "load_after": runinfo.load_average(),
        "wall_s": time.monotonic() - start,
        "variants": variants,
    }
    text = markdown(rows, records, meta)
    args.out.write_text(text, encoding="utf-8")
    print()
    print(text)
    print(f"wrote {args.out} and {records_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
