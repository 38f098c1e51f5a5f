"""Probe inputs drawn by Hypothesis (verify/drawn.py): the same on every run, bounded, literal, shaped by the
documented examples, fresh for every call, and for methods - with the real probe run (fork server, sandbox)
and a kept answer run by real pytest."""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from lsp_verify.cancel import CancelToken
from lsp_verify.config import Settings
from lsp_verify.pipeline import Pipeline
from lsp_verify.syntax.splice import normalise, splice_body
from lsp_verify.syntax.target import EditTarget
from lsp_verify.verify import drawn
from lsp_verify.verify.cascade import Verifier
from lsp_verify.verify.probe import outside_inputs, probe_inputs, probe_plan
from lsp_verify.verify.question import Answer, answer_test, choose_question
from lsp_verify.verify.types import Candidate, CandidateResult

SERVER = Path(__file__).resolve().parents[1] / "server"


def target_of(source: str, name: str, path: Path = Path("/w/mod.py")) -> EditTarget:
    found = [t for t in Pipeline.targets(textwrap.dedent(source), path) if t.name == name]
    assert found, f"no stub {name}"
    return found[0]


def values(source: str) -> tuple[object, ...]:
    result: tuple[object, ...] = ast.literal_eval(f"({source},)")
    return result


MIXED = """
def summarise(weights: list[float], label: str, extra: dict[str, list[int]] | None) -> str:
    ...
"""


