"""Nearby-test selection: pytest's collection, tree-sitter's names, kept fresh by watchdog."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from lsp_verify.verify.pytest_run import CollectedTest, Collection
from lsp_verify.verify.test_index import TestIndex, module_name, scan_test_file

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
