"""Real-library benchmark: stub functions of published libraries and judge lsp-verify with their own tests.

For each library (a pinned sdist from PyPI, sha256-checked, fetched once into a cache) the benchmark picks
functions by a stated rule (:func:`candidate_functions`) and keeps those whose stub makes the library's own
test module for that source module fail. Per function, in a fresh copy of the library:

* **fix**: the body becomes ``raise NotImplementedError`` (docstring kept) and the real command
  ``lsp-verify fix --apply --format json FILE:LINE`` runs in the copy. A small hook around
  ``Pipeline.run`` (:func:`_fix_worker`, the only addition to the real command) records every candidate
  the pipeline verified, so each one can be judged too: that gives the *oracle* (some candidate passes the
  library's tests). The judge is a plain ``python -m pytest`` of the library's test module in the copy.
* **check**: a few small AST mutations of the original body (operator, constant, boundary), kept when the
  library's own tests kill them, are staged in a git repository of the copy and ``lsp-verify check`` is run
  as a pre-commit hook would; so are unmutated changes (a comment added, the body reformatted), which it
  must pass.

Run ``python bench/realworld.py --help``; bench/README.md explains the figures.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path.home() / ".cache" / "lsp-verify" / "bench" / "realworld"
STUB_LINE = "raise NotImplementedError"
MIN_BODY_LINES, MAX_BODY_LINES = 3, 40
SELECTION_RULE = (
    "public module-level functions and methods of top-level classes (no decorators, not async) with a "
    f"docstring and {MIN_BODY_LINES}-{MAX_BODY_LINES} body lines after it, in source modules that have a "
    "test module tests/test_<module>.py; modules in path order, functions taken round-robin across modules "
    "in file order, at most --per-library per library; kept only when the stub (body -> raise "
    "NotImplementedError) makes that test module fail and the original passes it"
)
SELECTION_VERSION = 2
"""Bumped whenever the rule or the stub changes: the cached selections are then made again."""
PRECISION_TARGET = 0.97
COVERAGE_OVER_ORACLE_TARGET = 0.95
RECALL_TARGET = 0.95


# ---------------------------------------------------------------------------------------------- libraries


@dataclasses.dataclass(frozen=True)
class Library:
    name: str
    version: str
    sha256: str
    package: str
    """The package's directory inside the sdist, e.g. ``more_itertools`` or ``src/humanize``."""
    tests: str
    """The directory of the library's test modules."""
    why: str
    """What this library exercises (test style, layout)."""
    pythonpath: tuple[str, ...] = ()
    """Directories (in the copy) on sys.path, as a developer's editable install provides them (a src/
    layout's ``src``). The judge and lsp-verify both run with them, plus the distribution's metadata (the
    sdist's PKG-INFO) for a library that reads its own version with ``importlib.metadata``."""
    skip_modules: tuple[str, ...] = ()
    """Source modules left out, with the reason in ``why`` (their tests need more than pytest)."""

    @property
    def sdist(self) -> str:
        return f"{self.name}-{self.version}.tar.gz"


LIBRARIES: tuple[Library, ...] = (
    Library(
        "more-itertools",
        "10.5.0",
        "5482bfef7849c25dc3c6dd53a6173ae4795da2a41a80faea6700d9f5846c5da6",
        "more_itertools",
        "tests",
        "unittest.TestCase suites (tests/test_more.py, test_recipes.py)",
    ),
    Library(
        "humanize",
        "4.8.0",
        "9783373bf1eec713a770ecaa7c2d7a7902c98398009dfa3d8a2df91eec9311e8",
        "src/humanize",
        "tests",
        "src/ layout; heavy pytest.mark.parametrize; time.py and i18n.py left out (their tests need "
        "freezegun and compiled message catalogues)",
        pythonpath=("src",),
        skip_modules=("time.py", "i18n.py"),
    ),
    Library(
        "inflection",
        "0.5.1",
        "1a29730d366e996aaacffb2f1f1cb9593dc38e2ddd30c91250c6dde09ea9b417",
        "inflection",
        ".",
        "one module, tests in test_inflection.py at the root, almost all parametrize over fixture tables",
    ),
    Library(
        "toolz",
        "1.0.0",
        "2c86e3d9a04798ac556793bced838816296a2f085017664e4995cb40a1047a02",
        "toolz",
        "toolz/tests",
        "plain pytest functions, tests inside the package",
    ),
    Library(
        "funcy",
        "2.0",
        "3963315d59d41c6f30c04bc910e10ab50a3ac4a225868bfa96feed133df075cb",
        "funcy",
        "tests",
        "functional helpers, many decorators and closures; colls, funcolls, funcs, seqs and tree left out "
        "(their tests import the third-party `whatever`)",
        skip_modules=("colls.py", "funcolls.py", "funcs.py", "seqs.py", "tree.py"),
    ),
)