def test_drawn_inputs_are_the_same_in_every_process_and_never_touch_the_working_directory(
    tmp_path: Path,
) -> None:
    """Derandomized: two fresh interpreters (another working directory, other modules loaded) draw the same
    inputs, and Hypothesis' caches go to lsp-verify's cache, not to ``./.hypothesis`` in the project."""
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from lsp_verify.pipeline import Pipeline
        from lsp_verify.verify.probe import probe_inputs
        if sys.argv[1] == "more":
            import lsp_verify.cli, lsp_verify.lsp.server  # other modules loaded: same draws
        target = Pipeline.targets({MIXED!r}, Path("/w/mod.py"))[0]
        print(json.dumps(probe_inputs(target)))
        """
    )
    runs = []
    for i, extra in enumerate(("plain", "more")):
        cwd = tmp_path / f"project{i}"
        cwd.mkdir()
        env = {**os.environ, "PYTHONPATH": str(SERVER), "XDG_CACHE_HOME": str(tmp_path / f"cache{i}")}
        done = subprocess.run(
            [sys.executable, "-c", script, extra],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(done.stdout))
        assert not (cwd / ".hypothesis").exists()
        assert list(cwd.iterdir()) == []
    assert runs[0] == runs[1]
    assert len(runs[0]) == 24
    assert tuple(runs[0]) == probe_inputs(target_of(MIXED, "summarise"))


def test_drawn_values_are_bounded_finite_literals_starting_from_the_simplest() -> None:
    inputs = probe_inputs(target_of(MIXED, "summarise"))
    assert inputs[0] == "[], '', {}"  # Hypothesis starts from the simplest value of each type
    for source in inputs:
        weights, label, extra = values(source)
        assert isinstance(weights, list) and len(weights) <= drawn.MAX_SIZE
        assert all(isinstance(w, float) and math.isfinite(w) for w in weights)
        assert isinstance(label, str) and len(label) <= 8 and label.isprintable()
        assert extra is None or (isinstance(extra, dict) and len(extra) <= drawn.MAX_SIZE)
    strategy = drawn.from_annotation(ast.parse("float", mode="eval").body)
    assert strategy is not None
    floats = drawn.draw([strategy], 50)
    assert floats and all(math.isfinite(v) for (v,) in floats)


def test_unannotated_parameters_are_drawn_like_their_documented_values() -> None:
    """No annotation: the type (and the characters) of the prose examples; the hand-written pool this
    replaced offered only the examples and five variations of each."""
    target = target_of(
        '''
        def histogram(test):
            """Letters separated by spaces, counted. Example:
            histogram('a b c') == {'a': 1, 'b': 1, 'c': 1}
            """
            ...
        ''',
        "histogram",
    )
    inputs = probe_inputs(target)
    assert inputs[0] == "'a b c'"
    assert len(inputs) == 24
    drawn_strings = [values(source)[0] for source in inputs[6:]]
    assert all(isinstance(s, str) and set(s) <= set("a bc") for s in drawn_strings)


def test_a_list_of_integers_without_annotation_also_gets_floats_marked_outside_its_documented_type() -> None:
    """ "A list of numbers" shown with integers: floats are drawn (only they show which candidates ignore
    what is not an integer), and marked, so a question is asked about them last."""
    source = '''
        def odd_squares(lst):
            """Sum of the squares of the odd integers in the list.
            odd_squares([1, 3, 2]) == 10
            """
            ...
        '''
    target = target_of(source, "odd_squares")
    inputs = probe_inputs(target)
    outside = outside_inputs(target, inputs)
    floats = [i for i, source_ in enumerate(inputs) if any(isinstance(v, float) for v in values(source_)[0])]
    assert floats and list(outside) == floats
    assert inputs[0] == "[1, 3, 2]" and 0 not in outside
    annotated = target_of(source.replace("(lst)", "(lst: list[int])"), "odd_squares")
    assert outside_inputs(annotated, probe_inputs(annotated)) == ()
    assert not any(isinstance(v, float) for s in probe_inputs(annotated) for v in values(s)[0])


def test_a_parameter_with_neither_annotation_nor_example_is_drawn_from_the_type_its_docstring_states() -> (
    None
):
    """``Given a positive integer n`` (or ``n (int):``, ``:type n: int``): integers from 1 up, where before
    the function got no probe input at all; a docstring that states nothing still gives none, and an
    annotation wins over what the docstring says."""
    source = '''
        def starts_with_one(n):
            """Given a positive integer n, count the n-digit numbers that start with 1."""
            ...
        '''
    inputs = probe_inputs(target_of(source, "starts_with_one"))
    numbers = [values(s)[0] for s in inputs]
    assert len(numbers) >= 10 and all(isinstance(n, int) and n >= 1 for n in numbers)
    google = source.replace("Given a positive integer n, c", "C").replace(
        '."""', '.\n\n    Args:\n        n (str): x\n    """'
    )
    assert all(isinstance(values(s)[0], str) for s in probe_inputs(target_of(google, "starts_with_one")))
    silent = source.replace("Given a positive integer n, c", "C")
    assert probe_inputs(target_of(silent, "starts_with_one")) == ()
    annotated = source.replace("(n)", "(n: bool)")
    assert {values(s)[0] for s in probe_inputs(target_of(annotated, "starts_with_one"))} == {False, True}


def test_a_prose_mention_without_arguments_is_not_a_probe_input() -> None:
    target = target_of(
        '''
        def second(lst):
            """Write a function second() that returns the 2nd smallest element.
            second([1, 2, 3]) == 2
            """
            ...
        ''',
        "second",
    )
    inputs = probe_inputs(target)
    assert inputs[0] == "[1, 2, 3]" and "" not in inputs


# --------------------------------------------------------------------------------------- real probe runs

COUNT = '''\
def count(xs: list[int]) -> int:
    """How many elements ``xs`` has."""
    ...
'''


def run_probe(root: Path, text: str, target: EditTarget, bodies: list[str]) -> list[CandidateResult]:
    with Verifier(root, Settings(trusted=True, test_timeout_s=10.0)) as verifier:
        plan = verifier.prepare(target, text, CancelToken())
        assert plan.probe is not None
        return [
            verifier.verify(
                plan, Candidate(i, body, splice_body(text, target, body), normalise(body)), CancelToken()
            )
            for i, body in enumerate(bodies)
        ]


def project(tmp_path: Path, source: str) -> tuple[Path, Path]:
    root = tmp_path / "proj"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "ops"\nversion = "0"\n')
    path = root / "ops.py"
    path.write_text(source)
    return root, path


def test_a_candidate_that_mutates_its_argument_does_not_change_the_next_ones_input(tmp_path: Path) -> None:
    root, path = project(tmp_path, COUNT)
    target = Pipeline.targets(COUNT, path)[0]
    honest = "    return len(xs)\n"
    vandal = "    n = len(xs)\n    xs.clear()\n    xs.extend([7] * 9)\n    return n\n"
    alone = run_probe(root, COUNT, target, [honest])[0]
    after = run_probe(root, COUNT, target, [vandal, honest, vandal, honest])
    assert all(r.passed for r in after)
    assert alone.probe_outputs and all(r.probe_outputs == alone.probe_outputs for r in after)
    expected = [str(len(values(source)[0])) for source in probe_inputs(target)]  # type: ignore[arg-type]
    assert list(alone.probe_shown) == expected


STACK = '''\
class Stack:
    def __init__(self, items: list[int]) -> None:
        self.items = items

    def top_two(self, default: int) -> list[int]:
        """The two topmost items (the last pushed first), padded with ``default``."""
        ...
'''
TOP_RIGHT = "        return (self.items[::-1] + [default, default])[:2]\n"
TOP_WRONG = "        return (self.items + [default, default])[:2]\n"  # the bottom, not the top


def test_a_method_is_probed_on_drawn_instances_and_its_answer_is_a_test_real_pytest_runs(
    tmp_path: Path,
) -> None:
    root, path = project(tmp_path, STACK)
    target = Pipeline.targets(STACK, path)[0]
    assert target.qualname == "Stack.top_two"
    assert probe_inputs(target) == ()  # without the document, the constructor is unknown
    plan = probe_plan(target, root, "ops", source=STACK)
    assert plan is not None and plan.function == "Stack.top_two"
    assert all(source.startswith("Stack([") for source in plan.inputs)
    results = run_probe(root, STACK, target, [TOP_RIGHT, TOP_WRONG, TOP_RIGHT])
    assert all(r.passed for r in results), [r.first_error for r in results]
    assert results[0].probe_outputs == results[2].probe_outputs != results[1].probe_outputs
    question = choose_question(results, plan, trusted=True)
    assert question is not None and question.call.startswith("Stack.top_two(Stack([")
    right = next(o for o in question.options if o.samples == 2)
    edit = answer_test(root, target, "ops", question, right.shown)
    assert "from ops import Stack\n" in edit.text
    edit.path.write_text(edit.text)
    path.write_text(results[0].candidate.new_text)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(edit.path)],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    path.write_text(results[1].candidate.new_text)
    wrong = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(edit.path)],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert wrong.returncode == 1
    assert Answer(option=right).expected == right.shown
