"""Nearby-test selection: pytest's collection, tree-sitter's names, kept fresh by watchdog."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from lsp_verify.verify.pytest_run import CollectedTest, Collection, function_id
from lsp_verify.verify.test_index import (
    TestIndex,
    import_name,
    module_name,
    module_names,
    scan_test_file,
)

Collect = Callable[[Path], Collection]

FIXTURES = Path(__file__).parent / "fixtures"


def test_scan_finds_test_functions_methods_imports_and_aliases() -> None:
    source = b"""
import pkg.mod
from pkg.core import add as plus, mul

def helper():
    pass

def test_one():
    assert plus(1, 2) == 3

class TestThing:
    def test_method(self):
        assert mul(2, 2) == 4

    def not_a_test(self):
        pass
"""
    scanned = scan_test_file(Path("tests/test_x.py"), source)
    assert {"pkg.mod", "pkg.core", "pkg.core.add", "pkg.core.mul"} <= scanned.imported_modules
    assert scanned.aliases["plus"] == "pkg.core.add"
    # Every function: which of them are tests is pytest's decision, not the scan's.
    assert [f.qualname for f in scanned.functions] == [
        "helper",
        "test_one",
        "TestThing.test_method",
        "TestThing.not_a_test",
    ]
    assert "plus" in scanned.functions[1].names_used


def test_selects_tests_that_use_the_function_and_the_conventional_module(
    tmp_path: Path, collect_tests: Collect
) -> None:
    root = tmp_path / "calc"
    shutil.copytree(FIXTURES / "calc", root)
    (root / "tests" / "test_core.py").write_text("def test_anything() -> None:\n    pass\n")
    index = TestIndex(root)
    assert module_name(root, root / "calc" / "core.py") == "calc.core"
    selected = index.node_ids(root / "calc" / "core.py", "add", None, collect_tests(root))
    assert selected == [
        "tests/test_calc.py::test_add",
        "tests/test_calc.py::test_add_negative",
        "tests/test_core.py::test_anything",  # test_core.py is core.py's conventional test module
        "tests/test_other.py::test_uses_add_via_module",
    ]
    assert "tests/test_calc.py::test_mul" not in selected


def test_watchdog_keeps_the_index_fresh(tmp_path: Path, collect_tests: Collect) -> None:
    root = tmp_path / "calc"
    shutil.copytree(FIXTURES / "calc", root)
    index = TestIndex(root)
    changed = threading.Event()
    index.add_listener(lambda paths: changed.set())
    index.start()
    collections = 0

    def near_add() -> list[str]:
        def collect() -> Collection:
            nonlocal collections
            collections += 1
            return collect_tests(root)

        return index.node_ids(root / "calc/core.py", "add", None, index.collection(collect))

    try:
        assert "tests/test_more.py::test_more_add" not in near_add()
        near_add()
        assert collections == 1, "an unchanged tree is collected once"
        (root / "tests" / "test_more.py").write_text(
            "from calc.core import add\n\n\ndef test_more_add() -> None:\n    assert add(1, 2) == 3\n"
        )
        assert changed.wait(10), "no change notification from watchdog"
        assert "tests/test_more.py::test_more_add" in near_add()
        assert collections == 2
    finally:
        index.stop()


def test_only_changes_that_can_alter_what_pytest_collects_drop_the_collection(tmp_path: Path) -> None:
    index = TestIndex(tmp_path)
    inherited = CollectedTest(
        "tests/test_a.py::TestA::test_x", "tests/test_a.py", "tests/base.py", "Base.test_x", 3
    )
    collection = Collection(
        tests=(inherited,), errors=(("tests/test_bad.py", "boom"),), python_files=("check_*.py",)
    )
    collections: list[Collection] = []

    def collect() -> Collection:
        collections.append(collection)
        return collection

    index.collection(collect)
    for changed, drops in [
        ("pkg/mod.py", False),  # source code: pytest's collection does not depend on it
        ("README.md", False),
        ("tests/test_new.py", False),  # the project's python_files is check_*.py: pytest ignores it
        ("checks/check_new.py", True),
        ("tests/base.py", True),  # defines a collected test
        ("tests/test_bad.py", True),  # failed to collect: a fix may make it collect
        ("sub/conftest.py", True),
        ("pyproject.toml", True),
    ]:
        collections.clear()
        index.invalidate([tmp_path / changed])
        index.collection(collect)
        assert len(collections) == drops, changed
    # pytest's default python_files: unittest's discovery pattern holds tests too (tests.py).
    collection = Collection(tests=())
    index.invalidate([tmp_path / "pyproject.toml"])
    index.collection(collect)
    for changed, drops in [("tests.py", True), ("pkg/testing.py", True), ("pkg/helpers.py", False)]:
        collections.clear()
        index.invalidate([tmp_path / changed])
        index.collection(collect)
        assert len(collections) == drops, changed


def test_doctests_outside_the_functions_module_are_near_the_functions_they_use(
    tmp_path: Path, collect_tests: Collect
) -> None:
    """A text file's examples (``--doctest-glob``) and another module's docstring (``--doctest-modules``)
    are tests of what they call, when they import its module (a relative import, an alias); a function's
    own module's doctests are run with it already, and examples that never import it are not near it."""
    root = tmp_path / "doubling"
    (root / "nums").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "--doctest-glob=*.rst --doctest-modules"\n'
    )
    (root / "nums" / "__init__.py").write_text('"""\n>>> from nums.core import halve\n>>> halve(4)\n2\n"""\n')
    (root / "nums" / "core.py").write_text(
        "def double(x):\n    return x * 2\n\n\ndef triple(x):\n    return x * 3\n\n\n"
        'def halve(x):\n    """\n    >>> double(halve(4))\n    4\n    """\n    return x // 2\n\n\n'
        "def unused(x):\n    return x\n"
    )
    (root / "nums" / "api.py").write_text(
        "from .core import triple as thrice\n\n\nclass Six:\n    def of(self, x):\n"
        '        """\n        >>> thrice(2)\n        6\n        """\n        return thrice(2 * x)\n'
    )
    (root / "docs" / "usage.rst").write_text(
        "Usage\n=====\n\n>>> from nums import core\n>>> core.double(4)\n8\n"
    )
    (root / "docs" / "other.rst").write_text(">>> unused(3)  # never imported\n3\n")
    collection = collect_tests(root)
    assert {t.nodeid for t in collection.tests if t.doctest} >= {
        "docs/usage.rst::usage.rst",
        "nums/api.py::nums.api.Six.of",
        "nums/__init__.py::nums",
    }
    index = TestIndex(root)
    core = root / "nums" / "core.py"
    assert index.nearby(core, "double", None, collection) == [("docs/usage.rst::usage.rst", True)]
    assert index.nearby(core, "triple", None, collection) == [("nums/api.py::nums.api.Six.of", True)]
    assert index.nearby(core, "halve", None, collection) == [("nums/__init__.py::nums", True)]
    assert index.nearby(core, "unused", None, collection) == []


