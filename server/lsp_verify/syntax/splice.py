"""Turning model output into a body, splicing it into the document, and keys for de-duplication.

A *body* here is what replaces an :class:`EditTarget`'s body range: whole lines, every statement line
indented by ``target.indent``, no trailing newline. :func:`extract_body` makes one from model output,
:func:`splice_body` puts it into the document text, :func:`body_edit` gives the same change as a minimal
LSP text edit (UTF-16 columns), :func:`normalise` gives equal keys to candidates that differ only in
formatting, comments and docstrings, and :func:`parse_error` says whether a document parses.
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import sys
import textwrap
import tokenize
from collections.abc import Iterator

import tree_sitter

from . import pyast
from .parse import captures, parse
from .target import EditTarget, TargetError
from .targets import FunctionSite, SourceText, parse_functions

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE)
_PYTHON_FENCES = frozenset({"", "python", "py", "python3", "py3", "pycon"})
_CODE_START = re.compile(r"^[ \t]*(?:async[ \t]+def|def|class|@|import|from)\b", re.MULTILINE)


class StaleTargetError(TargetError):
    """The document text is not the one the target was computed for."""


def lsp_position(text: str, line: int, col: int) -> tuple[int, int]:
    """(line, UTF-16 column) for a 0-based line and a Python character column, as LSP positions count."""
    lines = text.split("\n")
    line_text = lines[line] if 0 <= line < len(lines) else ""
    return line, len(line_text[:col].encode("utf-16-le")) // 2


def parse_error(text: str) -> str | None:
    """None when the whole document compiles for the running interpreter; else ``"line L: message"``
    (1-based line). Compiling, not only parsing, also catches ``return`` outside a function and the like."""
    try:
        tree = pyast.parse_module(text, feature_version=sys.version_info[:2])
        compile(tree, "<document>", "exec", dont_inherit=True)
    except SyntaxError as error:
        return f"line {error.lineno or '?'}: {error.msg}"
    except ValueError as error:  # source holding NUL bytes
        return f"line ?: {error}"
    return None


def normalise(code: str) -> str:
    """A key equal for code that differs only in formatting, comments and docstrings.

    ``code`` may be a whole document or a body (indented or not). Code that does not parse falls back to
    its tokens without comments and whitespace, or to its text without comments and whitespace.
    """
    tree = _parse_loosely(code)
    if tree is not None:
        for node in ast.walk(tree):
            if (
                isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node.body
                and _is_docstring(node.body[0])
            ):
                node.body = node.body[1:] or [ast.Pass()]
        return ast.dump(tree, annotate_fields=True, include_attributes=False)
    try:
        tokens = tokenize.generate_tokens(io.StringIO(code).readline)
        kept = [
            token.string
            for token in tokens
            if token.type not in {tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT}
        ]
        return " ".join(kept).strip()
    except (tokenize.TokenError, SyntaxError):
        return re.sub(r"\s+", "", re.sub(r"#[^\n]*", "", code))


def extract_body(generated: str, target: EditTarget) -> str | None:
    """A replacement body for ``target`` from model output, or None when nothing usable is there.

    Accepted: a full definition of the target (alone, inside a class, after imports or helpers, in a
    fenced block with prose around it), or bare body lines (a fill-in-the-middle continuation, or a chat
    answer after a pre-filled header). A docstring in the output is dropped: the original one stays. A
    body that is itself a stub (``pass``, ``...``, ``raise NotImplementedError``) is not usable.
    """
    text = generated.replace("\r\n", "\n")
    if not text.strip():
        return None
    snippets = list(_snippets(text))
    for snippet in snippets:
        body = _body_from_definition(snippet, target)
        if body is not None:
            return body
    for snippet in snippets:
        body = _body_from_lines(snippet, target)
        if body is not None:
            return body
    return None


def splice_body(text: str, target: EditTarget, body: str) -> str:
    """The whole document with the target's body range replaced by ``body``.

    Raises :class:`StaleTargetError` when ``text`` is not the text the target was computed for.
    """
    source, start, end, new_text = _replacement(text, target, body)
    return source.slice(0, start) + new_text + source.slice(end, len(source.data))


def body_edit(text: str, target: EditTarget, body: str) -> tuple[int, int, int, int, str]:
    """``(start_line, start_utf16_col, end_line, end_utf16_col, new_text)``: the same change as
    :func:`splice_body`, as one LSP ``TextEdit`` covering the body range."""
    source, start, end, new_text = _replacement(text, target, body)
    start_line, start_col = source.position(start)
    end_line, end_col = source.position(end)
    lines = text.split("\n")
    return (
        start_line,
        _utf16_length(lines[start_line][:start_col]),
        end_line,
        _utf16_length(lines[end_line][:end_col]),
        new_text,
    )


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _replacement(text: str, target: EditTarget, body: str) -> tuple[SourceText, int, int, str]:
    """The byte range to replace and its new text."""
    source = SourceText(text)
    if hashlib.sha256(source.data).hexdigest() != target.source_sha256:
        raise StaleTargetError(f"{target.path} changed since {target.qualname} was located; locate it again")
    if not body.strip():
        raise ValueError("an empty body cannot be spliced")
    if b"\r\n" in source.data:
        body = body.replace("\r\n", "\n").replace("\n", "\r\n")  # keep the document's line endings
    start, end = target.body_start_byte, target.body_end_byte
    prefix = source.line_prefix(start)
    if prefix.strip():
        # The body range starts on the header's or the docstring's line: the new body goes on lines of its
        # own, and the blanks left between the colon (or docstring) and the old body go with it.
        newline = "\r\n" if b"\r\n" in source.data else "\n"
        while prefix and prefix[-1:] in {b" ", b"\t"}:
            prefix = prefix[:-1]
            start -= 1
        docstring = _same_line_docstring(prefix.decode("utf-8"))
        if docstring is not None:
            # `def g() -> int: "doc"; return 1`: after `"doc";` no indented line may follow - the docstring
            # goes on a line of its own too, indented as the body is.
            column, literal = docstring
            start -= len(prefix) - len(prefix.decode("utf-8")[:column].rstrip(" \t").encode("utf-8"))
            indentation = body[: len(body) - len(body.lstrip(" \t"))]
            return source, start, end, f"{newline}{indentation}{literal}{newline}{body}"
        return source, start, end, newline + body
    indentation = prefix.decode("utf-8")
    if body.startswith(indentation):
        return source, start, end, body[len(indentation) :]
    return source, start - len(prefix), end, body


def _same_line_docstring(line: str) -> tuple[int, str] | None:
    """For a header line whose suite starts with a docstring statement ended by ``;`` (``def g(): "doc";``):
    the docstring's column and source (``"doc"``); None for any other line."""
    if not line.endswith(";"):
        return None
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(line).readline) if t.string.strip()]
    except (tokenize.TokenError, SyntaxError):
        return None
    if len(tokens) < 3 or tokens[-1].string != ";":
        return None
    first = len(tokens) - 1
    while first > 0 and tokens[first - 1].type == tokenize.STRING:
        first -= 1
    if first == len(tokens) - 1 or tokens[first - 1].string != ":":
        return None
    column = tokens[first].start[1]
    return column, line[column : tokens[-1].start[1]].rstrip(" \t")


