"""bench/ask.py: the simulated user and the live repair round after an answer no candidate returned, with a
scripted engine in place of the model and the real probes, verifier (mypy, the answer's doctest) and judge."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lsp_verify.pipeline import Pipeline
from test_pipeline import ScriptedEngine

REPO = Path(__file__).resolve().parents[1]
# The benchmark's modules import each other by name from bench/, as they do when run as scripts.
sys.path.insert(0, str(REPO / "bench"))

import ask  # noqa: E402
from humaneval import JudgeBackend, Problem, detect_judge_backend  # noqa: E402
from quality_records import CandidateRecord, ProblemRecord, RunRecord  # noqa: E402

PROBLEM = Problem(
    task_id="Scale/0",
    prompt='def scale(xs: list[int], factor: int) -> list[int]:\n    """Times factor."""\n',
    entry_point="scale",
    test="def check(candidate):\n    assert candidate([1, 2], 3) == [3, 6]\n",
    canonical_solution="    return [x * factor for x in xs]\n",
)
RIGHT = "    return [x * factor for x in xs]"
# Both wrong on every non-empty list, and different from each other there: the question splits them and the
# reference's value is neither ("another value"), whichever input is asked about.
PLUS_ONE = "    return [x * factor + 1 for x in xs]"
PLUS_TWO = "    return [x * factor + 2 for x in xs]"
CONFIG = {
    "ks": [1, 2],
    "max_tokens": 64,
    "seed": 0,
    "model": None,
    "temperature": 0.8,
    "top_p": 0.95,
    "repair_rounds": 1,
}


def record(*bodies: str) -> ProblemRecord:
    candidates = [
        CandidateRecord(f"k{i}", i, body, True, "types_only", None, 0.1, 0, False, "", -0.1 * (i + 1))
        for i, body in enumerate(bodies)
    ]
    run = RunRecord(2, 0.8, 1.0, 0.5, len(bodies), [], candidates, "", [])
    return ProblemRecord(PROBLEM.task_id, "types", CONFIG, "scale", None, None, [run], [], 1.0)


@pytest.fixture
def pipeline() -> Iterator[Callable[[ScriptedEngine], Pipeline]]:
    """``pipeline(engine)``: the bench's pipeline on ``engine``, closed after the test (its verifier's worker
    processes must not outlive it: later tests count the processes they leave)."""
    made: list[Pipeline] = []

    def make(engine: ScriptedEngine) -> Pipeline:
        settings = ask.live_settings(CONFIG)
        assert (settings.k, settings.max_tokens, settings.quorum, settings.trusted) == (2, 64, 0, True)
        made.append(Pipeline(settings, engine_factory=lambda _: engine))
        return made[-1]

    yield make
    for each in made:
        each.close()


@pytest.fixture(scope="module")
def backend() -> JudgeBackend:
    return detect_judge_backend(5.0)


def test_the_replay_marks_an_answer_no_candidate_returned_as_a_repair_after_that_question() -> None:
    outcome = ask.simulate(PROBLEM, record(PLUS_ONE, PLUS_TWO))
    assert outcome is not None
    assert (outcome.asked, outcome.repair, outcome.repair_at) == (1, True, 1)
    assert outcome.shown == [True, False, False]  # the replay alone shows nothing after the answer


def test_the_live_repair_puts_the_answer_in_the_prompt_verifies_it_and_judges_the_result(
    tmp_path: Path, backend: JudgeBackend, pipeline: Callable[[ScriptedEngine], Pipeline]
) -> None:
    engine = ScriptedEngine([[PLUS_ONE, RIGHT]], indent="")
    live = ask.live_repair(
        pipeline(engine),
        PROBLEM,
        record(PLUS_ONE, PLUS_TWO),
        1,
        tmp_path / "ws",
        5.0,
        backend,
    )
    assert live is not None and live.repaired and not live.error
    # The answer became a doctest in the docstring the model was shown ...
    doctest = re.fullmatch(r">>> (scale\(.+\)) (\[.*\])", live.answer)
    assert doctest is not None, live.answer
    assert f">>> {doctest[1]}" in engine.prompts[0].text and doctest[2] in engine.prompts[0].text
    # ... which the product ran: the candidate that still adds one fails it; the right one passes and is
    # right by the held-out check().
    assert (live.shown, live.correct, live.evidence) == (True, True, "tests")
    assert (live.verified, live.verified_correct) == (1, 1)
    assert live.failed_at == {"tests": 1}
    assert len(engine.prompts) == 1  # something passed: no second (repair) round


def test_a_repair_that_finds_nothing_runs_the_pipelines_own_repair_round_and_shows_nothing(
    tmp_path: Path, backend: JudgeBackend, pipeline: Callable[[ScriptedEngine], Pipeline]
) -> None:
    engine = ScriptedEngine([[PLUS_ONE, PLUS_TWO], [PLUS_TWO]], indent="")
    live = ask.live_repair(
        pipeline(engine),
        PROBLEM,
        record(PLUS_ONE, PLUS_TWO),
        1,
        tmp_path / "ws",
        5.0,
        backend,
    )
    assert live is not None and live.repaired
    assert (live.shown, live.correct, live.verified) == (False, False, 0)
    assert len(engine.prompts) == 2 and live.n_generated == 3
    assert live.failed_at == {"tests": 2} and "scale(" in live.first_error


def test_live_figures_count_a_repair_from_the_question_that_needed_it() -> None:
    base = ask.Outcome(
        "p", "types", [True, False, False], [False, False, False], 1, True, 0.0, 0.0, "", False, False, 1
    )
    right = ask.Live("p", 1, True, ">>> f(1) 2", True, True, "tests", 1, 1, 8, 3.0)
    assert ask.with_live(base, right) == ([True, True, True], [False, True, True])
    late = ask.Outcome(
        "q", "types", [True, True, False], [False, False, False], 2, True, 0.0, 0.0, "", False, False, 2
    )
    assert ask.with_live(late, ask.Live("q", 2, True, "", True, False, "tests", 1, 0, 8, 3.0)) == (
        [True, True, True],
        [False, False, False],
    )
    assert ask.with_live(late, ask.not_run(late)) == (late.shown, late.correct)
    lines = ask.live_table([base, late], {"p": right, "q": ask.not_run(late)})
    assert "| ≤ 1 | 0/1 | 0.00 | 0.50 | 1/2 | 0.50 | 1.00 |" in lines
    assert "| ≤ 2 | 0/0 | - | 0.00 | 1/1 | 1.00 | 0.50 |" in lines
    assert any("not run (time budget) 1, failed 0" in line for line in lines)


def test_live_figures_count_the_question_asked_about_the_repaired_candidates_from_the_next_budget_on() -> (
    None
):
    """After one question the repaired run's best (wrong) is shown; the second question, asked about the
    repaired candidates, keeps a right one: counted from two questions on. A repair the docstring's stated
    output started (no question before it) has the second question left too."""
    base = ask.Outcome(
        "p", "types", [True, False, False], [False, False, False], 1, True, 0.0, 0.0, "", False, False, 1
    )
    fields = dict(shown_first=True, correct_first=False, asked_after=1)
    after_question = ask.Live("p", 1, True, "", True, True, "tests", 2, 1, 8, 3.0, asked_before=1, **fields)
    assert ask.with_live(base, after_question) == ([True, True, True], [False, False, True])
    after_stated = ask.Live("p", 1, True, "", True, True, "tests", 2, 1, 8, 3.0, asked_before=0, **fields)
    assert ask.with_live(base, after_stated) == ([True, True, True], [False, True, True])


def test_resume_reuses_the_kept_repairs_and_the_budget_leaves_the_rest_not_run(tmp_path: Path) -> None:
    out = tmp_path / "ask-live.md"
    kept = ask.Live("p", 1, True, ">>> f(1) 2", True, True, "tests", 1, 1, 8, 3.0)
    out.with_name("ask-live.partial.jsonl").write_text(json.dumps(dataclasses.asdict(kept)) + "\n")
    outcomes = [
        ask.Outcome(t, "types", [True, False, False], [False] * 3, 1, True, 0.0, 0.0, "", False, False, 1)
        for t in ("p", "q")
    ]
    records = [record(), dataclasses.replace(record(), task_id="q")]
    records[0].task_id = "p"
    # The deadline has passed: "q" is not run, so no model is loaded.
    lives = ask.run_live(outcomes, records, {}, 5.0, out, deadline=0.0, resume=True)
    assert lives == {"p": kept, "q": ask.not_run(outcomes[1])}
