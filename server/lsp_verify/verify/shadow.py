"""Shadow workspaces: where candidates are written and where mypy and the tests run.

A :class:`ShadowRoot` is one private (0700) directory outside the workspace, named after the server's pid
(``lsp-verify-<pid>-*``); each :meth:`ShadowRoot.create` builds a shadow inside it in which the edited file
holds the candidate text. A root whose owner died without removing it (a crash, SIGKILL) is removed when the
next ShadowRoot is made in the same place. It also holds a private ``tmp`` directory for the runs' TMPDIR.

How the rest of the workspace appears depends on what stops writes (``copy``):

- *link* (under bubblewrap, which mounts the workspace read-only): a symlink farm. The directories on the
  path to the edited file are real directories, every other entry is a symlink to the user's entry. A few
  dozen ``symlink`` calls, however large the tree. Real directories on the path matter because Python and
  pytest name modules after the path they were found at, while ``realpath`` of anything inside a symlinked
  directory points back into the user's tree. Hypothesis's ``.hypothesis`` is the one directory copied
  (its example database: :func:`_copy_examples`). A project below the repository's top (a monorepo's
  member; ``top``) is mirrored at its place in a mirror of the directories above it, whose other entries
  are linked: a path out of the project (``../a/src``) leads where it leads in the user's tree. The links
  are read-only: for a project whose tests write beside themselves, or resolve their own path into the
  user's tree and import the project from there, the runner turns a linked shadow into a copy
  (:meth:`Shadow.materialize`) and makes every later one a copy.
- *copy* (no bubblewrap: nothing else stops a write through a symlink - or a hard link - from reaching the
  user's file): real directories and copied files, except version-control, virtualenv, tool-cache and
  ``node_modules`` directories, which are left out (tests reading them are rare; copying them is costly).
  Symlinks in the user's tree become copies of what they point to; symlinked directories are left out.
  Measured (2 shared cores at load ~6, ext4): 320 .py files plus a 2000-object .git - link 1 ms, copy
  ~90 ms to build (~200 ms with removal); a 50 MB data file adds ~250 ms. Cheap next to a test run for a
  source tree; a workspace with large data files pays for it on every candidate - install bubblewrap.

Bytecode and caches are switched off or redirected elsewhere in both modes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from ..config import cache_home
from ..sourcefile import declared_encoding

# Entries never linked into a shadow: stale bytecode and tool caches of the user's tree.
_SKIPPED = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
# Also left out of a copied shadow: large, not source, and never needed to import or test the project.
_NOT_COPIED = _SKIPPED | {".git", ".hg", ".svn", ".tox", ".nox", ".eggs", "node_modules", ".venv", "venv"}
_PREFIX = "lsp-verify-"
# Hypothesis's directory (in the directory a run starts in): copied into a linked shadow, not linked.
_HYPOTHESIS = ".hypothesis"
# Where a shadow root goes when the temporary directory lies inside the workspace.
_FALLBACK_PARENTS = (Path("/var/tmp"), Path("/dev/shm"))


Content = str | bytes | None
"""What a shadow's one edited path holds (see :meth:`ShadowRoot.create`)."""


def mirrored(relative: Path) -> bool:
    """Whether a shadow shows the workspace's file at ``relative`` (a path inside it) as the tree has it:
    nothing under a version-control, virtualenv or tool-cache directory is copied into one."""
    return not any(part in _NOT_COPIED for part in relative.parts[:-1])


class ShadowUnavailable(ValueError):
    """No place outside the workspace can hold the shadow directory (the message says which were tried)."""


def shadow_parent(workspace: Path, parent: Path | None = None) -> Path:
    """Where the shadow root of ``workspace`` goes: ``parent`` if given, else the first of the temporary
    directory, /var/tmp, /dev/shm and the user's cache that lies outside the workspace.

    A workspace may contain the temporary directory (``lsp-verify check`` run in /tmp, a home directory opened
    as a folder with TMPDIR=~/tmp): a shadow inside the workspace would be part of what it mirrors, and tests
    or mypy would find the candidates twice. Raises :class:`ShadowUnavailable` when every place is inside.
    """
    workspace = workspace.resolve()
    cache = cache_home() / "shadows"
    places = [parent] if parent is not None else [Path(tempfile.gettempdir()), *_FALLBACK_PARENTS, cache]
    for place in places:
        real = place.resolve()
        if real == workspace or workspace in real.parents:
            continue
        if place is cache:
            with contextlib.suppress(OSError):
                real.mkdir(mode=0o700, parents=True, exist_ok=True)
        if real.is_dir() and os.access(real, os.W_OK | os.X_OK):
            return real
    tried = ", ".join(str(p) for p in places)
    raise ShadowUnavailable(
        f"the shadow directory must lie outside the workspace {workspace}, and none of {tried} does (or is "
        "writable): open the project's own directory as the workspace"
    )


