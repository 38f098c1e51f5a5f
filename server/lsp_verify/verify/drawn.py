"""Probe values drawn by Hypothesis: argument lists built from parameter types, the same on every run.

``probe.py`` calls every passing candidate on the same inputs; beyond the docstring's examples, this module
supplies them. A parameter's strategy comes from its annotation, read from the source (``ast``): nothing of
the workspace is imported here, in the server process. An unannotated parameter gets the type of its
documented example values. Where examples exist their shape bounds the draw too - integers within their
range and sign, strings over their characters - because a question about an input outside the function's
domain (a negative "count", random unicode for a date) is one the user cannot answer and the reference
solution answers arbitrarily (``bench/ask.py``).

Hypothesis rather than a hand-written pool: it starts from the simplest values (``0``, ``""``, ``[]``), then
varies size, sign, duplicates and nesting, which is where wrong candidates tend to differ from right ones.

The typing constructors map to bounded strategies explicitly instead of through ``st.from_type``: its
defaults draw NaN, infinities, subnormals and unbounded sizes, and bounding them would mean changing
Hypothesis' process-wide type registry. Draws are *derandomized*: ``@given`` runs under
``settings(derandomize=True, database=None, phases=[Phase.generate])`` and collects what it is given
(``.example()`` is random and meant for the REPL), so every candidate of a request, every request and every
run sees the same values, and nothing is written to a ``.hypothesis`` directory. Values leave this module as
``repr`` sources that read back as equal literals; the worker evaluates the source afresh for every call, so a
candidate that mutates its argument cannot change what the next call (or candidate) receives.

Methods: ``Class.method(Class(<args>), <args>)`` when the constructor's parameters (``__init__``'s, or a
dataclass' fields) can be drawn the same way.
"""

from __future__ import annotations

import ast
import contextlib
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.internal.conjecture import providers

from ..config import cache_home
from ..syntax import pyast

MAX_SIZE = 5
"""Longest drawn list, set, dict or string: a question about a longer input is not read at a glance."""
INT_RANGE = (-10, 100)
"""Integers drawn for an ``int`` without examples."""
_TEXT = st.characters(min_codepoint=32, max_codepoint=126)  # printable ASCII: readable in a question

Strategy = st.SearchStrategy[Any]

# Hypothesis' engine is not thread-safe and the server plans requests from worker threads.
_LOCK = threading.Lock()
_DRAWN: dict[tuple[tuple[str, ...], int], tuple[tuple[Any, ...], ...]] = {}

# Hypothesis keeps caches (its unicode tables) under ``./.hypothesis``, and the server's working directory is
# usually the user's project: keep them with lsp-verify's other caches instead.
set_hypothesis_home_dir(cache_home() / "hypothesis")


def draw(strategies: Sequence[Strategy], count: int) -> list[tuple[Any, ...]]:
    """Up to ``count`` distinct argument tuples drawn from ``strategies`` (one per parameter), always the
    same ones for the same strategies; only tuples whose every value has a literal ``repr``."""
    if count <= 0:
        return []
    # A strategy's repr spells out every argument (bounds, alphabet, the lambda's source), so equal reprs
    # draw equal values: each request for the same signature reuses them (drawing takes 0.1-0.5 s).
    key = (tuple(repr(s) for s in strategies), count)
    with _LOCK:
        cached = _DRAWN.get(key)
    if cached is not None:
        return list(cached)
    found: list[tuple[Any, ...]] = []
    seen: set[str] = set()

    def collect(values: tuple[Any, ...]) -> None:
        key = repr(values)
        if key not in seen and len(found) < count and all(_literal(value) for value in values):
            seen.add(key)
            found.append(values)

    run = settings(
        derandomize=True,
        database=None,
        max_examples=count * 2,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
        verbosity=Verbosity.quiet,
        print_blob=False,
    )(given(st.tuples(*strategies))(collect))
    with _LOCK, _without_local_constants():
        run()
        if len(_DRAWN) >= 256:
            _DRAWN.clear()
        _DRAWN[key] = tuple(found)
    return found


@contextlib.contextmanager
def _without_local_constants() -> Iterator[None]:
    """Hypothesis now and then draws a constant found in the source of the modules loaded so far that are
    not installed packages (in the server: lsp-verify's own, in an editable install). The draws would then
    depend on what happens to be imported - different in the server, the benchmark and the tests, and
    changing as modules load - so for these draws that pool is empty. (Private API: if a Hypothesis release
    moves it, draws are still made, only less reproducibly.)"""
    original = getattr(providers, "_get_local_constants", None)
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if original is None or not hasattr(providers, "Constants"):
        yield
        return
    empty = providers.Constants()
    providers._get_local_constants = lambda: empty
    if cache is not None:
        cache.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        if cache is not None:
            cache.cache.clear()


