"""The real language server over a scripted pipeline: protocol tests without the model.

Everything but generation and verification is real (transport, handlers, worker, progress, cancellation,
targets and splicing). Each "candidate" holds a real child process (``sleep``) in its own process group for
``LSPV_FAKE_DELAY`` seconds, so tests can see that a cancel kills the pipeline's children.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lsp_verify.cancel import CancelToken
from lsp_verify.config import Settings
from lsp_verify.lsp.server import build_server, configure_logging, serve
from lsp_verify.pipeline import FixReport, FixRequest, Pipeline, Progress, summarise
from lsp_verify.syntax.splice import splice_body
from lsp_verify.verify.types import Candidate, CandidateResult, Evidence, StageResult

# A body that passes (name -> body) and one that fails (only failing bodies are produced for "magic").
PASSING = {"add": "return a + b", "double": "return x + x"}
FAILING = {"magic": ("return 42", "test_magic: assert 42 == 48151623")}


class ScriptedPipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.invalidated: list[Path] = []

    def engine(self) -> object:
        return None

    def update_settings(self, settings: Settings) -> None:
        self.settings = settings

    def invalidate(self, paths: Sequence[Path]) -> None:
        if log := os.environ.get("LSPV_FAKE_LOG"):
            with open(log, "a", encoding="utf-8") as out:
                out.writelines(f"invalidated {p}\n" for p in paths)

    def warm_up(self, root: Path, workspace: Path | None = None, trusted: bool = True) -> None:
        if log := os.environ.get("LSPV_FAKE_LOG"):
            with open(log, "a", encoding="utf-8") as out:
                out.write(f"warm_up {root}\n")

    def close(self) -> None:
        pass

    def prepare(self, request: FixRequest, cancel: CancelToken | None = None) -> object:
        """Writes "start/done/cancelled QUALNAME VERSION" lines to prepare.log in the workspace, and takes
        ``LSPV_FAKE_PREPARE`` seconds (default 0.05) unless cancelled."""
        cancel = cancel or CancelToken()
        target = Pipeline.target(request)

        def note(what: str) -> None:
            with (request.root / "prepare.log").open("a", encoding="utf-8") as out:
                out.write(f"{what} {target.qualname} {request.version}\n")

        note("start")
        if cancel.wait(float(os.environ.get("LSPV_FAKE_PREPARE", "0.05"))):
            note("cancelled")
            cancel.raise_if_cancelled()
        note("done")
        return target.qualname

    def run(
        self,
        request: FixRequest,
        *,
        cancel: CancelToken | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_result: Callable[[CandidateResult], None] | None = None,  # the ghost comes with the report here
    ) -> FixReport:
        cancel = cancel or CancelToken()
        k = self.settings.k
        delay = float(os.environ.get("LSPV_FAKE_DELAY", "0.1"))
        counts = {"generated": 0, "verified": 0, "passed": 0}

        def emit(stage: str, message: str) -> None:
            if on_progress is not None:
                on_progress(Progress(stage=stage, message=message, total=k, **counts))  # type: ignore[arg-type]

        target = Pipeline.target(request)
        emit("target", "finding the function to write")
        emit("baseline", f"checking the original {target.qualname} (baseline)")
        code, error = PASSING.get(target.name), None
        if code is None:
            code, error = FAILING.get(target.name, ("return None", "mypy: incompatible return value"))
        body = f"{target.indent}{code}"
        candidate = Candidate(
            index=0, body=body, new_text=splice_body(request.text, target, body), key=code, duplicates=k - 1
        )
        for i in range(k):
            _hold_child(cancel, delay)
            counts["generated"] = i + 1
            emit("generating", f"generating {i + 1}/{k}")
        emit("verifying", f"verifying 1/{k} — tests")
        _hold_child(cancel, delay)
        passed = error is None
        counts["verified"], counts["passed"] = 1, int(passed)
        emit("verifying", f"{counts['passed']} passed, 1 verified")
        evidence = (
            Evidence.NONE if not passed else Evidence.TESTS if self.settings.trusted else Evidence.TYPES_ONLY
        )
        stages = (StageResult("parse", True, 0.0), StageResult("mypy", True, 0.1))
        if self.settings.trusted:
            stages += (StageResult("tests", passed, 0.2, "" if passed else (error or "")),)
        elif not passed:
            stages = (StageResult("parse", True, 0.0), StageResult("mypy", False, 0.1, error or ""))
        result = CandidateResult(candidate=candidate, passed=passed, evidence=evidence, stages=stages)
        notes = () if self.settings.trusted else ("untrusted workspace: tests not run (types only)",)
        report = FixReport(
            target=target,
            results=(result,),
            n_generated=k,
            seconds=k * delay,
            first_verified_s=k * delay if passed else None,
            message=summarise(target, (result,), k, notes),
            notes=notes,
        )
        emit("done", report.message.splitlines()[0])
        return report


def _hold_child(cancel: CancelToken, seconds: float) -> None:
    """Keep a child process (own process group) alive for ``seconds``; a cancel kills it at once."""
    child = subprocess.Popen(["sleep", "300"], start_new_session=True)

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)

    unregister = cancel.on_cancel(kill)
    try:
        cancel.wait(seconds)
    finally:
        unregister()
        kill()
        child.wait()
    cancel.raise_if_cancelled()


if __name__ == "__main__":
    configure_logging(os.environ.get("LSP_VERIFY_LOG", "INFO"))
    sys.exit(serve(server=build_server(pipeline_factory=ScriptedPipeline)))