class ShadowRoot:
    """The private directory holding every shadow of one workspace; removed by :meth:`close`."""

    def __init__(
        self,
        workspace: Path,
        parent: Path | None = None,
        *,
        copy: bool = False,
        tree: Mapping[Path, Content] | None = None,
        top: Path | None = None,
    ) -> None:
        """``tree``: paths (relative) every shadow shows with other content than the workspace's files - the
        tree as git's index has it, for a check of the staged change (see :meth:`create`). ``top``: a
        directory above the workspace (the repository's top) whose other entries every shadow shows, linked,
        around its mirror of the workspace, as the user's tree has them - only where something keeps writes
        from going through a link (bubblewrap), also once the shadows are copies (``copy`` set later, for
        tests that write beside themselves)."""
        self.workspace = workspace.resolve()
        self.copy = copy
        self.tree = dict(tree or {})
        self.nest = Path()
        """Where the workspace's mirror lies in each shadow, below the mirror of ``top`` (empty: none)."""
        if top is not None and self.workspace.is_relative_to(top.resolve()):
            self.nest = self.workspace.relative_to(top.resolve())
        self.top = top.resolve() if top is not None and self.nest.parts else None
        parent = shadow_parent(self.workspace, parent)
        remove_stale_roots(parent)
        # mkdtemp creates the directory with mode 0700, so no other user can read candidates or results.
        self.path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=parent)).resolve()
        if self.path == self.workspace or self.workspace in self.path.parents:
            shutil.rmtree(self.path, ignore_errors=True)
            raise ShadowUnavailable(f"the shadow directory {self.path} lies inside the workspace {workspace}")
        self.tmp = self.path / "tmp"
        """A private TMPDIR for the runs (removed with the root)."""
        self.tmp.mkdir(mode=0o700)
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def create(self, relative: Path, text: Content, also: Mapping[Path, Content] | None = None) -> Shadow:
        """A new shadow of the workspace in which ``relative`` (a path inside it) holds ``text``: source text,
        written in its declared encoding; bytes, written as they are (a data file as a revision has it); or
        None, the file absent (a module as a change deletes it). ``also``: more paths, each holding its own
        content (a change of several files, all undone at once). Both come before the root's ``tree``. With a
        ``top``, a path may also lead out of the workspace to what lies around it (``../a/src/alib/m.py``:
        another member's change, for the tests of this one): the mirror around the workspace then shows it."""
        overlays: dict[Path, Content] = {}
        around: dict[Path, Content] = {}  # relative to the top
        for path, content in {**self.tree, relative: text, **(also or {})}.items():
            inside, placed = self._placed(path)
            (overlays if inside else around)[placed] = content
        with self._lock:
            name = f"s{next(self._counter)}"
        outer = self.path / name
        outer.mkdir(mode=0o700)
        # Named as the workspace is: a test may read its project's directory name (`Path.cwd().name`, a
        # slug made from `Path(__file__).parents[1].name`), which a shadow named `s14` changed.
        shadow_dir = outer / (self.workspace.name or "workspace")
        if self.top is not None:
            # The directories from the repository's top down to the workspace, their other entries linked: a
            # path out of the project (pytest's `pythonpath = ["../a/src"]`, a conftest.py's
            # `os.path.dirname(__file__) + "/../../shared"`) leads where it leads in the user's tree - or to
            # the content given for it there (another member's change, for the tests of one that imports it).
            _link_tree(self.top, outer, [self.nest.parts, *(path.parts for path in around)])
            shadow_dir = outer / self.nest
        if self.copy:
            _copy_tree(self.workspace, shadow_dir)
        else:
            shadow_dir.mkdir(mode=0o700)
            _link_tree(self.workspace, shadow_dir, [path.parts for path in overlays])
        _write(shadow_dir, self.workspace, overlays)
        if self.top is not None:
            _write(outer, self.top, around)
        linked = None if self.copy else self.workspace
        edited = Path(os.path.normpath(shadow_dir / relative))
        return Shadow(root=shadow_dir, relative=relative, edited=edited, linked=linked, outer=outer)

    def _placed(self, path: Path) -> tuple[bool, Path]:
        """Where a path given to :meth:`create` goes: (True, the path relative to the workspace) for a path
        inside it, (False, relative to the top) for one that leads out of it into what the shadows show
        around it (``../a/src/alib/m.py``: another member of the repository). Raises ValueError for any
        other."""
        if path.parts and not path.is_absolute():
            if ".." not in path.parts:
                return True, path
            if self.top is not None:
                placed = Path(os.path.normpath(self.nest / path))
                if placed.is_relative_to(self.nest) and placed != self.nest:
                    return True, placed.relative_to(self.nest)
                if placed.parts and placed.parts[0] != ".." and not self.nest.is_relative_to(placed):
                    return False, placed
        raise ValueError(
            f"expected a path inside the workspace or what its shadows show around it, got {path}"
        )

    def scratch(self, name: str) -> Path:
        """A file name inside the private directory (for results and logs)."""
        with self._lock:
            return self.path / f"{name}-{next(self._counter)}"

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class Shadow:
    """One shadow workspace: ``root`` mirrors the workspace, ``edited`` is the candidate's file;
    ``linked``: the workspace its symlinks point into (None: a copied shadow)."""

    def __init__(
        self, root: Path, relative: Path, edited: Path, linked: Path | None = None, outer: Path | None = None
    ) -> None:
        self.root = root
        self.relative = relative
        self.edited = edited
        self.linked = linked
        self.outer = outer or root
        """The directory holding the whole shadow: ``root``'s parent, or the mirror of the repository around
        it."""

    def materialize(self) -> None:
        """Turn this linked shadow into a copied one, in place: every symlink into the workspace becomes a
        copy of what it points to (left out as a copied shadow leaves them out: version control,
        virtualenvs, tool caches). For a project whose tests write beside themselves, which a read-only
        link refuses (see ``pytest_run.PytestRunner.run``)."""
        if self.linked is not None:
            _unlink_tree(self.linked, self.root)
        self.linked = None

    def remove(self) -> None:
        shutil.rmtree(self.outer, ignore_errors=True)


