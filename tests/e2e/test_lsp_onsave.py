"""Diagnostics on save and their verified quick fix, through a real client.

Real: the server process, the pipeline, the verifier (mypy, pytest in the sandbox), git. Scripted: the engine
(every candidate is ``return x * 2``, see onsave_server.py).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types

from lsp_verify.config import cache_home

from .conftest import EditorClient, code_actions, config, line_of, start, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

HERE = Path(__file__).resolve().parent
ONSAVE_SERVER = [sys.executable, str(HERE / "onsave_server.py")]

MODULE = '''\
def suffix(n: int) -> str:
    """The English ordinal suffix of n."""
    if n % 10 == 1 and n % 100 != 11:
        return "st"
    return "th"


def double(x: int) -> int:
    return x * 2
'''
TESTS = """\
from ordinal import double, suffix


def test_suffix() -> None:
    assert suffix(1) == "st"
    assert suffix(11) == "th"


def test_double() -> None:
    assert double(21) == 42
"""


def make_project(root: Path, *, git: bool) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "ordinal"\nversion = "0"\n', encoding="utf-8")
    (root / "ordinal.py").write_text(MODULE, encoding="utf-8")
    (root / "tests" / "test_ordinal.py").write_text(TESTS, encoding="utf-8")
    if git:
        for command in (
            ["git", "init", "-q", "."],
            ["git", "add", "-A"],
            ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "start"],
        ):
            subprocess.run(command, cwd=root, check=True, capture_output=True)
    return root


def save(client: EditorClient, uri: str, path: Path, text: str) -> int:
    """Type ``text`` (a full-document change), write it to disk and send didSave, as an editor does."""
    version = client.replace_text(uri, text)
    path.write_text(text, encoding="utf-8")
    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    return version


def checks_logged(client: EditorClient, name: str, since: int = 0) -> list[str]:
    return [m.message for m in client.log_messages[since:] if f"checked {name} " in m.message]


async def checked(client: EditorClient, uri: str, version: int, since: int) -> list[types.Diagnostic]:
    """The diagnostics published by the check of ``version`` (the server logs each check after publishing),
    looking only at log messages from index ``since`` on."""
    done = f"(version {version}) on save"
    name = Path(uri).name
    assert await wait_until(lambda: any(done in m for m in checks_logged(client, name, since)), 120), (
        checks_logged(client, name)
    )
    return list(client.diagnostics.get(uri, []))


def opened(client: EditorClient, path: Path) -> str:
    uri = path.as_uri()
    return uri if uri in client.documents else client.open(path)


async def fix_actions(client: EditorClient, uri: str, diagnostic: types.Diagnostic) -> list[types.CodeAction]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic], only=[types.CodeActionKind.QuickFix]),
        )
    )
    return [a for a in result or [] if isinstance(a, types.CodeAction)]


def run_tests_in(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- a trusted git workspace -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("onsave") / "ordinal", git=True)


@pytest_lsp.fixture(scope="module", config=config(ONSAVE_SERVER))
async def client(lsp_client: EditorClient, repo: Path):
    await start(lsp_client, repo, trusted=True, k=2, repairRounds=0, testTimeoutS=4)
    yield
    await lsp_client.shutdown_session()


async def test_broken_test_on_save_then_verified_quick_fix_then_cleared(
    client: EditorClient, repo: Path
) -> None:
    path = repo / "ordinal.py"
    uri = opened(client, path)
    mark = len(client.log_messages)
    version = save(client, uri, path, MODULE.replace("x * 2", "x * 3"))

    (diagnostic,) = await checked(client, uri, version, mark)

    line = line_of(MODULE, "def double")
    assert diagnostic.message == "test_double fails: expected 42, got 63"
    assert diagnostic.source == "lsp-verify" and diagnostic.severity == types.DiagnosticSeverity.Error
    assert diagnostic.range.start == types.Position(line, 4) and diagnostic.range.end == types.Position(
        line, 10
    )
    (related,) = diagnostic.related_information or []
    assert related.location.uri.endswith("tests/test_ordinal.py")
    assert related.location.range.start.line == line_of(TESTS, "def test_double")

    (action,) = await fix_actions(client, uri, diagnostic)
    assert action.title == "Fix `double` (verified)" and action.kind == types.CodeActionKind.QuickFix
    resolved = await client.code_action_resolve_async(action)
    assert resolved.edit is not None and client.apply(resolved.edit)
    fixed = client.text(uri)
    assert fixed == MODULE  # the verified body, exactly: only `double` changed

    version = save(client, uri, path, fixed)
    assert await checked(client, uri, version, mark) == []  # cleared
    assert run_tests_in(repo).returncode == 0


async def test_quick_fix_prompt_shows_the_failing_test(client: EditorClient, repo: Path) -> None:
    path = repo / "ordinal.py"
    uri = opened(client, path)
    mark = len(client.log_messages)
    version = save(client, uri, path, MODULE.replace("x * 2", "x * 3"))
    (diagnostic,) = await checked(client, uri, version, mark)
    (action,) = await fix_actions(client, uri, diagnostic)
    args = action.data  # VS Code resolves the edit lazily
    feedback = args["feedback"]
    assert feedback.startswith("test_double fails: expected 42, got 63")
    assert "def test_double() -> None:\n    assert double(21) == 42" in feedback
    version = save(client, uri, path, MODULE)
    assert await checked(client, uri, version, mark) == []


async def test_saves_in_quick_succession_check_the_last_version_once(
    client: EditorClient, repo: Path
) -> None:
    path = repo / "ordinal.py"
    uri = opened(client, path)
    before = len(checks_logged(client, "ordinal.py"))
    save(client, uri, path, MODULE.replace("x * 2", "x * 3"))
    save(client, uri, path, MODULE.replace("x * 2", "x * 4"))
    mark = len(client.log_messages)
    version = save(client, uri, path, MODULE.replace('return "st"', 'return "th"'))

    (diagnostic,) = await checked(client, uri, version, mark)

    assert diagnostic.message == "test_suffix fails: expected 'st', got 'th'"
    assert diagnostic.range.start.line == line_of(MODULE, "def suffix")
    assert len(checks_logged(client, "ordinal.py")) == before + 1
    version = save(client, uri, path, MODULE)
    assert await checked(client, uri, version, mark) == []


async def test_a_file_that_does_not_parse_is_one_diagnostic(client: EditorClient, repo: Path) -> None:
    path = repo / "ordinal.py"
    uri = opened(client, path)
    mark = len(client.log_messages)
    version = save(client, uri, path, MODULE.replace("return x * 2", "return x *"))

    (diagnostic,) = await checked(client, uri, version, mark)

    assert diagnostic.message.startswith("does not parse: line 9")
    assert diagnostic.range.start.line == 8
    version = save(client, uri, path, MODULE)
    assert await checked(client, uri, version, mark) == []


async def test_a_change_that_stops_the_tests_from_being_collected_is_one_diagnostic(
    client: EditorClient, repo: Path
) -> None:
    # No function changed: nothing was said before, while every test of the module had stopped running.
    path = repo / "ordinal.py"
    uri = opened(client, path)
    mark = len(client.log_messages)
    version = save(client, uri, path, "import not_a_module_anywhere\n" + MODULE)

    (diagnostic,) = await checked(client, uri, version, mark)

    assert diagnostic.message.startswith("the tests cannot be collected with this change ("), diagnostic
    assert "No module named 'not_a_module_anywhere'" in diagnostic.message
    assert diagnostic.range.start.line == 0 and diagnostic.code == "collection"
    version = save(client, uri, path, MODULE)
    assert await checked(client, uri, version, mark) == []


async def test_a_function_renamed_from_under_its_tests_is_an_error_at_its_name(
    client: EditorClient, repo: Path
) -> None:
    # The tests still import `double`: they cannot be collected. It was a warning ("could not check"), where
    # `lsp-verify check` fails the function.
    path = repo / "ordinal.py"
    uri = opened(client, path)
    mark = len(client.log_messages)
    renamed = MODULE.replace("def double(", "def twice(")
    version = save(client, uri, path, renamed)

    found = await checked(client, uri, version, mark)

    by_code = {d.code: d for d in found if d.range.start.line == line_of(renamed, "def twice")}
    function = by_code.get("collection")
    assert function is not None, "\n".join(f"{d.severity} {d.code} {d.message}" for d in found)
    assert function.severity == types.DiagnosticSeverity.Error
    assert function.message.startswith("twice: with this change, the tests "), function.message
    assert "cannot be collected" in function.message and "cannot import name 'double'" in function.message
    assert "Fix the test files" not in function.message  # the change is what to fix
    assert any(d.range.start.line == 0 and d.code == "collection" for d in found), found
    version = save(client, uri, path, MODULE)
    assert await checked(client, uri, version, mark) == []


async def test_a_signature_that_breaks_a_caller_no_test_runs_is_a_type_error_at_the_function(
    client: EditorClient, repo: Path
) -> None:
    # Every test passes (21 * 2 == 42 as a float too) and ordinal.py alone type-checks: only the module that
    # imports it breaks. Before, the save showed nothing.
    (repo / "billing.py").write_text(BILLING, encoding="utf-8")
    for command in (
        ["git", "add", "billing.py"],
        ["git", "-c", "user.email=t@e.com", "-c", "user.name=t", "commit", "-qm", "billing"],
    ):
        subprocess.run(command, cwd=repo, check=True, capture_output=True)
    path = repo / "ordinal.py"
    uri = opened(client, path)
    mark = len(client.log_messages)
    floats = MODULE.replace("def double(x: int) -> int:", "def double(x: float) -> float:")
    version = save(client, uri, path, floats)

    (diagnostic,) = await checked(client, uri, version, mark)

    assert diagnostic.code == "type-error" and diagnostic.severity == types.DiagnosticSeverity.Error
    assert diagnostic.range.start.line == line_of(floats, "def double")
    assert diagnostic.message == (
        'double: mypy: billing.py: line 5: Incompatible return value type (got "float", expected "int")  '
        "[return-value]: not reported with double as the base has it (found by type-checking billing.py, "
        "which imports the change)"
    )
    assert diagnostic.data is None  # no quick fix: a new body would not mend the caller
    version = save(client, uri, path, MODULE)
    assert await checked(client, uri, version, mark) == []


BILLING = """\
from ordinal import double


