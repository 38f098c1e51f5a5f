"""The verification cascade end to end, on fixture projects, with hand-written candidates.

Every test copies a fixture to tmp_path and checks afterwards that the copy is byte-for-byte unchanged,
with no new files (no __pycache__, .mypy_cache, .pytest_cache).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lsp_verify.cancel import Cancelled, CancelToken
from lsp_verify.config import Settings
from lsp_verify.syntax.target import EditTarget, TargetKind
from lsp_verify.verify.cascade import Verifier, VerifyError
from lsp_verify.verify.pytest_run import failure_summary
from lsp_verify.verify.sandbox import choose_isolation
from lsp_verify.verify.types import Candidate, Evidence

FIXTURES = Path(__file__).parent / "fixtures"
STUB = "    raise NotImplementedError\n"
BWRAP = choose_isolation("auto") == "bwrap"


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a hash of its content (or link target)."""
    found = {}
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            path = Path(directory) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = "link:" + os.readlink(path)
            elif path.is_file():
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[key] = "dir"
    return found


def target_for(path: Path, name: str) -> EditTarget:
    """An EditTarget for function ``name``; the cascade only uses its path and names."""
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if text.startswith(f"def {name}("))
    return EditTarget(
        path=path, name=name, qualname=name, class_name=None, kind=TargetKind.STUB, is_async=False,
        def_start_line=line, def_end_line=line + 1, body_start_byte=0, body_end_byte=0,
        body_start_line=line + 1, body_start_col=4, body_end_line=line + 1, body_end_col=0, indent="    ",
        header=lines[line], docstring=None, current_body="", source_sha256="",
    )  # fmt: skip


def candidate(index: int, text: str, old: str, new: str) -> Candidate:
    assert old in text
    return Candidate(index=index, body=new, new_text=text.replace(old, new, 1), key=new)


