"""Limit a number to a range. The body is a stub: ``lsp-verify fix`` writes and verifies it."""

from __future__ import annotations


def clamp(value: int, low: int, high: int) -> int:
    """Return ``value`` limited to the range ``low``..``high`` (inclusive).

    >>> clamp(5, 0, 10)
    5
    >>> clamp(-3, 0, 10)
    0
    >>> clamp(42, 0, 10)
    10
    """
    ...
