"""Quorum stop (``Settings.quorum``): generation ends once enough passing samples behave alike.

Real pipeline, mypy, pytest and behaviour probes; the engine is test_pipeline's scripted one, paced like the
real engine under load: it hands over the next sequence only once the pipeline has verified the last one,
and it polls the cancel token it was given between sequences.
"""

from __future__ import annotations

import threading
from pathlib import Path

from lsp_verify.config import Settings
from lsp_verify.pipeline import FixReport, FixRequest, Pipeline
from lsp_verify.verify.types import CandidateResult
from test_pipeline import MODULE, ScriptedEngine
from test_pipeline import project as project  # the fixture: a calc.py stub and its test


def run(root: Path, bodies: list[str], **settings: object) -> tuple[FixReport, ScriptedEngine]:
    verified: list[CandidateResult] = []
    caught_up = threading.Condition()
    handed = [0]

    def after_each() -> None:
        # Wait until every distinct body handed over so far is verified (spaces do not make code distinct).
        handed[0] += 1
        distinct = len({b.replace(" ", "") for b in bodies[: handed[0]]})
        with caught_up:
            caught_up.wait_for(lambda: len(verified) >= distinct, timeout=120)

    engine = ScriptedEngine([bodies], on_each=after_each)

    def on_result(result: CandidateResult) -> None:
        with caught_up:
            verified.append(result)
            caught_up.notify_all()

    values = {"trusted": True, "k": len(bodies), "repair_rounds": 0, "test_timeout_s": 60.0, **settings}
    pipeline = Pipeline(Settings().updated(values, "test"), engine_factory=lambda _: engine)
    path = root / "calc.py"
    try:
        report = pipeline.run(FixRequest(path=path, text=path.read_text(), root=root), on_result=on_result)
    finally:
        pipeline.close()
    return report, engine


def bodies_of(report: FixReport) -> list[str]:
    return sorted(r.candidate.body.strip() for r in report.results)


def test_generation_stops_once_enough_passing_samples_behave_alike(project: Path) -> None:
    # x + 4 passes the one test (double(4) == 8) but behaves differently on the probe inputs: no quorum yet.
    bodies = ["return x + 4", "return x + x", "return 2 * x", "return x * 2", "return x << 1"]

    report, _ = run(project, bodies, quorum=2)

    assert report.n_generated == 3
    assert bodies_of(report) == ["return 2 * x", "return x + 4", "return x + x"]
    best = report.best
    assert best is not None and best.candidate.body.strip() in {"return x + x", "return 2 * x"}
    assert any(
        "stopped at a quorum: 2 passing samples behave alike (3 of 5 generated)" in n for n in report.notes
    )
    assert (project / "calc.py").read_text() == MODULE


def test_without_probes_a_duplicate_sample_is_a_vote(project: Path) -> None:
    # No probes: agreement is the same code (up to formatting); the second sample repeats the first.
    report, _ = run(project, ["return x + x", "return x+x", "return 2 * x"], quorum=2, probe_inputs=0)

    assert report.n_generated == 2
    assert bodies_of(report) == ["return x + x"]
    assert report.best is not None and report.best.candidate.duplicates == 1


def test_quorum_zero_generates_all_k(project: Path) -> None:
    report, _ = run(project, ["return x + x", "return 2 * x", "return x * 2"], quorum=0)

    assert report.n_generated == 3
    assert not any("quorum" in n for n in report.notes)


def test_a_negative_quorum_is_a_clear_problem() -> None:
    settings = Settings().updated({"quorum": -1}, "pyproject.toml")

    assert settings.quorum == Settings().quorum
    assert settings.problems == [
        "pyproject.toml: invalid value -1 for 'quorum': expected 0 (generate all k) or a number of agreeing "
        f"samples; using {Settings().quorum}"
    ]
