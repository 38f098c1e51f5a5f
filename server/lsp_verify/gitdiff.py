"""The git questions the headless commands ask: which files and lines are staged, what HEAD holds.

Every call goes through :func:`run_git`, which turns off the repository settings that can make git run a
command of the repository's choosing (fsmonitor, hooks, external diff drivers, textconv, pagers, the
transports a partial clone's lazy fetch would start) and ignores the system-wide configuration. Blobs are
read with ``git cat-file blob``, which never applies filters or textconv, so what is compared is exactly
what is committed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from .sourcefile import SourceError, decode_source

# Settings a repository's own config could use to run a program during a read-only git command.
_SAFE_CONFIG = (
    "core.fsmonitor=",
    "core.hooksPath=/dev/null",
    "diff.external=",
    "core.pager=cat",
    "core.quotePath=false",
    "color.ui=false",
)

_HUNK = re.compile(rb"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


class GitError(Exception):
    """git is missing, the path is not in a repository, or a git command failed (message says which)."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # GIT_INDEX_FILE and GIT_DIR are kept on purpose: inside a pre-commit hook they point at the index
    # being committed. Everything that could start a program or wait for a person is switched off.
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        # No transport at all: a repository whose config says it is a partial clone fetches the objects it
        # lacks from its "promisor" remote on a read (`cat-file`, `ls-tree -l`), and that remote's
        # `uploadpack` - or an `ext::` URL - is a command of the repository's choosing. An allow-list naming
        # no protocol overrides `protocol.<name>.allow` in the repository's config, which `-c` would not.
        GIT_ALLOW_PROTOCOL="none",
        GIT_NO_LAZY_FETCH="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        PAGER="cat",
        GIT_OPTIONAL_LOCKS="0",
        LC_ALL="C",
    )
    for name in ("GIT_EXTERNAL_DIFF", "GIT_DIFF_OPTS", "GIT_EDITOR", "GIT_SSH_COMMAND", "GIT_ASKPASS"):
        env.pop(name, None)
    return env


