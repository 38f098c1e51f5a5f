"""A monorepo (a uv workspace): each member is a project of its own, as pytest sees it, and the workspace's
one ``.venv`` at the top runs every member's tests.

pytest, run on a member's tests, takes the nearest configuration above them as its rootdir - the member's own
``[tool.pytest.ini_options]``, else the workspace's - so two members may have test files of the same name, and
each member's settings (``pythonpath``, ``addopts``) hold for its tests only. ``check`` and ``fix`` used to
take one root for every file given (the first file's project, or the repository's top): a commit touching two
members could not be checked, and the member's configuration was not the one that ran. Real repositories,
real subprocesses of the CLI, no model.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import gitrepo
from gitrepo import git
from lsp_verify import monorepo
from lsp_verify.check import CheckOptions
from lsp_verify.check import run_check as run_check_here
from lsp_verify.check_guards import Change
from lsp_verify.config import find_project_root
from test_check import run_check, stage
from test_check_scale import trusted_settings
from test_interpreter import make_venv, needs_bwrap

MEMBER = """\
[project]
name = "{name}"
version = "0"

[tool.pytest.ini_options]
pythonpath = ["src"]
"""

WORKSPACE = {
    "pyproject.toml": '[project]\nname = "mono"\n\n[tool.uv.workspace]\nmembers = ["packages/*"]\n',
    ".gitignore": ".venv\n",
    "packages/alpha/pyproject.toml": MEMBER.format(name="alpha"),
    "packages/alpha/src/alpha/__init__.py": "",
    # `units` is installed only in the workspace's .venv.
    "packages/alpha/src/alpha/core.py": textwrap.dedent(
        """\
        import units


        def clamp(value: int, low: int, high: int) -> int:
            return max(low, min(value, high))


        def to_mm(cm: int) -> int:
            return cm * units.MM_PER_CM
        """
    ),
    # Both members have tests/test_helpers.py: collected together from the top, pytest refuses the second.
    "packages/alpha/tests/test_helpers.py": textwrap.dedent(
        """\
        from alpha.core import clamp, to_mm


        def test_clamp() -> None:
            assert clamp(-1, 0, 3) == 0
            assert clamp(5, 0, 3) == 3


        def test_to_mm() -> None:
            assert to_mm(2) == 20
        """
    ),
    "packages/beta/pyproject.toml": MEMBER.format(name="beta"),
    "packages/beta/src/beta/__init__.py": "",
    "packages/beta/src/beta/util.py": "def percent(value: int) -> int:\n    return min(max(value, 0), 100)\n",
    "packages/beta/tests/test_helpers.py": textwrap.dedent(
        """\
        from beta.util import percent


        def test_percent() -> None:
            assert percent(150) == 100
            assert percent(42) == 42
        """
    ),
}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    repo = gitrepo.make_repo(tmp_path / "mono", WORKSPACE)
    make_venv(repo / ".venv", with_pytest=True, packages={"units": "MM_PER_CM = 10\n"})
    return repo


def check_json(repo: Path, tmp_path: Path, *args: str) -> tuple[int, dict[str, object]]:
    proc = run_check(repo, tmp_path, "--format", "json", *args)
    return proc.returncode, json.loads(proc.stdout)


def by_function(report: dict[str, object]) -> dict[str, dict[str, object]]:
    functions = report["functions"]
    assert isinstance(functions, list)
    return {f"{f['file']}:{f['qualname']}": f for f in functions}


# ------------------------------------------------------------------------------------------- the root


def test_a_member_with_its_own_pytest_configuration_is_its_own_project(tmp_path: Path) -> None:
    repo = gitrepo.make_repo(tmp_path / "mono", WORKSPACE)
    member = repo / "packages" / "alpha"
    assert find_project_root(member / "src" / "alpha" / "core.py") == member
    assert (
        find_project_root(repo / "packages" / "beta" / "tests" / "test_helpers.py")
        == repo / "packages" / "beta"
    )


def test_a_member_without_one_is_run_with_the_workspaces_as_pytest_would(tmp_path: Path) -> None:
    files = {**WORKSPACE, "packages/alpha/pyproject.toml": '[project]\nname = "alpha"\nversion = "0"\n'}
    files["pyproject.toml"] += '\n[tool.pytest.ini_options]\ntestpaths = ["packages"]\n'
    repo = gitrepo.make_repo(tmp_path / "mono", files)
    # pytest walks past a pyproject.toml without its section to the one with it.
    assert find_project_root(repo / "packages" / "alpha" / "src" / "alpha" / "core.py") == repo
    assert (
        find_project_root(repo / "packages" / "beta" / "src" / "beta" / "util.py")
        == repo / "packages" / "beta"
    )


def test_without_any_pytest_configuration_the_nearest_project_is_the_root(tmp_path: Path) -> None:
    files = {path: text for path, text in WORKSPACE.items() if not path.endswith("pyproject.toml")}
    files["packages/alpha/setup.py"] = "from setuptools import setup\n\nsetup()\n"
    repo = gitrepo.make_repo(tmp_path / "mono", files)
    assert (
        find_project_root(repo / "packages" / "alpha" / "src" / "alpha" / "core.py")
        == repo / "packages" / "alpha"
    )
    assert find_project_root(repo / "packages" / "beta" / "src" / "beta" / "util.py") == repo


def test_the_search_ends_at_the_repository_and_at_the_editors_workspace_folder(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # outside the repository: not the project's
    files = {path: text for path, text in WORKSPACE.items() if not path.endswith("pyproject.toml")}
    repo = gitrepo.make_repo(tmp_path / "mono", files)
    core = repo / "packages" / "alpha" / "src" / "alpha" / "core.py"
    assert find_project_root(core) == repo
    # In the editor nothing above the workspace folder is trusted; with nothing below it, it is the root.
    assert find_project_root(core, within=repo / "packages" / "alpha") == repo / "packages" / "alpha"


def test_a_hostile_repositorys_configuration_files_cannot_hang_the_search(tmp_path: Path) -> None:
    """The editor asks for a file's project on every code action: a FIFO named tox.ini would block a read
    forever, a huge setup.cfg would be read whole. Only regular files are read, and only their start."""
    import os
    import threading

    repo = gitrepo.make_repo(tmp_path / "hostile", {"pkg/mod.py": "def f() -> int:\n    return 1\n"})
    os.mkfifo(repo / "tox.ini")
    with (repo / "setup.cfg").open("w") as big:
        big.write("# padding\n" * 300_000 + "[tool:pytest]\n")  # 3 MB: its section is past what is read
    found: list[Path] = []
    module = repo / "pkg" / "mod.py"
    search = threading.Thread(target=lambda: found.append(find_project_root(module)), daemon=True)
    search.start()
    search.join(timeout=10)
    assert found == [repo]  # the repository's top (.git), not a configuration it could not read


# ------------------------------------------------------------------------------------------- check


@needs_bwrap
def test_files_of_two_members_are_each_checked_in_their_own_project_with_the_workspaces_venv(
    workspace: Path, tmp_path: Path
) -> None:
    code, report = check_json(
        workspace, tmp_path, "packages/alpha/src/alpha/core.py", "packages/beta/src/beta/util.py"
    )

    assert code == 0, report
    functions = by_function(report)
    assert set(functions) == {
        "packages/alpha/src/alpha/core.py:clamp",
        "packages/alpha/src/alpha/core.py:to_mm",
        "packages/beta/src/beta/util.py:percent",
    }, "paths are relative to the repository's top, where CI annotations point"
    assert all(f["status"] == "pass" and f["evidence"] == "tests" for f in functions.values()), functions
    assert report["root"] == str(workspace)


@needs_bwrap
def test_a_staged_change_breaking_a_members_test_is_blocked(workspace: Path, tmp_path: Path) -> None:
    core = "packages/alpha/src/alpha/core.py"
    stage(workspace, core, WORKSPACE[core].replace("max(low, min(value, high))", "min(value, high)"))
    stage(
        workspace,
        "packages/beta/src/beta/util.py",
        "def percent(value: int) -> int:\n    return max(0, min(value, 100))\n",
    )

    code, report = check_json(workspace, tmp_path)

    assert code == 1, report
    functions = by_function(report)
    assert functions["packages/beta/src/beta/util.py:percent"]["status"] == "pass", functions
    clamp = functions["packages/alpha/src/alpha/core.py:clamp"]
    assert clamp["status"] == "fail"
    assert clamp["tests"]["failed"] == ["packages/alpha/tests/test_helpers.py::test_clamp"]


@needs_bwrap
def test_github_annotations_of_a_member_point_at_the_file_from_the_repositorys_top(
    workspace: Path, tmp_path: Path
) -> None:
    core = "packages/alpha/src/alpha/core.py"
    stage(workspace, core, WORKSPACE[core].replace("max(low, min(value, high))", "min(value, high)"))

    proc = run_check(workspace, tmp_path, "--format", "github", "--changed", core)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"::error file={core},line=4," in proc.stdout


# ------------------------------------------------------------------------------------------- the editor


def test_only_the_verifiers_of_the_projects_used_last_are_kept(tmp_path: Path) -> None:
    """Each member is a verifier with worker processes and a shadow: editing one member after another in a
    large monorepo must not keep them all."""
    from lsp_verify.config import Settings
    from lsp_verify.pipeline import LIVE_VERIFIERS, Pipeline

    members = [tmp_path / f"member{i}" for i in range(LIVE_VERIFIERS + 1)]
    for member in members:
        member.mkdir()
        (member / "pyproject.toml").write_text("[project]\nname = 'm'\n")
    pipeline = Pipeline(Settings())
    try:
        first = pipeline.verifier(members[0])
        second = pipeline.verifier(members[1])
        assert pipeline.verifier(members[0]) is first  # used again: now the most recent
        for member in members[2:]:
            pipeline.verifier(member)
        assert pipeline.verifier(members[0]) is first
        assert pipeline.verifier(members[1]) is not second  # the least recently used was closed
    finally:
        pipeline.close()


@pytest.mark.parametrize(
    ("setting", "why"),
    [
        ("suite_guard_timeout_s = 0", "suite_guard_timeout_s = 0"),
        (
            'sandbox = "none"',
            "its tests are shown another project's change only under bubblewrap, which this machine or the "
            "`sandbox` setting does not give",
        ),
    ],
)
def test_a_change_to_a_member_whose_importers_tests_cannot_run_on_it_says_so(
    tmp_path: Path, setting: str, why: str
) -> None:
    # beta imports alpha: where beta's tests cannot be run on alpha's change (see below), the report says so.
    uses = (
        "from alpha.core import clamp\n\n\ndef bounded(value: int) -> int:\n    return clamp(value, 0, 9)\n"
    )
    beta = MEMBER.format(name="beta") + f"\n[tool.lsp-verify]\n{setting}\n"
    files = {**WORKSPACE, "packages/beta/src/beta/uses.py": uses, "packages/beta/pyproject.toml": beta}
    repo = gitrepo.make_repo(tmp_path / "mono", files)
    make_venv(repo / ".venv", with_pytest=True, packages={"units": "MM_PER_CM = 10\n"})
    core = "packages/alpha/src/alpha/core.py"
    stage(repo, core, WORKSPACE[core].replace("cm * units.MM_PER_CM", "units.MM_PER_CM * cm"))

    code, report = check_json(repo, tmp_path)

    assert code == 0, report
    notes = report["notes"]
    assert isinstance(notes, list)
    assert (
        "packages/beta imports `alpha`, which this change touches (packages/alpha), and is a project of its "
        f"own: its tests were not run on the change ({why}; run `python -m pytest` there)"
    ) in notes, notes


# A member that imports another (beta uses alpha): a change to alpha that breaks beta's tests must fail, found
# by beta's suite run on alpha's change - as `python -m pytest` in packages/beta would find it on the tree.
SCALE = "def double(value: int) -> int:\n    return value * 2\n"
USES_SCALE = """\
from alpha.scale import double