def descendants() -> set[int]:
    """Live processes descended from this one (zombies excluded)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker in Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry))
            except OSError:
                continue
    return found


class Project:
    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.before = snapshot(root)
        self.verifier = Verifier(root, settings)

    def close(self) -> None:
        self.verifier.close()
        assert snapshot(self.root) == self.before, "the user's tree changed"
        deadline = time.monotonic() + 5
        while descendants() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not descendants(), "a process outlived the verifier"


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[Callable[..., Project]]:
    """``make_project(name, **settings)``: a trusted Verifier on a copy of fixture ``name``."""
    made: list[Project] = []

    def make(name: str = "calc", **overrides: object) -> Project:
        root = tmp_path / name
        shutil.copytree(FIXTURES / name, root)
        values = {"trusted": True, "test_timeout_s": 10.0, **overrides}
        made.append(Project(root, Settings().updated(values, "test")))
        return made[-1]

    yield make
    for created in made:
        created.close()


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    return make_project("calc")


def calc(project: Project, name: str = "add") -> tuple[Path, str, EditTarget]:
    path = project.root / "calc" / "core.py"
    return path, path.read_text(), target_for(path, name)


def test_correct_candidate_passes_with_tests_and_reports_fixed_tests(project: Project) -> None:
    _, text, target = calc(project)
    plan = project.verifier.prepare(target, text, CancelToken())
    assert "tests/test_calc.py::test_add" in plan.tests_selected
    assert "calc/core.py::calc.core.add" in plan.tests_selected  # the docstring's doctest
    assert "tests/test_calc.py::test_mul" not in plan.tests_selected
    stages: list[str] = []
    result = project.verifier.verify(
        plan, candidate(0, text, STUB, "    return a + b\n"), CancelToken(), stages.append
    )
    assert result.passed, result.first_error
    assert result.evidence is Evidence.TESTS
    assert stages == ["mypy", "tests", "probe"]
    assert set(result.tests_passed) == set(plan.tests_selected)
    # Every selected test failed on the stub and passes now.
    assert set(result.tests_fixed) == set(plan.tests_selected)


def test_candidate_adding_a_type_error_is_rejected_at_mypy(project: Project) -> None:
    _, text, target = calc(project)
    plan = project.verifier.prepare(target, text, CancelToken())
    result = project.verifier.verify(plan, candidate(0, text, STUB, "    return str(a + b)\n"), CancelToken())
    assert not result.passed
    assert result.stages[-1].stage == "mypy"
    assert "Incompatible return value type" in (result.first_error or "")
    assert result.new_mypy_errors


def test_a_candidate_of_the_last_ones_size_written_in_the_same_second_is_type_checked_afresh(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mypy trusts a cached module whose path, size and mtime (whole seconds) match: with the same relative
    # path in every shadow, the second candidate got the first one's verdict - a type error passed.
    _, text, target = calc(project, "mul")
    plan = project.verifier.prepare(target, text, CancelToken())
    write_bytes = Path.write_bytes

    def in_one_second(path: Path, data: bytes) -> int:
        written = write_bytes(path, data)
        os.utime(path, (1_700_000_000, 1_700_000_000))
        return written

    monkeypatch.setattr(Path, "write_bytes", in_one_second)
    old = "    return a * b\n"
    good = project.verifier.verify(plan, candidate(0, text, old, "    return a * b * 1\n"), CancelToken())
    bad = project.verifier.verify(plan, candidate(1, text, old, "    return a * b / 1\n"), CancelToken())

    assert good.passed, good.first_error
    assert not bad.passed and bad.stages[-1].stage == "mypy", bad
    assert 'Incompatible return value type (got "float", expected "int")' in (bad.first_error or "")


def test_syntax_error_is_rejected_at_parse(project: Project) -> None:
    _, text, target = calc(project)
    plan = project.verifier.prepare(target, text, CancelToken())
    result = project.verifier.verify(plan, candidate(0, text, STUB, "    return a +\n"), CancelToken())
    assert [s.stage for s in result.stages] == ["parse"]
    assert not result.passed


def test_pre_existing_mypy_errors_do_not_fail_candidates(make_project: Callable[..., Project]) -> None:
    project = make_project("typed")
    path = project.root / "typed" / "core.py"
    text = path.read_text()
    plan = project.verifier.prepare(target_for(path, "greet"), text, CancelToken())
    assert len(plan.baseline_mypy_errors) >= 2
    good = project.verifier.verify(
        plan, candidate(0, text, 'return "hello"', 'return f"hello {name}"'), CancelToken()
    )
    assert good.passed, good.first_error
    bad = project.verifier.verify(
        plan, candidate(1, text, 'return "hello"', "return len(name)"), CancelToken()
    )
    assert not bad.passed and bad.stages[-1].stage == "mypy"


def test_candidate_breaking_a_passing_test_is_rejected_naming_it(project: Project) -> None:
    _, text, target = calc(project, "mul")
    plan = project.verifier.prepare(target, text, CancelToken())
    # add's docstring example (add is a stub: it fails) guards the module as any other test does.
    assert {o.nodeid: o.outcome for o in plan.baseline} == {
        "tests/test_calc.py::test_mul": "passed",
        "calc/core.py::calc.core.add": "failed",
    }
    result = project.verifier.verify(plan, candidate(0, text, "return a * b", "return a + b"), CancelToken())
    assert not result.passed
    assert result.tests_broken == ("tests/test_calc.py::test_mul",)
    assert "tests/test_calc.py::test_mul failed" in (result.first_error or "")


def test_hanging_candidate_times_out_quickly_and_leaves_no_process(
    make_project: Callable[..., Project],
) -> None:
    project = make_project("calc", test_timeout_s=2.0)
    _, text, target = calc(project)
    plan = project.verifier.prepare(target, text, CancelToken())
    started = time.monotonic()
    result = project.verifier.verify(
        plan, candidate(0, text, STUB, "    while True:\n        pass\n"), CancelToken()
    )
    assert time.monotonic() - started < 10
    assert not result.passed
    assert any(o.outcome == "timeout" for o in result.outcomes)
    assert "timeout" in (result.first_error or "")


def test_forked_sleeper_holding_output_is_killed(make_project: Callable[..., Project]) -> None:
    project = make_project("calc", test_timeout_s=3.0)
    _, text, target = calc(project)
    plan = project.verifier.prepare(target, text, CancelToken())
    body = (
        "    import os, subprocess, sys, time\n"
        "    subprocess.Popen(['sleep', '1000.4242'])\n"  # same process group, inherits stdout
        "    if os.fork() == 0:\n"
        "        time.sleep(1000)\n"
        "    return a + b\n"
    )
    started = time.monotonic()
    result = project.verifier.verify(plan, candidate(0, text, STUB, body), CancelToken())
    assert time.monotonic() - started < 15
    assert result.first_error is None or "timeout" not in result.first_error
    # The group is killed when the run ends; SIGKILLed processes take a moment to leave /proc.
    deadline = time.monotonic() + 5
    while processes_with("1000.4242") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_with("1000.4242"), "a process of the run outlived it"


@pytest.mark.skipif(
    not BWRAP, reason="escaping the process group is contained only by bubblewrap's PID namespace"
)
def test_setsid_escapee_dies_with_the_sandbox(make_project: Callable[..., Project]) -> None:
    project = make_project("calc", test_timeout_s=3.0)
    _, text, target = calc(project)
    plan = project.verifier.prepare(target, text, CancelToken())
    body = (
        "    import subprocess\n"
        "    subprocess.Popen(['sleep', '1000.4343'], start_new_session=True)\n"
        "    return a + b\n"
    )
    project.verifier.verify(plan, candidate(0, text, STUB, body), CancelToken())
    project.verifier.close()
    # The kernel kills the rest of a PID namespace as its init exits: give it a moment.
    deadline = time.monotonic() + 5
    while processes_with("1000.4343") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_with("1000.4343")


def test_writes_outside_the_shadow_do_not_reach_the_user(project: Project, tmp_path: Path) -> None:
    _, text, target = calc(project)
    plan = project.verifier.prepare(target, text, CancelToken())
    outside = tmp_path / "outside.txt"
    body = (
        "    from pathlib import Path\n"
        f"    root = Path({str(project.root)!r})\n"
        f"    for p in [root / 'pwned.txt', root / 'calc' / 'x.txt',\n"
        f"              Path({str(outside)!r})]:\n"
        "        try:\n"
        "            p.write_text('pwned')\n"
        "        except OSError:\n"
        "            pass\n"
        "    return a + b\n"
    )
    result = project.verifier.verify(plan, candidate(0, text, STUB, body), CancelToken())
    assert result.passed, result.first_error
    if not BWRAP:
        pytest.skip("without bubblewrap the filesystem is not read-only: only the shadow protects the user")
    assert not outside.exists()
    # Project.close checks the workspace is byte-for-byte unchanged, with no new files.


@pytest.mark.skipif(choose_isolation("auto") == "none", reason="no network isolation on this machine")
def test_network_is_unreachable_from_tests(project: Project) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    _, text, target = calc(project)
    plan = project.verifier.prepare(target, text, CancelToken())
    body = (
        "    import socket\n"
        "    try:\n"
        f"        socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'hi')\n"
        "    except OSError:\n"
        "        pass\n"
        "    return a + b\n"
    )
    result = project.verifier.verify(plan, candidate(0, text, STUB, body), CancelToken())
    assert result.passed, result.first_error
    with pytest.raises(TimeoutError):
        server.accept()
    server.close()


def test_uncollectable_tests_give_a_clear_verify_error(make_project: Callable[..., Project]) -> None:
    project = make_project("broken")
    path = project.root / "broken" / "core.py"
    with pytest.raises(VerifyError, match=r"cannot be collected.*module_that_does_not_exist"):
        project.verifier.prepare(target_for(path, "double"), path.read_text(), CancelToken())


def test_collection_errors_in_unrelated_files_do_not_block(make_project: Callable[..., Project]) -> None:
    project = make_project("partly")
    path = project.root / "partly" / "core.py"
    text = path.read_text()
    plan = project.verifier.prepare(target_for(path, "double"), text, CancelToken())
    assert plan.tests_selected == ("tests/test_core.py::test_double",)
    result = project.verifier.verify(plan, candidate(0, text, "return x + x", "return 2 * x"), CancelToken())
    assert result.passed and result.evidence is Evidence.TESTS


def test_cancel_during_a_test_run_kills_it_promptly(make_project: Callable[..., Project]) -> None:
    project = make_project("calc", test_timeout_s=60.0)
    _, text, target = calc(project)
    plan = project.verifier.prepare(target, text, CancelToken())
    cancel = CancelToken()
    timer = threading.Timer(1.0, cancel.cancel)
    timer.start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        project.verifier.verify(
            plan, candidate(0, text, STUB, "    import time\n    time.sleep(50)\n    return a + b\n"), cancel
        )
    assert time.monotonic() - started < 6


def test_untrusted_workspace_runs_mypy_but_no_tests(make_project: Callable[..., Project]) -> None:
    project = make_project("calc", trusted=False)
    _, text, target = calc(project)
    plan = project.verifier.prepare(target, text, CancelToken())
    assert plan.tests_selected == ()
    assert any("untrusted" in note for note in plan.notes)
    result = project.verifier.verify(plan, candidate(0, text, STUB, "    return a + b\n"), CancelToken())
    assert result.passed and result.evidence is Evidence.TYPES_ONLY


def test_shadow_is_private_and_removed_on_close(project: Project) -> None:
    shadow_dir = project.verifier._shadows.path
    assert (shadow_dir.stat().st_mode & 0o777) == 0o700
    project.verifier.close()
    assert not shadow_dir.exists()


def _site_dir(tmp_path: Path, sitecustomize: str) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(sitecustomize)
    return site


def test_imports_resolve_to_the_shadow_despite_an_editable_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "calc"
    shutil.copytree(FIXTURES / "calc", root)
    # An editable install's .pth puts the user's tree on sys.path.
    site = _site_dir(tmp_path, "import os, site\nsite.addsitedir(os.path.dirname(__file__))\n")
    (site / "__editable__.calc.pth").write_text(f"{root}\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    project = Project(root, Settings(trusted=True, test_timeout_s=10.0))
    try:
        _, text, target = calc(project)
        plan = project.verifier.prepare(target, text, CancelToken())
        result = project.verifier.verify(plan, candidate(0, text, STUB, "    return a + b\n"), CancelToken())
        assert result.passed and result.evidence is Evidence.TESTS
    finally:
        project.close()


@pytest.mark.parametrize("installed_by", ["pth", "pythonpath"])
def test_a_src_layout_installed_in_editable_mode_is_tested_through_the_shadow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed_by: str
) -> None:
    """`pip install -e .` of a src/ layout puts <root>/src on sys.path (or the user runs PYTHONPATH=src): the
    tests must import the candidate, not the user's unmodified module, and then judge it."""
    root = tmp_path / "shapes-project"
    (root / "src" / "shapes").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "shapes"\nversion = "0"\n')
    stub = "def area(width: int, height: int) -> int:\n    ...\n"
    (root / "src" / "shapes" / "__init__.py").write_text(stub)
    (root / "tests" / "test_shapes.py").write_text(
        "from shapes import area\n\n\ndef test_area() -> None:\n    assert area(2, 3) == 6\n"
    )
    if installed_by == "pth":
        site = _site_dir(tmp_path, "import os, site\nsite.addsitedir(os.path.dirname(__file__))\n")
        (site / "__editable__.shapes.pth").write_text(f"{root / 'src'}\n")
        extra = str(site)
    else:
        extra = str(root / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([extra, os.environ.get("PYTHONPATH", "")]))
    project = Project(root, Settings(trusted=True, test_timeout_s=20.0, probe_inputs=0))
    try:
        path = root / "src" / "shapes" / "__init__.py"
        plan = project.verifier.prepare(target_for(path, "area"), stub, CancelToken())
        assert plan.tests_selected == ("tests/test_shapes.py::test_area",), plan.notes
        right = project.verifier.verify(
            plan, candidate(0, stub, "    ...\n", "    return width * height\n"), CancelToken()
        )
        assert right.passed and right.evidence is Evidence.TESTS, right.first_error
        wrong = project.verifier.verify(
            plan, candidate(1, stub, "    ...\n", "    return width + height\n"), CancelToken()
        )
        assert not wrong.passed and "test_area" in wrong.first_error
    finally:
        project.close()


