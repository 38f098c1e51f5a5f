"""``lsp-verify check`` on many functions at once: each file's nearby tests run once for all its functions,
and the report is the one the function-by-function path gives.

Each test builds a throw-away git repository (two modules, a conventional test module each), runs the real
``check`` in-process twice - batched, and with batching switched off - and compares the two reports; real
pytest and mypy runs are counted (not timed) to show that the batch ran them once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gitrepo
from gitrepo import git
from lsp_verify import check
from lsp_verify.check import CheckOptions, run_check
from lsp_verify.config import Settings, project_settings
from lsp_verify.report import FunctionReport, RunReport
from lsp_verify.verify.pytest_run import PytestRunner
from lsp_verify.verify.sandbox import WorkerProcess
from lsp_verify.verify.test_index import TestFile, TestIndex

GEO = '''\
"""Small arithmetic."""


def add(a: int, b: int) -> int:
    return a + b


def sub(a: int, b: int) -> int:
    return a - b


def mul(a: int, b: int) -> int:
    return a * b


def neg(a: int) -> int:
    return -a


def half(a: int) -> int:
    return a // 2
'''

TEST_GEO = """\
from shapes.geo import add, half, mul, neg, sub


def test_add() -> None:
    assert add(2, 3) == 5


def test_sub() -> None:
    assert sub(5, 3) == 2


def test_mul() -> None:
    assert mul(2, 3) == 6


def test_neg() -> None:
    assert neg(4) == -4


def test_half() -> None:
    assert half(9) == 4
"""

TEXT = '''\
"""Small text helpers."""


def shout(word: str) -> str:
    return word.upper() + "!"


def whisper(word: str) -> str:
    return word.lower()
'''

TEST_TEXT = """\
from shapes.text import shout, whisper


def test_shout() -> None:
    assert shout("hi") == "HI!"


def test_whisper() -> None:
    assert whisper("HI") == "hi"