def invoice(amount: int) -> int:
    return double(amount)
"""


async def test_open_with_uncommitted_hanging_change_reports_a_timeout(
    client: EditorClient, repo: Path
) -> None:
    path = repo / "ordinal.py"
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=path.as_uri()))
    )
    path.write_text(MODULE.replace("return x * 2", "while True:\n        pass"), encoding="utf-8")
    mark = len(client.log_messages)
    uri = client.open(path)  # not saved in the editor: the uncommitted change on disk is checked on open

    (diagnostic,) = await checked(client, uri, 1, mark)

    assert diagnostic.message.startswith("test_double timed out: still running after 4 s")
    assert diagnostic.range.start.line == line_of(MODULE, "def double")
    path.write_text(MODULE, encoding="utf-8")


# -- an untrusted workspace outside git --------------------------------------------------------------------
@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("onsave-plain") / "ordinal", git=False)


@pytest_lsp.fixture(scope="module", config=config(ONSAVE_SERVER))
async def untrusted(lsp_client: EditorClient, plain: Path):
    await start(lsp_client, plain, k=2, repairRounds=0)
    yield
    await lsp_client.shutdown_session()


async def test_untrusted_outside_git_types_only_against_the_opened_text(
    untrusted: EditorClient, plain: Path
) -> None:
    path = plain / "ordinal.py"
    uri = opened(untrusted, path)
    mark = len(untrusted.log_messages)
    # A broken test (not run: the workspace is not trusted) and a new type error, in two functions.
    broken = MODULE.replace('return "st"', 'return "th"').replace("return x * 2", "return str(x)")
    version = save(untrusted, uri, path, broken)

    (diagnostic,) = await checked(untrusted, uri, version, mark)

    assert diagnostic.message.startswith('mypy: Incompatible return value type (got "str", expected "int")')
    assert diagnostic.range.start.line == line_of(broken, "return str(x)")
    (action,) = await fix_actions(untrusted, uri, diagnostic)
    assert action.title == "Fix `double` (types only — workspace not trusted)"
    version = save(untrusted, uri, path, MODULE)
    assert await checked(untrusted, uri, version, mark) == []


async def test_a_file_outside_the_trusted_folder_runs_none_of_its_projects_code(
    client: EditorClient, tmp_path: Path
) -> None:
    # The editor trusts its workspace folder, not another clone whose file the user opens beside it: that
    # project's conftest.py ran (opening the changed file checked it with its tests; resting the cursor in
    # a function prepared the request's baseline), and its code action said "verified".
    foreign = make_project(tmp_path / "elsewhere", git=True)
    (foreign / "tests" / "conftest.py").write_text("raise RuntimeError('foreign conftest ran')\n", "utf-8")
    path = foreign / "ordinal.py"
    path.write_text(MODULE.replace('return "st"', 'return "th"'), encoding="utf-8")
    mark = len(client.log_messages)

    uri = client.open(path)
    diagnostics = await checked(client, uri, 1, mark)
    (action,) = await code_actions(client, uri, line_of(MODULE, "return x * 2"))
    await asyncio.sleep(1.0)  # the cursor's preparation, had it run the tests

    shown = [d.message for d in diagnostics] + [m.message for m in client.log_messages[mark:]]
    assert not [m for m in shown if "foreign conftest ran" in m], shown
    assert action.title == "Fix `double` (types only — workspace not trusted)", action.title

    # A folder the user adds to the workspace is covered by its trust, as the editor's is.
    folder = types.WorkspaceFolder(uri=foreign.as_uri(), name=foreign.name)
    changed = types.WorkspaceFoldersChangeEvent(added=[folder], removed=[])
    client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(event=changed))
    (action,) = await code_actions(client, uri, line_of(MODULE, "return x * 2"))
    assert action.title == "Fix `double` (verified)", action.title
    changed = types.WorkspaceFoldersChangeEvent(added=[], removed=[folder])
    client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(event=changed))


# -- an untrusted hostile git workspace -------------------------------------------------------------------
PLUGIN_MARK = f"lsp-verify-test-plugin-ran-{os.getpid()}"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose .git says it is a partial clone (HEAD's ordinal.py is "on the remote", fetched
    by a command of its own), with a mypy plugin, and a new file whose function's stub cannot be spliced
    in."""
    root = make_project(tmp_path_factory.mktemp("onsave-hostile") / "ordinal", git=True)
    marks = root.parent / "marks"
    marks.mkdir()
    git = ["git", "-C", str(root)]
    blob = subprocess.run([*git, "rev-parse", "HEAD:ordinal.py"], capture_output=True, text=True, check=True)
    (root / ".git" / "objects" / blob.stdout[:2] / blob.stdout.strip()[2:]).unlink()
    for key, value in (
        ("core.repositoryformatversion", "1"),
        ("extensions.partialClone", "origin"),
        ("remote.origin.url", str(root.parent / "nowhere")),
        ("remote.origin.promisor", "true"),
        ("remote.origin.uploadpack", f"sh -c 'touch {marks / 'git-ran'}; exit 1'"),
        ("protocol.file.allow", "always"),
    ):
        subprocess.run([*git, "config", key, value], check=True)
    (root / "mypy.ini").write_text("[mypy]\nplugins = evil_plugin.py\n", encoding="utf-8")
    # Under bubblewrap mypy may write only to its cache: the plugin leaves its mark there.
    (root / "evil_plugin.py").write_text(
        "import pathlib\nfrom mypy.plugin import Plugin\n\n\nclass Evil(Plugin):\n"
        "    def __init__(self, options):\n        super().__init__(options)\n"
        f"        pathlib.Path(options.cache_dir, {PLUGIN_MARK!r}).write_text('ran')\n\n\n"
        "def plugin(version):\n    return Evil\n",
        encoding="utf-8",
    )
    # A new file whose function's stub baseline did not parse (`def g() -> int: "doc";` then an indented
    # `raise`): the check fell back to a run of mypy with the project's configuration, plugin included.
    # Such a stub parses now; every mypy run of an untrusted workspace keeps to our configuration anyway
    # (tests/test_untrusted.py tests each fallback).
    (root / "extra.py").write_text('def g() -> int: "doc"; return 1\n', encoding="utf-8")
    return root


