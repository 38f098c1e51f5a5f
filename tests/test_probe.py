"""Behaviour probes: which inputs a target is called on, how agreement is scored, and the real probe run
(through the pytest fork server and its sandbox) deciding the ranking of hand-written candidates."""

from __future__ import annotations

import dataclasses
import textwrap
import time
from pathlib import Path

import pytest

from lsp_verify.cancel import CancelToken
from lsp_verify.config import Settings
from lsp_verify.pipeline import Pipeline, summarise
from lsp_verify.syntax.splice import normalise, splice_body
from lsp_verify.syntax.target import EditTarget
from lsp_verify.verify.cascade import Verifier
from lsp_verify.verify.probe import agreement, probe_inputs, probe_plan
from lsp_verify.verify.rank import rank
from lsp_verify.verify.types import Candidate, CandidateResult


def stub(source: str, path: Path = Path("/w/mod.py")) -> EditTarget:
    targets = Pipeline.targets(textwrap.dedent(source), path)
    assert targets, "no stub in the source"
    return targets[0]


def arguments(source: str) -> tuple[tuple[object, ...], dict[str, object]]:
    """Evaluate an argument-list source as the probe does (a call), returning what the call receives."""
    result: tuple[tuple[object, ...], dict[str, object]] = eval(f"(lambda *a, **k: (a, k))({source})")
    return result


# ------------------------------------------------------------------------------------------------- inputs


def test_doctest_calls_come_first_then_their_variations_then_annotated_values() -> None:
    target = stub(
        '''
        def clip(values: list[int], limit: int) -> list[int]:
            """Values above ``limit`` become ``limit``.

            >>> clip([1, 5, 3], 4)
            [1, 4, 3]
            """
            ...
        '''
    )
    inputs = probe_inputs(target)
    assert inputs[0] == "[1, 5, 3], 4"
    assert "[], 4" in inputs and "[1, 5, 3], 5" in inputs  # variations of the documented call
    assert len(inputs) == 24 and len(set(inputs)) == 24
    for source in inputs:
        args, kwargs = arguments(source)
        assert not kwargs and len(args) == 2
        assert isinstance(args[0], list) and all(isinstance(v, int) for v in args[0])
        assert isinstance(args[1], int)
    assert probe_inputs(target) == inputs, "inputs must be the same for every candidate and request"


def test_prose_examples_give_inputs_for_unannotated_parameters() -> None:
    target = stub(
        '''
        def total(lst, start):
            """Sum of lst plus start. For example:
            total([1, 2], 3) == 6
            total([], 1) => 1
            """
            pass
        '''
    )
    inputs = probe_inputs(target)
    assert inputs[:2] == ("[1, 2], 3", "[], 1")
    assert len(inputs) > 10
    for source in inputs:
        args, _ = arguments(source)
        assert isinstance(args[0], list) and isinstance(args[1], int)


@pytest.mark.parametrize(
    "annotation, check",
    [
        ("dict[str, int]", lambda v: isinstance(v, dict) and all(isinstance(x, int) for x in v.values())),
        ("Optional[str]", lambda v: v is None or isinstance(v, str)),
        ("tuple[int, ...]", lambda v: isinstance(v, tuple)),
        ("'list[float]'", lambda v: isinstance(v, list) and all(isinstance(x, float) for x in v)),
        ("set[str] | None", lambda v: v is None or isinstance(v, set)),
    ],
)
def test_values_follow_the_annotation(annotation: str, check: object) -> None:
    target = stub(f"def f(x: {annotation}) -> int:\n    ...\n")
    inputs = probe_inputs(target)
    assert inputs
    for source in inputs:
        args, _ = arguments(source)
        assert callable(check) and check(args[0]), (annotation, source)


@pytest.mark.parametrize(
    "source",
    [
        "class C:\n    def m(self, x: int) -> int:\n        ...\n",  # needs an instance
        "async def f(x: int) -> int:\n    ...\n",  # needs an event loop
        "def f(x) -> int:\n    ...\n",  # nothing says what x is
        "def f(x: Widget) -> int:\n    ...\n",  # a type we cannot build
        "def f(*xs: int) -> int:\n    ...\n",  # unknown arity
    ],
)
def test_targets_that_cannot_be_probed_get_no_inputs(source: str) -> None:
    assert probe_inputs(stub(source)) == ()


def test_probe_plan_imports_from_the_package_root(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "__init__.py").write_text("")
    path = tmp_path / "src" / "pkg" / "ops.py"
    target = stub("def neg(x: int) -> int:\n    ...\n", path)
    plan = probe_plan(target, tmp_path, "pkg.ops")
    assert plan is not None
    assert (plan.module, plan.function, plan.import_root) == ("pkg.ops", "neg", "src")


# ---------------------------------------------------------------------------------------------- agreement


def test_agreement_is_weighted_and_partial() -> None:
    outputs = [("a", "b"), ("a", "b"), ("a", "c"), ()]
    scores = agreement(outputs, [1, 2, 1, 5])
    assert scores == [1 + 2 + 0.5, 2 + 1 + 0.5, 1 + 0.5 * 1 + 0.5 * 2, 5]


# --------------------------------------------------------------------------------------- real probe runs

