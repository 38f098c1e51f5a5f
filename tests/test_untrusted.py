"""An untrusted workspace runs nothing of the repository and loosens nothing: each test is one attack.

Every hostile repository is built in tmp_path. An attack that works leaves a marker file (its payload writes
it) or a file where the repository said; each test asserts that neither exists, that the repository is
byte-for-byte unchanged, and that the evidence says what happened. The verifier runs with
``sandbox="none"``: the defence under test is that mypy never reads the repository's configuration, not that
bubblewrap contains what it would do.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types

from e2e.conftest import EditorClient, config, start, wait_until
from lsp_verify import cli
from lsp_verify.cancel import CancelToken
from lsp_verify.config import UNTRUSTED_PROJECT_ALLOWS, UNTRUSTED_PROJECT_IGNORES, Settings, project_settings
from lsp_verify.lsp.options import effective_settings
from lsp_verify.pipeline import describe_evidence
from lsp_verify.verify.cascade import Verifier
from lsp_verify.verify.types import CandidateResult
from test_cascade import candidate, snapshot, target_for

MODULE = "from typing import Any\n\n\ndef double(x: int) -> int:\n    raise NotImplementedError\n"
STUB = "    raise NotImplementedError\n"
GOOD = "    return x * 2\n"
TYPE_ERROR = '    return "twice"\n'
EXPLICIT_ANY = "    y: Any = x\n    return y * 2\n"


def payload(marker: Path) -> str:
    """Python that proves it ran by writing ``marker``."""
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"


def plugin(marker: Path) -> str:
    return payload(marker) + (
        "from mypy.plugin import Plugin\n\n\ndef plugin(version: str) -> type[Plugin]:\n    return Plugin\n"
    )


@dataclasses.dataclass
class Outcome:
    notes: tuple[str, ...]
    good: CandidateResult
    type_error: CandidateResult
    explicit_any: CandidateResult


@dataclasses.dataclass
class Hostile:
    """A repository (``root``) whose payloads write into ``marks``, and a directory it aims files at."""

    root: Path
    marks: Path
    out: Path

    def write(self, name: str, text: str, executable: bool = False) -> None:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        if executable:
            path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def verify_untrusted(self) -> Outcome:
        """prepare + three candidates (one right, one with a type error, one with an explicit Any)."""
        before = snapshot(self.root)
        path = self.root / "mod.py"
        text = path.read_text()
        with Verifier(self.root, Settings(trusted=False, sandbox="none")) as verifier:
            plan = verifier.prepare(target_for(path, "double"), text, CancelToken())
            results = [
                verifier.verify(plan, candidate(i, text, STUB, body), CancelToken())
                for i, body in enumerate((GOOD, TYPE_ERROR, EXPLICIT_ANY))
            ]
        assert snapshot(self.root) == before, "the user's files changed"
        return Outcome(plan.notes, *results)

    def ran(self) -> list[str]:
        """The payloads that ran, and the files written where the repository said."""
        marks = sorted(p.name for p in self.marks.iterdir())
        return marks + sorted(str(p.relative_to(self.out)) for p in self.out.rglob("*"))


@pytest.fixture
def hostile(tmp_path: Path) -> Hostile:
    root = tmp_path / "repo"
    root.mkdir()
    (root / ".git").mkdir()  # the repository's edge: mypy searches no further up for a configuration
    (root / "mod.py").write_text(MODULE)
    marks, out = tmp_path / "marks", tmp_path / "out"
    marks.mkdir()
    out.mkdir()
    return Hostile(root, marks, out)


def assert_restricted(outcome: Outcome, left_out: str) -> None:
    """mypy ran with our configuration: right code passes, wrong code fails, and the note says so."""
    (note,) = [note for note in outcome.notes if "mypy" in note]
    assert "mypy (restricted config" in note and left_out in note.split("left out:", 1)[1], note
    assert outcome.good.passed and outcome.good.mypy_evidence == "mypy (restricted config): no new errors"
    assert not outcome.type_error.passed
    assert outcome.type_error.mypy_evidence == "mypy (restricted config): new errors"


# -- mypy's configuration ------------------------------------------------------------------------------
PLUGIN_CONFIGS = {
    "mypy.ini": {"mypy.ini": "[mypy]\nplugins = evil_plugin.py\ndisallow_any_explicit = True\n"},
    ".mypy.ini": {".mypy.ini": "[mypy]\nplugins = evil_plugin.py\ndisallow_any_explicit = True\n"},
    "setup.cfg": {
        "setup.cfg": "[metadata]\nname = x\n\n[mypy]\nplugins = evil_plugin.py\ndisallow_any_explicit = 1\n"
    },
    "pyproject.toml": {
        "pyproject.toml": '[tool.mypy]\nplugins = ["evil_plugin.py"]\ndisallow_any_explicit = true\n'
    },
    # mypy skips a file it cannot parse and reads the next one: the plugin is in the second file.
    "unparsable mypy.ini, then pyproject.toml": {
        "mypy.ini": "[mypy\nplugins = nothing\n",
        "pyproject.toml": '[tool.mypy]\nplugins = "evil_plugin.py"\ndisallow_any_explicit = true\n',
    },
}


@pytest.mark.parametrize("files", PLUGIN_CONFIGS.values(), ids=PLUGIN_CONFIGS.keys())
def test_a_mypy_plugin_never_runs_but_the_strictness_still_counts(
    hostile: Hostile, files: dict[str, str]
) -> None:
    hostile.write("evil_plugin.py", plugin(hostile.marks / "plugin"))
    for name, text in files.items():
        hostile.write(name, text)
    outcome = hostile.verify_untrusted()
    assert hostile.ran() == []
    assert_restricted(outcome, "plugins")
    # The project's strictness is harmless and still applies.
    assert not outcome.explicit_any.passed and "Any" in (outcome.explicit_any.first_error or "")


def test_every_run_of_an_untrusted_verifier_keeps_to_our_configuration_and_runs_no_test(
    hostile: Hostile,
) -> None:
    """Not only the cascade's own calls: `check`'s fallbacks (``run_once`` for a new function whose stub
    could not be used, ``run_together``, ``type_check``) called mypy with no configuration file - the
    project's, plugins included - and nothing stopped a test run either."""
    hostile.write("evil_plugin.py", plugin(hostile.marks / "plugin"))
    hostile.write("mypy.ini", "[mypy]\nplugins = evil_plugin.py\n")
    hostile.write(
        "test_mod.py", payload(hostile.marks / "test") + "\n\ndef test_double() -> None:\n    pass\n"
    )
    path, cancel = hostile.root / "mod.py", CancelToken()
    with Verifier(hostile.root, Settings(trusted=False, sandbox="none")) as verifier:
        once = verifier.run_once(path, MODULE, ("test_mod.py::test_double",), None, cancel)
        together = verifier.run_together([(path, MODULE)], ("test_mod.py::test_double",), cancel)
        typed = verifier.type_check([path], {path: MODULE}, cancel)
        tests = verifier.run_tests(path, MODULE, ("test_mod.py::test_double",), cancel)
    assert hostile.ran() == []
    assert not once.mypy.crashed and not together[path].mypy.crashed and not typed[path].crashed
    assert once.tests.problem == tests.problem == "untrusted workspace: tests not run"
    assert not tests.outcomes


