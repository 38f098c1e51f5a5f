"""Finding the functions to (re)write: stubs of each kind, positions, and files that do not parse."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from lsp_verify.syntax.target import EditTarget, TargetError, TargetKind
from lsp_verify.syntax.targets import (
    find_stub_targets,
    function_targets,
    functions_touching_lines,
    target_at,
)

PATH = Path("/project/shapes.py")

STUBS = '''\
import math


def ellipsis_stub(x: int) -> int:
    ...


def pass_stub(x: int) -> int:
    pass


def raise_stub(x: int) -> int:
    raise NotImplementedError


def raise_call_stub(x: int) -> int:
    raise NotImplementedError("later")


def doc_only(x: int) -> int:
    """Twice x."""


def doc_and_pass(x: int) -> int:
    """Twice x."""
    pass


def todo_then_pass(x: int) -> int:
    # TODO: write this
    pass


def implemented(x: int) -> int:
    return x * 2


def raises_other(x: int) -> int:
    raise ValueError(x)
'''


def by_name(targets: list[EditTarget]) -> dict[str, EditTarget]:
    return {target.qualname: target for target in targets}


def test_every_kind_of_stub_is_found_and_implemented_functions_are_not() -> None:
    found = by_name(find_stub_targets(STUBS, PATH, version=3))
    assert set(found) == {
        "ellipsis_stub",
        "pass_stub",
        "raise_stub",
        "raise_call_stub",
        "doc_only",
        "doc_and_pass",
        "todo_then_pass",
    }
    assert all(target.kind is TargetKind.STUB and target.version == 3 for target in found.values())
    assert found["ellipsis_stub"].current_body == "..."
    assert found["raise_call_stub"].current_body == 'raise NotImplementedError("later")'
    assert found["todo_then_pass"].current_body == "# TODO: write this\n    pass"


def test_body_range_and_fields_of_a_plain_stub() -> None:
    target = by_name(find_stub_targets(STUBS, PATH))["pass_stub"]
    lines = STUBS.split("\n")
    assert lines[target.def_start_line] == "def pass_stub(x: int) -> int:"
    assert (target.body_start_line, target.body_start_col) == (target.def_start_line + 1, 4)
    assert (target.body_end_line, target.body_end_col) == (target.def_start_line + 1, 8)
    assert target.def_end_line == target.body_end_line
    assert target.header == "def pass_stub(x: int) -> int:"
    assert target.indent == "    "
    assert target.docstring is None
    assert target.class_name is None and not target.is_async
    assert target.path == PATH and target.module_name == "shapes"
    assert target.source_sha256 == hashlib.sha256(STUBS.encode()).hexdigest()
    assert STUBS.encode()[target.body_start_byte : target.body_end_byte] == b"pass"


def test_docstring_is_kept_out_of_the_body_range() -> None:
    found = by_name(find_stub_targets(STUBS, PATH))
    doc_and_pass = found["doc_and_pass"]
    assert doc_and_pass.docstring == '    """Twice x."""'
    assert doc_and_pass.current_body == "pass"
    doc_only = found["doc_only"]
    assert doc_only.docstring == '    """Twice x."""'
    assert doc_only.current_body == ""
    # The empty range sits at the end of the docstring's line.
    assert doc_only.body_start_line == doc_only.def_start_line + 1
    assert doc_only.body_start_col == len('    """Twice x."""')
    assert doc_only.indent == "    "


def test_comment_only_body_is_a_stub() -> None:
    source = "def later(x: int) -> int:\n    # TODO: implement\n    # (soon)\n\n\nVALUE = 1\n"
    (target,) = find_stub_targets(source, PATH)
    assert target.current_body == "# TODO: implement\n    # (soon)"
    assert (target.body_start_line, target.body_end_line) == (1, 2)
    assert target.def_end_line == 2


def test_methods_nested_functions_decorators_and_async() -> None:
    source = '''\
import functools


class Shape:
    """A shape."""

    @functools.cache
    def area(self) -> float:
        ...

    async def load(self) -> None:
        raise NotImplementedError

    class Side:
        def length(self) -> float:
            pass


def outer(x: int) -> int:
    def inner(y: int) -> int:
        ...

    return inner(x)
'''
    found = by_name(find_stub_targets(source, PATH))
    assert set(found) == {"Shape.area", "Shape.load", "Shape.Side.length", "outer.inner"}
    area = found["Shape.area"]
    assert area.class_name == "Shape" and area.name == "area"
    assert area.header == "    @functools.cache\n    def area(self) -> float:"
    assert area.def_start_line == 6 and area.indent == "        "
    assert found["Shape.load"].is_async
    assert found["Shape.Side.length"].class_name == "Side"
    inner = found["outer.inner"]
    assert inner.class_name is None and inner.indent == "        "
    # `outer` itself is implemented: it is a function target, not a stub.
    assert by_name(function_targets(source, PATH))["outer"].kind is TargetKind.AT_LINE


def test_one_line_def_gets_an_indent_four_columns_deeper_than_def() -> None:
    source = "class P:\n    def x(self) -> int: ...\n"
    (target,) = find_stub_targets(source, PATH)
    assert target.current_body == "..."
    assert (target.body_start_line, target.body_start_col) == (1, 24)
    assert target.indent == "        "
    assert target.header == "    def x(self) -> int:"


def test_unicode_before_the_function_gives_byte_offsets_and_character_columns() -> None:
    source = 'NAME = "π ≈ 3.14 😀"\n\n\ndef f(s: str = "ü😀") -> str: ...\n'
    (target,) = find_stub_targets(source, PATH)
    data = source.encode("utf-8")
    assert data[target.body_start_byte : target.body_end_byte] == b"..."
    line = source.split("\n")[target.body_start_line]
    assert line[target.body_start_col : target.body_end_col] == "..."
    assert target.body_start_byte != len(source[: source.index("...")])  # bytes differ from characters


def test_target_at_picks_the_innermost_function_and_keeps_the_requested_kind() -> None:
    source = "def outer():\n    def inner():\n        pass\n\n    return inner\n"
    assert target_at(source, PATH, 2).qualname == "outer.inner"
    assert target_at(source, PATH, 2).kind is TargetKind.STUB
    assert target_at(source, PATH, 4).qualname == "outer"
    assert target_at(source, PATH, 4).kind is TargetKind.AT_LINE
    failing = target_at(source, PATH, 4, version=7, kind=TargetKind.FAILING_TEST)
    assert failing.kind is TargetKind.FAILING_TEST and failing.version == 7


def test_decorator_line_belongs_to_the_function() -> None:
    source = "import functools\n\n@functools.cache\ndef f() -> int:\n    return 1\n"
    assert target_at(source, PATH, 2).name == "f"


def test_no_function_at_the_line_is_a_clear_error() -> None:
    with pytest.raises(TargetError, match=r"no function at line 1 of /project/shapes.py$"):
        target_at("import os\n\ndef f():\n    pass\n", PATH, 0)


BROKEN = """\
def good(x: int) -> int:
    ...


