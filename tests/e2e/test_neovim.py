"""A real editor: Neovim's built-in LSP client, headless, picks the code action and applies the edit.

The first test sets the client up with the README's own snippet (cut from README.md, so the two cannot
drift apart), with an ``lsp-verify`` on PATH that runs the scripted server."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import FAKE_SERVER, MODEL_OPTIONS, REPO, SERVER, add_tests_pass, copy_project, server_env

NVIM = shutil.which("nvim")
INIT = Path(__file__).parent / "nvim" / "test_init.lua"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(NVIM is None, reason="nvim is not installed (Debian package `neovim`)"),
]


def readme_snippet() -> str:
    """The Lua block of README.md's Neovim section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Neovim**") :]
    match = re.search(r"```lua\n(.*?)```", section, re.DOTALL)
    assert match is not None, "README.md's Neovim section has no lua block"
    return match.group(1)


def run_neovim(
    tmp_path: Path,
    function: str,
    *,
    command: list[str] | None = None,
    snippet: str | None = None,
    **init_options: object,
) -> tuple[str, str]:
    """Run Neovim on the fixture project: the client is started by ``snippet`` (a Lua set-up, with the
    scripted server as ``lsp-verify`` on PATH) or, given ``command``, by the test script itself."""
    project = copy_project(tmp_path / "lsp_project")
    out = tmp_path / "nvim.out"
    env = {
        **os.environ,
        "LSPV_FILE": str(project / "mathutil.py"),
        "LSPV_ROOT": str(project),
        "LSPV_OUT": str(out),
        "LSPV_FUNCTION": function,
        "LSPV_PYTHONPATH": server_env()["PYTHONPATH"],
        "LSPV_INIT_OPTIONS": json.dumps(init_options),
        "HOME": str(tmp_path),  # no user config or state
    }
    if command is not None:
        env["LSPV_CMD"] = "\t".join(command)
    if snippet is not None:
        setup = tmp_path / "setup.lua"
        setup.write_text(snippet, encoding="utf-8")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "lsp-verify"
        # `lsp-verify serve` as the README's snippet runs it, answered by the scripted server.
        wrapper.write_text(f"#!/bin/sh\nexec {shlex.join(FAKE_SERVER)}\n", encoding="utf-8")
        wrapper.chmod(0o755)
        env["LSPV_SNIPPET"] = str(setup)
        env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
        env["PYTHONPATH"] = server_env()["PYTHONPATH"]
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


def test_neovim_set_up_as_the_readme_says_applies_the_resolved_edit(tmp_path: Path) -> None:
    report, buffer = run_neovim(tmp_path, "add", snippet=readme_snippet())
    assert "status: done" in report and "action: Complete `add` (verified)" in report, report
    assert f"root: {tmp_path / 'lsp_project'}" in report, "the snippet found the project's pyproject.toml"
    assert "applied edit" in report
    ast.parse(buffer)
    assert "    return a + b\n" in buffer
    assert add_tests_pass(tmp_path, buffer).returncode == 0


@pytest.mark.model
def test_neovim_with_the_model_gets_code_that_passes(tmp_path: Path) -> None:
    report, buffer = run_neovim(tmp_path, "add", command=SERVER, trusted=True, **MODEL_OPTIONS)
    assert "status: done" in report and "applied edit" in report, report
    ast.parse(buffer)
    assert "    ...\n" not in buffer.split("def double")[0]  # the stub body is gone
    result = add_tests_pass(tmp_path, buffer)
    assert result.returncode == 0, result.stdout + buffer