def remove_stale_roots(parent: Path | None = None) -> list[Path]:
    """Remove this user's shadow roots whose owning process is gone (left by a crash); the removed ones.

    The owner's pid is in the directory's name, which a sandboxed run cannot change (only the root's
    contents are writable to it). A root of a live process is kept, whatever that process is.
    """
    removed: list[Path] = []
    directory = parent if parent is not None else Path(tempfile.gettempdir())
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(_PREFIX):
            continue
        # "<pid>-<random>"; mkdtemp's random part never holds "-", so an older unnamed root is never taken
        # for one of these.
        owner, dash, _ = entry.name[len(_PREFIX) :].partition("-")
        with contextlib.suppress(OSError):
            if not dash or not owner.isdigit() or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.getuid() or _alive(int(owner)):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process with that pid: not ours to judge
    return True


def _encoded(content: str | bytes) -> bytes:
    if isinstance(content, bytes):
        return content
    # In the file's declared encoding, or Python would read other text than the candidate's (a latin-1 file's
    # "café" as "cafÃ©"); a candidate the encoding cannot hold stays UTF-8 and fails to decode.
    try:
        return content.encode(declared_encoding(content))
    except (UnicodeEncodeError, LookupError):
        return content.encode("utf-8", "surrogatepass")


def _write(shadow_dir: Path, original: Path, contents: Mapping[Path, Content]) -> None:
    """Each path of ``contents`` (relative) in ``shadow_dir``, the shadow of ``original``, holding its
    content (see :meth:`ShadowRoot.create`)."""
    for path, content in contents.items():
        target = shadow_dir / path
        if content is None:
            target.unlink(missing_ok=True)
            _remove_made_directories(target.parent, shadow_dir, original / path.parent)
            continue
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        target.write_bytes(_encoded(content))


def _remove_made_directories(directory: Path, shadow_dir: Path, original: Path) -> None:
    """Remove ``directory`` and its parents up to ``shadow_dir`` while they are empty and the workspace has no
    such directory (``original``): made only on the way to a file that is to be absent, they would turn a
    deleted package into an empty namespace package."""
    while directory != shadow_dir and not original.is_dir():
        try:
            directory.rmdir()
        except OSError:
            return  # not empty (or not there)
        directory, original = directory.parent, original.parent


def _link_tree(source_dir: Path, target_dir: Path, paths: list[tuple[str, ...]]) -> None:
    """Symlink ``source_dir``'s entries into ``target_dir`` except those on the way to ``paths`` (each a
    tuple of parts below ``source_dir``): a directory on the way is made real and linked the same way, and
    the files themselves are left for the caller to write."""
    keep = {parts[0] for parts in paths}
    _link_entries(source_dir, target_dir, keep)
    for name in keep:
        below = [parts[1:] for parts in paths if parts[0] == name and len(parts) > 1]
        if below:
            (target_dir / name).mkdir(mode=0o700)
            _link_tree(source_dir / name, target_dir / name, below)


