"""The real language server and pipeline (verifier, mypy, pytest, ranking) with a scripted engine.

Only generation is scripted: every sequence is the body ``$LSPV_BODY`` (default ``return x * 2``), handed
over after ``$LSPV_GEN_DELAY`` seconds, the ones after the first ``$LSPV_TAIL_DELAY`` seconds later still
(a cancel ends either wait). Each prompt is appended to
``$LSPV_PROMPT_LOG`` when set, so a test sees what the model was told.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from lsp_verify.cancel import CancelToken
from lsp_verify.config import Settings
from lsp_verify.lsp.server import build_server, configure_logging, serve
from lsp_verify.model.types import EngineInfo, Generation, Prompt, SamplingParams
from lsp_verify.pipeline import Pipeline


class BodyEngine:
    def __init__(self) -> None:
        self.info = EngineInfo("scripted.gguf", "CPU", False, 0, 0, 1, 4096, 8)

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        on_generation: Callable[[Generation], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> list[Generation]:
        if log := os.environ.get("LSPV_PROMPT_LOG"):
            with open(log, "a", encoding="utf-8") as out:
                out.write(prompt.text + "\n=====\n")
        cancel = cancel or CancelToken()
        cancel.wait(float(os.environ.get("LSPV_GEN_DELAY", "0")))
        body = os.environ.get("LSPV_BODY", "return x * 2")
        out = []
        for index in range(params.k):
            if index == 1:
                cancel.wait(float(os.environ.get("LSPV_TAIL_DELAY", "0")))
            if cancel.cancelled:
                break
            generation = Generation(index, f"    {body}\n", 5, -0.1, "stop", 0.01)
            out.append(generation)
            if on_generation is not None:
                on_generation(generation)
        return out

    def close(self) -> None:
        pass


def pipeline(settings: Settings) -> Pipeline:
    return Pipeline(settings, engine_factory=lambda _: BodyEngine())  # type: ignore[arg-type,return-value]


if __name__ == "__main__":
    configure_logging(os.environ.get("LSP_VERIFY_LOG", "INFO"))
    sys.exit(serve(server=build_server(pipeline)))