def test_double() -> None:
    assert double(3) == 6
"""


def dependent_workspace(tmp_path: Path, reach: str) -> Path:
    """The workspace with ``alpha.scale`` (no tests of alpha's own) that beta's tests use, beta reaching
    alpha by a relative ``pythonpath`` (``reach = "pythonpath"``) or through an editable install of alpha in
    the workspace's .venv (``"editable"``)."""
    files = {
        **WORKSPACE,
        "packages/alpha/src/alpha/scale.py": SCALE,
        "packages/beta/tests/test_uses.py": USES_SCALE,
    }
    if reach == "pythonpath":
        files["packages/beta/pyproject.toml"] = MEMBER.format(name="beta").replace(
            '["src"]', '["src", "../alpha/src"]'
        )
    repo = gitrepo.make_repo(tmp_path / "mono", files)
    python = make_venv(repo / ".venv", with_pytest=True, packages={"units": "MM_PER_CM = 10\n"})
    if reach == "editable":
        site = next((python.parent.parent / "lib").glob("python3*/site-packages"))
        (site / "_alpha.pth").write_text(f"{repo / 'packages/alpha/src'}\n")
    return repo


@needs_bwrap
@pytest.mark.parametrize("reach", ["pythonpath", "editable"])
def test_a_change_to_a_member_that_breaks_another_members_tests_fails(tmp_path: Path, reach: str) -> None:
    repo = dependent_workspace(tmp_path, reach)
    scale = "packages/alpha/src/alpha/scale.py"
    stage(repo, scale, SCALE.replace("value * 2", "value * 3"))

    code, report = check_json(repo, tmp_path)

    assert code == 1, report
    double = by_function(report)[f"{scale}:double"]
    assert double["status"] == "fail", double
    assert double["tests"]["failed"] == ["packages/beta/tests/test_uses.py::test_double"], double
    assert "packages/beta/tests/test_uses.py::test_double failed" in double["message"], double
    notes = report["notes"]
    assert isinstance(notes, list)
    assert not any("its tests were not run on the change" in note for note in notes), notes


@needs_bwrap
@pytest.mark.parametrize("reach", ["pythonpath", "editable"])
def test_a_change_to_a_member_that_another_members_tests_pass_with_passes(tmp_path: Path, reach: str) -> None:
    repo = dependent_workspace(tmp_path, reach)
    # A project under a tests directory is test data, run by the tests around it: never run as an importer.
    fixture = repo / "packages/beta/tests/fixtures/demo"
    fixture.mkdir(parents=True)
    (fixture / "pyproject.toml").write_text(MEMBER.format(name="demo"))
    (fixture / "test_demo.py").write_text("import alpha\n\n\ndef test_imports() -> None:\n    assert alpha\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "fixture")
    scale = "packages/alpha/src/alpha/scale.py"
    stage(repo, scale, SCALE.replace("value * 2", "value + value"))

    code, report = check_json(repo, tmp_path)

    assert code == 0, report
    assert by_function(report)[f"{scale}:double"]["status"] == "pass", report
    notes = report["notes"]
    assert isinstance(notes, list)
    assert any(note.startswith("packages/beta: the whole test suite") for note in notes), notes
    assert not any("demo" in note for note in notes), notes


@needs_bwrap
def test_a_change_to_a_member_that_stops_another_members_tests_from_being_collected_fails(
    tmp_path: Path,
) -> None:
    repo = dependent_workspace(tmp_path, "pythonpath")
    scale = "packages/alpha/src/alpha/scale.py"
    stage(repo, scale, SCALE.replace("def double(", "def twice("))

    code, report = check_json(repo, tmp_path)

    assert code == 1, report
    failed = [f for f in report["functions"] if f["status"] == "fail"]  # type: ignore[union-attr]
    assert failed and all(f["file"] == scale for f in failed), report
    assert any("packages/beta/tests/test_uses.py" in f["message"] for f in failed), failed


@needs_bwrap
def test_a_member_whose_tests_import_an_installed_copy_of_the_changed_one_says_they_did_not_test_it(
    tmp_path: Path,
) -> None:
    # beta's tests import alpha from the environment's site-packages (installed, not editable): they cannot
    # see alpha's change, as plain pytest in packages/beta would not; said, never taken for a guard.
    files = {
        **WORKSPACE,
        "packages/alpha/src/alpha/scale.py": SCALE,
        "packages/beta/tests/test_uses.py": USES_SCALE,
    }
    repo = gitrepo.make_repo(tmp_path / "mono", files)
    python = make_venv(repo / ".venv", with_pytest=True, packages={"units": "MM_PER_CM = 10\n", "alpha/": ""})
    installed = next((python.parent.parent / "lib").glob("python3*/site-packages")) / "alpha" / "scale.py"
    installed.write_text(SCALE)
    stage(repo, "packages/alpha/src/alpha/scale.py", SCALE.replace("value * 2", "value * 3"))

    code, report = check_json(repo, tmp_path)

    assert code == 0, report
    notes = report["notes"]
    assert isinstance(notes, list)
    assert (
        f"packages/beta: its tests imported the changed module from {installed}, not from packages/alpha: "
        "the change was not tested there"
    ) in notes, notes


@needs_bwrap
def test_another_members_tests_see_the_staged_change_not_the_work_trees(tmp_path: Path) -> None:
    # The commit holds alpha's staged files: beta's tests run on them, not on an unstaged edit of alpha's
    # other module that hides the breakage (quad no longer calls double in the work tree only).
    other = (
        "from alpha.scale import double\n\n\ndef quad(value: int) -> int:\n    return double(double(value))\n"
    )
    test_quad = "from alpha.other import quad\n\n\ndef test_quad() -> None:\n    assert quad(1) == 4\n"
    files = {
        **WORKSPACE,
        "packages/alpha/src/alpha/scale.py": SCALE,
        "packages/alpha/src/alpha/other.py": other,
        "packages/beta/pyproject.toml": MEMBER.format(name="beta").replace(
            '["src"]', '["src", "../alpha/src"]'
        ),
        "packages/beta/tests/test_quad.py": test_quad,
    }
    repo = gitrepo.make_repo(tmp_path / "mono", files)
    make_venv(repo / ".venv", with_pytest=True, packages={"units": "MM_PER_CM = 10\n"})
    scale = "packages/alpha/src/alpha/scale.py"
    stage(repo, scale, SCALE.replace("value * 2", "value * 3"))
    (repo / "packages/alpha/src/alpha/other.py").write_text(
        other.replace("double(double(value))", "value * 4")
    )

    code, report = check_json(repo, tmp_path)

    assert code == 1, report
    double = by_function(report)[f"{scale}:double"]
    assert double["tests"]["failed"] == ["packages/beta/tests/test_quad.py::test_quad"], double


def test_past_the_most_importers_run_the_rest_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each importer's suite may take up to suite_guard_timeout_s: past monorepo.MAX_GUARDS, said, not run.
    repo = dependent_workspace(tmp_path, "pythonpath")
    stage(repo, "packages/alpha/src/alpha/scale.py", SCALE.replace("value * 2", "value * 3"))
    monkeypatch.setattr(monorepo, "MAX_GUARDS", 0)

    report = run_check_here(CheckOptions(), settings_for=trusted_settings, cwd=repo)

    assert report.exit_code == 0, report
    assert (
        "packages/beta imports `alpha`, which this change touches (packages/alpha), and is a project of its "
        "own: its tests were not run on the change (the first 0 of the 1 that import it were run; run "
        "`python -m pytest` there)"
    ) in report.notes, report.notes


@needs_bwrap
@pytest.mark.parametrize("reach", ["pythonpath", "editable"])
def test_a_change_to_a_member_that_breaks_another_members_types_fails(tmp_path: Path, reach: str) -> None:
    # No test fails (double(3) is still 6 at run time): mypy finds beta's call wrong once alpha's signature
    # changes, as `mypy` run over beta would.
    repo = dependent_workspace(tmp_path, reach)
    uses = "from alpha.scale import double\n\n\ndef bounded(value: int) -> int:\n    return double(value)\n"
    (repo / "packages/beta/src/beta/uses.py").write_text(uses)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "uses")
    scale = "packages/alpha/src/alpha/scale.py"
    stage(repo, scale, "def double(value: str) -> str:\n    return value * 2\n")

    code, report = check_json(repo, tmp_path)

    assert code == 1, report
    double = by_function(report)[f"{scale}:double"]
    assert double["status"] == "fail", double
    uses_errors = "packages/beta/src/beta/uses.py: line 5: "
    assert double["mypy_new_errors"] == [
        uses_errors + 'Incompatible return value type (got "str", expected "int")  [return-value]',
        uses_errors + 'Argument 1 to "double" has incompatible type "int"; expected "str"  [arg-type]',
    ], double
    assert "found by type-checking packages/beta/src/beta/uses.py" in double["message"], double


@needs_bwrap
def test_a_change_to_two_members_where_one_breaks_the_others_tests_fails(tmp_path: Path) -> None:
    # beta is checked as a project of the change too: its own guard undoes only beta's change, so a test that
    # alpha's change breaks failed on both sides there ("failing before this change too") and passed.
    repo = dependent_workspace(tmp_path, "pythonpath")
    scale = "packages/alpha/src/alpha/scale.py"
    stage(repo, scale, SCALE.replace("value * 2", "value * 3"))
    util = "packages/beta/src/beta/util.py"
    stage(repo, util, WORKSPACE[util].replace("min(max(value, 0), 100)", "max(0, min(value, 100))"))

    code, report = check_json(repo, tmp_path)

    assert code == 1, report
    functions = by_function(report)
    assert functions[f"{util}:percent"]["status"] == "pass", functions
    double = functions[f"{scale}:double"]
    assert double["status"] == "fail", double
    assert double["tests"]["failed"] == ["packages/beta/tests/test_uses.py::test_double"], double


def editable_workspace(tmp_path: Path, files: dict[str, str]) -> Path:
    """The workspace of ``files``, alpha and beta installed editable in its one .venv (as `uv sync` does)."""
    repo = gitrepo.make_repo(tmp_path / "mono", files)
    python = make_venv(repo / ".venv", with_pytest=True, packages={"units": "MM_PER_CM = 10\n"})
    site = next((python.parent.parent / "lib").glob("python3*/site-packages"))
    (site / "_members.pth").write_text(
        "".join(f"{repo / 'packages' / m / 'src'}\n" for m in ("alpha", "beta"))
    )
    return repo


@needs_bwrap
def test_a_change_that_breaks_the_tests_of_a_member_importing_it_through_another_fails(
    tmp_path: Path,
) -> None:
    # gamma's code imports beta only, beta's imports alpha (a uv workspace: every member installed editable in
    # the one .venv). alpha's change breaks gamma's tests through beta; beta's own tests do not see it.
    twice = (
        "from alpha.scale import double\n\n\n"
        "def quadruple(value: int) -> int:\n    return double(double(value))\n"
    )
    files = {
        **WORKSPACE,
        "packages/alpha/src/alpha/scale.py": SCALE,
        "packages/beta/src/beta/twice.py": twice,
        "packages/gamma/pyproject.toml": MEMBER.format(name="gamma"),
        "packages/gamma/src/gamma/__init__.py": "",
        "packages/gamma/src/gamma/area.py": (
            "import beta.twice\n\n\ndef square_of(side: int) -> int:\n    return beta.twice.quadruple(side)\n"
        ),
        "packages/gamma/tests/test_area.py": (
            "from gamma.area import square_of\n\n\n"
            "def test_square_of() -> None:\n    assert square_of(1) == 4\n"
        ),
    }
    repo = editable_workspace(tmp_path, files)
    scale = "packages/alpha/src/alpha/scale.py"
    stage(repo, scale, SCALE.replace("value * 2", "value + 2"))

    code, report = check_json(repo, tmp_path)

    assert code == 1, report
    double = by_function(report)[f"{scale}:double"]
    assert double["status"] == "fail", double
    assert double["tests"]["failed"] == ["packages/gamma/tests/test_area.py::test_square_of"], double


def test_a_member_importing_the_change_only_through_another_is_named_with_the_package_it_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        **WORKSPACE,
        "packages/alpha/src/alpha/scale.py": SCALE,
        "packages/beta/src/beta/twice.py": "from alpha.scale import double\n",
        "packages/gamma/pyproject.toml": MEMBER.format(name="gamma"),
        "packages/gamma/src/gamma/area.py": "import os, beta.twice as twice\n",
    }
    repo = gitrepo.make_repo(tmp_path / "mono", files)
    stage(repo, "packages/alpha/src/alpha/scale.py", SCALE.replace("value * 2", "value + 2"))
    monkeypatch.setattr(monorepo, "MAX_GUARDS", 1)

    report = run_check_here(CheckOptions(), settings_for=trusted_settings, cwd=repo)

    assert (
        "packages/gamma imports `alpha` (through `beta`), which this change touches (packages/alpha), and is "
        "a project of its own: its tests were not run on the change (the first 1 of the 2 that import it "
        "were run; run `python -m pytest` there)"
    ) in report.notes, report.notes


