"""The verification cascade: parse -> mypy -> nearby tests, cheapest first, stopping at the first failure.

:class:`Verifier` is what the pipeline and the CLI call. ``prepare`` runs once per request, in two halves:
``select`` picks the nearby tests among those pytest collects (``test_index``; a file that fails to collect is
named in the notes, and fails the request when it would hold tests near the target), and ``baseline`` runs
mypy and those tests on the *original* code (cached until a file it depends on changes). The pipeline builds
its prompt from the selection and generates while the baseline runs. ``verify`` then judges one candidate
against that baseline:

- parse: ``ast.parse`` of the whole document with the candidate spliced in;
- mypy: fails only for errors the candidate adds over the original file (see ``mypy_check``);
- tests: passes when no selected test fails, errors or times out - so every test that passed before still
  passes; tests that failed before and pass now are reported as ``tests_fixed``. With no nearby test, or
  only tests that guard the rest of the module without naming the target, the result is
  :attr:`Evidence.TYPES_ONLY`, and the stage says what still passed (a failure instead when
  ``settings.require_tests`` is set).
  The tests that name the target (and the file's doctests) run first; the guard tests - often most of a
  real library's test module - only for a candidate that passes those, so a wrong candidate costs the tests
  of its own function, and the verdict of a passing one is that of all the selected tests.

A passing candidate is then *probed* (``probe.py``): called on the same generated inputs as every other
candidate, so ranking can prefer the behaviour most candidates agree on. A probe never fails a candidate.

Untrusted workspaces run no workspace code: no tests (types only, with a note), and mypy with a
configuration of ours that keeps only the harmless options of the project's (``mypy_check.restricted_config``;
the note says what was left out), never the project's own.

Threading: ``verify`` may be called from several threads at once (the pipeline calls it per candidate as
candidates arrive). mypy and pytest each have one fork server that serves one run at a time, so at most
two verifications make progress together - one in mypy, one in tests - which is what two cores allow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ..cancel import CancelToken
from ..config import PYTEST_CONFIG_FILES, Settings, repository_top
from ..syntax import pyast
from ..syntax.target import EditTarget
from .callers import Reach, ReachMode, Tracing, reach_of
from .interpreter import InterpreterError, project_python
from .mypy_check import MypyChecker, MypyError, MypyRun, added_errors, config_digest, restricted_config
from .mypy_check import default_cache_dir as default_mypy_cache_dir
from .overlap import alongside
from .probe import ProbePlan, ProbeRunner, probe_plan
from .pytest_run import (
    Collection,
    FreshProcess,
    PytestRunner,
    TestRun,
    failure_summary,
    function_id,
    function_ids,
    installed_elsewhere,
    missing_plugin,
    not_installed,
)
from .sandbox import Limits, SandboxUnavailable, WorkerProcess, around, choose_isolation
from .shadow import Content, Shadow, ShadowRoot, ShadowUnavailable
from .test_index import TestIndex, import_name, module_name
from .types import Candidate, CandidateResult, Evidence, StageName, StageResult, TestOutcome, unbacked_counts

_FAILING = frozenset({"failed", "error", "timeout"})
_CONFIG_NAMES = (*(name for name, _ in PYTEST_CONFIG_FILES), "conftest.py")


FIX_COLLECTION = "Fix it so that `python -m pytest --collect-only` succeeds."
FIX_TEST_FILES = "Fix the test files or conftest.py so that `python -m pytest --collect-only` succeeds."
"""What a collection error that is no one's change asks the user to do (``check`` drops it where the change
is what stops the tests from being collected)."""


class VerifyError(Exception):
    """The request cannot be verified at all (message says why and what to fix)."""


@dataclasses.dataclass(frozen=True)
class TestSelection:
    """What ``select`` found, before anything ran: the tests near the target (what a prompt shows) and how
    the original code is checked. :meth:`Verifier.baseline` turns it into a :class:`VerifyPlan`."""

    __test__ = False  # not a pytest test class, despite the name

    target: EditTarget
    original_text: str
    relative_path: Path
    pytest_targets: tuple[str, ...]
    """Node ids of the selected test functions (see :attr:`VerifyPlan.pytest_targets`)."""
    direct_tests: tuple[str, ...]
    """Those of them that name the target (see :attr:`VerifyPlan.direct_tests`)."""
    doctest_file: str | None
    notes: tuple[str, ...]
    """How the tests were found (collection problems) and, untrusted, what mypy leaves out."""
    mypy_config_file: Path | None
    started_at: float
    reaching_tests: tuple[str, ...] = ()
    """Those of them that reach the target through other functions (see :attr:`VerifyPlan.reaching_tests`)."""


@dataclasses.dataclass(frozen=True)
class VerifyPlan:
    """What ``prepare`` found: the tests to run and how the original code fared on them and on mypy."""

    target: EditTarget
    original_text: str
    relative_path: Path
    """The edited file, relative to the workspace root."""
    tests_selected: tuple[str, ...]
    """Node ids of the test items run (parametrised cases and doctests expanded, as the baseline saw them)."""
    baseline: tuple[TestOutcome, ...]
    """Outcome of every selected test on the original code."""
    baseline_mypy_errors: tuple[MypyError, ...]
    notes: tuple[str, ...]
    """For a user: e.g. "no nearby tests: types only", "untrusted workspace: tests not run"."""
    run_mypy: bool
    run_tests: bool
    mypy_config_file: Path | None = None
    """Our restricted mypy configuration (untrusted workspace); None: the project's own configuration."""
    pytest_targets: tuple[str, ...] = ()
    """What is passed to pytest: node ids of the selected test functions."""
    doctest_file: str | None = None
    """The edited file, when it holds doctests (run with ``--doctest-modules``)."""
    direct_tests: tuple[str, ...] = ()
    """Node ids (of ``pytest_targets``) of the tests that name the target: they must pass. Other selected
    tests (the rest of the conventional test module, the module docstring's doctests) must only not break:
    one that already failed on the original code is not the candidate's fault."""
    reaching_tests: tuple[str, ...] = ()
    """Node ids (of ``pytest_targets``) of the tests that never name the target but entered it when the
    whole suite was traced (:mod:`.callers`): judged as guard tests are (one that fails on the original code
    need not pass), but one that passes is evidence - it ran the candidate."""
    probe: ProbePlan | None = None
    """Inputs every passing candidate is called on, to rank by agreement (None: no probe; see probe.py)."""
    own_tests_first: bool = True
    """Run the tests that name the target first and the guard tests only when those pass (a failing
    candidate's verdict then holds the first part's outcomes only). False: one run of all of them, for a
    caller that needs every outcome (``check`` forgives tests that failed before the change as well)."""
    started_at: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def baseline_by_nodeid(self) -> dict[str, TestOutcome]:
        return {outcome.nodeid: outcome for outcome in self.baseline}


