"""Running workspace code safely: process trees, deadlines, resource limits, and isolation.

Every mypy or pytest run happens in a subprocess that is the leader of its own session, under CPU / memory /
file-size limits set before ``exec``, with a wall-clock deadline. Output goes to files or is read without
blocking, so a killed group whose grandchild still holds a pipe can never hang the caller.

Nothing a run starts outlives it, even a process that left the run's session (``setsid``, double fork):

- the fork server (``_worker.py``) makes itself a *child subreaper* (``PR_SET_CHILD_SUBREAPER``), so an
  orphaned descendant is re-parented to it rather than to init, and after every run - and before it exits -
  it kills every descendant it finds in /proc;
- :func:`kill_tree` (timeout, cancel, close) kills the worker's descendants before the worker, for the same
  reason: while the worker lives, every orphan is still its descendant;
- the worker exits when its stdin reaches end-of-file, which happens however the server ends - ``exit``,
  a crash, SIGKILL - because the server holds the only write end. This is what ties the sandbox to the
  server, not ``PR_SET_PDEATHSIG`` / ``--die-with-parent``: those fire when the *thread* that started the
  process exits, and workers are started from short-lived warm-up and request threads.
- under bubblewrap the worker also lives in its own PID namespace: when it exits the kernel kills the rest.
- a single run (:func:`run_process`: a collection, a fresh process's test run, mypy) is waited for by the
  thread that starts it, so there ``PR_SET_PDEATHSIG`` (``--die-with-parent`` under bubblewrap, whose PID
  namespace then goes too) does tie it to the server: a server killed outright (SIGKILL, out of memory)
  takes it along (without bubblewrap, the run's own process only: what it detached lives on).

On a system without /proc or ``prctl`` (macOS) only the process group is killed.

Isolation, strongest available first (``Settings.sandbox``: "auto" picks the first that works; "bwrap" fails
closed with :class:`SandboxUnavailable` when bubblewrap cannot run - never a silent downgrade):

- ``bwrap`` (bubblewrap): no network (``--unshare-net``), its own PID namespace, the system read-only, home
  directories, /tmp and other shared places replaced by empty private directories, with only the
  workspace, the interpreter and its libraries mounted back read-only, and only the private shadow
  directory (and, for the mypy worker, this workspace's mypy cache) writable.
- ``unshare``: no network (``unshare -n``, with ``-r`` when not root); otherwise as ``none``.
- ``none``: process tree, limits and deadline only. Runs see everything the user can read. Writes are
  confined with Landlock (Linux >= 5.13) to the shadow directory, its TMPDIR, /dev and /dev/shm (and the
  mypy worker's cache); without Landlock (macOS, older kernels) the workspace is protected only from
  writes made *through the shadow* (a private copy, see shadow.py), not from writes to its absolute path.

``LSP_VERIFY_HIDE_BWRAP=1`` makes bubblewrap look absent (CI runs the sandbox tests both ways).

RLIMIT_NPROC is set only when not running as root: the kernel never enforces it for uid 0, so there a fork
bomb is stopped by the deadline and the tree kill.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ..cancel import Cancelled, CancelToken
from ._worker import descendants
from .interpreter import ProjectPython, own_python

Isolation = Literal["bwrap", "unshare", "none", "off"]
"""What runs get: ``bwrap``; ``unshare`` (no network) or ``none`` with Landlock confining writes where the
kernel has it; ``off`` is the user's own ``sandbox = "none"``: process limits only, no confinement at all
(e.g. for tests that must write to the home directory)."""

CONFINES_WRITES: frozenset[Isolation] = frozenset({"unshare", "none"})
"""Isolations under which the workers confine writes themselves (Landlock): bubblewrap mounts everything
but the shadow read-only, and ``off`` is the user's choice of no confinement."""

WORKER_SCRIPT = Path(__file__).with_name("_worker.py")

HIDE_BWRAP_ENV = "LSP_VERIFY_HIDE_BWRAP"
"""Set to 1 to make bubblewrap look absent (the tests of the isolation that is left without it)."""

# Directories a sandboxed run must not see: other users' and this user's homes (keys, tokens, other
# projects), shared temporary directories, mounted media. Each is replaced by an empty tmpfs; what a run
# needs from inside one (the workspace, a virtualenv or pyenv interpreter under $HOME) is mounted back
# read-only.
_HIDDEN = ("/home", "/root", "/tmp", "/var/tmp", "/run/user", "/mnt", "/media", "/srv")
# Never hidden even when $HOME points there: the sandbox would lose the system itself.
_SYSTEM = frozenset(
    {"/", "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/opt", "/var", "/nix", "/proc", "/dev", "/sys"}
)


