"""Questions (verify/question.py): which input splits the passing candidates, what may be offered as an
answer, how an answer filters them and how it is kept - with the real probe run (fork server, sandbox) and
the kept test run by real pytest."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_verify.ask import ask_and_keep
from lsp_verify.cancel import CancelToken
from lsp_verify.config import Settings
from lsp_verify.pipeline import FixReport, FixRequest, Pipeline
from lsp_verify.syntax.splice import normalise, splice_body
from lsp_verify.syntax.target import EditTarget
from lsp_verify.verify.cascade import Verifier
from lsp_verify.verify.probe import ProbePlan, documented_outputs
from lsp_verify.verify.question import (
    SKIP,
    Answer,
    AnswerError,
    Question,
    answer_test,
    choose_question,
    conventional_test_module,
    documented_answers,
    keep_agreeing,
    parse_answer,
    with_doctest,
)
from lsp_verify.verify.rank import rank
from lsp_verify.verify.types import Candidate, CandidateResult, Evidence

SCALE = '''\
def scale(xs: list[int], factor: int) -> list[int]:
    """Each element of ``xs`` times ``factor``."""
    ...
'''
RIGHT = "    return [x * factor for x in xs]\n"
RIGHT_TOO = "    out = []\n    for x in xs:\n        out.append(x * factor)\n    return out\n"
WRONG = "    return xs * factor\n"  # repeats the list: the classic misreading


def project(tmp_path: Path, source: str = SCALE, name: str = "ops.py") -> tuple[Path, Path, EditTarget]:
    root = tmp_path / "proj"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "ops"\nversion = "0"\n')
    path = root / name
    path.write_text(source)
    return root, path, Pipeline.targets(source, path)[0]


def verified(
    root: Path, text: str, target: EditTarget, bodies: list[tuple[str, int]], *, trusted: bool = True
) -> tuple[list[CandidateResult], ProbePlan | None]:
    with Verifier(root, Settings(trusted=trusted, test_timeout_s=10.0)) as verifier:
        plan = verifier.prepare(target, text, CancelToken())
        results = []
        for i, (body, duplicates) in enumerate(bodies):
            candidate = Candidate(
                i, body, splice_body(text, target, body), normalise(body), duplicates=duplicates
            )
            results.append(verifier.verify(plan, candidate, CancelToken()))
    return results, plan.probe


def doctests_with(root: Path, path: Path, text: str, body: str) -> subprocess.CompletedProcess[str]:
    """Real pytest running the doctests of ``text`` with the function's body replaced by ``body``."""
    path.write_text(splice_body(text, Pipeline.targets(text, path)[0], body))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--doctest-modules", path.name],
        cwd=root,
        capture_output=True,
        text=True,
    )


def test_the_question_splits_the_real_probe_outputs_and_offers_only_short_literals(tmp_path: Path) -> None:
    root, _, target = project(tmp_path)
    results, probe = verified(root, SCALE, target, [(RIGHT, 1), (RIGHT_TOO, 0), (WRONG, 1)])
    assert all(r.passed and r.evidence is Evidence.TYPES_ONLY for r in results)
    question = choose_question(results, probe, trusted=True)
    assert question is not None and probe is not None
    assert question.arguments == probe.inputs[question.input_index]
    assert [o.samples for o in question.options] == [3, 2]  # 2 + 1 right samples, 2 wrong ones
    args = ast.literal_eval(f"({question.arguments},)")
    right, wrong = ([x * args[1] for x in args[0]], args[0] * args[1])
    assert [ast.literal_eval(o.shown) for o in question.options] == [right, wrong]
    assert all(len(o.shown) <= 80 for o in question.options)
    assert question.text() == (
        f"`scale({question.arguments})` → `{right!r}` (3 samples) or `{wrong!r}` (2 samples)?"
    )
    # [1, 2] * 100 never reaches the user: on such an input the wrong output is not offered at all.
    long_inputs = [
        i for i, s in enumerate(results[2].probe_shown) if s is None and results[0].probe_shown[i] is not None
    ]
    assert long_inputs and question.input_index not in long_inputs


def test_outputs_without_a_literal_repr_are_never_asked_about(tmp_path: Path) -> None:
    source = 'def box(n: int) -> object:\n    """A box for ``n``."""\n    ...\n'
    root, _, target = project(tmp_path, source, "boxes.py")
    bodies = [("    return object()\n", 0), ("    return [n]\n", 0), ("    return float('nan')\n", 0)]
    results, probe = verified(root, source, target, bodies)
    assert len({r.probe_outputs for r in results}) == 3
    assert all(s is None for s in results[0].probe_shown + results[2].probe_shown)
    assert choose_question(results, probe, trusted=True) is None