@pytest_lsp.fixture(scope="module", config=config(ONSAVE_SERVER))
async def hostile_client(lsp_client: EditorClient, hostile: Path):
    await start(lsp_client, hostile, k=2, repairRounds=0)
    yield
    await lsp_client.shutdown_session()


async def test_opening_a_file_of_an_untrusted_repository_runs_none_of_its_commands(
    hostile_client: EditorClient, hostile: Path
) -> None:
    for name in ("ordinal.py", "extra.py"):
        mark = len(hostile_client.log_messages)
        uri = hostile_client.open(hostile / name)
        await checked(hostile_client, uri, 1, mark)

    assert sorted(p.name for p in (hostile.parent / "marks").iterdir()) == []
    assert list(cache_home().glob(f"mypy/*/{PLUGIN_MARK}")) == []


# -- what a check's findings look like as diagnostics (no server) -----------------------------------------
async def test_many_broken_tests_are_one_diagnostic_listing_each(tmp_path: Path) -> None:
    from pygls.workspace import TextDocument

    from lsp_verify.check import FunctionCheck
    from lsp_verify.lsp.diagnostics import to_diagnostics
    from lsp_verify.report import FunctionReport
    from lsp_verify.syntax.targets import function_targets
    from lsp_verify.verify.types import Candidate, CandidateResult, Evidence, TestOutcome

    root = make_project(tmp_path / "ordinal", git=False)
    path = root / "ordinal.py"
    text = MODULE.replace('return "st"', 'return "th"')
    (target,) = [t for t in function_targets(text, path) if t.name == "suffix"]
    failing = (
        TestOutcome(
            "tests/test_ordinal.py::test_suffix",
            "failed",
            "E       AssertionError: assert 'th' == 'st'\nE         \nE         - st\nE         + th",
        ),
        TestOutcome("tests/test_ordinal.py::test_double", "timeout", "still running after 4 s (killed)"),
    )
    candidate = Candidate(index=0, body=target.current_body, new_text=text, key="")
    result = CandidateResult(
        candidate=candidate, passed=False, evidence=Evidence.NONE, stages=(), outcomes=failing
    )
    report = FunctionReport("ordinal.py", "suffix", 1, "fail", "none", "tests failed")
    doc = TextDocument(path.as_uri(), text, 3)

    (diagnostic,) = to_diagnostics([FunctionCheck(report, target, result, failing)], doc.uri, text, root, doc)

    assert diagnostic.message == "test_suffix fails: expected 'st', got 'th' (and 1 more failing test)"
    assert [(r.location.range.start.line, r.message) for r in diagnostic.related_information or []] == [
        (line_of(TESTS, "def test_suffix"), "test_suffix fails: expected 'st', got 'th'"),
        (line_of(TESTS, "def test_double"), "test_double timed out: still running after 4 s (killed)"),
    ]