class SandboxUnavailable(Exception):
    """The configured sandbox cannot run here (the message says why and what to do); nothing was run."""


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_mb: int = 2048
    file_size_mb: int = 512
    cpu_s: int | None = None
    """CPU seconds for the whole process (None for long-lived workers: their children get their own)."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    returncode: int
    output: str
    timed_out: bool
    seconds: float


def _probe(argv: Sequence[str]) -> bool:
    try:
        completed = subprocess.run(
            [*argv, "true"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return completed.returncode == 0


@functools.cache
def _bwrap_works() -> bool:
    return shutil.which("bwrap") is not None and _probe(
        ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--unshare-pid"]
    )


def _bwrap_hidden() -> bool:
    return os.environ.get(HIDE_BWRAP_ENV, "") not in ("", "0")


@functools.cache
def _unshare_works() -> bool:
    return shutil.which("unshare") is not None and _probe(_unshare_prefix())


def _unshare_prefix() -> list[str]:
    return ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]


def _bwrap_missing() -> str:
    """Why bubblewrap cannot be used here (for messages), or "" when it can."""
    if _bwrap_hidden():
        return f"bubblewrap is hidden ({HIDE_BWRAP_ENV} is set)"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if not _bwrap_works():
        return (
            "bubblewrap is installed but cannot create its namespaces here (user namespaces disabled, "
            "or a container without the privilege)"
        )
    return ""


@functools.cache
def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none). Without bubblewrap the workers confine writes with it."""
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    try:
        version = int(ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1))
    except (OSError, AttributeError):
        return 0
    return max(version, 0)


def choose_isolation(mode: str = "auto") -> Isolation:
    """The isolation that ``mode`` ("auto", "bwrap", "none") gives on this machine.

    Raises :class:`SandboxUnavailable` for "bwrap" when bubblewrap cannot run: a configured sandbox is
    never silently replaced by a weaker one.
    """
    if mode == "none":
        return "off"
    missing = _bwrap_missing()
    if not missing:
        return "bwrap"
    if mode == "bwrap":
        raise SandboxUnavailable(f"sandbox is 'bwrap' but {missing}; nothing was run")
    return "unshare" if _unshare_works() else "none"


def hidden_paths() -> list[Path]:
    """The directories bubblewrap replaces with empty ones (existing ones only; $HOME included)."""
    found: list[Path] = []
    home = os.environ.get("HOME", "")
    for name in (*_HIDDEN, home, tempfile.gettempdir()):
        if not name or not os.path.isabs(name) or os.path.realpath(name) in _SYSTEM:
            continue
        path = Path(name)
        # A symlinked directory (/home -> /usr/home) is hidden where it really lives.
        real = path.resolve()
        if real.is_dir() and real not in found and not any(p in real.parents for p in found):
            found = [p for p in found if real not in p.parents]
            found.append(real)
    return found


def shows_hidden(top: Path) -> bool:
    """Whether mounting ``top`` back would show a directory the sandbox hides whole: a home directory (a
    dotfiles repository at ``~``), ``/tmp``, or a directory above one."""
    home = os.environ.get("HOME", "")
    hidden = [*hidden_paths(), *([Path(home).resolve()] if os.path.isabs(home) else [])]
    real = top.resolve()
    return any(real == path or real in path.parents for path in hidden)