def _link_entries(source_dir: Path, target_dir: Path, keep: set[str]) -> None:
    """Symlink every entry of ``source_dir`` into ``target_dir`` except ``keep`` (made real by the caller)."""
    try:
        entries = list(os.scandir(source_dir))
    except FileNotFoundError:
        entries = []  # the edited file's directory may not exist on disk yet (an unsaved new file)
    for entry in entries:
        if entry.name in keep or entry.name in _SKIPPED:
            continue
        if entry.name == _HYPOTHESIS and entry.is_dir(follow_symlinks=False):
            _copy_examples(Path(entry.path), target_dir / entry.name)
            continue
        os.symlink(entry.path, target_dir / entry.name)


def _copy_examples(source: Path, target: Path) -> None:
    """The shadow's own Hypothesis directory, holding a copy of the workspace's example database. pytest in
    the user's tree replays the failures Hypothesis saved there, and saves new ones; linked, the directory
    is read-only, and Hypothesis refuses it with a HypothesisWarning - which a project's ``filterwarnings =
    error`` turns into an error of every ``@given`` test, with and without the change alike, so a change
    that broke a property passed. Its caches (``constants``) are not copied: Hypothesis rebuilds them, and
    nor is a database of more than :data:`_EXAMPLES_COPIED` files, which would cost every shadow more than
    the replay is worth (the directory is still the shadow's own: no warning, new failures saved there)."""
    os.mkdir(target, 0o700)
    with contextlib.suppress(OSError):
        examples = source / "examples"
        count = 0
        for _, _, files in os.walk(examples):
            count += len(files)
            if count > _EXAMPLES_COPIED:
                return
        if examples.is_dir():
            _copy_tree(examples, target / "examples")


_EXAMPLES_COPIED = 500
"""The most files of a workspace's Hypothesis example database a linked shadow copies: each hundred costs
about 15 ms (2,000 small files in 0.23-0.33 s on 2 cores under load), on every shadow."""


def _copy_tree(source_dir: Path, target_dir: Path) -> None:
    """Copy the workspace into ``target_dir``: real directories, real files, nothing linking back."""
    os.mkdir(target_dir, 0o700)
    try:
        entries = list(os.scandir(source_dir))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name in _NOT_COPIED:
            continue
        with contextlib.suppress(OSError):  # unreadable or vanished meanwhile: the run sees it missing
            _copy_entry(entry, f"{target_dir}/{entry.name}")


def _copy_entry(entry: os.DirEntry[str], target: str) -> None:
    """One of the workspace's entries copied to ``target``: a directory whole (not a symlinked one, nor a
    virtualenv), a file's content; anything else left out. Raises OSError."""
    if entry.is_dir(follow_symlinks=False):
        if not os.path.exists(f"{entry.path}/pyvenv.cfg"):  # a virtualenv under another name
            _copy_tree(Path(entry.path), Path(target))
    elif entry.is_file():  # follows a symlink: its content is copied, the link is not
        _copy_file(entry.path, target)


def _unlink_tree(source_dir: Path, target_dir: Path) -> None:
    """Replace each link of ``target_dir`` (a directory of a linked shadow) to an entry of ``source_dir``
    with a copy of that entry, as a copied shadow holds it, and do the same in its real directories."""
    try:
        entries = list(os.scandir(source_dir))
    except FileNotFoundError:
        return
    for entry in entries:
        target = target_dir / entry.name
        if target.is_symlink():
            if entry.name not in _NOT_COPIED:
                target.unlink()
                with contextlib.suppress(OSError):
                    _copy_entry(entry, str(target))
        elif target.is_dir() and entry.is_dir(follow_symlinks=False):
            _unlink_tree(Path(entry.path), target)


def _copy_file(source: str, target: str) -> None:
    """``source``'s first ``st_size`` bytes - no more: a symlink to ``/proc/self/pagemap`` (size 0, and
    endless to read) would fill the disk - into a new private file, executable when the source is (a test
    may run a script of the project's)."""
    # Plain os calls: per file this is about a third of shutil.copyfile's cost, and most files are small;
    # a large one is copied inside the kernel (copy_file_range: a reflink where the filesystem can).
    fd = os.open(source, os.O_RDONLY)
    try:
        status = os.fstat(fd)
        mode = 0o700 if status.st_mode & stat.S_IXUSR else 0o600
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            left = status.st_size
            if left > 1 << 20 and hasattr(os, "copy_file_range"):
                try:
                    while left > 0 and (copied := os.copy_file_range(fd, out, min(left, 1 << 30))):
                        left -= copied
                except OSError:  # not supported between these files: start over, plainly
                    os.lseek(fd, 0, os.SEEK_SET)
                    os.lseek(out, 0, os.SEEK_SET)
                    os.ftruncate(out, 0)
                    left = status.st_size
            while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):  # what copy_file_range left
                os.write(out, chunk)
                left -= len(chunk)
        finally:
            os.close(out)
    finally:
        os.close(fd)
