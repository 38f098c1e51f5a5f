"""Diagnostics on save for a function no test names, judged by the tests that reach it through another one
(verify/callers.py: the traced run of the suite, made in the background), through a real client.

Real: the server process, the pipeline, the verifier (mypy, pytest in the sandbox), git. Scripted: the engine
(see onsave_server.py); nothing here generates.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types

import gitrepo

from .conftest import EditorClient, config, line_of, start
from .test_lsp_onsave import checked, opened, save

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

HERE = Path(__file__).resolve().parent
ONSAVE_SERVER = [sys.executable, str(HERE / "onsave_server.py")]

DIGITS = """\
def last_digit(n: int) -> int:
    return n % 10
"""
ORDINAL = '''\
from digits import last_digit


def suffix(n: int) -> str:
    """The English ordinal suffix of n."""
    if last_digit(n) == 1 and n % 100 != 11:
        return "st"
    return "th"
'''
TESTS = """\
from ordinal import suffix


def test_suffix() -> None:
    assert suffix(21) == "st"
    assert suffix(11) == "th"
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``last_digit`` has no test of its own and no ``test_digits.py``: only ``test_suffix`` runs it."""
    return gitrepo.make_repo(
        tmp_path_factory.mktemp("reach") / "ordinal",
        {
            "pyproject.toml": '[project]\nname = "ordinal"\nversion = "0"\n',
            "digits.py": DIGITS,
            "ordinal.py": ORDINAL,
            "tests/test_ordinal.py": TESTS,
        },
    )


@pytest_lsp.fixture(scope="module", config=config(ONSAVE_SERVER))
async def client(lsp_client: EditorClient, repo: Path):
    await start(lsp_client, repo, trusted=True, k=2, repairRounds=0, testTimeoutS=10)
    yield
    await lsp_client.shutdown_session()


async def test_a_broken_helper_is_an_error_once_the_suite_is_traced(client: EditorClient, repo: Path) -> None:
    # Before: "types only (no nearby tests)" on every save - no diagnostic for a change the suite fails. The
    # first save starts the traced run; a save after it is done is judged by test_suffix.
    path = repo / "digits.py"
    uri = opened(client, path)
    broken = DIGITS.replace("n % 10", "n % 100")
    found: list[types.Diagnostic] = []
    for attempt in range(20):
        mark = len(client.log_messages)
        version = save(client, uri, path, broken + "\n" * (attempt % 2))  # a change each time
        found = await checked(client, uri, version, mark)
        if any("test_suffix" in d.message for d in found):
            break
        await asyncio.sleep(1)
    (diagnostic,) = [d for d in found if "test_suffix" in d.message]
    assert diagnostic.severity == types.DiagnosticSeverity.Error, diagnostic
    assert diagnostic.range.start.line == line_of(DIGITS, "def last_digit"), diagnostic
    mark = len(client.log_messages)
    version = save(client, uri, path, DIGITS)
    assert await checked(client, uri, version, mark) == []