def test_no_question_in_an_untrusted_workspace(tmp_path: Path) -> None:
    root, _, target = project(tmp_path)
    results, probe = verified(root, SCALE, target, [(RIGHT, 0), (WRONG, 0)], trusted=False)
    assert probe is None and all(r.passed and not r.probe_outputs for r in results)
    assert choose_question(results, probe, trusted=False) is None


def result(fingerprints: tuple[str, ...], shown: tuple[str | None, ...], votes: int = 1) -> CandidateResult:
    body = f"    return {fingerprints!r}\n"
    candidate = Candidate(0, body, body, normalise(body), duplicates=votes - 1)
    return CandidateResult(
        candidate, True, Evidence.TYPES_ONLY, (), probe_outputs=fingerprints, probe_shown=shown
    )


PLAN = ProbePlan("m", "f", ("0", "1", "2"))


def test_the_most_even_split_is_asked() -> None:
    # Input 0: 4 vs 1 samples; input 1: 3 vs 2 (more information); input 2: a timeout (never asked).
    results = [
        result(("a", "x", "t"), ("1", "10", "!timeout"), votes=3),
        result(("a", "y", "u"), ("1", "11", "5")),
        result(("b", "y", "u"), ("2", "11", "5")),
    ]
    question = choose_question(results, PLAN, trusted=True)
    assert question is not None and question.call == "f(1)"
    assert [(o.label, o.samples) for o in question.options] == [("10", 3), ("11", 2)]
    assert choose_question(results[1:2], PLAN, trusted=True) is None  # one behaviour: nothing to ask
    assert choose_question(results, PLAN, trusted=False) is None


def test_an_input_outside_the_documented_type_is_asked_only_when_nothing_else_splits() -> None:
    # Input 1 (a float where the examples were integers) splits 3 vs 2, input 0 only 4 vs 1: input 0 first.
    plan = ProbePlan("m", "f", ("[1, 2]", "[1.5]"), outside=(1,))
    results = [
        result(("a", "x"), ("1", "2.25"), votes=3),
        result(("a", "y"), ("1", "0")),
        result(("b", "y"), ("5", "0")),
    ]
    question = choose_question(results, plan, trusted=True)
    assert question is not None and question.call == "f([1, 2])"
    # Once the candidates agree on every documented-type input, the outside one is asked.
    question = choose_question(results[:2], plan, trusted=True)
    assert question is not None and question.call == "f([1.5])"


STATED = '''\
def scale(xs: list[int], factor: int) -> list[int]:
    """Each element of ``xs`` times ``factor``: scale([1, 2], 3) == [3, 6] (no doctest: prose).

    For example scale([], 5) returns []
    """
    ...
'''


def test_outputs_stated_in_prose_are_read_when_they_are_whole_literals() -> None:
    docstring = '''"""f(1) == 2, f(2) => 'b' and f(3) returns [1, 2].
    f(4) == 1 + 3 = 4
    f(5) returns the sum
    >>> f(6) == 6
    True
    """'''
    assert documented_outputs(docstring, "f") == {"1": "2", "2": "'b'", "3": "[1, 2]"}


def test_prose_examples_whose_arguments_are_not_literals_state_nothing() -> None:
    """HumanEval/80 writes ``is_happy(a) => False`` for the string 'a': as an answer that call raised
    NameError in every candidate, dropped them all and sent a repair round a doctest nothing can pass."""
    docstring = '''"""is_happy(a) => False, is_happy('aa') => False, is_happy(x=[1]) => True
    is_happy(len('abc')) => True
    """'''
    assert documented_outputs(docstring, "is_happy") == {"'aa'": "False", "x=[1]": "True"}


def test_the_docstrings_stated_outputs_answer_before_the_user_is_asked(tmp_path: Path) -> None:
    """Real probe runs: the example in prose drops the candidate that repeats the list, so nothing is left
    to ask; when every candidate contradicts it, none is kept (the flow repairs instead of asking)."""
    root, _, target = project(tmp_path, STATED)
    results, probe = verified(root, STATED, target, [(RIGHT, 0), (WRONG, 2), (RIGHT_TOO, 0)])
    assert all(r.passed for r in results)
    assert probe is not None and probe.documented == ((0, "[3, 6]"), (1, "[]"))
    assert choose_question(results, probe, trusted=True) is not None  # the samples disagree
    kept, stated = documented_answers(results, probe, trusted=True)
    assert [r.candidate.body for r in kept] == [RIGHT, RIGHT_TOO]
    assert [q.call for q, _ in stated] == ["scale([1, 2], 3)", "scale([], 5)"]
    assert choose_question(kept, probe, trusted=True) is None
    none_kept, _ = documented_answers(results[1:2], probe, trusted=True)
    assert none_kept == ()
    assert documented_answers(results, probe, trusted=False) == (tuple(results), ())


