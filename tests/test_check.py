"""``lsp-verify check``: each staged function is type-checked and tested as it is, against HEAD.

Every test builds a throw-away git repository (a small package, its tests, one commit), stages a change
and runs the real command in a subprocess, as a pre-commit hook or CI would. No model is involved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

import gitrepo
from lsp_verify import gitdiff
from lsp_verify.report import FunctionReport, RunReport, escape_data, escape_property, render_github

SERVER = Path(__file__).resolve().parents[1] / "server"
SCHEMA = json.loads((SERVER / "lsp_verify" / "report-schema.json").read_text(encoding="utf-8"))

CALC = '''\
"""Arithmetic."""


def add(a: int, b: int) -> int:
    return a + b


def mul(a: int, b: int) -> int:
    return a * b
'''

TESTS = """\
from calc.ops import add, mul


def test_add() -> None:
    assert add(2, 3) == 5


def test_mul() -> None:
    assert mul(2, 3) == 6
"""


def git(repo: Path, *args: str) -> str:
    return gitrepo.git(repo, *args).stdout


def make_repo(root: Path, files: dict[str, str] | None = None) -> Path:
    """A committed package ``calc`` with ``files`` beside it (default: a pyproject.toml and
    tests/test_ops.py); returns the repository root."""
    files = files or {"pyproject.toml": PYPROJECT, "tests/test_ops.py": TESTS}
    return gitrepo.make_repo(root, {"calc/__init__.py": "", "calc/ops.py": CALC, **files})


PYPROJECT = '[project]\nname = "calc"\nversion = "0"\n'


def stage(repo: Path, relpath: str, text: str) -> None:
    (repo / relpath).write_text(text, encoding="utf-8")
    git(repo, "add", relpath)


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SERVER), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # mypy's cache stays out of the user's home
    env.pop("NO_COLOR", None)
    return env


def run_check(repo: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lsp_verify", "check", *args],
        cwd=repo,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


# ----------------------------------------------------------------------------------------------- outcomes


def test_a_change_that_breaks_a_nearby_test_fails_and_names_function_and_test(
    repo: Path, tmp_path: Path
) -> None:
    stage(repo, "calc/ops.py", CALC.replace("return a + b", "return a - b"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    fail_line = next(line for line in proc.stdout.splitlines() if line.startswith("FAIL"))
    assert "calc/ops.py:4 add" in fail_line
    assert "tests/test_ops.py::test_add" in proc.stdout
    assert "mul" not in proc.stdout.split("lsp-verify check:")[0], "mul did not change: it is not checked"


def test_a_change_that_adds_a_type_error_fails_with_the_new_error(repo: Path, tmp_path: Path) -> None:
    stage(repo, "calc/ops.py", CALC.replace("return a * b", "return str(a * b)"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  calc/ops.py:8 mul" in proc.stdout
    assert "Incompatible return value type" in proc.stdout


SHAPES = """\
def area(w: int, h: int) -> int:
    return w * h


class Box:
    def __init__(self, a: int, b: int, c: int) -> None:
        self.a, self.b, self.c = a, b, c

    def volume(self) -> int:
        return self.a * self.b * self.c
"""

UNITTEST_SUITE = """\
import unittest

import calc.shapes as shapes


class AreaTests(unittest.TestCase):
    def test_square(self) -> None:
        self.assertEqual(shapes.area(3, 3), 9)


class BoxTests(unittest.TestCase):
    def test_volume(self) -> None:
        self.assertEqual(shapes.Box(2, 3, 4).volume(), 24)
"""


@pytest.mark.parametrize(
    ("old", "new", "function", "test"),
    [
        (
            "return w * h",
            "return w + h",
            "calc/shapes.py:1 area",
            "tests/test_geometry.py::AreaTests::test_square",
        ),
        (
            "return self.a * self.b * self.c",
            "return self.a + self.b + self.c",
            "calc/shapes.py:9 Box.volume",
            "tests/test_geometry.py::BoxTests::test_volume",
        ),
    ],
    ids=["function", "method"],
)
def test_a_change_breaking_a_unittest_style_suite_is_blocked(
    repo: Path, tmp_path: Path, old: str, new: str, function: str, test: str
) -> None:
    # Test classes named *Tests, not Test*: pytest collects them (unittest.TestCase), so check must run them.
    (repo / "calc" / "shapes.py").write_text(SHAPES, encoding="utf-8")
    (repo / "tests" / "test_geometry.py").write_text(UNITTEST_SUITE, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "shapes")
    stage(repo, "calc/shapes.py", SHAPES.replace(old, new))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    fail_line = next(line for line in proc.stdout.splitlines() if line.startswith("FAIL"))
    assert function in fail_line
    assert test in proc.stdout


UNITTEST_MODULE = """\
import unittest

from calc.ops import add, mul


class OpsTests(unittest.TestCase):
    def test_add(self) -> None:
        self.assertEqual(add(2, 3), 5)

    def test_mul(self) -> None:
        self.assertEqual(mul(2, 3), 6)


if __name__ == "__main__":
    unittest.main()