def _snippets(text: str) -> Iterator[str]:
    """Places in model output where code may be: fenced blocks (Python ones first), then the whole text
    and the text from the first line that looks like the start of code."""
    fenced = [(match.group(1).lower(), match.group(2)) for match in _FENCE.finditer(text)]
    if fenced:
        python = [code for language, code in fenced if language in _PYTHON_FENCES]
        yield from python or [code for _, code in fenced]
    # Tried after the fenced blocks, for when a fence inside the code split it: a docstring whose examples
    # are a ```pycon block (humanize's naturalsize) ends the chat prompt's pre-filled ```python block early.
    yield text
    start = _CODE_START.search(text)
    if start is not None and text[: start.start()].strip():
        yield text[start.start() :]


def _body_from_definition(code: str, target: EditTarget) -> str | None:
    """The body of the target's definition in ``code``, if ``code`` defines it."""
    source = SourceText(code)
    sites, tree = parse_functions(source)
    named = [site for site in sites if site.name == target.name and not site.broken and not site.is_stub]

    def preference(site: FunctionSite) -> int:
        if site.qualname == target.qualname:
            return 0
        if target.class_name is not None and site.class_name == target.class_name:
            return 1
        return 2 if site.qualname == site.name else 3

    for site in sorted(named, key=preference):
        start = source.from_line_start(site.body_start)
        lines = source.slice(start, site.body_end).split("\n")
        first_line = source.line_of(start)
        verbatim = {
            line - first_line for line in _string_interior_lines(source, tree.root_node) if line > first_line
        }
        # A one-line definition's body starts on the header's line, without indentation to remove.
        base = site.indent if start != site.body_start else ""
        body = _finish(_dedent(lines, base, verbatim), verbatim, target)
        if body is not None:
            return body
    return None


