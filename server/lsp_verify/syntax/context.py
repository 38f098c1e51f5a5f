"""What a prompt needs from the document around a target: imports, the enclosing class, nearby signatures.

The model stage renders the prompt text from :class:`PromptPieces`; nothing here knows a prompt format.
Everything is cut from the document with tree-sitter queries (``imports.scm``, ``functions.scm``), so a
document that does not parse somewhere still gives the pieces from its intact parts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import tree_sitter

from .parse import captures
from .splice import StaleTargetError
from .target import EditTarget
from .targets import FunctionSite, SourceText, docstring_node, parse_functions, site_for
from .tests_scan import test_functions

MAX_CONSTANT_CHARS = 120
"""A module-level assignment longer than this (or spanning lines) is left out of ``imports``."""
MAX_TYPE_CHECKING_LINES = 12
MAX_SIGNATURES = 30
MAX_INIT_LINES = 15


@dataclasses.dataclass(frozen=True)
class PromptPieces:
    imports: str
    """The module's imports, ``if TYPE_CHECKING:`` blocks and short top-level constants and type aliases,
    in document order, one statement per line."""
    class_header: str | None
    """For a method: the class line (decorators included), its attribute lines and ``__init__`` with its
    attribute assignments, indented as in the file. None for a plain function."""
    class_methods: tuple[str, ...]
    """For a method: the class's other methods, one signature each (``def area(self) -> float: ...``, with
    its decorators on lines of their own before it), in file order, not indented."""
    header: str
    """Decorators and ``def`` line(s) of the target, up to the colon."""
    docstring: str | None
    """The target's docstring, indented as in the file (kept: a candidate never replaces it)."""
    indent: str
    """Indentation of the body's statements."""
    prefix: str
    """The document text before the body range."""
    suffix: str
    """The document text after the body range."""
    signatures_nearby: tuple[str, ...]
    """Signatures of other functions in the module (module-level functions and methods of other classes),
    one line each, e.g. ``def area(self) -> float: ...  # Circle.area``; nearest to the target first."""


def prompt_pieces(text: str, target: EditTarget) -> PromptPieces:
    """The pieces of ``text`` a prompt for ``target`` is built from.

    Raises :class:`~lsp_verify.syntax.splice.StaleTargetError` when ``text`` is not the text the target
    was computed for.
    """
    source = SourceText(text)
    if hashlib.sha256(source.data).hexdigest() != target.source_sha256:
        raise StaleTargetError(f"{target.path} changed since {target.qualname} was located; locate it again")
    sites, tree = parse_functions(source)
    site = site_for(sites, target)
    class_header, class_methods = (
        _class_members(source, site.class_node, site) if site and site.class_node else (None, ())
    )
    return PromptPieces(
        imports=_imports(source, tree.root_node),
        class_header=class_header,
        class_methods=class_methods,
        header=target.header,
        docstring=target.docstring,
        indent=target.indent,
        prefix=source.slice(0, target.body_start_byte),
        suffix=source.slice(target.body_end_byte, len(source.data)),
        signatures_nearby=_signatures_nearby(source, sites, site),
    )


def _imports(source: SourceText, root: tree_sitter.Node) -> str:
    found = captures("imports", root)
    pieces: list[tree_sitter.Node] = [*found.get("import", []), *found.get("type_checking", [])]
    for node in found.get("assignment", []):
        text = _node_text(source, node)
        if "\n" not in text and len(text) <= MAX_CONSTANT_CHARS:
            pieces.append(node)
    lines: list[str] = []
    for node in sorted(pieces, key=lambda piece: piece.start_byte):
        if node.has_error:
            continue
        text = _node_text(source, node)
        if node.type == "if_statement" and text.count("\n") >= MAX_TYPE_CHECKING_LINES:
            continue
        lines.append(text)
    return "\n".join(lines)


def _class_members(
    source: SourceText, class_node: tree_sitter.Node, target: FunctionSite | None
) -> tuple[str, tuple[str, ...]]:
    """The class line with the members a method's body may use (attributes, ``__init__``'s assignments),
    and the other methods' signatures apart: a class's worth of one-line ``def ...: ...`` stubs right above
    the target taught the 0.5B model that methods here have no body (it closed the code block at once)."""
    outer = (
        class_node.parent if class_node.parent and class_node.parent.type == "decorated_definition" else None
    )
    start = source.from_line_start((outer or class_node).start_byte)
    block = class_node.child_by_field_name("body")
    header_end = block.start_byte if block is not None else class_node.end_byte
    lines = [source.slice(start, header_end).rstrip()]
    methods: list[str] = []
    if block is None:
        return lines[0], ()
    docstring = docstring_node(block)
    for child in block.named_children:
        if child.type == "comment" or child == docstring or child.has_error:
            continue
        definition = (
            child.child_by_field_name("definition") if child.type == "decorated_definition" else child
        )
        indentation = source.leading_whitespace(source.line_of(child.start_byte))
        if definition is not None and definition.type == "function_definition":
            if target is not None and definition == target.node:
                continue
            decorators = [_one_line(source, c) for c in child.children if c.type == "decorator"]
            attributes = _init_attributes(source, definition)
            if attributes:
                lines.extend(indentation + line for line in decorators)
                lines.append(indentation + _signature(source, definition) + attributes)
            else:
                methods.append("\n".join([*decorators, _signature(source, definition) + " ..."]))
        elif definition is not None and definition.type == "class_definition":
            lines.append(indentation + _signature(source, definition) + " ...")
        else:
            text = _node_text(source, child)
            if "\n" not in text and len(text) <= MAX_CONSTANT_CHARS:
                lines.append(indentation + text)
    return "\n".join(lines), tuple(methods)


