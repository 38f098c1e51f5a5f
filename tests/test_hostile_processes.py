"""A hostile repository against the real verifier: what its tests start dies with the run, what they read
and write stays inside the sandbox.

Each test builds a small project in tmp_path whose test calls ``act()``; the candidate body of ``act`` is
the hostile part. Processes are judged by scanning /proc for a unique marker in argv or environ (processes
re-parented to init or a subreaper included), never by an attribute of our objects.

These tests follow the machine's isolation: bubblewrap when it works, else what is left. CI runs this file
a second time with ``LSP_VERIFY_HIDE_BWRAP=1`` (scripts/test.sh), so both are covered.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lsp_verify.cancel import Cancelled, CancelToken
from lsp_verify.config import Settings
from lsp_verify.syntax.target import EditTarget, TargetKind
from lsp_verify.verify.cascade import Verifier
from lsp_verify.verify.sandbox import choose_isolation, isolation_report
from lsp_verify.verify.shadow import remove_stale_roots
from lsp_verify.verify.types import Candidate

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see processes")

ISOLATION = choose_isolation("auto")
STUB = "    raise NotImplementedError\n"
CORE = 'def act() -> int:\n    """The function under test."""\n' + STUB
TEST = "from hostile.core import act\n\n\ndef test_act() -> None:\n    assert act() == 1\n"


def detach(marker: str) -> str:
    """Candidate lines that start a sleeper outside the run's session: setsid + double fork."""
    return textwrap.indent(
        textwrap.dedent(
            f"""\
            import os
            import subprocess
            import sys
            middle = os.fork()
            if middle == 0:
                os.setsid()
                subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)", {marker!r}])
                os._exit(0)
            os.waitpid(middle, 0)
            """
        ),
        "    ",
    )


def processes_with(marker: str) -> list[int]:
    """Live processes (zombies excluded) with ``marker`` in their argv or environment, other than us."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            state = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            seen = Path(f"/proc/{entry}/cmdline").read_bytes() + Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if state != b"Z" and marker.encode() in seen:
            found.append(int(entry))
    return found


def wait_until(condition: Callable[[], bool], limit_s: float = 30.0) -> bool:
    """Poll ``condition`` (a generous limit: SIGKILLed processes take a moment to leave /proc)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def snapshot(root: Path) -> dict[str, str]:
    found = {}
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            path = Path(directory) / name
            key = str(path.relative_to(root))
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return found


def make_repo(root: Path, addopts: str = "") -> Path:
    (root / "hostile").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "data").mkdir()
    pytest_table = f"\n[tool.pytest.ini_options]\naddopts = {addopts!r}\n" if addopts else ""
    (root / "pyproject.toml").write_text("[project]\nname = 'hostile'\nversion = '0'\n" + pytest_table)
    (root / "hostile" / "__init__.py").write_text("")
    (root / "hostile" / "core.py").write_text(CORE)
    (root / "tests" / "test_core.py").write_text(TEST)
    (root / "data" / "table.csv").write_text("a,b\n1,2\n")
    return root / "hostile" / "core.py"


def target(path: Path) -> EditTarget:
    return EditTarget(
        path=path, name="act", qualname="act", class_name=None, kind=TargetKind.STUB, is_async=False,
        def_start_line=0, def_end_line=1, body_start_byte=0, body_end_byte=0, body_start_line=2,
        body_start_col=4, body_end_line=3, body_end_col=0, indent="    ", header="def act() -> int:",
        docstring=None, current_body=STUB, source_sha256="",
    )  # fmt: skip


def candidate(body: str) -> Candidate:
    return Candidate(index=0, body=body, new_text=CORE.replace(STUB, body), key=body)


