"""Throw-away git repositories for the tests of ``check``, its whole-suite guard and the pre-commit hooks."""

from __future__ import annotations

import subprocess
from pathlib import Path

IDENTITY = ("git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false")


def git(
    repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``git ARGS`` in ``repo``, with a fixed identity and no signing (the user's config cannot interfere)."""
    return subprocess.run(
        [*IDENTITY, *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=check,
        env=env,
        timeout=600,
    )


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """A repository at ``root`` holding ``files`` (relative path -> text) in one commit; returns ``root``."""
    for relpath, text in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text(text, encoding="utf-8")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root
