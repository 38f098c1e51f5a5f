"""Parameter types stated in docstrings (verify/documented_types.py): the field-list styles real libraries
use, prose, and what is not a type."""

from __future__ import annotations

import pytest

from lsp_verify.verify.documented_types import DocumentedType, annotation_of, documented_types


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":param int n: how many\n:param s: the text\n:type s: str", {"n": "int", "s": "str"}),
        (
            "Args:\n    n (int): how many\n    s (list of str, optional): items",
            {"n": "int", "s": "list[str]"},
        ),
        (
            "Parameters\n----------\nn : int\n    how many\ns : List[str] or None\n",
            {"n": "int", "s": "List[str]"},
        ),
        ("@type n: float\n@type s: bool", {"n": "float", "s": "bool"}),
        ("Given an integer n and a string s, return ...", {"n": "int", "s": "str"}),
        ("Return the first n items of the list of strings s.", {"s": "list[str]"}),
        ("s is a tuple of integers; n is an integer", {"n": "int", "s": "tuple[int, ...]"}),
    ],
)
def test_the_styles_real_docstrings_state_types_in(text: str, expected: dict[str, str]) -> None:
    found = documented_types(text, ["n", "s"])
    assert {name: stated.annotation for name, stated in found.items()} == expected


def test_a_qualifier_bounds_numbers_only() -> None:
    text = "Given a positive integer n, a non-negative number k and a string s."
    assert documented_types(text, ["n", "k", "s"]) == {
        "n": DocumentedType("int", 1),
        "k": DocumentedType("int", 0),
        "s": DocumentedType("str", None),
    }


@pytest.mark.parametrize(
    "text",
    [
        "grid : [[0, 0, 1], [1, 1, 1]]\ncapacity : 1",  # prose examples (values), not types
        "Given two lists operator, and operand.",  # a container without its item type
        "Return every n-th value; the value n must be small.",  # no type word before the name
        "n (see above): ignored",  # a Google-style entry whose parenthesis is no type
    ],
)
def test_what_is_not_a_stated_type(text: str) -> None:
    assert documented_types(text, ["n", "grid", "capacity", "operator", "operand"]) == {}


def test_annotation_sources() -> None:
    assert annotation_of("int, optional") == "int"
    assert annotation_of("list of integers") == "list[int]"
    assert annotation_of("dict[str, int]") == "dict[str, int]"
    assert annotation_of("[1, 2]") is None
    assert annotation_of("a sentence about it") is None
