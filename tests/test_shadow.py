"""Shadow workspaces: private, cheap to build, only the edited file differs, the user's tree untouched."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from lsp_verify.verify.shadow import ShadowRoot

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


def test_shadow_root_refuses_to_live_inside_the_workspace(tmp_path: Path) -> None:
    try:
        ShadowRoot(tmp_path, parent=tmp_path)
    except ValueError as exc:
        assert "outside the workspace" in str(exc)
    else:  # pragma: no cover - the assertion is the test
        raise AssertionError("a shadow inside the workspace was accepted")
