"""The fork server that runs mypy, pytest and behaviour probes for the verifier (a script run in the sandbox).

Starting Python, mypy or pytest costs far more than checking one small candidate (pytest with its plugins:
about 0.6-2 s). This process imports the tool once - and for pytest the installed plugins, never workspace
code - then forks one child per request, so every run starts from the same clean, pre-imported state and
one run's imports (the candidate's module above all) never leak into the next.

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout. Children point fds 0-2
at /dev/null and a log file at once, so only this process ever writes the protocol pipe.

Nothing a run starts outlives it: this process is a child subreaper (Linux), so a run's detached
descendants (``setsid``, double fork) re-parent to it, and after every run it kills every descendant it
finds in /proc. End-of-file on stdin - the server exited, crashed or was SIGKILLed - ends a run in progress
at once, and this process cleans up and exits (see ``sandbox.py`` for why this, not PR_SET_PDEATHSIG).
Without bubblewrap the server passes the directories runs may write; this process then confines itself and
every descendant to them with Landlock before it reports ready.

``once REQUEST_FILE`` runs one request in this process instead, with nothing pre-imported: a fresh
interpreter that does exactly what ``python -m pytest`` does, plus the result plugin. The verifier uses it
for projects that a pre-imported fork server cannot reproduce (see ``pytest_run.PytestRunner``).

This file is started with ``runpy.run_path`` (see ``sandbox.WorkerProcess``) and imports only the standard
library, mypy and pytest: it must not import lsp_verify, and its directory must not be on sys.path (it holds
a ``types.py``).
"""

from __future__ import annotations