class Repo:
    def __init__(self, root: Path, addopts: str = "", **settings: object) -> None:
        self.root = root
        self.path = make_repo(root, addopts)
        self.before = snapshot(root)
        values = {"trusted": True, "test_timeout_s": 30.0, "probe_inputs": 0, **settings}
        self.verifier = Verifier(root, Settings().updated(values, "test"))
        self.plan = self.verifier.prepare(target(self.path), CORE, CancelToken())
        assert self.plan.tests_selected == ("tests/test_core.py::test_act",), self.plan.notes

    def verify(self, body: str, cancel: CancelToken | None = None) -> tuple[bool, str]:
        result = self.verifier.verify(self.plan, candidate(body), cancel or CancelToken())
        return result.passed, result.first_error or ""


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Callable[..., Repo]]:
    made: list[Repo] = []

    def make(**settings: object) -> Repo:
        made.append(Repo(tmp_path / f"repo{len(made)}", **settings))
        return made[-1]

    yield make
    for created in made:
        created.verifier.close()
        assert snapshot(created.root) == created.before, "the user's workspace changed"


@pytest.fixture
def marker() -> Iterator[str]:
    value = f"lsp-verify-hostile-{uuid.uuid4().hex}"
    yield value
    for pid in processes_with(value):  # never leave a sleeper behind, whatever the test found
        os.kill(pid, signal.SIGKILL)


# -- nothing outlives its run ---------------------------------------------------------------------------


def test_a_detached_process_dies_when_its_run_ends(repo: Callable[..., Repo], marker: str) -> None:
    project = repo()
    passed, error = project.verify(detach(marker) + "    return 1\n")
    assert passed, error
    assert wait_until(lambda: not processes_with(marker)), "a detached process outlived its test run"


def test_a_detached_process_dies_when_its_run_times_out(repo: Callable[..., Repo], marker: str) -> None:
    project = repo(test_timeout_s=3.0)
    passed, error = project.verify(detach(marker) + "    import time\n    time.sleep(1000)\n    return 1\n")
    assert not passed and "timeout" in error
    assert wait_until(lambda: not processes_with(marker)), "a detached process outlived its timed-out run"


def test_a_detached_process_dies_when_its_run_is_cancelled(repo: Callable[..., Repo], marker: str) -> None:
    project = repo(test_timeout_s=600.0)
    cancel = CancelToken()

    def cancel_once_detached() -> None:
        if wait_until(lambda: bool(processes_with(marker)) or cancel.cancelled):
            cancel.cancel()

    watcher = threading.Thread(target=cancel_once_detached)
    watcher.start()
    try:
        with pytest.raises(Cancelled):
            project.verify(detach(marker) + "    import time\n    time.sleep(1000)\n    return 1\n", cancel)
    finally:
        cancel.cancel()
        watcher.join()
    assert wait_until(lambda: not processes_with(marker)), "a detached process outlived its cancelled run"


