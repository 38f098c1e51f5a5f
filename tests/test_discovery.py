"""Which tests exist is pytest's decision: real pytest collects small projects built in tmp_path, and the
index picks the collected tests near a function.

Selection tests go through ``collect_tests`` (the verifier's own collection, fork server and fresh process)
and :class:`TestIndex`; the tests of what a user sees (notes, messages, verdicts) drive a real
:class:`Verifier`. Each of them selected the wrong tests, or none, with the hand-written collection rules
that came before (``test_*.py`` files and ``Test*`` classes only).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lsp_verify.cancel import CancelToken
from lsp_verify.config import Settings
from lsp_verify.syntax.target import EditTarget
from lsp_verify.syntax.targets import function_targets
from lsp_verify.verify.cascade import Verifier, VerifyError
from lsp_verify.verify.pytest_run import Collection, PytestRunner, installed_elsewhere
from lsp_verify.verify.sandbox import WorkerProcess
from lsp_verify.verify.shadow import ShadowRoot
from lsp_verify.verify.test_index import TestIndex
from lsp_verify.verify.types import Candidate, Evidence

Collect = Callable[..., Collection]
MakeRunner = Callable[..., tuple[PytestRunner, ShadowRoot, WorkerProcess]]

GEO = '''\
"""Shapes."""


def area(w: int, h: int) -> int:
    return w * h


def perimeter(w: int, h: int) -> int:
    return 2 * (w + h)


class Box:
    def __init__(self, a: int, b: int, c: int) -> None:
        self.a, self.b, self.c = a, b, c

    def volume(self) -> int:
        return self.a * self.b * self.c

    def label(self) -> str:
        return "box"
'''


# A project whose warnings are errors; pytest-asyncio, installed here, warns about its own settings, which is
# not these tests' business.
WARNINGS_ARE_ERRORS = (
    '[tool.pytest.ini_options]\nfilterwarnings = ["error", "ignore::pytest.PytestDeprecationWarning"]\n'
)


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def near(
    root: Path, collection: Collection, source: str, name: str, cls: str | None = None
) -> dict[str, bool]:
    """node id -> direct, for the tests near ``name`` (a method of ``cls``) in ``source``."""
    return dict(TestIndex(root).nearby(root / source, name, cls, collection))


# -- what pytest collects ----------------------------------------------------------------------------------


def test_unittest_classes_of_any_name_are_selected_for_functions_and_methods(
    tmp_path: Path, collect_tests: Collect
) -> None:
    root = write(
        tmp_path,
        {
            "shapes/__init__.py": "",
            "shapes/geo.py": GEO,
            "tests/test_shapes.py": """\
                import unittest

                from shapes.geo import Box, area


                class AreaTests(unittest.TestCase):
                    def test_square(self) -> None:
                        self.assertEqual(area(2, 2), 4)


                class BoxTests(unittest.TestCase):
                    def test_volume(self) -> None:
                        self.assertEqual(Box(1, 2, 3).volume(), 6)

                    def test_label(self) -> None:
                        self.assertEqual(Box(1, 1, 1).label(), "box")
            """,
        },
    )
    collection = collect_tests(root)
    assert near(root, collection, "shapes/geo.py", "area") == {
        "tests/test_shapes.py::AreaTests::test_square": True
    }
    # A test that only builds a Box may reach volume() indirectly: it runs, as a guard, not as evidence.
    assert near(root, collection, "shapes/geo.py", "volume", "Box") == {
        "tests/test_shapes.py::BoxTests::test_volume": True,
        "tests/test_shapes.py::BoxTests::test_label": False,
    }
    # Building a Box does call __init__.
    assert set(near(root, collection, "shapes/geo.py", "__init__", "Box").values()) == {True}
    assert near(root, collection, "shapes/geo.py", "perimeter") == {}


def test_the_projects_collection_settings_decide(tmp_path: Path, collect_tests: Collect) -> None:
    root = write(
        tmp_path,
        {
            "pyproject.toml": """\
                [tool.pytest.ini_options]
                testpaths = ["checks"]
                python_files = ["check_*.py"]
                python_classes = ["Check"]
                python_functions = ["check_*"]
            """,
            "shapes/__init__.py": "",
            "shapes/geo.py": GEO,
            "checks/check_geo.py": """\
                from shapes.geo import Box, area


                def check_area() -> None:
                    assert area(2, 3) == 6


                class CheckBox:
                    def check_volume(self) -> None:
                        assert Box(1, 1, 2).volume() == 2


                def test_area_not_a_test_here() -> None:
                    assert area(1, 1) == 1
            """,
            # Outside testpaths: pytest never runs it, so it is not evidence for anything.
            "tests/test_geo.py": "from shapes.geo import area\n\n\n"
            "def test_area():\n    assert area(1, 1) == 1\n",
        },
    )
    collection = collect_tests(root)
    assert near(root, collection, "shapes/geo.py", "area") == {"checks/check_geo.py::check_area": True}
    assert near(root, collection, "shapes/geo.py", "volume", "Box") == {
        "checks/check_geo.py::CheckBox::check_volume": True
    }


def test_parametrised_tests_are_selected_once_by_their_function(
    tmp_path: Path, collect_tests: Collect
) -> None:
    root = write(
        tmp_path,
        {
            "geo.py": GEO,
            "tests/test_area.py": """\
                import pytest

                from geo import area


                @pytest.mark.parametrize(("w", "h", "want"), [(1, 1, 1), (2, 3, 6)])
                def test_area(w: int, h: int, want: int) -> None:
                    assert area(w, h) == want
            """,
        },
    )
    collection = collect_tests(root)
    assert {test.nodeid for test in collection.tests} == {
        "tests/test_area.py::test_area[1-1-1]",
        "tests/test_area.py::test_area[2-3-6]",
    }
    assert near(root, collection, "geo.py", "area") == {"tests/test_area.py::test_area": True}


def test_tests_in_packages_beside_a_src_layout_and_beside_the_code(
    tmp_path: Path, collect_tests: Collect
) -> None:
    root = write(
        tmp_path,
        {
            "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["src"]\n',
            "src/shapes/__init__.py": "",
            "src/shapes/geo.py": GEO,
            "src/shapes/geo_test.py": "from shapes.geo import area\n\n\n"
            "def test_beside():\n    assert area(1, 2) == 2\n",
            "tests/__init__.py": "",
            "tests/unit/__init__.py": "",
            "tests/unit/test_measures.py": """\
                from shapes.geo import area


                class TestArea:
                    def test_in_package(self) -> None:
                        assert area(3, 3) == 9
            """,
        },
    )
    collection = collect_tests(root)
    assert near(root, collection, "src/shapes/geo.py", "area") == {
        "src/shapes/geo_test.py::test_beside": True,
        "tests/unit/test_measures.py::TestArea::test_in_package": True,
    }


def test_tests_reaching_the_function_through_reexports_aliases_and_modules(
    tmp_path: Path, collect_tests: Collect
) -> None:
    root = write(
        tmp_path,
        {
            "shapes/__init__.py": "from .geo import area\n",
            "shapes/geo.py": GEO,
            "tests/test_ways.py": """\
                import shapes as s
                from shapes import area as a, geo


                def test_reexport() -> None:
                    assert a(1, 1) == 1


                def test_package_alias() -> None:
                    assert s.area(2, 2) == 4


                def test_module() -> None:
                    assert geo.area(3, 3) == 9


                def test_unrelated() -> None:
                    assert geo.perimeter(1, 1) == 4
            """,
        },
    )
    collection = collect_tests(root)
    assert near(root, collection, "shapes/geo.py", "area") == {
        "tests/test_ways.py::test_reexport": True,
        "tests/test_ways.py::test_package_alias": True,
        "tests/test_ways.py::test_module": True,
    }


def test_inherited_tests_are_matched_where_they_are_defined(tmp_path: Path, collect_tests: Collect) -> None:
    root = write(
        tmp_path,
        {
            "geo.py": GEO,
            "tests/shared.py": """\
                from geo import area


                class AreaContract:
                    def test_area(self) -> None:
                        assert area(2, 5) == 10
            """,
            "tests/test_inherit.py": "from shared import AreaContract\n\n\n"
            "class TestIt(AreaContract):\n    pass\n",
        },
    )
    collection = collect_tests(root)
    assert near(root, collection, "geo.py", "area") == {"tests/test_inherit.py::TestIt::test_area": True}


@pytest.mark.installed_plugins
def test_warnings_as_errors_keep_the_fork_server(tmp_path: Path, collect_tests: Collect) -> None:
    """``filterwarnings = error`` (humanize, dateutil, wcwidth...) used to mean a fresh ``python -m pytest``
    per run (~2 s each). The fork server's only warning of its own - it cannot rewrite the asserts of the
    plugins it imported first - is filtered in its runs; both collections agree, so it serves the runs."""
    root = write(
        tmp_path,
        {
            "pyproject.toml": WARNINGS_ARE_ERRORS,
            "geo.py": GEO,
            "tests/test_geo.py": "from geo import area\n\n\ndef test_area():\n    assert area(1, 1) == 1\n",
        },
    )
    collection = collect_tests(root)
    assert collection.fresh_process == ""
    assert [test.nodeid for test in collection.tests] == ["tests/test_geo.py::test_area"]


@pytest.mark.installed_plugins
def test_a_warning_the_projects_filterwarnings_make_an_error_fails_a_candidate_in_the_fork_server(
    tmp_path: Path, verifier: Callable[..., Verifier]
) -> None:
    root = write(
        tmp_path,
        {
            "pyproject.toml": WARNINGS_ARE_ERRORS,
            "shapes/__init__.py": "",
            "shapes/geo.py": "import warnings\n\n" + GEO,
            "tests/test_geo.py": PLAIN_RUNS_TESTS,
        },
    )
    geo = root / "shapes" / "geo.py"
    checker = verifier(root)
    plan = checker.prepare(target(geo, "area"), geo.read_text(encoding="utf-8"), CancelToken())
    assert not any("fresh" in note for note in plan.notes), plan.notes
    assert checker.verify(plan, as_is(geo), CancelToken()).passed
    warns = as_is(
        geo, "return w * h", 'warnings.warn("area is deprecated", DeprecationWarning)\n    return w * h'
    )
    broken = checker.verify(plan, warns, CancelToken())
    assert not broken.passed and broken.tests_broken == ("tests/test_geo.py::test_area",)
    assert "DeprecationWarning: area is deprecated" in broken.first_error, broken.first_error


def test_a_fork_server_that_fails_falls_back_to_a_fresh_pytest(
    tmp_path: Path, make_test_runner: MakeRunner
) -> None:
    root = write(
        tmp_path,
        {
            "geo.py": GEO,
            "tests/test_geo.py": "from geo import area\n\n\ndef test_area():\n    assert area(2, 3) == 6\n",
        },
    )
    for collect_first in (True, False):
        runner, shadows, worker = make_test_runner(root)
        worker.close()  # every request to the fork server now fails
        shadow = shadows.create(Path("geo.py"), GEO)
        if collect_first:
            collection = runner.collect(shadow, CancelToken())
            assert [test.nodeid for test in collection.tests] == ["tests/test_geo.py::test_area"]
            assert collection.fresh_process.startswith("the pre-imported pytest server failed")
        run = runner.run(shadow, ["tests/test_geo.py::test_area"], None, root / "geo.py", CancelToken())
        # The project's own `python -m pytest` passes: it must never hear "the tests could not run".
        assert not run.problem
        assert [(o.nodeid, o.outcome) for o in run.outcomes] == [("tests/test_geo.py::test_area", "passed")]


@pytest.mark.parametrize("autoload", [True, False], ids=["autoload", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"])
def test_a_run_in_the_fork_server_has_the_plugins_pytest_would_load_loaded(
    tmp_path: Path, make_test_runner: MakeRunner, monkeypatch: pytest.MonkeyPatch, autoload: bool
) -> None:
    """The fork server imports the installed plugins ahead of every run, as ``python -m pytest`` loads
    them; where the environment turns their autoloading off, pytest imports none, and neither may it."""
    pytest.importorskip("xdist")
    if autoload:
        monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    else:
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    test = (
        "import sys\n\nfrom geo import area\n\n\ndef test_area():\n    assert area(2, 3) == 6\n"
        f"    assert ('xdist' in sys.modules) is {autoload}\n"
    )
    root = write(tmp_path, {"geo.py": GEO, "tests/test_geo.py": test})
    runner, shadows, _ = make_test_runner(root)
    shadow = shadows.create(Path("geo.py"), GEO)
    assert runner.collect(shadow, CancelToken()).fresh_process == ""  # the runs are the fork server's
    run = runner.run(shadow, ["tests/test_geo.py::test_area"], None, root / "geo.py", CancelToken())
    assert [(o.nodeid, o.outcome) for o in run.outcomes] == [("tests/test_geo.py::test_area", "passed")]


def test_a_property_test_draws_the_same_inputs_in_every_run(
    tmp_path: Path, make_test_runner: MakeRunner
) -> None:
    """Hypothesis draws new inputs per run unless seeded: the baseline and a candidate would then see
    different inputs, and a property test that a change leaves alone could pass on one and fail on the
    other (a false alarm; hyperlink's health check did it). Every run draws the same inputs."""
    pytest.importorskip("hypothesis")
    test = (
        "from hypothesis import Phase, given, settings, strategies as st\n\nfrom geo import area\n\n\n"
        "@settings(max_examples=2, database=None, phases=[Phase.generate], deadline=None)\n"
        "@given(st.integers(0, 2**32))\n"
        "def test_even(x):\n    assert area(x, 1) % 2 == 0  # 1 in 2 of the inputs after the first\n"
    )
    root = write(tmp_path, {"geo.py": GEO, "tests/test_geo.py": test})
    runner, shadows, _ = make_test_runner(root)
    shadow = shadows.create(Path("geo.py"), GEO)
    runner.collect(shadow, CancelToken())
    outcomes = {
        runner.run(shadow, ["tests/test_geo.py::test_even"], None, root / "geo.py", CancelToken())
        .outcomes[0]
        .outcome
        for _ in range(6)
    }
    assert len(outcomes) == 1, outcomes  # unseeded, 6 runs agree 1 time in 32


# -- what the user is told ---------------------------------------------------------------------------------


@pytest.fixture
def verifier(tmp_path: Path) -> Iterator[Callable[..., Verifier]]:
    """``verifier(root, **settings)``: a trusted Verifier; afterwards the project's files are unchanged."""
    made: list[tuple[Verifier, Path, dict[Path, bytes]]] = []

    def make(root: Path, **settings: object) -> Verifier:
        values = {"trusted": True, "test_timeout_s": 10.0, "probe_inputs": 0, **settings}
        before = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
        made.append((Verifier(root, Settings().updated(values, "test")), root, before))
        return made[-1][0]

    yield make
    for created, root, before in made:
        created.close()
        after = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
        assert after == before, "collecting or running the tests touched the project's files"


def target(path: Path, qualname: str) -> EditTarget:
    return next(t for t in function_targets(path.read_text(encoding="utf-8"), path) if t.qualname == qualname)


def as_is(path: Path, old: str = "", new: str = "") -> Candidate:
    text = path.read_text(encoding="utf-8")
    return Candidate(index=0, body="", new_text=text.replace(old, new, 1), key=old + new)


UNITTEST_PROJECT = {
    "shapes/__init__.py": "",
    "shapes/geo.py": GEO.replace('"""Shapes."""', '"""Shapes.\n\n>>> area(2, 2)\n4\n"""'),
    "tests/test_geo.py": """\
        import unittest

        from shapes.geo import Box, area


        class AreaTests(unittest.TestCase):
            def test_square(self) -> None:
                self.assertEqual(area(2, 2), 4)

            def test_box(self) -> None:
                self.assertEqual(Box(1, 2, 3).volume(), 6)
    """,
    "tests/test_broken.py": "import not_installed_anywhere\n\n\ndef test_never() -> None:\n    pass\n",
}


@pytest.mark.installed_plugins
def test_a_unittest_suite_guards_a_candidate_and_a_broken_file_is_named_not_hidden(
    tmp_path: Path, verifier: Callable[..., Verifier]
) -> None:
    root = write(tmp_path, UNITTEST_PROJECT)
    geo = root / "shapes" / "geo.py"
    checker = verifier(root)
    plan = checker.prepare(target(geo, "area"), geo.read_text(encoding="utf-8"), CancelToken())
    assert set(plan.tests_selected) == {
        "tests/test_geo.py::AreaTests::test_square",
        "tests/test_geo.py::AreaTests::test_box",  # geo.py's own test module guards the rest of it
        "shapes/geo.py::shapes.geo",  # the module docstring's doctest, as before
    }
    assert plan.direct_tests == ("tests/test_geo.py::AreaTests::test_square",)
    assert any(
        note.startswith("tests/test_broken.py could not be collected (ModuleNotFoundError: No module named")
        for note in plan.notes
    ), plan.notes
    broken = checker.verify(plan, as_is(geo, "return w * h", "return w * h + 1"), CancelToken())
    assert not broken.passed
    assert "tests/test_geo.py::AreaTests::test_square" in broken.tests_broken
    doctest = next(o for o in broken.outcomes if o.nodeid == "shapes/geo.py::shapes.geo")
    assert doctest.outcome == "failed" and "\nshapes/geo.py:" in doctest.message, doctest.message
    assert "lsp-verify-" not in doctest.message  # the shadow's path, gone by the time the user reads it
    fine = checker.verify(plan, as_is(geo), CancelToken())
    assert fine.passed and fine.evidence is Evidence.TESTS, fine.first_error


# Every warning but pytest-asyncio's own is an error.
WARNINGS_ARE_STRICT_ERRORS = (
    "[tool.pytest.ini_options]\n"
    'filterwarnings = ["error", "ignore::pytest.PytestDeprecationWarning:pytest_asyncio.*"]\n'
)

LOAD_TESTS_PROJECT = {
    "pyproject.toml": WARNINGS_ARE_STRICT_ERRORS,
    "shapes/__init__.py": "",
    "shapes/geo.py": GEO.replace(
        "return 2 * (w + h)", '"""\n    >>> perimeter(1, 2)\n    6\n    """\n    return 2 * (w + h)'
    ),
    # unittest's load_tests protocol, as isodate and idna use it: `python -m unittest` runs a class made per
    # row of a table and the package's doctests; pytest alone runs only AreaTests.
    "tests/test_table.py": """\
        import doctest
        import unittest

        import shapes.geo
        from shapes.geo import area

        ROWS = [(3, 3, 9), (4, 5, 20)]


        def make_case(w, h, expected):
            class AreaCase(unittest.TestCase):
                def test_area(self) -> None:
                    self.assertEqual(area(w, h), expected)

            return AreaCase


        class AreaTests(unittest.TestCase):
            def test_square(self) -> None:
                self.assertEqual(area(2, 2), 4)


        class RowCase(unittest.TestCase):  # idna's conformance table: an instance per row
            def __init__(self, methodName="runTest", row=None):
                super().__init__(methodName)
                self.row = row

            def runTest(self) -> None:
                if self.row:
                    self.assertEqual(area(self.row[0], self.row[1]), self.row[2])


        def load_tests(loader, tests, pattern):
            for row in ROWS:
                tests.addTests(loader.loadTestsFromTestCase(make_case(*row)))
                tests.addTest(RowCase(row=row))
            tests.addTests(doctest.DocTestSuite(shapes.geo))
            return tests
    """,
    # A load_tests that fails adds nothing: pytest alone would not have run anything more either.
    "tests/test_raises.py": """\
        def load_tests(loader, tests, pattern):
            raise RuntimeError("needs a discovery pattern")


        def test_plain() -> None:
            pass
    """,
}


def test_the_tests_a_modules_load_tests_adds_are_run_as_unittest_would(
    tmp_path: Path, collect_tests: Collect, verifier: Callable[..., Verifier]
) -> None:
    root = write(tmp_path, LOAD_TESTS_PROJECT)
    collection = collect_tests(root)
    assert sorted(test.nodeid for test in collection.tests) == [
        "tests/test_raises.py::test_plain",
        "tests/test_table.py::AreaTests::test_square",  # collected by pytest, not twice
        "tests/test_table.py::RowCase::runTest",  # pytest's own instance, without a row
        # The same instance again in `tests` (an id that repeats is run each time), then one per row.
        "tests/test_table.py::load_tests::RowCase.runTest-1",
        "tests/test_table.py::load_tests::RowCase.runTest-2",
        "tests/test_table.py::load_tests::RowCase.runTest-3",
        "tests/test_table.py::load_tests::make_case.AreaCase.test_area-1",
        "tests/test_table.py::load_tests::make_case.AreaCase.test_area-2",
        "tests/test_table.py::load_tests::shapes.geo.perimeter",
    ]
    # The tests' methods use area: near it, as any test naming it.
    assert near(root, collection, "shapes/geo.py", "area") == {
        "tests/test_table.py::AreaTests::test_square": True,
        "tests/test_table.py::RowCase::runTest": True,
        "tests/test_table.py::load_tests::RowCase.runTest-1": True,
        "tests/test_table.py::load_tests::RowCase.runTest-2": True,
        "tests/test_table.py::load_tests::RowCase.runTest-3": True,
        "tests/test_table.py::load_tests::make_case.AreaCase.test_area-1": True,
        "tests/test_table.py::load_tests::make_case.AreaCase.test_area-2": True,
    }
    geo = root / "shapes" / "geo.py"
    checker = verifier(root)
    plan = checker.prepare(target(geo, "area"), geo.read_text(encoding="utf-8"), CancelToken())
    # Right for squares only: the table's second row catches it, with unittest's own message.
    broken = checker.verify(plan, as_is(geo, "return w * h", "return w * w"), CancelToken())
    assert not broken.passed
    assert set(broken.tests_broken) == {
        "tests/test_table.py::load_tests::RowCase.runTest-3",
        "tests/test_table.py::load_tests::make_case.AreaCase.test_area-2",
    }
    failure = next(o for o in broken.outcomes if o.outcome == "failed")
    assert "AssertionError: 16 != 20" in failure.message, failure.message
    assert checker.verify(plan, as_is(geo), CancelToken()).passed
    # The package's doctests run too (as the whole suite does): a break only they catch fails.
    suite = checker.suite(geo, geo.read_text(encoding="utf-8"), CancelToken())
    assert "tests/test_table.py::load_tests::shapes.geo.perimeter" in suite
    wrong = geo.read_text(encoding="utf-8").replace("2 * (w + h)", "2 * w + h")
    run = checker.run_tests(geo, wrong, suite, CancelToken(), timeout_s=60)
    outcome = run.by_nodeid["tests/test_table.py::load_tests::shapes.geo.perimeter"]
    assert outcome.outcome == "failed" and "Expected:" in outcome.message, outcome.message


def test_the_files_unittests_discovery_finds_are_collected_unless_the_project_names_its_own(
    tmp_path: Path, collect_tests: Collect
) -> None:
    # jsonpointer's layout: its tests are `tests.py`, run by `python -m unittest`; pytest's default
    # python_files (test_*.py, *_test.py) never collects it.
    root = write(
        tmp_path / "plain",
        {
            # Warnings are errors (pluggy, typeguard): the collection itself must not warn (pytest 9
            # deprecates config.inicfg).
            "pyproject.toml": WARNINGS_ARE_STRICT_ERRORS,
            "shapes/__init__.py": "",
            "shapes/geo.py": GEO,
            "tests.py": """\
                import unittest

                from shapes.geo import area


                class AreaTests(unittest.TestCase):
                    def test_square(self) -> None:
                        self.assertEqual(area(2, 2), 4)
            """,
            # Matches unittest's pattern but is no test module (no TestCase): not imported.
            "testdata.py": "raise SystemExit('imported')\n",
            # A framework's tests that cannot be imported without its runner: nothing, as before.
            "shapes/tests_django.py": "from django.test import TestCase  # noqa\n",
            # ply's test scripts run their tests when imported (`unittest.main()` at the top level): never
            # imported; one that exits when imported adds nothing and stops nothing.
            "testlex.py": "import unittest\n\n\nclass LexTests(unittest.TestCase):\n"
            "    def test_lex(self):\n        pass\n\n\nunittest.main()\n",
            "testgui.py": "import sys\nfrom unittest import TestCase\n\nsys.exit('no display')\n",
        },
    )
    collection = collect_tests(root)
    assert [test.nodeid for test in collection.tests] == ["tests.py::AreaTests::test_square"]
    assert not collection.errors and not collection.problem
    assert near(root, collection, "shapes/geo.py", "area") == {"tests.py::AreaTests::test_square": True}
    # A project that names its test files has said what its tests are.
    named = write(
        tmp_path / "named",
        {
            "pytest.ini": "[pytest]\npython_files = check_*.py\n",
            "shapes/__init__.py": "",
            "shapes/geo.py": GEO,
            "tests.py": (root / "tests.py").read_text(encoding="utf-8"),
            "check_geo.py": "from shapes.geo import area\n\n\ndef test_area():\n    assert area(1, 1)\n",
        },
    )
    assert [test.nodeid for test in collect_tests(named).tests] == ["check_geo.py::test_area"]


ORDER_DEPENDENT_PROJECT = {
    "shapes/__init__.py": "",
    "shapes/geo.py": GEO,
    # Imported first by a whole-suite collection: from then on every warning is an error (Python-Markdown's
    # tests/test_legacy.py does this; its suite runs under unittest).
    "tests/test_a_strict.py": """\
        import warnings

        warnings.simplefilter("error")


        def test_strict() -> None:
            pass
    """,
    # `TestSuite` is unittest's, not a test class: pytest warns that it cannot collect it, which after the
    # file above is an error of this class only.
    "tests/test_b_area.py": """\
        import unittest
        from unittest import TestSuite

        from shapes.geo import area


        class AreaTests(unittest.TestCase):
            def test_square(self) -> None:
                self.assertEqual(area(2, 2), 4)
    """,
    # A warning at import: after the file above, the whole module fails to collect.
    "tests/test_c_perimeter.py": """\
        import warnings

        from shapes.geo import perimeter

        warnings.warn("old fixtures", DeprecationWarning)


        def test_perimeter() -> None:
            assert perimeter(1, 2) == 6
    """,
}


def test_a_file_that_fails_to_collect_only_after_another_one_still_guards_its_functions(
    tmp_path: Path, verifier: Callable[..., Verifier]
) -> None:
    root = write(tmp_path, ORDER_DEPENDENT_PROJECT)
    geo = root / "shapes" / "geo.py"
    checker = verifier(root)
    for name, test in (
        ("area", "tests/test_b_area.py::AreaTests::test_square"),
        ("perimeter", "tests/test_c_perimeter.py::test_perimeter"),
    ):
        # Collected on their own both files collect, as a run that names their tests does: no error.
        plan = checker.prepare(target(geo, name), geo.read_text(encoding="utf-8"), CancelToken())
        assert test in plan.direct_tests, (name, plan.tests_selected)
        notes = [n for n in plan.notes if "fails to collect in a run of the whole suite" in n]
        assert [n.split(" ", 1)[0] for n in notes] == [
            "tests/test_b_area.py::TestSuite",
            "tests/test_c_perimeter.py",
        ], plan.notes
        assert not any("could not be collected" in n for n in plan.notes), plan.notes
        assert checker.verify(plan, as_is(geo), CancelToken()).passed
        broken = checker.verify(plan, as_is(geo, "return w * h", "return w * h + 1"), CancelToken())
        assert broken.passed is (name != "area")
    broken = checker.verify(plan, as_is(geo, "return 2 * (w + h)", "return w + h"), CancelToken())
    assert not broken.passed and "tests/test_c_perimeter.py::test_perimeter" in broken.tests_broken


PLAIN_RUNS_TESTS = """\
    import sys

    import pytest

    from shapes.geo import area


    def test_area() -> None:
        assert area(2, 3) == 6


    def test_runs_in_one_process_without_tracing(pytestconfig: pytest.Config) -> None:
        assert not hasattr(pytestconfig, "workerinput")  # an xdist worker's configuration has it
        assert sys.gettrace() is None
        # __main__ is not lsp-verify's worker script, whose constants Hypothesis would draw from.
        assert "lsp_verify" not in getattr(sys.modules["__main__"], "__file__", "")
"""


@pytest.mark.installed_plugins
def test_coverage_and_xdist_in_the_projects_addopts_are_switched_off_for_its_runs(
    tmp_path: Path, verifier: Callable[..., Verifier]
) -> None:
    """A project that runs its suite with coverage and xdist (addopts), whose last run left ``.coverage`` and
    ``htmlcov/`` behind: each run is one plain process (no tracing, no workers, no ``--cov-fail-under`` on a
    subset), and the user's coverage files are not touched. Before, the read-only ``.coverage`` a shadow
    links to broke collection ("39 tests collected", exit 1), and every run traced and started workers."""
    pytest.importorskip("pytest_cov")
    pytest.importorskip("xdist")
    root = write(
        tmp_path,
        {
            "pyproject.toml": """\
                [tool.pytest.ini_options]
                addopts = "--cov=shapes --cov-append --cov-report=html --cov-fail-under=100 -n 2"
            """,
            "shapes/__init__.py": "",
            "shapes/geo.py": GEO,
            "tests/test_geo.py": PLAIN_RUNS_TESTS,
            "htmlcov/index.html": "<html></html>\n",
        },
    )
    (root / ".coverage").write_bytes(b"SQLite format 3\x00 left by the user's last run")
    geo = root / "shapes" / "geo.py"
    checker = verifier(root)
    plan = checker.prepare(target(geo, "area"), geo.read_text(encoding="utf-8"), CancelToken())
    assert plan.direct_tests == ("tests/test_geo.py::test_area",), plan.notes
    assert "tests/test_geo.py::test_runs_in_one_process_without_tracing" in plan.tests_selected

    kept = checker.verify(plan, as_is(geo), CancelToken())
    assert kept.passed and kept.evidence is Evidence.TESTS, kept.stages
    broken = checker.verify(plan, as_is(geo, "return w * h", "return w + h"), CancelToken())
    assert not broken.passed and broken.tests_broken == ("tests/test_geo.py::test_area",)
    everything = checker.run_tests(
        geo, geo.read_text(encoding="utf-8"), checker.suite(geo, GEO, CancelToken()), CancelToken()
    )
    assert sorted(o.outcome for o in everything.outcomes) == ["passed", "passed"], everything.log


def test_a_conftest_hook_pytest_refuses_is_an_error_not_no_tests(
    tmp_path: Path, verifier: Callable[..., Verifier]
) -> None:
    """pluggy refuses a conftest hook with an argument pytest does not have (boltons' ``pytest_ignore_collect
    (path, config)`` under pytest 9): pytest exits 1 with a traceback and collects nothing. Read as "no
    tests", every function was left to its types - a breaking change passed ``check`` - while its tests
    exist; it is an error that says what pytest refused."""
    root = write(
        tmp_path,
        {
            "shapes/__init__.py": "",
            "shapes/geo.py": GEO,
            "tests/conftest.py": "def pytest_collection_modifyitems(items, not_a_hook_argument):\n    pass\n",
            "tests/test_geo.py": PLAIN_RUNS_TESTS,
        },
    )
    geo = root / "shapes" / "geo.py"
    with pytest.raises(VerifyError) as raised:
        verifier(root).prepare(target(geo, "area"), GEO, CancelToken())
    message = str(raised.value)
    assert "the tests cannot be collected: pluggy._manager.PluginValidationError:" in message, message
    assert "{'not_a_hook_argument'} are declared in the hookimpl" in message, message


@pytest.mark.parametrize(
    ("files", "said", "advice"),
    [
        pytest.param(
            {
                "pyproject.toml": """\
                    [tool.pytest.ini_options]
                    filterwarnings = ["error", "ignore::not_installed_pkg.SomeWarning"]
                """
            },
            "pytest.PytestConfigWarning: Failed to import filter module 'not_installed_pkg'",
            "`not_installed_pkg` is not installed in the environment that runs the tests",
            id="filterwarnings-names-a-missing-package",
        ),
        pytest.param(
            {
                "pyproject.toml": WARNINGS_ARE_ERRORS,
                "tests/conftest.py": """\
                    import pytest


                    def pytest_collection_modifyitems(items):
                        for item in items:
                            item.add_marker(pytest.mark.registered_by_no_plugin)
                """,
            },
            "pytest.PytestUnknownMarkWarning: Unknown pytest.mark.registered_by_no_plugin",
            "Fix it so that `python -m pytest --collect-only` succeeds.",
            id="internal-error-in-a-conftest-hook",
        ),
        pytest.param(
            {
                "tests/test_time.py": """\
                    import not_installed_freezer

                    from shapes.geo import area


                    def test_area_in_time() -> None:
                        assert area(1, 1) == 1
                """
            },
            "tests/test_time.py): ModuleNotFoundError: No module named 'not_installed_freezer'",
            "`not_installed_freezer` is not installed in the environment that runs the tests",
            id="a-test-dependency-is-missing",
        ),
    ],
)
def test_a_collection_that_fails_says_pytests_own_reason_and_what_is_missing(
    tmp_path: Path, verifier: Callable[..., Verifier], files: dict[str, str], said: str, advice: str
) -> None:
    """What pytest said, not a line of our own output (the result file, unclosed at exit, was a
    ResourceWarning - humanize's filterwarnings made it the last error in the log) or of its summary
    ("1105 tests collected, 2 errors" - dateutil's INTERNALERROR); and, when something is not installed,
    that the environment lacks it rather than "fix the test files"."""
    root = write(
        tmp_path,
        {"shapes/__init__.py": "", "shapes/geo.py": GEO, "tests/test_geo.py": PLAIN_RUNS_TESTS, **files},
    )
    geo = root / "shapes" / "geo.py"
    with pytest.raises(VerifyError) as raised:
        verifier(root).prepare(target(geo, "area"), GEO, CancelToken())
    message = str(raised.value)
    assert said in message and advice in message, message
    assert "ResourceWarning" not in message and "collected" not in message.split(said)[1], message


@pytest.mark.parametrize("sandbox", ["auto", "none"])
def test_a_monorepo_member_whose_tests_reach_a_sibling_by_a_relative_path(
    tmp_path: Path, verifier: Callable[..., Verifier], sandbox: str
) -> None:
    # pytest's `pythonpath = ["../a/src"]` led nowhere in a shadow of packages/b alone: every function of b
    # was an error saying "`alib` is not installed ...: install the project's test dependencies". A linked
    # shadow (bubblewrap) now shows the repository around the member, as the user's tree has it; a copied
    # one (no bubblewrap: a link would let a test write into the sibling) still cannot, and says so plainly.
    (tmp_path / ".git").mkdir()
    write(
        tmp_path,
        {
            "packages/a/pyproject.toml": "[project]\nname = 'a'\nversion = '0'\n",
            "packages/a/src/alib/__init__.py": "def double(x: int) -> int:\n    return x * 2\n",
            "packages/b/pyproject.toml": "[tool.pytest.ini_options]\npythonpath = ['../a/src']\n",
            "packages/b/shapes/__init__.py": "",
            "packages/b/shapes/geo.py": GEO,
            "packages/b/tests/test_geo.py": "import alib\n\n\ndef test_alib() -> None:\n"
            "    assert alib.double(2) == 4\n",
        },
    )
    root = tmp_path / "packages" / "b"
    checked = verifier(root, sandbox=sandbox)
    if checked.isolation == "bwrap":
        plan = checked.prepare(target(root / "shapes" / "geo.py", "area"), GEO, CancelToken())
        assert {o.nodeid: o.outcome for o in plan.baseline} == {"tests/test_geo.py::test_alib": "passed"}
        return
    with pytest.raises(VerifyError) as raised:
        checked.prepare(target(root / "shapes" / "geo.py", "area"), GEO, CancelToken())
    message = str(raised.value)
    assert "No module named 'alib'" in message, message
    assert "the repository has it beside this project, in ../a/src/alib" in message, message
    assert "-m pip install -e ../a`" in message, message


def test_a_repository_at_the_home_directory_is_never_shown_around_a_project(
    tmp_path: Path, verifier: Callable[..., Verifier], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dotfiles repository at ~ holds every project below it: shown around one, a test could read ~/.ssh,
    # which bubblewrap hides. The shadow then mirrors the project alone.
    (tmp_path / ".git").mkdir()
    write(tmp_path, {"proj/pyproject.toml": "[project]\nname = 'p'\n", "proj/shapes/geo.py": GEO})
    root = tmp_path / "proj"
    around = verifier(root)
    # Only where bubblewrap keeps the links read-only is anything shown around the project.
    assert around._shadows.top == (tmp_path.resolve() if around.isolation == "bwrap" else None)

    monkeypatch.setenv("HOME", str(tmp_path))

    assert verifier(root)._shadows.top is None


@pytest.mark.installed_plugins
def test_a_plugin_option_in_addopts_that_no_installed_plugin_knows_names_the_plugin(
    tmp_path: Path, verifier: Callable[..., Verifier]
) -> None:
    try:
        import pytest_rerunfailures  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pytest-rerunfailures is installed here")
    root = write(
        tmp_path,
        {
            "setup.cfg": "[tool:pytest]\naddopts = --reruns=2 -q\n",
            "shapes/__init__.py": "",
            "shapes/geo.py": GEO,
            "tests/test_geo.py": PLAIN_RUNS_TESTS,
        },
    )
    geo = root / "shapes" / "geo.py"
    with pytest.raises(VerifyError) as raised:
        verifier(root).prepare(target(geo, "area"), GEO, CancelToken())
    message = str(raised.value)
    # Not argparse's usage line ("usage: pytest.main() [options] ..."): what it could not parse, and why.
    assert "setup.cfg: unrecognized arguments: --reruns=2" in message, message
    assert "The project uses options of a plugin (pytest-rerunfailures) that is not installed" in message, (
        message
    )
    assert sys.executable in message and "usage:" not in message


def test_a_module_whose_doctests_cannot_import_is_checked_by_its_tests_and_says_why(
    tmp_path: Path, verifier: Callable[..., Verifier]
) -> None:
    """A script with doctests that imports what the test environment lacks (wcwidth's bin/update-tables.py
    needs jinja2): its doctests are lsp-verify's addition, not the project's tests, so they are left out
    with a note - the tests that name its functions still run - instead of refusing every function in it."""
    script = '''\
        """Regenerates the tables.

        >>> double(2)
        4
        """
        import os.path

        if os.path.exists("."):  # imported only where the tool runs
            import not_installed_here  # noqa: F401


        def double(n: int) -> int:
            return 2 * n


        def triple(n: int) -> int:
            return 3 * n
    '''
    root = write(
        tmp_path,
        {
            "tools/gen.py": script,
            "tests/test_gen.py": """\
                import sys
                import types

                import pytest


                def test_triple(monkeypatch: pytest.MonkeyPatch) -> None:
                    # What the tool needs, faked for this test only (the doctests are collected before).
                    monkeypatch.setitem(sys.modules, "not_installed_here", types.ModuleType("fake"))
                    monkeypatch.syspath_prepend("tools")
                    from gen import triple

                    assert triple(2) == 6
            """,
        },
    )
    gen = root / "tools" / "gen.py"
    checker = verifier(root)
    text = gen.read_text(encoding="utf-8")
    for name, evidence in (("double", Evidence.TYPES_ONLY), ("triple", Evidence.TESTS)):
        plan = checker.prepare(target(gen, name), text, CancelToken())
        note = next((n for n in plan.notes if n.startswith("the doctests of tools/gen.py were not run")), "")
        assert "No module named 'not_installed_here'" in note and sys.executable in note, note
        assert "(ModuleNotFoundError: No module named 'not_installed_here')" in note, note
        assert plan.doctest_file is None and plan.tests_selected == ("tests/test_gen.py::test_triple",)
        kept = checker.verify(plan, as_is(gen), CancelToken())
        assert kept.passed and kept.evidence is evidence, (name, kept.stages)
    broken = checker.verify(plan, as_is(gen, "return 3 * n", "return 3 + n"), CancelToken())
    assert not broken.passed and broken.tests_broken == ("tests/test_gen.py::test_triple",)


@pytest.mark.parametrize("other_tests", [False, True], ids=["only-file", "one-of-two"])
def test_tests_that_cannot_import_the_workspaces_own_package_say_to_install_it(
    tmp_path: Path, verifier: Callable[..., Verifier], other_tests: bool
) -> None:
    """A `src/` layout not installed where lsp-verify runs: the error says so, not "fix the tests"."""
    files = {
        "src/shapes/__init__.py": "",
        "src/shapes/geo.py": GEO,
        "tests/test_geo.py": "from shapes.geo import area\n\n\ndef test_area() -> None:\n"
        "    assert area(2, 2) == 4\n",
    }
    if other_tests:  # then only the file near the function fails, not the whole collection
        files["tests/test_smoke.py"] = "def test_smoke() -> None:\n    pass\n"
    root = write(tmp_path, files)
    geo = root / "src" / "shapes" / "geo.py"
    with pytest.raises(VerifyError) as raised:
        verifier(root).prepare(target(geo, "area"), geo.read_text(encoding="utf-8"), CancelToken())
    message = str(raised.value)
    assert "No module named 'shapes'" in message, message
    assert "could not import `shapes`, though this workspace has it in src/shapes" in message, message
    assert f"`{sys.executable} -m pip install -e .`" in message and "Fix the test files" not in message


def test_the_install_advice_names_where_the_package_came_from_and_only_for_the_workspaces_own(
    tmp_path: Path,
) -> None:
    (tmp_path / "src" / "attr").mkdir(parents=True)
    (tmp_path / "src" / "attr" / "__init__.py").write_text("")
    (tmp_path / "tool.py").write_text("")
    elsewhere = "/venv/lib/python3.11/site-packages/attr/_compat.py"
    advice = installed_elsewhere(
        f"ImportError: cannot import name 'X' from 'attr._compat' ({elsewhere})", tmp_path
    )
    assert advice is not None
    assert (
        "imported `attr` from /venv/lib/python3.11/site-packages/attr, not from this workspace's src/attr"
        in advice
    )
    inside = tmp_path / "src" / "attr" / "_compat.py"
    assert installed_elsewhere(f"cannot import name 'X' from 'attr._compat' ({inside})", tmp_path) is None
    relative = "cannot import name 'X' from 'attr' (src/attr/__init__.py)"  # the shadow's, made relative
    assert installed_elsewhere(relative, tmp_path) is None
    # The workspace's own .venv, seen through the shadow and made relative: an installed copy all the same.
    own_venv = "cannot import name 'X' from 'attr' (.venv/lib/python3.11/site-packages/attr/__init__.py)"
    advice = installed_elsewhere(own_venv, tmp_path)
    assert advice is not None and "from .venv/lib/python3.11/site-packages/attr, not from" in advice
    assert installed_elsewhere("ModuleNotFoundError: No module named 'numpy'", tmp_path) is None
    assert installed_elsewhere("ModuleNotFoundError: No module named 'tool'", tmp_path) is not None
    assert installed_elsewhere("ModuleNotFoundError: No module named 'attr.filters'", tmp_path) is None, (
        "the workspace's package has no such module (a change deleted it): installing would not help"
    )
    (tmp_path / "src" / "attr" / "filters.py").write_text("")
    assert installed_elsewhere("ModuleNotFoundError: No module named 'attr.filters'", tmp_path) is not None
    assert installed_elsewhere("AssertionError: 1 != 2", tmp_path) is None


def test_a_function_no_test_calls_is_types_only_and_says_what_still_passed(
    tmp_path: Path, verifier: Callable[..., Verifier]
) -> None:
    root = write(
        tmp_path,
        {
            "text.py": "def slugify(s: str) -> str:\n    return s.lower()\n\n\ndef shout(s: str) -> str:\n"
            "    return s.upper()\n",
            "tests/test_text.py": """\
                import unittest

                from text import shout


                class ShoutTests(unittest.TestCase):
                    def test_shout(self) -> None:
                        self.assertEqual(shout("a"), "A")

                    def test_empty(self) -> None:
                        self.assertEqual(shout(""), "")
            """,
        },
    )
    path = root / "text.py"
    plan = verifier(root).prepare(target(path, "slugify"), path.read_text(encoding="utf-8"), CancelToken())
    assert "no test calls `slugify`; 2 tests of tests/test_text.py run as a guard: types only" in plan.notes
    result = verifier(root).verify(plan, as_is(path), CancelToken())
    assert result.passed and result.evidence is Evidence.TYPES_ONLY
    # and every report says so, rather than "no nearby tests"
    assert result.evidence_parts[-1] == "types only (no test names it; guard tests: 2/2 passed)"
    assert result.stages[-1].detail == "no test calls `slugify`; 2 tests of tests/test_text.py still pass"
    strict = verifier(root, require_tests=True)
    refused = strict.verify(
        strict.prepare(plan.target, plan.original_text, CancelToken()), as_is(path), CancelToken()
    )
    assert not refused.passed
    assert refused.first_error == (
        "tests: no test calls `slugify`; 2 tests of tests/test_text.py still pass, and require_tests is set"
    )


PLUGIN_PROJECT = {
    "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p shapes_plugin"\npythonpath = ["."]\n',
    "shapes_plugin.py": """\
        import pytest


        @pytest.fixture
        def side() -> int:
            return 3
    """,
    "geo.py": GEO,
    "tests/test_geo.py": "from geo import area\n\n\ndef test_area(side: int) -> None:\n"
    "    assert area(side, side) == 9\n",
}


def test_a_plugin_loaded_with_dash_p_gets_a_fresh_pytest_per_run(
    tmp_path: Path, verifier: Callable[..., Verifier]
) -> None:
    root = write(tmp_path, PLUGIN_PROJECT)
    path = root / "geo.py"
    checker = verifier(root)
    plan = checker.prepare(target(path, "area"), path.read_text(encoding="utf-8"), CancelToken())
    assert any(note.startswith("tests run in a fresh `python -m pytest` process") for note in plan.notes)
    assert checker.verify(plan, as_is(path), CancelToken()).passed
    broken = checker.verify(plan, as_is(path, "return w * h", "return w - h"), CancelToken())
    assert not broken.passed and "tests/test_geo.py::test_area failed" in (broken.first_error or "")


def test_doctor_says_how_the_projects_tests_run(tmp_path: Path) -> None:
    root = write(tmp_path / "plugin", PLUGIN_PROJECT)
    plain = write(
        tmp_path / "plain", {"geo.py": GEO, "tests/test_geo.py": PLUGIN_PROJECT["tests/test_geo.py"]}
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "server")}

    def doctor(project: Path) -> str:
        argv = [sys.executable, "-m", "lsp_verify", "doctor", "--project", str(project)]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
        return next(line for line in proc.stdout.splitlines() if line.startswith("test runs"))

    assert doctor(root).endswith(
        f"a fresh `python -m pytest` process per run (1 test in 1 file; with {sys.executable} (lsp-verify's "
        "own)): the project's pytest addopts load a plugin with -p, which must be imported before the others"
    )
    assert "pre-imported pytest fork server" in doctor(plain)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"conftest.py": "1 / 0\n"},
            "the tests cannot be collected: conftest.py raised at import: "
            "ZeroDivisionError: division by zero.",
        ),
        (
            {"pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p pytest_not_installed"\n'},
            'the tests cannot be collected: pyproject.toml: Error importing plugin "pytest_not_installed": '
            "No module named 'pytest_not_installed'.",
        ),
        (
            {"tests/test_slow.py": "import time\n\ntime.sleep(60)\n"},
            "the tests cannot be collected: collecting tests/test_slow.py did not finish within 15 s "
            "(killed).",
        ),
        (
            {
                "tests/test_geo.py": "from geo import area, nothing_here\n",
                "tests/test_more.py": "def test_more() -> None:\n    pass\n",  # collects fine
            },
            "the tests near area cannot be collected (tests/test_geo.py): ImportError: cannot import name "
            "'nothing_here' from 'geo'",
        ),
        (
            {
                "tests/sub/conftest.py": "1 / 0\n",
                "tests/sub/test_sub.py": "def test_sub() -> None:\n    pass\n",
            },
            "the tests near area cannot be collected (tests/sub/conftest.py): "
            "ZeroDivisionError: division by zero",
        ),
    ],
    ids=[
        "conftest-raises",
        "plugin-missing",
        "collection-hangs",
        "nearby-file-broken",
        "sub-conftest-raises",
    ],
)
def test_a_suite_that_cannot_be_collected_gets_one_line_naming_the_file(
    tmp_path: Path, verifier: Callable[..., Verifier], files: dict[str, str], message: str
) -> None:
    root = write(
        tmp_path,
        {
            "geo.py": GEO,
            "tests/test_geo.py": "from geo import area\n\n\n"
            "def test_area() -> None:\n    assert area(1, 1) == 1\n",
            **files,
        },
    )
    path = root / "geo.py"
    with pytest.raises(VerifyError) as raised:
        verifier(root, test_timeout_s=2.0).prepare(target(path, "area"), path.read_text(), CancelToken())
    assert str(raised.value).startswith(message), str(raised.value)
    assert "\n" not in str(raised.value) and "Traceback" not in str(raised.value)
