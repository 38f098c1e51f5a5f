"""Freshness: files that change on disk (another editor, git, a formatter, a save) reach the pipeline.

A watchdog observer watches the workspace; changed Python files and project files are batched for a short
moment and handed to a callback (the server queues ``Pipeline.invalidate`` on the pipeline worker, so caches
never change under a running request).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ..config import PYTEST_CONFIG_FILES

log = logging.getLogger(__name__)

_IGNORED_DIRS = {
    ".git",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".venv",
    "node_modules",
}
_RELEVANT_NAMES = {
    "setup.py",
    "mypy.ini",
    ".mypy.ini",
    "conftest.py",
    *(name for name, _ in PYTEST_CONFIG_FILES),
}


def relevant(path: Path) -> bool:
    """Whether a change to ``path`` can change a verification result."""
    if _IGNORED_DIRS.intersection(path.parts):
        return False
    return path.suffix in (".py", ".pyi") or path.name in _RELEVANT_NAMES


class WorkspaceWatcher(FileSystemEventHandler):
    """Calls ``on_change(paths)`` with batches of changed files under ``root``."""

    def __init__(self, root: Path, on_change: Callable[[list[Path]], None], delay_s: float = 0.2) -> None:
        super().__init__()
        self.root = root
        self._on_change = on_change
        self._delay_s = delay_s
        self._pending: set[Path] = set()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._observer: Any = None

    def start(self) -> None:
        observer = Observer()
        observer.daemon = True
        observer.schedule(self, str(self.root), recursive=True)
        observer.start()
        self._observer = observer
        log.info("watching %s for changes on disk", self.root)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path, event.dest_path] if event.dest_path else [event.src_path]
        changed = [Path(p.decode() if isinstance(p, bytes) else p) for p in paths]
        changed = [p for p in changed if relevant(p)]
        if not changed:
            return
        with self._lock:
            self._pending.update(changed)
            if self._timer is None:
                self._timer = threading.Timer(self._delay_s, self._flush)
                self._timer.daemon = True
                self._timer.start()

    def _flush(self) -> None:
        with self._lock:
            paths, self._pending = sorted(self._pending), set()
            self._timer = None
        if paths:
            log.info("changed on disk: %s", ", ".join(str(p) for p in paths))
            self._on_change(paths)
