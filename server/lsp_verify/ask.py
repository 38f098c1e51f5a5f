"""The question loop after a run: ask which output is right, keep the candidates that agree, keep the answer.

``lsp-verify fix --ask`` (a terminal) and the editor (``window/showMessageRequest``) run the same loop over
an :data:`Asker`; what to ask and how an answer filters are :mod:`lsp_verify.verify.question`'s. First the
answers the docstring's prose examples already give (``f(2) == 4``), then at most ``settings.questions``
questions, none once one behaviour is left. "Another value" that no candidate returns is a specification
the candidates missed: it is added to the docstring as a doctest, a failing nearby test, and the request
runs again (generation, verification and, when nothing passes, the usual repair round); the questions left
are asked about the repaired run's candidates, which pass that doctest but may disagree elsewhere. The
answers that filtered are kept as ``settings.answers_as`` says: a test appended to the conventional test
module (:class:`~lsp_verify.verify.question.TestEdit`, written only when the edit is applied) or doctest
lines in the kept candidate's docstring.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from .config import Settings
from .pipeline import FixReport, FixRequest
from .syntax.target import EditTarget
from .syntax.targets import target_at
from .verify.question import (
    Answer,
    Question,
    TestEdit,
    answer_tests,
    choose_question,
    documented_answers,
    keep_agreeing,
    with_doctest,
)
from .verify.types import CandidateResult

Asker = Callable[[Question, EditTarget], Answer]
"""Asks the user one question about a function; returns ``SKIP`` when the user does not answer."""


@dataclasses.dataclass(frozen=True)
class Asked:
    fix: FixReport
    """The run with the answers applied: the kept candidates first (doctest lines added to their code when
    ``answers_as`` is ``doctest``), then the rest; the repair run when an answer matched no candidate."""
    text: str
    """The document text ``fix`` was computed for (with the answer's doctest after a repair)."""
    question: dict[str, Any] | None
    """The first question and the answer to it, for reports (None: nothing to ask)."""
    answers: tuple[tuple[Question, Answer], ...] = ()
    tests: TestEdit | None = None
    """Tests to append with the edit (``answers_as = "test"``)."""
    repaired: bool = False


def first_question(fix: FixReport, settings: Settings) -> Question | None:
    """The question this run raises (None when ``questions`` is 0, nothing disagrees or the workspace is not
    trusted: probes, hence questions, run workspace code). It is asked about the candidates that return
    what the docstring's prose examples state, when those say anything."""
    if settings.questions <= 0:
        return None
    kept, _ = documented_answers(fix.passing, fix.probe, trusted=settings.trusted)
    if not kept:
        return None  # the docstring's examples contradict every candidate: a repair round, not a question
    return choose_question(kept, fix.probe, trusted=settings.trusted)


Rerun = Callable[[FixRequest], FixReport]
"""Runs the pipeline again (same cancel token and progress) for a repaired request."""


def ask_and_keep(
    settings: Settings, request: FixRequest, fix: FixReport, asker: Asker | None, rerun: Rerun
) -> Asked:
    """Ask up to ``settings.questions`` questions about ``fix`` and apply the answers (see the module
    docstring). Without an asker only the question is reported.

    The answers the docstring's prose examples already give (``f(2) == 4``) come first: the candidates that
    return something else are dropped before the user is asked anything; when that drops all of them, the
    example becomes a doctest for a repair round, as "another value" does.
    """
    return _ask(settings, request, fix, asker, rerun, repairs_left=settings.questions + 1)


def _ask(
    settings: Settings,
    request: FixRequest,
    fix: FixReport,
    asker: Asker | None,
    rerun: Rerun,
    repairs_left: int,
) -> Asked:
    """:func:`ask_and_keep` with at most ``repairs_left`` repair rounds: one per question, one for the
    docstring's stated outputs (the bound makes sure the loop ends)."""
    if settings.questions <= 0 or asker is None:
        question = first_question(fix, settings)
        return Asked(fix, request.text, None if question is None else {**question.to_json(), "answer": None})

    remaining, stated = documented_answers(fix.passing, fix.probe, trusted=settings.trusted)
    if stated and not remaining:
        repair = _Repair(settings, rerun, asker, repairs_left)
        return repair.run(request, fix, _stated_examples(fix), None, [])
    question = choose_question(remaining, fix.probe, trusted=settings.trusted)
    record: dict[str, Any] | None = None if question is None else {**question.to_json(), "answer": None}
    answers: list[tuple[Question, Answer]] = []
    while question is not None and len(answers) < settings.questions:
        answer = asker(question, fix.target)
        if answer.skipped:
            break
        answers.append((question, answer))
        if record is not None and len(answers) == 1:
            record["answer"] = answer.option.label if answer.option is not None else answer.value
        kept = keep_agreeing(remaining, question, answer)
        if not kept:
            assert answer.expected is not None  # not skipped
            repair = _Repair(settings, rerun, asker, repairs_left)
            examples = [*_stated_examples(fix), (question, answer.expected)]
            return repair.run(request, fix, examples, record, answers)
        remaining = kept
        question = choose_question(remaining, fix.probe, trusted=settings.trusted)

    if not answers and not stated:
        return Asked(fix, request.text, record)
    return keep_answers(settings, request, fix, remaining, answers, record)


def keep_answers(
    settings: Settings,
    request: FixRequest,
    fix: FixReport,
    remaining: Sequence[CandidateResult],
    answers: Sequence[tuple[Question, Answer]],
    record: dict[str, Any] | None,
) -> Asked:
    """``fix`` with ``remaining`` (the candidates the answers kept, best first) ranked first, and the answers
    kept as ``settings.answers_as`` says."""
    probe = fix.probe
    others = tuple(r for r in fix.results if r not in remaining)
    best, *rest = remaining
    tests = None
    if settings.answers_as == "test":
        tests = answer_tests(request.root, fix.target, probe.module if probe else "", answers)
    elif settings.answers_as == "doctest":
        new_text = best.candidate.new_text
        for asked, answer in answers:
            assert answer.expected is not None
            target = target_at(new_text, request.path, fix.target.def_start_line, fix.target.version)
            new_text = with_doctest(new_text, target, asked, answer.expected)
        best = dataclasses.replace(best, candidate=dataclasses.replace(best.candidate, new_text=new_text))
    kept_fix = dataclasses.replace(fix, results=(best, *rest, *others))
    return Asked(kept_fix, request.text, record, tuple(answers), tests)


def _stated_examples(fix: FixReport) -> list[tuple[Question, str]]:
    """Every output the docstring's prose states (``f(2) == 4``), as doctest examples: a repair round's
    candidates are then verified against all of them at once, not found wrong one repair at a time."""
    probe = fix.probe
    if probe is None:
        return []
    return [(Question(probe.function, probe.inputs[i], i, ()), expected) for i, expected in probe.documented]


@dataclasses.dataclass(frozen=True)
class _Repair:
    """No candidate returns the user's value (or the docstring's): run again with the examples (the
    docstring's stated outputs, the user's answer) as doctests in the docstring, then ask the questions the
    request has left about the repaired run's candidates, which pass those doctests but may still disagree
    elsewhere."""

    settings: Settings
    rerun: Rerun
    asker: Asker
    repairs_left: int

    def run(
        self,
        request: FixRequest,
        fix: FixReport,
        examples: Sequence[tuple[Question, str]],
        record: dict[str, Any] | None,
        answers: list[tuple[Question, Answer]],
    ) -> Asked:
        text, target = request.text, fix.target
        for question, expected in examples:
            added = with_doctest(text, target, question, expected)
            if added != text:
                text, target = (
                    added,
                    target_at(added, request.path, fix.target.def_start_line, request.version),
                )
        repaired = dataclasses.replace(request, text=text, line=target.body_start_line)
        again = self.rerun(repaired)
        left = self.settings.questions - len(answers)
        if left <= 0 or self.repairs_left <= 1 or not again.passing:
            return Asked(again, text, record, tuple(answers), None, repaired=True)
        settings = dataclasses.replace(self.settings, questions=left)
        more = _ask(settings, repaired, again, self.asker, self.rerun, self.repairs_left - 1)
        return Asked(
            more.fix, more.text, record or more.question, (*answers, *more.answers), more.tests, True
        )