@dataclasses.dataclass(frozen=True)
class KnownRuns:
    """mypy and pytest runs already made on the very text being verified - ``lsp-verify check`` runs each
    test once for many functions - used by ``prepare`` and ``verify`` instead of running them again. The
    test run must be clean (no collection error, leak or problem) and hold the target's selected tests."""

    mypy: MypyRun
    tests: TestRun


@dataclasses.dataclass(frozen=True)
class _TestBaseline:
    """The selected tests on the original text, and the doctests that ran with them."""

    run: TestRun
    doctest_file: str | None
    """The edited file when its doctests ran; None when it has none, or cannot be imported to run them."""
    note: str = ""
    """Why its doctests were left out (empty: they were not)."""


class Verifier:
    """Verifies candidates for one workspace. Thread-safe; close it (or use ``with``) to free the shadow."""

    def __init__(
        self,
        root: Path,
        settings: Settings,
        workspace: Path | None = None,
        *,
        tree: Mapping[Path, Content] | None = None,
        reach: ReachMode = "off",
    ) -> None:
        """``workspace``: the folder whose trust covers ``root`` (the editor's workspace folder), up to which
        the project's own environment is looked for; None: up to the repository's top (the CLI). ``tree``:
        files (absolute paths) that every run sees with other content than the workspace has - the staged
        tree, where it differs from the work tree; those neither inside ``root`` nor in what its runs show
        around it (:attr:`around`) are no part of its runs. ``reach``: whether and how requests use the
        traced run of the suite that finds the tests reaching each function through others
        (:mod:`.callers`): "background" (the editor: a request that comes before it is done goes without
        them), "wait" (the CLI's ``fix``), "off" (``check``, which runs the whole suite anyway)."""
        self.root = root.resolve()
        self.reach_mode = reach
        self._tracing = Tracing()
        self.settings = settings
        try:
            self.isolation = choose_isolation(settings.sandbox)
        except SandboxUnavailable as exc:
            raise VerifyError(str(exc)) from None
        try:
            self.python = project_python(
                self.root,
                settings.python,
                settings.trusted,
                self.isolation,
                up_to=workspace or repository_top(self.root),
            )
        except InterpreterError as exc:
            raise VerifyError(str(exc)) from None
        # Without bubblewrap nothing mounts the workspace read-only: shadows are copies, not links. A linked
        # shadow of a trusted project below the repository's top (a monorepo's member) shows what lies
        # around it there too, read-only; never above the editor's workspace folder.
        linked = settings.trusted and self.isolation == "bwrap"
        self._top = around(self.root, workspace) if linked else None
        self.around = self._top.resolve() if self._top is not None else None
        """The directory above the workspace whose files its runs see around it (the repository's top, for
        a monorepo's member: see ``ShadowRoot(top=...)``), or None. A path there may be given a content of
        its own like one inside (another member's change, for the tests of this one, which imports it)."""
        try:
            # The tree's files in the project, and those of the repository around it that its runs show.
            shown = [self.root, *([self.around] if self.around else [])]
            inside = {
                path: content
                for path, content in (tree or {}).items()
                if any(path.is_relative_to(place) for place in shown)
            }
            self._shadows = ShadowRoot(
                self.root, copy=self.isolation != "bwrap", tree=self._overlays(inside), top=self._top
            )
        except ShadowUnavailable as exc:
            raise VerifyError(str(exc)) from None
        # mypy runs in lsp-verify's interpreter and finds the installed packages in the project's.
        packages_from = None if self.python.own else self.python.executable
        self._mypy_cache = default_mypy_cache_dir(self.root, settings.trusted, packages_from)
        self._index = TestIndex(self.root)
        self._unlisten = self._index.add_listener(self._on_change)
        self._lock = threading.Lock()
        self._mypy_baselines: dict[str, MypyRun] = {}
        self._test_baselines: dict[str, _TestBaseline] = {}
        # (path, name, class) -> (the collection it was computed from, nearby tests): ``lsp-verify check``
        # asks for the same function twice (``nearby_tests``, then ``prepare``).
        self._nearby: dict[tuple[Path, str, str | None], tuple[Collection, list[tuple[str, bool]]]] = {}
        self._started = False
        limits = Limits(memory_mb=settings.memory_limit_mb)
        # Under bwrap home directories and /tmp are hidden: what the interpreter imports from there is
        # mounted back read-only. Only the mypy worker may write the (per workspace, per trust) mypy cache.
        python_path = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        readable = [self.root, *(Path(p) for p in python_path if p), *([self._top] if self._top else [])]
        env = {"TMPDIR": str(self._shadows.tmp)}
        # The mypy worker starts outside every shadow and nothing relative to a shadow is on its sys.path, so
        # a repository's sitecustomize.py or .pth never loads - unless the user's PYTHONPATH names the
        # workspace itself: in an untrusted workspace such entries are left out.
        mypy_env = env if settings.trusted else {**env, "PYTHONPATH": _outside(self.root, python_path)}
        self._mypy_worker = WorkerProcess(
            "mypy", limits=limits, isolation=self.isolation, writable=[self._shadows.path, self._mypy_cache],
            readable=[*readable, *(self.python.readable if packages_from else ())], cwd=self._shadows.path,
            env=mypy_env,
        )  # fmt: skip
        self._pytest_worker = WorkerProcess(
            "pytest", limits=limits, isolation=self.isolation, writable=[self._shadows.path],
            readable=readable, cwd=self._shadows.path, env={**env, **_activated(self.python.executable)},
            python=self.python,
        )  # fmt: skip
        # Worker start-up (importing mypy, pytest and its plugins) overlaps with whatever the caller does
        # next - loading the model, generating - instead of delaying the first check.
        for worker in (self._mypy_worker, self._pytest_worker) if settings.trusted else (self._mypy_worker,):
            threading.Thread(
                target=worker.warm_up, name=f"lsp-verify-{worker.mode}-warm-up", daemon=True
            ).start()
        self._mypy = MypyChecker(
            self._mypy_worker,
            self._shadows,
            self._mypy_cache,
            settings.mypy_timeout_s,
            packages_from,
            restricted=None
            if settings.trusted
            else lambda: restricted_config(self.root).write(self._shadows.path),
        )
        fresh = FreshProcess(limits, self.isolation, (self._shadows.path,), tuple(readable), env, self.python)
        # Every caller checks trust before it collects, runs or probes tests; the runners refuse as well, so
        # that a path that forgets (a fallback, a new command) fails instead of running workspace code.
        refused = "" if settings.trusted else "untrusted workspace: tests not run"
        if refused:
            self._pytest_worker.close()
        self._pytest = PytestRunner(
            self._pytest_worker, self._shadows, settings.test_timeout_s, fresh, refused
        )
        self._probe = ProbeRunner(self._pytest_worker, self._shadows, min(settings.test_timeout_s, 5.0))

    # -- life cycle --------------------------------------------------------------------------------------

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers and the file watcher and remove the shadow directory."""
        self._tracing.close()
        self._unlisten()
        self._index.stop()
        self._mypy_worker.close()
        self._pytest_worker.close()
        self._shadows.close()

    def invalidate(self, paths: Iterable[Path]) -> None:
        """Files changed (saved, created, deleted): forget cached baselines and re-read changed tests."""
        self._index.invalidate(list(paths))

    def _on_change(self, paths: frozenset[Path]) -> None:
        # Baselines are keyed on content hashes already; a change anywhere may still alter what the tests
        # import (a helper module), so every cached test baseline goes. mypy baselines stay keyed.
        with self._lock:
            self._test_baselines.clear()
            self._mypy_baselines.clear()
        self._tracing.invalidate()

    # -- prepare -----------------------------------------------------------------------------------------

    def prepare(
        self,
        target: EditTarget,
        original_text: str,
        cancel: CancelToken,
        known: KnownRuns | None = None,
        *,
        probe: bool = True,
    ) -> VerifyPlan:
        """Select the nearby tests and run mypy and them on the original code (cached; ``known``: taken
        from those runs instead). ``probe=False``: no behaviour probe (nothing will be ranked).

        The two halves, :meth:`select` then :meth:`baseline`, for a caller that does something between them
        (the pipeline builds its prompt from the selection and generates while the baseline runs)."""
        return self.baseline(self.select(target, original_text, cancel), cancel, known, probe=probe)

    def select(self, target: EditTarget, original_text: str, cancel: CancelToken) -> TestSelection:
        """The first half of :meth:`prepare`: pytest's collection (cached) and the tests near ``target`` in
        it - what a prompt shows. Runs neither mypy nor a test; raises :class:`VerifyError` when the tests
        cannot be collected."""
        started = time.monotonic()
        relative = self._relative(target.path)
        self._start_watching()
        notes: list[str] = []
        mypy_config: Path | None = None
        nearby: list[tuple[str, bool]] = []
        reaching: tuple[str, ...] = ()
        doctest_file = relative.as_posix() if ">>>" in original_text else None
        if self.settings.trusted:  # collecting imports conftest.py and the test modules: workspace code
            collection = self._collection(target, relative, original_text, cancel)
            nearby = self._nearby_in(target, collection)
            reaching = self._reaching(target, relative, original_text, collection, nearby)
            notes += _collection_notes(collection)
            if doctest_file is not None and _doctests_left_out(collection, doctest_file):
                notes.append(
                    f"the docstring examples of {doctest_file} are not run: the project's pytest collects "
                    "modules' doctests (--doctest-modules), but its configuration leaves this file's out"
                )
                doctest_file = None
            if self.python.note:
                notes.append(self.python.note)
        else:
            restricted = restricted_config(self.root)
            mypy_config = restricted.write(self._shadows.path)
            notes.append(restricted.note)
        return TestSelection(
            target=target,
            original_text=original_text,
            relative_path=relative,
            pytest_targets=tuple(dict.fromkeys((*(node_id for node_id, _ in nearby), *reaching))),
            direct_tests=tuple(node_id for node_id, is_direct in nearby if is_direct),
            doctest_file=doctest_file,
            notes=tuple(notes),
            mypy_config_file=mypy_config,
            started_at=started,
            reaching_tests=reaching,
        )

    def baseline(
        self,
        selection: TestSelection,
        cancel: CancelToken,
        known: KnownRuns | None = None,
        *,
        probe: bool = True,
    ) -> VerifyPlan:
        """The second half of :meth:`prepare`: mypy and the selected tests on the original code (cached;
        ``known``: taken from those runs instead) and the probe inputs. May run on another thread than
        :meth:`select` did; raises :class:`VerifyError` when the original code cannot be checked."""
        target, relative = selection.target, selection.relative_path
        original_text, doctest_file = selection.original_text, selection.doctest_file
        node_ids, direct = selection.pytest_targets, selection.direct_tests
        notes = list(selection.notes)
        trusted = self.settings.trusted
        baseline_mypy = (
            known.mypy
            if known
            else self._baseline_mypy(relative, original_text, selection.mypy_config_file, cancel)
        ).errors
        baseline: tuple[TestOutcome, ...] = ()
        run_tests = False
        if not trusted:
            notes.append("untrusted workspace: tests not run (types only)")
        elif not node_ids and doctest_file is None:
            notes.append("no nearby tests: types only")
        else:
            if known:
                run = known.tests
            else:
                tested = self._baseline_tests(target, relative, original_text, node_ids, doctest_file, cancel)
                run, doctest_file = tested.run, tested.doctest_file
                notes += [tested.note] if tested.note else []
            module = module_name(self.root, target.path)
            # Every doctest of the edited module counts: the target's own must pass, and another function's
            # (one that calls the target, say) guards it like any other selected test.
            baseline = run.outcomes
            naming = [o for o in baseline if _is_direct_in(o.nodeid, direct, doctest_file, module, target)]
            run_tests = True
            if not baseline:
                notes.append(
                    "no nearby tests: types only (none was collected)"
                    if node_ids or doctest_file
                    else "no nearby tests: types only"
                )
                run_tests = False
            elif all(o.outcome == "skipped" for o in naming):  # none names it, or those that do skip
                reached = [o for o in baseline if function_id(o.nodeid) in selection.reaching_tests]
                if reached:
                    notes.append(_reached_summary(target, reached))
                elif naming:
                    notes.append(f"{_unbacked_summary(target, naming)}: types only")
                else:
                    notes.append(f"{_guard_summary(target, baseline, 'run as a guard')}: types only")
        return VerifyPlan(
            target=target,
            original_text=original_text,
            relative_path=relative,
            tests_selected=tuple(outcome.nodeid for outcome in baseline),
            baseline=baseline,
            baseline_mypy_errors=baseline_mypy,
            notes=tuple(notes),
            run_mypy=True,
            run_tests=run_tests,
            mypy_config_file=selection.mypy_config_file,
            pytest_targets=node_ids,
            doctest_file=doctest_file,
            direct_tests=direct,
            reaching_tests=selection.reaching_tests,
            probe=(
                probe_plan(
                    target,
                    self.root,
                    import_name(self.root, target.path),
                    self.settings.probe_inputs,
                    original_text,
                )
                if trusted and probe
                else None
            ),
            started_at=selection.started_at,
        )

    def _start_watching(self) -> None:
        """Start the test index's file watcher (once): its changes invalidate collections and baselines."""
        if not self._started:
            self._started = True
            self._index.start()

    def nearby_tests(self, target: EditTarget, text: str, cancel: CancelToken) -> tuple[str, ...]:
        """Node ids of the test functions ``prepare`` would select for ``target`` in a file holding ``text``
        (none in an untrusted workspace). Raises :class:`VerifyError` as ``prepare`` does."""
        if not self.settings.trusted:
            return ()
        self._start_watching()
        collection = self._collection(target, self._relative(target.path), text, cancel)
        return tuple(node_id for node_id, _ in self._nearby_in(target, collection))

    def _reaching(
        self,
        target: EditTarget,
        relative: Path,
        text: str,
        collection: Collection,
        nearby: list[tuple[str, bool]],
    ) -> tuple[str, ...]:
        """The tests that reach ``target`` without naming it, from the traced run of the suite (started here
        the first time; see :class:`~.callers.Tracing`): some may be among ``nearby`` already, as guard tests
        of its module - known now to run it, they are evidence too."""
        if self.settings.trace_timeout_s <= 0 or self.reach_mode == "off":
            return ()
        self._tracing.start(lambda cancel: self._trace(relative, text, cancel))
        reach = self._tracing.reach(self.reach_mode == "wait", CancelToken())
        if reach is None:
            return ()
        direct = {node_id for node_id, is_direct in nearby if is_direct}
        runnable = {function_id(test.nodeid) for test in collection.tests if not test.doctest} - direct
        return reach.reaching(relative.as_posix(), target.qualname, runnable)

    def _trace(self, relative: Path, text: str, cancel: CancelToken) -> Reach:
        """The whole suite, traced (:mod:`.callers`), with ``relative`` holding ``text`` (the editor's
        buffer, which may be ahead of the disk). Bounded by ``trace_timeout_s``: a run cut short gives the
        tests that finished."""
        collection = self._collected(relative, text, cancel)
        node_ids = function_ids(test.nodeid for test in collection.tests if not test.doctest)
        if collection.problem or not node_ids:
            return reach_of(TestRun(()), complete=True)
        shadow = self._shadows.create(relative, text)
        try:
            run = self._pytest.run(
                shadow, node_ids, None, self.root / relative, cancel,
                timeout_s=self.settings.trace_timeout_s, trace_calls=True,
            )  # fmt: skip
        finally:
            shadow.remove()
        return reach_of(run, complete=not run.timed_out)

    def _nearby_in(self, target: EditTarget, collection: Collection) -> list[tuple[str, bool]]:
        key = (target.path, target.name, target.class_name)
        with self._lock:
            cached = self._nearby.get(key)
        if cached is not None and cached[0] is collection:
            return cached[1]
        nearby = self._index.nearby(target.path, target.name, target.class_name, collection)
        with self._lock:
            self._nearby[key] = (collection, nearby)
        return nearby

    def run_once(
        self, path: Path, text: str, node_ids: tuple[str, ...], doctest_file: str | None, cancel: CancelToken
    ) -> KnownRuns:
        """mypy, and pytest on ``node_ids`` (and the doctests of ``doctest_file``), with ``path`` holding
        ``text``: one run of each for many functions of one file (see :class:`KnownRuns`). No test run is
        made when there is nothing to run."""
        relative = self._relative(path)
        shadow = self._shadows.create(relative, text)
        try:
            mypy = self._mypy.check(shadow, cancel)
            if not node_ids and doctest_file is None:
                return KnownRuns(mypy, TestRun(()))
            return KnownRuns(mypy, self._pytest.run(shadow, node_ids, doctest_file, path, cancel))
        finally:
            shadow.remove()

    def run_together(
        self, files: Sequence[tuple[Path, str]], node_ids: tuple[str, ...], cancel: CancelToken
    ) -> dict[Path, KnownRuns]:
        """:meth:`run_once` for many files at once, each holding the text it has on disk (given, as read):
        one mypy run over all of them and one pytest run of ``node_ids``, shared. When that mypy run fails
        as a whole (two files of one module name, say), each file gets a mypy run of its own, so that one
        file cannot take the others' verdicts with it."""
        relatives = [self._relative(path) for path, _ in files]
        shadow = self._shadows.create(relatives[0], files[0][1])
        try:
            # mypy and pytest have a worker each: the two runs overlap.
            # The shadow goes below: alongside returns only once mypy is done with it too.
            checked, tests = alongside(
                "lsp-verify-mypy",
                lambda: self._mypy.check_files(shadow, relatives, cancel),
                lambda: (
                    self._pytest.run(shadow, node_ids, None, files[0][0], cancel) if node_ids else TestRun(())
                ),
            )
            mypy = checked.result()
            if len(relatives) > 1 and mypy[relatives[0]].crashed:
                mypy = {
                    relative: self._mypy.check_files(shadow, (relative,), cancel)[relative]
                    for relative in relatives
                }
        finally:
            shadow.remove()
        return {
            path: KnownRuns(mypy[relative], tests)
            for (path, _), relative in zip(files, relatives, strict=True)
        }

    def suite(self, path: Path, text: Content, cancel: CancelToken) -> tuple[str, ...]:
        """Node ids of every test function pytest collects in the workspace with ``path`` holding ``text``
        (none in an untrusted workspace; ``text`` as :meth:`ShadowRoot.create` takes it): a parametrised
        test's function, not its cases (:func:`~.pytest_run.function_ids` says why). Raises
        :class:`VerifyError` when nothing can be collected."""
        if not self.settings.trusted:
            return ()
        self._start_watching()
        collection = self._collected(self._relative(path), text, cancel)
        if collection.problem:
            raise VerifyError(self._no_collection(collection.problem))
        return function_ids(test.nodeid for test in collection.tests)

    def test_modules(self, path: Path, text: Content, cancel: CancelToken) -> frozenset[str]:
        """The files (relative to the root) pytest collects tests from, doctests aside: the project's test
        modules, whatever their names. Empty in an untrusted workspace or when nothing can be collected."""
        collection = self.collection(path, text, cancel)
        return frozenset(test.file for test in collection.tests if not test.doctest)

    def collection(
        self,
        path: Path,
        text: Content,
        cancel: CancelToken,
        *,
        cached: bool = True,
        also: Mapping[Path, Content] | None = None,
    ) -> Collection:
        """pytest's collection of the workspace with ``path`` holding ``text``: the index's cached one (made
        for whichever text asked first since the last change), or with ``cached=False`` one made for ``text``
        (and the paths in ``also`` holding theirs) and kept nowhere (the base revision's, to compare). Empty
        in an untrusted workspace."""
        if not self.settings.trusted:
            return Collection(tests=())
        self._start_watching()
        relative = self._relative(path)
        if cached and not also:
            return self._collected(relative, text, cancel)
        return self._collect_in(relative, text, cancel, self._overlays(also))

    def run_tests(
        self,
        path: Path,
        text: Content,
        node_ids: tuple[str, ...],
        cancel: CancelToken,
        *,
        timeout_s: float | None = None,
        also: Mapping[Path, Content] | None = None,
    ) -> TestRun:
        """pytest on ``node_ids`` (no mypy) with ``path`` holding ``text`` (source text, a data file's bytes,
        or None: the file absent), and each path in ``also`` holding its own; ``timeout_s`` bounds the run."""
        shadow = self._shadows.create(self._relative(path), text, self._overlays(also))
        try:
            return self._pytest.run(shadow, node_ids, None, path, cancel, timeout_s=timeout_s)
        finally:
            shadow.remove()

    def type_check(
        self,
        files: Sequence[Path],
        overlays: Mapping[Path, Content],
        cancel: CancelToken,
    ) -> dict[Path, MypyRun]:
        """mypy over ``files`` (absolute paths) in one run, each path of ``overlays`` (at least one) holding
        its content (None: absent): each file's errors, keyed as given. In an untrusted workspace with our
        restricted configuration (see :meth:`select`)."""
        relatives = [self._relative(path) for path in files]
        (first, text), *rest = self._overlays(overlays).items()
        shadow = self._shadows.create(first, text, dict(rest))
        try:
            checked = self._mypy.check_files(shadow, relatives, cancel)
        finally:
            shadow.remove()
        return {path: checked[relative] for path, relative in zip(files, relatives, strict=True)}

    def _collection(self, target: EditTarget, relative: Path, text: str, cancel: CancelToken) -> Collection:
        """pytest's collection of the workspace (cached by the index); raises :class:`VerifyError` when it
        fails as a whole or for a file that would hold tests near the target."""
        collection = self._collected(relative, text, cancel)
        if collection.problem:
            raise VerifyError(self._no_collection(collection.problem))
        broken = self._index.near_but_broken(target.path, target.name, target.class_name, collection)
        if broken:
            raise VerifyError(self._uncollectable(target, *broken[0]))
        return collection

    def _no_collection(self, problem: str) -> str:
        """Why nothing can be collected, and what to do about it."""
        advice = self._environment_advice(problem) or FIX_COLLECTION
        return f"the tests cannot be collected: {problem}. {advice}"

    def _uncollectable(self, target: EditTarget, where: str, message: str) -> str:
        """Why the tests near ``target`` cannot be collected, and what to do about it."""
        advice = self._environment_advice(message) or FIX_TEST_FILES
        return f"the tests near {target.qualname} cannot be collected ({where}): {message}. {advice}"

    def _environment_advice(self, problem: str) -> str | None:
        """What to do when a collection failed for want of something in the environment that runs the tests
        (the project itself, a plugin, a test dependency) rather than in the test files; None otherwise."""
        python = self.python.executable
        return (
            installed_elsewhere(problem, self.root, python)
            or missing_plugin(problem, python)
            or not_installed(problem, self.root, python)
        )

    def _collected(self, relative: Path, text: Content, cancel: CancelToken) -> Collection:
        """The index's cached collection, or a new one made in a shadow in which ``relative`` holds
        ``text`` (the shadow of the file at hand: any shadow shows pytest the whole workspace)."""

        return self._index.collection(lambda: self._collect_in(relative, text, cancel))

    def _collect_in(
        self,
        relative: Path,
        text: Content,
        cancel: CancelToken,
        also: Mapping[Path, Content] | None = None,
    ) -> Collection:
        shadow = self._shadows.create(relative, text, also)
        try:
            return self._pytest.collect(shadow, cancel)
        finally:
            shadow.remove()

    def describe_test_runs(self, cancel: CancelToken) -> str:
        """For ``lsp-verify doctor``: how this project's tests are collected and run, in one line."""
        if not self.settings.trusted:
            return "not run: the workspace is not trusted"
        anchor = next(
            (
                p
                for p in sorted(self.root.iterdir())
                if p.is_file() and p.suffix in (".toml", ".ini", ".cfg", ".py")
            ),
            None,
        )
        if anchor is None:
            return "no pyproject.toml, setup.cfg, tox.ini, pytest.ini or .py file at the project root"
        try:
            text = anchor.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return f"cannot read {anchor.name}: {exc}"
        collection = self._collected(Path(anchor.name), text, cancel)
        if collection.problem:
            return self._no_collection(collection.problem)
        files = len({test.file for test in collection.tests})
        found = f"{_count(len(collection.tests), 'test')} in {_count(files, 'file')}" + (
            f", {_count(len(collection.errors), 'file')} failed to collect" if collection.errors else ""
        )
        python = f"; with {self.python.describe()}" + (f" - {self.python.note}" if self.python.note else "")
        if collection.fresh_process:
            return f"a fresh `python -m pytest` process per run ({found}{python}): {collection.fresh_process}"
        return f"pre-imported pytest fork server ({found}{python}; its collection matches `python -m pytest`)"

    def _overlays(self, also: Mapping[Path, Content] | None) -> dict[Path, Content]:
        """``also`` (absolute paths) relative to the root, as a shadow takes them."""
        return {self._relative(path): content for path, content in (also or {}).items()}

    def _relative(self, path: Path) -> Path:
        resolved = path.resolve()
        if resolved.is_relative_to(self.root):
            return resolved.relative_to(self.root)
        if self.around is not None and resolved.is_relative_to(self.around):
            return Path(os.path.relpath(resolved, self.root))
        raise VerifyError(f"{path} is not inside the workspace {self.root}; cannot verify it")

    def _baseline_mypy(
        self, relative: Path, text: str, config_file: Path | None, cancel: CancelToken
    ) -> MypyRun:
        key = _digest(relative.as_posix(), text, config_digest(self.root), str(config_file))
        with self._lock:
            cached = self._mypy_baselines.get(key)
        if cached is not None:
            return cached
        shadow = self._shadows.create(relative, text)
        try:
            run = self._mypy.check(shadow, cancel, config_file)
        finally:
            shadow.remove()
        if run.crashed:
            raise VerifyError(f"mypy cannot check {relative} (unmodified): {run.crashed}")
        with self._lock:
            self._mypy_baselines[key] = run
        return run

    def _baseline_tests(
        self,
        target: EditTarget,
        relative: Path,
        text: str,
        node_ids: tuple[str, ...],
        doctest_file: str | None,
        cancel: CancelToken,
    ) -> _TestBaseline:
        """The selected tests (and ``doctest_file``'s doctests) on the original text; raises
        :class:`VerifyError` when they cannot run."""
        key = self._tests_key(relative, text, node_ids)
        with self._lock:
            cached = self._test_baselines.get(key)
        if cached is not None:
            return cached
        note = ""
        shadow = self._shadows.create(relative, text)
        try:
            run = self._pytest.run(shadow, node_ids, doctest_file, target.path, cancel)
            if doctest_file is not None and _only_the_module_fails(run, doctest_file):
                # The edited module itself does not import for its doctests (a script needing a package the
                # test environment lacks, say): the doctests are ours to add, not the project's tests, so
                # they are left out with a note and the tests that name the function still guard it.
                why = run.collect_errors[0][1]
                note = (
                    f"the doctests of {doctest_file} were not run: pytest cannot import it "
                    f"with {self.python.executable} ({why})"
                )
                doctest_file = None
                run = (
                    self._pytest.run(shadow, node_ids, None, target.path, cancel) if node_ids else TestRun(())
                )
        finally:
            shadow.remove()
        if run.leaked_imports:
            raise VerifyError(_leak_message(run.leaked_imports))
        if run.problem:
            raise VerifyError(f"the tests near {target.qualname} could not run: {run.problem}")
        if run.collect_errors:
            raise VerifyError(self._uncollectable(target, *run.collect_errors[0]))
        baseline = _TestBaseline(run, doctest_file, note)
        with self._lock:
            self._test_baselines[key] = baseline
        return baseline

    def _tests_key(self, relative: Path, text: str, node_ids: tuple[str, ...]) -> str:
        """Content hash of everything the baseline depends on that we can name cheaply."""
        files: set[Path] = {self.root / name for name in _CONFIG_NAMES}
        for node_id in node_ids:
            test_path = self.root / node_id.split("::", 1)[0]
            files.add(test_path)
            for directory in test_path.parents:
                files.add(directory / "conftest.py")
                if directory == self.root:
                    break
        parts = [relative.as_posix(), text, *node_ids]
        for path in sorted(files):
            try:
                parts.append(f"{path}\0{hashlib.sha256(path.read_bytes()).hexdigest()}")
            except OSError:
                continue
        return _digest(*parts)

    # -- verify ------------------------------------------------------------------------------------------

    def verify(
        self,
        plan: VerifyPlan,
        candidate: Candidate,
        cancel: CancelToken,
        on_stage: Callable[[str], None] | None = None,
        known: KnownRuns | None = None,
    ) -> CandidateResult:
        """Run the cascade on one candidate (``known``: the runs already made on its text). Raises
        :class:`~lsp_verify.cancel.Cancelled` when cancelled."""
        started = time.monotonic()
        stages: list[StageResult] = []

        def finish(passed: bool, evidence: Evidence, **fields: object) -> CandidateResult:
            now = time.monotonic()
            return CandidateResult(
                candidate=candidate,
                passed=passed,
                evidence=evidence if passed else Evidence.NONE,
                stages=tuple(stages),
                tests_selected=plan.tests_selected,
                mypy_restricted=plan.mypy_config_file is not None,
                seconds=now - started,
                verified_at_s=now - plan.started_at,
                **fields,  # type: ignore[arg-type]
            )

        def stage(name: StageName, ok: bool, since: float, detail: str = "") -> bool:
            stages.append(StageResult(name, ok, time.monotonic() - since, detail))
            return ok

        cancel.raise_if_cancelled()
        since = time.monotonic()
        try:
            pyast.parse_module(candidate.new_text, filename=plan.relative_path.as_posix())
        except SyntaxError as exc:
            stage("parse", False, since, f"line {exc.lineno}: {exc.msg}")
            return finish(False, Evidence.NONE)
        except ValueError as exc:  # e.g. null bytes
            stage("parse", False, since, str(exc))
            return finish(False, Evidence.NONE)
        stage("parse", True, since)

        made: list[Shadow] = []

        def shadow() -> Shadow:
            # Made when a run needs it: with ``known`` runs none may (check --all: one per function).
            if not made:
                made.append(self._shadows.create(plan.relative_path, candidate.new_text))
            return made[0]

        try:
            if plan.run_mypy:
                cancel.raise_if_cancelled()
                if on_stage is not None:
                    on_stage("mypy")
                since = time.monotonic()
                run = known.mypy if known else self._mypy.check(shadow(), cancel, plan.mypy_config_file)
                cancel.raise_if_cancelled()
                if run.crashed:
                    stage("mypy", False, since, run.crashed)
                    return finish(False, Evidence.NONE)
                added = added_errors(plan.baseline_mypy_errors, run.errors)
                if added:
                    stage("mypy", False, since, str(added[0]))
                    return finish(False, Evidence.NONE, new_mypy_errors=tuple(str(e) for e in added))
                stage("mypy", True, since)

            if not plan.run_tests:
                if self.settings.require_tests:
                    stage("tests", False, time.monotonic(), "no nearby tests ran and require_tests is set")
                    return finish(False, Evidence.NONE)
                result = finish(True, Evidence.TYPES_ONLY)
            else:
                cancel.raise_if_cancelled()
                if on_stage is not None:
                    on_stage("tests")
                result = self._judge_tests(plan, shadow, cancel, stage, finish, known)
            if result.passed and plan.probe is not None:
                # Ranking input only: which behaviour do the passing candidates agree on?
                cancel.raise_if_cancelled()
                if on_stage is not None:
                    on_stage("probe")
                outputs = self._probe.run(shadow(), plan.probe, cancel)
                cancel.raise_if_cancelled()
                result = dataclasses.replace(
                    result,
                    probe_outputs=outputs.fingerprints,
                    probe_shown=outputs.shown,
                    seconds=time.monotonic() - started,
                )
            return result
        finally:
            for made_shadow in made:
                made_shadow.remove()

    def _judge_tests(
        self,
        plan: VerifyPlan,
        shadow: Callable[[], Shadow],
        cancel: CancelToken,
        stage: Callable[[StageName, bool, float, str], bool],
        finish: Callable[..., CandidateResult],
        known: KnownRuns | None,
    ) -> CandidateResult:
        since = time.monotonic()
        module = module_name(self.root, plan.target.path)
        if known:
            verdict = _test_verdict(plan, known.tests, module)
        else:
            verdict = self._run_tests(plan, shadow, module, cancel)
        cancel.raise_if_cancelled()
        note = ""
        if not verdict.detail and verdict.evidence is Evidence.TYPES_ONLY:
            naming = [o for o in verdict.outcomes if o.nodeid in verdict.naming]
            if naming:
                note = _unbacked_summary(plan.target, naming)
            else:
                note = _guard_summary(plan.target, verdict.outcomes, "still pass")
            if self.settings.require_tests:
                verdict = dataclasses.replace(verdict, detail=f"{note}, and require_tests is set")
        stage("tests", not verdict.detail, since, verdict.detail or note)
        fields = {
            "tests_passed": verdict.passed,
            "tests_fixed": verdict.fixed,
            "tests_broken": verdict.broken,
            "outcomes": verdict.outcomes,
            "tests_naming": verdict.naming,
        }
        return finish(not verdict.detail, verdict.evidence, **fields)

    def _run_tests(
        self, plan: VerifyPlan, shadow: Callable[[], Shadow], module: str, cancel: CancelToken
    ) -> _Verdict:
        """A candidate's run of the plan's tests, in two steps when the target has tests of its own and
        guard tests besides (the rest of a conventional test module, hundreds of tests in a real library):
        first the tests that name the target, with the file's doctests; only when that part passes, the
        guard tests, and the verdict is then the one a single run of all of them gives. A wrong candidate
        (most of them) pays only for the tests that name the target, and a candidate that passes those but
        breaks a guard test still fails."""
        direct = set(plan.direct_tests)
        first = tuple(node_id for node_id in plan.pytest_targets if node_id in direct)
        rest = tuple(node_id for node_id in plan.pytest_targets if node_id not in direct)
        path = plan.target.path
        if not plan.own_tests_first or not rest or not (first or plan.doctest_file):
            return _test_verdict(
                plan, self._pytest.run(shadow(), plan.pytest_targets, plan.doctest_file, path, cancel), module
            )
        early = self._pytest.run(shadow(), first, plan.doctest_file, path, cancel)
        part = dataclasses.replace(
            plan,
            pytest_targets=first,
            baseline=tuple(
                o
                for o in plan.baseline
                if function_id(o.nodeid) in direct
                or (plan.doctest_file is not None and o.nodeid.startswith(f"{plan.doctest_file}::"))
            ),
        )
        verdict = _test_verdict(part, early, module)
        if verdict.detail:
            return verdict
        cancel.raise_if_cancelled()
        late = self._pytest.run(shadow(), rest, None, path, cancel)
        return _test_verdict(plan, _joined(early, late), module)