def test_the_question_flow_applies_the_stated_outputs_before_asking_and_repairs_when_none_agrees(
    tmp_path: Path,
) -> None:
    """``ask_and_keep`` (the editor's and ``fix --ask``'s loop) with real probe outputs: the candidate the
    docstring contradicts is dropped without a question; when it contradicts all of them, the example
    becomes a doctest and the request runs again."""
    root, path, target = project(tmp_path, STATED)
    results, probe = verified(root, STATED, target, [(WRONG, 2), (RIGHT, 0), (RIGHT_TOO, 0)])
    ranked = tuple(rank(results))
    assert ranked[0].candidate.body == WRONG  # three samples agree on the wrong reading
    fix = FixReport(target, ranked, 5, 1.0, 1.0, "", probe=probe)
    request = FixRequest(path, STATED, root)
    settings = Settings(trusted=True)
    asked: list[Question] = []
    reruns: list[FixRequest] = []

    def asker(question: Question, _: EditTarget) -> Answer:
        asked.append(question)
        return SKIP

    def rerun(repaired: FixRequest) -> FixReport:
        reruns.append(repaired)
        return fix

    kept = ask_and_keep(settings, request, fix, asker, rerun)
    assert not asked and not reruns and not kept.repaired
    assert kept.fix.best is not None and kept.fix.best.candidate.body in (RIGHT, RIGHT_TOO)

    only_wrong = FixReport(target, ranked[:1], 3, 1.0, 1.0, "", probe=probe)
    repaired = ask_and_keep(settings, request, only_wrong, asker, rerun)
    assert not asked and repaired.repaired and len(reruns) == 1
    # Every stated output becomes a doctest at once, not one repair round at a time.
    assert "    >>> scale([1, 2], 3)\n    [3, 6]\n" in reruns[0].text
    assert "    >>> scale([], 5)\n    []\n" in reruns[0].text
    assert path.read_text() == STATED  # nothing written: the repair runs on the request's text


def test_answers_parse_and_filter() -> None:
    results = [
        result(("a",), ("[3, 6]",), votes=3),
        result(("b",), ("[1, 2, 1, 2, 1, 2]",), votes=2),
        result(("c",), ("!ValueError",)),
    ]
    question = choose_question(results, ProbePlan("m", "scale", ("[1, 2], 3",)), trusted=True)
    assert question is not None
    assert [o.label for o in question.options] == ["[3, 6]", "[1, 2, 1, 2, 1, 2]", "raises ValueError"]
    assert parse_answer("", question) is SKIP and parse_answer("s", question).skipped
    assert keep_agreeing(results, question, parse_answer("1", question)) == (results[0],)
    assert keep_agreeing(results, question, parse_answer("3", question)) == (results[2],)
    # A typed value equal to an option is that option; another one matches no candidate.
    assert parse_answer("= [3,6]", question).option == question.options[0]
    other = parse_answer("[6, 3]", question)
    assert other == Answer(value="[6, 3]") and keep_agreeing(results, question, other) == ()
    with pytest.raises(AnswerError, match=r"'\[3, 6' is not a Python literal .*; type a value like"):
        parse_answer("[3, 6", question)


def test_the_answer_becomes_a_test_in_the_conventional_module_that_real_pytest_runs(tmp_path: Path) -> None:
    root, path, target = project(tmp_path)
    assert conventional_test_module(root, path) == root / "tests" / "test_ops.py"
    question = Question("scale", "[1, 2], 3", 0, ())
    edit = answer_test(root, target, "ops", question, "[3, 6]")
    assert not edit.exists and edit.path == root / "tests" / "test_ops.py"
    edit.path.write_text(edit.text)
    again = answer_test(root, target, "ops", question, "!ValueError")  # appended under a new name
    assert again.exists and again.text.startswith("\n\ndef test_scale_answer_2()")
    edit.path.write_text(edit.text + again.text)

    def pytest_run(body: str) -> subprocess.CompletedProcess[str]:
        path.write_text(splice_body(SCALE, target, body))
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_ops.py"],
            cwd=root,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(root), "PATH": ""},
        )

    assert "FAILED tests/test_ops.py::test_scale_answer_2" in pytest_run(RIGHT).stdout
    raises = pytest_run("    raise ValueError\n").stdout
    assert "FAILED tests/test_ops.py::test_scale_answer_1" in raises and "1 failed, 1 passed" in raises
    assert "2 failed" in pytest_run(WRONG).stdout