MIDDLE = '''\
def middle(xs: list[int]) -> int:
    """The middle element of ``xs`` in sorted order.

    >>> middle([3, 1, 2])
    2
    """
    raise NotImplementedError
'''

RIGHT = [
    "    return sorted(xs)[len(xs) // 2]\n",
    "    ordered = sorted(xs)\n    return ordered[len(ordered) // 2]\n",
    "    return sorted(xs)[len(xs) >> 1]\n",
]
WRONG = "    return sorted(xs)[1]\n"  # passes the one doctest, wrong for every other length


@pytest.fixture
def middle_project(tmp_path: Path) -> tuple[Path, str, EditTarget]:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "mid"\nversion = "0"\n')
    path = root / "mid.py"
    path.write_text(MIDDLE)
    target = Pipeline.targets(MIDDLE, path)[0]
    return root, MIDDLE, target


def make(index: int, text: str, target: EditTarget, body: str, duplicates: int = 0) -> Candidate:
    return Candidate(
        index=index,
        body=body,
        new_text=splice_body(text, target, body),
        key=normalise(body),
        duplicates=duplicates,
        mean_logprob=-0.1 if body == WRONG else -0.5,  # the model likes the wrong one best
    )


def verify_all(
    verifier: Verifier, text: str, target: EditTarget, bodies: list[tuple[str, int]]
) -> list[CandidateResult]:
    plan = verifier.prepare(target, text, CancelToken())
    assert plan.probe is not None and len(plan.probe.inputs) == 24
    candidates = [make(i, text, target, body, dup) for i, (body, dup) in enumerate(bodies)]
    return [verifier.verify(plan, candidate, CancelToken()) for candidate in candidates]


def test_behaviour_outvotes_identical_code(middle_project: tuple[Path, str, EditTarget]) -> None:
    """Two identical wrong samples against three different right bodies (HumanEval/0's failure mode)."""
    root, text, target = middle_project
    with Verifier(root, Settings(trusted=True, test_timeout_s=10.0)) as verifier:
        results = verify_all(verifier, text, target, [(WRONG, 1), *((body, 0) for body in RIGHT)])
    assert all(r.passed for r in results), [r.first_error for r in results]
    outputs = [r.probe_outputs for r in results]
    assert all(len(o) == 24 for o in outputs)
    assert outputs[1] == outputs[2] == outputs[3] != outputs[0]
    assert rank(results)[0].candidate.body in RIGHT
    by_code = rank([dataclasses.replace(r, probe_outputs=()) for r in results])
    assert by_code[0].candidate.body == WRONG  # what identical-code voting picked
    message = summarise(target, rank(results), 5, ())
    assert "agreement: 3 of 5 passing samples behave like the best on 24 probe inputs" in message


def test_a_probe_call_that_hangs_is_cut_short(middle_project: tuple[Path, str, EditTarget]) -> None:
    root, text, target = middle_project
    hangs_on_empty = "    while not xs:\n        pass\n    return sorted(xs)[len(xs) // 2]\n"
    with Verifier(root, Settings(trusted=True, test_timeout_s=10.0)) as verifier:
        (result,) = verify_all(verifier, text, target, [(hangs_on_empty, 0)])
    assert result.passed
    assert "!timeout" in result.probe_outputs
    assert result.seconds < 8


def test_a_candidate_slow_on_every_input_is_probed_within_the_deadline(
    middle_project: tuple[Path, str, EditTarget],
) -> None:
    root, text, target = middle_project
    slow = "    while xs != [3, 1, 2]:\n        pass\n    return 2\n"  # passes the doctest, hangs elsewhere
    stages: list[str] = []
    with Verifier(root, Settings(trusted=True, test_timeout_s=30.0)) as verifier:
        plan = verifier.prepare(target, text, CancelToken())
        started = time.monotonic()
        result = verifier.verify(plan, make(0, text, target, slow), CancelToken(), stages.append)
        elapsed = time.monotonic() - started
    assert result.passed and stages[-1] == "probe"
    assert len(result.probe_outputs) == 24
    assert result.probe_outputs[1:] == ("!timeout",) * 23
    assert elapsed < 15  # the probe stops at 5 s whatever test_timeout_s allows


def test_a_probe_that_dies_leaves_the_verdict_alone(middle_project: tuple[Path, str, EditTarget]) -> None:
    root, text, target = middle_project
    exits = "    if len(xs) != 3:\n        import os\n        os._exit(3)\n    return sorted(xs)[1]\n"
    with Verifier(root, Settings(trusted=True, test_timeout_s=10.0)) as verifier:
        results = verify_all(verifier, text, target, [(exits, 0), (RIGHT[0], 0)])
    assert [r.passed for r in results] == [True, True]
    assert results[0].probe_outputs == () and len(results[1].probe_outputs) == 24


def test_untrusted_workspaces_are_not_probed(middle_project: tuple[Path, str, EditTarget]) -> None:
    root, text, target = middle_project
    with Verifier(root, Settings(trusted=False)) as verifier:
        plan = verifier.prepare(target, text, CancelToken())
    assert plan.probe is None


def test_probes_can_be_turned_off(middle_project: tuple[Path, str, EditTarget]) -> None:
    root, text, target = middle_project
    with Verifier(root, Settings(trusted=True, probe_inputs=0)) as verifier:
        plan = verifier.prepare(target, text, CancelToken())
    assert plan.probe is None