@dataclasses.dataclass(frozen=True)
class _Verdict:
    """How a candidate fared on the plan's tests."""

    outcomes: tuple[TestOutcome, ...]
    passed: tuple[str, ...]
    fixed: tuple[str, ...]
    broken: tuple[str, ...]
    detail: str
    """Why it fails (empty: it passes)."""
    evidence: Evidence
    naming: tuple[str, ...]
    """The outcomes' tests that name the target."""


def _test_verdict(plan: VerifyPlan, run: TestRun, module: str) -> _Verdict:
    """Judge ``run`` against the plan's baseline: every selected test that passed before still passes, and
    every test that names the target passes."""
    before = plan.baseline_by_nodeid
    now = run.by_nodeid
    outcomes = tuple(now.get(nodeid) or TestOutcome(nodeid, "error", "not run") for nodeid in before)
    outcomes += tuple(o for o in run.outcomes if o.nodeid not in before)
    passed = tuple(o.nodeid for o in outcomes if o.outcome == "passed")
    fixed = tuple(nodeid for nodeid in passed if nodeid in before and before[nodeid].outcome in _FAILING)
    broken = tuple(
        o.nodeid for o in outcomes if o.outcome != "passed" and before.get(o.nodeid, o).outcome == "passed"
    )
    failing = [
        o
        for o in outcomes
        if o.outcome in _FAILING
        and (_is_direct(o.nodeid, plan, module) or before.get(o.nodeid, o).outcome not in _FAILING)
    ]
    detail = ""
    if run.leaked_imports:
        detail = _leak_message(run.leaked_imports)
    elif run.problem:
        detail = run.problem
    elif run.collect_errors:
        where, message = run.collect_errors[0]
        detail = f"tests cannot be collected with this candidate ({where}): {message}"
    elif failing:
        # A test this candidate broke says more than one that failed before it too (a doctest that needs a
        # fixture of the project's, a test that needs a missing tool): it is named first.
        already = {o.nodeid for o in failing if o.nodeid in before and before[o.nodeid].outcome in _FAILING}
        first = min(failing, key=lambda o: o.nodeid in already)
        others = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
        message = failure_summary(first.message)
        detail = f"{first.nodeid} {first.outcome}{others}" + (f": {message}" if message else "")
    naming = tuple(o.nodeid for o in outcomes if _is_direct(o.nodeid, plan, module))
    return _Verdict(outcomes, passed, fixed, broken, detail, tests_evidence(plan, outcomes, naming), naming)


