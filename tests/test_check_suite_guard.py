"""``check`` runs the whole test suite on a change: a test that reaches a changed function without naming it
(a fixture, a re-export under another name, another function that calls it) still fails the change.

Real git repositories, real pytest and mypy, the real ``run_check``; nothing is faked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import gitrepo
from lsp_verify.check import CheckOptions, run_check
from lsp_verify.config import Settings, project_settings
from lsp_verify.report import FunctionReport, RunReport

AREA = "def area(w: int, h: int) -> int:\n    return w * h\n"


def make_repo(root: Path, files: dict[str, str]) -> Path:
    return gitrepo.make_repo(root, {"geo/__init__.py": "", **files})


def check(repo: Path, *, guard_s: float = 300.0) -> RunReport:
    """``lsp-verify check geo/shapes.py`` (every function of the file), trusted as the CLI is."""

    def settings_for(root: Path) -> Settings:
        settings = project_settings(root, trusted=True)
        settings.trusted = True
        settings.suite_guard_timeout_s = guard_s
        return settings

    return run_check(CheckOptions(paths=(repo / "geo/shapes.py",)), settings_for=settings_for, cwd=repo)


def statuses(report: RunReport) -> dict[str, str]:
    return {f.qualname: f.status for f in report.functions}


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.mark.usefixtures("cache")
def test_a_test_given_the_function_by_a_fixture_fails_the_change(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "geo/shapes.py": AREA,
            "tests/conftest.py": "import pytest\nfrom geo.shapes import area\n\n\n@pytest.fixture\n"
            "def calc():\n    return area\n",
            "tests/test_calc.py": "def test_calc(calc):\n    assert calc(2, 3) == 6\n",
        },
    )
    (repo / "geo/shapes.py").write_text(AREA.replace("w * h", "w + h"), encoding="utf-8")

    report = check(repo)

    (area,) = report.functions
    assert report.exit_code == 1
    assert area.status == "fail"
    assert area.message.startswith(
        "tests: tests/test_calc.py::test_calc failed: it passes with area as HEAD has it "
        "(found by the whole test suite"
    )
    assert area.tests_failed == ("tests/test_calc.py::test_calc",)
    assert "the whole test suite (1 test) also ran on the change: 1 failing" in report.notes[-1]
    # Without the guard the same change passes: no test names area.
    assert check(repo, guard_s=0).exit_code == 0


@pytest.mark.usefixtures("cache")
def test_a_function_that_fails_its_own_tests_also_lists_the_unnamed_ones_it_breaks(tmp_path: Path) -> None:
    # Its own test's failure stays the reason; the fixture's test it breaks too was left out of the report.
    repo = make_repo(
        tmp_path / "repo",
        {
            "geo/shapes.py": AREA,
            "tests/test_shapes.py": (
                "from geo.shapes import area\n\n\ndef test_area():\n    assert area(2, 3) == 6\n"
            ),
            "tests/conftest.py": "import pytest\nfrom geo.shapes import area\n\n\n@pytest.fixture\n"
            "def calc():\n    return area\n",
            "tests/test_calc.py": "def test_calc(calc):\n    assert calc(2, 3) == 6\n",
        },
    )
    (repo / "geo/shapes.py").write_text(AREA.replace("w * h", "w + h"), encoding="utf-8")

    (area,) = check(repo).functions

    assert area.status == "fail"
    assert area.message == "tests: tests/test_shapes.py::test_area failed: assert 5 == 6", area.message
    assert area.tests_failed == ("tests/test_shapes.py::test_area", "tests/test_calc.py::test_calc")
    assert "test_area" in area.details[0] and "test_calc" in area.details[-1], area.details


@pytest.mark.usefixtures("cache")
def test_a_test_of_a_caller_charges_the_callee_that_changed_not_the_caller(tmp_path: Path) -> None:
    shapes = AREA + "\n\ndef volume(w: int, h: int, d: int) -> int:\n    return area(w, h) * d\n"
    repo = make_repo(
        tmp_path / "repo",
        {
            "geo/shapes.py": shapes,
            "tests/test_volume.py": "from geo.shapes import volume\n\n\ndef test_volume():\n"
            "    assert volume(2, 3, 4) == 24\n",
        },
    )
    (repo / "geo/shapes.py").write_text(shapes.replace("w * h", "w + h"), encoding="utf-8")

    report = check(repo)

    # volume did not change (its own check forgives the failure: its baseline holds the new area).
    assert statuses(report) == {"area": "fail", "volume": "pass"}
    assert report.exit_code == 1


@pytest.mark.usefixtures("cache")
def test_a_re_export_under_another_name_is_reached(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "geo/__init__.py": "from .shapes import area as surface\n",
            "geo/shapes.py": AREA,
            "tests/test_api.py": "import geo\n\n\ndef test_surface():\n    assert geo.surface(2, 3) == 6\n",
        },
    )
    (repo / "geo/shapes.py").write_text(AREA.replace("w * h", "w + h"), encoding="utf-8")

    assert statuses(check(repo)) == {"area": "fail"}


@pytest.mark.usefixtures("cache")
def test_a_change_outside_any_function_fails_the_file(tmp_path: Path) -> None:
    shapes = "SCALE = 1\n\n\n" + AREA.replace("w * h", "w * h * SCALE")
    repo = make_repo(
        tmp_path / "repo",
        {
            "geo/shapes.py": shapes,
            "tests/test_calc.py": "from geo import shapes as s\n\n\ndef test_it():\n"
            "    assert s.area(2, 3) == 6\n",
        },
    )
    (repo / "geo/shapes.py").write_text(shapes.replace("SCALE = 1", "SCALE = 2"), encoding="utf-8")

    report = check(repo)

    assert report.exit_code == 1
    module = next(f for f in report.functions if f.qualname == "<module>")
    assert module.file == "geo/shapes.py"
    assert module.message.startswith(
        "tests: tests/test_calc.py::test_it failed: it passes with this file as HEAD"
    )


@pytest.mark.usefixtures("cache")
def test_a_test_that_failed_before_the_change_too_is_not_charged(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "geo/shapes.py": AREA + "\n\ndef perimeter(w: int, h: int) -> int:\n    return w + h\n",
            "tests/conftest.py": "import pytest\nfrom geo.shapes import perimeter\n\n\n@pytest.fixture\n"
            "def calc():\n    return perimeter\n",
            "tests/test_calc.py": "def test_calc(calc):\n    assert calc(2, 3) == 10\n",  # fails at HEAD
        },
    )
    (repo / "geo/shapes.py").write_text(
        (AREA + "\n\ndef perimeter(w: int, h: int) -> int:\n    return w + h\n").replace("w * h", "h * w"),
        encoding="utf-8",
    )

    report = check(repo)

    assert report.exit_code == 0, report.functions
    assert statuses(report) == {"area": "pass", "perimeter": "pass"}


REGISTRY = "REG: dict[str, int] = {}\n\n\ndef register(name: str) -> None:\n    REG[name] = len(REG)\n"


@pytest.mark.usefixtures("cache")
@pytest.mark.parametrize("before", ["passing", "failing"])
def test_a_test_that_needs_the_tests_before_it_is_judged_in_the_suites_order(
    tmp_path: Path, before: str
) -> None:
    # test_seen passes only after test_reg has filled the registry. The change broke it in the suite, but
    # run alone at HEAD to find the change that broke it, it failed there too: "failing before the change",
    # and the change passed. In the suite's order at HEAD it passes - unless it fails there as well.
    expected = "{'a': 0}" if before == "passing" else "{'a': 7}"
    seen = f"from geo.shapes import REG\n\n\ndef test_seen():\n    assert REG == {expected}\n"
    repo = make_repo(
        tmp_path / "repo",
        {
            "geo/shapes.py": REGISTRY,
            "tests/test_1.py": "from geo.shapes import register\n\n\ndef test_reg():\n    register('a')\n",
            "tests/test_2.py": seen,
        },
    )
    (repo / "geo/shapes.py").write_text(REGISTRY.replace("len(REG)", "len(REG) + 1"), encoding="utf-8")

    report = check(repo)

    if before == "failing":
        assert report.exit_code == 0, report.functions
        assert statuses(report) == {"register": "pass"}
        return
    assert report.exit_code == 1, report.functions
    assert statuses(report) == {"register": "pass", "<module>": "fail"}
    assert report.functions[-1].message == (
        "tests: tests/test_2.py::test_seen failed: it passes in the whole test suite with this file as HEAD "
        "has it (alone it fails there too: it depends on the tests run before it)"
    )


@pytest.mark.usefixtures("cache")
def test_parametrised_cases_whose_ids_differ_from_run_to_run_still_fail_the_change(tmp_path: Path) -> None:
    """isodate draws its cases' ids from a set: each process names them differently, so a run asked for the
    ids one collection gave found nothing ("not found", exit 4) and the whole suite "ran" without a failure:
    a change its own suite fails was let through. The suite is run by test function, and a case is matched
    to its function where its id is not found again."""
    repo = make_repo(
        tmp_path / "repo",
        {
            "geo/shapes.py": AREA,
            "tests/conftest.py": "import pytest\nfrom geo.shapes import area\n\n\n@pytest.fixture\n"
            "def calc():\n    return area\n",
            "tests/test_calc.py": "import time\n\nimport pytest\n\n\n"
            "@pytest.mark.parametrize('w', [2, 3], ids=lambda w: f'{w}-{time.monotonic_ns()}')\n"
            "def test_calc(calc, w):\n    assert calc(w, 3) == w * 3\n",
        },
    )
    (repo / "geo/shapes.py").write_text(AREA.replace("w * h", "w + h"), encoding="utf-8")

    report = check(repo)

    (area,) = report.functions
    assert report.exit_code == 1, report.notes
    assert area.status == "fail"
    assert "(found by the whole test suite" in area.message, area.message
    assert area.tests_failed[0].startswith("tests/test_calc.py::test_calc[2-"), area.tests_failed
    assert "the whole test suite (2 tests) also ran on the change: 2 failing" in report.notes[-1]


SHAPES = AREA + "\n\ndef perimeter(w: int, h: int) -> int:\n    return 2 * (w + h)\n"
BY_FIXTURE = {
    "geo/shapes.py": SHAPES,
    "tests/conftest.py": "import pytest\nfrom geo import shapes\n\n\n@pytest.fixture\ndef calc():\n"
    "    return shapes.area\n\n\n@pytest.fixture\ndef per():\n    return shapes.perimeter\n",
    "tests/test_a.py": "def test_calc(calc):\n    assert calc(2, 3) == 6\n",
    "tests/test_b.py": "def test_per(per):\n    assert per(2, 3) == 10\n",
}


def check_quickly(repo: Path, *, test_s: float = 3.0) -> RunReport:
    """``check`` with short limits: the whole suite may take 8 s, one test ``test_s``."""

    def settings_for(root: Path) -> Settings:
        settings = project_settings(root, trusted=True)
        settings.trusted = True
        settings.suite_guard_timeout_s = 8.0
        settings.test_timeout_s = test_s
        return settings

    return run_check(CheckOptions(paths=(repo / "geo/shapes.py",)), settings_for=settings_for, cwd=repo)


def break_both(repo: Path, area_body: str) -> FunctionReport:
    """Change ``area``'s body to ``area_body`` and break ``perimeter`` (its test runs after ``area``'s),
    check quickly, and return ``area``'s report once both are known to fail."""
    changed = SHAPES.replace("    return w * h", area_body)
    (repo / "geo/shapes.py").write_text(changed.replace("2 * (w + h)", "w + h"), encoding="utf-8")
    report = check_quickly(repo)
    assert report.exit_code == 1, (report.functions, report.notes)
    assert statuses(report) == {"area": "fail", "perimeter": "fail"}, report.notes
    area = next(f for f in report.functions if f.qualname == "area")
    assert area.tests_failed == ("tests/test_a.py::test_calc",)
    assert any("stopped in tests/test_a.py::test_calc" in note for note in report.notes), report.notes
    return area