def test_importers_are_followed_through_members_and_never_back_to_the_change(tmp_path: Path) -> None:
    files = {
        **WORKSPACE,
        "packages/alpha/src/alpha/scale.py": "import beta.twice\n",  # alpha and beta import each other
        "packages/beta/src/beta/twice.py": "from alpha.scale import double\n",
        "packages/gamma/pyproject.toml": MEMBER.format(name="gamma"),
        "packages/gamma/src/gamma/area.py": "import os, beta.twice as twice\n",
        "packages/delta/pyproject.toml": MEMBER.format(name="delta"),
        "packages/delta/src/delta/uses.py": "    from gamma.area import twice  # indented\n",
        "packages/epsilon/pyproject.toml": MEMBER.format(name="epsilon"),
        # beta's example script is no package that others import: `import logging` is the standard library's.
        "packages/beta/examples/logging.py": "print('hello')\n",
        "packages/epsilon/src/epsilon/uses.py": "from .gamma import area\nimport alphabet\nimport logging\n",
    }
    repo = gitrepo.make_repo(tmp_path / "mono", files)
    alpha = repo / "packages/alpha"
    change = Change(alpha / "src/alpha/scale.py", "", "")

    touched = monorepo.touched_packages({alpha: ([], [change])})
    found = monorepo.importers(repo, touched, git(repo, "ls-files", "*.py").stdout.split())

    assert {
        relpath: imports
        for relpath, imports in ((p.relative_to(repo).as_posix(), i) for p, i in found.items())
    } == {
        "packages/beta": monorepo.Imports({"alpha": alpha}),
        "packages/gamma": monorepo.Imports({"alpha": alpha}, {"alpha": "beta"}),
        "packages/delta": monorepo.Imports({"alpha": alpha}, {"alpha": "gamma"}),
    }
    assert next(iter(found)) == repo / "packages/beta", "those that import the change directly run first"


