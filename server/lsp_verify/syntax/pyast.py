"""Python's own parser for every caller in lsp-verify: ``ast.parse`` and ``ast.literal_eval``, one at a time.

CPython 3.11 keeps the AST constructor's recursion counter in interpreter-wide state (CPython gh-106905):
while one thread builds a tree, a garbage collection on that thread can run Python code (a finalizer), the
GIL passes to a second thread that starts a tree of its own and resets the counter, and the first parse then
fails with ``SystemError: AST constructor recursion depth mismatch``. The server parses on several threads
at once (the generating thread reads each finished candidate while the verify thread parses the document
with the previous one spliced in), so every parse in lsp-verify takes one lock. A parse started by other
code in this process (a library on a thread of its own) can still collide with ours: that one rare failure
is retried once. Python 3.12 and later build trees without shared state; the lock then only serialises
parses that take milliseconds.

Ruff bans ``ast.parse`` and ``ast.literal_eval`` in ``server/`` (pyproject.toml) so that this stays the
only way in.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_LOCK = threading.Lock()
_T = TypeVar("_T")


def parse_module(
    source: str, filename: str = "<unknown>", *, feature_version: tuple[int, int] | None = None
) -> ast.Module:
    """``ast.parse(source)``: raises SyntaxError (and ValueError for NUL bytes) as it does."""
    return _serialised(lambda: ast.parse(source, filename=filename, feature_version=feature_version))


def parse_expression(source: str) -> ast.expr:
    """The expression ``source`` (``ast.parse(source, mode="eval").body``)."""
    return _serialised(lambda: ast.parse(source, mode="eval")).body


def literal_eval(value: str | ast.AST) -> Any:
    """``ast.literal_eval(value)``: the value of a Python literal; ValueError, SyntaxError and the rest as it
    raises them. Text is parsed here first (leading blanks stripped, as it does); a tree is not parsed."""
    tree = (
        _serialised(lambda: ast.parse(value.lstrip(" \t"), mode="eval")) if isinstance(value, str) else value
    )
    return ast.literal_eval(tree)


def _serialised(parse: Callable[[], _T]) -> _T:
    with _LOCK:
        try:
            return parse()
        except SystemError as error:
            if "recursion depth mismatch" not in str(error):
                raise
            return parse()  # another thread's parse, outside this lock, reset the shared counter
