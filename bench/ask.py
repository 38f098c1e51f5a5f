"""Questions with a simulated user: how much do 0, 1 or 2 answers raise the precision of what is shown?

TiCoder's protocol (Fakhoury et al., IEEE TSE 2024): the held-out reference solution answers every question.
On HumanEval's problems without doctests (the ``types`` group of ``bench/quality.py``: only parse + mypy can
back a suggestion) this replays the candidates a recorded quality run verified - no model is run - through
the product's own question code:

1. every verified candidate and the reference are called on the product's probe inputs
   (:func:`lsp_verify.verify.probe.probe_inputs`), fingerprinted and shown exactly as the probe worker does
   (its ``_canonical`` / ``_literal_repr``), in a child process with a per-call alarm and memory limits;
2. :func:`~lsp_verify.verify.question.documented_answers` first keeps the candidates that return what the
   docstring's prose states (``f(2) == 4``), as the product's question flow does; then
   :func:`~lsp_verify.verify.question.choose_question` picks the question; the simulated user answers with
   the option the reference agrees with, else with the reference's own value ("another value": no candidate
   is kept; the product would then run a repair round, which is not replayed here and counts as nothing
   shown), else skips; :func:`~lsp_verify.verify.question.keep_agreeing` filters;
3. the suggestion shown is the first of :func:`~lsp_verify.verify.rank.rank` over what is left, judged by
   the record's ``correct`` (the held-out ``check()`` tests).

Precision = correct shown / shown, coverage = shown / problems. Added latency: the time to choose a question
and apply an answer (the probe calls themselves already run during verification, ``verify/cascade.py``).

    python bench/ask.py --records docs/quality.jsonl --out bench/results/ask.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server"))
sys.path.insert(0, str(REPO / "bench"))

from humaneval import Problem, load_problems, stub_source  # noqa: E402
from lsp_verify.syntax.splice import splice_body  # noqa: E402
from lsp_verify.syntax.targets import function_targets  # noqa: E402
from lsp_verify.verify.probe import (  # noqa: E402
    CALL_TIMEOUT_S,
    MAX_SHOWN,
    ProbePlan,
    documented_outputs,
    probe_inputs,
)
from lsp_verify.verify.question import (  # noqa: E402
    Answer,
    choose_question,
    documented_answers,
    keep_agreeing,
)
from lsp_verify.verify.rank import rank  # noqa: E402
from lsp_verify.verify.types import Candidate, CandidateResult, Evidence  # noqa: E402
from quality_records import read_records  # noqa: E402

QUESTIONS = (0, 1, 2)


def _child(payload: dict[str, Any]) -> dict[str, Any]:
    """In the child process: call each source's function on every input, as the probe worker does."""
    import ast
    import signal

    from lsp_verify.verify._worker import _CallTimeout, _canonical, _literal_repr, _on_alarm

    signal.signal(signal.SIGALRM, _on_alarm)
    out: dict[str, Any] = {}
    for name, source in payload["sources"].items():
        fingerprints: list[str] = []
        shown: list[str | None] = []
        namespace: dict[str, Any] = {}
        try:
            exec(compile(source, "problem.py", "exec"), namespace)
            function = namespace[payload["entry_point"]]
        except BaseException:
            out[name] = None
            continue
        namespace["__probe__"] = function
        for arguments in payload["inputs"]:
            signal.setitimer(signal.ITIMER_REAL, payload["call_timeout"])
            try:
                result = eval(f"__probe__({arguments})", namespace)
                text = _canonical(result)
                fingerprints.append(hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16])
                shown.append(_literal_repr(result, payload["max_shown"], ast.literal_eval))
            except _CallTimeout:
                fingerprints.append("!timeout")
                shown.append(None)
            except BaseException as exc:
                fingerprints.append("!" + type(exc).__name__)
                shown.append("!" + type(exc).__name__)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        out[name] = {"fingerprints": fingerprints, "shown": shown}
    return out


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def probe_all(problem: Problem, inputs: tuple[str, ...], sources: dict[str, str]) -> dict[str, Any]:
    payload = {
        "entry_point": problem.entry_point,
        "inputs": list(inputs),
        "sources": sources,
        "call_timeout": CALL_TIMEOUT_S,
        "max_shown": MAX_SHOWN,
    }
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child"],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=30 + len(inputs) * len(sources) * CALL_TIMEOUT_S,
            preexec_fn=_limit,
            env={**os.environ, "PYTHONPATH": str(REPO / "server")},
        )
        data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return data
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return {}


@dataclasses.dataclass
class Outcome:
    task_id: str
    group: str
    shown: list[bool]
    correct: list[bool]
    asked: int
    repair: bool
    choose_ms: float
    probe_s: float
    why: str = ""
    """When the suggestion shown after the last question is wrong or nothing is shown: why (see
    :func:`diagnose`)."""
    stated_shown: bool = False
    """Something is shown after only the answers the docstring's prose states (no question asked)."""
    stated_correct: bool = False