def bad(x: int -> int:
    return x


def also_good() -> None:
    pass
"""


def test_syntax_error_elsewhere_leaves_intact_functions_targetable() -> None:
    assert ast.parse(STUBS)  # the fixture above parses; this one does not:
    with pytest.raises(SyntaxError):
        ast.parse(BROKEN)
    assert {target.name for target in find_stub_targets(BROKEN, PATH)} == {"good", "also_good"}
    assert target_at(BROKEN, PATH, 9).name == "also_good"


def test_function_that_does_not_parse_is_never_a_target() -> None:
    with pytest.raises(TargetError, match=r"no function at line 6 .*does not parse near line 5"):
        target_at(BROKEN, PATH, 5)
    assert "bad" not in {target.name for target in function_targets(BROKEN, PATH)}


def test_file_without_any_intact_stub_says_where_it_does_not_parse() -> None:
    with pytest.raises(TargetError, match=r"does not parse near line 1"):
        find_stub_targets("def f(:\n    pass\n", PATH)
    assert find_stub_targets("def f():\n    return 1\n", PATH) == []


def test_functions_touching_lines_reports_each_innermost_function_once() -> None:
    source = (
        "def a():\n    return 1\n\nclass C:\n    def m(self):\n        x = 1\n        return x\n\nVALUE = 3\n"
    )
    touched = functions_touching_lines(source, PATH, {1, 5, 6, 8})
    assert [target.qualname for target in touched] == ["a", "C.m"]
    assert functions_touching_lines(source, PATH, {8}) == []
