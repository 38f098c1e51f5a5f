"""Parameter types a docstring states, for parameters that have neither an annotation nor an example.

Unannotated code often says in its docstring what it takes: ``:param int n:`` / ``:type n: int`` (Sphinx),
``n (int): ...`` (Google), ``n : int`` (numpydoc), ``@type n: int`` (epytext), or in prose, ``Given a
positive integer n``. Without an annotation or a documented example value such a parameter cannot be drawn
(``drawn.py``), so the function gets no probe input at all, and candidates that disagree are never told
apart. This module reads those statements into annotation sources (``"int"``, ``"list[str]"``) that
``drawn.from_annotation`` draws from, with the lower bound a qualifier gives (``positive``: 1,
``non-negative``: 0) - a question about ``f(-3)`` for "a positive integer n" is one the user cannot answer.

Only what parses as a type is kept: ``grid : [[0, 1]]`` or ``capacity : 1`` are example values
(``probe._prose_examples`` reads those), not types.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Sequence

from ..syntax import pyast


@dataclasses.dataclass(frozen=True)
class DocumentedType:
    annotation: str
    """An annotation source ``drawn.from_annotation`` reads: ``"int"``, ``"list[str]"``."""
    minimum: int | None = None
    """The least number the docstring allows (``positive``: 1, ``non-negative``: 0); None: not stated."""


_WORDS = {
    "int": "int",
    "ints": "int",
    "integer": "int",
    "integers": "int",
    "number": "int",
    "numbers": "int",
    "float": "float",
    "floats": "float",
    "str": "str",
    "string": "str",
    "strings": "str",
    "bool": "bool",
    "boolean": "bool",
    "booleans": "bool",
}
"""Type words of prose and numpydoc (``list of integers``). ``number`` is read as an integer: every
function that takes numbers takes integers, not every one that takes integers takes floats."""
_CONTAINERS = {"list": "list", "array": "list", "sequence": "list", "tuple": "tuple", "set": "set"}
_QUALIFIERS = {
    "positive": 1,
    "natural": 1,
    "non-negative": 0,
    "nonnegative": 0,
    "non negative": 0,
}
_ALLOWED_NODES = (ast.Name, ast.Attribute, ast.Subscript, ast.Tuple, ast.BinOp, ast.BitOr, ast.Load)
_TYPE_PHRASE = r"(?:(?:list|array|sequence|tuple|set)s?\s+of\s+)?[a-z]+"
_QUALIFIER = r"(?:(positive|natural|non-?\s?negative)\s+)?"


def documented_types(text: str, names: Sequence[str]) -> dict[str, DocumentedType]:
    """The stated type of each of ``names`` that ``text`` (a docstring's value) states one for."""
    found: dict[str, DocumentedType] = {}
    for name in names:
        stated = _structured(text, name) or _prose(text, name)
        if stated is not None:
            found[name] = stated
    return found


def _structured(text: str, name: str) -> DocumentedType | None:
    """Sphinx, Google, numpydoc and epytext field lists."""
    n = re.escape(name)
    patterns = (
        rf":param\s+([^:\n]+?)\s+{n}\s*:",  # :param int n:
        rf"^\s*:type\s+{n}\s*:\s*(.+?)\s*$",  # :type n: int
        rf"^\s*@type\s+{n}\s*:\s*(.+?)\s*$",  # @type n: int
        rf"^\s*\**{n}\s*\(([^()\n]+)\)\s*:",  # n (int): ...
        rf"^\s*{n}\s+:\s+(.+?)\s*$",  # n : int  (numpydoc: spaces on both sides)
    )
    for pattern in patterns:
        for match in re.finditer(pattern, text, re.MULTILINE):
            annotation = annotation_of(match[1])
            if annotation is not None:
                return DocumentedType(annotation)
    return None


def _prose(text: str, name: str) -> DocumentedType | None:
    """``a positive integer n``, ``the list of strings lst``, ``n is a non-negative integer``."""
    n = re.escape(name)
    patterns = (
        rf"\b{_QUALIFIER}({_TYPE_PHRASE})\s+`*{n}`*(?![\w(\[])",
        rf"(?<![\w.])`*{n}`*\s+is\s+an?\s+{_QUALIFIER}({_TYPE_PHRASE})\b",
    )
    for pattern in patterns:
        for match in re.finditer(pattern, text, re.IGNORECASE):
            phrase = match[2].lower()
            if phrase not in _WORDS and " of " not in phrase:
                continue  # "the value n", "two lists operator": no type word, or no item type
            annotation = annotation_of(phrase)
            if annotation is None:
                continue
            qualifier = re.sub(r"\s+", " ", match[1].lower()) if match[1] else ""
            minimum = _QUALIFIERS.get(qualifier) if annotation in ("int", "float") else None
            return DocumentedType(annotation, minimum)
    return None


def annotation_of(phrase: str) -> str | None:
    """An annotation source for a stated type: ``int``, ``list of str``, ``List[int]``, ``str, optional``,
    ``integers``; None when ``phrase`` is no type (a value, a sentence)."""
    phrase = re.sub(r",?\s*optional$", "", phrase.strip(), flags=re.IGNORECASE).strip()
    phrase = re.sub(r"\s+or\s+None$", "", phrase).strip()
    container = re.fullmatch(r"([a-zA-Z]+?)s?\s+of\s+([a-zA-Z]+)", phrase)
    if container is not None:
        outer = _CONTAINERS.get(container[1].lower())
        item = _WORDS.get(container[2].lower())
        if outer is None or item is None:
            return None
        return f"tuple[{item}, ...]" if outer == "tuple" else f"{outer}[{item}]"
    if phrase.lower() in _WORDS:
        return _WORDS[phrase.lower()]
    try:
        node = pyast.parse_expression(phrase)
    except SyntaxError:
        return None
    if not all(
        isinstance(part, _ALLOWED_NODES) or (isinstance(part, ast.Constant) and part.value in (None, ...))
        for part in ast.walk(node)
    ):
        return None  # a literal value (``[[0, 1]]``, ``1``) or an expression, not a type
    return phrase