def fetch(library: Library, cache: Path) -> Path:
    """The library's sdist in ``cache`` (downloaded once with ``pip download``), its sha256 checked."""
    downloads = cache / "sdists"
    path = downloads / library.sdist
    if not path.is_file():
        downloads.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet"),
                *("--dest", str(downloads), f"{library.name}=={library.version}"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0 or not path.is_file():
            last = (done.stderr.strip().splitlines() or ["no sdist downloaded"])[-1]
            raise BenchError(f"{library.name}=={library.version}: pip download failed: {last}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != library.sha256:
        raise BenchError(f"{path}: sha256 {digest} does not match the pinned {library.sha256}")
    return path


def unpack(sdist: Path, into: Path) -> Path:
    """The sdist's top directory, extracted into ``into`` (once)."""
    top = into / sdist.name.removesuffix(".tar.gz")
    if not top.is_dir():
        into.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist) as archive:
            archive.extractall(into, filter="data")
    return top


class BenchError(Exception):
    """The benchmark cannot run (a download, a checksum, a library whose own tests fail)."""


# ------------------------------------------------------------------------------------------- functions


@dataclasses.dataclass(frozen=True)
class Function:
    library: str
    relpath: str
    """Source module, relative to the library root."""
    qualname: str
    line: int
    """1-based line of the ``def``."""
    body_start: int
    """1-based first line of the body after the docstring."""
    body_end: int
    tests: tuple[str, ...]
    """The library's test modules that judge it (relative paths)."""

    @property
    def key(self) -> str:
        return f"{self.library}:{self.relpath}:{self.qualname}"

    @property
    def body_lines(self) -> int:
        return self.body_end - self.body_start + 1


def test_module_for(library: Library, root: Path, module: Path) -> str | None:
    """``tests/test_<module>.py`` for a source module (``__init__.py`` stands for the package name)."""
    stem = module.parent.name if module.name == "__init__.py" else module.stem
    test = root / library.tests / f"test_{stem}.py"
    return test.relative_to(root).as_posix() if test.is_file() else None


def candidate_functions(library: Library, root: Path) -> list[Function]:
    """Every function the selection rule (``SELECTION_RULE``) allows, round-robin across modules."""
    per_module: list[list[Function]] = []
    package = root / library.package
    for module in sorted(package.rglob("*.py")):
        relative = module.relative_to(package).as_posix()
        if "/" in relative or module.name in library.skip_modules:
            continue  # sub-packages (tests, vendored code) are out of scope; the top level is the API
        test = test_module_for(library, root, module)
        if test is None:
            continue
        relpath = module.relative_to(root).as_posix()
        functions = list(_module_functions(library.name, relpath, module.read_text(encoding="utf-8"), test))
        if functions:
            per_module.append(functions)
    out: list[Function] = []
    for i in range(max((len(f) for f in per_module), default=0)):
        out.extend(functions[i] for functions in per_module if i < len(functions))
    return out


def _module_functions(library: str, relpath: str, text: str, test: str) -> Iterator[Function]:
    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found = _function(library, relpath, node, node.name, test)
            if found is not None:
                yield found
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for member in node.body:
                if isinstance(member, ast.FunctionDef):
                    found = _function(library, relpath, member, f"{node.name}.{member.name}", test)
                    if found is not None:
                        yield found


def _function(library: str, relpath: str, node: ast.FunctionDef, qualname: str, test: str) -> Function | None:
    if node.name.startswith("_") or node.decorator_list or ast.get_docstring(node) is None:
        return None
    if len(node.body) < 2:
        return None
    first, last = node.body[1], node.body[-1]
    # A decorated statement starts at its first decorator.
    start = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", ()))])
    end = last.end_lineno or last.lineno
    if not MIN_BODY_LINES <= end - start + 1 <= MAX_BODY_LINES:
        return None
    if start == node.body[0].end_lineno:
        return None  # a statement on the docstring's line: no clean line to cut at
    return Function(library, relpath, qualname, node.lineno, start, end, (test,))


def stub_text(text: str, function: Function) -> str:
    """``text`` with ``function``'s body after the docstring replaced by ``raise NotImplementedError``."""
    lines = text.splitlines(keepends=True)
    first = lines[function.body_start - 1]
    indent = first[: len(first) - len(first.lstrip())]
    stub = f"{indent}{STUB_LINE}\n"
    return "".join([*lines[: function.body_start - 1], stub, *lines[function.body_end :]])


# ------------------------------------------------------------------------------------------- the copies


class Copy:
    """A git-tracked working copy of one library: every function starts from the pristine commit."""

    def __init__(self, pristine: Path, path: Path, library: Library | None = None) -> None:
        self.path = path
        self.pythonpath: list[str] = []
        """What an editable install of the library would put on sys.path (see ``Library.pythonpath``)."""
        if library is not None and library.pythonpath:
            site = path.parent / f".{path.name}-site"
            info = site / f"{library.name.replace('-', '_')}-{library.version}.dist-info"
            info.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pristine / "PKG-INFO", info / "METADATA")
            self.pythonpath = [*(str(path / p) for p in library.pythonpath), str(site)]
        if not (path / ".git").is_dir():
            if path.exists():
                shutil.rmtree(path)
            shutil.copytree(pristine, path, symlinks=True)
            self.git("init", "-q")
            self.git("add", "-A")
            self.git("-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "pristine")
        self.reset()

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.path, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise BenchError(f"git {' '.join(args)} in {self.path}: {done.stderr.strip()}")
        return done.stdout

    def reset(self) -> None:
        """Back to the pristine commit: index, work tree and untracked files (caches included)."""
        self.git("reset", "-q", "--hard", "HEAD")
        self.git("clean", "-qfdx")

    def read(self, relpath: str) -> str:
        return (self.path / relpath).read_text(encoding="utf-8")

    def write(self, relpath: str, text: str) -> None:
        (self.path / relpath).write_text(text, encoding="utf-8")


@dataclasses.dataclass(frozen=True)
class TestVerdict:
    __test__ = False  # not a pytest test class

    passed: bool
    summary: str
    """pytest's last summary line (or why it could not run)."""
    seconds: float


def judge(copy: Copy, tests: Sequence[str], timeout: float) -> TestVerdict:
    """The library's own tests, run as its developers run them: ``python -m pytest`` in the copy."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if copy.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(copy.pythonpath)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--color=no", *tests],
            cwd=copy.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return TestVerdict(False, f"timed out after {timeout:.0f}s", time.monotonic() - started)
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    summary = lines[-1] if lines else (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return TestVerdict(done.returncode == 0, summary[:300], time.monotonic() - started)


JudgeFn = Callable[[Copy, Sequence[str]], TestVerdict]


def select_functions(
    library: Library, copy: Copy, limit: int, judge_fn: JudgeFn, log: Callable[[str], None]
) -> list[Function]:
    """Up to ``limit`` functions by the rule whose stub the library's own tests catch."""
    kept: list[Function] = []
    baseline: dict[str, TestVerdict] = {}
    for function in candidate_functions(library, copy.path):
        if len(kept) >= limit:
            break
        test = function.tests[0]
        if test not in baseline:
            copy.reset()
            baseline[test] = judge_fn(copy, function.tests)
            if not baseline[test].passed:
                log(
                    f"  {library.name}: {test} fails on the original code ({baseline[test].summary}); skipped"
                )
        if not baseline[test].passed:
            continue
        copy.reset()
        copy.write(function.relpath, stub_text(copy.read(function.relpath), function))
        verdict = judge_fn(copy, function.tests)
        copy.reset()
        if not verdict.passed:
            kept.append(function)
    return kept


# ------------------------------------------------------------------------------------------------- fix


@dataclasses.dataclass
class CandidateRecord:
    index: int
    digest: str
    """sha256 of the whole file with the candidate spliced in (equal digests: the same program)."""
    verified: bool
    evidence: str
    first_error: str | None
    tests_selected: int
    library_tests: bool | None = None
    """The library's own test module passes with this candidate; None: not judged."""
    library_summary: str = ""
    stage_s: dict[str, float] = dataclasses.field(default_factory=dict)
    """Seconds of each verification stage it reached (parse, mypy, tests)."""


@dataclasses.dataclass
class FixOutcome:
    """What ``lsp-verify fix --apply`` did for one function, and every candidate it verified."""

    exit_code: int
    report: dict[str, Any] | None
    """The JSON report (report-schema.json), None when the command printed none."""
    candidates: list[tuple[CandidateRecord, str]]
    """(record, whole new file text) per distinct candidate, in the pipeline's rank order."""
    first_verified_s: float | None
    seconds: float
    n_generated: int
    stderr_tail: str = ""
    prepare_s: float | None = None
    """Seconds of ``Verifier.prepare``: collection, test selection, the baseline's mypy and test runs."""


FixFn = Callable[[Copy, "Function", "RunConfig"], FixOutcome]


@dataclasses.dataclass(frozen=True)
class RunConfig:
    k: int
    model: str | None
    seed: int
    max_tokens: int | None
    fix_timeout_s: float
    test_timeout_s: float
    server: str = str(REPO / "server")
    """The lsp_verify package's parent directory that is measured (default: this checkout's)."""

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _lsp_verify_env(copy: Copy, server: str) -> dict[str, str]:
    """The environment lsp-verify runs in: the measured package first, and the library as installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join([server, *copy.pythonpath])
    env["NO_COLOR"] = "1"
    return env


def run_fix(copy: Copy, function: Function, config: RunConfig) -> FixOutcome:
    """``lsp-verify fix --apply --format json FILE:LINE`` in the copy, through the recording hook."""
    record = copy.path.parent / f".{copy.path.name}-fix-record.json"
    record.unlink(missing_ok=True)
    argv = ["fix", "--apply", "--format", "json", f"{function.relpath}:{function.line}", "-k", str(config.k)]
    argv += ["--seed", str(config.seed)]
    if config.model:
        argv += ["--model", config.model]
    if config.max_tokens:
        argv += ["--max-tokens", str(config.max_tokens)]
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--fix-worker", str(record), "--", *argv],
            cwd=copy.path,
            env=_lsp_verify_env(copy, config.server),
            capture_output=True,
            text=True,
            timeout=config.fix_timeout_s,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return FixOutcome(-1, None, [], None, time.monotonic() - started, 0, "timed out")
    seconds = time.monotonic() - started
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = None
    candidates: list[tuple[CandidateRecord, str]] = []
    first, n_generated, prepare_s = None, 0, None
    if record.is_file():
        hooked = json.loads(record.read_text(encoding="utf-8"))
        record.unlink()
        first, n_generated = hooked["first_verified_s"], hooked["n_generated"]
        prepare_s = hooked.get("prepare_s")
        for c in hooked["candidates"]:
            text = c.pop("new_text")
            candidates.append((CandidateRecord(**c), text))
    tail = "\n".join(done.stderr.strip().splitlines()[-5:])
    return FixOutcome(done.returncode, report, candidates, first, seconds, n_generated, tail, prepare_s)


def _fix_worker(record: Path, argv: Sequence[str]) -> int:
    """The real ``lsp-verify`` command line, with ``Pipeline.run`` wrapped to record its candidates."""
    import faulthandler
    import signal

    from lsp_verify import cli, pipeline  # from PYTHONPATH: the measured package (RunConfig.server)
    from lsp_verify.verify import cascade

    # `kill -USR1 PID` writes every thread's stack next to the record: what a run that hangs is doing.
    stacks = record.with_suffix(".stacks").open("w", encoding="utf-8")
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)

    original = pipeline.Pipeline.run
    original_prepare = cascade.Verifier.prepare
    prepared: list[float] = []

    def timed_prepare(self: cascade.Verifier, *args: Any, **kwargs: Any) -> cascade.VerifyPlan:
        started = time.monotonic()
        try:
            return original_prepare(self, *args, **kwargs)
        finally:
            prepared.append(time.monotonic() - started)

    def write(fix: pipeline.FixReport | None) -> None:
        out = {
            "first_verified_s": fix.first_verified_s if fix else None,
            "n_generated": fix.n_generated if fix else 0,
            "prepare_s": round(sum(prepared), 2) if prepared else None,
            "candidates": [
                {
                    "index": r.candidate.index,
                    "digest": hashlib.sha256(r.candidate.new_text.encode()).hexdigest(),
                    "verified": r.passed,
                    "evidence": r.evidence.value,
                    "first_error": r.first_error,
                    "tests_selected": len(r.tests_selected),
                    "stage_s": {stage.stage: round(stage.seconds, 2) for stage in r.stages},
                    "new_text": r.candidate.new_text,
                }
                for r in (fix.results if fix else ())
            ],
        }
        record.write_text(json.dumps(out), encoding="utf-8")

    def recording_run(self: pipeline.Pipeline, *args: Any, **kwargs: Any) -> pipeline.FixReport:
        result = original(self, *args, **kwargs)
        # Written at once: a run that is stopped later (a hang while closing, say) keeps its candidates.
        write(result)
        return result

    pipeline.Pipeline.run = recording_run  # type: ignore[method-assign]
    cascade.Verifier.prepare = timed_prepare  # type: ignore[method-assign]
    write(None)
    return cli.main(list(argv))


@dataclasses.dataclass
class FunctionRecord:
    key: str
    library: str
    relpath: str
    qualname: str
    line: int
    body_lines: int
    tests: list[str]
    config: dict[str, Any]
    applied: bool = False
    applied_correct: bool | None = None
    """The applied file passes the library's tests; None when nothing was applied."""
    applied_summary: str = ""
    oracle: bool = False
    """Some candidate (verified or not) passes the library's tests."""
    status: str = ""
    """The report's status for the function (pass / fail / error), or "no report"."""
    evidence: str = ""
    message: str = ""
    tests_selected: int = 0
    reason: str = ""
    """Why nothing was applied, or why the applied body is wrong: see :func:`classify`."""
    first_verified_s: float | None = None
    seconds: float = 0.0
    n_generated: int = 0
    prepare_s: float | None = None
    """Seconds lsp-verify spent preparing (collection, selection, baseline runs); None: not recorded."""
    candidates: list[CandidateRecord] = dataclasses.field(default_factory=list)
    error: str | None = None
    exit_code: int | None = None
    """lsp-verify's exit code; -1 when it ran past --fix-timeout and was stopped."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, line: str) -> FunctionRecord:
        raw = json.loads(line)
        raw["candidates"] = [CandidateRecord(**c) for c in raw["candidates"]]
        return cls(**raw)


def classify(outcome: FixOutcome, applied: bool, correct: bool | None) -> str:
    """One phrase: why the rest failed (or what kind of wrong result was applied)."""
    if applied:
        verdict = "passes" if correct else "fails"
        late = ", then timed out before reporting" if outcome.exit_code == -1 else ""
        return f"applied, {verdict} the library's tests{late}"
    if outcome.exit_code == -1:
        return "fix timed out"
    report = outcome.report
    if report is None:
        return "no report (crash)"
    if report.get("error"):
        return "error: " + str(report["error"]).split(" (")[0][:80]
    functions = report.get("functions") or []
    if functions and functions[0].get("status") == "error":
        return "tests could not run"
    if not outcome.candidates:
        return "nothing parsed (no candidate)"
    stages = {(c.first_error or "").split(":")[0] for c, _ in outcome.candidates}
    if stages == {"parse"}:
        return "no candidate parsed"
    if stages <= {"parse", "mypy"}:
        return "no candidate passed mypy"
    return "no candidate passed the nearby tests"


def fix_function(
    library: Library, copy: Copy, function: Function, config: RunConfig, fix_fn: FixFn, judge_fn: JudgeFn
) -> FunctionRecord:
    """Stub, fix --apply, and judge the applied file and every candidate with the library's tests."""
    record = FunctionRecord(
        function.key,
        library.name,
        function.relpath,
        function.qualname,
        function.line,
        function.body_lines,
        list(function.tests),
        config.as_json(),
    )
    copy.reset()
    stubbed = stub_text(copy.read(function.relpath), function)
    copy.write(function.relpath, stubbed)
    outcome = fix_fn(copy, function, config)
    after = copy.read(function.relpath)
    record.applied = after != stubbed
    record.first_verified_s, record.seconds = outcome.first_verified_s, round(outcome.seconds, 2)
    record.n_generated, record.exit_code = outcome.n_generated, outcome.exit_code
    record.prepare_s = outcome.prepare_s
    report_function = ((outcome.report or {}).get("functions") or [None])[0]
    if report_function is not None:
        record.status = report_function["status"]
        record.evidence = report_function["evidence"]
        record.message = report_function["message"]
        record.tests_selected = len(report_function["tests"]["selected"])
    else:
        record.status = "no report"
        record.error = ((outcome.report or {}).get("error")) or outcome.stderr_tail or None
    verdicts: dict[str, TestVerdict] = {}
    if record.applied:
        verdict = judge_fn(copy, function.tests)
        verdicts[hashlib.sha256(after.encode()).hexdigest()] = verdict
        record.applied_correct, record.applied_summary = verdict.passed, verdict.summary
    for candidate, text in outcome.candidates:
        if candidate.digest not in verdicts:
            copy.write(function.relpath, text)
            verdicts[candidate.digest] = judge_fn(copy, function.tests)
        candidate.library_tests = verdicts[candidate.digest].passed
        candidate.library_summary = verdicts[candidate.digest].summary
        record.candidates.append(candidate)
    record.oracle = any(c.library_tests for c in record.candidates) or bool(record.applied_correct)
    record.reason = classify(outcome, record.applied, record.applied_correct)
    copy.reset()
    return record


# --------------------------------------------------------------------------------------------- mutants


@dataclasses.dataclass(frozen=True)
class Mutation:
    kind: str
    """operator, constant, boundary, or (unmutated) comment / reformat."""
    description: str
    text: str
    """The whole module with the change."""


_SWAPS: dict[type[ast.AST], tuple[str, str, str]] = {
    ast.Lt: ("<", "<=", "boundary"),
    ast.LtE: ("<=", "<", "boundary"),
    ast.Gt: (">", ">=", "boundary"),
    ast.GtE: (">=", ">", "boundary"),
    ast.Eq: ("==", "!=", "operator"),
    ast.NotEq: ("!=", "==", "operator"),
    ast.Add: ("+", "-", "operator"),
    ast.Sub: ("-", "+", "operator"),
    ast.Mult: ("*", "//", "operator"),
    ast.And: ("and", "or", "operator"),
    ast.Or: ("or", "and", "operator"),
}


def mutations(text: str, function: Function) -> list[Mutation]:
    """Small deterministic mutations of ``function``'s body (after the docstring), in source order.

    Each changes one operator or constant in place, so the rest of the file keeps its bytes: a comparison
    loosened or tightened (boundary), an arithmetic, equality or boolean operator swapped (operator), an
    integer constant moved by one or a boolean flipped (constant).
    """
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(lineno: int, col: int) -> int:
        return offsets[lineno - 1] + len(lines[lineno - 1].encode()[:col].decode())

    node = _find_def(ast.parse(text), function)
    out: list[tuple[int, Mutation]] = []
    for stmt in node.body[1:]:
        for sub in ast.walk(stmt):
            found = _mutate(text, sub, at)
            if found is not None:
                out.append(found)
    out.sort(key=lambda item: item[0])
    unique: dict[str, Mutation] = {}
    for _, mutation in out:
        if ast.dump(ast.parse(mutation.text)) != ast.dump(ast.parse(text)):
            unique.setdefault(mutation.text, mutation)
    return list(unique.values())


def _mutate(text: str, node: ast.AST, at: Callable[[int, int], int]) -> tuple[int, Mutation] | None:
    def segment_between(left: ast.expr, right: ast.expr) -> tuple[int, int]:
        return at(left.end_lineno or 0, left.end_col_offset or 0), at(right.lineno, right.col_offset)

    def replace_op(start: int, end: int, old: str, new: str, kind: str) -> tuple[int, Mutation] | None:
        segment = text[start:end]
        tokens = segment.replace("(", " ").replace(")", " ").split()
        if tokens != [old]:
            return None
        index = start + segment.index(old)
        mutated = text[:index] + new + text[index + len(old) :]
        line = text.count("\n", 0, index) + 1
        return index, Mutation(kind, f"line {line}: {old} -> {new}", mutated)

    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _SWAPS:
        old, new, kind = _SWAPS[type(node.ops[0])]
        return replace_op(*segment_between(node.left, node.comparators[0]), old, new, kind)
    if isinstance(node, ast.BinOp) and type(node.op) in _SWAPS:
        old, new, kind = _SWAPS[type(node.op)]
        return replace_op(*segment_between(node.left, node.right), old, new, kind)
    if isinstance(node, ast.BoolOp) and len(node.values) == 2 and type(node.op) in _SWAPS:
        old, new, kind = _SWAPS[type(node.op)]
        return replace_op(*segment_between(node.values[0], node.values[1]), old, new, kind)
    if isinstance(node, ast.Constant) and node.lineno == node.end_lineno:
        start, end = at(node.lineno, node.col_offset), at(node.end_lineno, node.end_col_offset or 0)
        source = text[start:end]
        if isinstance(node.value, bool):
            new = "False" if node.value else "True"
        elif isinstance(node.value, int) and source.isdigit():
            new = str(node.value + 1)
        else:
            return None
        line = text.count("\n", 0, start) + 1
        return start, Mutation("constant", f"line {line}: {source} -> {new}", text[:start] + new + text[end:])
    return None


def neutral_changes(text: str, function: Function) -> list[Mutation]:
    """Changes that keep the behaviour: a comment added to the body, and the body reformatted (re-printed
    by ``ast.unparse``, which drops comments and normalises quotes and parentheses, with a blank line
    between statements)."""
    lines = text.splitlines(keepends=True)
    first = lines[function.body_start - 1]
    indent = first[: len(first) - len(first.lstrip())]
    comment = f"{indent}# Reviewed: this comment changes nothing.\n"
    commented = "".join([*lines[: function.body_start - 1], comment, *lines[function.body_start - 1 :]])
    node = _find_def(ast.parse(text), function)
    body = "\n".join(
        "".join(f"{indent}{line}\n" for line in ast.unparse(stmt).splitlines()) for stmt in node.body[1:]
    )
    reformatted = "".join([*lines[: function.body_start - 1], body, *lines[function.body_end :]])
    out = [Mutation("comment", "a comment line added to the body", commented)]
    if reformatted != text:
        out.append(Mutation("reformat", "the body re-printed by ast.unparse", reformatted))
    return out


def _find_def(tree: ast.Module, function: Function) -> ast.FunctionDef:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.lineno == function.line:
            return node
    raise BenchError(f"{function.key}: no def at line {function.line}")


@dataclasses.dataclass
class MutantRecord:
    key: str
    library: str
    qualname: str
    kind: str
    description: str
    unmutated: bool
    """A behaviour-keeping change (check must pass it), not a mutant (check must block it)."""
    library_tests: bool
    """The library's own tests pass with the change (a mutant is "killed" when this is False)."""
    check_exit: int | None = None
    check_status: str = ""
    check_message: str = ""
    seconds: float = 0.0

    @property
    def blocked(self) -> bool:
        return self.check_exit not in (0, None)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, line: str) -> MutantRecord:
        return cls(**json.loads(line))