@needs_bwrap
def test_a_change_that_breaks_the_types_of_a_member_importing_it_through_another_fails(
    tmp_path: Path,
) -> None:
    # gamma never names alpha: beta.make() returns alpha's Scale, whose factor() the change makes a str.
    # mypy run over gamma finds gamma's doubled() wrong; no test runs it.
    files = {
        **WORKSPACE,
        "packages/alpha/src/alpha/scale.py": "class Scale:\n    def factor(self) -> int:\n        return 2\n",
        "packages/beta/src/beta/make.py": (
            "from alpha.scale import Scale\n\n\ndef make() -> Scale:\n    return Scale()\n"
        ),
        "packages/gamma/pyproject.toml": MEMBER.format(name="gamma"),
        "packages/gamma/src/gamma/__init__.py": "",
        # Typed packages: mypy reads an installed one only with the marker (PEP 561).
        "packages/alpha/src/alpha/py.typed": "",
        "packages/beta/src/beta/py.typed": "",
        "packages/gamma/src/gamma/area.py": (
            "import beta.make\n\n\ndef doubled(n: int) -> int:\n    return n * beta.make.make().factor()\n"
        ),
    }
    repo = editable_workspace(tmp_path, files)
    scale = "packages/alpha/src/alpha/scale.py"
    stage(repo, scale, "class Scale:\n    def factor(self) -> str:\n        return '2'\n")

    code, report = check_json(repo, tmp_path)

    assert code == 1, report
    factor = by_function(report)[f"{scale}:Scale.factor"]
    assert factor["status"] == "fail", factor
    assert factor["mypy_new_errors"] == [
        "packages/gamma/src/gamma/area.py: line 5: "
        'Incompatible return value type (got "str", expected "int")  [return-value]'
    ], factor


