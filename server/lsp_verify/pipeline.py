"""One request end to end: target -> context -> generate -> verify -> rank.

The LSP server and the CLI are thin shells over :class:`Pipeline`. Results stream: each candidate is
verified as soon as the engine hands it over, while the other sequences are still decoding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from .syntax.target import EditTarget
from .verify.types import CandidateResult

Stage = Literal["target", "baseline", "generating", "verifying", "done"]


@dataclasses.dataclass(frozen=True)
class FixRequest:
    path: Path
    """Absolute path of the document (it need not be saved: ``text`` is what is verified)."""
    text: str
    """The document text the request is computed for."""
    root: Path
    """Workspace root: where tests are searched and run."""
    line: int | None = None
    """0-based line inside the function to rewrite; None means the first stub in the file."""
    version: int | None = None


@dataclasses.dataclass(frozen=True)
class Progress:
    stage: Stage
    message: str
    """Human text, e.g. "generating 3/8" or "verifying 5/8 — mypy"."""
    generated: int = 0
    verified: int = 0
    passed: int = 0
    total: int = 0


@dataclasses.dataclass(frozen=True)
class FixReport:
    target: EditTarget
    results: tuple[CandidateResult, ...]
    """Every distinct candidate, passing ones first in rank order, then the failures."""
    n_generated: int
    seconds: float
    first_verified_s: float | None
    message: str
    """One-paragraph summary for a user: what was tried and, when nothing passed, why each failed."""

    @property
    def passing(self) -> tuple[CandidateResult, ...]:
        return tuple(r for r in self.results if r.passed)

    @property
    def best(self) -> CandidateResult | None:
        passing = self.passing
        return passing[0] if passing else None


ProgressCallback = Callable[[Progress], None]
ResultCallback = Callable[[CandidateResult], None]
