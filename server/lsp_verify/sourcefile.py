"""The user's Python files on disk: read them as Python does, and write an edit back without harming them.

Reading decodes the bytes the way the interpreter would (PEP 263: a UTF-8 BOM or a ``coding:`` declaration
in the first two lines, else UTF-8); writing encodes the edited text with the same codec, its BOM included,
so every byte outside the edited function is the byte that was read. Line endings need nothing here: the
text keeps them, and the splice writes a body with the document's own (``syntax.splice``).

Writing happens *in place*: the existing inode is opened, truncated and rewritten, so its owner, group,
mode, ACLs and other hard links stay as they were (a temporary file renamed over the original would lose
them, and as root on a bind mount would leave the user unable to read their own file). Before the first
byte is written, the old content is saved to a private backup file and fsync'd; a write that fails midway
puts the old content back and removes the backup, or names the backup when even that fails.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import io
import os
import tempfile
import tokenize
from pathlib import Path


class SourceError(Exception):
    """A file that cannot be read or decoded as Python source (one line, for the user)."""


class FileChanged(Exception):
    """The file no longer holds the bytes the edit was computed from."""


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One Python file as read: its text for the pipeline and what it takes to write it back the same way."""

    path: Path
    text: str
    """The decoded text, without a BOM."""
    sha256: str
    """Of the bytes on disk when read: a write goes ahead only while the file still has them."""
    encoding: str = "utf-8"
    """Python's codec name for the file (``utf-8-sig`` for a UTF-8 file with a BOM)."""

    def encode(self, text: str) -> bytes:
        """``text`` (as the pipeline edited it) as the file's bytes: the same codec and BOM."""
        try:
            return text.encode(self.encoding)
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start : exc.end]
            raise SourceError(
                f"{self.path}: the edit has {bad!r}, which the file's encoding ({self.encoding}) cannot hold"
            ) from None


def decode_source(data: bytes, path: Path) -> tuple[str, str]:
    """(text, codec) of Python source bytes, decoded as the interpreter would."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:  # an unknown codec, or a BOM that contradicts the declaration
        raise SourceError(f"{path}: {exc.msg}") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not {_codec_name(encoding)} text (byte {exc.start})") from None
    return text, encoding


def declared_encoding(text: str) -> str:
    """The codec that ``text``'s own PEP 263 declaration names (UTF-8 when it declares none): the bytes a
    copy of the file must have for Python to read ``text`` back from it."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(text.encode("utf-8", "surrogatepass")).readline)
    except SyntaxError:
        return "utf-8"
    return encoding


def read_source(path: Path) -> SourceFile:
    """The file at ``path`` as :class:`SourceFile`; SourceError when it cannot be read or decoded."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    text, encoding = decode_source(data, path)
    return SourceFile(path, text, hashlib.sha256(data).hexdigest(), encoding)


def write_if_unchanged(source: SourceFile, text: str) -> None:
    """Write ``text`` over ``source.path`` in place, only while the file still has the bytes that were read.

    Raises FileChanged (the file was edited or replaced meanwhile), SourceError (the text cannot be encoded
    in the file's encoding) or OSError (the write failed; the old content is back in the file).
    """
    path = source.path
    data = source.encode(text)
    changed = FileChanged(f"{path} changed since it was read; not written (run lsp-verify fix again)")
    # O_NOFOLLOW is not wanted: a symlinked source file is written through, like an editor does.
    # Unbuffered: after a failed write no half-written buffer is left to be flushed over the restore.
    with open(path, "r+b", buffering=0) as handle:
        current = handle.readall()
        if hashlib.sha256(current).hexdigest() != source.sha256:
            raise changed
        # The handle and the path must still be the same file: an editor that saved by renaming a new
        # file over this one wins, and the orphaned inode we hold must not be reported as written.
        if not os.path.samestat(os.fstat(handle.fileno()), os.stat(path)):
            raise changed
        backup = _backup(current, path)
        try:
            _overwrite(handle.fileno(), data)
        except BaseException as exc:
            try:
                _overwrite(handle.fileno(), current)
            except OSError:
                raise OSError(
                    f"the write failed ({exc}) and so did putting the old content back; "
                    f"it is saved in {backup}"
                ) from exc
            backup.unlink(missing_ok=True)
            raise
    backup.unlink(missing_ok=True)


def _overwrite(fd: int, data: bytes) -> None:
    os.lseek(fd, 0, os.SEEK_SET)
    view = memoryview(data)
    while view:  # os.write may write less than asked
        view = view[os.write(fd, view) :]
    os.ftruncate(fd, len(data))
    os.fsync(fd)


def _backup(data: bytes, path: Path) -> Path:
    """A durable copy of ``data`` in a private (0600) temporary file, until the in-place write is done."""
    fd, name = tempfile.mkstemp(prefix="lsp-verify-backup-", suffix=f"-{path.name}")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return Path(name)


def _codec_name(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return "UTF-8" if name in ("utf-8", "utf-8-sig") else name