def run_git(
    args: Sequence[str], cwd: Path, *, check: bool = True, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git <args>`` in ``cwd`` with repository-controlled commands disabled (``stdin``: its input);
    output is bytes."""
    command = ["git"]
    for setting in _SAFE_CONFIG:
        command += ["-c", setting]
    command += ["--no-pager", *args]
    try:
        if stdin is None:
            proc = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, stdin=subprocess.DEVNULL)
        else:
            proc = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, input=stdin)
    except FileNotFoundError as exc:
        raise GitError("git is not installed (needed to find the staged changes)") from exc
    if check and proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {args[0]} failed: {detail[-1] if detail else f'exit {proc.returncode}'}")
    return proc


def _toplevel(path: Path) -> subprocess.CompletedProcess[bytes]:
    """``git rev-parse --show-toplevel`` where ``path`` is (its directory, for a file); raises GitError
    when git is missing."""
    return run_git(["rev-parse", "--show-toplevel"], path if path.is_dir() else path.parent, check=False)


def repo_root(path: Path) -> Path | None:
    """The top of the work tree holding ``path``, or None when it is not in a git repository (why: see
    :func:`no_repository`)."""
    try:
        proc = _toplevel(path)
    except GitError:
        return None
    if proc.returncode != 0:
        return None
    return Path(os.fsdecode(proc.stdout.rstrip(b"\n"))).resolve()


def no_repository(path: Path) -> str:
    """Why ``path`` has no repository root, for a message: git's own words where it found one it refuses.

    A repository owned by another user ("detected dubious ownership"), a broken ``.git`` or a missing git
    must not read as "not in a git repository": the user would look for a repository that is there.
    """
    try:
        proc = _toplevel(path)
    except GitError as exc:
        return str(exc)
    lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode == 0 or not lines or "not a git repository" in lines[0]:
        return "not in a git repository"
    detail = lines[0].removeprefix("fatal: ")
    hint = next((line.strip() for line in lines[1:] if "safe.directory" in line and "config" in line), "")
    return f"git refuses the repository here: {detail}" + (f" (to allow it: {hint})" if hint else "")


@dataclasses.dataclass(frozen=True)
class StagedFile:
    path: Path
    """Absolute path in the work tree."""
    relpath: str
    """Path relative to the repository root, as git names it (``/``-separated)."""
    lines: frozenset[int]
    """0-based line numbers, in the staged version, that the staged change adds or touches."""
    added: bool
    """The file is new in the index (not in HEAD)."""


def staged_python_files(root: Path) -> list[StagedFile]:
    """Python files added, copied or modified in the index relative to HEAD, with their touched lines."""
    base = _diff_base(root)
    names = run_git(
        [
            "diff",
            "--cached",
            "--name-status",
            "-z",
            "--no-renames",
            "--no-ext-diff",
            "--no-textconv",
            "--diff-filter=AM",
            base,
            "--",
        ],
        root,
    ).stdout.split(b"\0")
    files = []
    for status, name in zip(names[0::2], names[1::2], strict=False):
        relpath = os.fsdecode(name)
        if not relpath.endswith((".py", ".pyi")):
            continue
        diff = run_git(
            ["diff", "--cached", "-U0", "--no-color", "--no-ext-diff", "--no-textconv", base, "--", relpath],
            root,
        ).stdout
        files.append(
            StagedFile(
                path=root / relpath,
                relpath=relpath,
                lines=frozenset(touched_lines(diff)),
                added=status == b"A",
            )
        )
    return files


def touched_lines(diff: bytes) -> set[int]:
    """0-based lines of the new version that a ``-U0`` unified diff adds or changes.

    A pure deletion touches the lines just above and just below it (git numbers the one above as the hunk's
    new start), so a function whose last statement was deleted, or whose decorator was, counts as changed;
    a function either side that did not change is left out by its text (``check._functions_of``).
    """
    lines: set[int] = set()
    for raw in diff.splitlines():
        match = _HUNK.match(raw)
        if match is None:
            continue
        start = int(match.group(1))
        count = int(match.group(2)) if match.group(2) is not None else 1
        if count == 0:
            lines.update({max(start - 1, 0), start})
        else:
            lines.update(range(start - 1, start - 1 + count))
    return lines


def file_at(root: Path, rev: str, relpath: str) -> str | None:
    """The file as committed in ``rev``, or None when ``rev`` does not exist or does not have the file."""
    data = file_bytes_at(root, rev, relpath)
    return _source_text(data, relpath) if data is not None else None


def file_bytes_at(root: Path, rev: str, relpath: str) -> bytes | None:
    """:func:`file_at`'s bytes, undecoded (any kind of file)."""
    proc = run_git(["cat-file", "blob", f"{rev}:{relpath}"], root, check=False)
    return proc.stdout if proc.returncode == 0 else None


def head_text(root: Path, relpath: str) -> str | None:
    """The file as committed in HEAD, or None when there is no HEAD or the file is not in it."""
    return file_at(root, "HEAD", relpath)


def changed_python_files(root: Path, rev: str) -> list[str]:
    """Tracked Python files whose work-tree bytes differ from ``rev`` (modified or added), relative."""
    changes = changed_files(root, rev, lambda relpath: relpath.endswith(".py"))
    return [change.relpath for change in changes if (root / change.relpath).is_file()]


@dataclasses.dataclass(frozen=True)
class FileChange:
    """A changed file of any kind, with its bytes on both sides: what a test run needs to put either back."""

    relpath: str
    """Relative to the repository root, as git names it (``/``-separated)."""
    base: bytes | None
    """As the base revision has it; None: not there (the change adds it)."""
    now: bytes | None
    """As the change has it (staged, or in the work tree); None: the change deletes it."""
    skipped: str = ""
    """Why its bytes were not read (then ``base`` and ``now`` are None): too large, or stored through a git
    filter (Git LFS keeps a pointer in the repository, not the file the tests read)."""


# Entries that are not a plain file's bytes: a symlink's blob is its target, a submodule is a commit.
_NOT_FILES = ("120000", "160000")

LOAD_LIMIT = 64 << 20
"""A changed file larger than this (either side) is not read into memory to be put back in a test run."""


def changed_files(root: Path, rev: str, wanted: Callable[[str], bool] = lambda _: True) -> list[FileChange]:
    """The ``wanted`` files whose work-tree bytes differ from ``rev``: modified, added (tracked, not in
    ``rev``) and deleted (in ``rev``, gone from the work tree). Symlinks and submodules are left out.

    Compared here by blob hash instead of ``git diff REV``: diffing the work tree would run the
    repository's clean filters, which are commands of its choosing.
    """
    verify = run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root, check=False)
    if verify.returncode != 0:
        raise GitError(f"{rev!r} is not a commit in {root}")
    committed: dict[str, tuple[str, str, int]] = {}  # relpath -> (mode, blob id, size)
    for entry in run_git(["ls-tree", "-r", "-z", "-l", "--full-tree", rev], root).stdout.split(b"\0"):
        meta, _, name = entry.partition(b"\t")
        fields = meta.split()
        if name and fields[1:2] == [b"blob"] and wanted(os.fsdecode(name)):
            committed[os.fsdecode(name)] = (fields[0].decode(), fields[2].decode(), int(fields[3]))
    return _work_tree_changes(root, committed, _index(root, wanted))


