"""``lsp-verify fix --ask``: the real command on a terminal (a pty), with a scripted engine and the real
verifier, probes and pytest; and the same command where stdin is not a terminal (it must never prompt)."""

from __future__ import annotations

import ast
import json
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

SCALE = '''\
def scale(xs: list[int], factor: int) -> list[int]:
    """Each element of ``xs`` times ``factor``."""
    ...
'''
RIGHT = "    return [x * factor for x in xs]\n"
RIGHT_TOO = "    return [factor * x for x in xs]\n"
WRONG = "    return xs * factor\n"
# Off by one: never the right output, so the right value typed below is no candidate's on any input
# (``x + factor`` was right on degenerate inputs such as ``scale([0], 0)``, which the drawn probes include).
OFF_BY_ONE = "    return [x * factor + 1 for x in xs]\n"

CHILD = textwrap.dedent(
    """\
    import json, sys
    from lsp_verify import cli, pipeline
    from lsp_verify.model.types import EngineInfo, Generation

    ROUNDS = json.loads(sys.argv[1])

    class ScriptedEngine:
        def __init__(self):
            self.calls = 0
            self.info = EngineInfo("scripted.gguf", "CPU", False, 0, 0, 1, 4096, 8)

        def generate(self, prompt, params, *, on_generation=None, cancel=None):
            bodies = ROUNDS[min(self.calls, len(ROUNDS) - 1)]
            self.calls += 1
            out = []
            for i, body in enumerate(bodies[: params.k]):
                generation = Generation(i, body, 5, -0.1 * (i + 1), "stop", 0.01)
                out.append(generation)
                if on_generation is not None:
                    on_generation(generation)
            return out

        def close(self):
            pass

    pipeline.load_engine = lambda settings: ScriptedEngine()
    sys.exit(cli.main(sys.argv[2:]))
    """
)

SERVER = str(Path(__file__).resolve().parents[1] / "server")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "ops"\nversion = "0"\n')
    (root / "ops.py").write_text(SCALE)
    (tmp_path / "child.py").write_text(CHILD)
    return root


def command(project: Path, rounds: list[list[str]], *args: str) -> list[str]:
    child = str(project.parent / "child.py")
    return [sys.executable, child, json.dumps(rounds), "fix", "ops.py", "-k", "4", "--format", "json", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SERVER, "NO_COLOR": "1"}


class Terminal:
    """The command on a pty (stdin and stderr); its stdout, the JSON report, goes to a file."""

    def __init__(self, argv: list[str], cwd: Path, stdout: Path) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: stdout to the file, the rest stays on the terminal
            out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1)
            os.chdir(cwd)
            os.execve(argv[0], argv, environment())
        self.pid, self.fd, self.seen = pid, fd, ""

    def expect(self, pattern: str, deadline_s: float = 180.0) -> re.Match[str]:
        stop = time.monotonic() + deadline_s
        while (match := re.search(pattern, self.seen)) is None:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, stop - time.monotonic()))
            if not ready:
                raise AssertionError(f"no {pattern!r} on the terminal; it shows:\n{self.seen}")
            try:
                chunk = os.read(self.fd, 4096).decode("utf-8", "replace")
            except OSError:  # EIO: the child closed the terminal
                chunk = ""
            if not chunk:
                raise AssertionError(
                    f"the command ended before {pattern!r}; the terminal shows:\n{self.seen}"
                )
            self.seen += chunk
        self.seen = self.seen[match.end() :]
        return match

    def type(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def wait(self) -> int:
        while True:
            try:
                if not os.read(self.fd, 4096):
                    break
            except OSError:
                break
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


def options(prompt: str) -> list[tuple[str, int]]:
    return [(m[1], int(m[2])) for m in re.finditer(r"^\s+\d\) (.+?)\s+\((\d+) samples?\)\r?$", prompt, re.M)]


def test_ask_on_a_terminal_filters_by_the_answer_and_keeps_it_as_a_test(project: Path) -> None:
    report_file = project.parent / "report.json"
    rounds = [[RIGHT, RIGHT_TOO, WRONG, RIGHT]]
    terminal = Terminal(command(project, rounds, "--ask", "--apply"), project, report_file)
    asked = terminal.expect(r"Which is right\?\r?\n  (scale\(.*\))\r?\n((?:.|\n)*?)answer> ")
    call, shown = asked[1], options(asked[2])
    assert [samples for _, samples in shown] == [3, 1]
    terminal.type("[1, 2")  # not a literal: asked again, with the parse error
    terminal.expect(
        r"'\[1, 2' is not a Python literal \(.*\); type a value like \[3, 6\] or 'abc'\r?\nanswer> "
    )
    terminal.type("1")
    assert terminal.wait() == 0

    report = json.loads(report_file.read_text())
    (function,) = report["functions"]
    assert function["status"] == "pass" and function["applied"] is True
    assert function["question"] == {
        "call": call,
        "options": [{"output": out, "raises": None, "samples": n} for out, n in shown],
        "answer": shown[0][0],
    }
    args = ast.literal_eval(f"({call.removeprefix('scale(')[:-1]},)")
    assert ast.literal_eval(shown[0][0]) == [x * args[1] for x in args[0]]
    assert "[x * factor for x in xs]" in (project / "ops.py").read_text()
    test_file = project / "tests" / "test_ops.py"
    assert f"assert {call} == {shown[0][0]}" in test_file.read_text()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_ops.py"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**environment(), "PYTHONPATH": str(project)},
    )
    assert "1 passed" in run.stdout, run.stdout + run.stderr