def tests_evidence(plan: VerifyPlan, outcomes: Iterable[TestOutcome], naming: Sequence[str]) -> Evidence:
    """What a run's ``outcomes`` back: tests, when one that names the target (``naming``) - or reaches it
    through another function - passed; types only otherwise. Tests that merely guard the rest of the module
    say nothing about the target's own behaviour, and neither does a test of its own that was skipped
    (``skipif``, ``importorskip``, an xfail that failed as expected) or that failed before the change too."""
    reaching, named = set(plan.reaching_tests), set(naming)
    backed = any(
        o.outcome == "passed" and (o.nodeid in named or function_id(o.nodeid) in reaching) for o in outcomes
    )
    return Evidence.TESTS if backed else Evidence.TYPES_ONLY


def _joined(first: TestRun, second: TestRun) -> TestRun:
    """Two runs of disjoint tests as one."""
    return TestRun(
        outcomes=first.outcomes + second.outcomes,
        collect_errors=first.collect_errors + second.collect_errors,
        exit_code=first.exit_code or second.exit_code,
        timed_out=first.timed_out or second.timed_out,
        leaked_imports=tuple(sorted({*first.leaked_imports, *second.leaked_imports})),
        problem=first.problem or second.problem,
        log=(first.log + second.log)[-4000:],
        seconds=first.seconds + second.seconds,
        stopped=first.stopped + second.stopped,
    )


