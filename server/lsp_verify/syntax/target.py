"""What to (re)write: the :class:`EditTarget` data type shared by every stage."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path


class TargetKind(enum.Enum):
    STUB = "stub"
    """The body is ``...``, ``pass``, ``raise NotImplementedError`` or only a TODO comment."""
    AT_LINE = "at_line"
    """The function the user pointed at (any body)."""
    FAILING_TEST = "failing_test"
    """A nearby test of this function fails on the current code."""
    TYPE_ERROR = "type_error"
    """mypy reports an error inside this function."""


class TargetError(Exception):
    """No function can be targeted where the user asked (message says why)."""


@dataclasses.dataclass(frozen=True)
class EditTarget:
    """A function whose body is to be (re)written, located in one exact version of a document.

    Positions are 0-based. The *body range* is what a candidate replaces: it starts after the docstring
    (when there is one, the docstring stays) and ends at the end of the function's last statement.
    ``body_start_line``/``body_start_col`` point at the first character replaced; a candidate body is
    spliced in as whole lines indented by ``indent``.
    """

    path: Path
    """Absolute path of the file (the file on disk may differ from ``source`` in an editor)."""
    name: str
    """The function's own name."""
    qualname: str
    """Dotted name within the module, e.g. ``Stack.push`` or ``outer.inner``."""
    class_name: str | None
    kind: TargetKind
    is_async: bool
    def_start_line: int
    """First line of the definition, decorators included."""
    def_end_line: int
    body_start_byte: int
    body_end_byte: int
    body_start_line: int
    body_start_col: int
    body_end_line: int
    body_end_col: int
    indent: str
    """Indentation of the body's statements."""
    header: str
    """Source of the decorators and ``def`` line(s) up to and including the colon."""
    docstring: str | None
    """The docstring's source text including quotes, indented as in the file, or None."""
    current_body: str
    """Source text currently in the body range."""
    source_sha256: str
    """sha256 of the UTF-8 text the target was computed from: edits are refused when it no longer matches."""
    version: int | None = None
    """LSP document version the target was computed for (None outside an editor)."""

    @property
    def module_name(self) -> str:
        return self.path.stem
