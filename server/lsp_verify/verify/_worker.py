"""The fork server that runs mypy, pytest and behaviour probes for the verifier (a script run in the sandbox).

Starting Python, mypy or pytest costs far more than checking one small candidate (pytest with its plugins:
about 0.6-2 s). This process imports the tool once - and for pytest the installed plugins, never workspace
code - then forks one child per request, so every run starts from the same clean, pre-imported state and
one run's imports (the candidate's module above all) never leak into the next.

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout. Children point fds 0-2
at /dev/null and a log file at once, so only this process ever writes the protocol pipe.

``once REQUEST_FILE`` runs one request in this process instead, with nothing pre-imported: a fresh
interpreter that does exactly what ``python -m pytest`` does, plus the result plugin. The verifier uses it
for projects that a pre-imported fork server cannot reproduce (see ``pytest_run.PytestRunner``).

This file is started with ``runpy.run_path`` (see ``sandbox.WorkerProcess``) and imports only the standard
library, mypy and pytest: it must not import lsp_verify, and its directory must not be on sys.path (it holds
a ``types.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import sys
import time
from typing import Any


def _preimport(mode: str) -> None:
    if mode == "mypy":
        import mypy.api
        import mypy.build
        import mypy.main  # noqa: F401
    else:
        import importlib.metadata

        import _pytest.doctest
        import _pytest.python  # noqa: F401
        import pytest  # noqa: F401

        # Installed plugins (pytest11 entry points) are third-party code, not the workspace's: importing
        # them here saves each child the import; pytest still registers them as usual.
        for entry in importlib.metadata.entry_points(group="pytest11"):
            # A plugin that fails to import is reported by pytest itself, in the child.
            with contextlib.suppress(Exception):
                entry.load()


def _run_mypy(request: dict[str, Any]) -> int:
    from mypy import api

    stdout, stderr, status = api.run(request["args"])
    with open(request["result_file"], "w", encoding="utf-8") as out:
        json.dump({"stdout": stdout, "stderr": stderr, "status": status}, out)
    return 0


class _ResultPlugin:
    """Writes one JSON line per event as it happens: a timed-out run still tells which tests finished."""

    def __init__(self, path: str) -> None:
        self._out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed when the child exits

    def _write(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    def pytest_runtest_logstart(self, nodeid: str, location: object) -> None:
        self._write({"event": "start", "nodeid": nodeid})

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" or report.outcome != "passed":
            if report.when == "call":
                outcome = report.outcome
            else:
                outcome = "skipped" if report.outcome == "skipped" else "error"
            message = "" if report.outcome == "passed" else _short(report)
            self._write({"event": "report", "nodeid": report.nodeid, "outcome": outcome, "message": message})

    def pytest_collectstart(self, collector: Any) -> None:
        # Which file a collection that hangs was stuck in: the last one started and never reported.
        if _is_file_collector(collector):
            self._write({"event": "collect_start", "nodeid": collector.nodeid})

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self._write({"event": "collect_error", "nodeid": report.nodeid, "message": _short(report)})
        else:
            self._write({"event": "collect_done", "nodeid": report.nodeid})


class _CollectPlugin(_ResultPlugin):
    """Also writes every collected item with where its function is defined, and the collection settings."""

    def __init__(self, path: str, root: str) -> None:
        super().__init__(path)
        self._root = root

    def pytest_sessionstart(self, session: Any) -> None:
        config = session.config
        self._write(
            {
                "event": "config",
                "python_files": [str(p) for p in config.getini("python_files")],
                "addopts": [str(a) for a in config.getini("addopts")],
                "filterwarnings": [str(f) for f in config.getini("filterwarnings")],
                "inipath": self._relative(str(config.inipath)) if config.inipath else "",
            }
        )

    def pytest_collection_finish(self, session: Any) -> None:
        import inspect

        for item in session.items:
            function = getattr(item, "function", None)
            def_file, qualname, line = "", "", -1
            try:
                function = inspect.unwrap(function) if function is not None else None
                code = getattr(function, "__code__", None)
                if code is not None:
                    def_file = self._relative(code.co_filename)
                    qualname = str(getattr(function, "__qualname__", ""))
                    line = int(code.co_firstlineno) - 1
            except Exception:  # an exotic item: it still runs, it is only never "near" anything
                pass
            self._write(
                {
                    "event": "item",
                    "nodeid": item.nodeid,
                    "file": self._relative(str(item.path)),
                    "def_file": def_file,
                    "qualname": qualname,
                    "line": line,
                }
            )

    def _relative(self, path: str) -> str:
        # Not realpath: the shadow's entries are symlinks into the user's tree, and the path pytest
        # imported a file by is the one inside the shadow.
        relative = os.path.relpath(os.path.abspath(path), self._root)
        return "" if relative.startswith("..") else relative.replace(os.sep, "/")


def _is_file_collector(collector: Any) -> bool:
    import pytest

    return isinstance(collector, pytest.File)


def _short(report: Any) -> str:
    text = str(getattr(report, "longreprtext", "") or "")
    if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and lines[-1].endswith(("DocTestFailure", "UnexpectedException")):
        # A doctest: keep the failing example and what it expected and got (the traceback of an
        # unexpected exception ends with the exception itself).
        start = max((i for i, line in enumerate(lines) if ">>>" in line), default=0)
        kept = lines[start:]
        if len(kept) > 12:
            kept = kept[:4] + kept[-8:]
        return "\n".join(kept)[:2000]
    errors = [line for line in lines if line.startswith("E ")]
    return "\n".join((errors or lines)[-6:])[:2000]


def _run_pytest(request: dict[str, Any]) -> int:
    import pytest

    sys.dont_write_bytecode = True
    # The shadow comes first: an installed or editable copy of the user's package must not win.
    sys.path.insert(0, request["cwd"])
    plugin = _ResultPlugin(request["result_file"])
    code = int(pytest.main(request["args"], plugins=[plugin]))
    _check_imports(request, plugin)
    return code


def _run_collect(request: dict[str, Any]) -> int:
    """``pytest --collect-only`` with the project's configuration; the items go to the result file."""
    import pytest

    sys.dont_write_bytecode = True
    sys.path.insert(0, request["cwd"])
    plugin = _CollectPlugin(request["result_file"], os.path.abspath(request["cwd"]))
    return int(pytest.main(request["args"], plugins=[plugin]))