def _is_direct(nodeid: str, plan: VerifyPlan, module: str) -> bool:
    """Whether a test item names the target (it must pass), as opposed to guarding the module's rest."""
    return _is_direct_in(nodeid, plan.direct_tests, plan.doctest_file, module, plan.target)


def _is_direct_in(
    nodeid: str, direct_tests: tuple[str, ...], doctest_file: str | None, module: str, target: EditTarget
) -> bool:
    if doctest_file is not None and nodeid.startswith(f"{doctest_file}::"):
        return _docstring_item(nodeid.split("::", 1)[1], module, target.qualname)
    function = function_id(nodeid)
    return function in direct_tests


def _guard_summary(target: EditTarget, outcomes: Iterable[TestOutcome], verb: str) -> str:
    """What a types-only result was still checked against: "no test calls `slugify`; 140 tests of
    tests/test_text.py still pass"."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        path = outcome.nodeid.split("::", 1)[0]
        counts[path] = counts.get(path, 0) + 1
    files = ", ".join(sorted(counts))
    return f"no test calls `{target.name}`; {_count(sum(counts.values()), 'test')} of {files} {verb}"


def _unbacked_summary(target: EditTarget, naming: Sequence[TestOutcome]) -> str:
    """Why the tests that name the target back nothing: "no test that calls `add` passed (1 skipped:
    tests/test_calc.py::test_add: needs a GPU)"."""
    first = min(naming, key=lambda o: o.outcome != "skipped")
    reason = failure_summary(first.message).removeprefix("Skipped: ")  # pytest's words for a skip's reason
    shown = f"{first.nodeid}: {reason}" if reason else first.nodeid
    return f"no test that calls `{target.name}` passed ({unbacked_counts(naming)}: {shown})"