def test_the_answer_becomes_a_doctest_line(tmp_path: Path) -> None:
    root, path, target = project(tmp_path)
    question = Question("scale", "[1, 2], 3", 0, ())
    text = with_doctest(SCALE, target, question, "[3, 6]")
    assert (
        '    """Each element of ``xs`` times ``factor``.\n\n    >>> scale([1, 2], 3)\n    [3, 6]\n    """\n'
        in text
    )
    for body, outcome in ((RIGHT, "1 passed"), (WRONG, "1 failed")):
        run = doctests_with(root, path, text, body)
        assert outcome in run.stdout, run.stdout
    bare = "def scale(xs: list[int], factor: int) -> list[int]:\n    ...\n"
    bare_target = Pipeline.targets(bare, path)[0]
    raised = with_doctest(bare, bare_target, question, "!ValueError")
    assert raised.startswith(
        'def scale(xs: list[int], factor: int) -> list[int]:\n    """\n    >>> scale([1, 2], 3)'
    )
    assert raised.endswith('    ValueError\n    """\n    ...\n')


@pytest.mark.parametrize("prefix", ["", "r"])
def test_an_answer_with_backslashes_becomes_a_doctest_that_the_right_body_passes(
    tmp_path: Path, prefix: str
) -> None:
    """``'a\\tb'`` written as is into a plain docstring would be a tab there, and doctest would compare the
    right output's ``repr`` with a tab: the repair round's doctest would fail every right candidate."""
    source = f'def swap(text: str) -> str:\n    {prefix}"""Newlines to tabs."""\n    ...\n'
    root, path, target = project(tmp_path, source)
    question = Question("swap", r"'a\nb'", 0, ())
    text = with_doctest(source, target, question, r"'a\tb'")
    function = ast.parse(text).body[0]
    assert isinstance(function, ast.FunctionDef)
    docstring = ast.get_docstring(function)
    assert docstring is not None and r">>> swap('a\nb')" + "\n" + r"'a\tb'" in docstring
    for body, outcome in (('    return text.replace("\\n", "\\t")\n', "1 passed"), (RIGHT, "1 failed")):
        run = doctests_with(root, path, text, body)
        assert outcome in run.stdout, run.stdout


def test_the_settings_are_validated() -> None:
    settings = Settings().updated({"questions": -1, "answersAs": "yaml"}, "test")
    assert (settings.questions, settings.answers_as) == (2, "test")
    assert settings.problems == [
        "test: invalid value -1 for 'questions': expected 0 (never ask) or a number of questions; using 2",
        "test: invalid value 'yaml' for 'answersAs': expected one of test, doctest, none; using 'test'",
    ]
    assert Settings().updated({"answers_as": "doctest", "questions": 0}, "test").answers_as == "doctest"


def test_examples_written_in_prose_become_probe_inputs() -> None:
    """HumanEval writes half its examples as prose; without them an unannotated function has no inputs."""
    from lsp_verify.verify.probe import probe_inputs

    one = '''\
def pluck(arr):
    """Pluck a node.

    Example 1:
        Input: [4,2,3]
        Output: [2, 1]
    For arr = [5, 0, 3] the output should be [0, 1].
    """
    ...
'''
    two = '''\
def max_fill(grid, capacity):
    """Example:
        Input:
            grid : [[0,0,1,0], [1,1,1,1]]
            capacity : 1
        Output: 6
    """
    ...
'''
    assert Pipeline.targets(one, Path("/w/m.py"))[0].docstring
    inputs = probe_inputs(Pipeline.targets(one, Path("/w/m.py"))[0])
    assert inputs[:2] == ("[4, 2, 3]", "[5, 0, 3]") and "[]" in inputs  # then variations of them
    assert probe_inputs(Pipeline.targets(two, Path("/w/m.py"))[0])[0] == "[[0, 0, 1, 0], [1, 1, 1, 1]], 1"