"""


def test_a_project_tested_by_unittest_in_tests_py_is_checked_by_those_tests(tmp_path: Path) -> None:
    # jsonpointer's layout: `python -m unittest` finds tests.py; pytest's default python_files does not, and
    # before, a breaking change passed on types alone ("no nearby tests").
    repo = make_repo(tmp_path / "repo", {"pyproject.toml": PYPROJECT, "tests.py": UNITTEST_MODULE})
    stage(repo, "calc/ops.py", CALC.replace("return a * b", "return a + b"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  calc/ops.py:8 mul" in proc.stdout, proc.stdout
    assert "tests.py::OpsTests::test_mul" in proc.stdout
    git(repo, "reset", "-q", "--hard")
    everything = run_check(repo, tmp_path, "--all", "--format", "json")
    assert everything.returncode == 0, everything.stdout + everything.stderr
    # tests.py holds tests, not functions to check.
    assert {f["file"] for f in json.loads(everything.stdout)["functions"]} == {"calc/ops.py"}


def test_a_module_pytest_collects_tests_from_is_a_test_module_whatever_its_name(tmp_path: Path) -> None:
    config = "[pytest]\npython_files = check_*.py\n"
    repo = make_repo(tmp_path / "repo", {"pytest.ini": config, "checks/check_ops.py": TESTS})
    proc = run_check(repo, tmp_path, "--all", "--format", "json")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    functions = json.loads(proc.stdout)["functions"]
    assert {f["file"] for f in functions} == {"calc/ops.py"}
    assert all(f["evidence"] == "tests" for f in functions), functions


@pytest.mark.parametrize(
    "tests",
    [{"tests/test_ops.py": TESTS}, {"tests.py": UNITTEST_MODULE}],
    ids=["pytest", "unittest-tests.py"],
)
@pytest.mark.parametrize("suite_guard", [True, False], ids=["guard", "no-guard"])
def test_a_change_that_stops_the_tests_from_being_collected_fails(
    tmp_path: Path, tests: dict[str, str], suite_guard: bool
) -> None:
    # No function changes: before, "the change touches no function: nothing to verify", exit 0.
    config = PYPROJECT + ("" if suite_guard else "\n[tool.lsp-verify]\nsuite_guard_timeout_s = 0\n")
    repo = make_repo(tmp_path / "repo", {"pyproject.toml": config, **tests})
    stage(repo, "calc/ops.py", "import not_a_module_anywhere\n" + CALC)

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    fail = next(line for line in proc.stdout.splitlines() if line.startswith("FAIL"))
    assert fail.startswith(
        "FAIL  calc/ops.py:1 <module> — the tests cannot be collected with this change ("
    ), fail
    assert "No module named 'not_a_module_anywhere'" in fail and "as HEAD has it" in fail


@pytest.mark.parametrize("unrelated", [True, False], ids=["some-collect", "none-collect"])
def test_a_function_whose_change_stops_its_tests_from_being_collected_fails_with_them(
    tmp_path: Path, unrelated: bool
) -> None:
    # The module calls `add` as it is imported: with the change every test file that imports it fails to
    # collect. Before, where another file collected, `add`'s own tests (the second file lost) were "could
    # not be checked" (exit 2) with "fix the test files" said of the change's own breakage; where none did,
    # "the whole test suite (0 tests) also ran".
    checked_at_import = CALC + "\n\nassert add(1, 1) == 2\n"
    other = "from calc.ops import mul\n\n\ndef test_mul_again() -> None:\n    assert mul(1, 1) == 1\n"
    files = {"pyproject.toml": PYPROJECT, "tests/test_a_first.py": other, "tests/test_ops.py": TESTS}
    if unrelated:
        files["tests/test_z_last.py"] = "def test_nothing_of_calc() -> None:\n    pass\n"
    repo = make_repo(tmp_path / "repo", files)
    stage(repo, "calc/ops.py", checked_at_import)
    git(repo, "commit", "-q", "-m", "checked at import")
    stage(repo, "calc/ops.py", checked_at_import.replace("return a + b", "return a - b"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    add = next(line for line in proc.stdout.splitlines() if " add " in line)
    assert add.startswith("FAIL  calc/ops.py:4 add — with this change, the tests"), add
    module = next(line for line in proc.stdout.splitlines() if "<module>" in line)
    assert module.startswith("FAIL"), module
    assert "Fix the test files" not in proc.stdout
    if unrelated:
        assert "(and 1 more file)" in module
        assert "the whole test suite (1 test) also ran on the change" in proc.stdout
    else:
        assert "the whole test suite was not run on the change: its tests cannot be collected" in proc.stdout


TABLE = """\
import json
from pathlib import Path

RATES = json.loads((Path(__file__).parent / "rates.json").read_text(encoding="utf-8"))


def rate(name: str) -> int:
    return int(RATES[name])
"""

TABLE_TESTS = """\
from pathlib import Path

from calc.table import rate


def test_rate() -> None:
    assert rate("vat") == 20


def test_rate_as_the_example_has_it() -> None:
    assert rate("vat") == int((Path(__file__).parent / "examples" / "vat.txt").read_text())
"""

CONFTEST = """\
import pytest


@pytest.fixture(autouse=True)
def _no_network() -> None:
    raise RuntimeError("network access in a test")
"""


def _write(repo: Path, relpath: str, text: str | None) -> None:
    """``relpath`` holds ``text`` in the work tree (None: deleted)."""
    if text is None:
        (repo / relpath).unlink()
    else:
        (repo / relpath).parent.mkdir(parents=True, exist_ok=True)
        (repo / relpath).write_text(text, encoding="utf-8")


# (file, its new text or None, what check says of it); the last change breaks nothing.
OUTSIDE_FUNCTIONS = {
    "data": (
        "calc/rates.json",
        '{"vat": 21}\n',
        "tests/test_table.py::test_rate failed (and 1 more): it passes with this file as",
    ),
    # Beside a pyproject.toml that is a fixture of the tests, not a project of its own.
    "test-data": ("tests/examples/vat.txt", "21\n", "::test_rate_as_the_example_has_it failed: it passes"),
    "deleted-module": ("calc/table.py", None, "cannot be collected with this change"),
    "new-conftest": (
        "tests/conftest.py",
        CONFTEST,
        "more): it passes without this file, which the change adds",
    ),
    "edited-test": (
        "tests/test_ops.py",
        TESTS.replace("== 5", "== 6"),
        "test_add failed: it passes with this",
    ),
    "docs": ("README.md", "# calc, the arithmetic\n", None),
}


@pytest.mark.parametrize(
    ("kind", "mode"),
    [*((kind, "staged") for kind in OUTSIDE_FUNCTIONS), ("data", "base"), ("deleted-module", "base")],
)
def test_a_change_outside_every_function_is_checked_by_the_tests(
    tmp_path: Path, kind: str, mode: str
) -> None:
    # Before: "no Python changes to check", exit 0, whatever the change broke - a data file the code reads, a
    # module deleted under its importers, an autouse fixture, a test's expectation. `--base` (the work tree
    # against a revision, unstaged) finds its changes another way.
    files = {"pyproject.toml": PYPROJECT, "tests/test_ops.py": TESTS, "tests/test_table.py": TABLE_TESTS}
    files |= {"calc/table.py": TABLE, "calc/rates.json": '{"vat": 20}\n', "README.md": "# calc\n"}
    files |= {"tests/examples/vat.txt": "20\n", "tests/examples/pyproject.toml": PYPROJECT}
    repo = make_repo(tmp_path / "repo", files)
    relpath, text, said = OUTSIDE_FUNCTIONS[kind]
    _write(repo, relpath, text)
    if mode == "staged":
        git(repo, "add", "-A")

    proc = run_check(repo, tmp_path, *(["--base", "HEAD"] if mode == "base" else []))

    verdicts = [line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL", "ERROR"))]
    if said is None:
        assert proc.returncode == 0 and not verdicts, proc.stdout + proc.stderr
        assert "the whole test suite (4 tests) also ran on the change" in proc.stdout, proc.stdout
        return
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(verdicts) == 1 and verdicts[0].startswith(f"FAIL  {relpath}:1 <module> — "), proc.stdout
    assert said in verdicts[0], verdicts[0]


PAIR_TESTS = """\
from pathlib import Path

HERE = Path(__file__).parent


def test_the_two_switches_are_off() -> None:
    on = [(HERE / name).read_text().strip() == "on" for name in ("left.txt", "right.txt")]
    assert not any(on)
"""

PACKAGE_TESTS = """\
from calc.extra import triple


def test_triple() -> None:
    assert triple(2) == 6
