"""Shadow workspaces: private copies of the workspace in which exactly one file differs.

A :class:`ShadowRoot` is one private (0700) directory outside the workspace; each :meth:`ShadowRoot.create`
builds a shadow inside it as a *symlink farm*: the directories on the path to the edited file are real
directories, every other entry is a symlink to the user's entry, and the edited file is a real file holding
the candidate text. Building one costs a few dozen ``symlink`` calls, however large the tree.

Why real directories on the path: Python and pytest name modules after the path they were found at, but
``realpath`` of anything inside a symlinked directory points back into the user's tree. Keeping the edited
module and its package directories real makes the shadow copy the only one reachable through the shadow.
Writes through the other symlinks would still reach the user's tree; the sandbox (bubblewrap) mounts the
workspace read-only to stop that, and bytecode and caches are switched off or redirected elsewhere.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
from pathlib import Path

# Entries never linked into a shadow: stale bytecode and tool caches of the user's tree.
_SKIPPED = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})


class ShadowRoot:
    """The private directory holding every shadow of one workspace; removed by :meth:`close`."""

    def __init__(self, workspace: Path, parent: Path | None = None) -> None:
        self.workspace = workspace.resolve()
        # mkdtemp creates the directory with mode 0700, so no other user can read candidates or results.
        self.path = Path(tempfile.mkdtemp(prefix="lsp-verify-", dir=parent)).resolve()
        if self.path == self.workspace or self.workspace in self.path.parents:
            shutil.rmtree(self.path, ignore_errors=True)
            raise ValueError(f"the shadow directory {self.path} must lie outside the workspace {workspace}")
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def create(self, relative: Path, text: str) -> Shadow:
        """A new shadow of the workspace in which ``relative`` (a path inside it) holds ``text``."""
        with self._lock:
            name = f"s{next(self._counter)}"
        shadow_dir = self.path / name
        shadow_dir.mkdir(mode=0o700)
        parts = relative.parts
        if not parts or relative.is_absolute() or ".." in parts:
            raise ValueError(f"expected a path inside the workspace, got {relative}")
        source_dir, target_dir = self.workspace, shadow_dir
        for part in parts[:-1]:
            _link_entries(source_dir, target_dir, keep=part)
            source_dir, target_dir = source_dir / part, target_dir / part
            target_dir.mkdir(mode=0o700)
        _link_entries(source_dir, target_dir, keep=parts[-1])
        edited = target_dir / parts[-1]
        edited.write_text(text, encoding="utf-8")
        return Shadow(root=shadow_dir, relative=relative, edited=edited)

    def scratch(self, name: str) -> Path:
        """A file name inside the private directory (for results and logs)."""
        with self._lock:
            return self.path / f"{name}-{next(self._counter)}"

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class Shadow:
    """One shadow workspace: ``root`` mirrors the workspace, ``edited`` is the candidate's file."""

    def __init__(self, root: Path, relative: Path, edited: Path) -> None:
        self.root = root
        self.relative = relative
        self.edited = edited

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _link_entries(source_dir: Path, target_dir: Path, keep: str) -> None:
    """Symlink every entry of ``source_dir`` into ``target_dir`` except ``keep`` (made real by the caller)."""
    try:
        entries = list(os.scandir(source_dir))
    except FileNotFoundError:
        entries = []  # the edited file's directory may not exist on disk yet (an unsaved new file)
    for entry in entries:
        if entry.name == keep or entry.name in _SKIPPED:
            continue
        os.symlink(entry.path, target_dir / entry.name)
