"""What a prompt gets from the document, and which names each test function refers to."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_verify.syntax.context import nearby_tests_source, prompt_pieces
from lsp_verify.syntax.splice import StaleTargetError
from lsp_verify.syntax.targets import target_at
from lsp_verify.syntax.tests_scan import test_functions as scan_tests

PATH = Path("/project/shapes.py")

DOCUMENT = '''\
"""Shapes."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterator

T = TypeVar("T")
UNIT = 1.0
TABLE = {
    "a": 1,
}


def scale(
    value: float,  # what to scale
    factor: float = 2.0,
) -> float:
    return value * factor


class Circle:
    """A circle."""

    kind: str = "circle"

    def __init__(self, radius: float) -> None:
        self.radius = radius
        self.label: str = ""

    @property
    def diameter(self) -> float:
        return 2 * self.radius

    def area(self) -> float:
        """Area of the circle."""
        ...


class Square:
    def area(self) -> float:
        def helper() -> float:
            return 1.0

        return helper()
'''


def test_pieces_of_a_method() -> None:
    target = target_at(DOCUMENT, PATH, DOCUMENT.split("\n").index("        ..."))
    assert target.qualname == "Circle.area"
    pieces = prompt_pieces(DOCUMENT, target)
    assert pieces.imports == (
        "from __future__ import annotations\n"
        "import math\n"
        "from typing import TYPE_CHECKING, TypeVar\n"
        "if TYPE_CHECKING:\n"
        "    from collections.abc import Iterator\n"
        'T = TypeVar("T")\n'
        "UNIT = 1.0"
    )  # TABLE spans lines: left out
    assert pieces.class_header == (
        "class Circle:\n"
        '    kind: str = "circle"\n'
        "    def __init__(self, radius: float) -> None:\n"
        "        self.radius = radius\n"
        '        self.label: str = ""'
    )
    # The other methods' signatures go apart from the code the model continues (see _class_members).
    assert pieces.class_methods == ("@property\ndef diameter(self) -> float: ...",)
    assert pieces.header == "    def area(self) -> float:"
    assert pieces.docstring == '        """Area of the circle."""'
    assert pieces.indent == "        "
    assert pieces.prefix + target.current_body + pieces.suffix == DOCUMENT
    assert pieces.prefix.endswith('"""Area of the circle."""\n        ')
    assert pieces.suffix.startswith("\n\n\nclass Square:")
    # Other functions, one line each, nearest first; the class's own methods are in class_methods and
    # functions nested in functions are left out.
    assert pieces.signatures_nearby == (
        "def area(self) -> float: ...  # Square.area",
        "def scale(value: float, factor: float = 2.0) -> float: ...",
    )


def test_pieces_of_a_plain_function() -> None:
    target = target_at(DOCUMENT, PATH, DOCUMENT.split("\n").index("    return value * factor"))
    pieces = prompt_pieces(DOCUMENT, target)
    assert pieces.class_header is None
    assert pieces.class_methods == ()
    assert pieces.docstring is None
    assert pieces.header == (
        "def scale(\n    value: float,  # what to scale\n    factor: float = 2.0,\n) -> float:"
    )
    assert "def diameter(self) -> float: ...  # Circle.diameter" in pieces.signatures_nearby
    assert not any(signature.startswith("def scale") for signature in pieces.signatures_nearby)


def test_pieces_refuse_a_changed_document() -> None:
    target = target_at(DOCUMENT, PATH, 20)
    with pytest.raises(StaleTargetError):
        prompt_pieces(DOCUMENT.replace("UNIT = 1.0", "UNIT = 2.0"), target)


TESTS = """\
import pytest
from shapes import Circle as C, scale
import pkg.geometry
from . import helpers


def test_scale():
    assert scale(2.0) == 4.0


class TestCircle:
    @pytest.mark.parametrize("r", [1.0, 2.0])
    def test_area(self, r):
        import math

        assert C(r).area() == pytest.approx(math.pi * r * r)

    def helper(self):
        return None

    class TestNested:
        async def test_label(self):
            assert C(1).label == ""


class Helpers:
    def test_not_collected(self):
        pass


def not_a_test():
    scale(1.0)
"""


def test_test_functions_lists_every_function_pytest_might_collect() -> None:
    # Which of them are tests is pytest's decision (its configuration may collect `Helpers` or
    # `not_a_test`); the scan only finds each by qualname or line.
    found = scan_tests(TESTS)
    assert [(test.class_name, test.name) for test in found] == [
        (None, "test_scale"),
        ("TestCircle", "test_area"),
        ("TestCircle", "helper"),
        ("TestCircle.TestNested", "test_label"),
        ("Helpers", "test_not_collected"),
        (None, "not_a_test"),
    ]
    assert [test.nodeid_suffix for test in found][:4] == [
        "test_scale",
        "TestCircle::test_area",
        "TestCircle::helper",
        "TestCircle::TestNested::test_label",
    ]
    assert found[3].qualname == "TestCircle.TestNested.test_label"
    lines = TESTS.split("\n")
    assert lines[found[1].line] == "    def test_area(self, r):"
    assert lines[found[1].start_line] == '    @pytest.mark.parametrize("r", [1.0, 2.0])'
    assert lines[found[1].end_line] == "        assert C(r).area() == pytest.approx(math.pi * r * r)"


def test_names_used_and_imported_names() -> None:
    scale_test, area_test, _, label_test, *_ = scan_tests(TESTS)
    assert {"scale"} <= scale_test.names_used
    assert {"C", "area", "approx", "math", "pi", "parametrize", "pytest"} <= area_test.names_used
    assert "test_area" not in area_test.names_used
    assert {"label", "C"} <= label_test.names_used
    module_imports = {
        "pytest",
        "shapes",
        "Circle",
        "C",
        "scale",
        "pkg.geometry",
        "pkg",
        "geometry",
        "helpers",
    }
    assert scale_test.imported_names == module_imports
    assert area_test.imported_names == module_imports | {"math"}  # its own import counts for it alone


def test_broken_test_module_still_yields_its_intact_tests() -> None:
    source = "def test_ok():\n    assert f(1)\n\n\ndef test_bad(:\n    pass\n\n\ndef test_later():\n    g()\n"
    assert [test.name for test in scan_tests(source)] == ["test_ok", "test_later"]


GUARDS_THEN_OWN = """\
from shapes import area, scale


def test_area_of_unit_square():
    assert area(1) == 1


def test_area_grows():
    assert area(2) > area(1)


@pytest.mark.parametrize("k", [1, 2])
def test_scale_keeps_length(k):
    assert len(scale([1, 2], k)) == 2


class TestScale:
    def test_triples(self):
        assert scale([1], 3) == [3]
"""


def test_nearby_tests_come_in_the_order_asked_not_file_order(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_shapes.py").write_text(GUARDS_THEN_OWN, encoding="utf-8")
    ids = [
        "tests/test_shapes.py::TestScale::test_triples",
        "tests/test_shapes.py::test_scale_keeps_length[1]",
        "tests/test_shapes.py::test_scale_keeps_length[2]",  # one function, shown once
        "tests/test_shapes.py::test_area_of_unit_square",
        "tests/test_missing.py::test_gone",  # unreadable: skipped
    ]

    text = nearby_tests_source(tmp_path, ids)

    assert text.index("def test_triples") < text.index("def test_scale_keeps_length")
    assert text.index("def test_scale_keeps_length") < text.index("def test_area_of_unit_square")
    assert text.count("def test_scale_keeps_length") == 1 and "test_area_grows" not in text


def test_a_test_too_long_for_the_budget_leaves_room_for_the_next(tmp_path: Path) -> None:
    (tmp_path / "test_shapes.py").write_text(GUARDS_THEN_OWN, encoding="utf-8")
    ids = ["test_shapes.py::test_scale_keeps_length[1]", "test_shapes.py::test_area_of_unit_square"]
    small = len("def test_area_of_unit_square():\n    assert area(1) == 1")

    text = nearby_tests_source(tmp_path, ids, max_chars=small + 10)

    assert text.startswith("def test_area_of_unit_square") and "test_scale_keeps_length" not in text