def _reached_summary(target: EditTarget, reached: Sequence[TestOutcome]) -> str:
    """What stands for a test of its own when none names the target: "no test calls `_normalize`; 2 tests
    reach it through other functions (tests/test_text.py::test_slugify, ...)"."""
    names = list(dict.fromkeys(function_id(o.nodeid) for o in reached))
    shown = ", ".join(names[:2]) + (", ..." if len(names) > 2 else "")
    reach = f"{_count(len(names), 'test')} reach it through other functions"
    return f"no test calls `{target.name}`; {reach} ({shown})"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _activated(python: str) -> dict[str, str]:
    """What activating ``python``'s virtualenv sets - its ``bin`` first on ``PATH``, ``VIRTUAL_ENV`` - as
    tox, CI and an activated shell run a project's tests: a test may start the project's own console scripts
    (glom's CLI test runs ``glom``). Nothing for an interpreter outside a virtualenv."""
    bindir = Path(python).parent
    if not (bindir.parent / "pyvenv.cfg").is_file():
        return {}
    return {
        "PATH": os.pathsep.join([str(bindir), os.environ.get("PATH", "")]),
        "VIRTUAL_ENV": str(bindir.parent),
    }


def _doctests_left_out(collection: Collection, doctest_file: str) -> bool:
    """Whether the project's own runs collect modules' doctests but not ``doctest_file``'s (its
    ``testpaths`` leave the file out, say): then its examples are documentation the project never runs,
    and may need what only its test directories provide (semver's use a ``doctest_namespace`` fixture of
    ``tests/conftest.py``: run beside the module they fail whatever the code does). pytest alone decides:
    where the project does not collect doctests at all, a module's examples are run as lsp-verify's own
    check of the function. A file the project's collection could not import is not left out: its failure
    is the module's own, and its doctests are tried (and their import error reported) as anywhere else."""
    return (
        collection.doctest_modules
        and not any(test.doctest and test.file == doctest_file for test in collection.tests)
        and not any(where.split("::", 1)[0] == doctest_file for where, _ in collection.errors)
    )


