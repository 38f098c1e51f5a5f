"""Running workspace code safely: process groups, deadlines, resource limits, and isolation.

Every mypy or pytest run happens in a subprocess that is the leader of its own session (so one
``killpg`` reaches it and all its descendants), under CPU / memory / file-size limits set before ``exec``,
with a wall-clock deadline after which the whole group gets SIGKILL. Output goes to files or is read without
blocking, so a killed group whose grandchild still holds a pipe can never hang the caller.

Isolation, strongest available first (``Settings.sandbox``: "auto" picks the first that works):

- ``bwrap`` (bubblewrap): no network (``--unshare-net``), its own PID namespace (killing the sandbox kills
  every process in it, even ones that called ``setsid``), the whole filesystem read-only - the workspace
  included - except the shadow directory and the mypy cache, and a private ``/tmp``.
- ``unshare``: no network only (``unshare -n``, with ``-r`` when not root).
- ``none``: process group, limits and deadline only; the user's tree is protected only by running against
  the shadow (and the tests check it is unchanged afterwards).

RLIMIT_NPROC is set only when not running as root: the kernel never enforces it for uid 0, so there a fork
bomb is stopped by the deadline (and, under bwrap, by killing the PID namespace).
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

Isolation = Literal["bwrap", "unshare", "none"]

WORKER_SCRIPT = Path(__file__).with_name("_worker.py")


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


@functools.cache
def _unshare_works() -> bool:
    return shutil.which("unshare") is not None and _probe(_unshare_prefix())


def _unshare_prefix() -> list[str]:
    return ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]


def choose_isolation(mode: str = "auto") -> Isolation:
    """The isolation that ``mode`` ("auto", "bwrap", "none") gives on this machine."""
    if mode == "none":
        return "none"
    if _bwrap_works():
        return "bwrap"
    if mode == "bwrap":
        return "none"  # asked for but unavailable: isolation_report() says so
    return "unshare" if _unshare_works() else "none"


def isolation_report(mode: str = "auto") -> str:
    """For ``lsp-verify doctor``: which isolation runs workspace code, and what it guarantees."""
    chosen = choose_isolation(mode)
    nproc = (
        "RLIMIT_NPROC is not enforced for root: a fork bomb is stopped by the deadline"
        if os.geteuid() == 0
        else "RLIMIT_NPROC limits forks"
    )
    common = f"own process group, wall-clock deadline, CPU/memory/file-size limits; {nproc}"
    if chosen == "bwrap":
        return (
            f"isolation: bubblewrap ({shutil.which('bwrap')}): no network, own PID namespace, workspace and "
            f"system read-only, only the shadow directory and the mypy cache writable, private /tmp; {common}"
        )
    hint = (
        "" if shutil.which("bwrap") else " (install bubblewrap - Debian/Ubuntu: apt-get install bubblewrap)"
    )
    if mode == "bwrap":
        hint = f" - sandbox is 'bwrap' but bubblewrap is not usable here{hint}"
    if chosen == "unshare":
        return (
            f"isolation: unshare: no network; the filesystem is NOT read-only (tests could write through "
            f"the shadow's symlinks into the workspace){hint}; {common}"
        )
    return f"isolation: none (network and filesystem are open to tests){hint}; {common}"


def sandbox_argv(
    argv: Sequence[str], isolation: Isolation, writable: Sequence[Path], readable: Sequence[Path] = ()
) -> list[str]:
    """``argv`` wrapped in the chosen isolation; ``writable`` directories stay writable under bwrap."""
    if isolation == "none":
        return list(argv)
    if isolation == "unshare":
        return [*_unshare_prefix(), *argv]
    wrapped = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    # The private /tmp hides what lives there on the host: bring back what the run must read (a workspace
    # or interpreter under /tmp) read-only, then the writable directories.
    tmp = Path(tempfile.gettempdir()).resolve()
    for path in readable:
        real = path.resolve()
        if (real == tmp or tmp in real.parents or Path("/tmp") in real.parents) and real.exists():
            wrapped += ["--ro-bind", str(real), str(real)]
    for path in writable:
        wrapped += ["--bind", str(path), str(path)]
    # No --die-with-parent: its PR_SET_PDEATHSIG fires when the *thread* that started bwrap exits, which
    # would kill workers started from a warm-up thread. A worker exits on end-of-file on stdin instead.
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


def limits_preexec(limits: Limits) -> Callable[[], None]:
    """A ``preexec_fn`` that applies ``limits`` in the child before ``exec``."""
    nproc = _nproc_limit()

    def apply() -> None:
        memory = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        size = limits.file_size_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        if limits.cpu_s is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return apply


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the session led by ``process`` (every descendant that kept the group), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def sandbox_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for workspace code: no bytecode written, no colour, no pytest plugin caches."""
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONSTARTUP", None)
    env["PYTHONHASHSEED"] = "0"
    env["NO_COLOR"] = "1"
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
            sandbox_argv(argv, isolation, writable, readable),
            cwd=cwd,
            env=sandbox_env(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=limits_preexec(limits),
        )
        unregister = cancel.on_cancel(lambda: kill_group(process)) if cancel else (lambda: None)
        timed_out = False
        try:
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            # Always kill the group: a grandchild left running would outlive the check otherwise.
            kill_group(process)
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

    A request that outlives its deadline plus a grace period, a cancel, or a timed-out run (whose
    escaped descendants may still be alive) kills the whole worker sandbox; the next request starts a
    fresh one.
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
    ) -> None:
        self.mode = mode
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
        bootstrap = (
            "import runpy, sys; del sys.path[0]; "
            f"sys.argv = ['lsp-verify-worker', {self.mode!r}]; "
            f"runpy.run_path({str(WORKER_SCRIPT)!r}, run_name='__main__')"
        )
        argv = [sys.executable, "-B", "-c", bootstrap]
        readable = [*self._readable, Path(sys.prefix), WORKER_SCRIPT.parent]
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
            if answer.get("status") == "timeout":
                # Descendants that left the run's process group may still be alive: only killing the
                # sandbox (its PID namespace under bwrap) is sure to end them.
                self.kill()
            return answer

    def kill(self) -> None:
        """Kill the worker sandbox (safe from any thread: a waiting request then sees end-of-file)."""
        process = self._process
        if process is not None:
            kill_group(process)

    def close(self) -> None:
        """Kill the worker for good. A start in progress (a warm-up thread) is waited for and killed too:
        otherwise a worker started just after ``close`` would outlive its verifier."""
        self._closed = True
        self.kill()  # a request in progress sees end-of-file and lets go of the lock
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            kill_group(process)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