import collections
import contextlib
import fnmatch
import json
import os
import re
import resource
import select
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
        # them here saves each child the import; pytest still registers them as usual. Where the user's
        # environment turns their autoloading off, pytest imports none of them, and neither does this.
        if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            return
        # The project's Python may be older than lsp-verify's: before 3.10 entry_points() is a dict by group.
        found: Any = importlib.metadata.entry_points()
        plugins = found.select(group="pytest11") if hasattr(found, "select") else found.get("pytest11", ())
        for entry in plugins:
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
        self._hypothesis: Any = None
        """``hypothesis.core``, when its unseeded tests' seeds are to be made alike (see below)."""

    def _write(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    def unimported(self, nodeid: str, message: str) -> None:
        """A file only unittest's discovery pattern found that could not be imported (see
        :func:`_unittest_discovery`): no error, but said, so that a change that causes it can be told."""
        self._write({"event": "unittest_unimported", "nodeid": nodeid, "message": message})

    def close(self) -> None:
        # Left to the exit, an open file is a ResourceWarning at the end of a run that pytest stopped with
        # an exception: under the project's `filterwarnings = error` the last line of the log, and what
        # the user was told instead of pytest's own error.
        self._out.close()

    def pytest_collection_finish(self, session: object) -> None:
        # Hypothesis draws new inputs on every run unless it is given a seed: a property test would then
        # pass on the baseline and fail on a candidate (or the other way round) by chance - hyperlink's
        # health check "filtering out a lot of inputs" did, for a change to another function. Every test
        # of a check's runs draws the same inputs, unless the project or the test chose its own seed
        # (`@seed`, `derandomize`, `--hypothesis-seed`, which Hypothesis prefers).
        core = sys.modules.get("hypothesis.core")
        self._hypothesis = (
            core if core is not None and getattr(core, "global_force_seed", 0) is None else None
        )
        if self._hypothesis is not None and not _hypothesis_random(self._hypothesis):
            # A version without the generator below: its global seed (`pytest --hypothesis-seed=0`).
            setattr(self._hypothesis, "global_force_seed", 0)  # noqa: B010 - only some versions have it
            self._hypothesis = None

    def pytest_runtest_setup(self, item: object) -> None:
        # The generator Hypothesis draws each test's seed from, reset before every test: the test's draws
        # are the same whichever tests ran before it (a candidate's run of its own tests first, the rest
        # after). Not its global seed, with which Hypothesis ignores the example database - the failures
        # it saved in the user's runs, which `python -m pytest` replays first, were never tried.
        if self._hypothesis is not None:
            _hypothesis_random(self._hypothesis, reset=True)

    def pytest_runtest_logstart(self, nodeid: str, location: object) -> None:
        # When (the system's monotonic clock, which the runner reads too): whether a test still running at
        # the run's time limit had held it up, or had only just started.
        self._write({"event": "start", "nodeid": nodeid, "t": time.monotonic()})

    def pytest_runtest_logfinish(self, nodeid: str, location: object) -> None:
        # After its teardown: a test whose call passed can still hang or crash the run in its teardown or
        # its report (mistune: a MemoryError after the call had passed).
        self._write({"event": "finish", "nodeid": nodeid})

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


class _CallRecorder:
    """Records, per test, which of the workspace's functions it ran: one ``calls`` event per test item
    (setup, call and teardown) with the file (relative to ``root``) and qualified name of every function of
    a file under ``root`` that was entered, this environment's own files aside. ``sys.setprofile`` only:
    no line events, so a traced run takes about one to two times as long as a plain one."""

    def __init__(self, results: _ResultPlugin, root: str) -> None:
        self._results = results
        self._root = os.path.abspath(root) + os.sep
        prefixes = {os.path.abspath(p) for p in (sys.prefix, sys.exec_prefix, sys.base_prefix)}
        prefixes |= {os.path.realpath(p) for p in prefixes}
        self._outside = tuple(prefix + os.sep for prefix in prefixes)
        self._known: dict[Any, tuple[str, str] | None] = {}
        self._entered: set[tuple[str, str]] = set()

    def _key(self, code: Any) -> tuple[str, str] | None:
        filename = code.co_filename
        if not filename.startswith(self._root) or filename.startswith(self._outside):
            return None
        qualname = getattr(code, "co_qualname", code.co_name).replace(".<locals>", "")
        return filename[len(self._root) :].replace(os.sep, "/"), qualname

    def _profile(self, frame: Any, event: str, arg: object) -> None:
        if event == "call":
            code = frame.f_code
            try:
                key = self._known[code]
            except KeyError:
                key = self._known[code] = self._key(code)
            if key is not None:
                self._entered.add(key)

    def plugin(self) -> object:
        """The pytest plugin that records around each test."""
        import threading

        import pytest

        recorder = self

        class Recording:
            @pytest.hookimpl(hookwrapper=True)
            def pytest_runtest_protocol(self, item: Any, nextitem: object) -> Any:
                recorder._entered = set()
                sys.setprofile(recorder._profile)
                threading.setprofile(recorder._profile)
                try:
                    yield
                finally:
                    sys.setprofile(None)
                    threading.setprofile(None)
                    entered = sorted(recorder._entered)
                    recorder._results._write({"event": "calls", "nodeid": item.nodeid, "functions": entered})

        return Recording()


class _CollectPlugin(_ResultPlugin):
    """Also writes every collected item with where its function is defined, and the collection settings."""

    def __init__(self, path: str, root: str, preloaded: list[str]) -> None:
        super().__init__(path)
        self._root = root
        self._preloaded = preloaded

    def pytest_sessionstart(self, session: Any) -> None:
        config = session.config
        self._write(
            {
                "event": "config",
                "python_files": [str(p) for p in config.getini("python_files")],
                "addopts": [str(a) for a in config.getini("addopts")],
                "filterwarnings": [str(f) for f in config.getini("filterwarnings")],
                "inipath": self._relative(str(config.inipath)) if config.inipath else "",
                "doctest_modules": bool(config.getoption("doctestmodules", False)),
                "preloaded": self._preloaded,
            }
        )

    def pytest_collection_finish(self, session: Any) -> None:
        import inspect

        # The conftest.py files the walk loaded, those of directories without a selected test included:
        # a run by node id loads only those on its tests' paths (see _conftests_of_the_walk).
        loaded = getattr(session.config.pluginmanager, "_conftest_plugins", ())
        files = sorted({str(f) for m in loaded if isinstance(f := getattr(m, "__file__", None), str)})
        self._write({"event": "conftests", "files": [self._relative(f) for f in files]})
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
                    "doctest": type(item).__name__ == "DoctestItem",
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
    # A chained exception is printed traceback by traceback: the last is the one that failed the test.
    last = max((i for i, line in enumerate(lines) if line.startswith(_CHAINED)), default=-1)
    errors = [line for line in lines[last + 1 :] if line.startswith("E ")]
    if not errors:
        return "\n".join(lines[-6:])[:2000]
    # The exception's own line comes first; the lines after it explain it (a diff), then come pytest's and
    # unittest's hints ("Use -v to get more diff", "Diff is 1234 characters long").
    return "\n".join(errors[:8])[:2000]


_CHAINED = ("The above exception was the direct cause", "During handling of the above exception")


def _prefer_shadow(request: dict[str, Any]) -> None:
    """Point what this process imports from the workspace at the shadow's copy instead.

    An editable install of a ``src/`` layout puts ``<workspace>/src`` on ``sys.path`` (a ``.pth`` file), as
    does ``PYTHONPATH=src``; setuptools' editable finders map package names to workspace directories. Left
    alone, the tests would import the user's unmodified module and a candidate could never be tested (the
    import check refuses such a run). Entries whose counterpart is missing from the shadow (a copied shadow
    leaves out ``.venv``) stay as they are. The Pythons the tests start get the redirected entries first on
    their ``PYTHONPATH``.
    """
    workspace = request.get("workspace")
    if not workspace:
        return
    real_workspace = os.path.realpath(workspace)
    shadow = request["cwd"]
    # For a monorepo's member, the mirror of the repository around it, where another member's change may be
    # shown (for the tests of a member that imports it, whose editable install names the user's directory).
    top, outer = request.get("top"), request.get("outer")
    real_top = os.path.realpath(top) if top else None
    real_outer = os.path.realpath(outer) if outer else ""

    def redirect(entry: str) -> str:
        real = os.path.realpath(entry or os.getcwd())
        if real == real_workspace or real.startswith(real_workspace + os.sep):
            counterpart = os.path.normpath(os.path.join(shadow, os.path.relpath(real, real_workspace)))
            return counterpart if os.path.exists(counterpart) else entry
        if real_top and outer and real.startswith(real_top + os.sep):
            # Only where the mirror holds something of its own: elsewhere it links to the user's entry.
            counterpart = os.path.normpath(os.path.join(outer, os.path.relpath(real, real_top)))
            if os.path.realpath(counterpart).startswith(real_outer + os.sep):
                return counterpart
        return entry

    # The Pythons the tests start (a console script, ``python -m pkg``) read the same .pth files and would
    # import the user's copy: what is redirected here goes first on their PYTHONPATH too.
    inherited: list[str] = []
    redirected = []
    for entry in sys.path:
        moved = redirect(entry) if isinstance(entry, str) else entry
        if moved != entry and entry:
            inherited.append(moved)
        redirected.append(moved)
    sys.path[:] = redirected
    for finder in sys.meta_path:
        mapping = getattr(sys.modules.get(getattr(finder, "__module__", "") or ""), "MAPPING", None)
        if isinstance(mapping, dict):
            for name, path in list(mapping.items()):
                if isinstance(path, str):
                    mapping[name] = moved = redirect(path)
                    if moved != path:  # a package's directory (or a module): its parent holds it
                        inherited.append(os.path.dirname(moved))
    sys.path_importer_cache.clear()
    if inherited:
        existing = os.environ.get("PYTHONPATH", "")
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*inherited, *filter(None, [existing])]))