def test_a_doctests_scan_reads_its_examples_and_the_imports_they_run_with() -> None:
    from lsp_verify.syntax.doctests_scan import read_doctests

    module = '''"""The package.

>>> halve(4)
2
"""
from . import core
from .core import halve, double as twice
from ..elsewhere import far


class Six:
    def of(self, x):
        """
        >>> import json
        >>> Six().of(json.loads("1"), key=twice)
        6
        """
'''
    source = read_doctests(module, "nums", package="nums")  # an __init__.py: relative to itself
    assert source is not None
    own = source.item("nums")
    assert own is not None and {"halve"} <= own.function.names_used
    assert {"nums.core", "nums.core.halve", "nums.core.double"} <= own.imported_modules
    assert own.aliases["twice"] == "nums.core.double"
    assert "elsewhere" not in " ".join(own.imported_modules)  # above the top package: not resolved
    method = source.item("nums.Six.of")
    assert method is not None
    assert {"Six", "of", "loads", "key", "twice"} <= method.function.names_used
    assert "json" in method.imported_modules and "json" not in own.imported_modules
    # pytest may name the module longer than its packages say (rootdir layouts): matched by qualname.
    assert source.item("src.nums.Six.of") is not None
    assert source.item("nums.Seven") is None
    assert read_doctests("def broken(:\n", "nums.bad") is None
    # Only imports that bind the module's globals count: not one inside a function. And in a namespace
    # package pytest names the module docstring's item longer than the packages say (jaraco.functools).
    inside = read_doctests('"""\n>>> far(1)\n1\n"""\ndef f():\n    from elsewhere import far\n', "tools")
    assert inside is not None and (found := inside.item("tools")) is not None
    assert "elsewhere" not in found.imported_modules and "far" not in found.aliases
    assert inside.item("jaraco.tools") is not None
    text = read_doctests("Usage\n\n   >>> core.double(1,\n  ...     2)\n", None)
    assert text is not None and text.item("usage.rst") is None  # inconsistent indentation: pytest's error