def around(workspace: Path, within: Path | None = None) -> Path | None:
    """What a linked shadow of the trusted project at ``workspace`` shows around it, read-only: the
    repository's top (or ``within``, the editor's workspace folder: nothing above it is trusted), when the
    project lies below it and mounting it shows nothing the sandbox hides (see ``ShadowRoot(top=...)``);
    None otherwise."""
    from ..config import repository_top

    top = within or repository_top(workspace)
    if top is None or top.resolve() == workspace.resolve() or shows_hidden(top):
        return None
    return top


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def isolation_report(mode: str = "auto", workspace: Path | None = None) -> str:
    """For ``lsp-verify doctor``: what a sandboxed run can read, write and reach, in words a user can
    check (the first line names the isolation, one indented line per property follows)."""
    nproc = (
        "RLIMIT_NPROC is not enforced for root: a fork bomb is stopped by the deadline"
        if os.geteuid() == 0
        else "RLIMIT_NPROC limits forks"
    )
    limits = f"own session, wall-clock deadline, CPU/memory/file-size limits; {nproc}"
    linux = sys.platform.startswith("linux")
    reaper = "killed with it (subreaper + /proc)" if linux else "killed with its process group only"
    missing = _bwrap_missing()
    try:
        chosen = choose_isolation(mode)
    except SandboxUnavailable as exc:
        return f"isolation: NONE - {exc}: tests and mypy are refused until it can (or set sandbox = 'auto')"
    home = Path(os.environ.get("HOME", "~")).expanduser()
    place = str(workspace) if workspace is not None else "the workspace"
    if chosen == "bwrap":
        hidden = ", ".join(str(p) for p in hidden_paths())
        top = around(workspace) if workspace is not None else None
        lines = [
            f"isolation: bubblewrap ({shutil.which('bwrap')})",
            "network: none (own network namespace; even 127.0.0.1 is unreachable)",
            f"home directory: NOT visible ({home} is an empty private directory)",
            f"hidden (empty, private): {hidden}",
            f"readable: the system (read-only), {place}, the Python interpreter and its libraries "
            "(read-only, mounted back even when they live under a hidden directory)",
            f"mounted back read-only: {_mounted_back(workspace, hidden_paths()) or 'nothing'}",
            *(
                [f"around the workspace: {top} (read-only: what lies beside a project below it)"]
                if top
                else []
            ),
            "writable: only the private shadow directory (a per-request view of the workspace and a private "
            "TMPDIR); the mypy worker also this workspace's own mypy cache",
            "processes: own PID namespace; every process of a run, detached ones included, is killed with it",
            f"limits: {limits}",
        ]
        return "\n".join(lines)
    why = " - sandbox = 'none'" if chosen == "off" else f" - {missing}" if missing else ""
    name = "unshare" if chosen == "unshare" else "NONE"
    network = (
        "none (own network namespace, unshare -n)"
        if chosen == "unshare"
        else "OPEN: tests can reach the network and local services"
    )
    if chosen == "off":
        writable = (
            "everything this user can write (sandbox = 'none' turns every confinement off); "
            f"{place} is safe only from writes through the shadow (tests run on a private copy)"
        )
    elif landlock_abi():
        writable = (
            f"only the private shadow directory (a per-request copy of {place} and a private TMPDIR), "
            "/dev and /dev/shm; the mypy worker also this workspace's own mypy cache "
            f"(Landlock ABI {landlock_abi()})"
        )
    else:
        writable = (
            f"everything this user can write (no Landlock in this kernel); {place} is safe from writes "
            "through the shadow (tests run on a private copy), not from writes to its absolute path"
        )
    lines = [
        f"isolation: {name}{why}",
        f"network: {network}",
        f"home directory: VISIBLE - tests can read {home} and anything else this user can read",
        "readable: everything this user can read",
        f"writable: {writable}",
        f"processes: every process of a run, detached ones included, is {reaper}",
        f"limits: {limits}",
    ]
    return "\n".join(lines)


def interpreter_paths() -> list[Path]:
    """What running this interpreter needs to read: its prefixes (a virtualenv and the Python it was made
    from, e.g. a pyenv build under $HOME), the executable's real location and ``sys.path``."""
    return list(own_python().readable)


def _mounted_back(workspace: Path | None, hidden: Sequence[Path]) -> str:
    """The readable paths under hidden directories, outermost only (what a user can check by hand)."""
    paths = sorted({p.resolve() for p in [*([workspace] if workspace else []), *interpreter_paths()]})
    shown: list[Path] = []
    for path in paths:
        if path.exists() and _under(path, hidden) and not _under(path, shown):
            shown.append(path)
    return ", ".join(str(p) for p in shown)


