"""With ``overlap_baseline`` the model generates while the baseline (mypy and the nearby tests on the
original code) runs: what the user gets is unchanged, a baseline that fails still fails the request with its
own message and stops the generation, and a cancel stops both. Real verifier (mypy, pytest, shadows); a
scripted engine."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from lsp_verify.cancel import Cancelled, CancelToken
from lsp_verify.config import Settings
from lsp_verify.model.source import ModelNotFound
from lsp_verify.model.types import EngineInfo, Generation, Prompt, SamplingParams
from lsp_verify.pipeline import FixReport, FixRequest, Pipeline
from lsp_verify.verify.cascade import Verifier, VerifyError
from lsp_verify.verify.mypy_check import MypyRun
from lsp_verify.verify.pytest_run import TestRun
from test_pipeline import MODULE, TESTS, ScriptedEngine
from test_pipeline import project as project  # the fixture: a calc.py stub and its test

WAIT_S = 60.0
"""An upper bound on waits for the other thread, so that a broken overlap fails instead of hanging."""


class StartSignallingEngine(ScriptedEngine):
    """The scripted engine, which says when generation has begun."""

    def __init__(self, rounds: list[list[str]]) -> None:
        super().__init__(rounds)
        self.started = threading.Event()

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        on_generation: Callable[[Generation], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> list[Generation]:
        self.started.set()
        return super().generate(prompt, params, on_generation=on_generation, cancel=cancel)


class EndlessEngine:
    """Decodes (sleeps) until its cancel token is set, or gives up after WAIT_S without a sequence."""

    def __init__(self, on_start: Callable[[], None] | None = None) -> None:
        self.info = EngineInfo("endless.gguf", "CPU", False, 0, 0, 1, 2048, 8)
        self.started = threading.Event()
        self.stopped_by_cancel = False
        self.on_start = on_start

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        on_generation: Callable[[Generation], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> list[Generation]:
        assert cancel is not None
        self.started.set()
        if self.on_start is not None:
            self.on_start()
        self.stopped_by_cancel = cancel.wait(WAIT_S)
        return []

    def close(self) -> None:
        pass


def fix(
    project: Path,
    engine: object,
    *,
    overlap: bool = True,
    cancel: CancelToken | None = None,
    **settings: object,
) -> FixReport:
    values = {"trusted": True, "k": 3, "test_timeout_s": 20.0, "repair_rounds": 0, **settings}
    pipeline = Pipeline(
        Settings().updated(values, "test"),
        engine_factory=lambda _: engine,  # type: ignore[arg-type,return-value]
        overlap_baseline=overlap,
    )
    path = project / "calc.py"
    try:
        return pipeline.run(FixRequest(path=path, text=path.read_text(), root=project), cancel=cancel)
    finally:
        pipeline.close()


def summary(report: FixReport) -> list[tuple[str, bool, str, tuple[str, ...]]]:
    return [(r.candidate.body.strip(), r.passed, r.evidence.value, r.tests_selected) for r in report.results]


def test_generation_starts_before_the_baseline_ends_and_the_results_are_those_of_a_baseline_first(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = [["return x + x", "return x * 3", "return 'x'"]]
    original = Verifier._baseline_mypy
    engines: list[StartSignallingEngine] = []
    generating_during_baseline: list[bool] = []

    def baseline_mypy(self: Verifier, *args: object) -> MypyRun:
        # Overlapped, the engine starts while this waits; run first, it cannot, and the wait runs out.
        generating_during_baseline.append(engines[-1].started.wait(WAIT_S / 6))
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Verifier, "_baseline_mypy", baseline_mypy)
    engines.append(StartSignallingEngine(bodies))
    overlapped = fix(project, engines[-1])
    engines.append(StartSignallingEngine(bodies))
    serial = fix(project, engines[-1], overlap=False)

    assert generating_during_baseline == [True, False]
    assert summary(overlapped) == summary(serial)
    assert summary(overlapped)[0][:3] == ("return x + x", True, "tests")
    assert overlapped.notes == serial.notes and overlapped.probe == serial.probe
    assert (project / "calc.py").read_text() == MODULE


def test_a_failing_baseline_stops_generation_and_fails_the_request_with_its_own_message(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mypy cannot even start on this project: the baseline of the original code fails.
    with (project / "pyproject.toml").open("a") as toml:
        toml.write('\n[tool.mypy]\nplugins = ["no_such_mypy_plugin"]\n')
    with Verifier(project, Settings(trusted=True)) as verifier:
        path = project / "calc.py"
        target = Pipeline.target(FixRequest(path=path, text=MODULE, root=project))
        with pytest.raises(VerifyError) as serial:
            verifier.prepare(target, MODULE, CancelToken())
    assert "mypy cannot check calc.py" in str(serial.value)

    original = Verifier._baseline_mypy
    engine = EndlessEngine()

    def baseline_mypy(self: Verifier, *args: object) -> MypyRun:
        assert engine.started.wait(WAIT_S), "generation did not start while the baseline ran"
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Verifier, "_baseline_mypy", baseline_mypy)
    with pytest.raises(VerifyError) as overlapped:
        fix(project, engine)
    assert str(overlapped.value) == str(serial.value)
    assert engine.stopped_by_cancel  # generation stopped when the baseline failed, not after WAIT_S
    assert (project / "calc.py").read_text() == MODULE


SLOW_TESTS = TESTS + "\n\ndef test_double_slowly() -> None:\n    import time\n\n    time.sleep(40)\n"
"""Tests whose run on the original code (the baseline) takes 40 s, unless it is stopped."""


def watch_the_baseline_tests(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[str]]:
    """An event set when the baseline's test run starts, and how each such run ended ("finished" or the
    exception's name), recorded before ``_baseline_tests`` returns or raises."""
    running = threading.Event()
    original = Verifier._baseline_tests
    ended: list[str] = []

    def baseline_tests(self: Verifier, *args: object) -> TestRun:
        running.set()
        try:
            run = original(self, *args)  # type: ignore[arg-type]
        except BaseException as exc:
            ended.append(type(exc).__name__)
            raise
        ended.append("finished")
        return run

    monkeypatch.setattr(Verifier, "_baseline_tests", baseline_tests)
    return running, ended