"""


@pytest.mark.parametrize("kind", ["two-data-files", "deleted-package"])
def test_a_change_that_breaks_the_tests_only_as_a_whole_fails_as_a_whole(tmp_path: Path, kind: str) -> None:
    # Before: each file was put back alone, none of them alone made the tests pass (both switches are on, or
    # the package's other file is still gone), and check passed.
    files = {"pyproject.toml": PYPROJECT, "tests/test_ops.py": TESTS, "tests/test_pair.py": PAIR_TESTS}
    files |= {"tests/left.txt": "off\n", "tests/right.txt": "off\n", "tests/test_extra.py": PACKAGE_TESTS}
    files |= {"calc/extra/__init__.py": "from .impl import triple\n"}
    files |= {"calc/extra/impl.py": "def triple(x: int) -> int:\n    return 3 * x\n"}
    repo = make_repo(tmp_path / "repo", files)
    if kind == "two-data-files":
        stage(repo, "tests/left.txt", "on\n")
        stage(repo, "tests/right.txt", "on\n")
        said = "it passes with the whole change (tests/left.txt, tests/right.txt) as HEAD has it, and no one"
    else:
        git(repo, "rm", "-q", "-r", "calc/extra")
        said = "they are with the whole change (calc/extra/__init__.py, calc/extra/impl.py) as HEAD has it"

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdicts = [line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL", "ERROR"))]
    assert len(verdicts) == 1 and said in verdicts[0], proc.stdout


def test_a_failing_test_the_change_adds_or_unskips_fails_it_and_hides_no_other_failure(
    tmp_path: Path,
) -> None:
    # Before, all three passed (exit 0, "2 failing that no function's own check ran"): the suite guard
    # blamed a test only when it passed with a file as HEAD has it. A test the change adds has no outcome
    # there, a skipped one is not "passed" - and the run that traced the other failures named the new test
    # at HEAD, where pytest found no such test and ran none, so the broken `mul` (reached through a fixture)
    # passed too.
    files = {"pyproject.toml": PYPROJECT, "tests/test_skipped.py": SKIPPED_TEST}
    files |= {"tests/conftest.py": TIMES_FIXTURE, "tests/test_fixture.py": TIMES_TEST}
    repo = make_repo(tmp_path / "repo", files)
    stage(repo, "calc/ops.py", CALC.replace("return a * b", "return a + b"))
    stage(repo, "tests/test_new.py", "def test_new() -> None:\n    assert 1 + 1 == 3\n")
    stage(repo, "tests/test_skipped.py", SKIPPED_TEST.replace('@pytest.mark.skip(reason="later")\n', ""))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdicts = [line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL", "ERROR"))]
    assert len(verdicts) == 3, proc.stdout
    said = (
        "mul — tests: tests/test_fixture.py::test_times failed: it passes with mul as HEAD has it",
        "FAIL  tests/test_new.py:1 <module> — tests: tests/test_new.py::test_new failed: the change adds it "
        "(HEAD collects no such test)",
        "FAIL  tests/test_skipped.py:1 <module> — tests: tests/test_skipped.py::test_big failed: it is "
        "skipped with this file as HEAD has it",
    )
    for line in said:
        assert any(line in verdict for verdict in verdicts), proc.stdout
    # Once they are in HEAD, they fail there too: not the change's.
    git(repo, "commit", "-q", "-m", "failing")
    stage(repo, "tests/test_skipped.py", (repo / "tests" / "test_skipped.py").read_text() + "\n")

    assert run_check(repo, tmp_path).returncode == 0


@pytest.mark.parametrize("how", ["skipped", "failing at HEAD"])
def test_a_change_whose_own_tests_are_skipped_or_failing_already_is_backed_by_types_only(
    tmp_path: Path, how: str
) -> None:
    # Before, both passed "with tests" ("tests: 0/1 passed"), and `--require-tests` let them through: a
    # skipped test ran nothing, and one failing with and without the change says nothing of it either.
    marked = "@pytest.mark.skip(reason='later')\n" if how == "skipped" else ""
    expected = "5" if how == "skipped" else "6"
    tests = f"import pytest\n\nfrom calc.ops import add\n\n\n{marked}def test_add() -> None:\n"
    tests += f"    assert add(2, 3) == {expected}\n"
    for pyproject in (PYPROJECT, f"{PYPROJECT}\n[tool.lsp-verify]\nrequire_tests = true\n"):
        repo = make_repo(
            tmp_path / str(len(pyproject)), {"pyproject.toml": pyproject, "tests/test_ops.py": tests}
        )
        stage(repo, "calc/ops.py", CALC.replace("return a + b", "return a + b + 0 * a"))

        proc = run_check(repo, tmp_path)

        if "require_tests" in pyproject:
            assert proc.returncode == 1, proc.stdout + proc.stderr
            assert "require_tests is set" in proc.stdout, proc.stdout
            continue
        assert proc.returncode == 0, proc.stdout + proc.stderr
        count = "1 skipped" if how == "skipped" else "1 failing before this change too"
        assert f"types only (no test that names it passed: {count}; 0/1 passed)" in proc.stdout, proc.stdout


WARNED = CALC.replace(
    "    return a + b",
    "    import warnings\n\n    warnings.warn('old', DeprecationWarning)\n    return a + b",
)
"""``add`` as it is, with a DeprecationWarning."""


@pytest.mark.parametrize("config", ["pytest.toml", "pyproject.toml"])
def test_runs_by_node_id_read_the_projects_configuration_not_a_tests_directorys(
    tmp_path: Path, config: str
) -> None:
    # `python -m pytest` reads the root's configuration (filterwarnings = error): the warning the change
    # adds fails test_add. A run naming tests/test_ops.py::test_add looked for a configuration from tests/
    # up, read tests/pytest.ini (markers only) and passed it; pytest 9's pytest.toml was not known at all.
    root_config = {
        "pytest.toml": '[pytest]\nfilterwarnings = ["error"]\n',
        "pyproject.toml": PYPROJECT + '\n[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n',
    }[config]
    files = {config: root_config, "tests/pytest.ini": "[pytest]\nmarkers =\n    slow: slow tests\n"}
    files |= {"tests/test_ops.py": TESTS}
    files.setdefault("pyproject.toml", PYPROJECT)
    repo = make_repo(tmp_path / "repo", files)
    stage(repo, "calc/ops.py", WARNED)

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tests/test_ops.py::test_add failed" in proc.stdout, proc.stdout


SLOW_TESTS = TESTS.replace("def test_add", "@pytest.mark.slow\ndef test_add").replace(
    "from", "import pytest\nfrom", 1
)
DESELECTS_SLOW = '[pytest]\naddopts = -m "not slow"\nmarkers =\n    slow: slow tests\n'


@pytest.mark.parametrize(
    "files",
    [
        # No pytest table anywhere: a plain run takes the root's pyproject.toml as its (empty) configuration
        # and collects test_add; a run naming it read tests/pytest.ini, whose python_functions found no
        # such test: "cannot be collected ... not found: tests/test_ops.py::test_add", exit 2, for a change
        # its own tests catch.
        {
            "pyproject.toml": PYPROJECT,
            "tests/pytest.ini": "[pytest]\npython_functions = check_*\n",
            "tests/test_ops.py": TESTS,
        },
        # No configuration at or above the root: a plain run reads none and runs the test marked slow,
        # which fails. A run naming it looked from tests/ up and took tests/pytest.ini, which deselects it:
        # nothing ran, with the change or without, and the broken `add` passed on types alone.
        {"tests/pytest.ini": DESELECTS_SLOW, "tests/test_ops.py": SLOW_TESTS},
    ],
    ids=["bare-pyproject", "none"],
)
def test_runs_by_node_id_read_the_configuration_a_plain_run_reads_where_there_is_no_pytest_table(
    tmp_path: Path, files: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo", files)
    stage(repo, "calc/ops.py", CALC.replace("return a + b", "return a - b"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tests/test_ops.py::test_add failed" in proc.stdout, proc.stdout


def test_runs_by_node_id_load_the_conftest_files_a_whole_run_walks_past(tmp_path: Path) -> None:
    # A plain run walks into tools/ (no test there) and loads its conftest.py, whose pytest_configure turns
    # DeprecationWarning into an error: the warning the change adds fails test_add. A run naming
    # tests/test_ops.py::test_add loaded only the conftests on that path, and the change passed.
    errors = "def pytest_configure(config):\n"
    errors += '    config.addinivalue_line("filterwarnings", "error::DeprecationWarning")\n'
    files = {"pyproject.toml": PYPROJECT, "tests/test_ops.py": TESTS, "tools/conftest.py": errors}
    repo = make_repo(tmp_path / "repo", files)
    stage(repo, "calc/ops.py", WARNED)

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tests/test_ops.py::test_add failed" in proc.stdout, proc.stdout


def test_a_test_using_pytests_cache_fixture_runs_and_fails_a_change(tmp_path: Path) -> None:
    # `-p no:cacheprovider` took the `cache` fixture away: the test errored with and without the change
    # ("fixture 'cache' not found"), was forgiven as failing before, and the broken `add` passed.
    tests = (
        "from calc.ops import add\n\n\ndef test_add(cache) -> None:\n"
        "    assert cache.get('calc/runs', 0) == 0\n"
        "    cache.set('calc/runs', 1)\n"
        "    assert add(2, 3) == 5\n"
    )
    repo = make_repo(tmp_path / "repo", {"pyproject.toml": PYPROJECT, "tests/test_ops.py": tests})
    stage(repo, "calc/ops.py", CALC.replace("return a + b", "return a - b"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tests/test_ops.py::test_add failed" in proc.stdout, proc.stdout
    # Each run's cache is its own: the value the baseline's run stored is not what the next run reads.
    stage(repo, "calc/ops.py", CALC.replace("return a + b", "return b + a"))
    assert run_check(repo, tmp_path).returncode == 0


REACHED_THROUGH = {
    # main() parses the command line: under plain pytest it sees none; in the worker it saw the worker's own
    # arguments and exited 2.
    "argv": (
        "import argparse\n\nfrom calc.ops import add\n\n\ndef main() -> int:\n"
        "    argparse.ArgumentParser().parse_args()\n    return add(2, 3)\n",
        "from calc.front import main\n\n\ndef test_main() -> None:\n    assert main() == 5\n",
    ),
    # Colour unless NO_COLOR is set, as the user's terminal has it: the sandbox set it for every run.
    "NO_COLOR": (
        "import os\n\nfrom calc.ops import add\n\n\ndef main() -> str:\n"
        "    text = str(add(2, 3))\n    return text if os.environ.get('NO_COLOR') else f'\\x1b[1m{text}'\n",
        "from calc.front import main\n\n\ndef test_main() -> None:\n    assert main() == '\\x1b[1m5'\n",
    ),
}


@pytest.mark.parametrize("how", sorted(REACHED_THROUGH))
def test_a_test_reaching_the_change_runs_as_under_plain_pytest(tmp_path: Path, how: str) -> None:
    # Its test names only `main`, which calls the changed `add`: it failed before the change too in the
    # sandbox (not under plain pytest), was forgiven, and the broken `add` passed.
    front, test = REACHED_THROUGH[how]
    files = {"pyproject.toml": PYPROJECT, "calc/front.py": front, "tests/test_front.py": test}
    repo = make_repo(tmp_path / "repo", files)
    plain = subprocess.run(
        [sys.executable, "-m", "pytest"], cwd=repo, env=cli_env(tmp_path), capture_output=True
    )
    assert plain.returncode == 0, plain.stdout
    stage(repo, "calc/ops.py", CALC.replace("return a + b", "return a - b"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tests/test_front.py::test_main failed" in proc.stdout, proc.stdout


@pytest.mark.parametrize("names_add", [False, True], ids=["unnamed", "naming-the-function"])
def test_tests_failing_with_and_without_the_change_are_said_to_have_checked_nothing(
    tmp_path: Path, names_add: bool
) -> None:
    # A test that fails here and at HEAD alike cannot tell a change; where it passes for the user, the
    # sandbox differs from their environment (their home directory, the network), and they should know.
    # One that names the changed function was left unsaid: its function's own check had listed it.
    home = "from pathlib import Path\n\nfrom calc.ops import add\n\n\ndef test_config() -> None:\n"
    home += "    assert (Path.home() / '.calc-settings-nowhere').exists(), 'no settings'\n"
    home += "    assert add(2, 3) == 5\n" if names_add else ""
    files = {"pyproject.toml": PYPROJECT, "tests/test_ops.py": TESTS, "tests/test_home.py": home}
    repo = make_repo(tmp_path / "repo", files)
    stage(repo, "calc/ops.py", CALC.replace("return a + b", "return b + a"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = (
        "1 test of the whole suite fails here with the change and as HEAD has it, so checked nothing of it "
        "(tests/test_home.py::test_config: AssertionError: no settings"
    )
    assert said in proc.stdout.replace("\n  ", " "), proc.stdout


@pytest.mark.installed_plugins
def test_a_property_test_fails_a_change_beside_the_users_hypothesis_database(tmp_path: Path) -> None:
    # The user ran the suite before: .hypothesis/ is in the tree. Under bubblewrap the shadow linked it,
    # read-only; Hypothesis warned that it could not use it, `filterwarnings = error` made that an error of
    # the property test with and without the change, and "failing before this change too" passed a change
    # that breaks the property.
    pytest.importorskip("hypothesis")
    pyproject = PYPROJECT + (
        '[tool.pytest.ini_options]\nfilterwarnings = ["error", "ignore::pytest.PytestDeprecationWarning"]\n'
    )
    prop = (
        "from hypothesis import given, strategies as st\n\nfrom calc.ops import add\n\n\n"
        "@given(st.integers(1, 9), st.integers(1, 9))\ndef test_add_commutes(a: int, b: int) -> None:\n"
        "    assert add(a, b) == add(b, a)\n"
    )
    repo = make_repo(tmp_path / "repo", {"pyproject.toml": pyproject, "tests/test_prop.py": prop})
    (repo / ".git" / "info" / "exclude").write_text(".hypothesis/\n")
    (repo / ".hypothesis" / "examples").mkdir(parents=True)
    stage(repo, "calc/ops.py", CALC.replace("return a + b", "return a - b"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  calc/ops.py:4 add — tests: tests/test_prop.py::test_add_commutes failed" in proc.stdout
    assert sorted(p.name for p in (repo / ".hypothesis").iterdir()) == ["examples"]
    assert not any((repo / ".hypothesis" / "examples").iterdir())


SAVE_EXAMPLE = """\
import sys