def _literal(value: object) -> bool:
    text = repr(value)
    try:
        back = pyast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return bool(back == value) and type(back) is type(value)


# ------------------------------------------------------------------------------------ from annotations


def from_annotation(
    annotation: ast.expr | None, examples: Sequence[Any] = (), minimum: int | None = None
) -> Strategy | None:
    """The strategy for a parameter annotated ``annotation`` (None: unannotated, use the examples' type),
    shaped by the parameter's documented ``examples`` and the least number its docstring allows
    (``minimum``); None when no value can be drawn."""
    bounds = _Bounds.of(examples, minimum)
    if annotation is None:
        kinds = [from_value(value, bounds) for value in examples]
        usable = [kind for kind in kinds if kind is not None]
        return st.one_of(*usable) if usable and len(usable) == len(kinds) else None
    return _annotated(annotation, bounds, 0)


def from_value(value: Any, bounds: _Bounds | None = None) -> Strategy | None:
    """A strategy for values of ``value``'s type (an example's type, item types included)."""
    bounds = bounds or _Bounds.of([value])
    if value is None:
        return st.none()
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return bounds.integers()
    if isinstance(value, float):
        return bounds.floats()
    if isinstance(value, str):
        return bounds.text()
    if isinstance(value, (list, set, frozenset)):
        items = [from_value(item, bounds) for item in value]
        if any(item is None for item in items):
            return None
        item = st.one_of(*_distinct(items)) if items else bounds.integers()
        if items and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            # "A list of numbers" documented with integers: a float shows which candidates skip, round or
            # reject what is not an integer. Such an input lies outside the examples' type, so a question
            # is asked about it only when no other input separates the candidates (probe.outside_inputs).
            item = st.one_of(item, bounds.floats())
        if isinstance(value, list):
            return st.lists(item, max_size=MAX_SIZE)
        return (st.sets if isinstance(value, set) else st.frozensets)(item, max_size=MAX_SIZE)
    if isinstance(value, tuple):
        members = [from_value(item, bounds) for item in value]
        if any(member is None for member in members):
            return None
        return st.tuples(*(m for m in members if m is not None))
    if isinstance(value, dict):
        keys = [from_value(key, bounds) for key in value]
        values = [from_value(item, bounds) for item in value.values()]
        if not keys or any(s is None for s in (*keys, *values)):
            return None
        return st.dictionaries(st.one_of(*_distinct(keys)), st.one_of(*_distinct(values)), max_size=MAX_SIZE)
    return None


def _distinct(strategies: Sequence[Strategy | None]) -> list[Strategy]:
    out: list[Strategy] = []
    for strategy in strategies:
        if strategy is not None and repr(strategy) not in {repr(s) for s in out}:
            out.append(strategy)
    return out


class _Bounds:
    """The shape of a parameter's documented values: the integer range (and sign), the characters used."""

    def __init__(self, ints: list[int], chars: set[str], minimum: int | None = None) -> None:
        self._ints = ints
        self._chars = chars
        self._minimum = minimum

    @classmethod
    def of(cls, examples: Sequence[Any], minimum: int | None = None) -> _Bounds:
        ints: list[int] = []
        chars: set[str] = set()

        def walk(value: Any, depth: int) -> None:
            if depth > 4:
                return
            if isinstance(value, bool):
                return
            if isinstance(value, int):
                ints.append(value)
            elif isinstance(value, str):
                chars.update(value)
            elif isinstance(value, (list, tuple, set, frozenset)):
                for item in value:
                    walk(item, depth + 1)
            elif isinstance(value, dict):
                for key, item in value.items():
                    walk(key, depth + 1)
                    walk(item, depth + 1)

        for example in examples:
            walk(example, 0)
        return cls(ints, chars, minimum)

    def integers(self) -> Strategy:
        if not self._ints:
            low, high = INT_RANGE
        else:
            # Around the documented values, with their sign: 0..2x for counts and sizes, both signs if shown.
            high = max(10, 2 * max(abs(min(self._ints)), abs(max(self._ints))))
            low = -high if min(self._ints) < 0 else 0
        if self._minimum is not None:
            low = max(low, self._minimum)
            high = max(high, low + 10)
        return st.integers(low, high)

    def floats(self) -> Strategy:
        negative = (not self._ints or min(self._ints) < 0) and (self._minimum is None or self._minimum < 0)
        floats = st.floats(
            min_value=-100.0 if negative else float(max(0, self._minimum or 0)),
            max_value=100.0,
            allow_nan=False,
            allow_infinity=False,
            allow_subnormal=False,
        )
        # Two decimals read like a person's example (0.1, 2.5), not 1.192092896e-07.
        return floats.map(lambda x: round(x, 2)).filter(math.isfinite)

    def text(self) -> Strategy:
        alphabet = st.sampled_from(sorted(self._chars)) if len(self._chars) >= 2 else _TEXT
        return st.text(alphabet, max_size=max(MAX_SIZE, 8))


