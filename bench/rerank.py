"""Ranking by behaviour vs by identical code, replayed on the candidates of a quality run.

``bench/quality.py`` records every distinct candidate of every problem with what verification said and
whether the held-out tests pass it. This benchmark takes those recorded candidates (no model is loaded),
runs them again through the real :class:`~lsp_verify.verify.cascade.Verifier` - which now probes every
passing candidate on generated inputs - and ranks them twice with the real ``rank``: once without the
probe outputs (agreement = identical code, the ranking the quality run used) and once with them
(agreement = same behaviour on the probe inputs). Both rankings see the same candidates, verification
results and tie-break order, so the difference in precision is the probe's alone.

    python bench/rerank.py                                   # every problem in docs/quality.jsonl
    python bench/rerank.py --limit 20 --json bench/results/rerank.json

Precision here is the share of problems with a surfaced suggestion whose top-1 passes the held-out tests,
per group (visible tests / types only / overall), at the recorded run's k (8 by default). An *oracle* column
gives the ceiling of any ranking: a problem counts when any passing candidate is correct.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT / "bench"))

import humaneval  # noqa: E402  (bench/humaneval.py: problems and their workspaces)
import quality_records  # noqa: E402  (bench/quality_records.py: what a quality run recorded)
import quality_report  # noqa: E402
from lsp_verify.cancel import CancelToken  # noqa: E402
from lsp_verify.config import Settings  # noqa: E402
from lsp_verify.pipeline import FixRequest, Pipeline  # noqa: E402
from lsp_verify.syntax.splice import normalise, splice_body  # noqa: E402
from lsp_verify.verify.cascade import Verifier  # noqa: E402
from lsp_verify.verify.rank import rank  # noqa: E402
from lsp_verify.verify.types import Candidate, CandidateResult  # noqa: E402


@dataclasses.dataclass
class Outcome:
    task_id: str
    group: str
    surfaced: bool
    by_code_correct: bool
    by_behaviour_correct: bool
    oracle: bool
    passing: int
    behaviours: int
    """Distinct probe behaviours among the passing candidates (0: not probed)."""
    probe_inputs: int
    verdict_changes: int
    """Candidates whose pass/fail differs from the recorded run (flaky tests, timeouts): should be 0."""
    seconds: float
    candidates: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Per passing candidate, in the recorded order: votes, tests passed, probe outputs, held-out verdict
    (enough to try another ranking rule without running anything again)."""


def replay(
    verifier: Verifier, problem: humaneval.Problem, run: quality_records.RunRecord, root: Path
) -> Outcome:
    started = time.monotonic()
    path = humaneval.write_workspace(problem, root)
    verifier.invalidate([path])
    text = path.read_text(encoding="utf-8")
    target = Pipeline.target(FixRequest(path, text, root, line=humaneval.request_line(problem, text)))
    cancel = CancelToken()
    plan = verifier.prepare(target, text, cancel)
    results: list[CandidateResult] = []
    correct: dict[str, bool] = {}
    changes = 0
    for position, record in enumerate(run.candidates):
        body = record.body
        candidate = Candidate(
            index=record.index,
            body=body,
            new_text=splice_body(text, target, body),
            key=normalise(body),
            # The recorded rank order stands in for the model's log-probabilities (not recorded) as the
            # last tie-break, so both rankings below break ties as the quality run did.
            mean_logprob=-float(position),
            duplicates=record.duplicates,
        )
        result = verifier.verify(plan, candidate, cancel)
        changes += result.passed != record.verified
        correct[candidate.key] = record.correct
        results.append(result)
    passing = [r for r in results if r.passed]
    by_code = rank([dataclasses.replace(r, probe_outputs=()) for r in results])
    by_behaviour = rank(results)
    probed = [r.probe_outputs for r in passing if r.probe_outputs]
    return Outcome(
        task_id=problem.task_id,
        group=problem.group,
        surfaced=bool(passing),
        by_code_correct=bool(passing) and correct[by_code[0].candidate.key],
        by_behaviour_correct=bool(passing) and correct[by_behaviour[0].candidate.key],
        oracle=any(correct[r.candidate.key] for r in passing),
        passing=len(passing),
        behaviours=len(set(probed)),
        probe_inputs=len(plan.probe.inputs) if plan.probe is not None else 0,
        verdict_changes=changes,
        seconds=round(time.monotonic() - started, 3),
        candidates=[
            {
                "index": r.candidate.index,
                "votes": r.candidate.duplicates + 1,
                "tests_passed": len(r.tests_passed),
                "probe": list(r.probe_outputs),
                "correct": correct[r.candidate.key],
            }
            for r in passing
        ],
    )