def _collection_notes(collection: Collection) -> list[str]:
    """What the user should know about how the tests were found and are run."""
    notes = [
        f"{where} could not be collected ({message}): its tests were not run"
        for where, message in collection.errors
    ]
    notes += [
        f"{where} fails to collect in a run of the whole suite ({message}) but not on its own: another "
        "test file changes what it sees first (e.g. turns warnings into errors when imported); "
        "its tests run by name"
        for where, message in collection.order_dependent
    ]
    if collection.fresh_process:
        notes.append(f"tests run in a fresh `python -m pytest` process each time: {collection.fresh_process}")
    return notes


def _only_the_module_fails(run: TestRun, doctest_file: str) -> bool:
    """Whether everything that failed to collect in ``run`` is the edited module's own doctest collection."""
    return bool(run.collect_errors) and all(
        where.split("::", 1)[0] == doctest_file for where, _ in run.collect_errors
    )


def _docstring_item(item: str, module: str, qualname: str | None) -> bool:
    """Whether doctest item ``item`` of the edited file is the docstring of ``qualname`` (None: the module's
    own). pytest names it after the module as it imported it, which can be longer than the packages above
    the file say: ``jaraco.functools.compose`` in a namespace package (PEP 420), where ``module`` is
    ``functools``."""
    expected = f"{module}.{qualname}" if qualname else module
    return bool(expected) and (item == expected or item.endswith(f".{expected}"))


