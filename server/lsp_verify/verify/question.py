"""Questions: when the passing candidates still behave differently, ask the user which output is right.

What the machine cannot know, the user can say in one click (TiCoder: Lahiri et al. 2022, Fakhoury et al.
2024). The behaviour probes (``probe.py``) already called every passing candidate on the same inputs; this
module picks the input whose outputs split the passing *samples* most evenly - the largest expected
information, the entropy of the split - and turns it into "``scale([1, 2], 3)`` -> ``[3, 6]`` (3 samples) or
``[1, 2, 1, 2, 1, 2]`` (2 samples)?". The answer keeps the candidates that agree with it
(:func:`keep_agreeing`), and is kept itself: as a regression test in the function's conventional test module
or as a doctest line (:func:`answer_test`, :func:`with_doctest`).

An option is only what the user can judge and a test can assert: an output whose ``repr`` is short and reads
back as an equal literal, or "raises X". Inputs where some candidate's output is anything else (a timeout, an
object's default ``repr``, a NaN, a long list) are never asked about. Probes run workspace code, so in an
untrusted workspace there are no outputs and no question.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ..syntax import pyast
from ..syntax.target import EditTarget
from .probe import ProbePlan
from .types import CandidateResult

MAX_CALL = 100
"""Longest call a question shows: a longer one is not read at a glance."""

AnswersAs = Literal["test", "doctest", "none"]


class AnswerError(ValueError):
    """The user's answer is not an option, "skip" or a Python literal (the message says why)."""


@dataclasses.dataclass(frozen=True)
class Option:
    """One behaviour on the question's input."""

    shown: str
    """The output's ``repr`` (a Python literal), or ``!`` and an exception type name."""
    samples: int
    """Generated samples (duplicates included) that return this."""
    fingerprint: str
    """The probe fingerprint the candidates with this output share on the question's input."""

    @property
    def raises(self) -> str | None:
        return self.shown[1:] if self.shown.startswith("!") else None

    @property
    def label(self) -> str:
        return f"raises {self.raises}" if self.raises else self.shown

    def to_json(self) -> dict[str, Any]:
        return {"output": self.label, "raises": self.raises, "samples": self.samples}


@dataclasses.dataclass(frozen=True)
class Question:
    function: str
    arguments: str
    """Argument-list source, e.g. ``[1, 2], 3``."""
    input_index: int
    """Which probe input this is (``ProbePlan.inputs``)."""
    options: tuple[Option, ...]
    """Most samples first."""

    @property
    def call(self) -> str:
        return f"{self.function}({self.arguments})"

    def text(self) -> str:
        """``f(1)`` → ``2`` (3 samples) or ``raises ValueError`` (1 sample)?"""
        parts = [f"`{o.label}` ({o.samples} sample{'s' if o.samples != 1 else ''})" for o in self.options]
        return f"`{self.call}` → {' or '.join(parts)}?"

    def to_json(self) -> dict[str, Any]:
        return {"call": self.call, "options": [o.to_json() for o in self.options]}


@dataclasses.dataclass(frozen=True)
class Answer:
    """What the user said: an option, another value (a literal's source), or nothing (skip)."""

    option: Option | None = None
    value: str | None = None

    @property
    def skipped(self) -> bool:
        return self.option is None and self.value is None

    @property
    def expected(self) -> str | None:
        """The output the answer stands for: a literal's source or ``!Exception``."""
        return self.option.shown if self.option is not None else self.value


SKIP = Answer()


def behaviours(passing: Sequence[CandidateResult]) -> int:
    """Distinct behaviours among the probed passing candidates (equal outputs on every probe input)."""
    return len({r.probe_outputs for r in passing if r.passed and r.probe_outputs})


def choose_question(
    passing: Sequence[CandidateResult], probe: ProbePlan | None, *, trusted: bool
) -> Question | None:
    """The input that splits the probed passing candidates' samples most evenly, as a question; None when
    they all behave alike, when no input can be asked about, or when the workspace is not trusted. Inputs
    outside the documented examples' type (``ProbePlan.outside``) are asked about only when no other input
    splits them: the user may not know what a function meant for integers does with 2.5."""
    if not trusted or probe is None:
        return None
    probed = _probed(passing, probe)
    if not probed:
        return None
    if len({r.probe_outputs for r in probed}) < 2:
        return None
    outside = set(probe.outside)
    inside = [i for i in range(len(probe.inputs)) if i not in outside]
    return _most_even(probe, probed, inside) or _most_even(probe, probed, sorted(outside))


def _most_even(
    probe: ProbePlan, probed: Sequence[CandidateResult], indices: Sequence[int]
) -> Question | None:
    best: tuple[tuple[float, int, int, int], Question] | None = None
    for index in indices:
        arguments = probe.inputs[index]
        call = f"{probe.function}({arguments})"
        if not _askable(call, probed, index):
            continue
        options = _options(probed, index)
        if len(options) < 2:
            continue
        key = (-_entropy([o.samples for o in options]), len(options), len(call), index)
        if best is None or key < best[0]:
            best = (key, Question(probe.function, arguments, index, options))
    return best[1] if best is not None else None


