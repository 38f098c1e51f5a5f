"""A real editor: Neovim's built-in LSP client, headless, picks the code action and applies the edit."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import FAKE_SERVER, MODEL_OPTIONS, SERVER, add_tests_pass, copy_project, server_env

NVIM = shutil.which("nvim")
INIT = Path(__file__).parent / "nvim" / "test_init.lua"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(NVIM is None, reason="nvim is not installed (Debian package `neovim`)"),
]


def run_neovim(tmp_path: Path, command: list[str], function: str, **init_options: object) -> tuple[str, str]:
    project = copy_project(tmp_path / "lsp_project")
    out = tmp_path / "nvim.out"
    env = {
        **os.environ,
        "LSPV_FILE": str(project / "mathutil.py"),
        "LSPV_ROOT": str(project),
        "LSPV_OUT": str(out),
        "LSPV_FUNCTION": function,
        "LSPV_CMD": "\t".join(command),
        "LSPV_PYTHONPATH": server_env()["PYTHONPATH"],
        "LSPV_INIT_OPTIONS": json.dumps(init_options),
        "HOME": str(tmp_path),  # no user config or state
    }
    assert NVIM is not None
    subprocess.run(
        [NVIM, "--headless", "--clean", "-u", str(INIT)],
        env=env,
        cwd=project,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    report, _, buffer = out.read_text(encoding="utf-8").partition("--- buffer\n")
    return report, buffer


def test_neovim_applies_the_resolved_edit(tmp_path: Path) -> None:
    report, buffer = run_neovim(tmp_path, FAKE_SERVER, "add", trusted=True, k=2)
    assert "status: done" in report and "action: Complete `add` (verified)" in report, report
    assert "applied edit" in report
    ast.parse(buffer)
    assert "    return a + b\n" in buffer
    assert add_tests_pass(tmp_path, buffer).returncode == 0


@pytest.mark.model
def test_neovim_with_the_model_gets_code_that_passes(tmp_path: Path) -> None:
    report, buffer = run_neovim(tmp_path, SERVER, "add", trusted=True, **MODEL_OPTIONS)
    assert "status: done" in report and "applied edit" in report, report
    ast.parse(buffer)
    assert "    ...\n" not in buffer.split("def double")[0]  # the stub body is gone
    result = add_tests_pass(tmp_path, buffer)
    assert result.returncode == 0, result.stdout + buffer
