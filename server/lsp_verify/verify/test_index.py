"""Which tests are "nearby": an index of the workspace's test functions, kept fresh as files change.

Test files are the ones pytest collects by default (``test_*.py``, ``*_test.py``) anywhere under the root,
outside virtual environments, VCS and build directories. Each is parsed once with tree-sitter into its
imports and its test functions (module level, or methods of ``Test*`` classes) with every name each one
mentions; a watchdog observer drops a file's entry when it changes and tells listeners (the verifier's
baseline cache) which paths changed.

A test is selected for a target function ``name`` in module ``pkg.mod`` when

- it lives in the conventional test module for the file (``test_mod.py`` / ``mod_test.py``): all its tests; or
- its file imports ``pkg.mod`` (``import pkg.mod``, ``from pkg import mod``, ``from pkg.mod import name``)
  and the test mentions ``name`` (or the name it was imported as, or the class of a method).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import tree_sitter
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from ..syntax.parse import parse
from ..syntax.tests_scan import TestFunction, test_functions

_SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "env", ".tox", ".nox", "node_modules", "__pycache__", "build",
     "dist", "site-packages", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".eggs"}
)  # fmt: skip

Listener = Callable[[frozenset[Path]], None]


@dataclasses.dataclass(frozen=True)
class TestFile:
    __test__ = False  # not a pytest test class, despite the name

    path: Path
    """Relative to the root."""
    imported_modules: frozenset[str]
    """Dotted modules the file imports, including ``pkg.mod`` for ``from pkg import mod``."""
    aliases: dict[str, str]
    """Local name -> dotted origin, for ``from pkg.mod import name as local``."""
    functions: tuple[TestFunction, ...]


def is_test_file(name: str) -> bool:
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def module_name(root: Path, path: Path) -> str:
    """The dotted module name of ``path``: its package directories (those with ``__init__.py``) + stem."""
    root = root.resolve()
    absolute = (path if path.is_absolute() else root / path).resolve()
    parts = [absolute.stem] if absolute.stem != "__init__" else []
    directory = absolute.parent
    while directory != root and (directory / "__init__.py").exists():
        parts.insert(0, directory.name)
        directory = directory.parent
    return ".".join(parts)


def scan_test_file(relative: Path, source: bytes) -> TestFile:
    """Imports and test functions of one test file."""
    tree = parse(source)
    modules: set[str] = set()
    aliases: dict[str, str] = {}
    for node in tree.root_node.children:
        if node.type == "import_statement":
            for child in node.named_children:
                dotted = child.child_by_field_name("name") if child.type == "aliased_import" else child
                if dotted is not None:
                    modules.add(_text(dotted))
        elif node.type == "import_from_statement":
            module_node = node.child_by_field_name("module_name")
            base = _text(module_node) if module_node is not None else ""
            if base.startswith("."):
                continue  # relative imports inside a tests package do not import the code under test
            modules.add(base)
            for child in node.children_by_field_name("name"):
                dotted = child.child_by_field_name("name") if child.type == "aliased_import" else child
                alias = child.child_by_field_name("alias") if child.type == "aliased_import" else dotted
                if dotted is None or alias is None:
                    continue
                modules.add(f"{base}.{_text(dotted)}")
                aliases[_text(alias)] = f"{base}.{_text(dotted)}"
    # The test functions themselves (pytest's collection rules, nested Test* classes included) come from
    # the one scan of test modules that the prompt's nearby-test context uses too.
    functions = test_functions(source.decode("utf-8", errors="replace"))
    return TestFile(relative, frozenset(modules), aliases, tuple(functions))


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8", errors="replace")


class TestIndex:
    """The test files under ``root``, parsed lazily and kept fresh by a watchdog observer."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._lock = threading.Lock()
        self._files: dict[Path, TestFile | None] | None = None
        """Relative path -> parsed file (None: not parsed yet or changed since)."""
        self._listeners: list[Listener] = []
        self._observer: Any = None

    # -- life cycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Index the tree and start watching it (idempotent)."""
        with self._lock:
            if self._observer is not None:
                return
        self._ensure_listed()
        observer = Observer()
        observer.schedule(_Handler(self), str(self.root), recursive=True)
        observer.daemon = True
        try:
            observer.start()
        except OSError:  # e.g. inotify watch limit reached: fall back to invalidate() calls only
            return
        with self._lock:
            self._observer = observer

    def stop(self) -> None:
        with self._lock:
            observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(paths)`` whenever files under the root change; returns an unregister function."""
        with self._lock:
            self._listeners.append(listener)

        def unregister() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unregister

    def invalidate(self, paths: Iterable[Path]) -> None:
        """Forget what is known about ``paths`` (absolute or relative) and tell the listeners."""
        changed: set[Path] = set()
        for path in paths:
            absolute = path if path.is_absolute() else self.root / path
            try:
                relative = absolute.relative_to(self.root)
            except ValueError:
                continue
            if any(part in _SKIPPED_DIRS for part in relative.parts):
                continue
            changed.add(absolute)
            with self._lock:
                if self._files is not None and is_test_file(relative.name):
                    if absolute.is_file():
                        self._files[relative] = None
                    else:
                        self._files.pop(relative, None)
        if changed:
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                listener(frozenset(changed))

    # -- queries -----------------------------------------------------------------------------------------

    def test_files(self) -> list[TestFile]:
        files = self._ensure_listed()
        parsed = []
        for relative in sorted(files):
            info = files.get(relative)
            if info is None:
                try:
                    info = scan_test_file(relative, (self.root / relative).read_bytes())
                except OSError:
                    continue
                with self._lock:
                    if self._files is not None and relative in self._files:
                        self._files[relative] = info
            parsed.append(info)
        return parsed

    def node_ids(self, target_path: Path, name: str, class_name: str | None) -> list[str]:
        """pytest node ids of the tests near function ``name`` (a method of ``class_name``) in the file."""
        return [node_id for node_id, _ in self.nearby(target_path, name, class_name)]

    def nearby(self, target_path: Path, name: str, class_name: str | None) -> list[tuple[str, bool]]:
        """(node id, direct) for each test near ``name``: direct when the test itself names the target.

        Tests of the conventional module (``test_<module>.py``) that never name the target are selected
        too, as a guard against breaking the module's other behaviour, but they are not direct.
        """
        absolute = target_path if target_path.is_absolute() else self.root / target_path
        module = module_name(self.root, absolute)
        stem = absolute.stem
        conventional = {f"test_{stem}.py", f"{stem}_test.py"}
        parents = {module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)}
        selected: list[tuple[str, bool]] = []
        for test_file in self.test_files():
            if (self.root / test_file.path).resolve() == absolute.resolve():
                continue
            prefix = test_file.path.as_posix()
            wanted = {name}
            if class_name:
                wanted.add(class_name)
            wanted |= {local for local, origin in test_file.aliases.items() if origin.endswith(f".{name}")}
            if test_file.path.name in conventional:
                selected += [
                    (f"{prefix}::{f.nodeid_suffix}", bool(f.names_used & wanted)) for f in test_file.functions
                ]
                continue
            imports_module = module in test_file.imported_modules or f"{module}.{name}" in (
                test_file.imported_modules
            )
            if not imports_module and not (parents & test_file.imported_modules and "." in module):
                continue
            for function in test_file.functions:
                if function.names_used & wanted:
                    selected.append((f"{prefix}::{function.nodeid_suffix}", True))
        return selected

    def _ensure_listed(self) -> dict[Path, TestFile | None]:
        with self._lock:
            if self._files is not None:
                return dict(self._files)
        found: dict[Path, TestFile | None] = {}
        for directory, subdirs, names in os.walk(self.root):
            subdirs[:] = [d for d in subdirs if d not in _SKIPPED_DIRS and not d.startswith(".")]
            for file_name in names:
                if is_test_file(file_name):
                    found[(Path(directory) / file_name).relative_to(self.root)] = None
        with self._lock:
            if self._files is None:
                self._files = found
            return dict(self._files)


class _Handler(FileSystemEventHandler):
    """Forwards changes of Python and configuration files to :meth:`TestIndex.invalidate`."""

    _SUFFIXES = (".py", ".toml", ".ini", ".cfg")

    def __init__(self, index: TestIndex) -> None:
        super().__init__()
        self._index = index

    def on_any_event(self, event: Any) -> None:
        if event.event_type in ("opened", "closed_no_write") or event.is_directory:
            return
        paths = [getattr(event, "src_path", ""), getattr(event, "dest_path", "")]
        changed = [Path(os.fsdecode(p)) for p in paths if p and os.fsdecode(p).endswith(self._SUFFIXES)]
        if changed:
            self._index.invalidate(changed)