@pytest.mark.usefixtures("cache")
def test_a_change_that_makes_an_unnamed_test_hang_fails_and_the_rest_of_the_suite_still_runs(
    tmp_path: Path,
) -> None:
    """mistune: a change made one test of the suite loop without end; the suite run was cut at its time
    limit and the change passed, "the whole test suite was not run". The test that was running when the
    suite was cut is run again on its own: hanging with the change and passing without it, it fails the
    change; and the tests after it still run."""
    repo = make_repo(tmp_path / "repo", BY_FIXTURE)

    area = break_both(repo, "    while w > 0:\n        pass\n    return w * h")

    assert area.message.startswith("tests: tests/test_a.py::test_calc timed out: it passes with area"), area


@pytest.mark.usefixtures("cache")
def test_a_change_that_crashes_the_test_process_fails_and_the_rest_of_the_suite_still_runs(
    tmp_path: Path,
) -> None:
    """mistune: a change made the suite's test process run out of memory (exit 70) after a test's call had
    passed; the change passed, "the whole test suite was not run". A crash (here a segmentation fault, in a
    fixture's teardown) is charged to the test it happened in when that test passes without the change."""
    in_teardown = "@pytest.fixture\ndef calc():\n    yield shapes.area\n    assert shapes.area(2, 3) == 6\n"
    conftest = BY_FIXTURE["tests/conftest.py"].replace(
        "@pytest.fixture\ndef calc():\n    return shapes.area\n", in_teardown
    )
    assert conftest != BY_FIXTURE["tests/conftest.py"]
    repo = make_repo(
        tmp_path / "repo",
        {
            **BY_FIXTURE,
            "tests/conftest.py": conftest,
            "tests/test_a.py": "def test_calc(calc):\n    assert calc(3, 3) == 9\n",
        },
    )

    area = break_both(
        repo, "    if w == 2:\n        import ctypes\n\n        ctypes.string_at(0)\n    return w * h"
    )

    assert "crashed while this test ran (exit -11, SIGSEGV)" in area.details[0], area.details