_CACHE_OPTIONS = frozenset(
    {
        "--lf", "--last-failed", "--ff", "--failed-first", "--nf", "--new-first", "--cache-clear",
        "--sw", "--stepwise", "--sw-skip", "--stepwise-skip", "--sw-reset", "--stepwise-reset",
    }
)  # fmt: skip
"""The cacheprovider's and stepwise's flags that take no value."""


def _bare_main() -> None:
    """Make ``__main__`` what ``python -m pytest`` gives a test: not this script. A test that looks at it
    would otherwise see the worker's file, and Hypothesis draws from the constants of every module outside
    the environment's site-packages: this script's ~160 (an editable install's path is such a place) made a
    project's own edge values (``x == 1234567``) several times rarer than under plain pytest, so a property
    test that pytest fails every time passed the change most runs. The script keeps running: its functions
    hold its globals."""
    import types

    bare = types.ModuleType("__main__")
    bare.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = bare


def _plain_argv(pytest: Any) -> None:
    """Make ``sys.argv`` what ``python -m pytest`` gives a test: pytest's ``__main__.py`` and no argument,
    not this worker's (``lsp-verify-worker pytest``). A test that runs the project's ``main()``, whose
    ``argparse`` reads the command line, exited 2 with and without a change alike and guarded nothing."""
    sys.argv = [os.path.join(os.path.dirname(pytest.__file__), "__main__.py")]


def _hypothesis_random(core: Any, *, reset: bool = False) -> bool:
    """Whether ``hypothesis.core`` keeps the generator it draws unseeded tests' seeds from (a thread-local
    ``_hypothesis_global_random``); ``reset``: set it to a fresh ``Random(0)``."""
    import random

    local = getattr(core, "threadlocal", None)
    if local is None or not hasattr(local, "_hypothesis_global_random"):
        return False
    if reset:
        local._hypothesis_global_random = random.Random(0)
    return True


def _without_cache_options(args: list[str]) -> list[str]:
    """``args`` without the cacheprovider's and stepwise's options (``--lfnf`` with its value, given as
    ``--lfnf=all`` or as the next argument)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--lfnf", "--last-failed-no-failures"):
            skip = True
        elif not (
            arg in _CACHE_OPTIONS or arg.startswith(("--lfnf=", "--last-failed-no-failures=", "--cache-show"))
        ):
            out.append(arg)
    return out


def _plain_runs() -> object:
    """A plugin that switches off, for every run, the installed plugins that change how tests are run
    rather than what a test checks: pytest-cov (coverage tracing slows each run several-fold, its report
    files may be read-only symlinks in a shadow, and ``--cov-fail-under`` fails a run of a few tests) and
    pytest-xdist (``-n auto`` in addopts starts that many more interpreters per run, whose imports the result
    plugin never sees). Their own switches, added after the project's addopts, so the last word is ours; only
    when the plugin is loaded (an option of a plugin that is not would be a usage error). The price, which
    the README states: a coverage threshold is not checked, and a test that fails only in a worker of its
    own (state an earlier test left behind in one process) passes here.

    And every run goes on to its end: ``-x`` or ``--maxfail`` in addopts stopped a run at its first failure,
    so a test that failed before the change too hid every test after it (a change that broke one passed).
    The options that pick tests from pytest's cache (``--lf``, ``--ff``, ``--sw``: which tests run first, or
    which alone) are taken out: a shadow's cache is empty, and every selected test must run."""
    import pytest

    class PlainRuns:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_load_initial_conftests(self, early_config: Any, parser: Any, args: list[str]) -> Any:
            args[:] = _without_cache_options(args)
            args.append("--maxfail=0")
            plugins = early_config.pluginmanager
            if plugins.hasplugin("pytest_cov"):
                args.append("--no-cov")
                # pytest-cov decides whether to start from the options parsed so far, right after this.
                early_config.known_args_namespace.no_cov = True
            if plugins.hasplugin("xdist"):
                args += ["--numprocesses=0", "--dist=no"]
            yield

    return PlainRuns()