def test_refuses_to_pass_when_imports_resolve_to_the_users_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "calc"
    shutil.copytree(FIXTURES / "calc", root)
    # A finder placed before the path finder (as some editable installs do) that maps `calc` to the
    # user's tree: the shadow cannot win, so no candidate may pass.
    finder = f"""
import importlib.machinery, importlib.util, sys

class _Finder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "calc" or name.startswith("calc."):
            return importlib.machinery.PathFinder.find_spec(name, [{str(root)!r}] if name == "calc" else path)
        return None

sys.meta_path.insert(0, _Finder)
"""
    site = _site_dir(tmp_path, finder)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    project = Project(root, Settings(trusted=True, test_timeout_s=10.0))
    try:
        _, text, target = calc(project)
        with pytest.raises(VerifyError, match="outside the shadow"):
            project.verifier.prepare(target, text, CancelToken())
    finally:
        project.close()


def test_another_stubs_failing_test_does_not_sink_the_candidate(make_project: Callable[..., Project]) -> None:
    # test_text.py is the conventional test module of pkg/text.py, so all its tests are selected; the one
    # for the other stub fails before and after, which is not this candidate's fault.
    project = make_project("twostubs")
    path = project.root / "pkg" / "text.py"
    text = path.read_text()
    plan = project.verifier.prepare(target_for(path, "shout"), text, CancelToken())
    assert {"tests/test_text.py::test_shout", "tests/test_text.py::test_whisper"} <= set(plan.tests_selected)
    first_stub = "def shout(word: str) -> str:\n    raise NotImplementedError\n"
    good = candidate(0, text, first_stub, "def shout(word: str) -> str:\n    return word.upper()\n")
    result = project.verifier.verify(plan, good, CancelToken())
    assert result.passed, result.first_error
    assert result.evidence is Evidence.TESTS
    assert result.tests_fixed == ("tests/test_text.py::test_shout",)
    # The target's own test must pass: a body that is still wrong fails on it.
    wrong = candidate(1, text, first_stub, "def shout(word: str) -> str:\n    return word\n")
    result = project.verifier.verify(plan, wrong, CancelToken())
    assert not result.passed
    assert "test_shout" in (result.first_error or "")
    # A guard test that passed before must still pass.
    breaking = candidate(
        2,
        text,
        "def stay(word: str) -> str:\n    return word\n",
        "def stay(word: str) -> str:\n    return ''\n",
    )
    breaking = Candidate(2, "", breaking.new_text.replace(first_stub, good.body), "k")
    result = project.verifier.verify(plan, breaking, CancelToken())
    assert not result.passed
    assert result.tests_broken == ("tests/test_text.py::test_stay",)