def test_after_a_repair_the_questions_left_are_asked_about_the_repaired_candidates(tmp_path: Path) -> None:
    """An answer no candidate returns becomes a doctest and the request runs again; its new candidates pass
    that doctest but may still disagree, so the request's second question is asked about them. With one
    question per request, the repaired run is the result as it comes."""
    root, path, target = project(tmp_path)
    plan = ProbePlan("ops", "scale", ("[1, 2], 3", "[], 5"))
    first = FixReport(
        target,
        (result(("a", "e"), ("[1, 2, 1, 2, 1, 2]", "[]"), votes=3), result(("b", "e"), ("[3]", "[]"))),
        4,
        1.0,
        1.0,
        "",
        probe=plan,
    )
    repaired_best, repaired_right = (
        result(("c", "e"), ("[3, 6]", "[]"), votes=2),
        result(("c", "f"), ("[3, 6]", "None")),
    )
    second = FixReport(target, (repaired_best, repaired_right), 4, 1.0, 1.0, "", probe=plan)
    asked: list[Question] = []
    reruns: list[FixRequest] = []

    def asker(question: Question, _: EditTarget) -> Answer:
        asked.append(question)
        if len(asked) == 1:
            return Answer(value="[3, 6]")  # another value: none of the first run's candidates returns it
        return next(Answer(option=o) for o in question.options if o.label == "None")

    def rerun(request: FixRequest) -> FixReport:
        reruns.append(request)
        return second

    kept = ask_and_keep(Settings(trusted=True), FixRequest(path, SCALE, root), first, asker, rerun)
    assert [q.call for q in asked] == ["scale([1, 2], 3)", "scale([], 5)"]
    assert len(reruns) == 1 and "    >>> scale([1, 2], 3)\n    [3, 6]\n" in reruns[0].text
    assert kept.repaired and len(kept.answers) == 2
    assert kept.fix.best is repaired_right  # the repaired candidate the second answer kept, first
    assert kept.text == reruns[0].text  # the answer's doctest stays in the edit

    asked.clear()
    reruns.clear()
    once = ask_and_keep(
        Settings(trusted=True, questions=1), FixRequest(path, SCALE, root), first, asker, rerun
    )
    assert len(asked) == 1 and len(reruns) == 1
    assert once.repaired and once.fix is second and len(once.answers) == 1


def test_after_a_repair_the_docstrings_stated_output_started_both_questions_are_left(tmp_path: Path) -> None:
    """The docstring states ``scale([1, 2], 3) == [3, 6]`` and no candidate returns it: that becomes the
    doctest of a repair round without asking anything, and the repaired candidates get the request's
    questions."""
    root, path, target = project(tmp_path, STATED)
    plan = ProbePlan("ops", "scale", ("[1, 2], 3", "[], 5"), documented=((0, "[3, 6]"),))
    wrong = result(("a", "e"), ("[1, 2, 1, 2, 1, 2]", "[]"), votes=3)
    first = FixReport(target, (wrong,), 4, 1.0, 1.0, "", probe=plan)
    repaired_best = result(("c", "e"), ("[3, 6]", "[]"), votes=2)
    repaired_right = result(("c", "f"), ("[3, 6]", "None"))
    second = FixReport(target, (repaired_best, repaired_right), 4, 1.0, 1.0, "", probe=plan)
    asked: list[Question] = []

    def asker(question: Question, _: EditTarget) -> Answer:
        asked.append(question)
        return next(Answer(option=o) for o in question.options if o.label == "None")

    kept = ask_and_keep(
        Settings(trusted=True), FixRequest(path, STATED, root), first, asker, lambda _: second
    )
    assert [q.call for q in asked] == ["scale([], 5)"]
    assert kept.repaired and kept.fix.best is repaired_right
    assert "    >>> scale([1, 2], 3)\n    [3, 6]\n" in kept.text


def test_a_dict_answer_becomes_a_doctest_that_compares_values_not_printed_order(tmp_path: Path) -> None:
    """``{'b': 1, 'a': 2}`` is the same answer as ``{'a': 2, 'b': 1}``; printed, they differ, so the doctest
    compares with ``==`` and a right body that builds the dict in another order passes it."""
    source = 'def count(text: str) -> dict[str, int]:\n    """Letters counted."""\n    ...\n'
    root, path, target = project(tmp_path, source)
    text = with_doctest(source, target, Question("count", "'bab'", 0, ()), "{'a': 1, 'b': 2}")
    assert "    >>> count('bab') == {'a': 1, 'b': 2}\n    True\n" in text
    right_other_order = "    return {c: text.count(c) for c in text}\n"  # {'b': 2, 'a': 1}
    for body, outcome in ((right_other_order, "1 passed"), ("    return {}\n", "1 failed")):
        run = doctests_with(root, path, text, body)
        assert outcome in run.stdout, run.stdout
