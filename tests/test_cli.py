"""``lsp-verify fix | generate | doctor`` and the command line's exit codes.

The tests marked ``model`` run the real command with the embedded model on a one-function project. The
others never load a model: bad input must be refused before that, and the apply step is driven through
a scripted pipeline so that a file changing mid-run can be staged deterministically.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lsp_verify.cli import main, use_colour
from lsp_verify.config import Settings
from lsp_verify.fix import FixOptions, run_fix
from lsp_verify.model.source import default_cache_dir
from lsp_verify.pipeline import FixReport, FixRequest
from lsp_verify.syntax.splice import normalise, splice_body
from lsp_verify.syntax.targets import target_at
from lsp_verify.verify.types import Candidate, CandidateResult, Evidence, StageResult

SERVER = Path(__file__).resolve().parents[1] / "server"
MODEL_CACHE = default_cache_dir()

OPS = '''\
"""Arithmetic for the fix tests."""


def add(a: int, b: int) -> int:
    """Return the sum of ``a`` and ``b``.

    >>> add(2, 3)
    5
    """
    ...
'''

TESTS = """\
from mathx.ops import add


def test_add() -> None:
    assert add(2, 3) == 5
    assert add(-1, 1) == 0
"""


def make_project(root: Path, ops: str = OPS) -> Path:
    (root / "mathx").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "mathx"\nversion = "0"\n', encoding="utf-8")
    (root / "mathx" / "__init__.py").write_text("", encoding="utf-8")
    (root / "mathx" / "ops.py").write_text(ops, encoding="utf-8")
    (root / "tests" / "test_ops.py").write_text(TESTS, encoding="utf-8")
    return root


def cli(cwd: Path, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(SERVER), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # mypy's cache goes to the temporary directory; the model stays where the session assembled it.
    full_env["LSP_VERIFY_CACHE"] = str(MODEL_CACHE)
    full_env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "lsp_verify", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


# ----------------------------------------------------------------------------------------------- real model


@pytest.mark.model
def test_fix_shows_a_verified_body_and_writes_it_only_with_apply(project: Path, tmp_path: Path) -> None:
    ops = project / "mathx" / "ops.py"
    before = ops.read_bytes()
    args = ("fix", "mathx/ops.py", "-k", "4", "--max-tokens", "128", "--seed", "0")

    shown = cli(project, tmp_path, *args, "--format", "json")

    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert ops.read_bytes() == before, "without --apply the file must stay byte-for-byte the same"
    (add,) = json.loads(shown.stdout)["functions"]
    assert add["status"] == "pass" and add["evidence"] == "tests"
    assert add["applied"] is None
    assert add["diff"].startswith("--- a/mathx/ops.py\n+++ b/mathx/ops.py\n")
    assert "tests/test_ops.py::test_add" in add["tests"]["passed"]

    applied = cli(project, tmp_path, *args, "--apply")

    assert applied.returncode == 0, applied.stdout + applied.stderr
    after = ops.read_text(encoding="utf-8")
    assert after != before.decode()
    assert "applied to mathx/ops.py" in applied.stdout
    function = next(node for node in ast.parse(after).body if isinstance(node, ast.FunctionDef))
    assert not any(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and node.value.value is Ellipsis
        for node in function.body
    ), "the stub body was replaced"
    assert after.startswith(OPS.split("    ...")[0]), "only the body changed"
    run_tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--doctest-modules",
            "mathx",
            "tests",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run_tests.returncode == 0, run_tests.stdout


@pytest.mark.model
def test_generate_prints_unverified_candidates(project: Path, tmp_path: Path) -> None:
    proc = cli(
        project, tmp_path, "generate", "mathx/ops.py:4", "-k", "3", "--max-tokens", "96", "--seed", "1"
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "# candidate 1 (unverified)" in proc.stdout
    assert "+++ b/mathx/ops.py" in proc.stdout
    assert "none of them has been verified" in proc.stderr
    assert (project / "mathx" / "ops.py").read_text(encoding="utf-8") == OPS


# ----------------------------------------------------------------------------------------------- refusals


def test_missing_model_is_an_environment_error_naming_what_was_tried(project: Path, tmp_path: Path) -> None:
    proc = cli(project, tmp_path, "fix", "mathx/ops.py", LSP_VERIFY_MODEL="/nonexistent.gguf")

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "/nonexistent.gguf" in proc.stderr
    assert "does not exist" in proc.stderr
    assert (project / "mathx" / "ops.py").read_text(encoding="utf-8") == OPS


def test_corrupt_model_is_an_environment_error(project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "random.gguf"
    bad.write_bytes(os.urandom(4096))

    proc = cli(project, tmp_path, "fix", "mathx/ops.py", "--apply", "--model", str(bad))

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "random.gguf" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (project / "mathx" / "ops.py").read_text(encoding="utf-8") == OPS


def test_a_file_that_does_not_parse_is_refused_before_loading_a_model(project: Path, tmp_path: Path) -> None:
    broken = OPS.replace("def add(a: int, b: int) -> int:", "def add(a: int, b: int) -> int")
    (project / "mathx" / "ops.py").write_text(broken, encoding="utf-8")

    # The model setting points nowhere: reaching the model would fail differently.
    proc = cli(project, tmp_path, "fix", "mathx/ops.py", "--apply", LSP_VERIFY_MODEL="/nonexistent.gguf")

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "does not parse" in proc.stderr and "line 4" in proc.stderr
    assert (project / "mathx" / "ops.py").read_text(encoding="utf-8") == broken


def test_a_line_outside_every_function_is_a_usage_error(project: Path, tmp_path: Path) -> None:
    proc = cli(project, tmp_path, "fix", "mathx/ops.py:1", LSP_VERIFY_MODEL="/nonexistent.gguf")

    assert proc.returncode == 2
    assert "no function at line 1" in proc.stderr


def test_a_missing_file_is_a_usage_error(project: Path, tmp_path: Path) -> None:
    proc = cli(project, tmp_path, "fix", "mathx/nope.py")

    assert proc.returncode == 2
    assert "mathx/nope.py: no such file" in proc.stderr


def test_no_command_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: lsp-verify" in capsys.readouterr().err


def test_doctor_reports_every_component(tmp_path: Path) -> None:
    proc = cli(tmp_path, tmp_path, "doctor")

    assert proc.returncode in (0, 1), proc.stderr
    for label in ("model", "backend", "threads", "mypy", "pytest", "sandbox", "grammars"):
        assert any(line.startswith(label) for line in proc.stdout.splitlines()), label
    assert ("healthy" in proc.stdout) == (proc.returncode == 0)
    assert ("problems:" in proc.stdout) == (proc.returncode == 1)


@pytest.mark.model
def test_doctor_advises_on_the_model_choice_only_for_the_default(tmp_path: Path) -> None:
    from lsp_verify.model.source import resolve_model

    default = cli(tmp_path, tmp_path, "doctor")
    own = cli(tmp_path, tmp_path, "doctor", LSP_VERIFY_MODEL=str(resolve_model().path))

    advice = [line for line in default.stdout.splitlines() if line.startswith("model choice")]
    assert len(advice) == 1, default.stdout
    assert "suits this machine" in advice[0] or "LSP_VERIFY_MODEL=embedded:1.5b" in advice[0]
    assert "model choice" not in own.stdout  # a path the user named: their choice is made


def test_doctor_names_a_missing_model_as_a_problem(tmp_path: Path) -> None:
    proc = cli(tmp_path, tmp_path, "doctor", LSP_VERIFY_MODEL="/nonexistent.gguf")

    assert proc.returncode == 1
    assert "problems:" in proc.stdout and "/nonexistent.gguf" in proc.stdout


# ----------------------------------------------------------------------------------------------- apply step


class ScriptedPipeline:
    """Stands in for Pipeline: "generates" one body, reports it verified with the given evidence."""

    def __init__(
        self,
        settings: Settings,
        body: str = "    return a + b",
        evidence: Evidence = Evidence.TESTS,
        during_run: Callable[[FixRequest], None] | None = None,
    ) -> None:
        self.settings = settings
        self.body = body
        self.evidence = evidence
        self.during_run = during_run

    def engine(self) -> None:
        return None

    def close(self) -> None:
        pass

    def run(self, request: FixRequest, **_: Any) -> FixReport:
        assert request.line is not None
        target = target_at(request.text, request.path, request.line)
        new_text = splice_body(request.text, target, self.body)
        candidate = Candidate(index=0, body=self.body, new_text=new_text, key=normalise(self.body))
        tests = ("tests/test_ops.py::test_add",) if self.evidence is Evidence.TESTS else ()
        result = CandidateResult(
            candidate=candidate,
            passed=True,
            evidence=self.evidence,
            stages=(StageResult("parse", True, 0.0), StageResult("mypy", True, 0.0)),
            tests_selected=tests,
            tests_passed=tests,
        )
        if self.during_run is not None:
            self.during_run(request)
        return FixReport(
            target=target,
            results=(result,),
            n_generated=1,
            seconds=0.1,
            first_verified_s=0.1,
            message=f"{target.qualname}: 1 of 1 distinct candidates passed (1 generated)",
        )


def fix_in_process(project: Path, apply: bool, require_tests: bool = False, **scripted: Any) -> Any:
    def settings_for(root: Path) -> Settings:
        return dataclasses.replace(Settings(), trusted=True, require_tests=require_tests)

    return run_fix(
        FixOptions(specs=("mathx/ops.py",), apply=apply),
        settings_for=settings_for,
        cwd=project,
        pipeline_factory=lambda settings: ScriptedPipeline(settings, **scripted),  # type: ignore[arg-type,return-value]
    )


def test_apply_writes_the_body_and_keeps_the_mode(project: Path) -> None:
    ops = project / "mathx" / "ops.py"
    ops.chmod(0o640)

    report = fix_in_process(project, apply=True)

    assert report.exit_code == 0, report
    assert ops.read_text(encoding="utf-8") == OPS.replace("    ...", "    return a + b")
    assert stat.S_IMODE(ops.stat().st_mode) == 0o640
    assert sorted(p.name for p in ops.parent.iterdir()) == ["__init__.py", "ops.py"], "no temporary file left"
    assert report.functions[0].applied is True


def test_a_file_changed_between_read_and_apply_is_not_written(project: Path) -> None:
    ops = project / "mathx" / "ops.py"
    edited = OPS.replace('"""Arithmetic', '"""Edited meanwhile. Arithmetic')

    def edit_meanwhile(request: FixRequest) -> None:
        ops.write_text(edited, encoding="utf-8")

    report = fix_in_process(project, apply=True, during_run=edit_meanwhile)

    assert report.exit_code == 2
    (outcome,) = report.functions
    assert outcome.status == "error" and outcome.applied is False
    assert "changed since it was read" in outcome.message
    assert ops.read_text(encoding="utf-8") == edited


def test_without_apply_nothing_is_written(project: Path) -> None:
    ops = project / "mathx" / "ops.py"
    before = ops.read_bytes()

    report = fix_in_process(project, apply=False)

    assert report.exit_code == 0
    assert ops.read_bytes() == before
    assert report.functions[0].diff is not None and "+    return a + b" in report.functions[0].diff


def test_require_tests_refuses_a_types_only_result(project: Path) -> None:
    ops = project / "mathx" / "ops.py"

    report = fix_in_process(project, apply=True, evidence=Evidence.TYPES_ONLY, require_tests=True)

    assert report.exit_code == 1
    assert "--require-tests" in report.functions[0].message
    assert ops.read_text(encoding="utf-8") == OPS


def test_every_stub_in_a_file_is_filled_in_order(tmp_path: Path) -> None:
    two = OPS + textwrap.dedent('''

        def sub(a: int, b: int) -> int:
            """Return ``a - b``."""
            raise NotImplementedError
        ''')
    project = make_project(tmp_path / "two", ops=two)

    report = fix_in_process(project, apply=True, body="    return 0")

    assert [f.qualname for f in report.functions] == ["add", "sub"]
    assert report.exit_code == 0
    text = (project / "mathx" / "ops.py").read_text(encoding="utf-8")
    assert text.count("    return 0") == 2 and "NotImplementedError" not in text


# ----------------------------------------------------------------------------------------------- terminal


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(FakeTTY()) is True
    assert use_colour(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_colour(FakeTTY()) is False