def test_closing_the_verifier_leaves_no_process(
    repo: Callable[..., Repo], marker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The marker in the environment tags every process the verifier starts: workers, bwrap, runs.
    monkeypatch.setenv("LSP_VERIFY_TEST_MARKER", marker)
    project = repo()
    assert processes_with(marker), "the workers should be running"
    passed, error = project.verify(detach(marker) + "    return 1\n")
    assert passed, error
    project.verifier.close()
    assert wait_until(lambda: not processes_with(marker)), "a process outlived the verifier"


SERVER = """\
import os, sys, threading
from pathlib import Path
sys.path[:0] = [sys.argv[1]]
from test_hostile_processes import Repo
project = Repo(Path(sys.argv[2]), sys.argv[4], test_timeout_s=600.0)
body = Path(sys.argv[3]).read_text()
threading.Thread(target=project.verify, args=(body,), daemon=True).start()
sys.stdin.readline()  # the test says when: end the process without closing anything
os._exit(0)
"""


@pytest.mark.parametrize(
    ("how", "addopts"),
    [("sigkill", ""), ("exit", ""), ("sigkill", "-p no:lsp_verify_no_such_plugin")],
    ids=["sigkill", "exit", "sigkill-fresh-process"],
)
def test_nothing_outlives_the_server_process(tmp_path: Path, marker: str, how: str, addopts: str) -> None:
    """The process that owns the verifier (the language server) is SIGKILLed, or exits without closing
    the verifier, while a test run that detached a process is in progress: in the fork server, or in a
    fresh process of its own (a project whose addopts load a plugin with -p), which kept running."""
    if addopts and ISOLATION != "bwrap":
        pytest.skip("without bubblewrap a fresh process dies with the server, not what it detached")
    body = tmp_path / "body.txt"
    body.write_text(detach(marker) + "    import time\n    time.sleep(1000)\n    return 1\n")
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    argv = [
        sys.executable,
        str(script),
        str(Path(__file__).parent),
        str(tmp_path / "repo"),
        str(body),
        addopts,
    ]
    # A temporary directory of its own: another test's server, starting meanwhile, removes a dead server's
    # shadow root from the shared one (as it should) before this test could see it left behind.
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = {**os.environ, "LSP_VERIFY_TEST_MARKER": marker, "TMPDIR": str(private_tmp)}
    server = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env)
    try:
        assert wait_until(lambda: any(marker in argv for argv in _argvs(marker)), 120), "no run started"
        if how == "sigkill":
            server.kill()
        else:
            assert server.stdin is not None
            server.stdin.write(b"go\n")
            server.stdin.flush()
        server.wait(timeout=60)
        assert wait_until(lambda: not processes_with(marker)), f"processes outlived the server ({how})"
        # Its shadow root (candidates, results) is left behind; the next server's start removes it.
        left = list(private_tmp.glob(f"lsp-verify-{server.pid}-*"))
        assert left, "the killed server's shadow root should still be there"
        assert set(remove_stale_roots(private_tmp)) >= set(left)
        assert not any(path.exists() for path in left)
    finally:
        server.kill()
        server.wait()


def _argvs(marker: str) -> list[str]:
    """The argv of every process tagged with ``marker`` (to tell the detached sleeper from the workers)."""
    found = []
    for pid in processes_with(marker):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
        except OSError:
            continue
    return found


# -- what a run can read, reach and write -----------------------------------------------------------------