sys.path.insert(0, ".")
from hypothesis.database import DirectoryBasedExampleDatabase, choices_to_bytes
from hypothesis.internal.reflection import function_digest

from tests.test_prop import test_add_zero

database = DirectoryBasedExampleDatabase(".hypothesis/examples")
database.save(function_digest(test_add_zero.hypothesis.inner_test), choices_to_bytes((9876543,)))
"""


@pytest.mark.installed_plugins
def test_a_failure_saved_in_the_users_example_database_is_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `python -m pytest` replays the failures Hypothesis saved in .hypothesis first: this change fails
    # there every time. The runs' fixed seed (Hypothesis's global_force_seed) made Hypothesis ignore the
    # database, and random draws never hit the value (built at run time: Hypothesis also draws the
    # literals of the code under test): the change passed.
    pytest.importorskip("hypothesis")
    # As on a developer's machine: under `CI` Hypothesis loads its "ci" profile, which has no database (a
    # plain run replays nothing there, nor do ours - the environment is passed on).
    monkeypatch.delenv("CI", raising=False)
    prop = (
        "from hypothesis import given, strategies as st\n\nfrom calc.ops import add\n\n\n"
        "@given(st.integers())\ndef test_add_zero(a: int) -> None:\n    assert add(a, 0) == a\n"
    )
    repo = make_repo(tmp_path / "repo", {"pyproject.toml": PYPROJECT, "tests/test_prop.py": prop})
    (repo / ".git" / "info" / "exclude").write_text(".hypothesis/\n")
    saved = subprocess.run([sys.executable, "-c", SAVE_EXAMPLE], cwd=repo, capture_output=True, text=True)
    if saved.returncode != 0:
        pytest.skip(f"this Hypothesis keeps its database otherwise: {saved.stderr.strip().splitlines()[-1]}")
    stage(repo, "calc/ops.py", CALC.replace("return a + b", "return a + b + (a == int('98' + '76543'))"))
    plain = subprocess.run(
        [sys.executable, "-m", "pytest"], cwd=repo, env=cli_env(tmp_path), capture_output=True
    )
    assert plain.returncode == 1, plain.stdout

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tests/test_prop.py::test_add_zero failed" in proc.stdout, proc.stdout


THERMOMETER = """\
class Thermometer:
    def __init__(self) -> None:
        self._celsius = 0.0

    @property
    def celsius(self) -> float:
        return self._celsius

    @celsius.setter
    def celsius(self, value: float) -> None:
        self._celsius = value