@pytest.mark.parametrize(
    ("limit", "why"),
    [
        ("MAX_SCAN_PROJECTS", "the change touches 1 projects"),
        ("MAX_SCAN_FILES", "the repository has 8 Python files, more than 1"),
    ],
)
def test_where_the_importers_are_not_looked_for_the_report_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str, why: str
) -> None:
    # Past either bound the scan is not made: never silently (before, nothing said beta was not run).
    repo = dependent_workspace(tmp_path, "pythonpath")
    stage(repo, "packages/alpha/src/alpha/scale.py", SCALE.replace("value * 2", "value * 3"))
    monkeypatch.setattr(monorepo, limit, 1)

    report = run_check_here(CheckOptions(), settings_for=trusted_settings, cwd=repo)

    assert (
        f"the other projects of the repository that import the change were not looked for ({why}): their "
        "tests were not run on it"
    ) in report.notes, report.notes


def test_a_change_to_tests_alone_past_the_scans_bound_says_nothing_of_importers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No package changed: there is nothing another member could import, looked for or not.
    repo = dependent_workspace(tmp_path, "pythonpath")
    stage(repo, "packages/beta/tests/test_uses.py", USES_SCALE.replace("double(3) == 6", "double(4) == 8"))
    monkeypatch.setattr(monorepo, "MAX_SCAN_FILES", 1)

    report = run_check_here(CheckOptions(), settings_for=trusted_settings, cwd=repo)

    assert report.exit_code == 0, report
    assert not [note for note in report.notes if "import the change" in note], report.notes