def _init_attributes(source: SourceText, function: tree_sitter.Node) -> str:
    """For ``__init__``, its ``self.x = ...`` lines (what a method may use); else nothing."""
    name = function.child_by_field_name("name")
    block = function.child_by_field_name("body")
    if name is None or name.text != b"__init__" or block is None:
        return ""
    assignments = [
        _node_text(source, statement)
        for statement in block.named_children
        if statement.type == "expression_statement"
        and statement.named_child_count == 1
        and statement.named_children[0].type in {"assignment", "augmented_assignment"}
        and _node_text(source, statement).startswith("self.")
        and "\n" not in _node_text(source, statement)
    ][:MAX_INIT_LINES]
    if not assignments:
        return ""
    indentation = source.leading_whitespace(source.line_of(block.start_byte))
    return "".join(f"\n{indentation}{assignment}" for assignment in assignments)


def _signatures_nearby(
    source: SourceText, sites: list[FunctionSite], target: FunctionSite | None
) -> tuple[str, ...]:
    candidates = [
        site
        for site in sites
        if site is not target
        and not site.broken
        and (target is None or site.class_node is None or site.class_node != target.class_node)
        and _at_module_or_class_level(site)
    ]
    if target is not None:
        line = target.first_line
        candidates.sort(key=lambda site: abs(site.first_line - line))
    signatures: list[str] = []
    for site in candidates[:MAX_SIGNATURES]:
        signature = _signature(source, site.node) + " ..."
        if site.class_name is not None:
            signature += f"  # {site.qualname}"
        signatures.append(signature)
    return tuple(signatures)


def _at_module_or_class_level(site: FunctionSite) -> bool:
    """Functions nested in functions cannot be called from elsewhere: they are left out."""
    parent = site.outer.parent
    while parent is not None:
        if parent.type == "function_definition":
            return False
        parent = parent.parent
    return True


def _signature(source: SourceText, function: tree_sitter.Node) -> str:
    return _one_line(source, function, upto=function.child_by_field_name("body"))


def _one_line(source: SourceText, node: tree_sitter.Node, upto: tree_sitter.Node | None = None) -> str:
    """The node's source up to ``upto`` on one line: comments dropped, blanks collapsed."""
    end = upto.start_byte if upto is not None else node.end_byte
    parts: list[str] = []
    position = node.start_byte
    for comment in _comments(node, end):
        parts.append(source.slice(position, comment.start_byte))
        position = comment.end_byte
    parts.append(source.slice(position, end))
    text = re.sub(r"\s+", " ", "".join(parts)).strip()
    text = re.sub(r"([(\[]) ", r"\1", text)
    text = re.sub(r",? ([)\]])", r"\1", text)
    return text


def _comments(node: tree_sitter.Node, end: int) -> list[tree_sitter.Node]:
    found: list[tree_sitter.Node] = []
    pending = [node]
    while pending:
        current = pending.pop()
        if current.start_byte >= end:
            continue
        if current.type == "comment":
            found.append(current)
        pending.extend(current.children)
    return sorted(found, key=lambda comment: comment.start_byte)


def _node_text(source: SourceText, node: tree_sitter.Node) -> str:
    return source.slice(node.start_byte, node.end_byte)


MAX_TESTS_CHARS = 1500
"""The 0.5B default model has a small useful context: a few tests tell it more than many."""


def nearby_tests_source(root: Path, node_ids: Sequence[str], max_chars: int = MAX_TESTS_CHARS) -> str:
    """Source of the test functions named by pytest ``node_ids`` (``path::[Class::]name``), for the prompt.

    Tests come in the order of ``node_ids``, so the caller puts first what tells the model most (the tests
    that name the function, before the module's guard tests). Parametrised ids and doctest ids are reduced to
    their function; unreadable files are skipped. A test that would take the total past ``max_chars`` is left
    out, so one long test cannot crowd the function itself (or a shorter test after it) out of the prompt.
    """
    order: dict[tuple[str, str], None] = {}  # (file, Class::name), first mention first
    for node_id in node_ids:
        path, _, rest = node_id.partition("::")
        if rest and path.endswith(".py"):
            order.setdefault((path, rest.split("[", 1)[0]), None)
    functions: dict[str, dict[str, str]] = {}  # file -> Class::name -> source
    chunks: list[str] = []
    used = 0
    for relative, suffix in order:
        if relative not in functions:
            try:
                source = (root / relative).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                source = ""
            lines = source.splitlines()
            functions[relative] = {
                f.nodeid_suffix: "\n".join(lines[f.line : f.end_line + 1]) for f in test_functions(source)
            }
        chunk = functions[relative].get(suffix)
        if chunk is None or used + len(chunk) > max_chars:
            continue
        chunks.append(chunk)
        used += len(chunk)
    return "\n\n".join(chunks)
