"""Shared pytest fixtures. Each area owns one clearly marked block; add yours as a new block."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lsp_verify.model.engine import Engine
    from lsp_verify.model.source import ModelFile

# ============================================================================================================
# model: the embedded GGUF and ONE shared engine (loading costs seconds and ~0.5 GB: do it once per session)
# ============================================================================================================


@pytest.fixture(scope="session")
def model_file() -> ModelFile:
    """The embedded default model, assembled into the per-user cache on first use (skips if not installed)."""
    from lsp_verify.model.source import ModelNotFound, resolve_model

    try:
        return resolve_model()
    except ModelNotFound as exc:
        pytest.skip(f"embedded model not available: {exc}")


@pytest.fixture(scope="session")
def engine(model_file: ModelFile) -> Iterator[Engine]:
    """One engine for the whole session: n_ctx 2048, 8 sequences. Tests must use fixed seeds."""
    from lsp_verify.model.engine import Engine

    with Engine(model_file.path, n_ctx=2048, n_seq_max=8) as eng:
        yield eng


# ============================================================================================================
# end of model block
# ============================================================================================================