def documented_answers(
    passing: Sequence[CandidateResult], probe: ProbePlan | None, *, trusted: bool
) -> tuple[tuple[CandidateResult, ...], tuple[tuple[Question, Answer], ...]]:
    """The passing candidates that return what the docstring's prose examples say they return
    (``ProbePlan.documented``: answers the user gave before being asked), and those examples as answered
    questions. No candidate left: the candidates missed the documented behaviour (a repair round's job)."""
    kept = tuple(r for r in passing if r.passed)
    if not trusted or probe is None or not probe.documented:
        return kept, ()
    answered = []
    for index, expected in probe.documented:
        probed = _probed(kept, probe)
        if not all(_offerable(r.probe_shown[index]) for r in probed):
            continue  # an output we cannot compare (a timeout, a long list): the example says nothing here
        question = Question(probe.function, probe.inputs[index], index, _options(probed, index))
        answer = another_value(expected, question)
        answered.append((question, answer))
        kept = keep_agreeing(kept, question, answer)
        if not kept:
            break
    return kept, tuple(answered)


def _probed(results: Sequence[CandidateResult], probe: ProbePlan) -> list[CandidateResult]:
    return [
        r for r in results if r.passed and len(r.probe_outputs) == len(probe.inputs) == len(r.probe_shown)
    ]


def _askable(call: str, probed: Sequence[CandidateResult], index: int) -> bool:
    return (
        len(call) <= MAX_CALL and "\n" not in call and all(_offerable(r.probe_shown[index]) for r in probed)
    )


def _options(probed: Sequence[CandidateResult], index: int) -> tuple[Option, ...]:
    """The behaviours on input ``index``, most samples first."""
    groups: dict[str, list[CandidateResult]] = {}
    for result in probed:
        groups.setdefault(result.probe_outputs[index], []).append(result)
    options = []
    for fingerprint, members in groups.items():
        members.sort(key=lambda r: -(r.candidate.duplicates + 1))
        shown = members[0].probe_shown[index]
        assert shown is not None  # _askable
        options.append(Option(shown, sum(r.candidate.duplicates + 1 for r in members), fingerprint))
    options.sort(key=lambda o: (-o.samples, o.shown))
    return tuple(options)


def _offerable(shown: str | None) -> bool:
    return shown is not None and shown != "!timeout"


def _entropy(counts: Sequence[int]) -> float:
    """Expected information (bits) of the answer, if the user answers as often as the samples say."""
    total = sum(counts)
    return -sum(c / total * math.log2(c / total) for c in counts if c)


def parse_answer(text: str, question: Question) -> Answer:
    """A terminal answer: an option's number, ``s`` / empty (skip), or ``= <literal>`` (another value).

    Raises AnswerError with the parse error when the value is not a Python literal.
    """
    text = text.strip()
    if text in ("", "s", "skip"):
        return SKIP
    if text.isdigit() and 1 <= int(text) <= len(question.options):
        return Answer(option=question.options[int(text) - 1])
    return another_value(text.removeprefix("=").strip(), question)


def another_value(text: str, question: Question) -> Answer:
    """ "Another value…": ``text`` must be a Python literal; an option with an equal value is that option."""
    try:
        value = pyast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc) or type(exc).__name__
        raise AnswerError(
            f"{text!r} is not a Python literal ({reason}); type a value like [3, 6] or 'abc'"
        ) from exc
    for option in question.options:
        if option.raises is None and _equal(option.shown, value):
            return Answer(option=option)
    return Answer(value=repr(value))