def sandbox_argv(
    argv: Sequence[str],
    isolation: Isolation,
    writable: Sequence[Path],
    readable: Sequence[Path] = (),
    *,
    die_with_caller: bool = False,
) -> list[str]:
    """``argv`` wrapped in the chosen isolation; under bwrap only ``writable`` directories are writable and
    ``readable`` ones that live under a hidden directory are mounted back read-only. ``die_with_caller``:
    the run is killed when the thread that starts it ends (the caller waits for it: see
    :func:`run_process`)."""
    if isolation in ("none", "off"):
        return list(argv)
    if isolation == "unshare":
        return [*_unshare_prefix(), *argv]
    wrapped = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    hidden = hidden_paths()
    for path in hidden:
        wrapped += ["--tmpfs", str(path)]
    # Mounted back in order, outermost first, so that a path inside another still shows.
    back = {p.resolve() for p in readable if p.is_absolute() and p.exists()}
    for real in sorted(back, key=lambda p: len(p.parts)):
        if _under(real, hidden):
            wrapped += ["--ro-bind", str(real), str(real)]
    for path in writable:
        wrapped += ["--bind", str(path), str(path)]
    # Not for the worker: --die-with-parent's PR_SET_PDEATHSIG fires when the *thread* that started bwrap
    # exits (a warm-up thread). The worker exits on end-of-file on stdin instead, and the PID namespace goes
    # with it.
    wrapped += ["--die-with-parent"] if die_with_caller else []
    wrapped += ["--unshare-net", "--unshare-pid", "--"]
    return [*wrapped, *argv]


def _nproc_limit() -> int | None:
    if os.geteuid() == 0:
        return None
    uid = os.getuid()
    count = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if entry.stat().st_uid == uid:
                        count += 1
    return count + 256


def limits_preexec(limits: Limits, *, die_with_caller: bool = False) -> Callable[[], None]:
    """A ``preexec_fn`` that applies ``limits`` in the child before ``exec`` (``die_with_caller``: see
    :func:`sandbox_argv`; on Linux)."""
    nproc = _nproc_limit()
    prctl = _prctl() if die_with_caller else None
    caller = os.getpid()

    def apply() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != caller:  # the server died before the signal was asked for
                os._exit(1)
        memory = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        size = limits.file_size_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        if limits.cpu_s is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return apply


_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (None where there is none: macOS)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function


def _kill_descendants(pid: int) -> None:
    """SIGKILL every descendant of ``pid`` while ``pid`` itself lives: an orphan of a killed process is
    re-parented to its nearest subreaper (the worker), so the next pass still finds it."""
    for _ in range(100):  # a fork bomb outruns one pass; RLIMIT_NPROC and the deadline bound it
        pids = descendants(pid)
        if not pids:
            return
        for child in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)


def kill_tree(process: subprocess.Popen[Any]) -> None:
    """SIGKILL ``process`` and every process it started - detached (``setsid``) descendants included,
    the worker's children first so that their orphans are still found - then reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(process.pid, signal.SIGSTOP)  # a stopped worker starts no new run meanwhile
        _kill_descendants(process.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def sandbox_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for workspace code: the user's, with no bytecode written and one hash seed (every run
    of a check orders sets alike). ``NO_COLOR`` is left as the user has it: a test of the project's own
    colour output (``NO_COLOR`` turns it off) failed with and without a change alike when it was set."""
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONSTARTUP", None)
    env["PYTHONHASHSEED"] = "0"
    if extra:
        env.update(extra)
    return env


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float,
    limits: Limits,
    isolation: Isolation = "none",
    writable: Sequence[Path] = (),
    readable: Sequence[Path] = (),
    cancel: CancelToken | None = None,
    env: Mapping[str, str] | None = None,
) -> RunResult:
    """Run one command to completion, in its own session, with output captured in a file.

    A run past ``timeout_s`` or a cancel kills the whole group; the result then has ``timed_out`` set (a
    cancel raises :class:`Cancelled` instead).
    """
    started = time.monotonic()
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            # This thread waits for the run: it dies with the server even when the server is SIGKILLed
            # (an out-of-memory kill: the model lives in the server), not left running workspace code.
            sandbox_argv(argv, isolation, writable, readable, die_with_caller=True),
            cwd=cwd,
            env=sandbox_env(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=limits_preexec(limits, die_with_caller=True),
        )
        unregister = cancel.on_cancel(lambda: kill_tree(process)) if cancel else (lambda: None)
        timed_out = False
        try:
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            # Always kill the group: a grandchild left running would outlive the check otherwise.
            kill_tree(process)
        finally:
            unregister()
        if cancel is not None and cancel.cancelled:
            raise Cancelled(cancel.reason)
        output.seek(0)
        text = output.read().decode("utf-8", errors="replace")
    return RunResult(process.returncode, text, timed_out, time.monotonic() - started)


class WorkerError(Exception):
    """The worker process died, did not start, or did not answer in time (it has been killed)."""


