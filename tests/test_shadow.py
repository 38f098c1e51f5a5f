"""Shadow workspaces: private, cheap to build, only the edited file differs, the user's tree untouched -
also when a test writes through the shadow without bubblewrap - and nothing left behind by a crash."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lsp_verify.verify.shadow import ShadowRoot, ShadowUnavailable, shadow_parent

FIXTURES = Path(__file__).parent / "fixtures"


def test_shadow_is_private_links_the_rest_and_makes_the_edited_path_real(tmp_path: Path) -> None:
    workspace = tmp_path / "calc"
    shutil.copytree(FIXTURES / "calc", workspace)
    original = (workspace / "calc" / "core.py").read_text()
    shadows = ShadowRoot(workspace)
    try:
        assert stat.S_IMODE(shadows.path.stat().st_mode) == 0o700
        assert workspace not in shadows.path.parents
        shadow = shadows.create(Path("calc/core.py"), "X = 1\n")
        assert shadow.root.name == "calc"  # as the workspace is named: a test may read it
        # The package directory and the edited file are real: realpath stays inside the shadow.
        assert not (shadow.root / "calc").is_symlink()
        assert not shadow.edited.is_symlink()
        assert os.path.realpath(shadow.edited).startswith(str(shadow.root))
        assert shadow.edited.read_text() == "X = 1\n"
        # Everything else is a link to the user's entry, not a copy.
        assert (shadow.root / "tests").is_symlink()
        assert (shadow.root / "calc" / "__init__.py").is_symlink()
        assert (shadow.root / "tests" / "test_calc.py").read_text() == (
            workspace / "tests" / "test_calc.py"
        ).read_text()
        assert (workspace / "calc" / "core.py").read_text() == original
        shadow.remove()
        assert not shadow.root.exists()
    finally:
        shadows.close()
    assert not shadows.path.exists()
    assert (workspace / "calc" / "core.py").read_text() == original


def test_a_linked_shadow_of_a_member_shows_the_repository_around_it(tmp_path: Path) -> None:
    # packages/b's tests reach ../a/src (pytest's pythonpath): in a shadow of b alone that led nowhere.
    (tmp_path / "packages" / "a" / "src").mkdir(parents=True)
    (tmp_path / "packages" / "a" / "src" / "alib.py").write_text("X = 1\n")
    (tmp_path / "README.md").write_text("top\n")
    workspace = tmp_path / "packages" / "b"
    shutil.copytree(FIXTURES / "calc", workspace)
    shadows = ShadowRoot(workspace, top=tmp_path)
    try:
        shadow = shadows.create(Path("calc/core.py"), "X = 2\n")
        assert shadow.root.parts[-2:] == ("packages", "b") and shadow.outer in shadow.root.parents
        assert (shadow.root / ".." / "a" / "src" / "alib.py").read_text() == "X = 1\n"
        assert (shadow.outer / "README.md").is_symlink() and (shadow.outer / "packages" / "a").is_symlink()
        assert (
            not (shadow.outer / "packages").is_symlink()
            and not (shadow.outer / "packages" / "b").is_symlink()
        )
        assert shadow.edited.read_text() == "X = 2\n"
        shadow.remove()
        assert not shadow.outer.exists()
        # Copies once tests wrote beside themselves (under bubblewrap, which keeps the links read-only): the
        # member is copied, what lies around it still linked.
        shadows.copy = True
        copied = shadows.create(Path("calc/core.py"), "X = 3\n")
        assert not (copied.root / "tests").is_symlink() and (copied.outer / "packages" / "a").is_symlink()
        assert (copied.root / ".." / "a" / "src" / "alib.py").read_text() == "X = 1\n"
    finally:
        shadows.close()
    assert (tmp_path / "packages" / "a" / "src" / "alib.py").read_text() == "X = 1\n"


def test_a_shadow_of_a_member_shows_another_members_change_where_it_lies(tmp_path: Path) -> None:
    # packages/b imports packages/a: b's tests run on a's change (check's guard of the members that import
    # it), with a's file changed (or deleted) in the mirror around b and the rest of a still linked.
    source = tmp_path / "packages" / "a" / "src" / "alib"
    source.mkdir(parents=True)
    (source / "m.py").write_text("X = 1\n")
    (source / "n.py").write_text("Y = 1\n")
    workspace = tmp_path / "packages" / "b"
    shutil.copytree(FIXTURES / "calc", workspace)
    shadows = ShadowRoot(workspace, top=tmp_path)
    try:
        shadow = shadows.create(Path("../a/src/alib/m.py"), "X = 2\n", {Path("../a/src/alib/n.py"): None})
        mirrored = shadow.outer / "packages" / "a" / "src" / "alib"
        assert shadow.edited == mirrored / "m.py" and shadow.edited.read_text() == "X = 2\n"
        assert not (mirrored / "n.py").exists() and not mirrored.is_symlink()
        assert (shadow.root / "calc").is_symlink(), "the member itself is linked as before"
        plain = shadows.create(Path("calc/core.py"), "X = 3\n")
        assert (plain.outer / "packages" / "a").is_symlink(), "only the shadow given the change shows it"
        for outside in (Path("../../../elsewhere.py"), Path("../b/../../../x.py"), Path("..")):
            with pytest.raises(ValueError):
                shadows.create(outside, "")
        inside = shadows.create(Path("../b/calc/core.py"), "X = 4\n")
        assert inside.edited == inside.root / "calc" / "core.py" and inside.edited.read_text() == "X = 4\n"
    finally:
        shadows.close()
    assert (source / "m.py").read_text() == "X = 1\n" and (source / "n.py").exists()
    alone = ShadowRoot(workspace)
    try:
        with pytest.raises(ValueError):  # no mirror around a shadow of the project alone
            alone.create(Path("../a/src/alib/m.py"), "")
    finally:
        alone.close()


def test_a_linked_shadow_has_its_own_copy_of_hypothesiss_example_database(tmp_path: Path) -> None:
    # Linked, it was read-only: Hypothesis refused it with a warning, an error of every @given test under
    # `filterwarnings = error` (see test_check.py), and the failures it saved were not replayed.
    workspace = tmp_path / "calc"
    shutil.copytree(FIXTURES / "calc", workspace)
    saved = workspace / ".hypothesis" / "examples" / "0a1b" / "2c3d"
    saved.parent.mkdir(parents=True)
    saved.write_bytes(b"\x00\x01 a failing example")
    (workspace / ".hypothesis" / "constants").mkdir()
    shadows = ShadowRoot(workspace)
    try:
        shadow = shadows.create(Path("calc/core.py"), "X = 1\n")
        home = shadow.root / ".hypothesis"
        assert not home.is_symlink() and not (home / "examples").is_symlink()
        assert (home / "examples" / "0a1b" / "2c3d").read_bytes() == saved.read_bytes()
        assert not (home / "constants").exists()  # a cache: Hypothesis rebuilds it
        (home / "examples" / "0a1b" / "2c3d").write_bytes(b"shrunk further")
        (home / "examples" / "new").mkdir()
    finally:
        shadows.close()
    assert saved.read_bytes() == b"\x00\x01 a failing example"
    assert sorted(p.name for p in saved.parent.parent.iterdir()) == ["0a1b"]
    # A large database is not copied into every shadow; the directory is still the shadow's own.
    for n in range(501):
        (saved.parent / f"{n:04}").write_bytes(b"")
    shadows = ShadowRoot(workspace)
    try:
        home = shadows.create(Path("calc/core.py"), "X = 1\n").root / ".hypothesis"
        assert home.is_dir() and not home.is_symlink() and not (home / "examples").exists()
    finally:
        shadows.close()


def test_a_linked_shadow_made_a_copy_in_place_links_nothing_back(tmp_path: Path) -> None:
    workspace = tmp_path / "calc"
    shutil.copytree(FIXTURES / "calc", workspace)
    (workspace / "tests" / "out.json").write_text("left by the user's last run\n")
    (workspace / ".venv").mkdir()
    shadows = ShadowRoot(workspace)
    try:
        shadow = shadows.create(Path("calc/core.py"), "X = 1\n")
        assert shadow.linked == workspace.resolve() and (shadow.root / "tests").is_symlink()
        shadow.materialize()
        assert shadow.linked is None
        links = [p for p in shadow.root.rglob("*") if p.is_symlink()]
        assert links == [shadow.root / ".venv"]  # left out of copies, as a copied shadow leaves it out
        assert (shadow.root / "calc" / "core.py").read_text() == "X = 1\n"
        (shadow.root / "tests" / "out.json").write_text("this run's\n")
        (shadow.root / "tests" / "new.txt").write_text("new\n")
    finally:
        shadows.close()
    assert (workspace / "tests" / "out.json").read_text() == "left by the user's last run\n"
    assert not (workspace / "tests" / "new.txt").exists()


@pytest.mark.parametrize("copy", [False, True], ids=["link", "copy"])
def test_a_shadow_holds_several_files_as_given_bytes_and_absences_included(
    tmp_path: Path, copy: bool
) -> None:
    # What `check` needs to undo a whole change at once: a module back as it was, a data file's bytes, a
    # deleted package's file absent - and no empty directory left where the package was.
    workspace = tmp_path / "calc"
    shutil.copytree(FIXTURES / "calc", workspace)
    (workspace / "calc" / "gone").mkdir()
    (workspace / "calc" / "gone" / "__init__.py").write_text("")
    shadows = ShadowRoot(workspace, copy=copy)
    try:
        shadow = shadows.create(
            Path("calc/core.py"),
            "X = 1\n",
            {
                Path("tests/data/table.bin"): b"\x00\xff",
                Path("calc/__init__.py"): None,
                Path("calc/new/sub/absent.py"): None,
            },
        )
        assert shadow.edited.read_text() == "X = 1\n"
        assert (shadow.root / "tests" / "data" / "table.bin").read_bytes() == b"\x00\xff"
        assert not (shadow.root / "tests" / "data").is_symlink()
        assert (shadow.root / "tests" / "test_calc.py").read_text() == (
            workspace / "tests" / "test_calc.py"
        ).read_text()
        assert not (shadow.root / "calc" / "__init__.py").exists()
        assert (shadow.root / "calc" / "gone" / "__init__.py").exists()
        assert not (shadow.root / "calc" / "new").exists(), "a directory the workspace lacks was made"
    finally:
        shadows.close()
    assert (workspace / "calc" / "__init__.py").exists() and not (workspace / "tests" / "data").exists()


def test_shadow_root_refuses_to_live_inside_the_workspace(tmp_path: Path) -> None:
    try:
        ShadowRoot(tmp_path, parent=tmp_path)
    except ValueError as exc:
        assert "outside the workspace" in str(exc)
    else:  # pragma: no cover - the assertion is the test
        raise AssertionError("a shadow inside the workspace was accepted")


def test_a_workspace_holding_the_temporary_directory_gets_its_shadow_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `lsp-verify check` run in /tmp, or a home directory opened with TMPDIR=~/tmp: the temporary directory
    # lies inside the workspace, and the shadow must not (it would be part of what it mirrors).
    workspace = tmp_path / "ws"
    (workspace / "tmp").mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(workspace / "tmp"))

    shadows = ShadowRoot(workspace)
    try:
        assert workspace.resolve() not in shadows.path.parents
        assert stat.S_IMODE(shadows.path.stat().st_mode) == 0o700
    finally:
        shadows.close()


def test_no_place_outside_the_workspace_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ShadowUnavailable, match="outside the workspace"):
        shadow_parent(tmp_path, parent=tmp_path / "inside")


def test_check_runs_in_a_workspace_that_holds_the_temporary_directory(tmp_path: Path) -> None:
    """Through the command (with and without bubblewrap, as scripts/test.sh runs this file twice): the
    verdict comes from the tests, not from a traceback about where the shadow lives."""
    workspace = tmp_path / "ws"
    (workspace / "calc").mkdir(parents=True)
    (workspace / "tests").mkdir()
    (workspace / "tmp").mkdir()
    (workspace / "pyproject.toml").write_text('[project]\nname = "calc"\nversion = "0"\n')
    (workspace / "calc" / "__init__.py").write_text("")
    (workspace / "calc" / "ops.py").write_text("def add(a: int, b: int) -> int:\n    return a - b\n")
    (workspace / "tests" / "test_ops.py").write_text(
        "from calc.ops import add\n\n\ndef test_add() -> None:\n    assert add(1, 2) == 3\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).parents[1] / "server")
    env["TMPDIR"] = str(workspace / "tmp")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")

    proc = subprocess.run(
        [sys.executable, "-m", "lsp_verify", "check", "calc/ops.py"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "FAIL  calc/ops.py:1 add" in proc.stdout and "test_add failed" in proc.stdout
    assert list((workspace / "tmp").iterdir()) == []


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(root.rglob("*"))
    }


def test_a_copied_shadow_routes_no_write_to_the_workspace(tmp_path: Path) -> None:
    """Without bubblewrap nothing mounts the workspace read-only: every file and directory of the shadow
    must be its own, so that a test appending to any of them, or creating files beside them, leaves the
    user's tree byte-identical."""
    workspace = tmp_path / "calc"
    shutil.copytree(FIXTURES / "calc", workspace)
    (workspace / "data").mkdir()
    (workspace / "data" / "table.csv").write_text("a,b\n")
    os.symlink(workspace / "data" / "table.csv", workspace / "calc" / "linked.csv")
    (workspace / ".git").mkdir()
    (workspace / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    before = snapshot(workspace)
    shadows = ShadowRoot(workspace, copy=True)
    try:
        shadow = shadows.create(Path("calc/core.py"), "X = 1\n")
        assert shadow.edited.read_text() == "X = 1\n"
        assert (shadow.root / "tests" / "test_calc.py").read_text() == (
            workspace / "tests" / "test_calc.py"
        ).read_text()
        assert (shadow.root / "calc" / "linked.csv").read_text() == "a,b\n"
        assert not (shadow.root / ".git").exists()
        for path in shadow.root.rglob("*"):
            assert not path.is_symlink(), f"{path} links back into the workspace"
            if path.is_file():
                with open(path, "a") as out:
                    out.write("pwned")
            else:
                (path / "new.txt").write_text("pwned")
        assert snapshot(workspace) == before
    finally:
        shadows.close()
    assert snapshot(workspace) == before


def test_a_crashed_servers_shadow_roots_are_removed_at_the_next_start(tmp_path: Path) -> None:
    """A server killed with SIGKILL cannot remove its shadow root (candidates, results): the next one made
    in the same place removes it. Roots of live processes, and directories it cannot attribute, stay."""
    workspace, parent = tmp_path / "ws", tmp_path / "tmp"
    workspace.mkdir()
    parent.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = parent / f"lsp-verify-{dead.pid}-abc123"
    (stale / "s0").mkdir(parents=True)
    (stale / "s0" / "candidate.py").write_text("secret = 1\n")
    live = parent / f"lsp-verify-{os.getpid()}-def456"
    live.mkdir()
    unknown = parent / "lsp-verify-12345678"  # an older root without an owner: all digits, no "-"
    unknown.mkdir()
    shadows = ShadowRoot(workspace, parent=parent)
    try:
        assert not stale.exists()
        assert live.exists() and unknown.exists()
        assert shadows.path.name.startswith(f"lsp-verify-{os.getpid()}-")
    finally:
        shadows.close()


def test_the_candidate_is_written_in_the_files_declared_encoding(tmp_path: Path) -> None:
    """A latin-1 module: Python must read back from the shadow exactly the candidate's text."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    text = '# -*- coding: latin-1 -*-\nNAME = "café"\n\n\ndef name() -> str:\n    return NAME\n'
    (workspace / "mod.py").write_bytes(text.encode("latin-1"))
    root = ShadowRoot(workspace)
    try:
        shadow = root.create(Path("mod.py"), text)
        probe = "import mod, sys; sys.stdout.write(ascii(mod.name()))"
        proc = subprocess.run(
            [sys.executable, "-B", "-c", probe], cwd=shadow.root, capture_output=True, text=True, timeout=60
        )
        assert proc.stdout == ascii("café"), proc.stderr
        assert shadow.edited.read_bytes() == text.encode("latin-1")
    finally:
        root.close()


def test_a_copied_shadow_copies_a_files_stated_size_and_its_executable_bit(tmp_path: Path) -> None:
    # A hostile repository's `leak -> /proc/self/pagemap` (size 0, endless to read) filled the disk with
    # each copied shadow; a script the tests run (`scripts/version.sh`) lost its executable bit.
    workspace = tmp_path / "calc"
    shutil.copytree(FIXTURES / "calc", workspace)
    (workspace / "leak").symlink_to("/proc/self/pagemap")
    (workspace / "version.sh").write_text("#!/bin/sh\necho 1\n")
    (workspace / "version.sh").chmod(0o755)
    shadows = ShadowRoot(workspace, copy=True)
    try:
        shadow = shadows.create(Path("calc/core.py"), "X = 1\n")
        assert (shadow.root / "leak").stat().st_size == 0
        assert stat.S_IMODE((shadow.root / "version.sh").stat().st_mode) == 0o700
        assert stat.S_IMODE((shadow.root / "calc" / "__init__.py").stat().st_mode) == 0o600
        assert (shadow.root / "version.sh").read_text() == "#!/bin/sh\necho 1\n"
    finally:
        shadows.close()