@pytest.mark.usefixtures("cache")
@pytest.mark.parametrize("status", [1, 0])
def test_a_change_that_ends_the_test_process_with_a_status_of_its_own_fails(
    tmp_path: Path, status: int
) -> None:
    """A change that ends the process inside a test (``os._exit(1)``, a library's ``exit()``): plain pytest's
    run ends there, the tests after it never run. The suite's run had the test started and never finished,
    with exit 1 (or 0): no outcome, nothing failing, and the change passed."""
    repo = make_repo(tmp_path / "repo", BY_FIXTURE)

    area = break_both(
        repo, f"    if w == 2:\n        import os\n\n        os._exit({status})\n    return w * h"
    )

    assert f"the test run ended while this test ran (exit {status})" in area.details[0], area.details


@pytest.mark.usefixtures("cache")
@pytest.mark.parametrize("addopts", ["-x", "--maxfail=1", "--sw"])
def test_a_project_that_stops_its_runs_at_the_first_failure_still_has_every_test_run(
    tmp_path: Path, addopts: str
) -> None:
    """A project's ``addopts = -x`` (or ``--maxfail``, ``--stepwise``) stopped every run at its first
    failing test: a test that failed before the change too ended the whole suite's run, and a test after it
    that the change breaks never ran - the change passed. Every run goes on to the end."""
    repo = make_repo(
        tmp_path / "repo",
        {
            **BY_FIXTURE,
            "pytest.ini": f"[pytest]\naddopts = {addopts}\n",
            "tests/test_0.py": "def test_known_bug():\n    assert False\n",  # fails at HEAD
        },
    )
    (repo / "geo/shapes.py").write_text(SHAPES.replace("2 * (w + h)", "w + h"), encoding="utf-8")

    report = check(repo)

    assert report.exit_code == 1, (report.functions, report.notes)
    assert statuses(report) == {"area": "pass", "perimeter": "fail"}