def test_module_names_include_a_namespace_packages_full_name(tmp_path: Path) -> None:
    for relative in ("acme/tools/__init__.py", "src/nums/__init__.py", "src/nums/core.py", "scripts/run.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("")
    assert module_names(tmp_path, tmp_path / "acme/tools/__init__.py") == ("tools", "acme.tools")
    assert module_names(tmp_path, tmp_path / "src/nums/core.py") == ("nums.core",)
    assert module_names(tmp_path, tmp_path / "scripts/run.py") == ("run", "scripts.run")
    (tmp_path / "my-scripts").mkdir()
    assert module_names(tmp_path, tmp_path / "my-scripts/run.py") == ("run",)  # not importable as a package
    # Imported on its own (a probe): a package inside a namespace package by its full name, a script by its
    # short one (it imports its neighbours so).
    assert import_name(tmp_path, tmp_path / "acme/tools/__init__.py") == "acme.tools"
    assert import_name(tmp_path, tmp_path / "scripts/run.py") == "run"
    assert import_name(tmp_path, tmp_path / "src/nums/core.py") == "nums.core"


def test_a_doctest_file_edited_is_read_again_and_other_text_files_cost_nothing(
    tmp_path: Path, collect_tests: Collect
) -> None:
    root = tmp_path / "doubling"
    (root / "nums").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "--doctest-glob=*.rst"\n')
    (root / "nums" / "__init__.py").write_text("")
    (root / "nums" / "core.py").write_text(
        "def double(x):\n    return x * 2\n\n\ndef triple(x):\n    return x * 3\n"
    )
    (root / "docs" / "usage.rst").write_text(">>> from nums.core import double\n>>> double(4)\n8\n")
    index = TestIndex(root)
    changed: list[frozenset[Path]] = []
    arrived = threading.Event()

    def listener(paths: frozenset[Path]) -> None:
        changed.append(paths)
        arrived.set()

    index.add_listener(listener)
    index.start()
    core = root / "nums" / "core.py"
    try:
        assert index.nearby(core, "triple", None, index.collection(lambda: collect_tests(root))) == []
        (root / "README.md").write_text("not collected\n")  # a README the project does not doctest
        (root / "notes.txt").write_text("a log line\n")
        assert not arrived.wait(2), changed  # every cached baseline would have gone
        (root / "docs" / "usage.rst").write_text(">>> from nums.core import triple\n>>> triple(2)\n6\n")
        assert arrived.wait(10), "no change notification for the doctest file"
        collection = index.collection(lambda: collect_tests(root))
        assert index.nearby(core, "triple", None, collection) == [("docs/usage.rst::usage.rst", True)]
        assert index.nearby(core, "double", None, collection) == []
    finally:
        index.stop()


@pytest.mark.parametrize(
    ("node_id", "function"),
    [
        ("tests/test_a.py::test_x", "tests/test_a.py::test_x"),
        ("tests/test_a.py::test_x[1-2]", "tests/test_a.py::test_x"),
        ("tests/test_a.py::Case::test_x[a::b]", "tests/test_a.py::Case::test_x"),
        ("tests/test_a.py::test_x[x[1]]", "tests/test_a.py::test_x"),
        # pytest-mypy-testing names its items so: the bracket is the name's, not a case's (pydash)
        ("tests/typing/test_a.py::[mypy]test_x", "tests/typing/test_a.py::[mypy]test_x"),
        ("tests/typing/test_a.py::[mypy]test_x[p]", "tests/typing/test_a.py::[mypy]test_x"),
        ("tests/v[2]/test_a.py::test_x", "tests/v[2]/test_a.py::test_x"),
        ("docs/intro.txt::intro.txt", "docs/intro.txt::intro.txt"),
    ],
)
def test_a_node_id_names_its_test_function(node_id: str, function: str) -> None:
    assert function_id(node_id) == function
