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
   is kept; the product then runs a repair round, which the replay counts as nothing shown), else skips;
   :func:`~lsp_verify.verify.question.keep_agreeing` filters;
3. the suggestion shown is the first of :func:`~lsp_verify.verify.rank.rank` over what is left, judged by
   the record's ``correct`` (the held-out ``check()`` tests).

Precision = correct shown / shown, coverage = shown / problems. Added latency: the time to choose a question
and apply an answer (the probe calls themselves already run during verification, ``verify/cascade.py``).

``--live`` runs those repair rounds with the real model (the recorded run's settings: k, seed, max_tokens,
temperature; ``live_settings``): the same questions go through the product's own flow,
:func:`lsp_verify.ask.ask_and_keep`, with the simulated user as the asker, so the answer becomes the doctest
the product writes and the product reruns the pipeline (generation with the answer in the docstring,
verification that runs it, the pipeline's own repair round when nothing passes). The best verified candidate
is judged by the held-out ``check()`` and counted from the question that needed the repair on; the repair's
wall time is its added latency. ``--live-budget-s`` starts no repair after that long (the rest are reported
as not run and counted as the replay counts them); ``--resume`` reuses what a stopped run kept.

    python bench/ask.py --records docs/quality.jsonl --out bench/results/ask.md
    nice -n 10 python bench/ask.py --records docs/quality.jsonl --live   # -> bench/results/ask-live.md
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

from humaneval import (  # noqa: E402
    JudgeBackend,
    Problem,
    detect_judge_backend,
    judge,
    load_problems,
    request_line,
    stub_source,
    workspace_root,
    write_workspace,
)
from lsp_verify.ask import ask_and_keep  # noqa: E402
from lsp_verify.config import Settings  # noqa: E402
from lsp_verify.pipeline import FixReport, FixRequest, Pipeline  # noqa: E402
from lsp_verify.syntax.splice import splice_body  # noqa: E402
from lsp_verify.syntax.target import EditTarget  # noqa: E402
from lsp_verify.syntax.targets import function_targets  # noqa: E402
from lsp_verify.verify.probe import (  # noqa: E402
    CALL_TIMEOUT_S,
    MAX_SHOWN,
    ProbePlan,
    documented_outputs,
    outside_inputs,
    probe_inputs,
)
from lsp_verify.verify.question import (  # noqa: E402
    Answer,
    Question,
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
    repair_at: int = 0
    """After how many questions an answer matched no candidate (the product's repair round; 0: none)."""


@dataclasses.dataclass
class Replay:
    """One problem's recorded candidates, probed: what the questions are asked about."""

    target: EditTarget
    results: list[CandidateResult]
    """The recorded run's verified candidates (``candidate.index`` = their position here)."""
    correct_of: dict[int, bool]
    reference: dict[str, Any] | None
    """The reference solution's probe ``fingerprints`` and ``shown`` outputs (None: not probed)."""
    plan: ProbePlan
    probe_s: float


def replay(problem: Problem, record: Any, path: Path = Path("/bench/problem.py")) -> Replay | None:
    """Probe the record's verified candidates and the reference on the product's probe inputs."""
    run = record.runs[-1] if record.runs else None
    if run is None:
        return None
    text = stub_source(problem)
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
    stated = documented_outputs(target.docstring, target.name)
    documented = tuple((i, stated[source]) for i, source in enumerate(inputs) if source in stated)
    plan = ProbePlan(
        "problem", problem.entry_point, inputs, documented=documented, outside=outside_inputs(target, inputs)
    )
    return Replay(target, results, correct_of, probed.get("reference"), plan, probe_s)


def simulated_answer(question: Question, reference: dict[str, Any] | None) -> Answer:
    """The simulated user: the option the reference agrees with, else the reference's own value ("another
    value"), else skip (the reference raises what no candidate raises, times out, or is no short literal)."""
    if reference is None:
        return Answer()
    i = question.input_index
    expected_fp, expected_shown = reference["fingerprints"][i], reference["shown"][i]
    option = next((o for o in question.options if o.fingerprint == expected_fp), None)
    if option is not None:
        return Answer(option=option)
    if expected_shown is not None and not expected_shown.startswith("!"):
        return Answer(value=expected_shown)
    return Answer()


def simulate(problem: Problem, record: Any) -> Outcome | None:
    replayed = replay(problem, record)
    if replayed is None:
        return None
    results, correct_of, reference = replayed.results, replayed.correct_of, replayed.reference
    plan = replayed.plan

    shown, correct = [], []
    remaining: tuple[CandidateResult, ...] = tuple(rank(results))
    asked, repair, repair_at, choose_s = 0, False, 0, 0.0
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
            if question is not None:
                answer = simulated_answer(question, reference)
                if not answer.skipped:
                    asked += 1
                    remaining = tuple(rank(keep_agreeing(remaining, question, answer)))
                    repair = not remaining
            repair_at = n if repair and not repair_at else repair_at
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
        replayed.probe_s,
        why,
        stated_shown if results else False,
        stated_correct,
        repair_at,
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


# ------------------------------------------------------------------------------------ the live repair round


@dataclasses.dataclass
class Live:
    """The product's repair round after an answer no candidate returned, run with the real model."""

    task_id: str
    repair_at: int
    """After how many questions the replay's answer matched no candidate."""
    repaired: bool
    """The product's question flow (:func:`lsp_verify.ask.ask_and_keep`) ran the repair (it asks the same
    questions as the replay, so this is True unless the two disagree)."""
    answer: str
    """The call and the answer that became the doctest, e.g. ``f(3) -> 9``."""
    shown: bool
    """The repaired run verified a candidate (so it passes the answer's doctest)."""
    correct: bool
    """That candidate passes the held-out ``check()`` tests."""
    evidence: str | None
    verified: int
    """Distinct candidates the repaired run verified."""
    verified_correct: int
    """... of which pass the held-out tests."""
    n_generated: int
    repair_s: float
    """Wall time of the repair (the product's rerun: generation, verification, its own repair round)."""
    error: str = ""
    failed_at: dict[str, int] = dataclasses.field(default_factory=dict)
    """The repaired run's failed candidates by the check they failed first (parse, mypy, tests)."""
    first_error: str = ""
    """The first error of the repaired run's first failed candidate (why the answer's doctest failed)."""
    asked_before: int = 0
    """Questions the flow asked before the repair (0: the docstring's stated output started it)."""
    asked_after: int = 0
    """Questions the flow asked about the repaired run's candidates (the request's questions left)."""
    shown_first: bool | None = None
    """The repaired run verified a candidate, before those questions (None: as ``shown``)."""
    correct_first: bool | None = None
    """... and its best one passes the held-out tests (None: as ``correct``)."""


NOT_RUN = "not run: --live-budget-s spent"


def not_run(outcome: Outcome) -> Live:
    """A repair the time budget left out: counted as the replay counts it (nothing shown)."""
    return Live(outcome.task_id, outcome.repair_at, False, "", False, False, None, 0, 0, 0, 0.0, NOT_RUN)


def live_settings(config: dict[str, Any]) -> Settings:
    """The quality run's settings, read off its records' ``config`` (as ``bench/quality.py`` builds them)."""
    settings = Settings(
        k=max(config["ks"]),
        max_tokens=config["max_tokens"],
        seed=config["seed"],
        model_path=config["model"],
        temperature=config["temperature"],
        top_p=config["top_p"],
        repair_rounds=config["repair_rounds"],
        trusted=True,
    )
    settings.quorum = 0  # as bench/quality.py: all k samples, so the figures match the recorded run's
    return settings


def live_repair(
    pipeline: Pipeline,
    problem: Problem,
    record: Any,
    repair_at: int,
    root: Path,
    judge_timeout: float,
    backend: JudgeBackend,
) -> Live | None:
    """Replay the questions through the product's own flow with the simulated user as the asker; where an
    answer matches no candidate the flow adds it to the docstring as a doctest and reruns ``pipeline`` (the
    real model); its best verified candidate is judged by the held-out tests. ``repair_at``: after how many
    questions the replay needed the repair. None: the problem cannot be replayed."""
    path = write_workspace(problem, root)
    pipeline.invalidate([path])  # the file changed on disk: no baseline of the last problem applies
    replayed = replay(problem, record, path)
    if replayed is None:
        return None
    text = path.read_text(encoding="utf-8")
    fix = FixReport(replayed.target, tuple(rank(replayed.results)), 0, 0.0, None, "", probe=replayed.plan)
    request = FixRequest(path=path, text=text, root=root, line=request_line(problem, text))

    questions: list[Question] = []

    def asker(question: Question, target: EditTarget) -> Answer:
        questions.append(question)
        return simulated_answer(question, replayed.reference)

    reruns: list[FixReport] = []
    asked_before: list[int] = []

    def rerun(repaired: FixRequest) -> FixReport:
        asked_before.append(len(questions))
        report = pipeline.run(repaired)
        reruns.append(report)
        return report

    started = time.monotonic()
    try:
        asked = ask_and_keep(pipeline.settings, request, fix, asker, rerun)
    except Exception as exc:  # one problem's failure is a data point, not the end of the benchmark
        return Live(record.task_id, repair_at, False, "", False, False, None, 0, 0, 0, 0.0, f"{exc!r}"[:300])
    repair_s = time.monotonic() - started
    before, after = set(text.splitlines()), asked.text.splitlines()
    doctest = " / ".join(
        f"{line.strip()} {after[i + 1].strip()}"
        for i, line in enumerate(after[:-1])
        if line not in before and line.strip().startswith(">>>")
    )
    passing = asked.fix.passing if asked.repaired else ()
    programs = {f"c{i}": r.candidate.new_text for i, r in enumerate(passing)}
    first = reruns[0].best if reruns and asked.repaired else None
    if first is not None:
        programs["first"] = first.candidate.new_text
    verdicts = judge(problem, programs, judge_timeout, backend)
    right = [verdicts[f"c{i}"].passed for i in range(len(passing))]
    best = asked.fix.best if asked.repaired else None
    failed = [r for r in asked.fix.results if not r.passed] if asked.repaired else []
    failed_at: dict[str, int] = {}
    for r in failed:
        stage = next((st.stage for st in r.stages if not st.ok), "none")
        failed_at[stage] = failed_at.get(stage, 0) + 1
    return Live(
        record.task_id,
        repair_at,
        asked.repaired,
        doctest,
        best is not None,
        bool(right) and right[0],
        best.evidence.value if best is not None else None,
        len(passing),
        sum(right),
        asked.fix.n_generated if asked.repaired else 0,
        round(repair_s, 3),
        failed_at=failed_at,
        first_error=(failed[0].first_error or "")[:300] if failed else "",
        asked_before=asked_before[0] if asked_before else 0,
        asked_after=len(questions) - asked_before[0] if asked_before else 0,
        shown_first=first is not None if asked.repaired else None,
        correct_first=first is not None and verdicts["first"].passed if asked.repaired else None,
    )


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


def with_live(outcome: Outcome, live: Live | None) -> tuple[list[bool], list[bool]]:
    """``outcome``'s shown / correct after 0, 1, 2 questions with the live repair counted from the question
    that needed it on: the repaired run's best, then, once the questions left were asked about the repaired
    candidates, what they kept."""
    if live is None or not outcome.repair_at:
        return outcome.shown, outcome.correct
    shown, correct = list(outcome.shown), list(outcome.correct)
    for q in range(live.repair_at, len(shown)):
        # With q questions the flow asks q - asked_before of them about the repaired candidates. Measured
        # with the largest q only: fewer than all of them are counted as none (exact while asked_after <= 1).
        before = q - live.asked_before < live.asked_after and live.shown_first is not None
        shown[q] = shown[q] or bool(live.shown_first if before else live.shown)
        correct[q] = correct[q] or bool(live.correct_first if before else live.correct)
    return shown, correct


def live_table(outcomes: list[Outcome], lives: dict[str, Live]) -> list[str]:
    """Replay-only figures beside the same ones with the live repair rounds counted."""
    n = len(outcomes)
    counted = [with_live(o, lives.get(o.task_id)) for o in outcomes]
    lines = [
        f"**{outcomes[0].group if outcomes else ''}** ({n} problems; {len(lives)} live repair rounds)",
        "",
        "| questions | replay: correct/shown | precision | coverage | with the live repair: correct/shown "
        "| precision | coverage |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for q, _ in enumerate(QUESTIONS):
        cells = []
        for shown_of, correct_of in (
            ([o.shown[q] for o in outcomes], [o.correct[q] for o in outcomes]),
            ([c[0][q] for c in counted], [c[1][q] for c in counted]),
        ):
            shown, right = sum(shown_of), sum(correct_of)
            precision = f"{right / shown:.2f}" if shown else "-"
            cells += [f"{right}/{shown}", precision, f"{shown / n:.2f}" if n else "-"]
        lines.append(f"| ≤ {q} | {' | '.join(cells)} |")
    ran = list(lives.values())
    done = [r for r in ran if not r.error]
    seconds = sorted(r.repair_s for r in done)
    asked = [o.asked for o in outcomes]
    errors = sum(bool(r.error) and r.error != NOT_RUN for r in ran)
    not_run_count = sum(r.error == NOT_RUN for r in ran)
    lines += [
        "",
        f"questions asked per problem: mean {sum(asked) / n:.2f}, with those about the repaired candidates "
        f"{(sum(asked) + sum(r.asked_after for r in ran)) / n:.2f}"
        if n
        else "",
        f"live repair rounds: {len(ran)}, of which not run (time budget) {not_run_count}, failed {errors}; "
        f"the product's flow ran the repair in {sum(r.repaired for r in ran)}; a candidate "
        f"verified (it passes the answer's doctest) in {sum(r.shown for r in ran)}, right by the held-out "
        f"tests in {sum(r.correct for r in ran)}; right among all verified: "
        f"{sum(r.verified_correct for r in ran)}/{sum(r.verified for r in ran)}",
    ]
    failed_at: dict[str, int] = {}
    for r in done:
        for stage, count in r.failed_at.items():
            failed_at[stage] = failed_at.get(stage, 0) + count
    if failed_at:
        lines.append(
            "failed candidates of the repaired runs by the check they failed first: "
            + ", ".join(f"{stage} {count}" for stage, count in sorted(failed_at.items()))
        )
    if seconds:
        lines.append(
            f"added latency of a repair (the product's rerun, wall time): mean "
            f"{sum(seconds) / len(seconds):.1f} s, median {seconds[len(seconds) // 2]:.1f} s, max "
            f"{seconds[-1]:.1f} s"
        )
    lines += [
        "",
        "| problem | after | answer (added as a doctest) | verified | right | evidence | generated "
        "| seconds | asked after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for live in ran:
        answer = (live.answer or live.error).replace("|", "\\|")
        lines.append(
            f"| {live.task_id} | {live.repair_at} | `{answer}` | {live.verified} | {live.verified_correct} "
            f"| {live.evidence or '-'} | {live.n_generated} | {live.repair_s:.1f} | {live.asked_after} |"
        )
    lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=Path, default=REPO / "docs" / "quality.jsonl")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/ask.md (ask-live.md)")
    parser.add_argument("--group", choices=("types", "tests", "all"), default="types")
    parser.add_argument("--limit", type=int, default=0, help="first N problems of the group only")
    parser.add_argument(
        "--live",
        action="store_true",
        help="run the product's repair round with the real model where an answer matched no candidate",
    )
    parser.add_argument("--test-timeout", type=float, default=5.0, help="seconds per held-out check() run")
    parser.add_argument(
        "--live-budget-s",
        type=float,
        default=0.0,
        help="start no live repair this many seconds after the command started (0: no limit); the rest are "
        "reported as not run",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --live: reuse the repairs a stopped run kept in OUT.partial.jsonl",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(sys.stdin.read()))))
        return 0
    out: Path = args.out or REPO / "bench" / "results" / ("ask-live.md" if args.live else "ask.md")
    problems = {p.task_id: p for p in load_problems()}
    records = [r for r in read_records(args.records) if args.group == "all" or r.group == args.group]
    if args.limit:
        records = records[: args.limit]
    load_before, started = os.getloadavg()[0], time.monotonic()
    # The code that runs is the checkout's at the start (a long run outlives later commits).
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    )
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
    lives = (
        run_live(
            outcomes,
            records,
            problems,
            args.test_timeout,
            out,
            started + args.live_budget_s if args.live_budget_s else None,
            args.resume,
        )
        if args.live
        else {}
    )
    jsonl = out.with_suffix(".jsonl")
    jsonl.write_text("".join(json.dumps(_line(o, lives.get(o.task_id))) + "\n" for o in outcomes))
    shown_records = args.records.relative_to(REPO) if args.records.is_relative_to(REPO) else args.records
    flags = f"{f' --limit {args.limit}' if args.limit else ''}{' --live' if args.live else ''}"
    flags += f"{f' --live-budget-s {args.live_budget_s:g}' if args.live_budget_s else ''}"
    flags += " --resume" if args.resume else ""
    lines = [
        "# Questions with a simulated user (HumanEval, reference solution answers)",
        "",
        f"`python bench/ask.py --records {shown_records} --group {args.group}{flags}` on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, revision {revision.stdout.strip()}, "
        f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. "
        + (
            "Recorded candidates replayed, and where an answer matched no candidate the product's repair "
            "round run live with the real model: see the module docstring."
            if args.live
            else "Recorded candidates replayed (no model run): see the module docstring."
        ),
        "",
    ]
    for group in ("types", "tests") if args.group == "all" else (args.group,):
        if args.live:
            chosen = [o for o in outcomes if o.group == group]
            lines += live_table(
                chosen, {t: live for t, live in lives.items() if t in {o.task_id for o in chosen}}
            )
        else:
            lines += table(outcomes, group)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _line(outcome: Outcome, live: Live | None) -> dict[str, Any]:
    return {**dataclasses.asdict(outcome), "live": dataclasses.asdict(live) if live is not None else None}


def run_live(
    outcomes: list[Outcome],
    records: list[Any],
    problems: dict[str, Problem],
    timeout: float,
    out: Path,
    deadline: float | None = None,
    resume: bool = False,
) -> dict[str, Live]:
    """The live repair of every outcome that needed one, one after the other with one loaded model; with
    ``resume``, the repairs a stopped run kept in ``<out>.partial.jsonl`` are reused, not run again."""
    by_id = {r.task_id: r for r in records}
    todo = [o for o in outcomes if o.repair_at]
    partial = out.with_name(out.stem + ".partial.jsonl")
    kept = [Live(**json.loads(line)) for line in partial.read_text().splitlines()] if resume else []
    lives = {live.task_id: live for live in kept if live.error != NOT_RUN}
    pipeline: Pipeline | None = None
    backend = detect_judge_backend(timeout)
    try:
        with workspace_root() as root:
            for i, outcome in enumerate(todo, start=1):
                record = by_id[outcome.task_id]
                if outcome.task_id in lives:
                    continue
                if deadline is not None and time.monotonic() > deadline:
                    lives[outcome.task_id] = not_run(outcome)
                    continue
                if pipeline is None:
                    pipeline = Pipeline(live_settings(record.config))
                    pipeline.engine()  # loaded before the clock starts: not the repair's latency
                live = live_repair(
                    pipeline, problems[record.task_id], record, outcome.repair_at, root, timeout, backend
                )
                if live is None:
                    continue
                lives[outcome.task_id] = live
                print(
                    f"live [{i}/{len(todo)}] {live.task_id} repaired {live.repaired} verified "
                    f"{live.verified} right {live.verified_correct} shown-right {live.correct} "
                    f"{live.repair_s:.1f}s {live.error}",
                    file=sys.stderr,
                    flush=True,
                )
                # Kept as it goes: a run stopped early still leaves what it measured (see --resume).
                partial.write_text("".join(json.dumps(dataclasses.asdict(v)) + "\n" for v in lives.values()))
    finally:
        if pipeline is not None:
            pipeline.close()
    return {o.task_id: lives[o.task_id] for o in todo if o.task_id in lives}


if __name__ == "__main__":
    sys.exit(main())
