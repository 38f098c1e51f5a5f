"""Small helpers with stub bodies: run ``lsp-verify fix demo/text.py`` to have them written and verified."""

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


def is_palindrome(text: str) -> bool:
    """Return True when ``text`` reads the same forwards and backwards, ignoring case and spaces.

    >>> is_palindrome("Never odd or even")
    True
    >>> is_palindrome("python")
    False
    """
    raise NotImplementedError


def word_count(text: str) -> dict[str, int]:
    """Count how often each whitespace-separated, lower-cased word occurs in ``text``.

    >>> word_count("the cat and the hat")
    {'the': 2, 'cat': 1, 'and': 1, 'hat': 1}
    """
    pass
