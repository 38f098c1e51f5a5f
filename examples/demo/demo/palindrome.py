"""Palindromes. The body is a stub: ``lsp-verify fix`` writes and verifies it."""

from __future__ import annotations


def is_palindrome(text: str) -> bool:
    """Return True when ``text`` reads the same forwards and backwards, ignoring case and spaces.

    >>> is_palindrome("Never odd or even")
    True
    >>> is_palindrome("python")
    False
    """
    raise NotImplementedError
