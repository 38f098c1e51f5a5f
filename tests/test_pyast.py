"""lsp_verify.syntax.pyast: Python's parser, safe to call from the server's several threads at once."""

from __future__ import annotations

import ast
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lsp_verify.syntax import pyast

# A module big enough that building its tree takes many garbage collections.
_SOURCE = "\n".join(f"def f{i}(x):\n    return [x + {i} for _ in range(3)]" for i in range(1000))


@pytest.fixture
def collections_yield_the_gil() -> Iterator[None]:
    """A collection on a parsing thread runs Python code that lets another thread run: what a finalizer
    does in the server (CPython gh-106905 needs exactly this to corrupt a parse in progress)."""

    def sleep_on_start(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            time.sleep(0.0005)

    gc.callbacks.append(sleep_on_start)
    try:
        yield
    finally:
        gc.callbacks.remove(sleep_on_start)


def _parse_on_two_threads(parse: Callable[[str], object]) -> list[BaseException]:
    errors: list[BaseException] = []

    def nested(depth: int) -> None:  # the two threads start their trees at different stack depths
        if depth:
            nested(depth - 1)
            return
        for _ in range(5):
            try:
                parse(_SOURCE)
            except BaseException as error:
                errors.append(error)
                return

    threads = [threading.Thread(target=nested, args=(depth,)) for depth in (0, 20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.usefixtures("collections_yield_the_gil")
def test_two_threads_parsing_at_once_both_get_their_tree() -> None:
    assert _parse_on_two_threads(pyast.parse_module) == []


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12 builds trees without shared state")
@pytest.mark.usefixtures("collections_yield_the_gil")
def test_the_race_is_real_without_the_lock() -> None:
    """What the lock prevents (if this starts passing on 3.11, the fixture no longer provokes the race and
    the test above proves nothing)."""
    errors: list[BaseException] = []
    for _ in range(5):  # a thread switch in the middle of a tree is likely, not certain
        errors = _parse_on_two_threads(ast.parse)
        if errors:
            break
    assert errors and "recursion depth mismatch" in str(errors[0])


def test_a_mismatch_from_a_parse_outside_the_lock_is_retried_once(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ast.parse
    calls: list[str] = []

    def collides_once(source: str, *args: object, **kwargs: object) -> ast.AST:
        calls.append(source)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=18, after=60)")
        return real(source, *args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(ast, "parse", collides_once)
    assert isinstance(pyast.parse_module("x = 1").body[0], ast.Assign)
    assert len(calls) == 2


def test_other_system_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> ast.AST:
        raise SystemError("something else")

    monkeypatch.setattr(ast, "parse", broken)
    with pytest.raises(SystemError, match="something else"):
        pyast.parse_module("x = 1")


def test_the_wrappers_behave_as_the_standard_functions() -> None:
    assert pyast.literal_eval("  [1, 'a', None]") == [1, "a", None]
    assert pyast.literal_eval(pyast.parse_expression("(1, 2)")) == (1, 2)
    with pytest.raises(ValueError):
        pyast.literal_eval("f(1)")
    with pytest.raises(SyntaxError):
        pyast.parse_module("def f(:\n")
    assert isinstance(pyast.parse_expression("a + 1"), ast.BinOp)
