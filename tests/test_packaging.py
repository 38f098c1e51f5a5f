"""The package as a user installs it: a wheel must carry the tree-sitter queries and the report schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy: setuptools reuses a build/ directory in the source tree, which can hold files
    # that no longer exist in the checkout.
    source = tmp_path_factory.mktemp("source") / "lsp-verify"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "node_modules", "build", "*.egg-info", "docs", "bench"
        ),
    )
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if build.returncode != 0 and "No module named" in build.stderr and "setuptools" in build.stderr:
        pytest.skip("setuptools is not installed in this environment")
    assert build.returncode == 0, build.stderr
    (found,) = out.glob("lsp_verify-*.whl")
    return found


def test_wheel_carries_queries_and_schema(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    queries = {Path(name).name for name in names if name.startswith("lsp_verify/grammars/python/")}
    assert queries == {path.name for path in (ROOT / "grammars" / "python").glob("*.scm")}
    assert "lsp_verify/report-schema.json" in names


def test_installed_wheel_finds_its_queries(wheel: Path, tmp_path: Path) -> None:
    # Unpacked wheel first on sys.path, run from elsewhere: the queries must come from the package itself.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from lsp_verify.syntax.parse import grammar_dir, load_query;"
        "load_query('functions'); print(grammar_dir())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(site)], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(site)
