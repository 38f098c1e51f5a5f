"""Turning a verified candidate into the edit the client applies.

The edit is computed from the candidate's ``new_text`` (the whole document exactly as it was verified), not
re-derived from its body: what the user gets is byte for byte what passed mypy and the tests. It is the
smallest whole-line replacement between the two texts, checked to lie inside the target function, and sent
as a ``TextDocumentEdit`` carrying the document version it was computed for, so a client also refuses it
once the buffer has moved on.
"""

from __future__ import annotations

import dataclasses
import re

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from ..syntax.target import EditTarget

# LSP ends lines at \n, \r\n and \r, and nowhere else (str.splitlines also splits at \f, \x1c, \u2028...).
_LINE_END = re.compile(r"\r\n|\r|\n")


class EditOutsideTarget(Exception):
    """The candidate changes text outside the function it was written for (never applied)."""


@dataclasses.dataclass(frozen=True)
class LineEdit:
    """Replace lines ``start_line`` up to (excluding) ``end_line`` of the old text with ``new_text``."""

    start_line: int
    end_line: int
    new_text: str


def split_lines(text: str) -> list[str]:
    """The document's lines as LSP counts them, each with its line ending."""
    lines: list[str] = []
    start = 0
    for match in _LINE_END.finditer(text):
        lines.append(text[start : match.end()])
        start = match.end()
    lines.append(text[start:])
    return lines


def line_edit(old: str, new: str) -> LineEdit | None:
    """The smallest run of whole lines whose replacement turns ``old`` into ``new`` (None: no change)."""
    if old == new:
        return None
    old_lines, new_lines = split_lines(old), split_lines(new)
    prefix = 0
    limit = min(len(old_lines), len(new_lines))
    while prefix < limit and old_lines[prefix] == new_lines[prefix]:
        prefix += 1
    suffix = 0
    while (
        suffix < limit - prefix
        and old_lines[len(old_lines) - 1 - suffix] == new_lines[len(new_lines) - 1 - suffix]
    ):
        suffix += 1
    return LineEdit(prefix, len(old_lines) - suffix, "".join(new_lines[prefix : len(new_lines) - suffix]))


def text_edit(old: str, new: str, target: EditTarget, codec: PositionCodec) -> types.TextEdit | None:
    """The minimal edit for ``old`` -> ``new`` in the client's position encoding.

    Raises :class:`EditOutsideTarget` when the change reaches outside the target function's lines.
    """
    edit = line_edit(old, new)
    if edit is None:
        return None
    old_lines = split_lines(old)
    if edit.start_line < target.def_start_line or edit.end_line > target.def_end_line + 1:
        raise EditOutsideTarget(
            f"the candidate for {target.qualname} changes lines {edit.start_line + 1}-{edit.end_line} "
            f"outside the function (lines {target.def_start_line + 1}-{target.def_end_line + 1}); not applied"
        )
    return types.TextEdit(
        range=types.Range(
            start=types.Position(line=edit.start_line, character=0),
            end=_end_position(old_lines, edit.end_line, codec),
        ),
        new_text=edit.new_text,
    )


def _end_position(lines: list[str], end_line: int, codec: PositionCodec) -> types.Position:
    """Start of line ``end_line``; past the last line that is the end of the document."""
    if end_line < len(lines):
        return types.Position(line=end_line, character=0)
    last = lines[-1]
    return types.Position(line=len(lines) - 1, character=codec.client_num_units(last))


def workspace_edit(
    uri: str, version: int | None, edit: types.TextEdit, *, document_changes: bool
) -> types.WorkspaceEdit:
    """A versioned ``TextDocumentEdit`` when the client takes ``documentChanges``, else plain ``changes``."""
    if document_changes:
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
                    edits=[edit],
                )
            ]
        )
    return types.WorkspaceEdit(changes={uri: [edit]})