def test_a_failing_doctest_says_what_it_expected_and_got(project: Project) -> None:
    _, text, target = calc(project)
    plan = project.verifier.prepare(target, text, CancelToken())
    result = project.verifier.verify(plan, candidate(0, text, STUB, "    return a * b\n"), CancelToken())
    assert not result.passed
    (doctest,) = [o for o in result.outcomes if o.nodeid == "calc/core.py::calc.core.add"]
    assert failure_summary(doctest.message) == ">>> add(2, 3) expected 5, got 6"


def test_a_failing_test_is_summed_up_by_its_exception_not_by_pytest_s_last_hint(tmp_path: Path) -> None:
    """The line that says what went wrong is the exception's own: unittest's list diff ends with "Diff is
    N characters long", pytest's with "Use -v to get more diff", and a chained exception's first traceback
    is not the one that failed the test."""
    root = tmp_path / "tables"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "tables"\nversion = "0"\n')
    text = "def double(n: int) -> int:\n    ...\n"
    (root / "tables.py").write_text(text)
    (root / "tests" / "test_tables.py").write_text(
        "import unittest\n\nfrom tables import double\n\n\n"
        "class TestDouble(unittest.TestCase):\n"
        "    def test_table(self) -> None:\n"
        "        self.assertEqual([double(i) for i in range(80)], [2 * i for i in range(80)])\n\n\n"
        "def test_list() -> None:\n"
        "    assert [double(i) for i in range(3)] == [0, 2, 4]\n\n\n"
        "def test_chained() -> None:\n"
        "    try:\n"
        "        assert double(1) == 2\n"
        "    except AssertionError as e:\n"
        "        raise RuntimeError('double is off') from e\n"
    )
    project = Project(root, Settings(trusted=True, test_timeout_s=20.0, probe_inputs=0))
    try:
        plan = project.verifier.prepare(target_for(root / "tables.py", "double"), text, CancelToken())
        off_by_one = candidate(0, text, "    ...\n", "    return n * 2 + 1\n")
        wrong = project.verifier.verify(plan, off_by_one, CancelToken())
        summaries = {o.nodeid.split("::")[-1]: failure_summary(o.message) for o in wrong.outcomes}
        assert summaries["test_table"].startswith("AssertionError: Lists differ: [1, 3, 5,"), summaries
        assert summaries["test_list"] == "assert [1, 3, 5] == [0, 2, 4]", summaries
        assert summaries["test_chained"] == "RuntimeError: double is off", summaries
    finally:
        project.close()


