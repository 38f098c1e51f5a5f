"""A monorepo opened at its top in the editor: each member's tests run in its own project, as pytest runs
them there (its ``[tool.pytest.ini_options]``, its ``tests/``), through a real client.

Both members have ``tests/test_helpers.py`` and import their package through ``pythonpath = ["src"]``: run
from the top with the top's (empty) configuration, pytest finds neither package and refuses the second file
of the same name. Real: the server process, the verifier, git. Scripted: the engine (onsave_server.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytest_lsp

from .conftest import EditorClient, config, line_of, start
from .test_lsp_onsave import checked, opened, save

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

HERE = Path(__file__).resolve().parent
ONSAVE_SERVER = [sys.executable, str(HERE / "onsave_server.py")]

MEMBER = '[project]\nname = "{name}"\nversion = "0"\n\n[tool.pytest.ini_options]\npythonpath = ["src"]\n'
CORE = """\
def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))
"""
CORE_TESTS = """\
from alpha.core import clamp


def test_clamp() -> None:
    assert clamp(-1, 0, 3) == 0
"""
UTIL = """\
def percent(value: int) -> int:
    return min(max(value, 0), 100)
"""
UTIL_TESTS = """\
from beta.util import percent


def test_percent() -> None:
    assert percent(150) == 100
"""


@pytest.fixture(scope="module")
def mono(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gitrepo

    files = {
        "pyproject.toml": '[project]\nname = "mono"\n\n[tool.uv.workspace]\nmembers = ["packages/*"]\n',
        "packages/alpha/pyproject.toml": MEMBER.format(name="alpha"),
        "packages/alpha/src/alpha/__init__.py": "",
        "packages/alpha/src/alpha/core.py": CORE,
        "packages/alpha/tests/test_helpers.py": CORE_TESTS,
        "packages/beta/pyproject.toml": MEMBER.format(name="beta"),
        "packages/beta/src/beta/__init__.py": "",
        "packages/beta/src/beta/util.py": UTIL,
        "packages/beta/tests/test_helpers.py": UTIL_TESTS,
    }
    return gitrepo.make_repo(tmp_path_factory.mktemp("monorepo") / "mono", files)


@pytest_lsp.fixture(scope="module", config=config(ONSAVE_SERVER))
async def client(lsp_client: EditorClient, mono: Path):
    await start(lsp_client, mono, trusted=True, k=2, repairRounds=0, testTimeoutS=4)
    yield
    await lsp_client.shutdown_session()


@pytest.mark.parametrize(
    ("member", "module", "text", "broken", "message"),
    [
        ("alpha", "core", CORE, ("max(low, min(value, high))", "min(value, high)"), "expected 0, got -1"),
        ("beta", "util", UTIL, ("min(max(value, 0), 100)", "max(value, 0)"), "expected 100, got 150"),
    ],
)
async def test_a_members_broken_test_is_found_with_that_members_configuration(
    client: EditorClient,
    mono: Path,
    member: str,
    module: str,
    text: str,
    broken: tuple[str, str],
    message: str,
) -> None:
    project = mono / "packages" / member
    path = project / "src" / member / f"{module}.py"
    uri = opened(client, path)
    mark = len(client.log_messages)
    version = save(client, uri, path, text.replace(*broken))

    (diagnostic,) = await checked(client, uri, version, mark)

    test = "test_clamp" if member == "alpha" else "test_percent"
    assert diagnostic.message == f"{test} fails: {message}"
    (related,) = diagnostic.related_information or []
    assert related.location.uri == (project / "tests" / "test_helpers.py").as_uri()
    tests = CORE_TESTS if member == "alpha" else UTIL_TESTS
    assert related.location.range.start.line == line_of(tests, f"def {test}")
    version = save(client, uri, path, text)
    assert await checked(client, uri, version, mark) == []