"""


@pytest.mark.parametrize("suite_guard", [True, False], ids=["guard", "no-guard"])
def test_a_changed_setter_is_judged_against_its_own_old_body_not_the_getters(
    tmp_path: Path, suite_guard: bool
) -> None:
    # The staged diff touches only the setter, the second `celsius`; counted among the touched functions it
    # was the first, and its baseline was the getter's body in its place - no setter, so its test failed
    # "before this change too" and was forgiven: PASS without the suite guard, and with it only the file as
    # a whole failed.
    config = PYPROJECT + ("" if suite_guard else "\n[tool.lsp-verify]\nsuite_guard_timeout_s = 0\n")
    test = "from calc.temp import Thermometer\n\n\ndef test_set() -> None:\n    t = Thermometer()\n"
    test += "    t.celsius = 20.0\n    assert t.celsius == 20.0\n"
    repo = make_repo(
        tmp_path / "repo",
        {"pyproject.toml": config, "calc/temp.py": THERMOMETER, "tests/test_temp.py": test},
    )
    stage(
        repo, "calc/temp.py", THERMOMETER.replace("self._celsius = value", "self._celsius = value + 273.15")
    )

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdicts = [line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL", "ERROR"))]
    assert verdicts == [
        "FAIL  calc/temp.py:10 Thermometer.celsius — tests: tests/test_temp.py::test_set failed: "
        "assert 293.15 == 20.0"
    ], proc.stdout


def test_a_test_that_writes_beside_itself_guards_the_change(tmp_path: Path) -> None:
    # Under bubblewrap the shadow linked tests/ to the user's read-only tree: the test failed for writing
    # its output ("Read-only file system") before and after the change alike, and the change passed.
    test = (
        "import json\nfrom pathlib import Path\n\nfrom calc.ops import mul\n\n\n"
        "def test_mul_written() -> None:\n    out = Path(__file__).parent / 'out.json'\n"
        "    out.write_text(json.dumps(mul(2, 3)))\n    assert json.loads(out.read_text()) == 6\n"
    )
    repo = make_repo(tmp_path / "repo", {"pyproject.toml": PYPROJECT, "tests/test_out.py": test})
    (repo / "tests" / "out.json").write_text("6")  # the user's last run left it (ignored by git)
    (repo / ".git" / "info" / "exclude").write_text("out.json\n")
    stage(repo, "calc/ops.py", CALC.replace("return a * b", "return a * b + 1"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  calc/ops.py:8 mul — tests: tests/test_out.py::test_mul_written failed" in proc.stdout
    assert (repo / "tests" / "out.json").read_text() == "6"


@pytest.mark.parametrize("finds_itself", ["Path.resolve", "os.path.realpath in conftest.py"])
def test_tests_that_put_their_resolved_directory_on_sys_path_judge_the_change(
    tmp_path: Path, finds_itself: str
) -> None:
    # Under bubblewrap the shadow linked tests/ to the user's tree: the resolved path of a test file (or of
    # its conftest.py) led back to the workspace, so the tests imported the user's calc/ops.py, never the
    # change - every function of such a project was an ERROR ("imports resolved outside the shadow
    # workspace"), a breaking change never a FAIL.
    finder = "sys.path.insert(0, str(Path(__file__).resolve().parents[1]))\n"
    if finds_itself == "Path.resolve":
        files = {"tests/test_ops.py": "import sys\nfrom pathlib import Path\n\n" + finder + TESTS}
    else:
        conftest = "import os\nimport sys\n\n"
        conftest += "sys.path.insert(0, os.path.realpath(os.path.join(os.path.dirname(__file__), '..')))\n"
        files = {"tests/conftest.py": conftest, "tests/test_ops.py": TESTS}
    repo = make_repo(tmp_path / "repo", {"pyproject.toml": PYPROJECT, **files})
    stage(repo, "calc/ops.py", CALC.replace("return a * b", "return b * a"))

    passed = run_check(repo, tmp_path)

    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "PASS  calc/ops.py:8 mul" in passed.stdout
    stage(repo, "calc/ops.py", CALC.replace("return a * b", "return a * b + 1"))

    failed = run_check(repo, tmp_path)

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAIL  calc/ops.py:8 mul — tests: tests/test_ops.py::test_mul failed" in failed.stdout


def test_another_functions_docstring_example_guards_the_function_it_calls(tmp_path: Path) -> None:
    # Of the edited module's doctests only the module's and the function's own counted: `square`'s example,
    # which calls `mul`, ran and failed on the change, and mul passed as "types only (no nearby tests)".
    square = (
        '\n\ndef square(a: int) -> int:\n    """\n    >>> square(3)\n    9\n    """\n    return mul(a, a)\n'
    )
    config = PYPROJECT + "\n[tool.lsp-verify]\nsuite_guard_timeout_s = 0\n"
    repo = make_repo(tmp_path / "repo", {"pyproject.toml": config, "calc/ops.py": CALC + square})
    stage(repo, "calc/ops.py", (CALC + square).replace("return a * b", "return a * b + 1"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    failure = "calc/ops.py::calc.ops.square failed: >>> square(3) expected 9, got 10"
    assert f"FAIL  calc/ops.py:8 mul — tests: {failure}" in proc.stdout


def test_a_pass_whose_sibling_example_failed_before_says_so(tmp_path: Path) -> None:
    # `square`'s example is stale (it fails at HEAD); a good change to `mul` passes, and said only
    # "tests: 1/2 passed" - a failing count on a PASS, unexplained.
    square = (
        '\n\ndef square(a: int) -> int:\n    """\n    >>> square(3)\n    10\n    """\n    return mul(a, a)\n'
    )
    repo = make_repo(tmp_path / "repo", {"pyproject.toml": PYPROJECT, "calc/ops.py": CALC + square})
    stage(repo, "calc/ops.py", (CALC + square).replace("return a * b", "return b * a"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "PASS  calc/ops.py:8 mul — mypy: no new errors, types only (no test names it; guard tests: 0/1 "
        in (proc.stdout)
    )
    assert "passed, 1 failing before this change too (not counted))" in proc.stdout


@pytest.mark.parametrize("change", ["good", "bad"])
def test_a_project_below_the_repositorys_top_reaches_what_lies_beside_it(tmp_path: Path, change: str) -> None:
    # python/ is the project (its own pytest configuration), shared/ beside it; its conftest.py puts
    # `tests/../../shared` on sys.path. Tests that resolve their path (`tests/..` through a linked tests/)
    # make the shadow a copy, and a copy of python/ alone had no ../shared: the candidate could not be
    # collected, a good change failed. Under bubblewrap every shadow now shows what lies around the project.
    from test_interpreter import ISOLATION

    if ISOLATION != "bwrap":
        pytest.skip("without bubblewrap a shadow is a copy of the project alone")
    conftest = "import os\nimport sys\n\nhere = os.path.dirname(__file__)\n"
    conftest += "sys.path.insert(0, os.path.join(here, '..', '..', 'shared'))\n"
    conftest += "sys.path.insert(0, os.path.join(here, '..'))\n"
    ops = "from factors import FACTOR\n\n\ndef scale(a: int) -> int:\n    return a * FACTOR\n"
    test = "from calc.ops import scale\n\n\ndef test_scale() -> None:\n    assert scale(3) == 6\n"
    repo = gitrepo.make_repo(
        tmp_path / "repo",
        {
            "shared/factors.py": "FACTOR = 2\n",
            "python/pyproject.toml": "[tool.pytest.ini_options]\ntestpaths = ['tests']\n",
            "python/calc/__init__.py": "",
            "python/calc/ops.py": ops,
            "python/tests/conftest.py": conftest,
            "python/tests/test_ops.py": test,
        },
    )
    stage(
        repo,
        "python/calc/ops.py",
        ops.replace("a * FACTOR", "FACTOR * a" if change == "good" else "a + FACTOR"),
    )

    proc = run_check(repo, tmp_path)

    if change == "good":
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "PASS  python/calc/ops.py:4 scale — mypy: no new errors, tests: 1/1 passed" in proc.stdout
    else:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "tests/test_ops.py::test_scale failed: assert 5 == 6" in proc.stdout


LOGGED = """\
import functools
from collections.abc import Callable