def test_a_test_the_candidate_broke_is_named_before_one_that_failed_already(tmp_path: Path) -> None:
    """semver's doctests use a name its tests' conftest provides: run beside the module they fail with or
    without a change, and a failure message that led with one hid the test the change broke."""
    root = tmp_path / "versions"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "versions"\nversion = "0"\n')
    text = (
        "def bump(patch: int) -> int:\n"
        '    """\n    >>> versions.bump(1)\n    2\n    """\n'
        "    return patch + 1\n"
    )
    (root / "versions.py").write_text(text)
    (root / "tests" / "test_versions.py").write_text(
        "from versions import bump\n\n\ndef test_bump() -> None:\n    assert bump(1) == 2\n"
    )
    project = Project(root, Settings(trusted=True, test_timeout_s=20.0, probe_inputs=0))
    try:
        plan = project.verifier.prepare(target_for(root / "versions.py", "bump"), text, CancelToken())
        assert plan.baseline_by_nodeid["versions.py::versions.bump"].outcome == "failed"
        wrong = project.verifier.verify(plan, candidate(0, text, "patch + 1", "patch + 2"), CancelToken())
        assert (wrong.first_error or "").startswith(
            "tests: tests/test_versions.py::test_bump failed (and 1 more): assert 3 == 2"
        ), wrong.first_error
    finally:
        project.close()