def test_mypy_reads_no_configuration_but_ours(hostile: Hostile, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not even the user-level one mypy would fall back to (~/.config/mypy/config): exactly our file."""
    home = hostile.out.parent / "home"
    (home / ".config" / "mypy").mkdir(parents=True)
    (home / ".config" / "mypy" / "config").write_text(
        f"[mypy]\nplugins = {hostile.root / 'evil_plugin.py'}\n"
    )
    hostile.write("evil_plugin.py", plugin(hostile.marks / "plugin"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    outcome = hostile.verify_untrusted()
    assert hostile.ran() == []
    assert "the project has no mypy configuration" in outcome.notes[0]
    assert outcome.good.passed and not outcome.type_error.passed


def test_python_executable_is_never_run(hostile: Hostile) -> None:
    script = f'#!/bin/sh\necho ran > {hostile.marks / "python_executable"}\nexec {sys.executable} "$@"\n'
    hostile.write("x.sh", script, executable=True)
    hostile.write("pyproject.toml", '[tool.mypy]\npython_executable = "./x.sh"\n')
    outcome = hostile.verify_untrusted()
    assert hostile.ran() == []
    assert_restricted(outcome, "python_executable")


@pytest.mark.parametrize(
    "option, value",
    [
        ("junit_xml", "junit.xml"),
        ("linecount_report", "linecount"),
        ("html_report", "html"),
        ("cache_dir", "c"),
    ],
)
def test_report_and_cache_paths_write_nothing(hostile: Hostile, option: str, value: str) -> None:
    hostile.write("mypy.ini", f"[mypy]\n{option} = {hostile.out / value}\nwarn_return_any = True\n")
    outcome = hostile.verify_untrusted()
    assert hostile.ran() == []
    assert_restricted(outcome, option)


def test_per_module_sections_keep_checks_and_lose_everything_else(hostile: Hostile) -> None:
    hostile.write(
        "pyproject.toml",
        '[tool.mypy]\nmypy_path = "/etc"\n\n'
        '[[tool.mypy.overrides]]\nmodule = "mod"\ndisallow_any_explicit = true\n'
        f'junit_xml = "{hostile.out / "junit.xml"}"\n',
    )
    outcome = hostile.verify_untrusted()
    assert hostile.ran() == []
    assert_restricted(outcome, "mypy_path")
    assert "[mypy-mod] junit_xml" in outcome.notes[0]
    assert not outcome.explicit_any.passed


def test_repository_startup_files_are_never_imported(hostile: Hostile) -> None:
    """The workers start outside the shadow and a shadow's root is never on sys.path: a repository's
    sitecustomize.py, usercustomize.py or .pth never loads (nor does a plugin naming them)."""
    for name in ("sitecustomize.py", "usercustomize.py"):
        hostile.write(name, payload(hostile.marks / name))
    hostile.write(
        "evil.pth",
        "import pathlib; pathlib.Path(" + repr(str(hostile.marks / "pth")) + ").write_text('ran')\n",
    )
    hostile.write("mypy.ini", "[mypy]\nplugins = sitecustomize\n")
    outcome = hostile.verify_untrusted()
    assert hostile.ran() == []
    assert_restricted(outcome, "plugins")


def test_a_pythonpath_naming_the_workspace_does_not_import_from_it(
    hostile: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile.write("sitecustomize.py", payload(hostile.marks / "sitecustomize"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hostile.root), os.environ.get("PYTHONPATH", "")]))
    outcome = hostile.verify_untrusted()
    assert hostile.ran() == []
    assert outcome.good.passed and not outcome.type_error.passed


def test_evidence_says_skipped_for_a_check_that_did_not_run(hostile: Hostile) -> None:
    path = hostile.root / "mod.py"
    text = path.read_text()
    with Verifier(hostile.root, Settings(trusted=False, sandbox="none")) as verifier:
        plan = verifier.prepare(target_for(path, "double"), text, CancelToken())
        broken = verifier.verify(plan, candidate(0, text, STUB, "    return (\n"), CancelToken())
    assert broken.mypy_evidence == "mypy: skipped"
    assert "mypy: skipped" in describe_evidence(broken) and "no new errors" not in describe_evidence(broken)


def test_a_trusted_workspace_keeps_the_projects_configuration(hostile: Hostile) -> None:
    """Trust means the project's own configuration, plugins included (what `lsp-verify check` gets)."""
    hostile.write("evil_plugin.py", plugin(hostile.marks / "plugin"))
    hostile.write("mypy.ini", "[mypy]\nplugins = evil_plugin.py\n")
    path = hostile.root / "mod.py"
    text = path.read_text()
    with Verifier(hostile.root, Settings(trusted=True, sandbox="none")) as verifier:
        plan = verifier.prepare(target_for(path, "double"), text, CancelToken())
        result = verifier.verify(plan, candidate(0, text, STUB, GOOD), CancelToken())
    assert hostile.ran() == ["plugin"]
    assert not any("restricted" in note for note in plan.notes)
    assert result.mypy_evidence == "mypy: no new errors"


def test_check_is_trusted_by_being_run(hostile: Hostile) -> None:
    """`lsp-verify check` keeps the project's own mypy configuration and settings (a regression guard)."""
    hostile.write("evil_plugin.py", plugin(hostile.marks / "plugin"))
    hostile.write(
        "pyproject.toml", '[tool.lsp-verify]\nsandbox = "none"\n\n[tool.mypy]\nplugins = ["evil_plugin.py"]\n'
    )
    hostile.write("mod.py", MODULE.replace(STUB, GOOD))
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "lsp_verify", "check", "mod.py"],
        cwd=hostile.root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mypy: no new errors" in done.stdout and "restricted" not in done.stdout
    assert "not trusted" not in done.stderr
    assert hostile.ran() == ["plugin"]


