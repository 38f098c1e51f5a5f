"""What a candidate costs to verify when its function has a large conventional test module: the tests that
name the function run first, and the rest of the module (the guard) only for a candidate that passes them.

Real pytest and mypy on a fixture project, a scripted engine in place of the model (the model is not the
point). The guard is what made ``lsp-verify fix`` on a real library take 450-900 s: more-itertools'
tests/test_more.py ran in full for every candidate, right or wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_verify.verify.types import CandidateResult, Evidence
from test_pipeline import ScriptedEngine, run

MODULE = '''\
SCALE = 2


def double(x: int) -> int:
    """Twice x."""
    ...


def scale() -> int:
    return SCALE


def successor_of_double(x: int) -> int:
    return x * 2 + 1
'''

# test_double names the target; the others guard the rest of the module and pass on the stub. test_scale
# reaches double only through a helper, so a candidate that passes test_double can still break it.
TESTS = """\
import calc


def via(x: int) -> int:
    return getattr(calc, "dou" + "ble")(x)


def test_double() -> None:
    assert calc.double(2) == 4


def test_successor() -> None:
    assert calc.successor_of_double(3) == 7


def test_scale() -> None:
    via(1)
    assert calc.scale() == 2
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "calc"\nversion = "0"\n')
    (tmp_path / "calc.py").write_text(MODULE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_calc.py").write_text(TESTS)
    return tmp_path


def by_body(results: tuple[CandidateResult, ...]) -> dict[str, CandidateResult]:
    return {r.candidate.body.strip(): r for r in results}


def test_a_wrong_candidate_runs_only_the_tests_that_name_the_function(project: Path) -> None:
    side_effect = "global SCALE\n    SCALE = 3\n    return 2 * x"
    engine = ScriptedEngine([["return x * 3", side_effect, "return 2 * x"]])
    _, _, _, report = run(project, engine, repair_rounds=0)
    results = by_body(report.results)

    wrong = results["return x * 3"]
    assert not wrong.passed
    assert [o.nodeid for o in wrong.outcomes] == ["tests/test_calc.py::test_double"]
    assert wrong.stages[-1].detail.startswith("tests/test_calc.py::test_double failed")

    # Passes the test that names it, breaks a guard test: dropped, with the guard's failure.
    guard_breaker = results[side_effect.strip()]
    assert not guard_breaker.passed
    assert guard_breaker.stages[-1].detail.startswith("tests/test_calc.py::test_scale failed")
    assert guard_breaker.tests_passed == (
        "tests/test_calc.py::test_double",
        "tests/test_calc.py::test_successor",
    )

    right = results["return 2 * x"]
    assert right.passed and right.evidence is Evidence.TESTS
    assert sorted(right.tests_passed) == [
        "tests/test_calc.py::test_double",
        "tests/test_calc.py::test_scale",
        "tests/test_calc.py::test_successor",
    ]
    assert report.best is right
    assert (project / "calc.py").read_text() == MODULE