@pytest.mark.parametrize("testpaths", ["tests", None])
def test_doctests_the_project_s_configuration_leaves_out_are_not_run(
    tmp_path: Path, testpaths: str | None
) -> None:
    """semver collects modules' doctests but its testpaths leave src/ out, and its docstrings' examples use a
    name its tests/conftest.py provides: run beside the module they failed whatever the candidate, so `fix`
    could verify nothing there. pytest decides: a file the project's own doctest collection includes keeps
    its examples as tests."""
    root = tmp_path / "versions"
    (root / "tests").mkdir(parents=True)
    paths = f'testpaths = ["{testpaths}"]\n' if testpaths else ""
    pytest_ini = f'[tool.pytest.ini_options]\naddopts = "--doctest-modules"\n{paths}'
    (root / "pyproject.toml").write_text(f'[project]\nname = "versions"\nversion = "0"\n\n{pytest_ini}')
    text = 'def bump(patch: int) -> int:\n    """\n    >>> versions.bump(1)\n    2\n    """\n    ...\n'
    (root / "versions.py").write_text(text)
    (root / "tests" / "conftest.py").write_text(
        "import pytest\n\nimport versions\n\n\n@pytest.fixture(autouse=True)\n"
        "def add_versions(doctest_namespace):\n    doctest_namespace['versions'] = versions\n"
    )
    (root / "tests" / "test_versions.py").write_text(
        "from versions import bump\n\n\ndef test_bump() -> None:\n    assert bump(1) == 2\n"
    )
    project = Project(root, Settings(trusted=True, test_timeout_s=20.0, probe_inputs=0))
    try:
        plan = project.verifier.prepare(target_for(root / "versions.py", "bump"), text, CancelToken())
        right = project.verifier.verify(
            plan, candidate(0, text, "    ...\n", "    return patch + 1\n"), CancelToken()
        )
        if testpaths:
            assert plan.doctest_file is None
            assert any("docstring examples of versions.py are not run" in note for note in plan.notes), (
                plan.notes
            )
            assert right.passed and right.evidence is Evidence.TESTS, right.first_error
        else:  # collected by the project itself: its examples count, and here they need the conftest's name
            assert plan.doctest_file == "versions.py"
            assert not right.passed and "NameError" in (right.first_error or ""), right.first_error
    finally:
        project.close()


def test_a_module_the_projects_doctest_collection_could_not_import_is_not_called_left_out() -> None:
    """No doctest items for a file can mean two things: the configuration leaves it out, or importing it
    failed. Only the first is documentation the project never runs."""
    from lsp_verify.verify.cascade import _doctests_left_out
    from lsp_verify.verify.pytest_run import CollectedTest, Collection

    other = CollectedTest("tests/test_a.py::test_a", "tests/test_a.py", "tests/test_a.py", "test_a", 0)
    left_out = Collection(tests=(other,), doctest_modules=True)
    failed = Collection(tests=(other,), errors=(("pkg/mod.py", "ImportError: no"),), doctest_modules=True)
    assert _doctests_left_out(left_out, "pkg/mod.py")
    assert not _doctests_left_out(failed, "pkg/mod.py")
    assert not _doctests_left_out(Collection(tests=(other,)), "pkg/mod.py")  # doctests not collected at all


