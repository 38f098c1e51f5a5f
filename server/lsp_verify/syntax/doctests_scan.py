"""Which names a collected doctest uses, so that it can be near a function as a test function is.

pytest collects doctests from text files (``--doctest-glob``; ``test*.txt`` always) and, with
``--doctest-modules``, from every docstring of a module. A README's examples that call ``slugify`` test
``slugify`` as much as a test function that calls it does. This scan reads the examples of one such item
and gives what :mod:`..verify.test_index` matches a test function by: the modules imported (by the
examples, and for a module's docstring by the module itself - the examples run in its globals, relative
imports resolved) and every name the examples use, as one function.
"""

from __future__ import annotations

import ast
import dataclasses
import doctest
from collections.abc import Iterable, Iterator

from . import pyast
from .tests_scan import TestFunction


@dataclasses.dataclass(frozen=True)
class DoctestScan:
    """The examples of one collected doctest item."""

    imported_modules: frozenset[str]
    """Dotted modules imported, including ``pkg.mod`` for ``from pkg import mod``."""
    aliases: dict[str, str]
    """Local name -> dotted origin, for ``from pkg.mod import name [as local]``."""
    function: TestFunction
    """The examples as one function: ``qualname`` is the item's name, ``names_used`` every name they use."""


@dataclasses.dataclass(frozen=True)
class DoctestSource:
    """One file's doctests, read once: the imports its examples run with and its docstrings."""

    modules: frozenset[str]
    aliases: dict[str, str]
    module: str | None
    """The module's dotted name (None: a text file, whose examples are all one item)."""
    package: str
    """What its relative imports are relative to."""
    docstrings: dict[str, str]
    """Qualname in the module (``Class.method``; ``""``: the module docstring, or a text file's text) ->
    the text of its examples."""

    def item(self, item_name: str) -> DoctestScan | None:
        """The examples pytest runs as item ``item_name`` (the part of its node id after ``::``: ``pkg.mod``
        for the module docstring, ``pkg.mod.Class.method``); None when there is none to read."""
        if self.module is None or item_name == self.module:
            docstring: str | None = self.docstrings.get("")
        elif item_name.startswith(f"{self.module}."):
            docstring = self.docstrings.get(item_name[len(self.module) + 1 :])
        else:
            # pytest may import the module under another dotted name than the packages above it say
            # (rootdir layouts, import modes): match the qualname.
            tails = [name for name in self.docstrings if name and item_name.endswith(f".{name}")]
            if tails:
                docstring = self.docstrings[max(tails, key=len)]
            else:  # the module docstring's (``jaraco.functools`` where the packages say ``functools``)
                docstring = self.docstrings.get("") if item_name.endswith(f".{self.module}") else None
        if docstring is None:
            return None
        try:
            examples = doctest.DocTestParser().get_examples(docstring)
        except ValueError:  # inconsistent indentation: pytest reports the item as an error, not a test
            return None
        if not examples:
            return None
        imports = _Imports(
            self.package if self.module is not None else None, set(self.modules), dict(self.aliases)
        )
        names: set[str] = set()
        for example in examples:
            try:
                parsed = pyast.parse_module(example.source)
            except (SyntaxError, ValueError):
                continue
            imports.visit_all(parsed.body)
            names.update(_names_in(parsed))
        function = TestFunction(
            name=item_name.rsplit(".", 1)[-1],
            class_name=None,
            qualname=item_name,
            line=-1,
            start_line=-1,
            end_line=-1,
            names_used=frozenset(names),
            imported_names=frozenset(imports.modules | set(imports.aliases)),
        )
        return DoctestScan(frozenset(imports.modules), dict(imports.aliases), function)


def read_doctests(text: str, module: str | None, package: str = "") -> DoctestSource | None:
    """The doctests of a file: a text file's (``module`` None), or a module's docstrings (``module``: its
    dotted name; ``package``: what its relative imports are relative to - the module's own for an
    ``__init__.py``). None for a module that does not parse."""
    if module is None:
        return DoctestSource(frozenset(), {}, None, "", {"": text})
    try:
        tree = pyast.parse_module(text)
    except (SyntaxError, ValueError):
        return None
    imports = _Imports(package, set(), {})
    imports.visit_all(tree.body)
    return DoctestSource(frozenset(imports.modules), imports.aliases, module, package, _docstrings(tree))


def _docstrings(tree: ast.Module) -> dict[str, str]:
    """Each docstring by its qualname in the module (``""``: the module's own)."""
    found: dict[str, str] = {}
    module_doc = ast.get_docstring(tree, clean=False)
    if module_doc:
        found[""] = module_doc

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qualname = f"{prefix}{node.name}"
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    found[qualname] = doc
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{qualname}.")

    visit(tree.body, "")
    return found


class _Imports:
    """The imports of a module and of examples, as :class:`DoctestScan` keeps them."""

    def __init__(self, package: str | None, modules: set[str], aliases: dict[str, str]) -> None:
        self._package = package
        self.modules = modules
        self.aliases = aliases

    def visit_all(self, body: list[ast.stmt]) -> None:
        """The imports that bind names where the examples run: at the top level (``if``/``try`` blocks
        included), not inside a function or class body."""
        for node in _outside_definitions(body):
            if isinstance(node, ast.Import):
                self.modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(node.module or "", node.level)
                if base is None:
                    continue
                self.modules.add(base)
                for alias in node.names:
                    if alias.name == "*":
                        continue
                    self.modules.add(f"{base}.{alias.name}")
                    self.aliases[alias.asname or alias.name] = f"{base}.{alias.name}"

    def _absolute(self, name: str, level: int) -> str | None:
        """The dotted module a ``from`` import names; None for a relative one outside a package."""
        if level == 0:
            return name
        if not self._package:
            return None
        parts = self._package.split(".")
        if len(parts) < level:
            return None
        package = parts[: len(parts) - level + 1]
        return ".".join([*package, name] if name else package)


def _outside_definitions(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """``nodes`` and what they hold, in source order, leaving out function, lambda and class bodies."""
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield node
        yield from _outside_definitions(ast.iter_child_nodes(node))


def _names_in(tree: ast.AST) -> set[str]:
    """Every identifier: names, attribute names, keyword argument names."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
    return names