def test_a_cancel_while_generating_stops_the_baseline_tests_too(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "tests" / "test_calc.py").write_text(SLOW_TESTS)  # the cancel comes while they run
    token = CancelToken()
    running, baseline_ended = watch_the_baseline_tests(monkeypatch)

    def cancel_while_the_baseline_tests_run() -> None:
        assert running.wait(WAIT_S), "the baseline's tests did not start while the model generated"
        token.wait(0.5)  # into the test run (a cancel before it starts must stop it all the same)
        token.cancel("cancelled by the user")

    engine = EndlessEngine(on_start=cancel_while_the_baseline_tests_run)
    with pytest.raises(Cancelled, match="cancelled by the user"):
        fix(project, engine, cancel=token, test_timeout_s=60.0)
    assert engine.stopped_by_cancel
    # The baseline was cancelled as well, and had ended by the time the request did.
    assert baseline_ended == ["Cancelled"]
    assert (project / "calc.py").read_text() == MODULE


def test_a_model_that_cannot_load_fails_the_request_and_stops_the_baseline(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "tests" / "test_calc.py").write_text(SLOW_TESTS)
    running, baseline_ended = watch_the_baseline_tests(monkeypatch)

    def no_model(settings: Settings) -> ScriptedEngine:
        # The model loads while the baseline runs (here: fails to).
        assert running.wait(WAIT_S), "the baseline did not run while the model loaded"
        raise ModelNotFound("no model at /nowhere.gguf")

    token = CancelToken()
    values = {"trusted": True, "k": 3, "test_timeout_s": 60.0}
    pipeline = Pipeline(Settings().updated(values, "test"), engine_factory=no_model, overlap_baseline=True)
    path = project / "calc.py"
    try:
        with pytest.raises(ModelNotFound, match="no model at"):
            pipeline.run(FixRequest(path=path, text=MODULE, root=project), cancel=token)
    finally:
        pipeline.close()
    assert baseline_ended == ["Cancelled"]  # stopped, and ended before the request did
    assert not token.cancelled  # the caller sees the model's error, not a cancel