def simulate(problem: Problem, record: Any) -> Outcome | None:
    run = record.runs[-1] if record.runs else None
    if run is None:
        return None
    text = stub_source(problem)
    path = Path("/bench/problem.py")
    found = [t for t in function_targets(text, path) if t.qualname == problem.entry_point]
    if not found:
        return None
    target = found[-1]
    inputs = probe_inputs(target)
    passing = [c for c in run.candidates if c.verified]
    sources = {f"c{i}": splice_body(text, target, c.body) for i, c in enumerate(passing)}
    sources["reference"] = problem.prompt + problem.canonical_solution
    started = time.monotonic()
    probed = probe_all(problem, inputs, sources) if passing else {}
    probe_s = time.monotonic() - started
    results = []
    correct_of: dict[int, bool] = {}
    for i, c in enumerate(passing):
        data = probed.get(f"c{i}")
        candidate = Candidate(
            i, c.body, sources[f"c{i}"], c.key, c.mean_logprob or 0.0, duplicates=c.duplicates
        )
        result = CandidateResult(
            candidate,
            True,
            Evidence(c.evidence),
            (),
            probe_outputs=tuple(data["fingerprints"]) if data else (),
            probe_shown=tuple(data["shown"]) if data else (),
        )
        results.append(result)
        correct_of[i] = c.correct
    reference = probed.get("reference")
    stated = documented_outputs(target.docstring, target.name)
    documented = tuple((i, stated[source]) for i, source in enumerate(inputs) if source in stated)
    plan = ProbePlan("problem", problem.entry_point, inputs, documented=documented)

    shown, correct = [], []
    remaining: tuple[CandidateResult, ...] = tuple(rank(results))
    asked, repair, choose_s = 0, False, 0.0
    stated_shown, stated_correct = False, False
    for n in QUESTIONS:
        if n > 0 and remaining and not repair:
            t0 = time.monotonic()
            if n == 1:  # the flow starts with the answers the docstring already gives
                kept, stated = documented_answers(remaining, plan, trusted=True)
                if stated:
                    remaining = tuple(rank(kept))
                    repair = not remaining
                stated_shown = bool(remaining)
                stated_correct = bool(remaining) and correct_of[remaining[0].candidate.index]
            question = None
            if remaining and not repair:
                question = choose_question(remaining, plan, trusted=True)
            if question is not None and reference is not None:
                i = question.input_index
                expected_fp, expected_shown = reference["fingerprints"][i], reference["shown"][i]
                option = next((o for o in question.options if o.fingerprint == expected_fp), None)
                if option is not None:
                    answer = Answer(option=option)
                elif expected_shown is not None and not expected_shown.startswith("!"):
                    answer = Answer(value=expected_shown)
                else:
                    answer = Answer()
                if not answer.skipped:
                    asked += 1
                    remaining = tuple(rank(keep_agreeing(remaining, question, answer)))
                    repair = not remaining
            choose_s += time.monotonic() - t0
        best = remaining[0] if remaining else None
        shown.append(best is not None)
        correct.append(best is not None and correct_of[best.candidate.index])
    why = "" if correct[-1] else diagnose(results, remaining, correct_of, reference, asked)
    return Outcome(
        record.task_id,
        record.group,
        shown,
        correct,
        asked,
        repair,
        choose_s * 1000,
        probe_s,
        why,
        stated_shown if passing else False,
        stated_correct,
    )


WHY = {
    "none-right": "(b) no verified candidate is right: only a repair round can help",
    "none-right-not-separated": "(b) no verified candidate is right, and the reference returns what the "
    "shown one does on every probe input (a question cannot reveal it)",
    "none-right-unaskable": "(b) no verified candidate is right; only inputs that cannot be asked about "
    "reveal it",
    "none-right-not-asked": "(b) no verified candidate is right; an askable input reveals it but was not "
    "asked",
    "answer-removed-right": "the reference's answer removed every right candidate (they differ from it on a "
    "probe input the held-out tests do not check)",
    "not-separated": "(a) no probe input separates the shown candidate from a right one",
    "separated-unaskable": "(a) only inputs that cannot be asked about (timeout, long or non-literal output) "
    "separate them",
    "reference-unanswerable": "the reference's output on the chosen input cannot be given as an answer "
    "(it raises an exception no candidate raises, or it is not a short literal): the user skips",
    "budget": "(c) an askable input separates them, but the questions ran out",
}


