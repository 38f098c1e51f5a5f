"""The engine's per-step log-probability normaliser (no model: arrays shaped like llama.cpp's logits)."""

from __future__ import annotations

import numpy as np

from lsp_verify.model.engine import _logsumexp_rows


def reference(rows: np.ndarray) -> np.ndarray:
    wide = rows.astype(np.float64)
    peak = wide.max(axis=1, keepdims=True)
    return np.log(np.exp(wide - peak).sum(axis=1)) + peak[:, 0]


def test_each_row_is_normalised_like_a_float64_softmax_without_touching_the_logits() -> None:
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((3, 151_936)) * 4 + 20).astype(np.float32)
    before = logits.copy()
    scratch = np.empty((8, logits.shape[1]), dtype=np.float32)

    lse = _logsumexp_rows(logits, scratch)

    assert np.allclose(lse, reference(logits), atol=1e-4)
    assert np.array_equal(logits, before)


def test_one_broadcast_row_for_every_sequence_is_computed_once() -> None:
    # The first step after the prompt: every sequence reads the prompt's last row (a stride-0 view).
    row = np.linspace(-5, 5, 1000, dtype=np.float32)[None, :]
    logits = np.broadcast_to(row, (4, 1000))

    lse = _logsumexp_rows(logits, np.empty((4, 1000), dtype=np.float32))

    assert lse.shape == (4,)
    assert np.allclose(lse, reference(row)[0], atol=1e-5)
