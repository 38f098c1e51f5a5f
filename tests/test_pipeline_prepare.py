"""``Pipeline.prepare``: what the server does while the cursor rests on a function, so that the request that
follows generates at once. The baseline it runs is the one the request uses, the prompt it decodes is the
request's own, the model is never loaded for it, and it fails and stops as the request would. Real verifier
(mypy, pytest, shadows); scripted engines, and the real GGUF for the prompt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lsp_verify.cancel import Cancelled, CancelToken
from lsp_verify.config import Settings
from lsp_verify.model.engine import Engine
from lsp_verify.model.types import Prompt
from lsp_verify.pipeline import FixRequest, Pipeline
from lsp_verify.verify.cascade import Verifier, VerifyError
from test_pipeline import MODULE, ScriptedEngine
from test_pipeline import project as project  # the fixture: a calc.py stub and its test

SETTINGS = {"trusted": True, "k": 3, "test_timeout_s": 20.0, "repair_rounds": 0}


class PrefillingEngine(ScriptedEngine):
    """The scripted engine, which records the prompts it was asked to decode ahead."""

    def __init__(self, rounds: list[list[str]]) -> None:
        super().__init__(rounds)
        self.prefilled: list[Prompt] = []

    def prefill(self, prompt: Prompt, cancel: CancelToken | None = None) -> int:
        self.prefilled.append(prompt)
        return 7


def pipeline_for(factory: Callable[[Settings], Any], **settings: object) -> Pipeline:
    return Pipeline(Settings().updated({**SETTINGS, **settings}, "test"), engine_factory=factory)


def request(project: Path) -> FixRequest:
    path = project / "calc.py"
    return FixRequest(path=path, text=path.read_text(), root=project, version=3)


def spy_baselines(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every baseline run (mypy's and the tests') the verifier hands out, cached or not."""
    handed: list[object] = []
    for name in ("_baseline_mypy", "_baseline_tests"):
        original = getattr(Verifier, name)

        def spy(self: Verifier, *args: Any, _original: Any = original) -> object:
            run = _original(self, *args)
            handed.append(run)
            return run

        monkeypatch.setattr(Verifier, name, spy)
    return handed


def test_the_request_after_prepare_uses_its_baseline_and_the_prompt_it_decoded(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed = spy_baselines(monkeypatch)
    engine = PrefillingEngine([["return x + x", "return x * 3"]])
    pipeline = pipeline_for(lambda _: engine)
    try:
        pipeline.engine()  # loaded by an earlier request
        prepared = pipeline.prepare(request(project))
        assert (prepared.target.qualname, prepared.prompt_tokens) == ("double", 7)
        assert str(prepared).startswith("double in ") and str(prepared).endswith(", 7 prompt tokens decoded")
        assert len(handed) == 2  # mypy and the tests, on the code as it is

        report = pipeline.run(request(project))
    finally:
        pipeline.close()
    assert report.best is not None and report.best.candidate.body.strip() == "return x + x"
    assert report.best.evidence.value == "tests"
    # The request ran no baseline of its own: it was handed the very runs prepare made.
    assert len(handed) == 4 and handed[2] is handed[0] and handed[3] is handed[1]
    # ... and asked the engine for the prompt prepare had decoded.
    assert [p.text for p in engine.prefilled] == [p.text for p in engine.prompts]
    assert (project / "calc.py").read_text() == MODULE


def test_prepare_never_loads_the_model(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[Settings] = []

    def factory(settings: Settings) -> PrefillingEngine:
        loads.append(settings)
        return PrefillingEngine([["return x + x"]])

    handed = spy_baselines(monkeypatch)
    pipeline = pipeline_for(factory)
    try:
        prepared = pipeline.prepare(request(project))
    finally:
        pipeline.close()
    assert prepared.prompt_tokens == 0 and loads == []
    assert len(handed) == 2  # the baseline ran all the same


def test_prepare_fails_as_the_request_would_and_touches_nothing(project: Path) -> None:
    (project / "tests" / "conftest.py").write_text("import no_such_module_anywhere\n")
    pipeline = pipeline_for(lambda _: PrefillingEngine([]))
    try:
        with pytest.raises(VerifyError, match="cannot be collected"):
            pipeline.prepare(request(project))
    finally:
        pipeline.close()
    assert (project / "calc.py").read_text() == MODULE
    assert sorted(p.name for p in project.iterdir()) == ["calc.py", "pyproject.toml", "tests"]


def test_a_cancelled_prepare_stops(project: Path) -> None:
    cancel = CancelToken()
    cancel.cancel("the cursor moved to another function")
    pipeline = pipeline_for(lambda _: PrefillingEngine([]))
    try:
        with pytest.raises(Cancelled):
            pipeline.prepare(request(project), cancel)
    finally:
        pipeline.close()


class Borrowed:
    """The session's real engine, lent to a pipeline that must not close it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __getattr__(self, name: str) -> Any:
        return (lambda: None) if name == "close" else getattr(self.engine, name)


@pytest.mark.model
def test_with_the_real_model_the_prepared_request_decodes_one_prompt_token(
    project: Path, engine: Engine
) -> None:
    pipeline = pipeline_for(lambda _: Borrowed(engine), k=2, max_tokens=48, n_ctx=2048)
    try:
        pipeline.engine()
        engine.forget_prompt()
        prepared = pipeline.prepare(request(project))
        assert prepared.prompt_tokens > 50  # the whole prompt: instructions, module, test
        pipeline.run(request(project))
        assert (engine.prompt_tokens_reused, engine.prompt_tokens_decoded) == (prepared.prompt_tokens - 1, 1)
    finally:
        pipeline.close()