def _body_from_lines(code: str, target: EditTarget) -> str | None:
    """``code`` read as bare body lines, ending where the code dedents below the body's first line."""
    lines = code.split("\n")
    source = SourceText(code)
    verbatim = _string_interior_lines(source, parse(source.data).root_node)
    statement_lines = [i for i, line in enumerate(lines) if line.strip() and i not in verbatim]
    if not statement_lines:
        return None
    first = statement_lines[0]
    own = _indentation(lines[first])
    # The first line may lack its indentation (the prompt ended with it): try the deeper levels seen below.
    levels = [own, *sorted({_indentation(lines[i]) for i in statement_lines[1:]} - {own}, key=len)]
    for level in levels:
        if len(level) < len(own):
            continue
        candidate = [*lines[:first], level + lines[first].lstrip()]
        for i in range(first + 1, len(lines)):
            if i in statement_lines and not lines[i].startswith(level):
                break
            candidate.append(lines[i])
        shifted = _shift(verbatim, first)
        body = _finish(_dedent(candidate[first:], level, shifted), shifted, target)
        if body is not None:
            return body
    return None


def _shift(verbatim: set[int], offset: int) -> set[int]:
    """Line numbers relative to a list that starts ``offset`` lines later."""
    return {line - offset for line in verbatim if line >= offset}


def _string_interior_lines(source: SourceText, root: tree_sitter.Node) -> set[int]:
    """Lines that lie inside a multi-line string (after the line where it opens): their text is data."""
    interior: set[int] = set()
    for node in captures("strings", root).get("string", []):
        first, last = source.line_of(node.start_byte), source.line_of(node.end_byte)
        interior.update(range(first + 1, last + 1))
    return interior


def _indentation(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _dedent(lines: list[str], base: str, verbatim: set[int]) -> list[str]:
    """Remove ``base`` from every statement line; lines inside strings stay as they are."""
    result: list[str] = []
    for index, line in enumerate(lines):
        if index in verbatim:
            result.append(line)
        elif not line.strip():
            result.append("")
        elif line.startswith(base):
            result.append(line[len(base) :])
        else:
            result.append(line.lstrip(" \t"))
    return result


def _finish(lines: list[str], verbatim: set[int], target: EditTarget) -> str | None:
    """Check dedented body lines, drop their docstring, and indent them for the target."""
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    while lines and not lines[0].strip():
        lines, verbatim = lines[1:], _shift(verbatim, 1)
    if not lines:
        return None
    wrapped = _parse_body(lines, verbatim)
    if wrapped is None:
        return None
    statements = wrapped.body
    if _is_docstring(statements[0]):
        docstring = statements[0]
        rest = statements[1:]
        end = docstring.end_lineno or docstring.lineno
        if not rest or rest[0].lineno > end:
            # ast lines count from 1 and the wrapper's def takes line 1: body line i is ast line i + 2.
            drop = end - 1
            lines, verbatim, statements = lines[drop:], _shift(verbatim, drop), rest
            while lines and not lines[0].strip():
                lines, verbatim = lines[1:], _shift(verbatim, 1)
    if not statements or all(_is_stub_statement(statement) for statement in statements):
        return None
    if all(_is_bare_value(statement) for statement in statements):
        return None  # prose that happens to parse ("Sorry", "Done.")
    if isinstance(statements[-1], (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return None  # defines something and then does nothing: not a body but stray top-level code
    body = "\n".join(
        line if index in verbatim or not line else target.indent + line for index, line in enumerate(lines)
    )
    return body if _parse_body(body.split("\n"), verbatim, indent="") is not None else None


def _parse_body(lines: list[str], verbatim: set[int], indent: str = " ") -> ast.FunctionDef | None:
    """The lines parsed as the body of a function, or None when they are not one."""
    code = "\n".join(
        line if index in verbatim or not line else indent + line for index, line in enumerate(lines)
    )
    try:
        module = pyast.parse_module("def _():\n" + code + "\n")
    except (SyntaxError, ValueError):
        return None
    function = module.body[0] if len(module.body) == 1 else None
    return function if isinstance(function, ast.FunctionDef) else None


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _is_stub_statement(statement: ast.stmt) -> bool:
    if isinstance(statement, ast.Pass):
        return True
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        return statement.value.value is Ellipsis
    if isinstance(statement, ast.Raise) and statement.exc is not None:
        raised = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
        return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"
    return False


def _is_bare_value(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(
        statement.value, (ast.Name, ast.Constant, ast.Attribute)
    )


def _parse_loosely(code: str) -> ast.Module | None:
    """``code`` as a module, a dedented block, or a function body."""
    attempts = [code, textwrap.dedent(code), "def _():\n" + textwrap.indent(textwrap.dedent(code), " ")]
    for attempt in attempts:
        try:
            return pyast.parse_module(attempt)
        except (SyntaxError, ValueError):
            continue
    return None
