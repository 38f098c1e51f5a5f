"""The Python that runs a project's tests: the ``python`` setting, else the workspace's own ``.venv`` when it
has pytest, else lsp-verify's own. Real virtual environments, real pytest runs through the verifier."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsp_verify.cancel import CancelToken
from lsp_verify.config import Settings
from lsp_verify.syntax.targets import function_targets
from lsp_verify.verify.cascade import Verifier, VerifyError, VerifyPlan
from lsp_verify.verify.interpreter import InterpreterError, project_python
from lsp_verify.verify.sandbox import choose_isolation
from lsp_verify.verify.types import Candidate, Evidence

ISOLATION = choose_isolation("auto")
# A project's own Python is used only where the sandbox confines it from outside (see interpreter.py).
needs_bwrap = pytest.mark.skipif(
    ISOLATION != "bwrap", reason="a project's own Python runs under bubblewrap only"
)


def make_venv(where: Path, *, with_pytest: bool, packages: dict[str, str] | None = None) -> Path:
    """A virtual environment at ``where`` (no pip); with pytest: lsp-verify's own site-packages reachable
    through a ``.pth`` file, as a project's venv would have pytest installed. ``packages``: modules that only
    this environment has (name -> source). Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if with_pytest:
        (Path(site) / "lsp_verify_tests.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for name, source in (packages or {}).items():
        if name.endswith("/"):  # a typed package: mypy reads what it declares
            (Path(site) / name).mkdir()
            (Path(site) / name / "__init__.py").write_text(textwrap.dedent(source))
            (Path(site) / name / "py.typed").write_text("")
        else:
            (Path(site) / f"{name}.py").write_text(textwrap.dedent(source))
    return python


def editable_project(root: Path, files: dict[str, str], importable: Path) -> Path:
    """``files`` written under ``root``, and a ``.venv`` with pytest where ``importable`` (in the user's tree)
    is on sys.path, as an editable install puts it; returns the venv's site-packages."""
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    python = make_venv(root / ".venv", with_pytest=True)
    site = (
        python.parent.parent / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    )
    (site / f"_{root.name}.pth").write_text(str(importable) + "\n")
    return site


PROJECT = {
    "pyproject.toml": '[project]\nname = "calc"\nversion = "0"\n',
    # `units` is a dependency installed only in the project's own environment.
    "calc.py": "import units\n\n\ndef to_mm(cm: float) -> float:\n    return cm * units.MM_PER_CM\n",
    "tests/test_calc.py": """\
        import sys

        from calc import to_mm


        def test_to_mm() -> None:
            assert to_mm(2) == 20

        def test_runs_in_the_projects_environment() -> None:
            assert sys.prefix.endswith(".venv"), sys.prefix
    """,
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for relative, text in PROJECT.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def prepared_in(
    root: Path, verifiers: list[Verifier], relpath: str, name: str, settings: Settings | None = None
) -> tuple[Verifier, str, VerifyPlan]:
    """A verifier for ``root`` (trusted, no probes unless ``settings`` say; closed by ``verifiers``), the
    text of ``relpath`` and the plan for its function ``name``."""
    verifier = Verifier(root, settings or Settings(trusted=True, probe_inputs=0))
    verifiers.append(verifier)
    path = root / relpath
    text = path.read_text()
    (target,) = [t for t in function_targets(text, path) if t.name == name]
    return verifier, text, verifier.prepare(target, text, CancelToken())


def prepared_calc(project: Path, verifiers: list[Verifier]) -> tuple[Verifier, str, VerifyPlan]:
    """A trusted verifier for ``project`` (closed by ``verifiers``), calc.py's text and its plan for to_mm."""
    return prepared_in(project, verifiers, "calc.py", "to_mm")


@pytest.fixture
def verifiers() -> Iterator[list[Verifier]]:
    made: list[Verifier] = []
    yield made
    for each in made:
        each.close()


@needs_bwrap
def test_the_workspaces_venv_runs_its_tests_and_its_dependencies_are_found(
    project: Path, verifiers: list[Verifier]
) -> None:
    make_venv(project / ".venv", with_pytest=True, packages={"units": "MM_PER_CM = 10\n"})
    verifier, text, plan = prepared_calc(project, verifiers)
    assert verifier.python.source == "the workspace's .venv" and not verifier.python.note
    assert "tests/test_calc.py::test_to_mm" in plan.direct_tests
    fine = verifier.verify(plan, Candidate(0, "", text, "same"), CancelToken())
    assert fine.passed and fine.evidence is Evidence.TESTS, fine.first_error
    wrong = verifier.verify(plan, Candidate(1, "", text.replace("cm *", "cm +"), "plus"), CancelToken())
    assert not wrong.passed and "tests/test_calc.py::test_to_mm" in wrong.tests_broken
    assert "with " + str(project / ".venv" / "bin" / "python") in verifier.describe_test_runs(CancelToken())


@needs_bwrap
def test_the_projects_venv_is_active_for_its_tests(project: Path, verifiers: list[Verifier]) -> None:
    """As tox, CI and an activated shell run them: the venv's bin first on PATH (glom's CLI test runs `glom`,
    which failed for want of it)."""
    python = make_venv(project / ".venv", with_pytest=True, packages={"units": "MM_PER_CM = 10\n"})
    tool = python.parent / "calc-tool"
    tool.write_text("#!/bin/sh\necho 20\n")
    tool.chmod(0o755)
    (project / "tests" / "test_tool.py").write_text(
        "import os\nimport subprocess\n\nfrom calc import to_mm\n\n\n"
        "def test_to_mm_matches_the_tool() -> None:\n"
        "    out = subprocess.run(['calc-tool'], capture_output=True, text=True, check=True).stdout\n"
        "    assert out.strip() == str(int(to_mm(2)))\n"
        "    assert os.environ['VIRTUAL_ENV'].endswith('.venv')\n"
    )
    verifier, text, plan = prepared_calc(project, verifiers)
    assert "tests/test_tool.py::test_to_mm_matches_the_tool" in plan.direct_tests
    fine = verifier.verify(plan, Candidate(0, "", text, "same"), CancelToken())
    assert fine.passed and "tests/test_tool.py::test_to_mm_matches_the_tool" in fine.tests_passed, (
        fine.first_error
    )


@needs_bwrap
def test_the_active_virtualenv_runs_the_tests_of_a_project_without_its_own(
    project: Path,
    verifiers: list[Verifier],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Poetry and Hatch keep environments outside the project; in their shell (``$VIRTUAL_ENV``) lsp-verify
    installed elsewhere (pipx) runs the tests with that environment, as ``python -m pytest`` there would."""
    outside = tmp_path_factory.mktemp("poetry-envs") / "calc-py3"
    make_venv(outside, with_pytest=True, packages={"units": "MM_PER_CM = 10\n"})
    monkeypatch.setenv("VIRTUAL_ENV", str(outside))
    verifier, text, plan = prepared_calc(project, verifiers)
    assert verifier.python.source == f"the active virtualenv, {outside}" and not verifier.python.note
    fine = verifier.verify(plan, Candidate(0, "", text, "same"), CancelToken())
    assert fine.passed and fine.evidence is Evidence.TESTS, fine.first_error
    # The project's own environment, where it has one, comes first.
    make_venv(project / ".venv", with_pytest=True, packages={"units": "MM_PER_CM = 10\n"})
    assert project_python(project, None, trusted=True, isolation=ISOLATION).source == "the workspace's .venv"
    # lsp-verify's own environment, active, is lsp-verify's own.
    monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
    (project / ".venv" / "bin" / "python").unlink()
    assert project_python(project, None, trusted=True, isolation=ISOLATION).own


@needs_bwrap
def test_a_venv_without_pytest_is_named_and_lsp_verifys_own_python_runs_the_tests(project: Path) -> None:
    make_venv(project / ".venv", with_pytest=False)
    python = project_python(project, None, trusted=True, isolation=ISOLATION)
    assert (
        python.own and python.note == f"the workspace's .venv has no pytest: tests run with {sys.executable}"
    )


def test_an_untrusted_workspace_never_runs_its_own_interpreter(project: Path) -> None:
    (project / ".venv" / "bin").mkdir(parents=True)
    planted = project / ".venv" / "bin" / "python"
    planted.write_text(f"#!/bin/sh\ntouch {project / 'ran'}\n")
    planted.chmod(0o755)
    assert project_python(project, None, trusted=False, isolation="off").own
    assert project_python(project, ".venv/bin/python", trusted=False, isolation="off").own
    assert not (project / "ran").exists()


@needs_bwrap
def test_a_python_setting_that_cannot_run_the_tests_says_why(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with pytest.raises(
        VerifyError, match=r"the python setting \(envs/missing/bin/python\): .*does not exist"
    ):
        Verifier(project, Settings(trusted=True, python="envs/missing/bin/python"))
    bare = make_venv(tmp_path_factory.mktemp("bare"), with_pytest=False)
    with pytest.raises(VerifyError, match="pytest is not installed there"):
        Verifier(project, Settings(trusted=True, python=str(bare)))
    assert project_python(
        project, str(make_venv(tmp_path_factory.mktemp("env"), with_pytest=True)), True, ISOLATION
    ).source == ("the python setting")


@needs_bwrap
def test_mypy_reads_the_projects_installed_packages_from_its_own_python(
    project: Path, verifiers: list[Verifier]
) -> None:
    """mypy runs in lsp-verify's interpreter but finds `units` (installed only in the project's .venv, with
    py.typed) there, so a candidate that misuses it fails the type check, not only the tests."""
    make_venv(project / ".venv", with_pytest=True, packages={"units/": "MM_PER_CM: int = 10\n"})
    verifier, text, plan = prepared_calc(project, verifiers)
    misuse = text.replace("cm * units.MM_PER_CM", "cm * units.MM_PER_CM.upper()")
    result = verifier.verify(plan, Candidate(0, "", misuse, "misuse"), CancelToken())
    mypy = next(stage for stage in result.stages if stage.stage == "mypy")
    assert not mypy.ok and '"int" has no attribute "upper"' in mypy.detail, result.stages
    assert verifier.verify(plan, Candidate(1, "", text, "same"), CancelToken()).passed


@needs_bwrap
@pytest.mark.installed_plugins
def test_a_pytest_plugin_under_development_is_tested_as_the_candidate_has_it(
    tmp_path: Path, verifiers: list[Verifier]
) -> None:
    """The project is a pytest plugin, installed editable (a ``pytest11`` entry point): pytest imports it
    before any test, so the pre-imported fork server held the user's copy and could never test a candidate
    ("imports resolved outside the shadow"). Each run is then a fresh ``python -m pytest`` that imports the
    candidate's copy, as pytest in the user's tree imports the edited one (pluggy's own suite: the same)."""
    root = tmp_path / "pytest-double"
    files = {
        "pyproject.toml": '[project]\nname = "pytest-double"\nversion = "0"\n',
        "double_plugin.py": "import pytest\n\n\ndef double(x: int) -> int:\n    return x * 2\n\n\n"
        "@pytest.fixture\ndef doubled() -> int:\n    return double(21)\n",
        "tests/test_plugin.py": "from double_plugin import double\n\n\ndef test_double() -> None:\n"
        "    assert double(2) == 4\n\n\ndef test_fixture(doubled: int) -> None:\n    assert doubled == 42\n",
    }
    site = editable_project(root, files, root)
    info = site / "pytest_double-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest-double\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[pytest11]\ndouble = double_plugin\n")
    verifier, text, plan = prepared_in(root, verifiers, "double_plugin.py", "double", Settings(trusted=True))
    assert "tests/test_plugin.py::test_double" in plan.direct_tests

    same = verifier.verify(plan, Candidate(0, "", text, "same"), CancelToken())
    assert same.passed and same.evidence is Evidence.TESTS, same.first_error
    wrong = verifier.verify(plan, Candidate(1, "", text.replace("x * 2", "x * 3"), "triple"), CancelToken())
    assert not wrong.passed
    assert "tests/test_plugin.py::test_double" in wrong.tests_broken, wrong.first_error
    # Probes (the ranking's, the question's) call the candidate too, not the copy pytest imported.
    absolute_text = text.replace("x * 2", "abs(x) * 2")
    absolute = verifier.verify(plan, Candidate(2, "", absolute_text, "abs"), CancelToken())
    assert absolute.passed, absolute.first_error  # its tests use 2 and 21 only
    assert same.probe_outputs and absolute.probe_outputs and same.probe_outputs != absolute.probe_outputs
    assert "pytest itself imports `double_plugin`" in verifier.describe_test_runs(CancelToken())


@needs_bwrap
def test_an_editable_install_in_the_projects_python_still_checks_the_candidate_not_the_users_file(
    tmp_path: Path, verifiers: list[Verifier]
) -> None:
    """The project's .venv finds `shapes` in the user's `src/` (an editable install's .pth); mypy and the
    tests must still see the candidate in the shadow."""
    root = tmp_path / "proj"
    files = {
        "src/shapes/__init__.py": "",
        "src/shapes/geo.py": "def area(w: int, h: int) -> int:\n    return w * h\n",
        "src/shapes/report.py": "from shapes.geo import area\n\n\ndef twice(w: int) -> int:\n"
        "    return 2 * area(w, w)\n",
        "tests/test_geo.py": "from shapes.geo import area\n\n\ndef test_area() -> None:\n"
        "    assert area(2, 3) == 6\n",
    }
    editable_project(root, files, root / "src")
    verifier = Verifier(root, Settings(trusted=True, probe_inputs=0))
    verifiers.append(verifier)
    path = root / "src" / "shapes" / "geo.py"
    text = path.read_text()
    (target,) = function_targets(text, path)
    plan = verifier.prepare(target, text, CancelToken())
    assert plan.direct_tests == ("tests/test_geo.py::test_area",)
    assert verifier.verify(plan, Candidate(0, "", text, "same"), CancelToken()).passed
    typo = text.replace("return w * h", 'return "w" * h')
    wrong_type = verifier.verify(plan, Candidate(1, "", typo, "str"), CancelToken())
    mypy = next(stage for stage in wrong_type.stages if stage.stage == "mypy")
    assert not mypy.ok and "Incompatible return value type" in mypy.detail, wrong_type.stages
    wrong_value = verifier.verify(
        plan, Candidate(2, "", text.replace("w * h", "w + h"), "plus"), CancelToken()
    )
    assert not wrong_value.passed and "tests/test_geo.py::test_area" in wrong_value.tests_broken
    assert path.read_text() == text


@needs_bwrap
def test_a_command_the_tests_run_imports_the_candidate_too(tmp_path: Path, verifiers: list[Verifier]) -> None:
    """A test that runs the project's console script (installed editable) starts a Python that reads the same
    .pth and imported the user's file: a wrong candidate passed a test that only reaches it through the
    command. The redirected import paths go first on that Python's PYTHONPATH."""
    root = tmp_path / "greet"
    files = {
        "pyproject.toml": '[project]\nname = "greet"\nversion = "0"\n',
        "greet_cli.py": "import sys\n\n\ndef message(name: str) -> str:\n    return f'Hello, {name}!'\n\n\n"
        "def main() -> None:\n    print(message(sys.argv[1]))\n",
        "tests/test_greet_cli.py": "import subprocess\n\nfrom greet_cli import message\n\n\n"
        "def test_message_from_the_command() -> None:\n    assert callable(message)\n"
        "    out = subprocess.run(['greet', 'bob'], capture_output=True, text=True, check=True).stdout\n"
        "    assert out == 'Hello, bob!\\n'\n",
    }
    site = editable_project(root, files, root)
    script = site.parent.parent.parent / "bin" / "greet"
    script.write_text(f"#!{script.parent / 'python'}\nfrom greet_cli import main\n\nmain()\n")
    script.chmod(0o755)
    verifier, text, plan = prepared_in(root, verifiers, "greet_cli.py", "message")
    assert "tests/test_greet_cli.py::test_message_from_the_command" in plan.direct_tests
    same = verifier.verify(plan, Candidate(0, "", text, "same"), CancelToken())
    assert same.passed, same.first_error
    wrong = verifier.verify(plan, Candidate(1, "", text.replace("Hello", "Hi"), "hi"), CancelToken())
    assert not wrong.passed and "tests/test_greet_cli.py::test_message_from_the_command" in wrong.tests_broken


@needs_bwrap
@pytest.mark.parametrize("package", ["shapes", "acme/shapes"], ids=["package", "namespace-package"])
def test_a_project_installed_not_editable_is_never_passed_on_its_installed_copy(
    tmp_path: Path, verifiers: list[Verifier], package: str
) -> None:
    """`pip install .` of a `src/` layout puts a copy of the package in site-packages, and the tests import
    that copy (plain pytest too): every candidate "passed" the tests, which never ran it (a breaking change
    passed `check`). The copy is the module of the same dotted name from another file - for a namespace
    package (`acme` without `__init__.py`), a name its directories make."""
    root = tmp_path / "proj"
    dotted = package.replace("/", ".")
    files = {
        f"src/{package}/__init__.py": "",
        f"src/{package}/geo.py": "def area(w: int, h: int) -> int:\n    return w * h\n",
        "tests/test_geo.py": f"from {dotted}.geo import area\n\n\ndef test_area() -> None:\n"
        "    assert area(2, 3) == 6\n",
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    python = make_venv(root / ".venv", with_pytest=True)
    lib = python.parent.parent / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = lib / "site-packages"
    (site / package).mkdir(parents=True)
    for name in ("__init__.py", "geo.py"):
        (site / package / name).write_text(files[f"src/{package}/{name}"])
    verifier = Verifier(root, Settings(trusted=True, probe_inputs=0))
    verifiers.append(verifier)
    path = root / "src" / package / "geo.py"
    (target,) = function_targets(files[f"src/{package}/geo.py"], path)
    installed = rf"site-packages/{package}/geo\.py"
    with pytest.raises(VerifyError, match=rf"{installed}.*not editable.*pip install -e \."):
        verifier.prepare(target, files[f"src/{package}/geo.py"], CancelToken())


EXTENSION = """\
#include <Python.h>
static PyObject *area(PyObject *self, PyObject *args) {
    long w, h;
    if (!PyArg_ParseTuple(args, "ll", &w, &h)) return NULL;
    return PyLong_FromLong(w * h);
}
static PyMethodDef methods[] = {{"area", area, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "geo", NULL, -1, methods};
PyMODINIT_FUNC PyInit_geo(void) { return PyModule_Create(&module); }
"""


def test_a_compiled_build_beside_the_source_is_never_taken_for_the_candidate(
    tmp_path: Path, verifiers: list[Verifier]
) -> None:
    """Cython's pure-Python mode and mypyc build ``geo.cpython-*.so`` beside ``geo.py``, and Python imports
    the extension first: the tests never ran a candidate, yet a breaking change passed `check`."""
    import shutil

    include = Path(sysconfig.get_paths()["include"])
    if shutil.which("cc") is None or not (include / "Python.h").is_file():
        pytest.skip("needs a C compiler and Python's headers to build the extension")
    root = tmp_path / "proj"
    (root / "shapes").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "shapes"\nversion = "0"\n')
    (root / "shapes" / "__init__.py").write_text("")
    text = "def area(w: int, h: int) -> int:\n    return w * h\n"
    (root / "shapes" / "geo.py").write_text(text)
    (root / "tests" / "test_geo.py").write_text(
        "from shapes.geo import area\n\n\ndef test_area() -> None:\n    assert area(2, 3) == 6\n"
    )
    (tmp_path / "geo.c").write_text(EXTENSION)
    built = root / "shapes" / f"geo{sysconfig.get_config_var('EXT_SUFFIX')}"
    compiled = subprocess.run(
        ["cc", "-shared", "-fPIC", f"-I{include}", "-o", str(built), str(tmp_path / "geo.c")],
        capture_output=True,
        text=True,
    )
    if compiled.returncode != 0:
        pytest.skip(f"cannot build the extension here: {compiled.stderr[-300:]}")
    verifier = Verifier(root, Settings(trusted=True, probe_inputs=0))
    verifiers.append(verifier)
    (target,) = function_targets(text, root / "shapes" / "geo.py")
    with pytest.raises(VerifyError, match=r"compiled build of the module .*geo\.cpython.*never ran"):
        verifier.prepare(target, text, CancelToken())


def test_the_worker_script_is_written_for_the_oldest_python_a_project_may_run() -> None:
    """The pytest worker runs in the project's Python (3.8 and later, `interpreter._MINIMUM`): its syntax
    must parse there. Checked by hand on 3.8.18 with pytest 8.3.5 (fork server, a test run, a collection)."""
    import ast

    from lsp_verify.verify import interpreter
    from lsp_verify.verify.sandbox import WORKER_SCRIPT

    ast.parse(WORKER_SCRIPT.read_text(encoding="utf-8"), feature_version=interpreter._MINIMUM)


@needs_bwrap
def test_a_trusted_workspaces_planted_interpreter_is_asked_inside_the_sandbox(project: Path) -> None:
    """Trusted or not, what the workspace's .venv holds runs confined: asked about itself under bubblewrap
    (nothing writable), a planted script cannot write the workspace, and is not used."""
    (project / ".venv" / "bin").mkdir(parents=True)
    planted = project / ".venv" / "bin" / "python"
    planted.write_text(f"#!/bin/sh\ntouch {project / 'ran'}\n")
    planted.chmod(0o755)
    python = project_python(project, None, trusted=True, isolation="bwrap")
    assert python.own and python.note.startswith("the workspace's .venv cannot run"), python.note
    assert not (project / "ran").exists()


def test_without_bubblewrap_a_projects_python_is_not_used(project: Path) -> None:
    """Without bubblewrap the sandbox confines writes from inside lsp-verify's own Python (Landlock), which
    a workspace interpreter or its .pth files would run before: the .venv is left alone, never run."""
    (project / ".venv" / "bin").mkdir(parents=True)
    planted = project / ".venv" / "bin" / "python"
    planted.write_text(f"#!/bin/sh\ntouch {project / 'ran'}\n")
    planted.chmod(0o755)
    python = project_python(project, None, trusted=True, isolation="unshare")
    assert python.own and "is not used without bubblewrap" in python.note
    with pytest.raises(InterpreterError, match="needs bubblewrap"):
        project_python(project, ".venv/bin/python", trusted=True, isolation="none")
    assert not (project / "ran").exists()