def test_doctor_names_the_repository_shown_around_a_project_below_its_top(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if ISOLATION != "bwrap":
        pytest.skip("without bubblewrap nothing is mounted: the shadow is a copy of the project alone")
    (tmp_path / ".git").mkdir()
    (tmp_path / "proj").mkdir()
    line = f"around the workspace: {tmp_path.resolve()} (read-only: what lies beside a project below it)"

    assert line in isolation_report("auto", tmp_path / "proj")
    assert "around the workspace" not in isolation_report("auto", tmp_path)  # the project is the top
    monkeypatch.setenv("HOME", str(tmp_path))  # a dotfiles repository at ~: never shown
    assert "around the workspace" not in isolation_report("auto", tmp_path / "proj")


def test_a_test_cannot_read_secrets_in_home_or_other_projects(
    repo: Callable[..., Repo], tmp_path: Path
) -> None:
    if ISOLATION != "bwrap":
        assert "home directory: VISIBLE" in isolation_report("auto")
        pytest.skip("without bubblewrap a test can read whatever the user can: doctor says so")
    secrets = Path(tempfile.mkdtemp(prefix=".lsp-verify-test-secret-", dir=Path.home()))
    try:
        (secrets / "token").write_text("hunter2")
        other = tmp_path / "other-project"
        other.mkdir()
        (other / "key.pem").write_text("PRIVATE")
        project = repo()
        body = textwrap.indent(
            textwrap.dedent(
                f"""\
                import os
                seen = []
                home = os.path.expanduser("~")
                for path in [{str(secrets / "token")!r}, {str(other / "key.pem")!r}, home]:
                    try:
                        seen.append(str(os.listdir(path)) if os.path.isdir(path) else open(path).read())
                    except OSError:
                        pass
                leaked = [s for s in seen if "hunter2" in s or "PRIVATE" in s or "-test-secret-" in s]
                assert not leaked, leaked
                return 1
                """
            ),
            "    ",
        )
        passed, error = project.verify(body)
        assert passed, error
    finally:
        shutil.rmtree(secrets)


def test_a_test_cannot_write_the_mypy_cache(repo: Callable[..., Repo]) -> None:
    """mypy trusts its cache: a test (pytest worker) must not be able to plant entries in it."""
    if ISOLATION != "bwrap" and "no Landlock" in isolation_report("auto"):
        pytest.skip("no bubblewrap and no Landlock: a test can write wherever the user can (doctor says so)")
    project = repo()
    cache = project.verifier._mypy_cache
    body = (
        "    try:\n"
        f"        open({str(cache / 'poison.json')!r}, 'w').write('{{}}')\n"
        "    except OSError:\n"
        "        pass\n"
        "    return 1\n"
    )
    passed, error = project.verify(body)
    assert passed, error
    assert not (cache / "poison.json").exists()


def test_a_test_cannot_reach_a_local_service(repo: Callable[..., Repo]) -> None:
    if ISOLATION == "none":
        assert "network: OPEN" in isolation_report("auto")
        pytest.skip("no network isolation on this machine (no bubblewrap, no unshare): doctor says so")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    project = repo()
    body = (
        "    import socket\n"
        "    try:\n"
        f"        socket.create_connection(('127.0.0.1', {port}), timeout=5).sendall(b'hi')\n"
        "    except OSError:\n"
        "        return 1\n"
        "    return 0\n"
    )
    passed, error = project.verify(body)
    assert passed, f"the connection was not refused: {error}"
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()


def test_writes_through_the_shadow_never_reach_the_workspace(repo: Callable[..., Repo]) -> None:
    """Relative paths, the test's own ``__file__``, data files: whatever a test writes lands in the shadow
    (or fails under bubblewrap); the workspace stays byte-identical with no new file (checked at teardown)."""
    project = repo()
    body = textwrap.indent(
        textwrap.dedent(
            """\
            import glob
            import os
            for path in glob.glob("**/*", recursive=True) + ["new.txt", "tests/new.txt", "data/new.csv"]:
                if os.path.isdir(path):
                    continue
                try:
                    with open(path, "a") as out:
                        out.write("pwned")
                except OSError:
                    pass
            return 1
            """
        ),
        "    ",
    )
    passed, error = project.verify(body)
    assert passed, error


def test_a_test_cannot_write_the_workspace_or_home_by_absolute_path(
    repo: Callable[..., Repo], tmp_path: Path
) -> None:
    """Bubblewrap mounts everything but the shadow read-only (home is an empty tmpfs); without it the
    workers confine writes with Landlock. Where neither exists, doctor says writes are open."""
    if ISOLATION != "bwrap" and "no Landlock" in isolation_report("auto"):
        pytest.skip("no bubblewrap and no Landlock: a test can write wherever the user can (doctor says so)")
    project = repo()
    home = Path(tempfile.mkdtemp(prefix=".lsp-verify-test-home-", dir=Path.home()))
    targets = [project.root / "pwned.txt", project.path, tmp_path / "outside.txt", home / "pwned.txt"]
    try:
        body = (
            f"    for path in {[str(t) for t in targets]!r}:\n"
            "        try:\n"
            "            with open(path, 'a') as out:\n"
            "                out.write('pwned')\n"
            "        except OSError:\n"
            "            pass\n"
            "    return 1\n"
        )
        passed, error = project.verify(body)
        assert passed, error
        assert not (tmp_path / "outside.txt").exists()
        assert not (home / "pwned.txt").exists()
        # The workspace (pwned.txt absent, core.py unchanged) is checked at teardown.
    finally:
        shutil.rmtree(home)
