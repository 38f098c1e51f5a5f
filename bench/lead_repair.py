"""When the greedy lead fails its checks, would a repair told why, decoded alone, pass?

A lever for issue 15's p90: when the lead (sequence 0, greedy, decoded alone first) fails, the first verified
suggestion waits for the seven sampled sequences decoded together, at about a quarter of a lone sequence's
speed each. If one lone sequence, prompted with the lead's body and its first error (the repair round's
feedback, ``pipeline.repair_feedback``), passed most of the time, decoding it before the batch would cut that
wait to about one lone sequence. This measures that on its own, before building it: per problem, the lead
alone (k = 1, greedy, no repair round), then, where it fails, one repair per ``--temperatures`` (k = 1; 0 is
greedy), each verified by the real pipeline and, when it passes, judged by the held-out tests.

    python bench/lead_repair.py --problems HumanEval/1,HumanEval/9 [--temperatures 0,0.4,0.8] [--out FILE]

Prints one line per problem and writes a Markdown table. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import re
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT / "bench"))

import quality  # noqa: E402
import runinfo  # noqa: E402

if TYPE_CHECKING:
    from lsp_verify.pipeline import Pipeline
    from lsp_verify.verify.types import CandidateResult


@dataclasses.dataclass
class Attempt:
    """One k = 1 run: the lead or a repair of it."""

    temperature: float
    seconds: float
    passed: bool
    correct: bool | None = None
    """Held-out verdict, only for a candidate that passed the checks."""
    error: str | None = None


@dataclasses.dataclass
class Row:
    task_id: str
    lead: Attempt
    repairs: list[Attempt]


def markdown(rows: Sequence[Row], temperatures: Sequence[float], meta: dict[str, Any]) -> str:
    def cell(a: Attempt) -> str:
        if not a.passed:
            # "tests: problem.py::problem.f failed: >>> f(1) expected 2, got 3": the id tells nothing here.
            error = re.sub(r"\S+::\S+ failed: ", "", " ".join((a.error or "").split()))
            error = (error if len(error) <= 110 else error[:109] + "…").replace("`", "'").replace("|", "/")
            return f"fails ({a.seconds:.1f} s): `{error}`"
        return f"passes, {'right' if a.correct else 'wrong'} ({a.seconds:.1f} s)"

    failed = [r for r in rows if r.repairs]
    lines = [
        f"# bench/lead_repair.py — {meta['date']}, revision {meta['revision']}",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['machine'].get('cpu')}, {meta['machine'].get('cores_usable')} usable cores; "
        f"load average before {meta['load_before']}, after {meta['load_after']}.",
        "",
        "The lead: k = 1, greedy, no repair round. A repair: k = 1 at the given temperature, its prompt "
        "holding the failed lead's body and first error (`pipeline.repair_feedback`). Right/wrong: the "
        "held-out tests' verdict on a candidate that passed the checks.",
        "",
        "| problem | lead | " + " | ".join(f"repair, t = {t:g}" for t in temperatures) + " |",
        "|---|---|" + "---|" * len(temperatures),
    ]
    for row in rows:
        repairs = [cell(a) for a in row.repairs] if row.repairs else ["–"] * len(temperatures)
        lines.append(f"| {row.task_id} | {cell(row.lead)} | " + " | ".join(repairs) + " |")
    lines.append("")
    for i, t in enumerate(temperatures):
        passed = sum(r.repairs[i].passed for r in failed)
        right = sum(bool(r.repairs[i].correct) for r in failed)
        lines.append(f"- t = {t:g}: {passed} of {len(failed)} failed leads repaired, {right} right.")
    lines.append("")
    return "\n".join(lines)


def measure(
    pipelines: Mapping[float, Pipeline],
    problem: quality.Problem,
    root: Path,
    temperatures: Sequence[float],
    timeout: float,
    backend: quality.JudgeBackend,
) -> Row:
    """The lead on ``problem`` (``pipelines[0]``: k = 1, greedy, no repair round), then, if it fails, one
    repair per temperature (``pipelines[t]``, k = 1, 0 greedy), its prompt holding the lead's body and first
    error. A pipeline per temperature keeps each one's verifier warm."""
    from lsp_verify.pipeline import FixRequest, repair_feedback

    path = quality.write_workspace(problem, root)
    for pipeline in pipelines.values():
        pipeline.invalidate([path])
    text = path.read_text(encoding="utf-8")
    request = FixRequest(path=path, text=text, root=path.parent, line=quality.request_line(problem, text))

    def attempt(request: FixRequest, temperature: float) -> tuple[Attempt, tuple[CandidateResult, ...]]:
        start = time.monotonic()
        report = pipelines[temperature].run(request)
        seconds = round(time.monotonic() - start, 2)
        best = report.results[0] if report.results else None
        if best is None:
            return Attempt(temperature, seconds, False, error="nothing generated"), report.results
        correct = None
        if best.passed:
            verdicts = quality.judge(problem, {"x": best.candidate.new_text}, timeout, backend)
            correct = verdicts["x"].passed if "x" in verdicts else None
        return Attempt(temperature, seconds, best.passed, correct, best.first_error), report.results

    lead, results = attempt(request, 0.0)
    feedback = None if lead.passed else repair_feedback(results)
    if feedback is None:
        return Row(problem.task_id, lead, [])
    repaired = dataclasses.replace(request, feedback=feedback)
    return Row(problem.task_id, lead, [attempt(repaired, t)[0] for t in temperatures])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", required=True, help="comma-separated HumanEval task ids")
    parser.add_argument("--temperatures", default="0,0.4,0.8")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--test-timeout", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "lead-repair.md")
    args = parser.parse_args(argv)

    from lsp_verify.config import Settings
    from lsp_verify.pipeline import Pipeline, load_engine

    temperatures = [float(t) for t in args.temperatures.split(",")]
    wanted = [t.strip() for t in args.problems.split(",") if t.strip()]
    problems = {p.task_id: p for p in quality.load_problems()}
    unknown = [t for t in wanted if t not in problems]
    if unknown:
        print(f"error: unknown problem(s) {unknown}", file=sys.stderr)
        return 2
    base = Settings(model_path=args.model, trusted=True, k=1, repair_rounds=0)
    engine = load_engine(base)
    # t = 0 is the lead's setting; t > 0 samples, so no lead (a lead's sequence 0 is greedy at any t).
    pipelines = {
        t: Pipeline(
            dataclasses.replace(base, temperature=t, lead_sequence=not t), engine_factory=lambda _: engine
        )
        for t in dict.fromkeys([0.0, *temperatures])
    }
    backend = quality.detect_judge_backend(args.test_timeout)
    load_before = runinfo.load_average()
    rows: list[Row] = []
    with quality.workspace_root() as root:
        for pipeline in pipelines.values():
            pipeline.warm_up(root)
        for task_id in wanted:
            row = measure(pipelines, problems[task_id], root, temperatures, args.test_timeout, backend)
            rows.append(row)
            repairs = ", ".join(
                f"t={a.temperature:g} {'passes' if a.passed else 'fails'}" for a in row.repairs
            )
            print(
                f"{task_id}: lead {'passes' if row.lead.passed else 'fails'}; repairs: {repairs or '-'}",
                flush=True,
            )
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": runinfo.git_revision(),
        "command": "python bench/lead_repair.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": runinfo.machine_info(engine.info),
        "load_before": load_before,
        "load_after": runinfo.load_average(),
    }
    text = markdown(rows, temperatures, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
