"""The pre-commit hooks: the real ``pre-commit`` blocks a commit that breaks a test and lets a good one in.

pre-commit's ``language: python`` would build a virtual environment and pip-install this repository with
all its dependencies (llama-cpp-python compiles for minutes, and needs the network), so the throw-away
repository uses ``repo: local`` hooks with ``language: system`` that run the lsp-verify of this test run.
The first test keeps those local hooks and ``.pre-commit-hooks.yaml`` from drifting apart.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitrepo import git

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "server"
HOOKS: list[dict[str, Any]] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))

CALC = """\
def add(a: int, b: int) -> int:
    return a + b
"""

TESTS = """\
from calc import add


def test_add() -> None:
    assert add(2, 3) == 5
"""


def pre_commit_executable() -> str:
    beside = Path(sys.executable).parent / "pre-commit"
    found = str(beside) if beside.exists() else shutil.which("pre-commit")
    if found is None:
        pytest.skip("pre-commit is not installed (pip install 'lsp-verify[dev]')")
    return found


def lsp_verify_command(tmp_path: Path) -> str:
    """The lsp-verify of this test run: the console script beside the interpreter, else a small wrapper."""
    beside = Path(sys.executable).parent / "lsp-verify"
    if beside.exists():
        return str(beside)
    wrapper = tmp_path / "bin" / "lsp-verify"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m lsp_verify "$@"\n', encoding="utf-8"
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def local_hooks(executable: str) -> list[dict[str, Any]]:
    """``.pre-commit-hooks.yaml``'s hooks as ``repo: local`` hooks running ``executable``."""
    hooks = []
    for hook in HOOKS:
        program, _, arguments = hook["entry"].partition(" ")
        assert program == "lsp-verify"
        local = {**hook, "language": "system", "entry": f"{executable} {arguments}".strip()}
        hooks.append(local)
    return hooks


def test_hook_definitions() -> None:
    by_id = {hook["id"]: hook for hook in HOOKS}
    assert set(by_id) == {"lsp-verify-check", "lsp-verify-fix"}
    check, fix = by_id["lsp-verify-check"], by_id["lsp-verify-fix"]
    assert check["entry"].split()[:2] == ["lsp-verify", "check"]
    assert fix["entry"].split()[:2] == ["lsp-verify", "fix"]
    for hook in (check, fix):
        assert hook["language"] == "python"
    assert fix["types"] == ["python"] and fix["pass_filenames"] is True
    # pre-commit never passes a deleted file, and a data file only without `types: [python]`: the check
    # hook reads the staged change itself, on every commit.
    assert check["pass_filenames"] is False and check["always_run"] is True and "types" not in check
    assert fix["stages"] == ["manual"], "the fix hook runs the model: only on request"
    assert "stages" not in check


@pytest.fixture
def hooked_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A committed project with the lsp-verify hooks installed by the real pre-commit."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[project]\nname = "calc"\nversion = "0"\n', encoding="utf-8")
    (repo / "calc.py").write_text(CALC, encoding="utf-8")
    (repo / "tests" / "test_calc.py").write_text(TESTS, encoding="utf-8")
    config = {"repos": [{"repo": "local", "hooks": local_hooks(lsp_verify_command(tmp_path))}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    env = dict(os.environ)
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join([str(SERVER), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    git(repo, "init", "-q", env=env)
    git(repo, "add", "-A", env=env)
    git(repo, "commit", "-q", "-m", "init", env=env)
    installed = subprocess.run(
        [pre_commit_executable(), "install"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return repo, env


def commits(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD").stdout)


def test_local_hooks_mirror_the_published_ones(tmp_path: Path) -> None:
    for published, local in zip(HOOKS, local_hooks("/venv/bin/lsp-verify"), strict=True):
        assert local["id"] == published["id"]
        assert local.get("types") == published.get("types")
        assert local.get("always_run") == published.get("always_run")
        assert local["pass_filenames"] == published["pass_filenames"]
        assert local.get("stages") == published.get("stages")
        assert local["entry"] == "/venv/bin/" + published["entry"]


def test_the_check_hook_blocks_a_commit_that_breaks_a_test(hooked_repo: tuple[Path, dict[str, str]]) -> None:
    repo, env = hooked_repo
    (repo / "calc.py").write_text(CALC.replace("a + b", "a - b"), encoding="utf-8")
    git(repo, "add", "calc.py", env=env)

    commit = git(repo, "commit", "-m", "break add", check=False, env=env)

    assert commit.returncode != 0
    output = commit.stdout + commit.stderr
    assert "lsp-verify-check" in output or "lsp-verify check" in output
    assert "Failed" in output
    assert "tests/test_calc.py::test_add" in output
    assert commits(repo) == 1, "the commit was not created"


def test_the_check_hook_blocks_a_commit_that_deletes_a_module_the_tests_import(
    hooked_repo: tuple[Path, dict[str, str]],
) -> None:
    # pre-commit passes no deleted file: before (`check --changed FILES`, `types: [python]`) no hook ran.
    repo, env = hooked_repo
    git(repo, "rm", "-q", "calc.py", env=env)

    commit = git(repo, "commit", "-m", "remove calc", check=False, env=env)

    assert commit.returncode != 0
    output = commit.stdout + commit.stderr
    assert "FAIL  calc.py:1 <module> — the tests cannot be collected with this change" in output, output
    assert commits(repo) == 1, "the commit was not created"


def test_the_check_hook_lets_a_good_commit_in(hooked_repo: tuple[Path, dict[str, str]]) -> None:
    repo, env = hooked_repo
    (repo / "calc.py").write_text(
        CALC.replace("return a + b", "total = a + b\n    return total"), encoding="utf-8"
    )
    git(repo, "add", "calc.py", env=env)

    commit = git(repo, "commit", "-m", "refactor add", check=False, env=env)

    assert commit.returncode == 0, commit.stdout + commit.stderr
    assert "Passed" in commit.stdout + commit.stderr
    assert commits(repo) == 2