class _CallTimeout(BaseException):
    """A probe call ran past its deadline (a BaseException, so a candidate's ``except Exception`` cannot
    swallow it)."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _CallTimeout


def _run_probe(request: dict[str, Any]) -> int:
    """Call ``module.function(<args>)`` for each input; write one fingerprint per input as a JSON list.

    A fingerprint is a digest of the result's ``repr`` or ``!`` and the exception's type name: equal
    fingerprints mean the candidates behaved alike on that input.
    """
    import hashlib
    import importlib

    sys.dont_write_bytecode = True
    sys.path.insert(0, request["path"])
    module = importlib.import_module(request["module"])
    function = getattr(module, request["function"])
    signal.signal(signal.SIGALRM, _on_alarm)
    budget = float(request["call_timeout"])
    # Calls stop well before the fork server's deadline, so a slow candidate still reports what it did.
    stop = time.monotonic() + max(0.5, float(request["timeout"]) - 1.0)
    # Argument lists are evaluated in a copy of the module's namespace, made once: they only read it.
    namespace = {**vars(module), "__lsp_verify_probe__": function}
    outputs = []
    for arguments in request["inputs"]:
        if time.monotonic() >= stop:
            outputs.append("!timeout")
            continue
        signal.setitimer(signal.ITIMER_REAL, budget)
        try:
            result = eval(f"__lsp_verify_probe__({arguments})", namespace)  # sandboxed, like the tests
            text = _canonical(result)
            outputs.append(hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16])
        except _CallTimeout:
            outputs.append("!timeout")
        except BaseException as exc:  # the candidate's behaviour, whatever it raised
            outputs.append("!" + type(exc).__name__)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    with open(request["result_file"], "w", encoding="utf-8") as out:
        json.dump(outputs, out)
    return 0


def _canonical(value: object, depth: int = 0) -> str:
    """``repr`` with floats rounded (0.1 + 0.2 and 0.3 agree), sets ordered and addresses dropped."""
    if depth > 20:
        return "..."
    if isinstance(value, float):
        return format(value, ".9g")
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_canonical(item, depth + 1) for item in value)
        return f"{type(value).__name__}[{inner}]"
    if isinstance(value, (set, frozenset)):
        return "set{" + ", ".join(sorted(_canonical(item, depth + 1) for item in value)) + "}"
    if isinstance(value, dict):
        items = sorted(f"{_canonical(k, depth + 1)}: {_canonical(v, depth + 1)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


def _check_imports(request: dict[str, Any], plugin: _ResultPlugin) -> None:
    """Record where the edited module was imported from: the shadow, or (wrongly) the user's tree."""
    forbidden = os.path.realpath(request["forbidden_file"])
    expected = os.path.realpath(request["edited_file"])
    found: dict[str, str] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        real = os.path.realpath(path)
        if real in (forbidden, expected):
            found[name] = real
    plugin._write({"event": "imports", "modules": found, "leaked": sorted(set(found.values()) - {expected})})


def _child(request: dict[str, Any]) -> None:
    code = 70
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        log = os.open(request["log_file"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        cpu = int(request["timeout"]) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        os.chdir(request["cwd"])
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        code = _RUNS[request["op"]](request)
    except BaseException as exc:
        try:
            sys.stderr.write(f"lsp-verify worker child failed: {exc!r}\n")
            sys.stderr.flush()
        except Exception:
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _serve(request: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(request)
    # The child does this too: whichever runs first wins the race, harmlessly.
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    deadline = started + float(request["timeout"])
    status = "ok"
    code = -1
    delay = 0.002
    while True:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(wait_status)
            break
        if time.monotonic() >= deadline:
            status = "timeout"
            _kill_group(pid)
            os.waitpid(pid, 0)
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
    # Whatever the run left behind in its group (a background server a test forgot) goes too.
    _kill_group(pid)
    return {"status": status, "exit": code, "seconds": time.monotonic() - started}


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


_RUNS = {"mypy": _run_mypy, "pytest": _run_pytest, "collect": _run_collect, "probe": _run_probe}


def _once(request_file: str) -> None:
    """Run one request in this (fresh) process; its output is the caller's to capture."""
    with open(request_file, encoding="utf-8") as source:
        request = json.load(source)
    os.chdir(request["cwd"])
    code = _RUNS[request["op"]](request)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "pytest"
    if mode == "once":
        _once(sys.argv[2])
    _preimport(mode)
    protocol = sys.stdout
    protocol.write(json.dumps({"ready": mode, "pid": os.getpid()}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = _serve(json.loads(line))
        protocol.write(json.dumps(answer) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
