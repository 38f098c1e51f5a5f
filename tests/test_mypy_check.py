"""The mypy stage's pure parts: parsing output, the added-error multiset, plugin detection."""

from __future__ import annotations

from pathlib import Path

from lsp_verify.verify.mypy_check import MypyError, added_errors, config_plugins, parse_output

OUTPUT = """\
pkg/core.py:3: error: Incompatible return value type (got "str", expected "int")  [return-value]
pkg/core.py:3: note: Revealed something
pkg/other.py:1: error: Missing return statement  [return]
pkg/core.py:9: error: Function is missing a type annotation  [no-untyped-def]
"""


def test_parse_output_keeps_errors_of_the_edited_file_only() -> None:
    errors = parse_output(OUTPUT, Path("pkg/core.py"))
    assert errors == (
        MypyError(2, 'Incompatible return value type (got "str", expected "int")', "return-value"),
        MypyError(8, "Function is missing a type annotation", "no-untyped-def"),
    )


def test_added_errors_ignore_line_shifts_and_count_repeats() -> None:
    baseline = [MypyError(8, "Function is missing a type annotation", "no-untyped-def")]
    candidate = [
        MypyError(12, "Function is missing a type annotation", "no-untyped-def"),  # moved down: not new
        MypyError(13, "Function is missing a type annotation", "no-untyped-def"),  # a second one: new
    ]
    assert added_errors(baseline, candidate) == [candidate[1]]


def test_config_plugins_from_pyproject_and_ini(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.mypy]\nplugins = ["pydantic.mypy"]\n')
    assert config_plugins(tmp_path) == ["pydantic.mypy"]
    (tmp_path / "mypy.ini").write_text("[mypy]\nplugins = a.plugin, b.plugin\n")
    assert config_plugins(tmp_path) == ["a.plugin", "b.plugin"]  # mypy.ini wins, as in mypy


def test_no_plugins_without_mypy_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert config_plugins(tmp_path) == []