def test_another_value_no_candidate_returns_drives_a_repair_round(project: Path) -> None:
    report_file = project.parent / "report.json"
    # Round 2: what the model writes once told the example.
    rounds = [[WRONG, OFF_BY_ONE, WRONG, OFF_BY_ONE], [RIGHT]]
    terminal = Terminal(command(project, rounds, "--ask", "--apply"), project, report_file)
    call = terminal.expect(r"Which is right\?\r?\n  (scale\(.*\))\r?\n(?:.|\n)*?answer> ")[1]
    args = ast.literal_eval(f"({call.removeprefix('scale(')[:-1]},)")
    right = [x * args[1] for x in args[0]]
    terminal.type(f"={right!r}")
    assert terminal.wait() == 0

    (function,) = json.loads(report_file.read_text())["functions"]
    assert function["status"] == "pass" and function["evidence"] == "tests", function
    assert function["question"]["answer"] == repr(right)
    written = (project / "ops.py").read_text()
    assert f"    >>> {call}\n    {right!r}\n" in written and "[x * factor for x in xs]" in written
    assert any("no candidate returned it: repaired" in line for line in function["details"])


def test_ask_never_prompts_when_stdin_is_not_a_terminal(project: Path) -> None:
    run = subprocess.run(
        command(project, [[RIGHT, RIGHT_TOO, WRONG, RIGHT]], "--ask", "--apply"),
        cwd=project,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=300,
    )
    assert "answer>" not in run.stderr
    report = json.loads(run.stdout)
    (function,) = report["functions"]
    question = function["question"]
    assert question["answer"] is None and [o["samples"] for o in question["options"]] == [3, 1]
    assert question["call"].startswith("scale(")
    assert (
        "--ask: stdin is not a terminal, so nothing was asked (the questions are reported)" in report["notes"]
    )
    assert not (project / "tests" / "test_ops.py").exists()  # no answer, nothing kept
    schema = json.loads((resources.files("lsp_verify") / "report-schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(report, schema)


def test_answers_as_doctest_puts_the_answer_in_the_docstring(project: Path) -> None:
    """In process, through run_fix with an asker that picks the most sampled output."""
    import dataclasses

    from lsp_verify.config import Settings
    from lsp_verify.fix import FixOptions, run_fix
    from lsp_verify.model.types import EngineInfo, Generation
    from lsp_verify.pipeline import Pipeline
    from lsp_verify.syntax.target import EditTarget
    from lsp_verify.verify.question import Answer, Question

    class Engine:
        info = EngineInfo("scripted.gguf", "CPU", False, 0, 0, 1, 4096, 8)

        def generate(
            self, prompt: object, params: object, *, on_generation: object = None, cancel: object = None
        ) -> list[Generation]:
            out = [
                Generation(i, body, 5, -0.1, "stop", 0.01) for i, body in enumerate([RIGHT, WRONG, RIGHT_TOO])
            ]
            for generation in out:
                on_generation(generation)  # type: ignore[operator]
            return out

        def close(self) -> None:
            pass

    asked: list[Question] = []

    def asker(question: Question, target: EditTarget) -> Answer:
        asked.append(question)
        return Answer(option=question.options[0])

    report = run_fix(
        FixOptions(specs=("ops.py",), apply=True),
        settings_for=lambda root: dataclasses.replace(Settings(), trusted=True, k=3, answers_as="doctest"),
        cwd=project,
        pipeline_factory=lambda settings: Pipeline(settings, engine_factory=lambda _: Engine()),  # type: ignore[arg-type,return-value]
        asker=asker,
    )
    (function,) = report.functions
    assert function.applied and len(asked) == 1, function
    call, expected = asked[0].call, asked[0].options[0].shown
    written = (project / "ops.py").read_text()
    assert f"    >>> {call}\n    {expected}\n" in written
    assert not (project / "tests" / "test_ops.py").exists()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--doctest-modules", "ops.py"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert "1 passed" in run.stdout, run.stdout