def logged(f: Callable[[int, int], int]) -> Callable[[int, int], int]:
    @functools.wraps(f)
    def wrapper(a: int, b: int) -> int:
        return f(a, b)

    return wrapper


"""


@pytest.mark.parametrize("kind", ["decorator", "table", "decorator-type-error"])
def test_a_new_function_the_module_calls_as_it_loads_is_checked_not_uncollectable(
    repo: Path, tmp_path: Path, kind: str
) -> None:
    # A new function is judged against a stub that raises NotImplementedError; the module called the stub as
    # it loaded, so nothing could be collected with it: exit 2, "the tests near logged cannot be collected
    # (tests/test_ops.py): NotImplementedError. Fix the test files or conftest.py ...", for a change whose
    # tests all pass.
    if kind == "table":
        ops = CALC.replace(
            "def mul(",
            "def squares() -> dict[int, int]:\n    return {n: n * n for n in range(9)}"
            "\n\n\nSQUARES = squares()\n\n\ndef mul(",
        )
    else:
        ops = LOGGED + CALC.replace("def add(", "@logged\ndef add(")
        if kind == "decorator-type-error":
            ops = ops.replace("    @functools.wraps(f)", "    name: str = 1\n    @functools.wraps(f)")
    stage(repo, "calc/ops.py", ops)

    proc = run_check(repo, tmp_path)

    if kind == "decorator-type-error":
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "FAIL  calc/ops.py:5 logged — mypy: line 6: Incompatible types in assignment" in proc.stdout
    else:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cannot be collected" not in proc.stdout, proc.stdout


SKIPPED_TEST = """\
import pytest

from calc.ops import mul


@pytest.mark.skip(reason="later")
def test_big() -> None:
    assert mul(10**3, 10**3) == 10**5
"""

TIMES_FIXTURE = """\
from collections.abc import Callable

import pytest

from calc import ops


@pytest.fixture
def times() -> Callable[[int, int], int]:
    return ops.mul
"""

TIMES_TEST = """\
from collections.abc import Callable


def test_times(times: Callable[[int, int], int]) -> None:
    assert times(2, 3) == 6