class WorkerProcess:
    """A long-lived fork server (``_worker.py``) inside the sandbox; one request at a time.

    A request that outlives its deadline plus a grace period or a cancel kills the worker's whole tree
    (:func:`kill_tree`); the next request starts a fresh one. A run that merely timed out is cleaned up by
    the worker itself (it kills every descendant after each run), so the worker stays warm.
    """

    def __init__(
        self,
        mode: Literal["mypy", "pytest"],
        *,
        limits: Limits,
        isolation: Isolation,
        writable: Sequence[Path],
        readable: Sequence[Path],
        cwd: Path,
        env: Mapping[str, str] | None = None,
        python: ProjectPython | None = None,
    ) -> None:
        self.mode = mode
        self._python = python or own_python()
        self._limits = limits
        self._isolation = isolation
        self._writable = list(writable)
        self._readable = list(readable)
        self._cwd = cwd
        self._env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._lock = threading.Lock()
        self._closed = False
        self.starts = 0

    def _start(self, deadline: float) -> subprocess.Popen[bytes]:
        """Start the worker (with ``_lock`` held); refused once the worker is closed."""
        if self._closed:
            raise WorkerError(f"the {self.mode} worker is closed")
        args: list[str] = [self.mode]
        if self._isolation in CONFINES_WRITES:
            # Nothing mounts the filesystem read-only: the worker confines writes with Landlock instead.
            args.append(json.dumps([str(path) for path in self._writable]))
        bootstrap = (
            "import runpy, sys; del sys.path[0]; "
            f"sys.argv = ['lsp-verify-worker', *{args!r}]; "
            f"runpy.run_path({str(WORKER_SCRIPT)!r}, run_name='__main__')"
        )
        argv = [self._python.executable, "-B", "-c", bootstrap]
        readable = [*self._readable, *self._python.readable, WORKER_SCRIPT.parent]
        process = subprocess.Popen(
            sandbox_argv(argv, self._isolation, self._writable, readable),
            cwd=self._cwd,
            env=sandbox_env(self._env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=limits_preexec(self._limits),
        )
        self._process = process
        self._buffer = b""
        self.starts += 1
        try:
            ready = self._read_line(process, deadline)
        except WorkerError:
            self.kill()
            raise
        if ready is None or "ready" not in ready:
            self.kill()
            raise WorkerError(f"the {self.mode} worker did not start")
        return process

    def _read_line(self, process: subprocess.Popen[bytes], deadline: float) -> dict[str, Any] | None:
        assert process.stdout is not None
        fd = process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerError(f"the {self.mode} worker did not answer in time")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise WorkerError(f"the {self.mode} worker exited (code {process.poll()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def warm_up(self) -> None:
        """Start the worker now (from a background thread) so that the first request does not wait."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                with contextlib.suppress(WorkerError, OSError):
                    self._start(time.monotonic() + 60.0)

    def request(self, request: dict[str, Any], cancel: CancelToken) -> dict[str, Any]:
        """Send one request and wait for its answer (``request["timeout"]`` plus start-up and grace)."""
        with self._lock:
            cancel.raise_if_cancelled()
            deadline = time.monotonic() + float(request["timeout"]) + 30.0
            process = self._process
            if process is None or process.poll() is not None:
                process = self._start(deadline)
            unregister = cancel.on_cancel(self.kill)
            try:
                assert process.stdin is not None
                try:
                    process.stdin.write((json.dumps(request) + "\n").encode())
                    process.stdin.flush()
                    answer = self._read_line(process, deadline)
                except (OSError, ValueError, WorkerError) as exc:
                    self.kill()
                    cancel.raise_if_cancelled()
                    raise WorkerError(str(exc)) from exc
            finally:
                unregister()
            assert answer is not None
            if answer.get("status") == "timeout" and not answer.get("contained"):
                # The worker could not make itself a subreaper (no prctl: macOS), so descendants that left
                # the run's process group may still be alive: only killing the worker's tree ends them.
                self.kill()
            return answer

    def kill(self) -> None:
        """Kill the worker sandbox (safe from any thread: a waiting request then sees end-of-file)."""
        process = self._process
        if process is not None:
            kill_tree(process)

    def close(self) -> None:
        """Kill the worker for good. A start in progress (a warm-up thread) is waited for and killed too:
        otherwise a worker started just after ``close`` would outlive its verifier."""
        self._closed = True
        self.kill()  # a request in progress sees end-of-file and lets go of the lock
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            kill_tree(process)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