def _equal(shown: str, value: object) -> bool:
    try:
        mine = pyast.literal_eval(shown)
        return bool(mine == value) and type(mine) is type(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def keep_agreeing(
    results: Sequence[CandidateResult], question: Question, answer: Answer
) -> tuple[CandidateResult, ...]:
    """The passing results (in their order) whose output on the question's input is the answer."""
    if answer.skipped:
        return tuple(r for r in results if r.passed)
    i = question.input_index
    kept = []
    for r in results:
        if not r.passed or len(r.probe_outputs) <= i:
            continue
        if answer.option is not None and r.probe_outputs[i] == answer.option.fingerprint:
            kept.append(r)
        elif answer.value is not None and len(r.probe_shown) > i:
            shown = r.probe_shown[i]
            if (
                shown is not None
                and not shown.startswith("!")
                and _equal(shown, pyast.literal_eval(answer.value))
            ):
                kept.append(r)
    return tuple(kept)


# ------------------------------------------------------------------------------------ keeping the answer


@dataclasses.dataclass(frozen=True)
class TestEdit:
    """Append ``text`` to ``path`` (created when missing): the answer as a regression test."""

    __test__ = False  # not a pytest test class, despite the name

    path: Path
    text: str
    """What to append (starts with blank lines when the file exists)."""
    exists: bool


def conventional_test_module(root: Path, path: Path) -> Path:
    """The function's conventional test module: an existing ``test_<stem>.py`` / ``<stem>_test.py`` next to
    it, in ``tests/`` beside it or in the project's ``tests/``; else a new ``test_<stem>.py`` in the
    project's ``tests/`` when there is one, else next to the module."""
    names = (f"test_{path.stem}.py", f"{path.stem}_test.py")
    folders = [path.parent, path.parent / "tests", root / "tests", root / "test"]
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    tests = root / "tests"
    return (tests if tests.is_dir() else path.parent) / names[0]


def answer_test(
    root: Path,
    target: EditTarget,
    module: str,
    question: Question,
    expected: str,
    existing: str | None = None,
) -> TestEdit:
    """A pytest test asserting the answer: ``assert f(args) == expected`` or ``pytest.raises``, to append to
    the conventional test module (``existing``: its text so far, read from disk when None)."""
    path = conventional_test_module(root, target.path)
    exists = path.is_file()
    if existing is None:
        existing = path.read_text(encoding="utf-8") if exists else ""
    name = _free_name(existing, f"test_{question.function.replace('.', '_')}_answer")
    # ``Class.method``: the class is what is imported.
    imports = [f"from {module} import {question.function.split('.')[0]}"] if module else []
    if expected.startswith("!"):
        body = [
            "import pytest",
            "",
            *imports,
            "",
            f"with pytest.raises({expected[1:]}):",
            f"    {question.call}",
        ]
    else:
        body = [*imports, "", f"assert {question.call} == {expected}"]
    lines = [
        f"def {name}() -> None:",
        '    """The output lsp-verify asked about, as the user answered it."""',
        *(f"    {line}" if line else "" for line in body),
    ]
    separator = "" if not existing else ("\n\n" if existing.endswith("\n") else "\n\n\n")
    return TestEdit(path, separator + "\n".join(lines) + "\n", exists)


def answer_tests(
    root: Path, target: EditTarget, module: str, answers: Sequence[tuple[Question, Answer]]
) -> TestEdit | None:
    """Every answer of one request as tests appended to the conventional test module in one edit."""
    edit: TestEdit | None = None
    for question, answer in answers:
        if answer.expected is None:
            continue
        so_far = None if edit is None else _existing(edit) + edit.text
        more = answer_test(root, target, module, question, answer.expected, so_far)
        edit = more if edit is None else dataclasses.replace(edit, text=edit.text + more.text)
    return edit


def _existing(edit: TestEdit) -> str:
    return edit.path.read_text(encoding="utf-8") if edit.exists else ""


def _free_name(source: str, stem: str) -> str:
    taken = set(re.findall(r"^\s*def (\w+)", source, flags=re.MULTILINE))
    n = 1
    while f"{stem}_{n}" in taken:
        n += 1
    return f"{stem}_{n}"


def _unordered(source: str) -> bool:
    """The literal ``source`` holds a dict or a set (whose printed order may differ between equal values)."""
    try:
        value = pyast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False

    def walk(item: Any, depth: int) -> bool:
        if isinstance(item, (dict, set, frozenset)):
            return True
        if depth < 8 and isinstance(item, (list, tuple)):
            return any(walk(part, depth + 1) for part in item)
        return False

    return walk(value, 0)


def with_doctest(text: str, target: EditTarget, question: Question, expected: str) -> str:
    """``text`` with ``>>> call`` / expected output added to the end of ``target``'s docstring (a docstring
    is added when it has none); ``text`` as it is when the docstring holds that example already (a repair
    after an earlier one adds the docstring's stated outputs again)."""
    data = text.encode("utf-8")
    head = data[: target.body_start_byte].decode("utf-8")
    tail = data[target.body_start_byte :].decode("utf-8")
    indent = target.indent
    if expected.startswith("!"):
        example = [
            f">>> {question.call}  # doctest: +IGNORE_EXCEPTION_DETAIL",
            "Traceback (most recent call last):",
            "    ...",
            expected[1:],
        ]
    elif _unordered(expected):
        # A dict or set prints in the order it was built: a right candidate that builds it in another order
        # would fail ``>>> call`` / ``{...}``. Compare values, as the probes and the answer's test do.
        example = [f">>> {question.call} == {expected}", "True"]
    else:
        example = [f">>> {question.call}", expected]
    docstring = target.docstring
    if docstring is None or docstring.lstrip()[:1] not in ("r", "R"):
        # Not a raw string: ``'a\\tb'`` as is would be a tab in the docstring, and doctest would compare the
        # right output's repr with that tab (an argument's backslash would break the example's source).
        example = [line.replace("\\", "\\\\") for line in example]
    lines = "".join(f"{indent}{line}\n" for line in example)
    if docstring is not None and lines in docstring:
        return text
    at = head.rfind(docstring) if docstring else -1
    if docstring is None or at < 0:
        # No docstring: one that holds only the example, as the body's first statement.
        line_start = head.rfind("\n") + 1
        new_doc = f'{indent}"""\n{lines}{indent}"""\n'
        return head[:line_start] + new_doc + head[line_start:] + tail
    quotes = docstring[-3:]
    prose = docstring[:-3].rstrip()
    new_doc = f"{prose}\n\n{lines}{indent}{quotes}"
    return head[:at] + new_doc + head[at + len(docstring) :] + tail
