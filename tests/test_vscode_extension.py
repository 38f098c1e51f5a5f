"""The VS Code extension (client-vscode/): it builds with strict TypeScript, its unit tests pass, and its
manifest agrees with the server on command names and settings.

The build and the node tests need npm and an installed client-vscode/node_modules (scripts/test.sh runs
`npm ci` there); without them those tests skip and say why. The manifest checks need only Python.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lsp_verify.config import Settings, _snake

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "client-vscode"
SERVER_LSP = ROOT / "server" / "lsp_verify" / "lsp"
SECTION = "lspVerify"
CLIENT_ONLY_SETTINGS = {"interpreter", "serverArgs", "trace.server"}
"""Settings the extension uses itself (starting the server, protocol tracing); never sent to the server."""
SERVER_COMMANDS = {"lsp-verify.verifyAndApply", "lsp-verify.showReport"}


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CLIENT / "package.json").read_text(encoding="utf-8"))
    return data


def contributed_commands() -> set[str]:
    return {entry["command"] for entry in manifest()["contributes"]["commands"]}


def server_command_ids() -> set[str]:
    """Command ids written as string literals in the server's LSP layer."""
    ids: set[str] = set()
    for source in SERVER_LSP.glob("*.py"):
        ids.update(re.findall(r"""["'](lsp-verify\.[A-Za-z]+)["']""", source.read_text(encoding="utf-8")))
    return ids


def test_manifest_contributes_the_server_commands_and_restart() -> None:
    assert contributed_commands() == {*SERVER_COMMANDS, "lsp-verify.restart"}
    assert manifest()["activationEvents"] == ["onLanguage:python"]
    assert manifest()["capabilities"]["untrustedWorkspaces"]["supported"] == "limited"


def test_server_registers_the_commands_the_extension_contributes() -> None:
    ids = server_command_ids()
    if not ids:
        pytest.skip(f"no lsp-verify.* command ids found in {SERVER_LSP.relative_to(ROOT)}")
    assert ids >= SERVER_COMMANDS, "the extension contributes commands the server does not implement"
    # Every server command a user can run should be in the command palette too.
    missing = sorted(ids - contributed_commands())
    assert not missing, f"server commands not contributed in package.json: {missing}"


def test_every_contributed_server_setting_is_a_server_setting() -> None:
    properties = manifest()["contributes"]["configuration"]["properties"]
    keys = {name.removeprefix(f"{SECTION}.") for name in properties}
    assert all(name.startswith(f"{SECTION}.") for name in properties)
    fields = {field.name for field in dataclasses.fields(Settings)}
    unknown = {key for key in keys - CLIENT_ONLY_SETTINGS if _snake(key) not in fields}
    assert not unknown, f"package.json contributes settings the server does not know: {sorted(unknown)}"
    assert "trusted" not in keys, "trust must come from VS Code's workspace trust, never from a setting"
    # The settings UI shows the server's own defaults.
    defaults = Settings()
    for key in keys - CLIENT_ONLY_SETTINGS:
        shown = properties[f"{SECTION}.{key}"].get("default")
        actual = getattr(defaults, _snake(key))
        assert shown == actual or (shown == "" and actual is None), f"{key}: shows {shown!r}, not {actual!r}"


def run_npm(*args: str) -> subprocess.CompletedProcess[str]:
    npm = shutil.which("npm")
    assert npm is not None
    return subprocess.run([npm, *args], cwd=CLIENT, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm/node not found on PATH: cannot build the VS Code extension")
    installed = CLIENT / "node_modules"
    if not (installed / "vscode-languageclient").is_dir() or not (installed / "typescript").is_dir():
        pytest.skip("client-vscode/node_modules is not installed: run `cd client-vscode && npm ci` first")
    return installed


def test_extension_compiles_with_strict_typescript(node_modules: Path) -> None:
    result = run_npm("run", "compile")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (CLIENT / "out" / "extension.js").is_file()


def test_extension_unit_tests_pass(node_modules: Path) -> None:
    result = run_npm("test")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    passed = re.search(r"^# pass (\d+)$", output, re.MULTILINE)
    assert passed is not None and int(passed.group(1)) > 0, output
    assert re.search(r"^# fail 0$", output, re.MULTILINE), output


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def test_workspace_settings_an_untrusted_repository_may_not_set_are_restricted() -> None:
    """What `[tool.lsp-verify]` may not set in an untrusted workspace, the workspace's settings.json may
    not either."""
    from lsp_verify.config import UNTRUSTED_PROJECT_IGNORES

    contributed = {
        key.removeprefix(f"{SECTION}.") for key in manifest()["contributes"]["configuration"]["properties"]
    }
    restricted = {
        key.removeprefix(f"{SECTION}.")
        for key in manifest()["capabilities"]["untrustedWorkspaces"]["restrictedConfigurations"]
    }
    loosening = {_camel(name) for name in UNTRUSTED_PROJECT_IGNORES} & contributed
    assert loosening, "the extension contributes none of the loosening settings: the check is empty"
    assert loosening <= restricted
    assert {"interpreter", "serverArgs"} <= restricted


def test_the_server_command_line_never_imports_lsp_verify_from_the_workspace(
    node_modules: Path, tmp_path: Path
) -> None:
    """A repository with its own ``lsp_verify`` package: the extension's command line still runs ours."""
    if not (CLIENT / "out" / "settings.js").is_file():
        run_npm("run", "compile")
    bootstrap = subprocess.run(
        ["node", "-e", "process.stdout.write(require('./out/settings').SERVER_BOOTSTRAP)"],
        cwd=CLIENT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    hostile = tmp_path / "repo"
    (hostile / "lsp_verify").mkdir(parents=True)
    marker = tmp_path / "ran"
    (hostile / "lsp_verify" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "server")}
    proc = subprocess.run(
        [sys.executable, "-c", bootstrap, "serve", "--help"],
        cwd=hostile, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "usage: lsp-verify serve" in proc.stdout
    assert not marker.exists(), "the workspace's lsp_verify package ran"
    # The old command line (`-m lsp_verify`) would have: the guard is real.
    subprocess.run(
        [sys.executable, "-m", "lsp_verify", "--help"], cwd=hostile, capture_output=True, timeout=60, env=env
    )
    assert marker.exists()
