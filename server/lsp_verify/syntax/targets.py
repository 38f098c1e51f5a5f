"""Finding edit targets: which functions of a document can be (re)written, and where their bodies are.

tree-sitter finds the functions (``grammars/python/functions.scm``) and the statements that mark a stub
(``stubs.scm``). It is error tolerant, so a file that does not parse somewhere still yields the intact
functions elsewhere; a function whose own source holds a syntax error is never a target, because nothing
spliced into it could parse.

Positions follow :class:`~lsp_verify.syntax.target.EditTarget`: lines are 0-based, columns count Python
``str`` characters and byte offsets count UTF-8 bytes. The LSP layer converts columns to UTF-16 with
:func:`lsp_verify.syntax.splice.lsp_position`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import tree_sitter

from .parse import captures, parse
from .target import EditTarget, TargetError, TargetKind

_STRING_TYPES = frozenset({"string", "concatenated_string"})
_TOP_LEVEL_DEFINITION = re.compile(rb"^(?:async[ \t]+def|def|class|@)\b", re.MULTILINE)


class SourceText:
    """A document as text and as UTF-8 bytes, with conversions between byte offsets and positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode("utf-8")
        starts = [0]
        index = self.data.find(b"\n")
        while index != -1:
            starts.append(index + 1)
            index = self.data.find(b"\n", index + 1)
        self.line_starts = starts

    def line_of(self, byte: int) -> int:
        low, high = 0, len(self.line_starts) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if self.line_starts[middle] <= byte:
                low = middle
            else:
                high = middle - 1
        return low

    def position(self, byte: int) -> tuple[int, int]:
        """(line, character column) of a byte offset."""
        line = self.line_of(byte)
        return line, len(self.data[self.line_starts[line] : byte].decode("utf-8", errors="replace"))

    def line_end(self, line: int) -> int:
        """Byte offset of the end of ``line``, before its newline (and a ``\\r`` before that)."""
        end = self.line_starts[line + 1] - 1 if line + 1 < len(self.line_starts) else len(self.data)
        if end > self.line_starts[line] and self.data[end - 1 : end] == b"\r":
            end -= 1
        return end

    def line_prefix(self, byte: int) -> bytes:
        """The bytes of the line holding ``byte``, from the line's start up to ``byte``."""
        return self.data[self.line_starts[self.line_of(byte)] : byte]

    def slice(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8", errors="replace")

    def leading_whitespace(self, line: int) -> str:
        raw = self.data[self.line_starts[line] : self.line_end(line)]
        return raw[: len(raw) - len(raw.lstrip(b" \t"))].decode("utf-8")

    def from_line_start(self, byte: int) -> int:
        """``byte``, or the start of its line when only indentation precedes it there."""
        return self.line_starts[self.line_of(byte)] if not self.line_prefix(byte).strip() else byte


@dataclasses.dataclass(frozen=True)
class FunctionSite:
    """One function definition in a parsed document, with the pieces an :class:`EditTarget` is made of."""

    node: tree_sitter.Node
    """The ``function_definition``."""
    outer: tree_sitter.Node
    """The ``decorated_definition`` around it, or the function itself."""
    name: str
    qualname: str
    class_name: str | None
    class_node: tree_sitter.Node | None
    """The class the function is a method of."""
    is_async: bool
    is_stub: bool
    broken: bool
    """Its source (decorators included) holds a syntax error: it cannot be a target."""
    header_end: int
    docstring: tuple[int, int] | None
    body_start: int
    body_end: int
    indent: str
    first_line: int
    last_line: int


def parse_functions(source: SourceText) -> tuple[list[FunctionSite], tree_sitter.Tree]:
    """Every function definition of the document, in document order.

    tree-sitter's error recovery can swallow the definitions after a syntax error into one ERROR node.
    When the document does not parse, each top-level definition that overlaps an error is parsed again on
    its own, so the intact functions after the error are still found.
    """
    tree = parse(source.data)
    sites = _sites(source, tree.root_node)
    if tree.root_node.has_error:
        for start, end in _top_level_chunks(source):
            if not _overlaps_error(tree.root_node, start, end):
                continue
            # Blank out everything else, keeping line breaks: positions stay those of the whole document.
            masked = bytes(byte if byte == 0x0A else 0x20 for byte in source.data[:start])
            masked += source.data[start:end]
            masked += bytes(byte if byte == 0x0A else 0x20 for byte in source.data[end:])
            again = _sites(source, parse(masked).root_node)
            replaced = {site.outer.start_byte for site in again}
            sites = [site for site in sites if site.outer.start_byte not in replaced or not site.broken]
            known = {site.outer.start_byte for site in sites}
            sites.extend(site for site in again if site.outer.start_byte not in known)
        sites.sort(key=lambda site: (site.outer.start_byte, site.node.start_byte))
    return sites, tree


def _sites(source: SourceText, root: tree_sitter.Node) -> list[FunctionSite]:
    stub_nodes = {_key(node) for node in captures("stubs", root).get("stub", [])}
    return [_site(source, node, stub_nodes) for node in captures("functions", root).get("function", [])]


def _top_level_chunks(source: SourceText) -> list[tuple[int, int]]:
    """Byte ranges of the document's top-level definitions (decorators included), each up to the next."""
    starts = [match.start() for match in _TOP_LEVEL_DEFINITION.finditer(source.data)]
    chunks: list[tuple[int, int]] = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(source.data)
        previous = starts[index - 1] if index else None
        if (
            previous is not None
            and source.data[previous : previous + 1] == b"@"
            and source.line_of(start) == source.line_of(previous) + 1
        ):
            chunks[-1] = (chunks[-1][0], end)  # the definition a decorator line decorates
        else:
            chunks.append((start, end))
    return chunks


def _overlaps_error(root: tree_sitter.Node, start: int, end: int) -> bool:
    pending = [root]
    while pending:
        node = pending.pop()
        if node.end_byte <= start or node.start_byte >= end:
            continue
        if node.type == "ERROR" or node.is_missing:
            return True
        pending.extend(child for child in node.children if child.has_error or child.is_missing)
    return False


def find_stub_targets(text: str, path: Path, version: int | None = None) -> list[EditTarget]:
    """Every function whose body is still a stub (``...``, ``pass``, ``raise NotImplementedError``, only
    comments, or only a docstring), in document order.

    An empty list means there is no stub. :class:`TargetError` is raised only when the document does not
    parse and no stub can be found in its intact parts: the message names the first line that does not parse.
    """
    source = SourceText(text)
    sites, tree = parse_functions(source)
    targets = [_target(source, site, path, TargetKind.AT_LINE, version) for site in sites if _usable(site)]
    found = [target for target in targets if target.kind is TargetKind.STUB]
    if not found and tree.root_node.has_error:
        raise TargetError(f"no stub found in {path}: {_does_not_parse(source, tree.root_node)}")
    return found


def function_targets(text: str, path: Path, version: int | None = None) -> list[EditTarget]:
    """Every function that can be targeted (stubs with kind STUB, others AT_LINE), in document order."""
    source = SourceText(text)
    sites, tree = parse_functions(source)
    targets = [_target(source, site, path, TargetKind.AT_LINE, version) for site in sites if _usable(site)]
    if not targets and tree.root_node.has_error:
        raise TargetError(f"no function found in {path}: {_does_not_parse(source, tree.root_node)}")
    return targets


def target_at(
    text: str, path: Path, line: int, version: int | None = None, kind: TargetKind = TargetKind.AT_LINE
) -> EditTarget:
    """The innermost function containing 0-based ``line``.

    A stub gets kind STUB when ``kind`` is AT_LINE; another requested kind (a failing test, a type error)
    is kept. Raises :class:`TargetError` when no intact function contains the line.
    """
    source = SourceText(text)
    sites, tree = parse_functions(source)
    containing = [site for site in sites if site.first_line <= line <= site.last_line]
    usable = [site for site in containing if _usable(site)]
    if usable:
        innermost = max(usable, key=lambda site: site.outer.start_byte)
        return _target(source, innermost, path, kind, version)
    message = f"no function at line {line + 1} of {path}"
    broken = [site for site in containing if site.broken]
    if broken:
        node = max(broken, key=lambda site: site.outer.start_byte).outer
        raise TargetError(f"{message}: {_does_not_parse(source, node)}")
    error = error_near(tree.root_node, source, line)
    if error is not None:
        raise TargetError(f"{message}: {_does_not_parse(source, error)}")
    raise TargetError(message)


def functions_touching_lines(
    text: str, path: Path, lines: set[int], version: int | None = None
) -> list[EditTarget]:
    """For each 0-based line, the innermost function containing it; each function once, in document order.

    Lines outside every function are ignored. :class:`TargetError` is raised only when the document does
    not parse and none of the lines lies in an intact function.
    """
    source = SourceText(text)
    sites, tree = parse_functions(source)
    usable = [site for site in sites if _usable(site)]
    chosen: dict[int, FunctionSite] = {}
    for line in lines:
        containing = [site for site in usable if site.first_line <= line <= site.last_line]
        if containing:
            innermost = max(containing, key=lambda site: site.outer.start_byte)
            chosen[innermost.outer.start_byte] = innermost
    if not chosen and lines and tree.root_node.has_error:
        raise TargetError(f"no function found in {path}: {_does_not_parse(source, tree.root_node)}")
    return [_target(source, chosen[start], path, TargetKind.AT_LINE, version) for start in sorted(chosen)]


def first_error(node: tree_sitter.Node) -> tree_sitter.Node | None:
    """The first ERROR or MISSING node under ``node`` (``node`` included), in document order."""
    if node.type == "ERROR" or node.is_missing:
        return node
    if not node.has_error:
        return None
    for child in node.children:
        found = first_error(child)
        if found is not None:
            return found
    return None


def error_near(
    root: tree_sitter.Node, source: SourceText, line: int, distance: int = 3
) -> tree_sitter.Node | None:
    """The ERROR or MISSING node spanning ``line`` or closest to it (within ``distance`` lines), if any."""
    best: tuple[int, tree_sitter.Node] | None = None
    pending = [root] if root.has_error else []
    while pending:
        node = pending.pop()
        if node.type == "ERROR" or node.is_missing:
            first, last = source.line_of(node.start_byte), source.line_of(node.end_byte)
            gap = 0 if first <= line <= last else min(abs(line - first), abs(line - last))
            if gap <= distance and (best is None or gap < best[0]):
                best = gap, node
        pending.extend(child for child in node.children if child.has_error or child.is_missing)
    return best[1] if best is not None else None


def _does_not_parse(source: SourceText, node: tree_sitter.Node) -> str:
    error = first_error(node)
    if error is None:
        return "the file does not parse"
    line = source.line_of(error.start_byte) + 1
    if error.is_missing:
        return f"the file does not parse near line {line} (missing {error.type!r})"
    return f"the file does not parse near line {line}"


def _usable(site: FunctionSite) -> bool:
    return not site.broken


def _key(node: tree_sitter.Node) -> tuple[int, int, str]:
    return node.start_byte, node.end_byte, node.type


def _text(node: tree_sitter.Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", errors="replace")


def _ancestors(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    parent = node.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def docstring_node(block: tree_sitter.Node | None) -> tree_sitter.Node | None:
    """The docstring statement opening ``block`` (a function's or class's body), if any."""
    if block is None:
        return None
    first = next((child for child in block.named_children if child.type != "comment"), None)
    if first is None or first.type != "expression_statement" or first.named_child_count != 1:
        return None
    value = first.named_children[0]
    if value.type not in _STRING_TYPES or _text(value).lstrip("rRuUbB")[:1] not in {'"', "'"}:
        return None  # f-strings and bytes are not docstrings
    return first


def _site(source: SourceText, node: tree_sitter.Node, stub_nodes: set[tuple[int, int, str]]) -> FunctionSite:
    parent = node.parent
    outer = parent if parent is not None and parent.type == "decorated_definition" else node
    name = _text(node.child_by_field_name("name"))
    block = node.child_by_field_name("body")
    colon = next(child for child in reversed(node.children) if child.type == ":") if block else node

    names = [name]
    class_node: tree_sitter.Node | None = None
    for position, ancestor in enumerate(_ancestors(outer)):
        if ancestor.type in {"class_definition", "function_definition"}:
            names.append(_text(ancestor.child_by_field_name("name")))
        # A method sits in the class's block (itself maybe in a decorated_definition): two steps up.
        if position == 1 and ancestor.type == "class_definition":
            class_node = ancestor
    broken = outer.has_error or any(ancestor.type == "ERROR" for ancestor in _ancestors(outer))

    header_end = colon.end_byte
    header_line = source.line_of(header_end)
    docstring = docstring_node(block)
    items: list[tree_sitter.Node] = [
        child
        for child in node.children
        if child.type == "comment"
        and child.start_byte >= header_end
        and source.line_of(child.start_byte) > header_line
    ]
    if block is not None:
        after_docstring = block.named_children
        if docstring is not None:
            docstring_line = source.line_of(docstring.end_byte)
            after_docstring = [
                child
                for child in after_docstring
                if child.start_byte >= docstring.end_byte
                and not (child.type == "comment" and source.line_of(child.start_byte) == docstring_line)
            ]
        items.extend(after_docstring)
        if not block.named_children:
            items.extend(_trailing_comments(source, outer))
    statements = [item for item in items if item.type != "comment"]
    is_stub = all(_key(statement) in stub_nodes for statement in statements)

    def_indent = source.leading_whitespace(source.line_of(node.start_byte))
    default_indent = def_indent + ("\t" if "\t" in def_indent else "    ")
    if items:
        body_start = items[0].start_byte
        body_end = (statements or items)[-1].end_byte
        anchor = body_start
    else:
        # Nothing to replace: the body range is empty at the end of the docstring's (or header's) line.
        anchor = docstring.start_byte if docstring is not None else header_end
        body_start = body_end = source.line_end(
            source.line_of(docstring.end_byte if docstring else header_end)
        )
    prefix = source.line_prefix(anchor)
    indent = prefix.decode("utf-8") if anchor != header_end and not prefix.strip() else default_indent

    return FunctionSite(
        node=node,
        outer=outer,
        name=name,
        qualname=".".join(reversed(names)),
        class_name=_text(class_node.child_by_field_name("name")) if class_node else None,
        class_node=class_node,
        is_async=any(child.type == "async" for child in node.children),
        is_stub=is_stub,
        broken=broken,
        header_end=header_end,
        docstring=(docstring.start_byte, docstring.end_byte) if docstring is not None else None,
        body_start=body_start,
        body_end=body_end,
        indent=indent,
        first_line=source.line_of(outer.start_byte),
        last_line=max(source.line_of(outer.end_byte), source.line_of(body_end)),
    )


def _trailing_comments(source: SourceText, outer: tree_sitter.Node) -> list[tree_sitter.Node]:
    """Comments after a function with an empty block, indented deeper than the ``def``: tree-sitter leaves
    a comment-only body (``# TODO``) outside the function, as siblings that follow it."""
    def_column = len(source.line_prefix(outer.start_byte))
    found: list[tree_sitter.Node] = []
    sibling = outer.next_sibling
    while sibling is not None and sibling.type == "comment":
        if (
            len(source.line_prefix(sibling.start_byte)) <= def_column
            or source.line_prefix(sibling.start_byte).strip()
        ):
            break
        found.append(sibling)
        sibling = sibling.next_sibling
    return found


def _target(
    source: SourceText, site: FunctionSite, path: Path, kind: TargetKind, version: int | None
) -> EditTarget:
    if kind is TargetKind.AT_LINE and site.is_stub:
        kind = TargetKind.STUB
    body_start_line, body_start_col = source.position(site.body_start)
    body_end_line, body_end_col = source.position(site.body_end)
    docstring = None
    if site.docstring is not None:
        docstring = source.slice(source.from_line_start(site.docstring[0]), site.docstring[1])
    return EditTarget(
        path=path,
        name=site.name,
        qualname=site.qualname,
        class_name=site.class_name,
        kind=kind,
        is_async=site.is_async,
        def_start_line=site.first_line,
        def_end_line=site.last_line,
        body_start_byte=site.body_start,
        body_end_byte=site.body_end,
        body_start_line=body_start_line,
        body_start_col=body_start_col,
        body_end_line=body_end_line,
        body_end_col=body_end_col,
        indent=site.indent,
        header=source.slice(source.from_line_start(site.outer.start_byte), site.header_end),
        docstring=docstring,
        current_body=source.slice(site.body_start, site.body_end),
        source_sha256=hashlib.sha256(source.data).hexdigest(),
        version=version,
    )


def site_for(sites: Iterable[FunctionSite], target: EditTarget) -> FunctionSite | None:
    """The parsed function a target was computed for (same name, same body range)."""
    for site in sites:
        if site.name == target.name and site.body_start == target.body_start_byte:
            return site
    return None