async def test_typing_right_after_a_save_cancels_its_check(client: EditorClient, repo: Path) -> None:
    path = repo / "ordinal.py"
    uri = opened(client, path)
    mark = len(client.log_messages)
    broken = save(client, uri, path, MODULE.replace("x * 2", "x * 3"))
    typed = client.replace_text(uri, MODULE.replace("x * 2", "x * 3") + "\n# typing\n")  # not saved

    # Neither the saved text (gone from the buffer) nor the unsaved one is checked; a check takes a few
    # seconds here, so one that ran would have reported by then.
    def reported() -> list[str]:
        return [m for m in checks_logged(client, "ordinal.py", mark) if f"(version {typed})" in m]

    assert not await wait_until(lambda: bool(reported()), 15), [m.message for m in client.log_messages[mark:]]

    version = save(client, uri, path, MODULE.replace("x * 2", "2 * x"))  # passes, and differs from HEAD
    assert await checked(client, uri, version, mark) == []
    logged = checks_logged(client, "ordinal.py", mark)
    assert not [m for m in logged if f"(version {broken})" in m or f"(version {typed})" in m], logged
    version = save(client, uri, path, MODULE)


# -- both turned off ---------------------------------------------------------------------------------------
@pytest_lsp.fixture(scope="module", config=config(ONSAVE_SERVER))
async def switched_off(lsp_client: EditorClient, repo: Path):
    await start(lsp_client, repo, trusted=True, k=2, checkOnSave=False, inlineCompletion=False)
    yield
    await lsp_client.shutdown_session()


async def test_check_on_save_and_inline_completion_can_be_turned_off(
    switched_off: EditorClient, repo: Path
) -> None:
    path = repo / "ordinal.py"
    uri = opened(switched_off, path)
    save(switched_off, uri, path, MODULE.replace("x * 2", "x * 3"))
    switched_off.replace_text(uri, MODULE + '\n\ndef triple(x: int) -> int:\n    """Three x."""\n    ...\n')

    answer = await switched_off.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=len(MODULE.splitlines()) + 4, character=4),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )

    assert answer is None
    assert not await wait_until(lambda: bool(checks_logged(switched_off, "ordinal.py")), 10)
    assert uri not in switched_off.diagnostics and switched_off.progress_reports == {}
    path.write_text(MODULE, encoding="utf-8")