"""


GEO_PATH = "shapes/geo.py"


def make_repo(root: Path, geo: str = GEO) -> Path:
    files = {
        "pyproject.toml": '[project]\nname = "shapes"\nversion = "0"\n',
        "shapes/__init__.py": "",
        "shapes/geo.py": geo,
        "shapes/text.py": TEXT,
        "tests/test_geo.py": TEST_GEO,
        "tests/test_text.py": TEST_TEXT,
    }
    return gitrepo.make_repo(root, files)


@dataclasses.dataclass
class Runs:
    pytest: int = 0
    mypy: int = 0


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Runs]:
    """Counts the real pytest and mypy runs (collection is not a test run)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # mypy's cache stays out of the home
    counts = Runs()
    real_run, real_request = PytestRunner.run, WorkerProcess.request

    def counted_run(self: PytestRunner, *args: Any, **kwargs: Any) -> Any:
        counts.pytest += 1
        return real_run(self, *args, **kwargs)

    def counted_request(self: WorkerProcess, request: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        counts.mypy += request.get("op") == "mypy"  # every mypy run the fork server makes
        return real_request(self, request, *args, **kwargs)

    monkeypatch.setattr(PytestRunner, "run", counted_run)
    monkeypatch.setattr(WorkerProcess, "request", counted_request)
    yield counts


def check_all(
    repo: Path,
    runs: Runs,
    monkeypatch: pytest.MonkeyPatch,
    *,
    batch: bool,
    only: str | None = None,
    settings: Settings | None = None,
) -> RunReport:
    """``lsp-verify check --all`` in ``repo`` (``only``: ``lsp-verify check ONLY``, every function of one
    file, which still batches); ``runs`` counts only this call's runs."""
    monkeypatch.setattr(check, "BATCH_ABOVE", 3 if batch else 1_000_000)
    runs.pytest = runs.mypy = 0
    options = CheckOptions(paths=(repo / only,)) if only else CheckOptions(all_files=True)
    return run_check(options, settings_for=(lambda _: settings) if settings else trusted_settings, cwd=repo)


def trusted_settings(root: Path) -> Settings:
    settings = project_settings(root, trusted=True)
    settings.trusted = True  # as the CLI does: it is trusted by being run
    return settings


def comparable(report: RunReport) -> list[FunctionReport]:
    return [dataclasses.replace(f, seconds=0.0) for f in report.functions]


def by_name(report: RunReport) -> dict[str, FunctionReport]:
    return {f.qualname: f for f in report.functions}


def test_everything_passing_runs_each_test_once_and_reports_as_function_by_function(
    tmp_path: Path, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")

    one_by_one = check_all(repo, runs, monkeypatch, batch=False)
    alone = dataclasses.replace(runs)
    batched = check_all(repo, runs, monkeypatch, batch=True)

    assert batched.exit_code == one_by_one.exit_code == 0
    assert comparable(batched) == comparable(one_by_one)
    assert by_name(batched)["mul"].message == "mypy: no new errors, tests: 5/5 passed"
    assert by_name(batched)["shout"].message == "mypy: no new errors, tests: 2/2 passed"
    # One test run and one mypy run for both files; function by function, each has its own.
    assert (runs.pytest, runs.mypy) == (1, 1)
    assert alone.pytest > 7 and alone.mypy > 7


def test_a_function_that_breaks_a_test_fails_alone_with_the_function_by_function_message(
    tmp_path: Path, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "shapes/geo.py").write_text(GEO.replace("return a * b", "return a * b + 1"), encoding="utf-8")

    one_by_one = check_all(repo, runs, monkeypatch, batch=False)
    batched = check_all(repo, runs, monkeypatch, batch=True)

    assert comparable(batched) == comparable(one_by_one)
    assert batched.exit_code == 1
    failed = [f.qualname for f in batched.functions if f.status != "pass"]
    assert failed == ["mul"]
    assert by_name(batched)["mul"].message.startswith("tests: tests/test_geo.py::test_mul failed")
    # geo.py's functions share the failing guard test; the unchanged ones' baseline is the file as it is, so
    # the batch's run is theirs too (test_mul fails before and after). Only mul is verified on its own
    # (baseline and candidate), after the batch and geo.py's base run; then the whole suite once.
    assert runs.pytest == 1 + 1 + 2 + 1


def test_a_new_mypy_error_in_one_function_fails_only_that_function(
    tmp_path: Path, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    wrong = GEO.replace("    return a // 2", "    label: str = a\n    return a // 2")
    (repo / "shapes/geo.py").write_text(wrong, encoding="utf-8")

    one_by_one = check_all(repo, runs, monkeypatch, batch=False, only=GEO_PATH)
    batched = check_all(repo, runs, monkeypatch, batch=True, only=GEO_PATH)

    assert comparable(batched) == comparable(one_by_one)
    assert [f.qualname for f in batched.functions if f.status != "pass"] == ["half"]
    assert by_name(batched)["half"].message.startswith("mypy: line 21: Incompatible types in assignment")
    # Only the changed function is verified on its own (its baseline's tests; mypy stops it before its
    # own): the unchanged ones' baseline is the file itself. And the whole suite runs once on the change.
    assert runs.pytest == 1 + 1 + 1


def test_a_test_already_failing_at_base_is_not_charged_and_a_fixed_one_is_counted(
    tmp_path: Path, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", GEO.replace("return -a", "return a"))

    still_broken_alone = check_all(repo, runs, monkeypatch, batch=False, only=GEO_PATH)
    still_broken = check_all(repo, runs, monkeypatch, batch=True, only=GEO_PATH)
    assert comparable(still_broken) == comparable(still_broken_alone)
    assert still_broken.exit_code == 0
    # Its own test fails with and without the change: it backs nothing, and the rest only guard the module.
    assert by_name(still_broken)["neg"].message.endswith(
        "types only (no test that names it passed: 1 failing before this change too; 4/5 passed): "
        "tests/test_geo.py::test_neg"
    )
    assert by_name(still_broken)["neg"].evidence == "types_only"
    # The file is as HEAD has it: the batch's run is every function's baseline too, so the failure each of
    # them shares is judged from it, not from two more runs per function.
    assert runs.pytest == 1

    (repo / "shapes/geo.py").write_text(GEO, encoding="utf-8")  # the work tree fixes it
    fixed_alone = check_all(repo, runs, monkeypatch, batch=False, only=GEO_PATH)
    fixed = check_all(repo, runs, monkeypatch, batch=True, only=GEO_PATH)
    assert comparable(fixed) == comparable(fixed_alone)
    assert by_name(fixed)["neg"].message == "mypy: no new errors, tests: 5/5 passed, fixed 1"
    assert by_name(fixed)["neg"].tests_fixed == ("tests/test_geo.py::test_neg",)


def test_a_test_slower_than_a_run_may_take_leaves_the_batch_the_word_on_the_tests_before_it(
    tmp_path: Path, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mccabe's suite ends in a property test that runs 60 s, past ``test_timeout_s``: the batch's run
    stopped there, and every function of the module was then checked alone - two runs each, both stopped by
    the same test (a minute per function). Each function's tests all have an outcome in the batch's run,
    made on the very text its own runs would be: its word is theirs."""
    repo = make_repo(tmp_path / "repo")
    slow = "\n\ndef test_slow() -> None:\n    import time\n\n    time.sleep(60)\n"
    (repo / "tests/test_geo.py").write_text(TEST_GEO + slow, encoding="utf-8")
    git(repo, "commit", "-qam", "a slow test")
    quick = dataclasses.replace(trusted_settings(repo), test_timeout_s=2.0)

    one_by_one = check_all(repo, runs, monkeypatch, batch=False, only=GEO_PATH, settings=quick)
    alone = runs.pytest
    batched = check_all(repo, runs, monkeypatch, batch=True, only=GEO_PATH, settings=quick)

    assert comparable(batched) == comparable(one_by_one)
    assert batched.exit_code == 0
    assert by_name(batched)["neg"].message == (
        "mypy: no new errors, tests: 5/6 passed, 1 failing before this change too (not counted)"
    )
    assert runs.pytest == 1 and alone >= 5  # the batch alone; before, it and then each function again (7)


def test_nearby_tests_are_looked_up_by_name_not_found_by_scanning_every_test(
    tmp_path: Path, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check --all`` selects tests for every function: a test that neither uses a function's name nor
    sits in its conventional test module is never even looked at for it (a scan of every collected test
    per function was quadratic), and the selection is the one the scan made."""
    repo = make_repo(tmp_path / "repo")
    looked_at: set[tuple[str, str]] = set()
    real_uses = TestIndex._uses

    def spy(self: TestIndex, scanned: TestFile, function: Any, target: Path, *args: Any) -> bool:
        looked_at.add((scanned.path.name, Path(target).name))
        return bool(real_uses(self, scanned, function, target, *args))

    monkeypatch.setattr(TestIndex, "_uses", spy)
    report = check_all(repo, runs, monkeypatch, batch=True)

    assert report.exit_code == 0
    assert looked_at == {("test_geo.py", "geo.py"), ("test_text.py", "text.py")}
    assert by_name(report)["add"].message == "mypy: no new errors, tests: 5/5 passed"
    assert by_name(report)["whisper"].message == "mypy: no new errors, tests: 2/2 passed"


NEG = '''\
"""Signs."""


def neg(a: int) -> int:
    return a


def twice_neg(a: int) -> int:
    return 2 * neg(a)
'''

TEST_NEG = """\
from shapes.geo import neg, twice_neg


def test_neg() -> None:
    assert neg(4) == -4


def test_twice_neg() -> None:
    assert twice_neg(0) == 0
"""


def test_a_change_is_not_forgiven_its_old_failure_when_it_breaks_a_guard_test(
    tmp_path: Path, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_neg fails before and after the change, which ``check`` does not count against it; but the
    change also breaks test_twice_neg (which reaches neg without naming it), and that must fail it: every
    selected test runs for a check, not only the ones that name the function."""
    repo = make_repo(tmp_path / "repo", NEG)
    (repo / "tests/test_geo.py").write_text(TEST_NEG, encoding="utf-8")
    git(repo, "commit", "-qam", "neg")
    (repo / "shapes/geo.py").write_text(NEG.replace("    return a\n", "    return a + 1\n"), encoding="utf-8")

    report = check_all(repo, runs, monkeypatch, batch=False)

    neg = by_name(report)["neg"]
    assert neg.status == "fail"
    # The test the change broke is named first, not the one that failed before it too.
    assert neg.message.startswith("tests: tests/test_geo.py::test_twice_neg failed (and 1 more): assert 2 ==")
    assert "tests/test_geo.py::test_twice_neg" in neg.tests_failed  # the guard test it broke
    assert report.exit_code == 1