"""


def test_the_staged_change_is_checked_without_the_work_trees_unstaged_changes(tmp_path: Path) -> None:
    # `mul` now calls a helper that only the work tree has: the commit would break `mul`, and before, check
    # ran its tests with the unstaged helpers.py and passed.
    repo = make_repo(
        tmp_path / "repo",
        {"pyproject.toml": PYPROJECT, "tests/test_ops.py": TESTS, "calc/helpers.py": "X = 1\n"},
    )
    stage(
        repo,
        "calc/ops.py",
        CALC.replace("return a * b", "return times(a, b)").replace(
            '"""Arithmetic."""\n', '"""Arithmetic."""\n\nfrom calc.helpers import times\n'
        ),
    )
    (repo / "calc" / "helpers.py").write_text(
        "X = 1\n\n\ndef times(a: int, b: int) -> int:\n    return a * b\n"
    )

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    said = "checked as staged: calc/helpers.py (the work tree's unstaged changes are no part of it)"
    assert said in proc.stdout, proc.stdout
    assert "FAIL  calc/ops.py:1 <module> — the tests cannot be collected with this change" in proc.stdout
    assert "cannot import name 'times' from 'calc.helpers'" in proc.stdout and "PASS" not in proc.stdout


def test_a_test_file_the_hook_passes_is_checked_by_running_it(repo: Path, tmp_path: Path) -> None:
    # pre-commit passes every staged Python file, tests included (`check --changed FILES`): before, a test
    # file was skipped as "what functions are checked against", and "no Python source files given" passed.
    stage(repo, "tests/test_ops.py", TESTS.replace("== 6", "== 7"))

    proc = run_check(repo, tmp_path, "--changed", "tests/test_ops.py")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  tests/test_ops.py:1 <module> — tests: tests/test_ops.py::test_mul failed" in proc.stdout


def test_a_function_whose_tests_the_change_stops_from_collecting_fails(repo: Path, tmp_path: Path) -> None:
    # `add` renamed, its tests still import the old name: before, `plus` "could not be checked" (an error,
    # exit 2, as for a broken environment) beside the file's failure.
    stage(repo, "calc/ops.py", CALC.replace("def add(", "def plus("))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdicts = [line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL", "ERROR"))]
    assert verdicts[0].startswith(
        "FAIL  calc/ops.py:4 plus — with this change, the tests cannot be collected"
    )
    assert verdicts[1].startswith("FAIL  calc/ops.py:1 <module> — the tests cannot be collected with this")
    assert len(verdicts) == 2, proc.stdout


def test_a_deleted_decorator_is_charged_to_its_function(tmp_path: Path) -> None:
    # A pure deletion just above a `def`: before, only the line above it counted, outside any function, and
    # the whole-suite guard could only blame the file (sqlparse's `@property` on `_groupable_tokens`).
    ops = CALC + "\n\nclass Ops:\n    @staticmethod\n    def double(x: int) -> int:\n        return 2 * x\n"
    tests = (
        TESTS
        + "\n\ndef test_double() -> None:\n    from calc.ops import Ops\n\n    assert Ops().double(2) == 4\n"
    )
    repo = make_repo(tmp_path / "repo", {"pyproject.toml": PYPROJECT, "tests/test_ops.py": tests})
    (repo / "calc" / "ops.py").write_text(ops, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ops")
    stage(repo, "calc/ops.py", ops.replace("    @staticmethod\n", ""))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdicts = [line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL", "ERROR"))]
    assert len(verdicts) == 1 and verdicts[0].startswith("FAIL  calc/ops.py:13 Ops.double"), proc.stdout


def test_a_clean_change_passes(repo: Path, tmp_path: Path) -> None:
    stage(repo, "calc/ops.py", CALC.replace("return a * b", "product = a * b\n    return product"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS  calc/ops.py:8 mul" in proc.stdout
    assert "tests: 2/2 passed" in proc.stdout or "tests: 1/1 passed" in proc.stdout


def test_each_function_is_judged_on_its_own_change(repo: Path, tmp_path: Path) -> None:
    # add gets a type error; mul gets a clean rewrite. mul must not be blamed for add's error.
    changed = CALC.replace("return a + b", 'return a + b + ""').replace("return a * b", "return b * a")
    stage(repo, "calc/ops.py", changed)

    proc = run_check(repo, tmp_path, "--format", "json")

    report = json.loads(proc.stdout)
    by_name = {f["qualname"]: f for f in report["functions"]}
    assert by_name["add"]["status"] == "fail"
    assert by_name["add"]["mypy_new_errors"]
    assert by_name["mul"]["status"] == "pass", by_name["mul"]
    assert by_name["mul"]["mypy_new_errors"] == []
    assert proc.returncode == 1


def test_a_new_function_is_checked_against_its_own_tests_and_doctest(repo: Path, tmp_path: Path) -> None:
    new = CALC + textwrap.dedent('''

        def neg(a: int) -> int:
            """
            >>> neg(2)
            -2
            """
            return a
        ''')
    stage(repo, "calc/ops.py", new)

    proc = run_check(repo, tmp_path, "--format", "json")

    report = json.loads(proc.stdout)
    (neg,) = report["functions"]
    assert neg["qualname"] == "neg"
    assert neg["status"] == "fail", neg
    assert any("neg" in test for test in neg["tests"]["failed"]), neg["tests"]
    assert proc.returncode == 1


def test_a_staged_file_that_does_not_parse_fails(repo: Path, tmp_path: Path) -> None:
    stage(repo, "calc/ops.py", CALC.replace("return a * b", "return a *"))

    proc = run_check(repo, tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "does not parse" in proc.stdout
    assert "line 9" in proc.stdout


def test_nothing_staged_passes_with_a_note(repo: Path, tmp_path: Path) -> None:
    proc = run_check(repo, tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no changes to check" in proc.stdout


def test_outside_a_git_repository_without_paths_is_a_usage_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()

    proc = run_check(plain, tmp_path)

    assert proc.returncode == 2
    assert "not in a git repository" in proc.stderr


@pytest.mark.skipif(getattr(os, "geteuid", lambda: 1)() != 0, reason="needs root to give the repository away")
def test_a_repository_git_refuses_is_named_with_git_s_reason(repo: Path, tmp_path: Path) -> None:
    # An unpacked archive or a mounted volume owned by another user: git refuses it ("dubious ownership").
    # "not in a git repository" would send the user looking for a repository that is there.
    for path in [repo, *repo.rglob("*")]:
        os.chown(path, 65534, 65534, follow_symlinks=False)
    env = cli_env(tmp_path)
    env["HOME"] = str(tmp_path / "home")  # no safe.directory from the user's own configuration
    env["GIT_CONFIG_GLOBAL"] = os.devnull

    proc = subprocess.run(
        [sys.executable, "-m", "lsp_verify", "check", "--all"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert proc.returncode == 2
    assert "dubious ownership" in proc.stderr, proc.stderr
    assert "safe.directory" in proc.stderr
    assert "not in a git repository" not in proc.stderr


def test_changed_paths_check_only_functions_that_differ_from_head(repo: Path, tmp_path: Path) -> None:
    # Not staged: --changed compares the file on disk with HEAD, function by function.
    (repo / "calc" / "ops.py").write_text(CALC.replace("return a + b", "return a - b"), encoding="utf-8")

    changed = run_check(repo, tmp_path, "--changed", "calc/ops.py", "tests/test_ops.py", "--format", "json")
    every = run_check(repo, tmp_path, "calc/ops.py", "--format", "json")

    assert [f["qualname"] for f in json.loads(changed.stdout)["functions"]] == ["add"]
    assert changed.returncode == 1
    assert {f["qualname"]: f["status"] for f in json.loads(every.stdout)["functions"]} == {
        "add": "fail",
        "mul": "pass",
    }


def test_base_revision_checks_the_work_tree_against_it(repo: Path, tmp_path: Path) -> None:
    stage(repo, "calc/ops.py", CALC.replace("return a * b", "return a * b + 1"))
    git(repo, "commit", "-q", "-m", "break mul")

    at_head = run_check(repo, tmp_path)
    since_init = run_check(repo, tmp_path, "--base", "HEAD~1")

    assert at_head.returncode == 0  # nothing staged
    assert since_init.returncode == 1, since_init.stdout + since_init.stderr
    assert "FAIL  calc/ops.py:8 mul" in since_init.stdout


# ----------------------------------------------------------------------------------------------- formats


def test_json_output_follows_the_schema(repo: Path, tmp_path: Path) -> None:
    stage(repo, "calc/ops.py", CALC.replace("return a + b", "return a - b").replace("a * b", "b * a"))

    proc = run_check(repo, tmp_path, "--format", "json")

    report = json.loads(proc.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["exit_code"] == proc.returncode == 1
    assert report["summary"] == {"functions": 2, "passed": 1, "failed": 1, "errors": 0}
    add = next(f for f in report["functions"] if f["qualname"] == "add")
    assert add["file"] == "calc/ops.py" and add["line"] == 4
    assert "tests/test_ops.py::test_add" in add["tests"]["failed"]
    assert add["tests"]["selected"]


def test_github_format_annotates_the_failing_function(repo: Path, tmp_path: Path) -> None:
    stage(repo, "calc/ops.py", CALC.replace("return a + b", "return a - b"))

    proc = run_check(repo, tmp_path, "--format", "github")

    assert proc.returncode == 1
    annotations = [line for line in proc.stdout.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 1
    assert annotations[0].startswith("::error file=calc/ops.py,line=4,title=lsp-verify check%3A add::")
    assert "tests/test_ops.py::test_add" in annotations[0]


def test_github_escaping_follows_the_workflow_command_rules() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    report = RunReport(
        command="check",
        root="/r",
        functions=[FunctionReport("d/x,y.py", "f", 3, "fail", "none", "first\nsecond: 100%")],
    )
    first = render_github(report).splitlines()[0]
    assert first == "::error file=d/x%2Cy.py,line=3,title=lsp-verify check%3A f::first%0Asecond: 100%25"


# ----------------------------------------------------------------------------------------------- model-free


def test_check_never_imports_the_model(repo: Path, tmp_path: Path) -> None:
    stage(repo, "calc/ops.py", CALC.replace("return a * b", "return b * a"))
    probe = textwrap.dedent("""
        import sys
        from lsp_verify.cli import main
        code = main(["check"])
        loaded = sorted(m for m in sys.modules if m == "llama_cpp" or m.startswith(("llama_cpp.",
                        "lsp_verify.model", "lsp_verify.pipeline", "numpy")))
        print("LOADED", loaded, "EXIT", code)
    """)

    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=repo,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert "LOADED [] EXIT 0" in proc.stdout, proc.stdout + proc.stderr


# ----------------------------------------------------------------------------------------------- git helpers


def test_changed_files_hold_both_sides_and_leave_out_what_they_cannot_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        "data.json": "1\n",
        "gone.py": "X = 1\n",
        "big.txt": "small\n",
        ".gitattributes": "*.bin filter=lfs\n",
    }
    files |= {"model.bin": "pointer\n", "photo.bin": "pointer\n", "huge.txt": "y" * 100}
    repo = gitrepo.make_repo(tmp_path / "repo", files)
    (repo / "data.json").write_text("2\n")
    (repo / "gone.py").unlink()
    (repo / "new.txt").write_text("new\n")
    (repo / "model.bin").write_text("weights\n")
    (repo / "big.txt").write_text("x" * 100)
    git(repo, "add", "-A")
    # Unchanged as git sees them: a file larger than the limit, and one whose filter (LFS) wrote the real
    # bytes for the pointer that is committed and staged - neither is a change to name.
    (repo / "photo.bin").write_text("the picture\n")
    monkeypatch.setattr(gitdiff, "LOAD_LIMIT", 50)

    for changes in (gitdiff.changed_files(repo, "HEAD"), gitdiff.staged_changes(repo)):
        by_path = {change.relpath: change for change in changes}
        assert set(by_path) == {"data.json", "gone.py", "new.txt", "model.bin", "big.txt"}
        assert (by_path["data.json"].base, by_path["data.json"].now) == (b"1\n", b"2\n")
        assert (by_path["gone.py"].base, by_path["gone.py"].now) == (b"X = 1\n", None)
        assert (by_path["new.txt"].base, by_path["new.txt"].now) == (None, b"new\n")
        # Git LFS keeps a pointer in the repository, not the file the tests read; a large file is not read.
        assert by_path["model.bin"].skipped == "stored through the git filter 'lfs'"
        assert by_path["big.txt"].skipped.startswith("larger than")
        assert by_path["model.bin"].base is by_path["big.txt"].now is None
    assert gitdiff.changed_python_files(repo, "HEAD") == []


def test_touched_lines_of_a_zero_context_diff() -> None:
    diff = b"\n".join(
        [
            b"diff --git a/x.py b/x.py",
            b"@@ -3 +3 @@",  # one line changed: line 3
            b"@@ -10,0 +11,2 @@",  # two lines added: 11, 12
            b"@@ -20,2 +21,0 @@",  # two lines deleted after new line 21: it and the line below
        ]
    )
    assert gitdiff.touched_lines(diff) == {2, 10, 11, 20, 21}


def promisor_repository(repo: Path, command: str) -> None:
    """Make ``repo`` claim to be a partial clone missing calc/ops.py's blob at HEAD, whose promisor remote
    fetches it with ``command`` - allowed by the repository's own config, as a downloaded .git can say."""
    blob = git(repo, "rev-parse", "HEAD:calc/ops.py").strip()
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    git(repo, "config", "core.repositoryformatversion", "1")
    git(repo, "config", "extensions.partialClone", "origin")
    git(repo, "config", "remote.origin.url", str(repo.parent / "nowhere"))
    git(repo, "config", "remote.origin.promisor", "true")
    git(repo, "config", "remote.origin.uploadpack", command)
    git(repo, "config", "protocol.allow", "always")
    git(repo, "config", "protocol.file.allow", "always")


def test_reading_a_partial_clones_missing_object_runs_no_command_of_its_remote(
    repo: Path, tmp_path: Path
) -> None:
    # Before, reading HEAD's text ran the remote's uploadpack: `-c protocol.allow=never` does not override
    # the repository's `protocol.file.allow`, and git 2.39 fetches a missing object lazily.
    marker = tmp_path / "ran"
    promisor_repository(repo, f"sh -c 'touch {marker}; exit 1'")

    assert gitdiff.head_text(repo, "calc/ops.py") is None
    assert not marker.exists()


def test_git_runs_with_repository_commands_disabled(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    stage(repo, "calc/ops.py", CALC.replace("return a * b", "return b * a"))
    git(repo, "config", "core.fsmonitor", f"touch {marker}; false")
    git(repo, "config", "diff.external", f"sh -c 'touch {marker}'")
    git(repo, "config", "core.pager", f"touch {marker}; cat")

    files = gitdiff.staged_python_files(repo)

    assert [(f.relpath, sorted(f.lines)) for f in files] == [("calc/ops.py", [8])]
    assert not marker.exists()