def test_doctest_failure_summaries() -> None:
    no_expectation = """\
004     >>> f(19) == 'xix'
Expected nothing
Got:
    True
/tmp/s1/m.py:4: DocTestFailure"""
    summary = failure_summary(no_expectation)
    assert summary.startswith(">>> f(19) == 'xix' expected nothing, got True (the example gives no expected")
    raised = """\
012     >>> g(1)
UNEXPECTED EXCEPTION: ValueError('bad')
Traceback (most recent call last):
ValueError: bad
/tmp/s1/m.py:12: UnexpectedException"""
    assert failure_summary(raised) == ">>> g(1) raised ValueError('bad')"
    assert failure_summary("E   assert 42 == 48151623") == "assert 42 == 48151623"
    diff = "E   AssertionError: assert [5, '', 9] == ['', 5, '', 9]\nE     \nE     At index 0 diff: 5 != ''\n"
    summary = failure_summary(diff + "E     Use -v to get more diff")
    assert summary == "AssertionError: assert [5, '', 9] == ['', 5, '', 9]"
    assert failure_summary("skipped for a reason") == "skipped for a reason"
    assert failure_summary("") == ""


def _doubling_project(root: Path) -> str:
    """A package whose functions are tested only by doctests outside their own module: a text file's
    (``--doctest-glob``) and another module's docstring (``--doctest-modules``, through a relative import
    under another name)."""
    (root / "nums").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "--doctest-glob=*.rst --doctest-modules"\n'
    )
    (root / "nums" / "__init__.py").write_text("")
    text = f"def double(x: int) -> int:\n{STUB}\n\ndef triple(x: int) -> int:\n    return x * 3\n"
    (root / "nums" / "core.py").write_text(text)
    (root / "nums" / "api.py").write_text(
        "from .core import triple as thrice\n\n\ndef six(x: int) -> int:\n"
        '    """Six times.\n\n    >>> thrice(2)\n    6\n    """\n    return thrice(2 * x)\n'
    )
    (root / "docs" / "usage.rst").write_text(
        "Usage\n=====\n\n>>> from nums.core import double\n>>> double(4)\n8\n"
    )
    return text


def test_doctests_elsewhere_that_use_the_function_test_its_candidates(tmp_path: Path) -> None:
    """A README's examples test the functions they call as a test function does: a candidate they fail is
    not shown (it was, as "types only"), and one they pass is verified by tests."""
    root = tmp_path / "doubling"
    text = _doubling_project(root)
    project = Project(root, Settings(trusted=True, test_timeout_s=20.0, probe_inputs=0))
    try:
        plan = project.verifier.prepare(target_for(root / "nums" / "core.py", "double"), text, CancelToken())
        assert plan.tests_selected == ("docs/usage.rst::usage.rst",), plan.tests_selected
        wrong = project.verifier.verify(plan, candidate(0, text, STUB, "    return x + 2\n"), CancelToken())
        assert not wrong.passed
        assert "docs/usage.rst::usage.rst" in (wrong.first_error or ""), wrong.first_error
        right = project.verifier.verify(plan, candidate(1, text, STUB, "    return x * 2\n"), CancelToken())
        assert right.passed and right.evidence is Evidence.TESTS, right.first_error
    finally:
        project.close()


def test_a_namespace_packages_functions_are_tested_by_their_doctests_and_tests(tmp_path: Path) -> None:
    """jaraco.functools: ``jaraco/`` has no ``__init__.py`` (PEP 420), so pytest names the module
    ``jaraco.functools`` where the packages above the file say ``functools``. Its docstrings' examples and
    the tests that import ``jaraco.functools`` were not near its functions: candidates passed as "types
    only" whatever their own examples said, and their probes imported the standard library's functools."""
    root = tmp_path / "nsproject"
    (root / "acme" / "functools").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pytest.ini").write_text(
        "[pytest]\naddopts = --doctest-modules --import-mode importlib\nconsider_namespace_packages = true\n"
    )
    text = f'def double(x: int) -> int:\n    """\n    >>> double(4)\n    8\n    """\n{STUB}'
    (root / "acme" / "functools" / "__init__.py").write_text(text)
    (root / "tests" / "test_functools.py").write_text(
        "from acme.functools import double\n\n\ndef test_double() -> None:\n    assert double(0) == 0\n"
    )
    project = Project(root, Settings(trusted=True, test_timeout_s=20.0))
    try:
        path = root / "acme" / "functools" / "__init__.py"
        plan = project.verifier.prepare(target_for(path, "double"), text, CancelToken())
        assert set(plan.tests_selected) == {
            "acme/functools/__init__.py::acme.functools.double",
            "tests/test_functools.py::test_double",
        }, plan.tests_selected
        wrong = project.verifier.verify(plan, candidate(0, text, STUB, "    return x * 3\n"), CancelToken())
        assert not wrong.passed
        assert "acme.functools.double" in (wrong.first_error or ""), wrong.first_error
        right = project.verifier.verify(plan, candidate(1, text, STUB, "    return x * 2\n"), CancelToken())
        assert right.passed and right.evidence is Evidence.TESTS, right.first_error
        # Probed as acme.functools: as `functools` it was the standard library's, and probed nothing.
        assert plan.probe is not None and plan.probe.module == "acme.functools"
        assert right.probe_shown[:3] == ("0", "180", "-8"), right.probe_shown
    finally:
        project.close()


