"""Which tests are "nearby": pytest's collection of the workspace, and the names each collected test uses.

pytest decides which tests exist (``pytest_run.PytestRunner.collect``: the project's rootdir, configuration,
conftest files and plugins - ``unittest.TestCase`` classes of any name, custom ``python_files`` /
``python_classes`` / ``python_functions``, ``testpaths``, parametrisation). This module decides only which of
them are near a function. Each collected test is matched, by the file and ``__qualname__`` (or line) of the
function it runs, to a tree-sitter scan of that file: its imports and every name the function uses.

The collection is cached until a change could alter it: a file it collected from or failed to collect, a
new file matching the project's ``python_files``, a ``conftest.py``, ``__init__.py`` or pytest configuration
file. A watchdog observer (or :meth:`TestIndex.invalidate`) reports changes and tells listeners (the
verifier's baseline cache) which paths changed.

A collected test is selected for a target function ``name`` in module ``pkg.mod`` when

- it was collected from the conventional test module for the file (``test_mod.py`` / ``mod_test.py``): all
  its tests, as a guard for the rest of the module (direct only when they use the name); or
- the file defining it imports ``pkg.mod`` or a package above it (``import pkg.mod``, ``import pkg as p``,
  ``from pkg import mod``, ``from pkg.mod import name``) and the test uses ``name`` (or the name it was
  imported as): ``Box(1, 2, 3).volume()`` names ``Box.volume``. A collected doctest outside the target's
  file - a text file's examples (``--doctest-glob``), another module's docstring (``--doctest-modules``) -
  is matched the same way, its examples as the test function (:mod:`..syntax.doctests_scan`). A module is
  known by every name it may be imported as (:func:`module_names`: a namespace package's full name too).

For a method, a test that uses its class but never its name (it builds a ``Box`` and calls ``label``) is
the hard case: it may reach the method indirectly, or not at all. It is selected, so it must still pass,
but as a guard: it is no evidence for the method (a types-only result says so), except for special methods
(``__init__``, ``__eq__``, ...), which using the class does call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import tree_sitter
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from ..config import PYTEST_CONFIG_FILES
from ..syntax.doctests_scan import DoctestSource, read_doctests
from ..syntax.parse import parse
from ..syntax.tests_scan import TestFunction, test_functions
from .pytest_run import DEFAULT_PYTHON_FILES, UNITTEST_FILES, CollectedTest, Collection, function_id

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

    def function(self, qualname: str, line: int) -> TestFunction | None:
        """The scanned function pytest reported as ``qualname`` defined at ``line`` (0-based; its first
        decorator): by qualname, else the innermost definition spanning the line."""
        for function in self.functions:
            if function.qualname == qualname:
                return function
        spanning = [f for f in self.functions if f.start_line <= line <= f.end_line]
        return min(spanning, key=lambda f: f.end_line - f.start_line, default=None)


# Changes to these may change what pytest collects, wherever they are.
_COLLECTION_FILES = frozenset({"conftest.py", "__init__.py", *(name for name, _ in PYTEST_CONFIG_FILES)})


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


def module_names(root: Path, path: Path) -> tuple[str, ...]:
    """The dotted names ``path`` may be imported as: :func:`module_name`'s first, then - where a directory
    between it and the root has no ``__init__.py`` - its name from the root (from ``src/`` in a src layout),
    as a namespace package (PEP 420) gives it: ``jaraco/functools/__init__.py`` is ``jaraco.functools``, not
    ``functools``."""
    name = module_name(root, path)
    root = root.resolve()
    absolute = (path if path.is_absolute() else root / path).resolve()
    try:
        parts = list(absolute.relative_to(root).with_suffix("").parts)
    except ValueError:
        return (name,)
    if parts and parts[-1] == "__init__":
        parts.pop()
    if len(parts) > 1 and parts[0] == "src":
        parts.pop(0)
    full = ".".join(parts)
    if full == name or not parts or not all(part.isidentifier() for part in parts):
        return (name,)
    return (name, full)


def import_name(root: Path, path: Path) -> str:
    """The dotted name to import ``path`` by on its own (a probe does): :func:`module_name`'s, unless the file
    lies in a package inside a namespace package (``jaraco/functools/__init__.py``) - then the full name,
    since the short one may be another module altogether (``functools``, from the standard library). A file
    outside any package (a script beside its helpers) keeps its short name: it imports its neighbours so."""
    names = module_names(root, path)
    absolute = (path if path.is_absolute() else root / path).resolve()
    return names[-1] if (absolute.parent / "__init__.py").exists() else names[0]


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
    # The functions (every one: pytest decides which are tests) come from the one scan of test modules that
    # the prompt's nearby-test context uses too.
    functions = test_functions(source.decode("utf-8", errors="replace"))
    return TestFile(relative, frozenset(modules), aliases, tuple(functions))


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8", errors="replace")


class TestIndex:
    """pytest's collection of the tests under ``root`` and a scan of their files, kept fresh by a watchdog
    observer."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._lock = threading.Lock()
        self._collect_lock = threading.Lock()
        """Held while collecting: one collection at a time, and concurrent callers share it."""
        self._collection: Collection | None = None
        self._generation = 0
        """Bumped by every invalidation: a collection that started before one is not cached."""
        self._scanned: dict[Path, TestFile] = {}
        """Relative path -> scan of a file that holds collected tests (dropped when it changes)."""
        self._doctests: dict[str, TestFile | None] = {}
        """Node id -> scan of a collected doctest's examples (dropped when its file changes)."""
        self._doctest_files: dict[Path, DoctestSource | None] = {}
        """Relative path -> the doctests of a file, read once for all its items (dropped when it changes)."""
        self._listeners: list[Listener] = []
        self._observer: Any = None
        self._lookups: tuple[Collection, int, _Lookup] | None = None
        """The inverted index of the last collection asked about, and the generation it was built at."""

    # -- life cycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching the tree (idempotent)."""
        with self._lock:
            if self._observer is not None:
                return
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

    def holds_doctests(self, path: Path) -> bool:
        """Whether the cached collection holds doctests from ``path`` (absolute or relative)."""
        absolute = path if path.is_absolute() else self.root / path
        try:
            relative = absolute.relative_to(self.root).as_posix()
        except ValueError:
            return False
        with self._lock:
            collection = self._collection
        return collection is not None and any(t.doctest and t.file == relative for t in collection.tests)

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
                self._scanned.pop(relative, None)
                self._doctest_files.pop(relative, None)
                for node_id in [n for n in self._doctests if n.split("::", 1)[0] == relative.as_posix()]:
                    del self._doctests[node_id]
                if self._collection is not None and _may_change(self._collection, relative):
                    self._collection = None
                self._generation += 1
        if changed:
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                listener(frozenset(changed))

    # -- queries -----------------------------------------------------------------------------------------

    def collection(self, collect: Callable[[], Collection]) -> Collection:
        """pytest's collection of the workspace: the cached one, or ``collect()``'s (then cached)."""
        with self._collect_lock:
            with self._lock:
                if self._collection is not None:
                    return self._collection
                generation = self._generation
            collection = collect()
            with self._lock:
                # A collection that raced with a change is used once, not kept.
                if generation == self._generation:
                    self._collection = collection
            return collection

    def scanned(self, relative: Path) -> TestFile | None:
        """The tree-sitter scan of one file (cached until it changes); None when it cannot be read."""
        with self._lock:
            cached = self._scanned.get(relative)
        if cached is not None:
            return cached
        try:
            scanned = scan_test_file(relative, (self.root / relative).read_bytes())
        except OSError:
            return None
        with self._lock:
            self._scanned[relative] = scanned
        return scanned

    def _scanned_doctest(self, test: CollectedTest) -> TestFile | None:
        """The scan of a collected doctest's examples (cached until its file changes): a text file's
        (``--doctest-glob``) or one docstring's of a module (``--doctest-modules``)."""
        with self._lock:
            if test.nodeid in self._doctests:
                return self._doctests[test.nodeid]
        relative = Path(test.file)
        with self._lock:
            known = relative in self._doctest_files
            source = self._doctest_files.get(relative)
        if not known:
            source = self._read_doctests(relative)
        item_name = test.nodeid.split("::", 1)[1] if "::" in test.nodeid else relative.name
        found = source.item(item_name) if source is not None else None
        scanned = (
            None
            if found is None
            else TestFile(relative, found.imported_modules, found.aliases, (found.function,))
        )
        with self._lock:
            self._doctests[test.nodeid] = scanned
        return scanned

    def _read_doctests(self, relative: Path) -> DoctestSource | None:
        try:
            text = (self.root / relative).read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return None  # not cached: a file that cannot be read now may be readable later
        module: str | None = None
        package = ""
        if relative.suffix == ".py":
            module = module_name(self.root, relative)
            package = module if relative.stem == "__init__" else module.rpartition(".")[0]
        source = read_doctests(text, module, package)
        with self._lock:
            self._doctest_files[relative] = source
        return source

    def node_ids(
        self, target_path: Path, name: str, class_name: str | None, collection: Collection
    ) -> list[str]:
        """pytest node ids of the tests near function ``name`` (a method of ``class_name``) in the file."""
        return [node_id for node_id, _ in self.nearby(target_path, name, class_name, collection)]

    def nearby(
        self, target_path: Path, name: str, class_name: str | None, collection: Collection
    ) -> list[tuple[str, bool]]:
        """(node id, direct) for each collected test function near ``name``: direct when the test itself
        names the target. Node ids are the test functions' (parametrised cases are run by their function).

        Tests of the conventional module (``test_<module>.py``) that never name the target are selected
        too, as a guard against breaking the module's other behaviour, but they are not direct.

        Only the tests that use ``name`` or ``class_name`` or sit in a conventional module are looked at
        (:class:`_Lookup`, built once per collection): ``check --all`` asks this for every function, and a
        scan of every collected test per function made that quadratic.
        """
        absolute = (target_path if target_path.is_absolute() else self.root / target_path).resolve()
        lookup = self._lookup(collection)
        conventional = _conventional(absolute)
        found: set[int] = set()
        for key in (name, class_name):
            if key:
                found.update(lookup.by_name.get(key, ()))
        for file_name in conventional:
            found.update(lookup.by_file_name.get(file_name, ()))
        modules = module_names(self.root, absolute) if found else ()
        selected: dict[str, bool] = {}
        for position in sorted(found):
            entry = lookup.entries[position]
            if entry.file == absolute:
                continue
            calls = self._uses(entry.scanned, entry.function, absolute, {name}, modules)
            builds = bool(class_name) and self._uses(
                entry.scanned, entry.function, absolute, {str(class_name)}, modules
            )
            direct = calls or (builds and name.startswith("__") and name.endswith("__"))
            if calls or builds or entry.file_name in conventional:
                selected[entry.node_id] = selected.get(entry.node_id, False) or direct
        return list(selected.items())

    def _lookup(self, collection: Collection) -> _Lookup:
        """The inverted index of ``collection`` (cached while it and the scans it used are current)."""
        with self._lock:
            generation = self._generation
            cached = self._lookups
        if cached is not None and cached[0] is collection and cached[1] == generation:
            return cached[2]
        entries: list[_Entry] = []
        by_name: dict[str, list[int]] = {}
        by_file_name: dict[str, list[int]] = {}
        resolved: dict[str, Path] = {}  # many tests per file: resolve each file once
        for test in collection.tests:
            if test.doctest and test.file:
                scanned = self._scanned_doctest(test)
                function = scanned.functions[0] if scanned is not None else None
            elif not test.qualname or not test.file:
                continue  # not a Python function (a plugin's item): nothing to scan
            else:
                scanned = self.scanned(Path(test.def_file or test.file))
                # Defined outside the workspace (a base class from an installed package): its line is not a
                # line of the collected file, so only the qualname can match.
                line = test.line if test.def_file else -1
                function = scanned.function(test.qualname, line) if scanned is not None else None
            if scanned is None or function is None:
                continue
            if test.file not in resolved:
                resolved[test.file] = (self.root / test.file).resolve()
            position = len(entries)
            file_name = Path(test.file).name
            entries.append(
                _Entry(function_id(test.nodeid), resolved[test.file], file_name, scanned, function)
            )
            # Under every name :meth:`_uses` could match: each name used, and for a local alias also the
            # name it was imported as (``from pkg.mod import name as local``).
            keys = set(function.names_used)
            keys.update(
                origin.rsplit(".", 1)[-1]
                for local, origin in scanned.aliases.items()
                if local in function.names_used
            )
            for key in keys:
                by_name.setdefault(key, []).append(position)
            if not test.doctest:  # a conventional module's doctests are not its guard tests
                by_file_name.setdefault(file_name, []).append(position)
        lookup = _Lookup(
            tuple(entries),
            {key: tuple(found) for key, found in by_name.items()},
            {key: tuple(found) for key, found in by_file_name.items()},
        )
        with self._lock:
            self._lookups = (collection, generation, lookup)
        return lookup

    def near_but_broken(
        self, target_path: Path, name: str, class_name: str | None, collection: Collection
    ) -> list[tuple[str, str]]:
        """(file, reason) of each file that failed to collect and would hold tests near ``name``: the
        conventional test module, one that imports the module and uses the name anywhere, or a conftest.py
        or directory (which may hide any test)."""
        if not collection.errors:
            return []
        absolute = (target_path if target_path.is_absolute() else self.root / target_path).resolve()
        modules = module_names(self.root, absolute)
        names = {name, class_name} if class_name else {name}
        broken = []
        for where, reason in collection.errors:
            relative = Path(where.split("::", 1)[0])
            if relative.suffix != ".py" or relative.name == "conftest.py":
                broken.append((where, reason))
                continue
            scanned = self.scanned(relative)
            if relative.name in _conventional(absolute) or (
                scanned is not None
                and any(self._uses(scanned, f, absolute, names, modules) for f in scanned.functions)
            ):
                broken.append((where, reason))
        return broken

    def _uses(
        self,
        scanned: TestFile,
        function: TestFunction,
        target: Path,
        names: set[str],
        modules: tuple[str, ...],
    ) -> bool:
        """Whether ``function`` (in ``scanned``) uses one of ``names`` (defined in the ``target`` file, or
        imported under another name) and its file imports the target's module (one of ``modules``, the
        dotted names it may be imported as: :func:`module_names`)."""
        wanted = names | {
            local for local, origin in scanned.aliases.items() if origin.rsplit(".", 1)[-1] in names
        }
        if not function.names_used & wanted:
            return False
        if Path(scanned.path).name in _conventional(target):
            return True
        imported = scanned.imported_modules
        for module in modules:
            parents = {module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)}
            if (
                module in imported
                or bool({f"{module}.{n}" for n in names} & imported)
                or bool(parents & imported)
            ):
                return True
        return False


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One collected test function, with the scan of the function it runs."""

    node_id: str
    """Its node id without parameters: what is run and reported."""
    file: Path
    """The file it was collected from, resolved."""
    file_name: str
    scanned: TestFile
    function: TestFunction


@dataclasses.dataclass(frozen=True)
class _Lookup:
    """A collection's tests by the names they use, built once: selecting the nearby tests of a function
    looks at the few tests that could be near it, not at every collected test."""

    entries: tuple[_Entry, ...]
    """In collection order."""
    by_name: dict[str, tuple[int, ...]]
    """Name a test uses (or the original name of an alias it uses) -> positions in ``entries``."""
    by_file_name: dict[str, tuple[int, ...]]
    """Base name of the collected file -> positions in ``entries`` (the conventional test modules)."""


def _conventional(target: Path) -> set[str]:
    return {f"test_{target.stem}.py", f"{target.stem}_test.py"}


def _may_change(collection: Collection, relative: Path) -> bool:
    """Whether a change to ``relative`` may change what pytest collects."""
    if collection.problem and relative.suffix == ".py":
        return True  # a conftest.py may import any module of the project: any fix may be the one
    if relative.name in _COLLECTION_FILES:
        return True
    posix = relative.as_posix()
    if any(posix in (test.file, test.def_file) for test in collection.tests):
        return True
    if any(
        posix == where.split("::", 1)[0] for where, _ in (*collection.errors, *collection.order_dependent)
    ):
        return True
    if relative.suffix != ".py":
        return False
    # pytest matches a pattern without a slash against the file name, one with a slash against the path.
    patterns = collection.python_files
    if patterns == DEFAULT_PYTHON_FILES:
        patterns = (*patterns, UNITTEST_FILES)  # a new tests.py may hold TestCase classes
    return any(fnmatch.fnmatch(posix if "/" in pattern else relative.name, pattern) for pattern in patterns)


class _Handler(FileSystemEventHandler):
    """Forwards changes of Python and configuration files to :meth:`TestIndex.invalidate`."""

    _SUFFIXES = (".py", ".toml", ".ini", ".cfg")
    _DOCTEST_SUFFIXES = (".txt", ".rst", ".md")
    """Reported only for a file the collection holds doctests from: a README edited, a log written, must
    not cost every cached baseline."""

    def __init__(self, index: TestIndex) -> None:
        super().__init__()
        self._index = index

    def on_any_event(self, event: Any) -> None:
        if event.event_type in ("opened", "closed_no_write") or event.is_directory:
            return
        paths = [getattr(event, "src_path", ""), getattr(event, "dest_path", "")]
        named = [Path(os.fsdecode(p)) for p in paths if p]
        changed = [
            path
            for path in named
            if path.name.endswith(self._SUFFIXES)
            or (path.name.endswith(self._DOCTEST_SUFFIXES) and self._index.holds_doctests(path))
        ]
        if changed:
            self._index.invalidate(changed)