def _leak_message(files: Iterable[str]) -> str:
    """Why a run whose tests imported the edited module from somewhere else cannot pass, and what to do."""
    files = list(files)
    where = ", ".join(files)
    if any(file.endswith((".so", ".pyd")) for file in files):
        return (
            f"the tests imported a compiled build of the module ({where}: an extension beside its source, "
            "from Cython or mypyc) in place of the source, so they never ran the candidate (plain pytest "
            "does not run the source either); not reporting a pass. Remove the in-place build to check it"
        )
    message = (
        f"imports resolved outside the shadow workspace ({where}): an installed or editable copy of the "
        "package shadows the candidate, so its tests did not test it; not reporting a pass"
    )
    if any({"site-packages", "dist-packages"} & set(Path(file).parts) for file in files):
        message += (
            ". The project is installed in the environment that runs its tests, not editable: they import "
            "that copy, never the working tree (plain pytest too). Install it editable (`pip install -e .`)"
        )
    return message


def _outside(root: Path, entries: list[str]) -> str:
    """``entries`` (a PYTHONPATH) without those inside ``root``; relative ones stay (the worker resolves them
    against its own directory, which holds no modules)."""
    kept = []
    for entry in entries:
        path = Path(entry)
        if entry and not (path.is_absolute() and path.resolve().is_relative_to(root)):
            kept.append(entry)
    return os.pathsep.join(kept)


def _digest(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", errors="surrogatepass") + b"\0")
    return digest.hexdigest()