def test_guard_tests_that_take_longer_together_than_one_run_may_still_guard(tmp_path: Path) -> None:
    """A guard module whose tests together outlast ``test_timeout_s`` (more_itertools: hundreds of tests, one
    of them slow, on a loaded machine): the run was cut, the tests after the cut never ran on either side,
    and so guarded nothing - or a candidate whose run was cut earlier than its baseline's failed for it. A
    run cut in a test that had only just started is continued where it was cut; a test that holds a run up
    for most of its limit stays a timeout (test_hanging_candidate_times_out_quickly_and_leaves_no_process)."""
    root = tmp_path / "tables"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "tables"\nversion = "0"\n')
    text = "def double(n: int) -> int:\n    return n * 2\n\n\ndef quad(n: int) -> int:\n"
    text += "    return double(double(n))\n"
    (root / "tables.py").write_text(text)
    slow = "".join(f"def test_slow_{n}() -> None:\n    time.sleep(0.5)\n\n\n" for n in range(8))
    quad = "def test_quad() -> None:\n    assert quad(1) == 4\n"
    (root / "tests" / "test_tables.py").write_text(
        f"import time\n\nfrom tables import quad\n\n\n{slow}{quad}"
    )
    project = Project(root, Settings(trusted=True, test_timeout_s=3.0, probe_inputs=0))
    try:
        plan = project.verifier.prepare(target_for(root / "tables.py", "double"), text, CancelToken())
        assert plan.baseline_by_nodeid["tests/test_tables.py::test_quad"].outcome == "passed", plan.baseline
        wrong = project.verifier.verify(plan, candidate(0, text, "n * 2", "n * 3"), CancelToken())
        assert not wrong.passed and wrong.tests_broken == ("tests/test_tables.py::test_quad",), wrong
        right = project.verifier.verify(plan, candidate(1, text, "n * 2", "n + n"), CancelToken())
        assert right.passed, right.first_error
    finally:
        project.close()


SKIPPED_TESTS = """\
import sys

import pytest

from ops import add


@pytest.mark.skipif(sys.version_info > (3,), reason="needs a GPU")
def test_add() -> None:
    assert add(1, 2) == 3


def test_add_later() -> None:
    pytest.importorskip("a_module_no_one_installed")
    assert add(2, 2) == 4


@pytest.mark.xfail(reason="known bug")
def test_add_negative() -> None:
    assert add(-1, -1) == 0
"""


@pytest.mark.parametrize("require_tests", [False, True])
def test_tests_that_name_the_function_but_are_skipped_back_nothing(
    tmp_path: Path, require_tests: bool
) -> None:
    """Its only tests are skipped here (a ``skipif``, an ``importorskip``, an xfail that fails as expected):
    a candidate that passes checked nothing but types. It was "verified by tests" ("tests: 0/3 passed"),
    and ``require_tests`` let it through."""
    root = tmp_path / "ops"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "ops"\nversion = "0"\n')
    text = f"def add(a: int, b: int) -> int:\n{STUB}"
    (root / "ops.py").write_text(text)
    (root / "tests" / "test_ops.py").write_text(SKIPPED_TESTS)
    settings = Settings(trusted=True, test_timeout_s=20.0, probe_inputs=0, require_tests=require_tests)
    project = Project(root, settings)
    try:
        plan = project.verifier.prepare(target_for(root / "ops.py", "add"), text, CancelToken())
        said = "no test that calls `add` passed (3 skipped: tests/test_ops.py::test_add: needs a GPU)"
        assert f"{said}: types only" in plan.notes, plan.notes
        result = project.verifier.verify(plan, candidate(0, text, STUB, "    return a * b\n"), CancelToken())
        if require_tests:
            assert not result.passed and "require_tests is set" in (result.first_error or ""), result.stages
            return
        assert result.passed and result.evidence is Evidence.TYPES_ONLY, result.stages
        assert result.evidence_parts[-1] == "types only (no test that names it passed: 3 skipped; 0/3 passed)"
    finally:
        project.close()