_SEQUENCES = {"list", "List", "Sequence", "MutableSequence", "Iterable", "Collection", "Iterator"}
_SETS = {"set", "Set", "AbstractSet", "MutableSet"}
_FROZENSETS = {"frozenset", "FrozenSet"}
_MAPPINGS = {"dict", "Dict", "Mapping", "MutableMapping"}


def _annotated(annotation: ast.expr, bounds: _Bounds, depth: int) -> Strategy | None:
    if depth > 3:
        return None
    if isinstance(annotation, ast.Constant):
        if annotation.value is None:
            return st.none()
        if isinstance(annotation.value, str):  # a string annotation: "list[int]"
            try:
                inner = pyast.parse_expression(annotation.value)
            except SyntaxError:
                return None
            return _annotated(inner, bounds, depth + 1)
        return None
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _union([annotation.left, annotation.right], bounds, depth)
    name = _name(annotation)
    if not isinstance(annotation, ast.Subscript):
        leaf = {
            "int": bounds.integers,
            "float": bounds.floats,
            "str": bounds.text,
            "bool": st.booleans,
            "None": st.none,
        }.get(name)
        if leaf is not None:
            return leaf()
        if name in _SEQUENCES:
            return st.lists(bounds.integers(), max_size=MAX_SIZE)
        return None
    generic = _name(annotation.value)
    parameters = (
        list(annotation.slice.elts) if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
    )
    if generic == "Optional":
        return _union([parameters[0], ast.Constant(None)], bounds, depth)
    if generic == "Union":
        return _union(parameters, bounds, depth)
    if generic == "Literal":
        try:
            values = [pyast.literal_eval(p) for p in parameters]
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
        return st.sampled_from(values) if values else None
    items = [_annotated(p, bounds, depth + 1) for p in parameters]
    if generic in _SEQUENCES | _SETS | _FROZENSETS:
        item = items[0]
        if item is None:
            return None
        if generic in _SEQUENCES:
            return st.lists(item, max_size=MAX_SIZE)
        return (st.sets if generic in _SETS else st.frozensets)(item, max_size=MAX_SIZE)
    if generic in ("tuple", "Tuple"):
        if len(parameters) == 2 and isinstance(parameters[1], ast.Constant) and parameters[1].value is ...:
            return None if items[0] is None else st.lists(items[0], max_size=MAX_SIZE).map(tuple)
        if any(item is None for item in items):
            return None
        return st.tuples(*(item for item in items if item is not None))
    if generic in _MAPPINGS and len(items) == 2:
        key, value = items
        return None if key is None or value is None else st.dictionaries(key, value, max_size=MAX_SIZE)
    return None


def _union(members: list[ast.expr], bounds: _Bounds, depth: int) -> Strategy | None:
    strategies = [_annotated(member, bounds, depth + 1) for member in members]
    usable = [s for s in strategies if s is not None]
    return st.one_of(*usable) if usable else None


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # typing.List, collections.abc.Sequence
        return node.attr
    return ""


# ------------------------------------------------------------------------------------------- classes


def constructor(source: str, class_name: str) -> list[ast.arg] | None:
    """The required constructor parameters of the module-level class ``class_name`` in ``source``, as
    ``ast.arg``s with their annotations; None when its constructor's signature is not known (a base class,
    ``*args``, a required keyword-only parameter, a class not found)."""
    try:
        tree = pyast.parse_module(source)
    except (SyntaxError, ValueError):
        return None
    found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    if len(found) != 1:
        return None
    node = found[0]
    bases = [_name(base) for base in node.bases]
    if any(base != "object" for base in bases) or node.keywords:
        return None  # a base class' __init__ (or a metaclass) is not in view
    init = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
    if init:
        arguments = init[0].args
        if arguments.vararg is not None or any(d is None for d in arguments.kw_defaults):
            return None
        positional = [*arguments.posonlyargs, *arguments.args][1:]  # without self
        return positional[: len(positional) - len(arguments.defaults)]
    if any(_name(d.func if isinstance(d, ast.Call) else d) == "dataclass" for d in node.decorator_list):
        fields = []
        for statement in node.body:
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and statement.value is None
                and _name(
                    statement.annotation.value
                    if isinstance(statement.annotation, ast.Subscript)
                    else statement.annotation
                )
                != "ClassVar"
            ):
                fields.append(ast.arg(statement.target.id, statement.annotation))
        return fields
    if node.decorator_list:
        return None
    return []