def progress_line(outcome: Outcome) -> str:
    mark = {True: "right", False: "wrong"}
    verdict = (
        f"by code {mark[outcome.by_code_correct]}, by behaviour {mark[outcome.by_behaviour_correct]}"
        if outcome.surfaced
        else "nothing surfaced"
    )
    changed = f"  ({outcome.verdict_changes} verdicts differ)" if outcome.verdict_changes else ""
    return (
        f"{outcome.task_id} {outcome.group:5}  passing {outcome.passing}, behaviours {outcome.behaviours} "
        f"on {outcome.probe_inputs} inputs  {verdict}{changed}  {outcome.seconds:.1f}s"
    )


def table(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    rows = []
    for group in quality_report.GROUPS:
        members = [o for o in outcomes if group == "all" or o.group == group]
        surfaced = [o for o in members if o.surfaced]
        n = len(surfaced)
        rows.append(
            {
                "group": quality_report.GROUP_LABELS[group],
                "problems": len(members),
                "surfaced": n,
                "probed": sum(1 for o in surfaced if o.probe_inputs),
                "precision_by_code": _share(sum(o.by_code_correct for o in surfaced), n),
                "precision_by_behaviour": _share(sum(o.by_behaviour_correct for o in surfaced), n),
                "precision_oracle": _share(sum(o.oracle for o in surfaced), n),
                "correct_by_code": sum(o.by_code_correct for o in surfaced),
                "correct_by_behaviour": sum(o.by_behaviour_correct for o in surfaced),
                "correct_oracle": sum(o.oracle for o in surfaced),
            }
        )
    return rows


def _share(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    def pct(row: dict[str, Any], name: str) -> str:
        value = row[f"precision_{name}"]
        return "–" if value is None else f"{100 * value:.1f}% ({row[f'correct_{name}']}/{row['surfaced']})"

    lines = [
        "| group | problems | surfaced (probed) | precision: identical code | precision: behaviour "
        "| ceiling (any passing candidate right) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['group']} | {row['problems']} | {row['surfaced']} ({row['probed']}) "
            f"| {pct(row, 'by_code')} | {pct(row, 'by_behaviour')} | {pct(row, 'oracle')} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=Path, default=ROOT / "docs" / "quality.jsonl")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--k", type=int, default=8, help="which recorded run to replay (its k)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table and outcomes here")
    args = parser.parse_args(argv)
    given = list(sys.argv[1:] if argv is None else argv)

    records = quality_records.read_records(args.records)[: args.limit]
    problems = {p.task_id: p for p in humaneval.load_problems()}
    config = records[0].config if records else {}
    settings = Settings(trusted=True, test_timeout_s=float(config.get("test_timeout_s", 5.0)))
    outcomes: list[Outcome] = []
    started = time.monotonic()
    with humaneval.workspace_root() as root:
        root.mkdir(parents=True, exist_ok=True)
        with Verifier(root, settings) as verifier:
            for i, record in enumerate(records, 1):
                run = next((r for r in record.runs if r.k == args.k), None)
                if run is None or record.error:
                    continue
                outcome = replay(verifier, problems[record.task_id], run, root)
                outcomes.append(outcome)
                print(f"[{i}/{len(records)}] {progress_line(outcome)}", flush=True)
    rows = table(outcomes)
    print()
    print(
        f"Replay of {args.records.relative_to(ROOT) if args.records.is_relative_to(ROOT) else args.records} "
        f"(k = {args.k}), {datetime.date.today()}, {platform.machine()} x{os.cpu_count()}, "
        f"{time.monotonic() - started:.0f} s"
    )
    print(markdown(rows))
    changed = sum(o.verdict_changes for o in outcomes)
    if changed:
        print(f"\nnote: {changed} candidates passed/failed differently from the recorded run")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "command": " ".join(["python bench/rerank.py", *given]),
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "records": str(args.records),
                    "k": args.k,
                    "table": rows,
                    "outcomes": [dataclasses.asdict(o) for o in outcomes],
                },
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
