"""Which modules of a project import which: read from their import statements, without running anything.

``lsp-verify check`` type-checks the modules that import a changed one (a signature changed, a function
renamed or deleted breaks its callers even where no test runs them). Finding them needs no precision in one
direction: a module taken for an importer that is not one only costs a look, since what counts is the errors
mypy reports there with the change against those without it. So an import names a module and, for
``from a import b``, both ``a`` and ``a.b`` (``b`` may be a submodule or a name); a package's
``__init__.py`` that imports a changed module re-exports what it likes, so the modules that import the package
import the change too (:func:`importers` follows such packages).
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable, Mapping

from .pyast import parse_module


def imported_modules(text: str, module: str, is_package: bool) -> frozenset[str] | None:
    """The dotted names the imports of ``text`` (the source of module ``module``; ``is_package``: it is a
    package's ``__init__.py``) may refer to, relative imports resolved; None when it does not parse."""
    try:
        tree = parse_module(text)
    except (SyntaxError, ValueError):
        return None
    package = module.split(".") if is_package else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(package):
                    continue  # beyond the top-level package: an ImportError at run time
                parts = package[: len(package) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base:
                names.add(base)
            names.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return frozenset(names)


def imports_any(imported: Iterable[str], modules: frozenset[str], within: frozenset[str]) -> bool:
    """Whether a module importing ``imported`` (:func:`imported_modules`) sees one of ``modules``: it imports
    one of them, or a submodule of one of ``within`` (which runs that package's ``__init__.py`` first)."""
    return any(name in modules or _within(name, within) for name in imported)


@dataclasses.dataclass(frozen=True)
class ModuleImports:
    """One file of a project, as :func:`importers` reads it."""

    names: frozenset[str]
    """The dotted names it may be imported by."""
    imported: frozenset[str]
    """What it imports (:func:`imported_modules`)."""
    is_package: bool


def importers(files: Mapping[str, ModuleImports], changed: Iterable[str]) -> list[str]:
    """The files of ``files`` (keyed by path) that import one of the modules ``changed`` (dotted names),
    directly or through a package whose ``__init__.py`` does; none of the changed modules' own files.

    A package that re-exports the change is reached by its own name only: ``from pkg.other import f`` runs
    ``pkg/__init__.py`` but sees none of its names, and a package's ``__init__.py`` that star-imports one
    module would otherwise make every importer of any of its modules one of these."""
    within = frozenset(changed)
    reach = within
    taken = {path for path, file in files.items() if file.names & reach}
    while True:
        packages = {
            path
            for path, file in files.items()
            if file.is_package and path not in taken and imports_any(file.imported, reach, within)
        }
        if not packages:
            break
        taken |= packages
        reach = reach.union(*(files[path].names for path in packages))
    own = {path for path, file in files.items() if file.names & within}
    return sorted(
        path for path, file in files.items() if path not in own and imports_any(file.imported, reach, within)
    )


def _within(name: str, modules: frozenset[str]) -> bool:
    """Whether ``name`` is a submodule (or a name) of one of ``modules``."""
    parts = name.split(".")
    return any(".".join(parts[:n]) in modules for n in range(1, len(parts)))
