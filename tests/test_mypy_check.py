"""The mypy stage's pure parts: parsing output, the added-error multiset, the restricted configuration."""

from __future__ import annotations

from pathlib import Path

from lsp_verify.verify.mypy_check import (
    MypyError,
    added_errors,
    parse_output,
    project_config,
    restricted_config,
)

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
    # mypy was given absolute paths (in the shadow) and printed one as it got it.
    absolute = OUTPUT.replace("pkg/core.py:3:", "/shadow/s1/pkg/core.py:3:")
    assert parse_output(absolute, Path("pkg/core.py"), Path("/shadow/s1")) == errors


def test_added_errors_ignore_line_shifts_and_count_repeats() -> None:
    baseline = [MypyError(8, "Function is missing a type annotation", "no-untyped-def")]
    candidate = [
        MypyError(12, "Function is missing a type annotation", "no-untyped-def"),  # moved down: not new
        MypyError(13, "Function is missing a type annotation", "no-untyped-def"),  # a second one: new
    ]
    assert added_errors(baseline, candidate) == [candidate[1]]


def test_an_error_naming_a_line_that_moved_is_not_new() -> None:
    baseline = [MypyError(9, 'Name "total" already defined on line 3', "no-redef")]
    moved = [MypyError(11, 'Name "total" already defined on line 5', "no-redef")]
    assert added_errors(baseline, moved) == []


def test_in_a_file_the_change_left_alone_an_error_is_known_by_its_line_and_code() -> None:
    # The message names the changed function's signature: reworded, it is the same error.
    baseline = [MypyError(4, 'Argument 1 to "rate" has incompatible type "str"; expected "int"', "arg-type")]
    reworded = [
        MypyError(4, 'Argument 1 to "rate" has incompatible type "str"; expected "float"', "arg-type")
    ]
    assert added_errors(baseline, reworded, same_lines=True) == []
    assert added_errors(baseline, reworded) == reworded


def test_the_project_configuration_is_found_as_mypy_finds_it(tmp_path: Path) -> None:
    assert project_config(tmp_path) is None
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = x\n")  # no [mypy]: mypy reads on
    (tmp_path / "pyproject.toml").write_text(
        "[tool.mypy]\npython_version = 3.12\nstrict = true\n"
        '[[tool.mypy.overrides]]\nmodule = ["a", "b.*"]\nignore_errors = true\n'
    )
    assert project_config(tmp_path) == (
        "pyproject.toml",
        {
            "mypy": {"python_version": 3.12, "strict": True},
            "mypy-a": {"ignore_errors": True},
            "mypy-b.*": {"ignore_errors": True},
        },
    )
    (tmp_path / ".mypy.ini").write_text("[mypy\n")  # cannot be parsed: mypy skips it
    assert restricted_config(tmp_path).text.splitlines()[:3] == [
        "[mypy]",
        "python_version = 3.12",
        "strict = True",
    ]  # type: ignore[index]
    (tmp_path / "mypy.ini").write_text("[other]\nx = 1\n")  # used even without a [mypy] section
    assert project_config(tmp_path) == ("mypy.ini", {})


def test_the_restricted_configuration_keeps_only_harmless_options(tmp_path: Path) -> None:
    (tmp_path / "stubs").mkdir()
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\n"
        "plugins = evil.py\npython_executable = ./x.sh\ncache_dir = /tmp/c\njunit_xml = /tmp/j.xml\n"
        "any_exprs_report = /tmp/r\ninstall_types = True\nfiles = *.py\npretty = True\n"
        "show_absolute_path = True\n"
        "strict = True\nwarn_return_any = yes\nno_implicit_reexport = 1\npython_version = 3.11\n"
        "disallow_untyped_defs = maybe\ndisable_error_code = misc, , override\n"
        "enable_error_code = evil code\nfollow_imports = silent\nmypy_path = stubs:$MYPY_CONFIG_FILE_DIR\n"
        "\n[mypy-pkg.*, other]\nignore_errors = True\nplugins = x.py\n"
        "\n[mypy-../evil]\nignore_errors = True\n"
    )
    config = restricted_config(tmp_path)
    assert config.source == "mypy.ini"
    assert config.text.splitlines() == [
        "[mypy]",
        "strict = True",
        "warn_return_any = True",
        "no_implicit_reexport = True",
        "python_version = 3.11",
        "disable_error_code = misc, override",
        "follow_imports = silent",
        "mypy_path = stubs, .",
        "",
        "[mypy-pkg.*,other]",
        "ignore_errors = True",
    ]
    assert config.dropped == (
        "plugins",
        "python_executable",
        "cache_dir",
        "junit_xml",
        "any_exprs_report",
        "install_types",
        "files",
        "pretty",
        "show_absolute_path",
        "disallow_untyped_defs",
        "enable_error_code",
        "[mypy-pkg.*, other] plugins",
        "[mypy-../evil] ignore_errors",
    )
    assert "left out: plugins, python_executable" in config.note


def test_no_value_writes_an_option_of_its_own_or_reaches_outside(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.mypy]\n"
        'mypy_path = ["ok\\nplugins = evil.py", "../outside"]\n'
        'python_version = "3.11\\nplugins = evil.py"\n'
        'always_true = ["A", "B\\nplugins = evil.py"]\n'
        '[[tool.mypy.overrides]]\nmodule = "m\\nplugins = evil.py"\nignore_errors = true\n'
    )
    config = restricted_config(tmp_path)
    assert config.text == "[mypy]\n"
    assert "plugins" not in config.text
    assert len(config.dropped) == 4


def test_a_project_without_configuration_gets_an_empty_one(tmp_path: Path) -> None:
    config = restricted_config(tmp_path)
    assert (config.text, config.source, config.dropped) == ("[mypy]\n", None, ())
    assert "the project has no mypy configuration" in config.note
    written = config.write(tmp_path / "private") if (tmp_path / "private").mkdir() is None else None
    assert written is not None and written.read_text() == "[mypy]\n" and written.name != "mypy.ini"