def unstaged_files(root: Path) -> list[FileChange]:
    """The tracked files whose work-tree bytes differ from the index (``base``: as staged), compared as
    :func:`changed_files` compares them: what a check of the staged change must not see in the work tree."""
    index = _index(root, lambda _: True)
    sizes = _sizes(root, [oid for _, oid in index.values()])
    staged = {relpath: (mode, oid, sizes.get(oid, -1)) for relpath, (mode, oid) in index.items()}
    return _work_tree_changes(root, staged, index)


def _index(root: Path, wanted: Callable[[str], bool]) -> dict[str, tuple[str, str]]:
    """The ``wanted`` files of the index: relpath -> (mode, blob id)."""
    entries = {}
    for entry in run_git(["ls-files", "-z", "--stage"], root).stdout.split(b"\0"):
        meta, _, name = entry.partition(b"\t")
        fields = meta.split(b" ")
        if name and len(fields) >= 2 and wanted(os.fsdecode(name)):
            entries[os.fsdecode(name)] = (fields[0].decode(), fields[1].decode())
    return entries


def _work_tree_changes(
    root: Path, base: dict[str, tuple[str, str, int]], index: dict[str, tuple[str, str]]
) -> list[FileChange]:
    """The work tree's files that differ from ``base`` (relpath -> mode, blob id, size), among those in
    ``base`` or the ``index``; compared by size, then by blob hash."""
    algorithm = run_git(["rev-parse", "--show-object-format"], root, check=False).stdout.decode().strip()
    found: list[tuple[str, str, int, int | None]] = []  # relpath, base blob id ("": none), sizes
    for relpath in sorted(base.keys() | index.keys()):
        mode, oid, size = base.get(relpath, ("", "", 0))
        if mode in _NOT_FILES or index.get(relpath, ("",))[0] in _NOT_FILES:
            continue
        path = root / relpath
        try:
            now_size = None if path.is_symlink() else path.stat().st_size
        except OSError:
            now_size = None  # deleted in the work tree (or unreadable: as absent to the tests)
        if now_size is None and not oid:
            continue
        if now_size == size and oid and oid == _blob_id(path, size, algorithm or "sha1"):
            continue
        found.append((relpath, oid, size, now_size))
    filtered = _filtered(root, [relpath for relpath, *_ in found])
    changes = []
    for relpath, oid, size, now_size in found:
        if relpath in filtered and index.get(relpath, ("", ""))[1] == oid:
            continue  # the work tree holds the filter's output (Git LFS's file for its pointer): as staged
        skipped = _skipped(filtered.get(relpath), max(size, now_size or 0))
        if skipped:
            changes.append(FileChange(relpath, None, None, skipped))
            continue
        now = (root / relpath).read_bytes() if now_size is not None else None
        changes.append(FileChange(relpath, _blob(root, oid) if oid else None, now))
    return changes


def _blob_id(path: Path, size: int, algorithm: str) -> str:
    """The blob id git would give ``path``'s bytes (``size`` of them), read in chunks."""
    digest = hashlib.new(algorithm, b"blob %d\0" % size)
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_change(root: Path, rev: str, relpath: str) -> FileChange | None:
    """The change of the work tree's file ``relpath`` since ``rev`` (None: none), as :func:`changed_files`
    has it."""
    path = root / relpath
    size = path.stat().st_size
    listed = (
        run_git(["ls-tree", "-z", "-l", rev, "--", relpath], root, check=False).stdout.split(b"\t")[0].split()
    )
    committed = int(listed[3]) if len(listed) == 4 and listed[3].isdigit() else 0
    skipped = _skipped(_filtered(root, [relpath]).get(relpath), max(size, committed))
    if skipped:
        return FileChange(relpath, None, None, skipped)
    base, now = file_bytes_at(root, rev, relpath), path.read_bytes()
    return FileChange(relpath, base, now) if base != now else None


