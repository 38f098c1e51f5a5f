"""bench/lead_repair.py: a failed greedy lead, then repairs told why it failed, each verified by the real
pipeline and judged by the held-out tests; a scripted engine stands in for the model."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsp_verify.config import Settings
from lsp_verify.pipeline import Pipeline
from test_pipeline import ScriptedEngine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))  # the benchmark's modules import each other by name

import lead_repair  # noqa: E402
from humaneval import Problem, detect_judge_backend  # noqa: E402

PROBLEM = Problem(
    task_id="Scale/0",
    prompt=(
        "def scale(xs: list[int], factor: int) -> list[int]:\n"
        '    """Times factor.\n\n    >>> scale([1, 2], 3)\n    [3, 6]\n    """\n'
    ),
    entry_point="scale",
    test="def check(candidate):\n    assert candidate([4], 2) == [8]\n",
    canonical_solution="    return [x * factor for x in xs]\n",
)
RIGHT = "return [x * factor for x in xs]"
PLUS_ONE = "return [x * factor + 1 for x in xs]"
PLUS_TWO = "return [x * factor + 2 for x in xs]"


@pytest.fixture
def pipelines() -> Iterator[tuple[ScriptedEngine, dict[float, Pipeline]]]:
    engine = ScriptedEngine([[PLUS_ONE], [RIGHT], [PLUS_TWO]])
    base = Settings(trusted=True, k=1, repair_rounds=0)
    made = {
        t: Pipeline(
            dataclasses.replace(base, temperature=t, lead_sequence=not t), engine_factory=lambda _: engine
        )
        for t in (0.0, 0.8)
    }
    yield engine, made
    for pipeline in made.values():
        pipeline.close()


def test_a_failed_lead_is_repaired_at_each_temperature_with_its_error_in_the_prompt(
    tmp_path: Path, pipelines: tuple[ScriptedEngine, dict[float, Pipeline]]
) -> None:
    engine, made = pipelines
    row = lead_repair.measure(made, PROBLEM, tmp_path, [0.0, 0.8], 5.0, detect_judge_backend(5.0))

    assert not row.lead.passed and "expected" in (row.lead.error or "")
    greedy, sampled = row.repairs
    assert (greedy.passed, greedy.correct) == (True, True)
    assert (sampled.passed, sampled.correct) == (False, None)
    # The repair's prompt holds the lead's body and its failed doctest; the lead's prompt holds neither.
    assert "x * factor + 1" in engine.prompts[1].text and "x * factor + 1" not in engine.prompts[0].text
    assert [p.temperature for p in engine.params] == [0.0, 0.0, 0.8]
    assert [p.lead for p in engine.params] == [True, True, False]

    text = lead_repair.markdown(
        [row],
        [0.0, 0.8],
        {
            "date": "d",
            "revision": "r",
            "command": "c",
            "machine": {},
            "load_before": None,
            "load_after": None,
        },
    )
    assert "| Scale/0 | fails" in text and "passes, right" in text
    assert "- t = 0: 1 of 1 failed leads repaired, 1 right." in text
    assert "- t = 0.8: 0 of 1 failed leads repaired, 0 right." in text
