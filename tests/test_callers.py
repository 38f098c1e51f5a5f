"""The tests that reach a function through other functions (verify/callers.py): found by one traced run of
the whole suite, run on the function's candidates, and evidence when they pass."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from lsp_verify.cancel import CancelToken
from lsp_verify.config import Settings
from lsp_verify.verify.callers import Reach, ReachMode, Tracing, reach_of
from lsp_verify.verify.cascade import Verifier, VerifyError
from lsp_verify.verify.pytest_run import TestRun
from lsp_verify.verify.types import Evidence
from test_cascade import candidate, snapshot, target_for

HELPER = "    return words.strip().lower()\n"
TEXT = f"""def _normalize(words: str) -> str:
{HELPER}

def slugify(title: str) -> str:
    return "-".join(_normalize(title).split())


def shout(title: str) -> str:
    return title.upper()
"""


def _slugs_project(root: Path, extra_test: str = "") -> str:
    """``_normalize`` is named by no test and has no test module of its own; ``tests/test_api.py`` tests
    ``slugify``, which calls it, and ``shout``, which does not."""
    (root / "slugs").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    (root / "slugs" / "__init__.py").write_text("")
    (root / "slugs" / "text.py").write_text(TEXT)
    (root / "tests" / "test_api.py").write_text(
        "from slugs.text import shout, slugify\n\n\n"
        "def test_slugify() -> None:\n    assert slugify('  Hello  World ') == 'hello-world'\n\n\n"
        "def test_shout() -> None:\n    assert shout('hi') == 'HI'\n" + extra_test
    )
    return TEXT


def test_a_test_that_reaches_the_function_through_another_judges_its_candidates(tmp_path: Path) -> None:
    """Before, ``_normalize`` had no nearby test: a candidate that breaks ``slugify`` was shown as "types
    only". The traced run finds that ``test_slugify`` enters it (``test_shout`` does not): a wrong candidate
    fails it, a right one passes it and is verified by tests."""
    root = tmp_path / "slugs-project"
    text = _slugs_project(root)
    before = snapshot(root)
    settings = Settings(trusted=True, test_timeout_s=20.0, probe_inputs=0)
    with Verifier(root, settings, reach="wait") as verifier:
        plan = verifier.prepare(target_for(root / "slugs" / "text.py", "_normalize"), text, CancelToken())
        assert plan.tests_selected == ("tests/test_api.py::test_slugify",), plan.tests_selected
        assert plan.reaching_tests == ("tests/test_api.py::test_slugify",)
        assert any("1 test reach" in note and "test_slugify" in note for note in plan.notes), plan.notes
        wrong = verifier.verify(plan, candidate(0, text, HELPER, "    return words.upper()\n"), CancelToken())
        assert not wrong.passed
        assert "tests/test_api.py::test_slugify failed" in (wrong.first_error or ""), wrong.first_error
        fixed = candidate(1, text, HELPER, "    return words.lower().strip()\n")
        right = verifier.verify(plan, fixed, CancelToken())
        assert right.passed and right.evidence is Evidence.TESTS, right.first_error
    assert snapshot(root) == before


def test_without_the_traced_run_such_a_function_is_types_only(tmp_path: Path) -> None:
    """``trace_timeout_s = 0`` (and ``check``, which runs the whole suite instead): as before, no test is
    near ``_normalize``."""
    root = tmp_path / "slugs-project"
    text = _slugs_project(root)
    untraced = Settings(trusted=True, test_timeout_s=20.0, probe_inputs=0, trace_timeout_s=0.0)
    traced = Settings(trusted=True, test_timeout_s=20.0, probe_inputs=0)
    modes: list[tuple[ReachMode, Settings]] = [("wait", untraced), ("off", traced)]
    for reach, values in modes:
        with Verifier(root, values, reach=reach) as verifier:
            plan = verifier.prepare(target_for(root / "slugs" / "text.py", "_normalize"), text, CancelToken())
            assert plan.tests_selected == () and plan.reaching_tests == (), plan.tests_selected
            assert "no nearby tests: types only" in plan.notes


def test_a_traced_run_cut_short_keeps_what_the_tests_before_it_entered(tmp_path: Path) -> None:
    """A suite longer than ``trace_timeout_s`` (here: a test that hangs): the map holds the tests that
    finished, says it is incomplete, and nothing outlives the run."""
    root = tmp_path / "slugs-project"
    hangs = "\n\ndef test_zz_hangs() -> None:\n    import time\n    time.sleep(60)\n"
    text = _slugs_project(root, hangs)
    settings = Settings(trusted=True, test_timeout_s=20.0, probe_inputs=0, trace_timeout_s=4.0)
    started = time.monotonic()
    with Verifier(root, settings, reach="wait") as verifier:
        plan = verifier.prepare(target_for(root / "slugs" / "text.py", "_normalize"), text, CancelToken())
        assert plan.reaching_tests == ("tests/test_api.py::test_slugify",), plan.tests_selected
    assert time.monotonic() - started < 40


def test_the_most_specific_reaching_tests_are_chosen_first() -> None:
    """Per function, the tests that entered it, those that entered the fewest functions first (a unit test
    of a caller before an end-to-end one), parametrised cases as their function, at most the limit, and only
    tests the current collection still holds."""
    helper = ("pkg/mod.py", "_helper")
    other = [("pkg/mod.py", f"f{i}") for i in range(5)]
    run = TestRun(
        outcomes=(),
        calls=(
            ("tests/test_a.py::test_wide", (helper, *other)),
            ("tests/test_a.py::test_unit[1]", (helper,)),
            ("tests/test_a.py::test_unit[2]", (helper, other[0])),
            ("tests/test_b.py::test_middle", (helper, other[1], other[2])),
            ("tests/test_b.py::test_gone", (helper,)),
            ("tests/test_b.py::test_elsewhere", (other[3],)),
        ),
    )
    reach: Reach = reach_of(run, complete=True)
    runnable = ["tests/test_a.py::test_wide", "tests/test_a.py::test_unit", "tests/test_b.py::test_middle",
                "tests/test_b.py::test_elsewhere"]  # fmt: skip
    assert reach.reaching("pkg/mod.py", "_helper", runnable) == (
        "tests/test_a.py::test_unit",
        "tests/test_b.py::test_middle",
        "tests/test_a.py::test_wide",
    )
    assert reach.reaching("pkg/mod.py", "_helper", runnable, limit=1) == ("tests/test_a.py::test_unit",)
    assert reach.reaching("pkg/mod.py", "missing", runnable) == ()
    assert reach.traced == 6 and reach.complete


def test_a_guard_test_known_to_run_the_function_is_evidence(tmp_path: Path) -> None:
    """``tests/test_text.py``, the conventional test module of ``slugs/text.py``, ran for ``_normalize`` as a
    guard only: "types only", though it tests ``slugify`` and so ``_normalize``. Known now to enter it, it
    is evidence when it passes; ``test_shout`` stays a guard."""
    root = tmp_path / "slugs-project"
    text = _slugs_project(root)
    (root / "tests" / "test_api.py").rename(root / "tests" / "test_text.py")
    settings = Settings(trusted=True, test_timeout_s=20.0, probe_inputs=0)
    with Verifier(root, settings, reach="wait") as verifier:
        plan = verifier.prepare(target_for(root / "slugs" / "text.py", "_normalize"), text, CancelToken())
        selected = {"tests/test_text.py::test_slugify", "tests/test_text.py::test_shout"}
        assert set(plan.tests_selected) == selected, plan.tests_selected
        assert plan.reaching_tests == ("tests/test_text.py::test_slugify",)
        fixed = candidate(1, text, HELPER, "    return words.lower().strip()\n")
        right = verifier.verify(plan, fixed, CancelToken())
        assert right.passed and right.evidence is Evidence.TESTS, right.first_error
    with Verifier(root, settings, reach="off") as verifier:
        plan = verifier.prepare(target_for(root / "slugs" / "text.py", "_normalize"), text, CancelToken())
        right = verifier.verify(plan, fixed, CancelToken())
        assert right.passed and right.evidence is Evidence.TYPES_ONLY


def test_a_map_out_of_date_is_made_again_at_most_once_per_refresh_interval() -> None:
    """A long editor session: after a change the next request starts a new traced run, unless the last one
    started less than ``refresh_after_s`` ago; the old map serves meanwhile, and one that fails keeps it."""
    made: list[int] = []
    release = threading.Event()

    def trace(cancel: CancelToken) -> Reach:
        made.append(len(made))
        if len(made) == 2:
            release.wait(10)
        if len(made) == 3:
            raise VerifyError("the tests cannot be collected")
        return Reach(tests={("m.py", "f"): (f"t{len(made)}",)}, traced=1, complete=True)

    tracing = Tracing(refresh_after_s=0.0)
    tracing.start(trace)
    first = tracing.reach(True, CancelToken())
    assert first is not None and first.tests[("m.py", "f")] == ("t1",)
    tracing.start(trace)  # current: not made again
    assert tracing.runs == 1
    tracing.invalidate()
    tracing.start(trace)  # out of date: made again, the old map serving until it is done
    assert tracing.runs == 2 and tracing.reach(True, CancelToken()) is first
    tracing.start(trace)  # still running: not started twice
    assert tracing.runs == 2
    release.set()
    deadline = time.monotonic() + 10
    while tracing.reach(False, CancelToken()) is first and time.monotonic() < deadline:
        time.sleep(0.01)
    second = tracing.reach(False, CancelToken())
    assert second is not None and second.tests[("m.py", "f")] == ("t2",)
    tracing.invalidate()
    tracing.start(trace)  # fails: the map before it stays
    while tracing.problem == "" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "cannot be collected" in tracing.problem and tracing.reach(False, CancelToken()) is second
    slow = Tracing(refresh_after_s=3600.0)
    slow.start(trace)
    slow.reach(True, CancelToken())
    slow.invalidate()
    slow.start(trace)  # changed, but made less than an hour ago
    assert slow.runs == 1
    tracing.close()
    slow.close()