def _filtered(root: Path, relpaths: list[str]) -> dict[str, str]:
    """The git filter (``filter=lfs`` in .gitattributes) of each of ``relpaths`` that has one."""
    if not relpaths:
        return {}
    stdin = b"\0".join(os.fsencode(relpath) for relpath in relpaths) + b"\0"
    out = run_git(["check-attr", "-z", "--stdin", "filter"], root, check=False, stdin=stdin).stdout
    fields = out.split(b"\0")
    return {
        os.fsdecode(path): value.decode()
        for path, _, value in zip(fields[0::3], fields[1::3], fields[2::3], strict=False)
        if value not in (b"unspecified", b"unset", b"")
    }


def _skipped(filter_name: str | None, size: int) -> str:
    """Why a changed file's bytes are not read (see :attr:`FileChange.skipped`); empty: they are."""
    if filter_name is not None:
        return f"stored through the git filter {filter_name!r}"
    return f"larger than {LOAD_LIMIT >> 20} MiB" if size > LOAD_LIMIT else ""


def staged_changes(root: Path, wanted: Callable[[str], bool] = lambda _: True) -> list[FileChange]:
    """Every ``wanted`` file the index changes relative to HEAD (all of them before the first commit):
    modified, added and deleted, with their bytes in HEAD and in the index. Symlinks and submodules are left
    out."""
    out = run_git(
        ["diff", "--cached", "--raw", "-z", "--no-renames", "--no-abbrev", "--no-ext-diff", "--no-textconv",
         _diff_base(root), "--"],
        root,
    ).stdout.split(b"\0")  # fmt: skip
    found: list[tuple[str, str | None, str | None]] = []
    # ":<old mode> <new mode> <old blob> <new blob> <status>", then the path.
    for meta, name in zip(out[0::2], out[1::2], strict=False):
        fields = meta.decode().lstrip(":").split(" ")
        if (
            len(fields) < 5
            or fields[0] in _NOT_FILES
            or fields[1] in _NOT_FILES
            or not wanted(os.fsdecode(name))
        ):
            continue
        old = None if fields[0] == "000000" else fields[2]  # 000000: not on that side
        new = None if fields[1] == "000000" else fields[3]
        found.append((os.fsdecode(name), old, new))
    sizes = _sizes(root, [oid for _, old, new in found for oid in (old, new) if oid is not None])
    filtered = _filtered(root, [relpath for relpath, _, _ in found])
    changes = []
    for relpath, old, new in found:
        size = max((sizes.get(oid, 0) for oid in (old, new) if oid is not None), default=0)
        skipped = _skipped(filtered.get(relpath), size)
        if skipped:
            changes.append(FileChange(relpath, None, None, skipped))
        else:
            changes.append(FileChange(relpath, _blob(root, old), _blob(root, new)))
    return changes


def _sizes(root: Path, oids: list[str]) -> dict[str, int]:
    """The size of each blob, from one ``git cat-file --batch-check``."""
    if not oids:
        return {}
    out = run_git(["cat-file", "--batch-check"], root, stdin="".join(f"{oid}\n" for oid in oids).encode())
    sizes = {}
    for line in out.stdout.decode().splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2].isdigit():
            sizes[fields[0]] = int(fields[2])
    return sizes


def _blob(root: Path, oid: str | None) -> bytes | None:
    """The bytes of blob ``oid`` (None: None), read without filters or textconv."""
    return run_git(["cat-file", "blob", oid], root).stdout if oid is not None else None


def staged_text(root: Path, relpath: str) -> str | None:
    """The file as staged in the index, or None when it is not in the index."""
    proc = run_git(["cat-file", "blob", f":{relpath}"], root, check=False)
    if proc.returncode != 0:
        return None
    return _source_text(proc.stdout, relpath)


def _source_text(data: bytes, relpath: str) -> str:
    """A blob decoded like the work tree's file (a BOM, a coding declaration), so the two compare equal
    where they are equal; undecodable bytes are replaced, as git shows them."""
    try:
        return decode_source(data, Path(relpath))[0]
    except SourceError:
        return data.decode("utf-8", "replace")


def tracked_python_files(root: Path) -> list[str]:
    """Every tracked ``.py`` file, relative to the root."""
    out = run_git(["ls-files", "-z", "--", "*.py"], root).stdout
    return sorted(os.fsdecode(name) for name in out.split(b"\0") if name)


def _diff_base(root: Path) -> str:
    """HEAD, or git's empty tree before the first commit (then everything staged is new)."""
    proc = run_git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], root, check=False)
    if proc.returncode == 0:
        return "HEAD"
    empty = run_git(["hash-object", "-t", "tree", "--stdin"], root, check=False)
    return (
        empty.stdout.decode().strip() if empty.returncode == 0 else "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    )