def _unittest_discovery(results: _ResultPlugin) -> object:
    """A plugin that also collects the tests ``python -m unittest`` would run and pytest never does.

    - A test module's ``load_tests`` function (unittest's load_tests protocol): ``python -m unittest`` asks
      such a module which tests it holds; pytest collects only its module-level ``TestCase`` classes.
      Projects that build their cases in ``load_tests`` (one ``TestCase`` instance per line of a conformance
      table, classes made in a loop, a ``DocTestSuite`` of the package) have them run by their own test
      command and never by pytest: a change that breaks only them would pass. Each is an item under
      ``<module>::load_tests``; a test pytest already runs itself (an instance of a class it collects from
      the module, its id unique in the suite) is left to pytest. A module whose ``load_tests`` raises adds
      nothing (pytest alone would not have run it either).
    - Files unittest's discovery finds (``test*.py``: ``tests.py``, ``test.py``, ``tests_foo.py``) and
      pytest's default ``python_files`` does not, in a project that does not set ``python_files``: such a
      project's tests run under unittest. Only a file that mentions ``TestCase`` or ``load_tests`` is
      collected, as pytest collects a test module, and one that cannot be imported adds nothing (it is
      only written to ``results``).
    """
    import unittest

    import pytest

    class _UnittestFailure(Exception):
        """What unittest reported for a failed or erroring test (its traceback, as unittest prints it)."""

    class LoadedTest(pytest.Item):
        def __init__(self, *, test: Any, function: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.test = test
            self.function = function  # where the test is defined, for the collection's record
            self.funcargs: dict[str, Any] = {}  # as pytest's own items have (plugins' hooks read it)

        def runtest(self) -> None:
            result = unittest.TestResult()
            # In a suite of its own, as unittest runs it: setUpClass / setUpModule and their teardowns.
            unittest.TestSuite([self.test]).run(result)
            problems = [text for _, text in result.errors + result.failures]
            problems += ["unexpected success" for _ in result.unexpectedSuccesses]
            if problems:
                raise _UnittestFailure(problems[0])
            if result.skipped:
                pytest.skip(str(result.skipped[0][1]))

        def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
            if isinstance(excinfo.value, _UnittestFailure):
                return _unittest_failure(str(excinfo.value))
            return super().repr_failure(excinfo)

        def reportinfo(self) -> Any:
            return self.path, None, self.name

    class LoadTests(pytest.Collector):
        def __init__(self, *, module: Any, classes: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.module = module
            # The ids of the tests pytest runs itself: each method of the TestCase classes it collects from
            # the module, an instance made with the method's name.
            self.pytest_runs: set[str] = set()
            for cls in classes:
                # A class whose instances need more than a method name: pytest cannot run it either.
                with contextlib.suppress(Exception):
                    self.pytest_runs.update(
                        test.id() for test in _flattened(unittest.TestLoader().loadTestsFromTestCase(cls))
                    )

        def collect(self) -> Any:
            failed = getattr(unittest.loader, "_FailedTest", ())
            try:  # unittest turns what load_tests raises into a failed test; a SystemExit it lets through
                tests = list(_flattened(unittest.TestLoader().loadTestsFromModule(self.module)))
            except (Exception, SystemExit):
                return []
            if any(isinstance(test, failed) for test in tests):
                return []
            prefix = self.module.__name__ + "."
            id_counts = collections.Counter(test.id() for test in tests)
            kept = []  # (test, name)
            for test in tests:
                ident = test.id()
                # A test pytest runs itself: an instance of a class it collects, named by a method only.
                if id_counts[ident] == 1 and ident in self.pytest_runs:
                    continue
                name = ident[len(prefix) :] if ident.startswith(prefix) else ident
                kept.append((test, re.sub(r"[\s\[\]]|::", "_", name.replace("<locals>.", ""))))
            name_counts = collections.Counter(name for _, name in kept)
            seen: dict[str, int] = {}
            items = []
            for test, name in kept:
                if name_counts[name] > 1:  # one TestCase per row of a table: numbered in the suite's order
                    seen[name] = seen.get(name, 0) + 1
                    name += "-" + str(seen[name])
                method = getattr(test, "_testMethodName", "")
                function = getattr(type(test), method, None) if method else None
                items.append(LoadedTest.from_parent(self, name=name, test=test, function=function))
            return items

    class UnittestModule(pytest.Module):
        imported = False

        def collect(self) -> Any:
            # A framework's tests that need its runner, a script that exits: nothing, only said.
            try:
                self.obj  # noqa: B018 - imports it
            except (Exception, SystemExit) as exc:
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                reason = re.sub(r"^E\s+", "", lines[-1]) if lines else type(exc).__name__
                results.unimported(self.nodeid, reason)
                return []
            self.imported = True
            return super().collect()

    class UnittestDiscovery:
        def pytest_collect_file(self, file_path: Any, parent: Any) -> Any:
            # The patterns are pytest_run.UNITTEST_FILES and DEFAULT_PYTHON_FILES (this file imports no
            # lsp_verify module).
            name = file_path.name
            patterns = [str(pattern) for pattern in parent.config.getini("python_files")]
            if (
                not fnmatch.fnmatch(name, "test*.py")
                or patterns != ["test_*.py", "*_test.py"]  # the project says which files hold its tests
                or parent.session.isinitpath(file_path)  # pytest collects a file it is given itself
                or any(fnmatch.fnmatch(name, pattern) for pattern in patterns)
            ):
                return None
            try:
                with open(file_path, "rb") as source:
                    text = source.read(1 << 20)
            except OSError:
                return None
            if not re.search(rb"\bTestCase\b|\bload_tests\b", text):
                return None
            # A script that runs its tests when imported (`unittest.main()` at the top level, as ply's do)
            # is run, not imported, by its project: unittest's discovery fails on it too.
            if re.search(rb"(?m)^unittest\.main\(", text):
                return None
            return UnittestModule.from_parent(parent, path=file_path)

        @pytest.hookimpl(hookwrapper=True)
        def pytest_make_collect_report(self, collector: Any) -> Any:
            outcome = yield
            if not isinstance(collector, pytest.Module) or type(collector).__name__ == "DoctestModule":
                return
            report = outcome.get_result()
            if report.outcome != "passed":
                return
            if isinstance(collector, UnittestModule) and not collector.imported:
                return  # a unittest-only file that could not be imported: nothing
            module = collector.obj
            if not callable(getattr(module, "load_tests", None)):
                return
            classes = [node.obj for node in report.result if isinstance(node, pytest.Class)]
            classes = [cls for cls in classes if isinstance(cls, type) and issubclass(cls, unittest.TestCase)]
            report.result.append(
                LoadTests.from_parent(collector, name="load_tests", module=module, classes=classes)
            )

    return UnittestDiscovery()


def _unittest_failure(text: str) -> str:
    """unittest's report of a failed test, its exception's lines marked as pytest marks them (``E   ``), so
    the one-line message is the error, not the traceback's last frame. A doctest's failure keeps what
    matters: the example, what it expected and what it got."""
    lines = text.rstrip().splitlines()
    header = max(
        (i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")),
        default=-1,
    )
    start = header + 1
    while start < len(lines) and lines[start].startswith(" "):
        start += 1
    error = [line for line in lines[start:] if line.strip()]
    example = next((i for i, line in enumerate(error) if line == "Failed example:"), None)
    if example is not None:
        error = error[example:]
    return "\n".join(lines[:start] + ["E   " + line for line in error])


def _flattened(suite: Any) -> Any:
    import unittest

    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from _flattened(test)
        else:
            yield test


def _run_pytest(request: dict[str, Any]) -> int:
    sys.dont_write_bytecode = True
    # The shadow comes first: an installed or editable copy of the user's package must not win. Before
    # pytest is imported: in a fresh process (``once``), a package pytest itself imports (pluggy, iniconfig,
    # pygments), when it is the project's own, comes from the candidate's copy, as `python -m pytest` in the
    # user's tree imports the edited one.
    _prefer_shadow(request)
    _bare_main()
    sys.path.insert(0, request["cwd"])
    import pytest

    _plain_argv(pytest)
    plugin = _ResultPlugin(request["result_file"])
    plugins = [plugin, _plain_runs(), _unittest_discovery(plugin)]
    if request.get("trace_calls"):
        plugins.append(_CallRecorder(plugin, request["cwd"]).plugin())
    if request.get("conftests"):
        plugins.append(_conftests_of_the_walk(request["cwd"], request["conftests"]))
    try:
        code = int(pytest.main(request["args"], plugins=plugins))
        _check_imports(request, plugin)
    finally:
        plugin.close()
    return code


def _conftests_of_the_walk(root: str, conftests: list[str]) -> object:
    """A plugin that loads, before a run by node id collects, the conftest.py files the project's whole
    collection loaded (``conftests``, relative to ``root``). ``python -m pytest`` loads every one it walks
    past, in directories that hold no selected test too: a ``tools/conftest.py`` whose ``pytest_configure``
    turns warnings into errors, a ``src/conftest.py`` that puts ``src`` on ``sys.path``. A run naming
    ``tests/test_x.py::test_y`` loads only those on that path; a change that only such a hook would fail
    passed. Their fixtures still apply to their own directory alone. Through pytest's own loader (private:
    ``_loadconftestmodules`` from pytest 8, ``_getconftestmodules`` before, each asked for what it takes)."""
    import inspect
    from pathlib import Path

    import pytest

    class ConftestsOfTheWalk:
        @pytest.hookimpl(tryfirst=True)
        def pytest_collection(self, session: Any) -> None:
            config = session.config
            plugins = config.pluginmanager
            load = getattr(plugins, "_loadconftestmodules", None) or getattr(
                plugins, "_getconftestmodules", None
            )
            if load is None:
                return
            wanted = inspect.signature(load).parameters
            options: dict[str, Any] = {}
            if "importmode" in wanted:
                options["importmode"] = config.getoption("importmode")
            if "rootpath" in wanted:
                options["rootpath"] = config.rootpath
            if "consider_namespace_packages" in wanted:
                options["consider_namespace_packages"] = config.getini("consider_namespace_packages")
            for relative in conftests:
                path = Path(root, relative)
                if path.name == "conftest.py" and path.is_file():  # the change may delete one
                    load(path.parent, **options)

    return ConftestsOfTheWalk()


def _workspace_modules(request: dict[str, Any]) -> list[str]:
    """The names of the workspace's own modules this process has imported before any test: in the fork
    server, the packages that pytest or an installed plugin imports, when the project is one of them (an
    editable pluggy). A run forked from here would test them as they were when the server started, not the
    candidate."""
    roots = [os.path.realpath(request["cwd"])]
    if request.get("workspace"):
        roots.append(os.path.realpath(request["workspace"]))
    # The environment's own packages are not the project's, even in a .venv inside the workspace.
    environment = {os.path.realpath(p) for p in (sys.prefix, sys.exec_prefix, sys.base_prefix)}
    found = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            real = os.path.realpath(path)
            inside = any(real.startswith(root + os.sep) for root in roots)
            if inside and not any(real.startswith(prefix + os.sep) for prefix in environment):
                found.append(name)
    return found


def _run_collect(request: dict[str, Any]) -> int:
    """``pytest --collect-only`` with the project's configuration; the items go to the result file."""
    preloaded = sorted({name.split(".", 1)[0] for name in _workspace_modules(request)})
    sys.dont_write_bytecode = True
    _prefer_shadow(request)
    _bare_main()
    sys.path.insert(0, request["cwd"])
    import pytest

    _plain_argv(pytest)
    plugin = _CollectPlugin(request["result_file"], os.path.abspath(request["cwd"]), preloaded)
    try:
        return int(pytest.main(request["args"], plugins=[plugin, _plain_runs(), _unittest_discovery(plugin)]))
    finally:
        plugin.close()


class _CallTimeout(BaseException):
    """A probe call ran past its deadline (a BaseException, so a candidate's ``except Exception`` cannot
    swallow it)."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _CallTimeout


def _run_probe(request: dict[str, Any]) -> int:
    """Call ``module.function(<args>)`` for each input; write ``{"fingerprints": [...], "shown": [...]}``.

    A fingerprint is a digest of the result's ``repr`` or ``!`` and the exception's type name: equal
    fingerprints mean the candidates behaved alike on that input. ``shown`` is what a question may show the
    user for that input: the result's ``repr`` when it is short and reads back as an equal literal (so an
    answer can become ``assert f(...) == <repr>``), ``!`` and the exception's type name, else null.
    """
    import ast
    import hashlib
    import importlib

    sys.dont_write_bytecode = True
    # What this server imported of the workspace with pytest (the project is pluggy, or a pytest plugin) is
    # the user's copy from before any change: this child forgets it and imports the candidate's.
    for name in _workspace_modules(request):
        del sys.modules[name]
    _prefer_shadow(request)
    sys.path.insert(0, request["path"])
    module = importlib.import_module(request["module"])
    function: Any = module
    for name in request["function"].split(
        "."
    ):  # ``Class.method``: the plain function, called with an instance
        function = getattr(function, name)
    signal.signal(signal.SIGALRM, _on_alarm)
    budget = float(request["call_timeout"])
    # Calls stop well before the fork server's deadline, so a slow candidate still reports what it did.
    stop = time.monotonic() + max(0.5, float(request["timeout"]) - 1.0)
    # Argument lists are evaluated in a copy of the module's namespace, made once: they only read it.
    namespace = {**vars(module), "__lsp_verify_probe__": function}
    max_shown = int(request.get("max_shown", 80))
    outputs: list[str] = []
    shown: list[str | None] = []
    for arguments in request["inputs"]:
        if time.monotonic() >= stop:
            outputs.append("!timeout")
            shown.append(None)
            continue
        signal.setitimer(signal.ITIMER_REAL, budget)
        try:
            result = eval(f"__lsp_verify_probe__({arguments})", namespace)  # sandboxed, like the tests
            text = _canonical(result)
            outputs.append(hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16])
            shown.append(_literal_repr(result, max_shown, ast.literal_eval))
        except _CallTimeout:
            outputs.append("!timeout")
            shown.append(None)
        except BaseException as exc:  # the candidate's behaviour, whatever it raised
            outputs.append("!" + type(exc).__name__)
            shown.append("!" + type(exc).__name__)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    with open(request["result_file"], "w", encoding="utf-8") as out:
        json.dump({"fingerprints": outputs, "shown": shown}, out)
    return 0


def _literal_repr(value: object, limit: int, literal_eval: Any) -> str | None:
    """``repr(value)`` if it is at most ``limit`` characters and reads back as an equal literal, else None
    (an object's default repr, a NaN, a huge list: nothing a user can judge or a test can assert)."""
    try:
        text = repr(value)
        if len(text) > limit or literal_eval(text) != value or type(literal_eval(text)) is not type(value):
            return None
    except BaseException:  # a repr or __eq__ that raises is not stable either
        return None
    return text


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
    """Record where the edited module was imported from: the shadow, or (wrongly) the user's tree or another
    copy of it - the project installed (not editable) in the environment, whose ``shapes.geo`` the tests
    import in place of the candidate's, or a compiled build of the module beside its source. That copy is a
    module under a name the edited file has (see :func:`_module_names`) whose file is that name's path."""
    forbidden = os.path.realpath(request["forbidden_file"])
    expected = os.path.realpath(request["edited_file"])
    names = _module_names(expected)
    own = next(iter(names))  # the name its __init__.py files make it
    found: dict[str, str] = {}
    copies: dict[str, str] = {}
    for module_name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        real = os.path.realpath(path)
        # Compared without the file's suffixes: a compiled build beside the source (``geo.cpython-311-
        # x86_64-linux-gnu.so``: Cython's pure-Python mode, mypyc) is imported in its place.
        tail = names.get(module_name)
        copy = tail is not None and _stem(real).endswith(os.sep + tail)
        if real in (forbidden, expected) or (copy and module_name == own):
            found[module_name] = real
        elif copy:
            copies[module_name] = real
    if expected not in found.values():  # a copy under a namespace package's name counts only then
        found.update(copies)
    plugin._write({"event": "imports", "modules": found, "leaked": sorted(set(found.values()) - {expected})})


def _stem(path: str) -> str:
    """``path`` without its file name's suffixes (``.py``, ``.cpython-311-x86_64-linux-gnu.so``)."""
    directory, filename = os.path.split(path)
    return os.path.join(directory, filename.split(".", 1)[0])


def _module_names(path: str) -> dict[str, str]:
    """The dotted names the module at ``path`` may be imported under, each with its path without suffixes
    from its import root (``shapes.geo``: ``shapes/geo``): the name its package's ``__init__.py`` files make
    it, and every name of two or more parts that its directories make (a namespace package - ``acme.geo``,
    ``jaraco.functools`` - has no ``__init__.py`` above it to say where its name starts). A module imported
    under one of these names from a file at that path is a copy of this one."""
    stem = _stem(path)
    package = os.path.basename(stem) == "__init__"
    module = os.path.dirname(stem) if package else stem
    suffix = os.sep + "__init__" if package else ""
    directory = os.path.dirname(module)
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory = os.path.dirname(directory)
    named = os.path.relpath(module, directory)
    names = {named.replace(os.sep, "."): named + suffix}
    parts = module.strip(os.sep).split(os.sep)
    for count in range(2, min(len(parts), 8) + 1):
        relative = os.sep.join(parts[-count:])
        names.setdefault(relative.replace(os.sep, "."), relative + suffix)
    return names


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


def _exit_code(wait_status: int) -> int:
    """``os.waitstatus_to_exitcode`` (Python 3.9+; the project's Python may be 3.8): the code, or minus the
    signal that ended the child."""
    if os.WIFSIGNALED(wait_status):
        return -os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


class _Exit(Exception):
    """The server closed our stdin (it exited, crashed or was killed): clean up and exit."""


class _Requests:
    """Request lines from fd 0, read unbuffered so that ``select`` on fd 0 sees end-of-file during a run."""

    def __init__(self) -> None:
        self._buffer = b""

    def next(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            self._read()
        line, self._buffer = self._buffer.split(b"\n", 1)
        if not line.strip():
            return self.next()
        request: dict[str, Any] = json.loads(line)
        return request

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds; raise :class:`_Exit` if the server went away meanwhile."""
        ready, _, _ = select.select([0], [], [], timeout)
        if ready:
            self._read()

    def _read(self) -> None:
        chunk = os.read(0, 65536)
        if not chunk:
            raise _Exit
        self._buffer += chunk


def _become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process (Linux), so that a run's detached processes
    (``setsid`` + double fork) stay findable as our descendants; False where the platform cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    pr_set_child_subreaper = 36
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


# Landlock (Linux >= 5.13): the syscalls, and the access rights that change the filesystem. Rights a kernel
# does not know (an older ABI) are dropped: each ABI only adds rights.
_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_FS_WRITE_RIGHTS = {1: 0b0001_1111_1111_0010, 2: 1 << 13, 3: 1 << 14}  # write/remove/make_*, refer, truncate


def _restrict_writes(writable: list[str]) -> bool:
    """Without bubblewrap: let this process and every descendant change files only under ``writable`` (the
    shadow root with its TMPDIR; for mypy its cache) and /dev, with Landlock. Reading stays open. False
    where the kernel has no Landlock (the runs can then write wherever the user can)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        abi = int(libc.syscall(_LANDLOCK_CREATE_RULESET, None, 0, 1))  # 1: LANDLOCK_CREATE_RULESET_VERSION
        if abi < 1:
            return False
        rights = 0
        for version, bits in _FS_WRITE_RIGHTS.items():
            if abi >= version:
                rights |= bits
        handled = ctypes.c_uint64(rights)  # struct landlock_ruleset_attr, first field only (kernel accepts)
        ruleset = int(libc.syscall(_LANDLOCK_CREATE_RULESET, ctypes.byref(handled), 8, 0))
        if ruleset < 0:
            return False

        class _PathBeneath(ctypes.Structure):
            _pack_ = 1
            _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))

        write_file, truncate = 1 << 1, (1 << 14) & rights
        allowed = [(path, rights) for path in writable] + [("/dev", write_file | truncate)]
        allowed += [("/dev/shm", rights)]  # POSIX semaphores and shared memory (multiprocessing)
        try:
            for path, access in allowed:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    # Directories take every right; a file only the rights that apply to files.
                    if not os.path.isdir(path):
                        access &= write_file | truncate
                    rule = _PathBeneath(access, fd)
                    if libc.syscall(_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0) != 0:
                        return False
                finally:
                    os.close(fd)
            pr_set_no_new_privs = 38
            if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
                return False
            return int(libc.syscall(_LANDLOCK_RESTRICT_SELF, ruleset, 0)) == 0
        finally:
            os.close(ruleset)
    except (OSError, AttributeError):
        return False


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (zombies excluded), from /proc; children before grandchildren. Empty where
    there is no /proc (macOS): there only the process group can be killed. (Also the server's walk:
    ``sandbox`` imports it from here, since this script may not import lsp_verify.)"""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != b"Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    frontier = [pid]
    while frontier:
        frontier = [child for parent in frontier for child in children.get(parent, ()) if child not in found]
        found += frontier
    return found


def _sweep() -> None:
    """Kill every process the runs left behind - detached ones are our descendants too, as we are their
    subreaper - and reap them."""
    me = os.getpid()
    for _ in range(100):  # a fork bomb outruns one pass
        pids = descendants(me)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        _reap()
    _reap()


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _serve(request: dict[str, Any], requests: _Requests, contained: bool) -> dict[str, Any]:
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
    try:
        while True:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = _exit_code(wait_status)
                break
            if time.monotonic() >= deadline:
                status = "timeout"
                _kill_group(pid)
                os.waitpid(pid, 0)
                break
            requests.poll(delay)  # end-of-file here (the server died) ends the run at once
            delay = min(delay * 2, 0.02)
    finally:
        # Whatever the run left behind - in its group (a background server a test forgot) or detached from
        # it - goes too, also when the server went away mid-run.
        _kill_group(pid)
        _sweep()
    return {"status": status, "exit": code, "seconds": time.monotonic() - started, "contained": contained}


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


_RUNS = {"mypy": _run_mypy, "pytest": _run_pytest, "collect": _run_collect, "probe": _run_probe}


def _once(request_file: str) -> None:
    """Run one request in this (fresh) process; its output is the caller's to capture. As in the fork server,
    nothing the run starts outlives it (this process is their subreaper and sweeps them before it exits) and,
    without bubblewrap, writes are confined to the request's ``writable`` directories."""
    with open(request_file, encoding="utf-8") as source:
        request = json.load(source)
    _become_subreaper()
    if request.get("writable"):
        _restrict_writes(request["writable"])
    os.chdir(request["cwd"])
    code = _RUNS[request["op"]](request)
    sys.stdout.flush()
    sys.stderr.flush()
    _sweep()
    os._exit(code)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "pytest"
    if mode == "once":
        _once(sys.argv[2])
    contained = _become_subreaper()
    _preimport(mode)
    if len(sys.argv) > 2:  # the directories runs may write (given without bubblewrap only)
        _restrict_writes(json.loads(sys.argv[2]))
    protocol = sys.stdout
    protocol.write(json.dumps({"ready": mode, "pid": os.getpid()}) + "\n")
    protocol.flush()
    requests = _Requests()
    try:
        while True:
            answer = _serve(requests.next(), requests, contained)
            protocol.write(json.dumps(answer) + "\n")
            protocol.flush()
    except (_Exit, BrokenPipeError):
        _sweep()
        os._exit(0)  # stdout may be a broken pipe: no flush at interpreter exit


if __name__ == "__main__":
    main()