# -- [tool.lsp-verify] -----------------------------------------------------------------------------------
LOOSENING = """\
[tool.lsp-verify]
sandbox = "none"
model_path = "evil.gguf"
test-timeout-s = 9999
mypyTimeoutS = 9999
memory_limit_mb = 999999
n_gpu_layers = -1
n_ctx = 1000000
n_threads = 64
trusted = true
k = 3
require_tests = true
temperature = 0.2
"""


def test_an_untrusted_repository_cannot_loosen_its_settings(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(LOOSENING)
    settings = project_settings(tmp_path, trusted=False)
    defaults = Settings()
    for name in UNTRUSTED_PROJECT_IGNORES:
        assert getattr(settings, name) == getattr(defaults, name), name
    # Harmless or stricter: still applied.
    assert (settings.k, settings.require_tests, settings.temperature) == (3, True, 0.2)
    (problem,) = settings.problems
    assert "ignored because the workspace is not trusted" in problem
    for key in (
        "'sandbox'",
        "'model_path'",
        "'test-timeout-s'",
        "'mypyTimeoutS'",
        "'n_gpu_layers'",
        "'trusted'",
    ):
        assert key in problem


def test_the_user_and_a_trusted_workspace_still_set_them(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(LOOSENING)
    untrusted = effective_settings(tmp_path, {"sandbox": "none", "testTimeoutS": 5}, None)
    assert (untrusted.sandbox, untrusted.test_timeout_s, untrusted.model_path) == ("none", 5.0, None)
    trusted = effective_settings(tmp_path, {"trusted": True}, None)
    assert (trusted.sandbox, trusted.model_path, trusted.test_timeout_s) == ("none", "evil.gguf", 9999.0)
    assert trusted.trusted
    # The CLI is trusted by being run: the team's committed settings apply there.
    assert (cli._settings(tmp_path, {}).sandbox, cli._settings(tmp_path, {}).n_ctx) == ("none", 1000000)


def test_every_setting_is_decided_for_untrusted_repositories() -> None:
    fields = {field.name for field in dataclasses.fields(Settings)} - {"problems"}
    assert set(UNTRUSTED_PROJECT_IGNORES) | UNTRUSTED_PROJECT_ALLOWS == fields
    assert not set(UNTRUSTED_PROJECT_IGNORES) & UNTRUSTED_PROJECT_ALLOWS


# -- through the language server ------------------------------------------------------------------------
SCRIPTED = [sys.executable, str(Path(__file__).parent / "fixtures" / "hostile" / "scripted_engine_server.py")]


@pytest.fixture
def hostile_workspace(tmp_path: Path) -> Path:
    """A repository that loosens its settings and points mypy at a program and a report path of its own."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / ".git").mkdir()
    (root / "mod.py").write_text(MODULE)
    (root / "x.sh").write_text(f'#!/bin/sh\necho ran > {tmp_path / "x.sh-ran"}\nexec {sys.executable} "$@"\n')
    (root / "x.sh").chmod(0o755)
    (root / "pyproject.toml").write_text(
        LOOSENING + f'\n[tool.mypy]\npython_executable = "./x.sh"\njunit_xml = "{tmp_path / "junit.xml"}"\n'
    )
    # Tests and a conftest.py that would leave a file beside the workspace if they were ever collected.
    ran = f"open({str(tmp_path / 'workspace-code-ran')!r}, 'a').close()\n"
    (root / "conftest.py").write_text(ran)
    (root / "test_mod.py").write_text(f"{ran}\n\ndef test_double() -> None:\n    {ran}")
    return root


# Where the scripted server records the settings its pipeline got (a server's environment is fixed when
# this module is imported, hence one file per test process).
SETTINGS_LOG = Path(tempfile.gettempdir()) / f"lsp-verify-test-untrusted-{os.getpid()}.json"


@pytest_lsp.fixture(config=config(SCRIPTED, LSPV_SETTINGS_LOG=str(SETTINGS_LOG)))
async def untrusted_server(lsp_client: EditorClient, hostile_workspace: Path):
    SETTINGS_LOG.unlink(missing_ok=True)
    await start(lsp_client, hostile_workspace)
    yield
    await lsp_client.shutdown_session()
    SETTINGS_LOG.unlink(missing_ok=True)


@pytest.mark.e2e
async def test_the_server_runs_nothing_of_an_untrusted_repository(
    untrusted_server: EditorClient, hostile_workspace: Path
) -> None:
    client = untrusted_server
    before = snapshot(hostile_workspace)
    assert await wait_until(lambda: client.messages != [])
    (warning,) = [m.message for m in client.messages if "not trusted" in m.message]
    assert "'sandbox'" in warning and "'model_path'" in warning and "'memory_limit_mb'" in warning

    uri = client.open(hostile_workspace / "mod.py")
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="lsp-verify.verifyAndApply", arguments=[{"uri": uri, "line": 4}])
    )
    # The candidate passed mypy under our configuration, and the repository's stricter require_tests held.
    assert result["applied"] is False and "no nearby tests ran and require_tests is set" in result["message"]
    assert (
        "mypy (restricted config: options from pyproject.toml; left out: python_executable, junit_xml)"
        in (result["message"])
    )
    report = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="lsp-verify.showReport")
    )
    assert "mypy (restricted config): no new errors" in report

    # Nothing of the repository ran or was written; its settings chose no model, sandbox or limit.
    assert [p.name for p in hostile_workspace.parent.iterdir()] == ["ws"]
    assert snapshot(hostile_workspace) == before
    used = json.loads(SETTINGS_LOG.read_text())
    defaults = dataclasses.asdict(Settings())
    assert {key: used[key] for key in UNTRUSTED_PROJECT_IGNORES} == {
        key: defaults[key] for key in UNTRUSTED_PROJECT_IGNORES
    }
    assert (used["k"], used["require_tests"]) == (3, True)