def test_a_repository_of_one_project_past_the_scans_bound_says_nothing_of_importers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {path[len("packages/alpha/") :]: text for path, text in WORKSPACE.items() if "alpha" in path}
    repo = gitrepo.make_repo(tmp_path / "alpha", {**files, "src/alpha/scale.py": SCALE})
    stage(repo, "src/alpha/scale.py", SCALE.replace("value * 2", "value + value"))
    monkeypatch.setattr(monorepo, "MAX_SCAN_FILES", 1)

    report = run_check_here(CheckOptions(), settings_for=trusted_settings, cwd=repo)

    assert report.functions, report
    assert not [note for note in report.notes if "import the change" in note], report.notes


@needs_bwrap
def test_a_change_failing_its_own_members_tests_also_lists_the_other_members_tests_it_breaks(
    tmp_path: Path,
) -> None:
    repo = dependent_workspace(tmp_path, "pythonpath")
    own = "from alpha.scale import double\n\n\ndef test_double() -> None:\n    assert double(1) == 2\n"
    (repo / "packages/alpha/tests/test_scale.py").write_text(own)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "alpha's own test")
    scale = "packages/alpha/src/alpha/scale.py"
    stage(repo, scale, SCALE.replace("value * 2", "value * 3"))

    code, report = check_json(repo, tmp_path)

    assert code == 1, report
    double = by_function(report)[f"{scale}:double"]
    assert double["message"] == "tests: tests/test_scale.py::test_double failed: assert 3 == 2", double
    assert double["tests"]["failed"] == [
        "packages/alpha/tests/test_scale.py::test_double",
        "packages/beta/tests/test_uses.py::test_double",
    ], double
