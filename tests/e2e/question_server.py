"""The real language server over a pipeline whose engine is scripted (``LSPV_ROUNDS``: a JSON list of
rounds, each a list of candidate bodies); verification, probes and questions are real (for
test_lsp_question.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server"))

from lsp_verify.config import Settings
from lsp_verify.lsp.server import build_server, configure_logging, serve
from lsp_verify.model.types import EngineInfo, Generation
from lsp_verify.pipeline import Pipeline

ROUNDS: list[list[str]] = json.loads(os.environ.get("LSPV_ROUNDS", "[[]]"))


class ScriptedEngine:
    def __init__(self) -> None:
        self.calls = 0
        self.info = EngineInfo("scripted.gguf", "CPU", False, 0, 0, 1, 4096, 8)

    def generate(self, prompt: Any, params: Any, *, on_generation: Any = None, cancel: Any = None) -> Any:
        bodies = ROUNDS[min(self.calls, len(ROUNDS) - 1)]
        self.calls += 1
        out = []
        for i, body in enumerate(bodies[: params.k]):
            generation = Generation(i, body, 5, -0.1 * (i + 1), "stop", 0.01)
            out.append(generation)
            if on_generation is not None:
                on_generation(generation)
        return out

    def close(self) -> None:
        pass


def pipeline(settings: Settings) -> Pipeline:
    return Pipeline(settings, engine_factory=lambda _: ScriptedEngine())  # type: ignore[arg-type]


if __name__ == "__main__":
    configure_logging(os.environ.get("LSP_VERIFY_LOG", "INFO"))
    sys.exit(serve(server=build_server(pipeline_factory=pipeline)))