CheckFn = Callable[[Copy, RunConfig], tuple[int, dict[str, Any] | None, float]]


def run_check(copy: Copy, config: RunConfig) -> tuple[int, dict[str, Any] | None, float]:
    """``lsp-verify check --format json`` in the copy: the staged change, as the pre-commit hook runs it."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "lsp_verify", "check", "--format", "json"],
            cwd=copy.path,
            env=_lsp_verify_env(copy, config.server),
            capture_output=True,
            text=True,
            timeout=config.fix_timeout_s,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return -1, None, time.monotonic() - started
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = None
    return done.returncode, report, time.monotonic() - started


def check_function(
    library: Library,
    copy: Copy,
    function: Function,
    per_function: int,
    max_tries: int,
    judge_fn: JudgeFn,
    check_fn: CheckFn,
    config: RunConfig,
) -> list[MutantRecord]:
    """Up to ``per_function`` mutants the library's tests kill, and the unmutated changes, each staged and
    checked."""
    copy.reset()
    original = copy.read(function.relpath)
    chosen: list[tuple[Mutation, bool]] = []
    killed = 0
    for mutation in mutations(original, function)[:max_tries]:
        if killed >= per_function:
            break
        copy.reset()
        copy.write(function.relpath, mutation.text)
        passes = judge_fn(copy, function.tests).passed
        if not passes:
            killed += 1
            chosen.append((mutation, False))
    for change in neutral_changes(original, function):
        copy.reset()
        copy.write(function.relpath, change.text)
        if judge_fn(copy, function.tests).passed:
            chosen.append((change, True))
    out = []
    for mutation, unmutated in chosen:
        copy.reset()
        copy.write(function.relpath, mutation.text)
        copy.git("add", function.relpath)
        code, report, seconds = check_fn(copy, config)
        # A change inside a nested function is reported under the nested function's name.
        mine = [
            f
            for f in (report or {}).get("functions", [])
            if f["qualname"] == function.qualname or f["qualname"].startswith(function.qualname + ".")
        ]
        status = mine[0]["status"] if mine else ("no report" if report is None else "not checked")
        message = mine[0]["message"] if mine else str((report or {}).get("error") or "")
        out.append(
            MutantRecord(
                function.key,
                library.name,
                function.qualname,
                mutation.kind,
                mutation.description,
                unmutated,
                unmutated,
                code,
                status,
                message[:300],
                round(seconds, 2),
            )
        )
    copy.reset()
    return out


# --------------------------------------------------------------------------------------------- summary


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 3) if den else None


def _median(values: Iterable[float]) -> float | None:
    data = list(values)
    return round(statistics.median(data), 1) if data else None


def summarise_fix(records: Sequence[FunctionRecord]) -> dict[str, Any]:
    def figures(rows: Sequence[FunctionRecord]) -> dict[str, Any]:
        applied = [r for r in rows if r.applied]
        correct = [r for r in applied if r.applied_correct]
        oracle = [r for r in rows if r.oracle]
        coverage = _ratio(len(applied), len(rows))
        oracle_rate = _ratio(len(oracle), len(rows))
        return {
            "functions": len(rows),
            "applied": len(applied),
            "applied_correct": len(correct),
            "oracle": len(oracle),
            "coverage": coverage,
            "precision": _ratio(len(correct), len(applied)),
            "oracle_rate": oracle_rate,
            "coverage_over_oracle": round(coverage / oracle_rate, 3)
            if coverage is not None and oracle_rate
            else None,
            "t_first_median_s": _median(r.first_verified_s for r in rows if r.first_verified_s is not None),
            "t_full_median_s": _median(r.seconds for r in rows),
            "tests_evidence": sum(1 for r in applied if r.evidence == "tests"),
        }

    libraries = list(dict.fromkeys(r.library for r in records))
    reasons: dict[str, int] = {}
    for r in records:
        reason = r.reason.split(" (")[0] if r.reason.startswith("error: ") else r.reason
        reasons[reason] = reasons.get(reason, 0) + 1
    wrong = [
        {"function": r.key, "evidence": r.evidence, "message": r.message, "library": r.applied_summary}
        for r in records
        if r.applied and not r.applied_correct
    ]
    return {
        "all": figures(records),
        "by_library": {lib: figures([r for r in records if r.library == lib]) for lib in libraries},
        "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "applied_wrong": wrong,
    }


def summarise_check(records: Sequence[MutantRecord]) -> dict[str, Any]:
    def figures(rows: Sequence[MutantRecord]) -> dict[str, Any]:
        mutants = [r for r in rows if not r.unmutated]
        neutral = [r for r in rows if r.unmutated]
        blocked = [r for r in mutants if r.blocked]
        alarms = [r for r in neutral if r.blocked]
        return {
            "functions": len({r.key for r in rows}),
            "mutants": len(mutants),
            "blocked": len(blocked),
            "blocked_by_error": sum(1 for r in blocked if r.check_exit != 1),
            "recall": _ratio(len(blocked), len(mutants)),
            "unmutated": len(neutral),
            "false_alarms": len(alarms),
            "false_alarms_by_error": sum(1 for r in alarms if r.check_exit != 1),
            "check_median_s": _median(r.seconds for r in rows),
        }

    libraries = list(dict.fromkeys(r.library for r in records))
    missed = [
        {"function": r.key, "mutation": r.description, "status": r.check_status, "message": r.check_message}
        for r in records
        if not r.unmutated and not r.blocked
    ]
    alarms = [
        {"function": r.key, "change": r.kind, "status": r.check_status, "message": r.check_message}
        for r in records
        if r.unmutated and r.blocked
    ]
    return {
        "all": figures(records),
        "by_library": {lib: figures([r for r in records if r.library == lib]) for lib in libraries},
        "missed": missed,
        "false_alarms": alarms,
    }


def targets(fix: Mapping[str, Any] | None, check: Mapping[str, Any] | None) -> list[str]:
    out = []
    if fix is not None:
        a = fix["all"]
        p, c = a["precision"], a["coverage_over_oracle"]
        out.append(
            f"precision >= {PRECISION_TARGET}: "
            + (
                "no function applied, cannot tell"
                if p is None
                else f"{p:.3f} — {'MET' if p >= PRECISION_TARGET else 'NOT MET'}"
            )
        )
        out.append(
            f"coverage >= {COVERAGE_OVER_ORACLE_TARGET} x oracle: "
            + (
                "oracle 0, cannot tell"
                if c is None
                else f"{a['coverage']:.3f} vs oracle {a['oracle_rate']:.3f} = {c:.3f} x — "
                f"{'MET' if c >= COVERAGE_OVER_ORACLE_TARGET else 'NOT MET'}"
            )
        )
    if check is not None:
        a = check["all"]
        r = a["recall"]
        out.append(
            f"check blocks >= {RECALL_TARGET} of killed mutants: "
            + (
                "no mutant, cannot tell"
                if r is None
                else f"{r:.3f} — {'MET' if r >= RECALL_TARGET else 'NOT MET'}"
            )
        )
        out.append(
            f"no false alarms on unmutated changes: {a['false_alarms']} of {a['unmutated']} — "
            + ("MET" if a["false_alarms"] == 0 else "NOT MET")
        )
    return out


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}s"


def markdown(summary: Mapping[str, Any]) -> str:
    meta = summary["run"]
    lines = [f"# lsp-verify on real libraries ({meta['model_label']})", ""]
    fix = summary.get("fix")
    if fix is not None:
        lines += [
            "## fix --apply, judged by the library's own tests",
            "",
            "| library | functions | applied | coverage | precision | oracle | coverage / oracle "
            "| backed by tests | t_first median | t_full median |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        rows = [*fix["by_library"].items(), ("**all**", fix["all"])]
        for name, f in rows:
            ratio = "–" if f["coverage_over_oracle"] is None else f["coverage_over_oracle"]
            lines.append(
                f"| {name} | {f['functions']} | {f['applied']} | {_pct(f['coverage'])} | "
                f"{_pct(f['precision'])} ({f['applied_correct']}/{f['applied']}) | {_pct(f['oracle_rate'])} "
                f"({f['oracle']}) | {ratio} | {f['tests_evidence']}/{f['applied']} | "
                f"{_s(f['t_first_median_s'])} | {_s(f['t_full_median_s'])} |"
            )
        lines += ["", "Outcomes:", "", "| outcome | functions |", "|---|---|"]
        lines += [f"| {reason} | {n} |" for reason, n in fix["reasons"].items()]
        if fix["applied_wrong"]:
            lines += ["", "Applied but failing the library's tests:", ""]
            lines += [
                f"- `{w['function']}` ({w['evidence']}): {w['message']} — library: {w['library']}"
                for w in fix["applied_wrong"]
            ]
        lines.append("")
    check = summary.get("check")
    if check is not None:
        lines += [
            "## check on mutants (staged, as the pre-commit hook)",
            "",
            "A change is blocked when `check` exits non-zero, as the hook then stops the commit: exit 1 "
            "(a check failed) or exit 2 (it could not check; counted in brackets).",
            "",
            "| library | mutants killed by the suite | blocked by check (by error) | recall "
            "| unmutated changes | false alarms (by error) | check median |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, c in [*check["by_library"].items(), ("**all**", check["all"])]:
            lines.append(
                f"| {name} | {c['mutants']} | {c['blocked']} ({c.get('blocked_by_error', 0)}) | "
                f"{_pct(c['recall'])} | {c['unmutated']} | {c['false_alarms']} "
                f"({c.get('false_alarms_by_error', 0)}) | {_s(c['check_median_s'])} |"
            )
        for title, rows, what in (
            ("Mutants check let through", check["missed"], "mutation"),
            ("False alarms", check["false_alarms"], "change"),
        ):
            if rows:
                lines += ["", f"{title}:", ""]
                lines += [f"- `{r['function']}` {r[what]}: {r['status']} — {r['message']}" for r in rows]
        lines.append("")
    lines += ["## Targets", ""]
    lines += [f"- {line}" for line in summary["targets"]]
    lines += ["", "## Run", ""]
    lines.append(f"- command (this summary): `{meta['command']}`")
    lines.append(
        f"- date: {meta['date']}; revision {meta['revision']}; wall time {meta['wall_s'] / 60:.1f} min"
    )
    load, machine = meta["load_average"], meta["machine"]
    lines.append(
        f"- machine: {machine['cores']} cores, {machine['cpu']}, Python {machine['python']}; "
        f"load average (1/5/15 min) at start {'/'.join(map(str, load['start']))}, at end "
        f"{'/'.join(map(str, load['end']))}"
    )
    lines.append(f"- settings: {json.dumps(meta['config'])}")
    lines.append(
        f"- functions selected: {meta['functions']}; with a fix record: "
        f"{fix['all']['functions'] if fix else 0}; checked: {check['all']['functions'] if check else 0}"
    )
    for ran in summary.get("runs", []):
        lines.append(
            f"- {'+'.join(ran['steps'])} run `{ran['command']}`: ended {ran['date']}, revision "
            f"{ran['revision']}, {ran['wall_s'] / 60:.1f} min, load average at start "
            f"{'/'.join(map(str, ran['load_average']['start']))}, at end "
            f"{'/'.join(map(str, ran['load_average']['end']))}"
        )
    lines.append(
        "- libraries: "
        + "; ".join(f"{lib['name']} {lib['version']} ({lib['why']})" for lib in meta["libraries"])
    )
    lines.append(f"- selection: {SELECTION_RULE}")
    lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- main


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_revision() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _read_jsonl(path: Path, parse: Callable[[str], Any]) -> list[Any]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(parse(line))
        except (ValueError, TypeError, KeyError):
            continue  # a line an interrupted run cut short
    return out


class _Stopped(Exception):
    """SIGTERM arrived: stop after writing what is done."""


def _stop(signum: int, frame: object) -> None:
    raise _Stopped


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/realworld.py",
        description="lsp-verify fix and check on functions of real libraries, judged by their own tests.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--libraries", default=",".join(lib.name for lib in LIBRARIES), help="comma-separated"
    )
    parser.add_argument("--per-library", type=int, default=10, help="functions kept per library")
    parser.add_argument("--limit", type=int, default=None, help="run only the first N selected functions")
    parser.add_argument("-k", type=int, default=8, help="candidates per function")
    parser.add_argument(
        "--model", default=None, help="a GGUF or embedded:NAME (default: the embedded default)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-tokens", type=int, default=None, help="token budget per candidate (settings default)"
    )
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="sdists, unpacked trees, working copies"
    )
    parser.add_argument("--out-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="the working copies (default: CACHE/work); one per run"
    )
    parser.add_argument(
        "--lsp-verify",
        type=Path,
        default=REPO / "server",
        help="the directory holding the lsp_verify package to measure (e.g. another revision's server/)",
    )
    parser.add_argument(
        "--name", default="realworld", help="results are NAME.json, NAME.md, NAME.jsonl, NAME-check.jsonl"
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the records already written; run the rest"
    )
    parser.add_argument("--no-fix", action="store_true", help="skip the fix runs (model)")
    parser.add_argument("--no-check", action="store_true", help="skip the check runs on mutants")
    parser.add_argument("--mutants", type=int, default=2, help="killed mutants per function")
    parser.add_argument("--mutant-tries", type=int, default=6, help="mutations tried per function")
    parser.add_argument("--fix-timeout", type=float, default=900.0, help="seconds per fix run")
    parser.add_argument("--test-timeout", type=float, default=180.0, help="seconds per library test run")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    libraries: Sequence[Library] = LIBRARIES,
    fix_fn: FixFn = run_fix,
    check_fn: CheckFn = run_check,
    fetch_fn: Callable[[Library, Path], Path] | None = None,
) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["--fix-worker"]:
        # Internal: `--fix-worker RECORD -- LSP-VERIFY-ARGS...` (see run_fix).
        return _fix_worker(Path(raw[1]), raw[3:] if raw[2:3] == ["--"] else raw[2:])
    args = build_parser().parse_args(raw)
    wanted = [n.strip() for n in args.libraries.split(",") if n.strip()]
    chosen = [lib for lib in libraries if lib.name in wanted]
    if len(chosen) != len(wanted):
        known = ", ".join(lib.name for lib in libraries)
        print(f"error: unknown library in --libraries (known: {known})", file=sys.stderr)
        return 2
    config = RunConfig(
        args.k,
        args.model,
        args.seed,
        args.max_tokens,
        args.fix_timeout,
        args.test_timeout,
        str(args.lsp_verify.resolve()),
    )
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    fix_path, check_path = out_dir / f"{args.name}.jsonl", out_dir / f"{args.name}-check.jsonl"

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def judge_fn(copy: Copy, tests: Sequence[str]) -> TestVerdict:
        return judge(copy, tests, args.test_timeout)

    started, load_start = time.monotonic(), _load_average()
    fix_records: dict[str, FunctionRecord] = {}
    check_records: dict[str, list[MutantRecord]] = {}
    # A step that runs starts over unless --resume; a step that is skipped keeps its records in the summary
    # (so a fix run and a check run can go side by side, each with its own --work-dir).
    if args.resume or args.no_fix:
        for r in _read_jsonl(fix_path, FunctionRecord.from_json):
            if r.config == config.as_json() or args.no_fix:
                fix_records[r.key] = r  # (only summarised when not run: each record keeps its settings)
            elif not args.no_fix:
                log(f"error: {fix_path} was written with other settings ({r.config}); run without --resume")
                return 2
    if args.resume or args.no_check:
        for m in _read_jsonl(check_path, MutantRecord.from_json):
            check_records.setdefault(m.key, []).append(m)
    if not args.no_fix:
        fix_path.write_text("".join(r.to_json() + "\n" for r in fix_records.values()), encoding="utf-8")
    if not args.no_check:
        check_path.write_text(
            "".join(m.to_json() + "\n" for ms in check_records.values() for m in ms), encoding="utf-8"
        )

    per_library: list[list[tuple[Library, Copy, Function]]] = []
    try:
        for library in chosen:
            sdist = (fetch_fn or fetch)(library, args.cache)
            pristine = unpack(sdist, args.cache / "src")
            copy = Copy(pristine, (args.work_dir or args.cache / "work") / library.name, library)
            selection_file = (
                args.cache
                / f"selection-v{SELECTION_VERSION}-{library.name}-{library.version}-{args.per_library}.json"
            )
            if selection_file.is_file():
                functions = [
                    Function(**{**f, "tests": tuple(f["tests"])})
                    for f in json.loads(selection_file.read_text())
                ]
            else:
                functions = select_functions(library, copy, args.per_library, judge_fn, log)
                selection_file.write_text(json.dumps([dataclasses.asdict(f) for f in functions], indent=1))
            log(f"{library.name} {library.version}: {len(functions)} functions selected")
            per_library.append([(library, copy, f) for f in functions])
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    # Round-robin across libraries, so that --limit N samples every library.
    selected = [
        row[i] for i in range(max(map(len, per_library), default=0)) for row in per_library if i < len(row)
    ]
    if args.limit is not None:
        selected = selected[: args.limit]

    crashed, stopped = 0, False
    # SIGTERM stops the run between two steps and still writes the summary of what is done.
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        for i, (library, copy, function) in enumerate(selected, start=1):
            if not args.no_fix and function.key not in fix_records:
                record = fix_function(library, copy, function, config, fix_fn, judge_fn)
                fix_records[function.key] = record
                with fix_path.open("a", encoding="utf-8") as fh:
                    fh.write(record.to_json() + "\n")
                crashed = crashed + 1 if record.reason == "no report (crash)" else 0
                if crashed == 3:
                    log(f"error: lsp-verify fix crashed three times in a row; the last said:\n{record.error}")
                    return 2
                verdict = "–" if not record.applied else ("correct" if record.applied_correct else "WRONG")
                log(
                    f"[{i}/{len(selected)}] fix {function.key}: {record.reason}; applied {verdict}; oracle "
                    f"{record.oracle}; {len(record.candidates)} candidates; {record.seconds:.0f}s"
                )
            if not args.no_check and function.key not in check_records:
                mutants = check_function(
                    library, copy, function, args.mutants, args.mutant_tries, judge_fn, check_fn, config
                )
                check_records[function.key] = mutants
                with check_path.open("a", encoding="utf-8") as fh:
                    fh.writelines(m.to_json() + "\n" for m in mutants)
                log(
                    f"[{i}/{len(selected)}] check {function.key}: "
                    + ", ".join(f"{m.kind} {'blocked' if m.blocked else 'passed'}" for m in mutants)
                )
    except _Stopped:
        stopped = True
        log("stopped (SIGTERM): the summary covers the functions done so far")
    finally:
        signal.signal(signal.SIGTERM, previous)

    keys = [f.key for _, _, f in selected]
    fix_rows = [fix_records[k] for k in keys if k in fix_records]
    check_rows = [m for k in keys for m in check_records.get(k, [])]
    fix_summary = summarise_fix(fix_rows) if fix_rows else None
    check_summary = summarise_check(check_rows) if check_rows else None
    command = ["python", "bench/realworld.py", *raw]
    summary: dict[str, Any] = {
        "fix": fix_summary,
        "check": check_summary,
        "targets": targets(fix_summary, check_summary),
        "run": {
            "command": shlex.join(command),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "revision": _git_revision(),
            "wall_s": round(time.monotonic() - started, 1),
            "load_average": {"start": load_start, "end": _load_average()},
            "machine": {"cores": os.cpu_count(), "cpu": _cpu(), "python": platform.python_version()},
            "model_label": args.model or "embedded default model",
            "config": config.as_json(),
            "selection_rule": SELECTION_RULE,
            "libraries": [
                {"name": lib.name, "version": lib.version, "sha256": lib.sha256, "why": lib.why}
                for lib in chosen
            ],
            "functions": len(selected),
            "records": [str(fix_path), str(check_path)],
        },
    }
    # Each run that did work leaves its command, time and load: a summary written later (--resume, or
    # --no-fix --no-check) still says how every record was made.
    runs_path = out_dir / f"{args.name}-runs.jsonl"
    if (not args.no_fix or not args.no_check) and selected:
        ran = {
            k: summary["run"][k] for k in ("command", "date", "revision", "wall_s", "load_average", "config")
        }
        ran["steps"] = [step for step, off in (("fix", args.no_fix), ("check", args.no_check)) if not off]
        ran["stopped_early"] = stopped
        with runs_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(ran) + "\n")
    summary["runs"] = _read_jsonl(runs_path, json.loads)
    (out_dir / f"{args.name}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    text = markdown(summary)
    (out_dir / f"{args.name}.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
