"""Which functions a test module defines, and which names each of them refers to.

Verification selects the tests that exercise a target by name: a test is a candidate for ``calc.add``
when it uses ``add`` and the module imports ``calc`` (or ``add``). Which functions *are* tests is not
decided here - pytest's collection decides that, with the project's configuration and plugins (see
``verify/pytest_run``). This scan lists every function definition with its Python ``__qualname__`` and
lines, so that a collected test (file + qualname, or file + line) finds its names here.
"""

from __future__ import annotations

import dataclasses

import tree_sitter

from .parse import captures
from .targets import SourceText, parse_functions


@dataclasses.dataclass(frozen=True)
class TestFunction:
    __test__ = False  # not a pytest test class, despite its name

    name: str
    class_name: str | None
    """Dotted classes the function is a method of, e.g. ``TestStack``, ``TestStack.TestPop`` or
    ``AreaTests`` (None for a module-level function or one nested in a function)."""
    qualname: str
    """Python's ``__qualname__``: ``AreaTests.test_square``, ``make.<locals>.test_generated``."""
    line: int
    """0-based line of the ``def`` (after any decorators)."""
    start_line: int
    """0-based first line of the definition, its decorators included."""
    end_line: int
    """0-based last line of the function."""
    names_used: frozenset[str]
    """Every identifier in the function and its decorators: names, attribute names, keyword names."""
    imported_names: frozenset[str]
    """What the module's imports (and the function's own) bring in: each imported dotted module name and
    each of its components, each imported name and each alias. ``from pkg.calc import add as plus`` gives
    ``pkg.calc``, ``pkg``, ``calc``, ``add`` and ``plus``; relative imports lose their leading dots."""

    @property
    def nodeid_suffix(self) -> str:
        """The part of a pytest node id after the file: ``TestStack::test_push`` or ``test_add``."""
        return "::".join([*(self.class_name.split(".") if self.class_name else []), self.name])


def test_functions(source: str) -> list[TestFunction]:
    """Every function defined in a test module's source (methods and nested functions included), in
    document order; a definition with a syntax error in it is left out."""
    text = SourceText(source)
    sites, tree = parse_functions(text)
    module_imports = frozenset(
        name
        for node in captures("references", tree.root_node).get("import", [])
        if _inside_function(node) is None
        for name in _imported(node)
    )
    tests: list[TestFunction] = []
    for site in sites:
        if site.broken:
            continue
        classes, qualname = _scope(site.outer, site.name)
        found = captures("references", site.outer)
        local_imports = {name for node in found.get("import", []) for name in _imported(node)}
        tests.append(
            TestFunction(
                name=site.name,
                class_name=".".join(classes) or None,
                qualname=qualname,
                line=text.line_of(site.node.start_byte),
                start_line=text.line_of(site.outer.start_byte),
                end_line=site.last_line,
                names_used=frozenset(_text(node) for node in found.get("reference", [])) - {site.name},
                imported_names=module_imports | local_imports,
            )
        )
    return tests


def _scope(outer: tree_sitter.Node, name: str) -> tuple[list[str], str]:
    """The classes a definition is a method of (outermost first; none when a function encloses it) and
    its Python ``__qualname__``."""
    parts = [name]
    classes: list[str] = []
    in_function = False
    parent = outer.parent
    while parent is not None:
        if parent.type == "function_definition":
            in_function = True
            parts.append(_text(parent.child_by_field_name("name")) + ".<locals>")
        elif parent.type == "class_definition":
            class_name = _text(parent.child_by_field_name("name"))
            parts.append(class_name)
            if not in_function:
                classes.append(class_name)
        parent = parent.parent
    return classes[::-1], ".".join(parts[::-1])


def _inside_function(node: tree_sitter.Node) -> tree_sitter.Node | None:
    parent = node.parent
    while parent is not None and parent.type != "function_definition":
        parent = parent.parent
    return parent


def _imported(statement: tree_sitter.Node) -> set[str]:
    names: set[str] = set()

    def add_module(dotted: str) -> None:
        dotted = dotted.lstrip(".")
        if dotted:
            names.add(dotted)
            names.update(dotted.split("."))

    module = statement.child_by_field_name("module_name")
    if module is not None:
        add_module(_text(module))
    for imported in statement.children_by_field_name("name"):
        if imported.type == "aliased_import":
            original = _text(imported.child_by_field_name("name"))
            names.add(_text(imported.child_by_field_name("alias")))
        else:
            original = _text(imported)
        if module is None:
            add_module(original)  # import a.b
        else:
            names.add(original)  # from m import name
    return names


def _text(node: tree_sitter.Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", errors="replace")
