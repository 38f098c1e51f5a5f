"""``lsp-verify fix --apply`` keeps the user's file whole: the same inode (owner, group, mode, hard
links), the same encoding (UTF-8 BOM, a PEP 263 declaration) and the same line endings; every byte outside
the function is the byte that was read. BOM and latin-1 files are also verified for real (mypy and pytest in
the shadow workspace, with a scripted engine instead of the model) and checked by ``lsp-verify check``.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lsp_verify.config import Settings
from lsp_verify.fix import FixOptions, run_fix
from lsp_verify.pipeline import Pipeline
from lsp_verify.report import RunReport
from test_pipeline import ScriptedEngine

SERVER = Path(__file__).resolve().parents[1] / "server"

OPS = '''\
"""Arithmetic for the apply tests."""

NAME = "café"


def add(a: int, b: int) -> int:
    """Return the sum of ``a`` and ``b``.

    >>> add(2, 3)
    5
    """
    ...
'''
BODY = "    total = a + b\n    return total"
TESTS = """\
from mathx.ops import add


def test_add() -> None:
    assert add(2, 3) == 5
"""
LATIN1_HEADER = "# -*- coding: latin-1 -*-\n"


def make_project(root: Path, ops: bytes) -> Path:
    (root / "mathx").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "mathx"\nversion = "0"\n', encoding="utf-8")
    (root / "mathx" / "__init__.py").write_text("", encoding="utf-8")
    (root / "mathx" / "ops.py").write_bytes(ops)
    (root / "tests" / "test_ops.py").write_text(TESTS, encoding="utf-8")
    return root


def fix(project: Path, *, body: str = BODY, apply: bool = True) -> RunReport:
    """``lsp-verify fix mathx/ops.py [--apply]`` in process: the real pipeline, verifier and writer."""

    def settings_for(root: Path) -> Settings:
        return dataclasses.replace(Settings(), trusted=True, k=1, test_timeout_s=60.0)

    def pipeline(settings: Settings) -> Pipeline:
        return Pipeline(settings, engine_factory=lambda _: ScriptedEngine([[body]], indent=""))  # type: ignore[arg-type,return-value]

    return run_fix(
        FixOptions(specs=("mathx/ops.py",), apply=apply),
        settings_for=settings_for,
        cwd=project,
        pipeline_factory=pipeline,  # type: ignore[arg-type]
    )


def applied(report: RunReport) -> None:
    assert report.error is None, report.error
    (outcome,) = report.functions
    assert (outcome.status, outcome.evidence, outcome.applied) == ("pass", "tests", True), outcome


@pytest.mark.parametrize(
    ("name", "original"),
    [
        ("lf", OPS.encode()),
        ("crlf", OPS.replace("\n", "\r\n").encode()),
        ("bom", b"\xef\xbb\xbf" + OPS.encode()),
        ("bom+crlf", b"\xef\xbb\xbf" + OPS.replace("\n", "\r\n").encode()),
        ("latin-1", (LATIN1_HEADER + OPS).encode("latin-1")),
    ],
)
def test_verified_and_applied_byte_exact_outside_the_function(
    tmp_path: Path, name: str, original: bytes
) -> None:
    project = make_project(tmp_path / "proj", original)
    ops = project / "mathx" / "ops.py"

    report = fix(project)

    applied(report)
    newline = b"\r\n" if b"\r\n" in original else b"\n"
    body = BODY.encode().replace(b"\n", newline)
    assert ops.read_bytes() == original.replace(b"    ..." + newline, body + newline)


def test_the_write_keeps_the_inode_its_hard_links_and_its_mode(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", OPS.encode())
    ops = project / "mathx" / "ops.py"
    other_name = tmp_path / "ops-hard-link.py"
    os.link(ops, other_name)
    ops.chmod(0o640)
    inode = ops.stat().st_ino

    applied(fix(project))

    assert ops.stat().st_ino == inode
    assert other_name.read_bytes() == ops.read_bytes() == OPS.replace("    ...", BODY).encode()
    assert ops.stat().st_nlink == 2
    assert stat.S_IMODE(ops.stat().st_mode) == 0o640
    assert sorted(p.name for p in ops.parent.iterdir()) == ["__init__.py", "ops.py"], "nothing left beside it"


def test_the_write_keeps_extended_attributes(tmp_path: Path) -> None:
    """ACLs live in extended attributes (system.posix_acl_access); a user attribute stands in for them."""
    project = make_project(tmp_path / "proj", OPS.encode())
    ops = project / "mathx" / "ops.py"
    try:
        os.setxattr(ops, "user.lsp-verify-test", b"kept")
    except OSError as exc:
        pytest.skip(f"this file system has no user extended attributes: {exc.strerror}")

    applied(fix(project))

    assert os.getxattr(ops, "user.lsp-verify-test") == b"kept"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_the_write_keeps_owner_and_group(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", OPS.encode())
    ops = project / "mathx" / "ops.py"
    os.chown(ops, 4321, 4321)

    applied(fix(project))

    assert (ops.stat().st_uid, ops.stat().st_gid) == (4321, 4321)
    assert ops.read_bytes() == OPS.replace("    ...", BODY).encode()


def test_an_edit_the_declared_encoding_cannot_hold_is_refused(tmp_path: Path) -> None:
    original = (LATIN1_HEADER + OPS).encode("latin-1")
    project = make_project(tmp_path / "proj", original)

    report = fix(project, body='    return a + b if "€" else 0')

    (outcome,) = report.functions
    assert outcome.status == "error" and outcome.applied is False
    assert "encoding (iso-8859-1) cannot hold" in outcome.message
    assert (project / "mathx" / "ops.py").read_bytes() == original


def test_a_write_that_fails_midway_puts_the_old_content_back(tmp_path: Path) -> None:
    """A file-size limit between the old and the new size makes the in-place write fail after the backup
    (the old size) was taken: the file must hold its old bytes again, and no backup is left behind."""
    path = tmp_path / "ops.py"
    path.write_bytes(OPS.encode())
    backups = tmp_path / "tmp"
    backups.mkdir()
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        from lsp_verify.sourcefile import read_source, write_if_unchanged
        source = read_source(Path({str(path)!r}))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({len(OPS) + 10}, {len(OPS) + 10}))
        try:
            write_if_unchanged(source, source.text + "#" * 100)
        except OSError as exc:
            print("refused:", exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SERVER), "TMPDIR": str(backups)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("refused:"), proc.stdout
    assert path.read_bytes() == OPS.encode()
    assert list(backups.iterdir()) == []


def check(project: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env: dict[str, Any] = {**os.environ, "PYTHONPATH": str(SERVER), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "lsp_verify", "check", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: b"\xef\xbb\xbf" + text.encode(),
        lambda text: (LATIN1_HEADER + text).encode("latin-1"),
    ],
    ids=["bom", "latin-1"],
)
def test_check_reads_bom_and_declared_encodings(tmp_path: Path, encode: Callable[[str], bytes]) -> None:
    project = make_project(tmp_path / "proj", encode(OPS.replace("    ...", BODY)))

    proc = check(project, tmp_path, "mathx/ops.py")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "add" in proc.stdout and "pass" in proc.stdout
