"""The pipeline's own logic — streaming, de-duplication, votes, repair rounds, errors — with a scripted
engine in place of llama.cpp. The real model runs through the same code in test_cli.py and tests/e2e."""

from __future__ import annotations

import dataclasses
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from lsp_verify.cancel import Cancelled, CancelToken
from lsp_verify.config import Settings
from lsp_verify.model.types import EngineInfo, Generation, Prompt, SamplingParams
from lsp_verify.pipeline import FixReport, FixRequest, Pipeline, Progress
from lsp_verify.verify.types import CandidateResult

MODULE = '''\
def double(x: int) -> int:
    """Twice x."""
    ...
'''
TESTS = """\
from calc import double


def test_double() -> None:
    assert double(4) == 8
"""


class ScriptedEngine:
    """A stand-in for llama.cpp that hands out the scripted bodies of each round (the last round again for
    every later request) as finished sequences, one by one, ``indent`` before each; everything else in the
    tests that use it is real. Keeps the prompts and sampling parameters it was given."""

    def __init__(
        self, rounds: list[list[str]], on_each: Callable[[], None] | None = None, *, indent: str = "    "
    ) -> None:
        self.rounds = rounds
        self.prompts: list[Prompt] = []
        self.params: list[SamplingParams] = []
        self.returned = threading.Event()
        self.on_each = on_each
        self.indent = indent
        self.info = EngineInfo("scripted.gguf", "CPU", False, 0, 0, 1, 2048, 8)

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        on_generation: Callable[[Generation], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> list[Generation]:
        self.prompts.append(prompt)
        self.params.append(params)
        out = []
        bodies = self.rounds[min(len(self.prompts), len(self.rounds)) - 1]
        for index, body in enumerate(bodies[: params.k]):
            if cancel is not None and cancel.cancelled:
                break
            generation = Generation(index, f"{self.indent}{body}\n", 5, -0.1 * (index + 1), "stop", 0.01)
            out.append(generation)
            if on_generation is not None:
                on_generation(generation)
            if self.on_each is not None:
                self.on_each()
        return out

    def close(self) -> None:
        pass


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "calc"\nversion = "0"\n')
    (tmp_path / "calc.py").write_text(MODULE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_calc.py").write_text(TESTS)
    return tmp_path


def run(
    project: Path, engine: ScriptedEngine, **settings: object
) -> tuple[Pipeline, list[Progress], list[CandidateResult], FixReport]:
    values = {"trusted": True, "k": 3, "test_timeout_s": 20.0, **settings}
    pipeline = Pipeline(Settings().updated(values, "test"), engine_factory=lambda _: engine)
    progress: list[Progress] = []
    streamed: list[CandidateResult] = []
    path = project / "calc.py"
    request = FixRequest(path=path, text=path.read_text(), root=project)
    try:
        report = pipeline.run(request, on_progress=progress.append, on_result=streamed.append)
    finally:
        pipeline.close()
    return pipeline, progress, streamed, report


def test_duplicates_vote_and_the_passing_candidate_ranks_first(project: Path) -> None:
    engine = ScriptedEngine([["return x + x", "return x * 3", "return x+x  # same code"]])
    _, progress, streamed, report = run(project, engine)
    assert [r.candidate.body.strip() for r in report.results] == ["return x + x", "return x * 3"]
    best = report.best
    assert best.passed and best.candidate.duplicates == 1
    assert "test_double" in best.tests_selected[0] or any("test_double" in t for t in best.tests_selected)
    assert len(streamed) == 2  # each distinct candidate was handed on as it was verified
    stages = [p.stage for p in progress]
    assert stages[0] == "target" and stages[-1] == "done"
    assert stages.index("generating") < stages.index("verifying")
    assert (project / "calc.py").read_text() == MODULE


def test_a_failed_round_is_repaired_with_the_first_error_as_feedback(project: Path) -> None:
    engine = ScriptedEngine([["return x + 1", "return x * 3"], ["return 2 * x"]])
    _, _, _, report = run(project, engine, k=2, repair_rounds=1)
    assert len(engine.prompts) == 2
    repair = engine.prompts[1].text
    assert "test_double" in repair and "failed" in repair.lower()
    assert engine.params[1].seed == engine.params[0].seed + 2
    best = report.best
    assert best is not None and best.candidate.body.strip() == "return 2 * x"
    assert best.candidate.index == 2  # indices continue across rounds


def test_no_repair_round_when_disabled_and_the_message_says_why_each_failed(project: Path) -> None:
    engine = ScriptedEngine([["return x + 1", "return 'x'"], ["return 2 * x"]])
    _, _, _, report = run(project, engine, k=2, repair_rounds=0)
    assert len(engine.prompts) == 1
    assert report.best is None
    message = report.message
    assert "0 of 2 distinct candidates passed" in message
    assert "candidate 1: tests" in message and "candidate 2: mypy" in message


def test_cancel_between_candidates_raises_cancelled(project: Path) -> None:
    token = CancelToken()
    engine = ScriptedEngine(
        [["return x + 1", "return x * 3", "return 2 * x"]], on_each=lambda: token.cancel()
    )
    pipeline = Pipeline(
        Settings().updated({"trusted": True, "k": 3}, "test"), engine_factory=lambda _: engine
    )
    path = project / "calc.py"
    with pytest.raises(Cancelled):
        pipeline.run(FixRequest(path=path, text=MODULE, root=project), cancel=token)
    pipeline.close()
    assert (project / "calc.py").read_text() == MODULE


def test_a_verifier_crash_is_raised_not_swallowed(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lsp_verify.verify import cascade

    def broken(*args: object, **kwargs: object) -> CandidateResult:
        raise RuntimeError("verifier exploded")

    monkeypatch.setattr(cascade.Verifier, "verify", broken)
    engine = ScriptedEngine([["return 2 * x"]])
    with pytest.raises(RuntimeError, match="verifier exploded"):
        run(project, engine, k=1)


def test_settings_reject_negative_repair_rounds() -> None:
    settings = Settings().updated({"repairRounds": -1}, "test")
    assert settings.repair_rounds == 1
    assert any("repairRounds" in problem for problem in settings.problems)
    assert dataclasses.replace(settings, repair_rounds=0).repair_rounds == 0


def test_types_only_when_no_test_names_the_function(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "lone"\nversion = "0"\n')
    source = textwrap.dedent(MODULE)
    (tmp_path / "calc.py").write_text(source)
    engine = ScriptedEngine([["return 2 * x"]])
    _, _, _, report = run(tmp_path, engine, k=1)
    best = report.best
    assert best is not None and best.evidence.value == "types_only"
    assert any("types only" in note for note in report.notes)
