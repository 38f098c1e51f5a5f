"""Which test functions a test module holds, and which names each of them refers to.

Verification selects the tests that exercise a target by name: a test is a candidate for ``calc.add``
when it uses ``add`` and the module imports ``calc`` (or ``add``). Finding tests follows pytest's default
collection rules: ``test*`` functions at module level or in ``Test*`` classes (nested ones included).
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
    """Dotted ``Test*`` classes the function is in, e.g. ``TestStack`` or ``TestStack.TestPop``."""
    line: int
    """0-based line of the ``def`` (after any decorators)."""
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
    """The test functions of a test module's source, in document order."""
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
        if not site.name.startswith("test") or site.broken:
            continue
        classes = _test_classes(site.outer)
        if classes is None:
            continue
        found = captures("references", site.outer)
        local_imports = {name for node in found.get("import", []) for name in _imported(node)}
        tests.append(
            TestFunction(
                name=site.name,
                class_name=".".join(classes) or None,
                line=text.line_of(site.node.start_byte),
                end_line=site.last_line,
                names_used=frozenset(_text(node) for node in found.get("reference", [])) - {site.name},
                imported_names=module_imports | local_imports,
            )
        )
    return tests


def _test_classes(outer: tree_sitter.Node) -> list[str] | None:
    """Names of the enclosing classes, outermost first, when every one is a ``Test*`` class and no
    function encloses the definition; else None (pytest would not collect it)."""
    names: list[str] = []
    parent = outer.parent
    while parent is not None:
        if parent.type == "function_definition":
            return None
        if parent.type == "class_definition":
            name = _text(parent.child_by_field_name("name"))
            if not name.startswith("Test"):
                return None
            names.append(name)
        parent = parent.parent
    return names[::-1]


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