@pytest.mark.usefixtures("cache")
def test_a_suite_that_is_only_slow_is_cut_at_its_limit_once(tmp_path: Path) -> None:
    """A suite longer than ``suite_guard_timeout_s`` is not a hang: the test running at the limit finishes
    on its own, so the rest is left unrun (said in the notes) rather than run again and again."""
    slow = "import time\n\n\ndef test_slow_{n}(calc):\n    time.sleep(5)\n    assert calc(2, 3) == 6\n"
    repo = make_repo(
        tmp_path / "repo",
        {**BY_FIXTURE, "tests/test_a.py": slow.format(n=1), "tests/test_a2.py": slow.format(n=2)},
    )
    (repo / "geo/shapes.py").write_text(SHAPES.replace("2 * (w + h)", "w + h"), encoding="utf-8")

    report = check_quickly(repo, test_s=20.0)

    assert not any("stopped in" in note for note in report.notes), report.notes
    assert any("did not finish on the change (it did not finish within 8 s" in n for n in report.notes)


def test_when_the_suite_guards_time_is_spent_the_tests_not_run_in_order_are_named() -> None:
    # Nothing is run past the deadline (the verifier is never asked), and the report says what is unknown.
    from lsp_verify.check_guards import Change, _in_order
    from lsp_verify.verify.pytest_run import TestRun

    report = RunReport(command="check", root="/nowhere")
    changed = [Change(Path("/nowhere/geo/shapes.py"), "x = 1\n", "x = 0\n")]
    failing = ("tests/test_2.py::test_seen", "tests/test_2.py::test_other")

    _in_order(
        None,  # type: ignore[arg-type]
        changed,
        ("tests/test_1.py::test_reg", *failing),
        failing,
        ({"tests/test_1.py::test_reg", *failing}, set()),
        TestRun(()),
        report,
        "HEAD",
        deadline=0.0,
        cancel=None,  # type: ignore[arg-type]
    )

    assert report.functions == []
    assert report.notes == [
        "tests/test_2.py::test_seen and 1 more, failing with the change and alone at HEAD too, did not run "
        "in the suite's order at HEAD (suite_guard_timeout_s ran out): whether the change broke one that "
        "needs the tests before it is unknown"
    ]