def diagnose(
    results: list[CandidateResult],
    remaining: tuple[CandidateResult, ...],
    correct_of: dict[int, bool],
    reference: dict[str, Any] | None,
    asked: int,
) -> str:
    """Why the suggestion left after the questions is wrong (or why nothing is left): a key of WHY."""
    if not any(correct_of[r.candidate.index] for r in results):
        if not remaining or reference is None:
            return "none-right"
        best = remaining[0]
        revealing = [
            i
            for i, fingerprint in enumerate(reference["fingerprints"])
            if i < len(best.probe_outputs) and fingerprint != best.probe_outputs[i]
        ]
        if not revealing:
            return "none-right-not-separated"
        if not any(best.probe_shown[i] not in (None, "!timeout") for i in revealing):
            return "none-right-unaskable"
        return "none-right-not-asked"
    right = [r for r in remaining if correct_of[r.candidate.index]]
    if not right:
        return "answer-removed-right"
    best = remaining[0]
    separating = [
        i
        for i in range(len(best.probe_outputs))
        if any(len(r.probe_outputs) > i and r.probe_outputs[i] != best.probe_outputs[i] for r in right)
    ]
    if not separating:
        return "not-separated"
    askable = [
        i
        for i in separating
        if all(s is not None and s != "!timeout" for s in (r.probe_shown[i] for r in remaining))
    ]
    if not askable:
        return "separated-unaskable"
    if asked < QUESTIONS[-1]:
        return "reference-unanswerable"
    return "budget"


def table(outcomes: list[Outcome], group: str) -> list[str]:
    chosen = [o for o in outcomes if group == "all" or o.group == group]
    if not chosen:
        return []
    n = len(chosen)
    lines = [
        f"**{group}** ({n} problems)",
        "",
        "| questions | shown | correct | precision | coverage |",
        "| --- | --- | --- | --- | --- |",
    ]
    for q, _ in enumerate(QUESTIONS):
        shown = sum(o.shown[q] for o in chosen)
        right = sum(o.correct[q] for o in chosen)
        precision = f"{right / shown:.2f}" if shown else "-"
        lines.append(f"| ≤ {q} | {shown} | {right} | {precision} | {shown / n:.2f} |")
    asked = [o.asked for o in chosen]
    stated, stated_right = sum(o.stated_shown for o in chosen), sum(o.stated_correct for o in chosen)
    lines += [
        "",
        f"after only the outputs the docstrings state in prose (the flow's first step, no question): shown "
        f"{stated}, correct {stated_right}, precision {stated_right / stated if stated else 0:.2f}, coverage "
        f"{stated / n:.2f}",
        f"questions asked per problem: mean {sum(asked) / n:.2f} "
        f"(0: {asked.count(0)}, 1: {asked.count(1)}, 2: {asked.count(2)}); answers no candidate returned "
        f"(the product runs a repair round; counted as nothing shown): {sum(o.repair for o in chosen)}",
        f"added latency (choosing questions and applying answers): mean "
        f"{sum(o.choose_ms for o in chosen) / n:.2f} ms, max {max(o.choose_ms for o in chosen):.2f} ms per "
        f"problem; probing candidates + reference here: mean {sum(o.probe_s for o in chosen) / n:.2f} s",
        "",
    ]
    whys = [o.why for o in chosen if o.why]
    if whys:
        lines += [
            f"why the suggestion after ≤ {QUESTIONS[-1]} questions is wrong or missing ({len(whys)}):",
            "",
        ]
        lines += [f"- {WHY[key]}: {whys.count(key)}" for key in WHY if key in whys]
        lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=Path, default=REPO / "docs" / "quality.jsonl")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ask.md")
    parser.add_argument("--group", choices=("types", "tests", "all"), default="types")
    parser.add_argument("--limit", type=int, default=0, help="first N problems of the group only")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(sys.stdin.read()))))
        return 0
    problems = {p.task_id: p for p in load_problems()}
    records = [r for r in read_records(args.records) if args.group == "all" or r.group == args.group]
    if args.limit:
        records = records[: args.limit]
    outcomes = []
    for i, record in enumerate(records, start=1):
        outcome = simulate(problems[record.task_id], record)
        if outcome is not None:
            outcomes.append(outcome)
            print(
                f"[{i}/{len(records)}] {record.task_id} shown {outcome.shown} correct {outcome.correct} "
                f"asked {outcome.asked}",
                file=sys.stderr,
            )
    jsonl = args.out.with_suffix(".jsonl")
    jsonl.write_text("".join(json.dumps(dataclasses.asdict(o)) + "\n" for o in outcomes))
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    )
    records = args.records.relative_to(REPO) if args.records.is_relative_to(REPO) else args.records
    lines = [
        "# Questions with a simulated user (HumanEval, reference solution answers)",
        "",
        f"`python bench/ask.py --records {records} "
        f"--group {args.group}{f' --limit {args.limit}' if args.limit else ''}` on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, revision {revision.stdout.strip()}, "
        f"load average {os.getloadavg()[0]:.1f}. Recorded candidates replayed (no model run): "
        "see the module docstring.",
        "",
    ]
    for group in ("types", "tests") if args.group == "all" else (args.group,):
        lines += table(outcomes, group)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
