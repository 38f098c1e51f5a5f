"""README.md's set-up snippets are promises: the pre-commit snippet's ``rev`` is a commit of this repository
that has the hooks it names. (Its Neovim snippet runs in tests/e2e/test_neovim.py.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_pre_commit_snippet_names_a_revision_that_has_its_hooks() -> None:
    if git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip("not a git checkout: the revision cannot be looked up")
    if git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        pytest.skip("a shallow clone may not have the revision (fetch with --unshallow)")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**pre-commit**") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    (remote,) = [r for r in yaml.safe_load(block.group(1))["repos"] if r["repo"] != "local"]

    rev = str(remote["rev"])
    found = git("cat-file", "-p", f"{rev}:.pre-commit-hooks.yaml")

    assert found.returncode == 0, f"README's pre-commit rev {rev!r}: {found.stderr.strip()}"
    hooks = {hook["id"] for hook in yaml.safe_load(found.stdout)}
    assert {hook["id"] for hook in remote["hooks"]} <= hooks
