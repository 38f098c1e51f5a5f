"""Behaviour probes: call each passing candidate on the same inputs and compare what comes back.

Identical code is a weak vote: two different bodies that compute the same thing are two votes for that
behaviour, and two equal wrong bodies outvote four different right ones. The probe turns self-consistency
into agreement *by behaviour* (as in CodeT / MBR-exec): every passing candidate is called on the same
argument lists - the docstring's own examples, variations of them, and values built from the parameter
annotations - and two candidates agree on an input when they return equal ``repr``s or raise the same
exception type. ``rank.py`` puts the largest group of candidates with equal outputs first (near agreement,
:func:`agreement`, breaks ties); pass or fail never depends on a probe.

A probe runs workspace code (it imports the edited module), so it runs only where tests may run: in a
trusted workspace, in the pytest fork server's sandbox, with a per-call and an overall deadline.

Inputs are argument-list sources (``"1, [2, 3]"``): the docstring's calls keep their own expressions, the
rest are ``repr``s of literals - variations of the documented examples, then values Hypothesis draws from
the parameters' types (``drawn.py``), derandomized, so every candidate of a request - and every request for
the same signature - sees the same inputs. The worker evaluates an input's source afresh for every call, so
no candidate sees what another did to its arguments. A method is called as ``Class.method(Class(...), ...)``.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from ..cancel import CancelToken
from ..syntax import pyast
from ..syntax.target import EditTarget
from . import drawn
from .documented_types import DocumentedType, documented_types
from .sandbox import WorkerError, WorkerProcess
from .shadow import Shadow, ShadowRoot

MAX_INPUTS = 24
CALL_TIMEOUT_S = 0.25
"""Per call: a probe input is small, so a call that takes longer is looping (or exponential)."""
MAX_SHOWN = 80
"""Longest output ``repr`` a question offers as an answer: a longer one is not judged at a glance."""
_FROM_DOCTEST = 8
_MUTATIONS = 8


@dataclasses.dataclass(frozen=True)
class ProbePlan:
    """What to call: ``module.function(<args>)`` for each argument-list source in ``inputs``."""

    module: str
    function: str
    inputs: tuple[str, ...]
    import_root: str = ""
    """Where ``module`` is imported from, relative to the workspace root (``src`` in a src layout)."""
    documented: tuple[tuple[int, str], ...] = ()
    """``(input index, output repr)`` for each input whose output the docstring's prose states
    (:func:`documented_outputs`): answers the user already gave."""
    outside: tuple[int, ...] = ()
    """Inputs outside the documented examples' type (:func:`outside_inputs`): asked about only when no
    other input separates the candidates."""


@dataclasses.dataclass(frozen=True)
class ProbeOutputs:
    fingerprints: tuple[str, ...]
    """Per input: digest of the canonical ``repr``, or ``!ExceptionType`` / ``!timeout``."""
    shown: tuple[str | None, ...]
    """Per input: the result's ``repr`` when it is short and reads back as an equal literal, ``!Type`` when
    the call raised, None when neither (a timeout, an object without a literal ``repr``, a long output)."""


def probe_plan(
    target: EditTarget, root: Path, module: str, limit: int = MAX_INPUTS, source: str | None = None
) -> ProbePlan | None:
    """The probe for ``target`` (its file lies under ``root``; ``source``: the document's text, needed to
    probe a method), or None when it cannot be probed."""
    inputs = probe_inputs(target, limit, source)
    if not inputs or not module:
        return None
    relative = target.path.resolve().relative_to(root.resolve())
    packages = module.count(".") + (1 if relative.stem == "__init__" else 0)
    parents = relative.parents
    import_root = parents[packages] if packages < len(parents) else Path()
    function = target.qualname if target.class_name is not None else target.name
    stated = documented_outputs(target.docstring, target.name) if target.class_name is None else {}
    documented = tuple((i, stated[source]) for i, source in enumerate(inputs) if source in stated)
    return ProbePlan(
        module,
        function,
        inputs,
        import_root.as_posix() if import_root != Path() else "",
        documented,
        outside_inputs(target, inputs),
    )


def probe_inputs(target: EditTarget, limit: int = MAX_INPUTS, source: str | None = None) -> tuple[str, ...]:
    """Argument lists to call the target with; empty when the target cannot be called on its own.

    Module-level functions are probed, and plain methods of a module-level class whose constructor can be
    drawn (``source``: the document's text, where the class is read): their argument lists start with the
    instance, ``Class(<args>)``, for ``Class.method(...)``. A nested function is not reachable, a coroutine
    function would need an event loop, a decorated method may not take an instance first.
    """
    if limit <= 0 or target.is_async:
        return ()
    function = _signature(target.header)
    if function is None:
        return ()
    if target.class_name is not None:
        return _method_inputs(target, function, source, limit)
    if target.qualname != target.name:
        return ()
    out: list[str] = []

    def add(source: str) -> None:
        if source not in out and len(out) < limit:
            out.append(source)

    calls = _doctest_calls(target.docstring, target.name)
    required = _required(function)
    for arguments, values in calls[:_FROM_DOCTEST]:
        if values is None or required is None or len(values) >= len(required):
            add(arguments)  # not a call in prose that names the function without its arguments
    prose = _prose_examples(target.docstring, function)[:_FROM_DOCTEST]
    for values in prose:
        add(_args_source(values))
    literal_calls = _literal_calls(calls, prose)
    mutations = 0
    for values in literal_calls:
        for index in range(len(values)):
            for variant in _variants(values[index]):
                if mutations >= _MUTATIONS:
                    break
                before = len(out)
                add(_args_source([*values[:index], variant, *values[index + 1 :]]))
                mutations += len(out) - before

    if required is not None and len(out) < limit:
        strategies = _strategies(required, literal_calls, _stated_types(target.docstring, required))
        if strategies is not None:
            for drawn_values in drawn.draw(strategies, limit):  # some may repeat a documented one
                add(_args_source(drawn_values))
    return tuple(out)


def outside_inputs(target: EditTarget, inputs: Sequence[str]) -> tuple[int, ...]:
    """The indices of ``inputs`` that hold a float for an unannotated parameter whose documented values hold
    integers and no float (the draws of ``drawn.from_value`` for "a list of numbers" shown with integers).
    A question about such an input may be outside what the function is meant for - a float for a count, a
    year - so it is asked only when no input of the documented type tells the candidates apart."""
    function = _signature(target.header)
    if function is None or target.class_name is not None:
        return ()
    required = _required(function)
    if required is None:
        return ()
    calls = _literal_calls(
        _doctest_calls(target.docstring, target.name),
        _prose_examples(target.docstring, function)[:_FROM_DOCTEST],
    )
    integral = [
        index
        for index, parameter in enumerate(required)
        if parameter.annotation is None
        and any(_holds(call[index], int) for call in calls if len(call) > index)
        and not any(_holds(call[index], float) for call in calls if len(call) > index)
    ]
    if not integral:
        return ()
    out = []
    for index, source in enumerate(inputs):
        try:
            values = pyast.literal_eval(f"({source},)")
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue  # a documented call written with expressions: documented, so not outside
        if isinstance(values, tuple) and any(i < len(values) and _holds(values[i], float) for i in integral):
            out.append(index)
    return tuple(out)


def _literal_calls(calls: list[tuple[str, list[Any] | None]], prose: list[list[Any]]) -> list[list[Any]]:
    """The argument values of every documented call whose arguments are literals (``calls``: the doctest
    and prose calls, :func:`_doctest_calls`), then the examples written in prose without a call."""
    return [values for _, values in calls if values is not None] + prose


def _holds(value: Any, kind: type, depth: int = 0) -> bool:
    """``value`` is, or contains (in lists, tuples, sets, dict values), a ``kind`` (bools are not ints)."""
    if depth > 4 or isinstance(value, bool):
        return False
    if isinstance(value, kind):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_holds(item, kind, depth + 1) for item in value)
    if isinstance(value, dict):
        return any(_holds(item, kind, depth + 1) for item in value.values())
    return False


def _method_inputs(
    target: EditTarget, function: ast.FunctionDef, source: str | None, limit: int
) -> tuple[str, ...]:
    """``Class(<args>), <args>`` for a plain method of a module-level class (see :func:`probe_inputs`)."""
    class_name = target.class_name
    if (
        source is None
        or class_name is None
        or target.qualname != f"{class_name}.{target.name}"
        or function.decorator_list
        or target.name.startswith("__")
    ):
        return ()
    init = drawn.constructor(source, class_name)
    positional = [*function.args.posonlyargs, *function.args.args]
    method = _required(function)
    if init is None or method is None or not positional or positional[0] not in method:
        return ()  # no instance parameter (``def f()`` in a class body) or an unknown constructor
    stated = _stated_types(target.docstring, [p for p in method[1:] if p.arg not in {a.arg for a in init}])
    strategies = _strategies([*init, *method[1:]], [], stated)
    if strategies is None:
        return ()
    out: list[str] = []
    for values in drawn.draw(strategies, limit):
        instance = f"{class_name}({_args_source(values[: len(init)])})"
        source_ = ", ".join([instance, *(repr(v) for v in values[len(init) :])])
        if source_ not in out:
            out.append(source_)
    return tuple(out)


def _required(function: ast.FunctionDef) -> list[ast.arg] | None:
    """The positional parameters without a default, or None when the arity is not known (``*args``, a
    required keyword-only parameter)."""
    arguments = function.args
    if arguments.vararg is not None or any(default is None for default in arguments.kw_defaults):
        return None
    positional = [*arguments.posonlyargs, *arguments.args]
    return positional[: len(positional) - len(arguments.defaults)]


def _stated_types(docstring: str | None, parameters: Sequence[ast.arg]) -> dict[str, DocumentedType]:
    """The types the docstring states for the unannotated ones of ``parameters``."""
    unannotated = [parameter.arg for parameter in parameters if parameter.annotation is None]
    text = _docstring_text(docstring) if unannotated else None
    return documented_types(text, unannotated) if text is not None else {}


def _strategies(
    parameters: list[ast.arg], literal_calls: list[list[Any]], stated: Mapping[str, DocumentedType]
) -> list[drawn.Strategy] | None:
    """One Hypothesis strategy per parameter - from its annotation, else from its documented values' type,
    else from the type its docstring states, else the documented values and their variations - or None
    when one cannot be made."""
    strategies = []
    for index, parameter in enumerate(parameters):
        seen = [call[index] for call in literal_calls if len(call) > index]
        strategy = drawn.from_annotation(parameter.annotation, seen)
        if strategy is None and parameter.annotation is not None and seen:
            strategy = drawn.from_annotation(None, seen)
        if strategy is None and not seen and parameter.arg in stated:
            documented = stated[parameter.arg]
            strategy = drawn.from_annotation(ast.Constant(documented.annotation), (), documented.minimum)
        if strategy is None:
            if not seen:
                return None
            strategy = st.sampled_from([*seen, *(variant for value in seen for variant in _variants(value))])
        strategies.append(strategy)
    return strategies


def agreement(outputs: Sequence[tuple[str, ...]], weights: Sequence[int]) -> list[float]:
    """Near agreement: for each candidate, the weighted number of candidates (itself included) like it.

    Candidate j counts ``weights[j]`` times the share of inputs on which both return the same thing, so
    candidates that differ only on an input outside the function's intended domain still nearly agree.
    A candidate without outputs (no probe) agrees fully with itself and with nothing else.
    """
    scores = []
    for i, mine in enumerate(outputs):
        score = 0.0
        for j, theirs in enumerate(outputs):
            if i == j:
                score += weights[j]
            elif mine and len(mine) == len(theirs):
                same = sum(1 for a, b in zip(mine, theirs, strict=True) if a == b)
                score += weights[j] * same / len(mine)
        scores.append(score)
    return scores


class ProbeRunner:
    """Calls a candidate on the probe inputs through the pytest fork server (one run at a time)."""

    def __init__(self, worker: WorkerProcess, shadows: ShadowRoot, timeout_s: float) -> None:
        self._worker = worker
        self._shadows = shadows
        self._timeout_s = timeout_s

    def run(self, shadow: Shadow, plan: ProbePlan, cancel: CancelToken) -> ProbeOutputs:
        """One fingerprint per input (``repr`` digest or ``!ExceptionType``) and what a question may show
        for it (see :class:`ProbeOutputs`); both empty if the probe failed."""
        result_file = self._shadows.scratch("probe-result")
        log_file = self._shadows.scratch("probe-log")
        request = {
            "op": "probe",
            "cwd": str(shadow.root),
            "workspace": str(self._shadows.workspace),
            "path": str(shadow.root / plan.import_root),
            "module": plan.module,
            "function": plan.function,
            "inputs": list(plan.inputs),
            "call_timeout": CALL_TIMEOUT_S,
            "max_shown": MAX_SHOWN,
            "result_file": str(result_file),
            "log_file": str(log_file),
            "timeout": self._timeout_s,
        }
        failed = ProbeOutputs((), ())
        try:
            try:
                answer = self._worker.request(request, cancel)
            except WorkerError:
                return failed
            if answer.get("status") != "ok":
                return failed
            try:
                data = json.loads(result_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return failed
        finally:
            result_file.unlink(missing_ok=True)
            log_file.unlink(missing_ok=True)
        if not isinstance(data, dict):
            return failed
        outputs, shown = data.get("fingerprints"), data.get("shown")
        n = len(plan.inputs)
        if (
            not isinstance(outputs, list)
            or not isinstance(shown, list)
            or len(outputs) != n
            or len(shown) != n
        ):
            return failed
        return ProbeOutputs(
            tuple(str(output) for output in outputs),
            tuple(item if isinstance(item, str) else None for item in shown),
        )


# ----------------------------------------------------------------------------------------------- inputs


def _signature(header: str) -> ast.FunctionDef | None:
    try:
        tree = pyast.parse_module(textwrap.dedent(header) + "\n    ...\n")
    except SyntaxError:
        return None
    node = tree.body[0] if tree.body else None
    return node if isinstance(node, ast.FunctionDef) else None


def _docstring_text(docstring: str | None) -> str | None:
    """The value of a docstring literal as the target holds it (its source: quotes, prefixes, escapes)."""
    if not docstring:
        return None
    try:
        text = pyast.literal_eval(textwrap.dedent(docstring).strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return text if isinstance(text, str) else None


def _doctest_calls(docstring: str | None, name: str) -> list[tuple[str, list[Any] | None]]:
    """``(argument source, literal values or None)`` of every call of ``name`` written in its docstring:
    doctest examples (``>>> name(1, 2)``) and prose ones (``name([1, 2]) == 3``, ``name("a") => 'b'``)."""
    text = _docstring_text(docstring)
    if text is None:
        return []
    calls: list[tuple[str, list[Any] | None]] = []
    for match in re.finditer(rf"(?<![\w.]){re.escape(name)}\s*\(", text):
        expression = _call_at(text, match.start(), name)
        if expression is None:
            continue
        parts = [ast.unparse(arg) for arg in expression.args]
        parts += [ast.unparse(kw) for kw in expression.keywords]
        values: list[Any] | None = None
        if not expression.keywords and not any(isinstance(a, ast.Starred) for a in expression.args):
            try:
                values = [pyast.literal_eval(arg) for arg in expression.args]
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                values = None
        source = ", ".join(parts)
        if all(source != seen for seen, _ in calls):
            calls.append((source, values))
    return calls


def _prose_examples(docstring: str | None, function: ast.FunctionDef) -> list[list[Any]]:
    """Argument lists written in prose, not as calls: ``For lst = [1, 2] the output should be 3``,
    ``grid : [[0, 1]]`` / ``capacity : 1`` (a value per parameter name, in order, one example after the
    other), and ``Input: [4, 2, 3]`` for a function of one parameter. HumanEval writes half its examples so;
    without them an unannotated function has no probe input at all."""
    text = _docstring_text(docstring)
    arguments = function.args
    names = [a.arg for a in [*arguments.posonlyargs, *arguments.args] if a.arg not in ("self", "cls")]
    required = names[: len(names) - len(arguments.defaults)]
    if text is None or not required or arguments.vararg is not None:
        return []
    labels = "|".join(re.escape(name) for name in required)
    if len(required) == 1:
        labels += "|[Ii]nput"
    found: list[tuple[str, Any]] = []
    for match in re.finditer(rf"(?<![\w.])({labels})\s*[=:]\s*(?![=\s])", text):
        value = _literal_prefix(text[match.end() :].split("\n", 1)[0])
        if value is not _NO_LITERAL:
            found.append((required[0] if match[1].lower() == "input" else match[1], value))
    examples: list[list[Any]] = []
    current: dict[str, Any] = {}
    for name, value in [*found, ("", None)]:
        if name in current or not name:
            if len(current) == len(required):
                values = [current[n] for n in required]
                if values not in examples:
                    examples.append(values)
            current = {}
        if name:
            current[name] = value
    return examples


_NO_LITERAL = object()


def _literal_prefix(line: str) -> Any:
    """The longest prefix of ``line`` that is a Python literal (``_NO_LITERAL`` when none is)."""
    line = line.strip()
    for end in range(min(len(line), 400), 0, -1):
        if line[end - 1] in " ,;.":
            continue
        try:
            return pyast.literal_eval(line[:end])
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return _NO_LITERAL


def _call_at(text: str, start: int, name: str) -> ast.Call | None:
    """The call expression that starts at ``text[start]``: the shortest prefix up to a ``)`` that parses."""
    found = _call_span(text, start, name)
    return found[0] if found else None


def _call_span(text: str, start: int, name: str) -> tuple[ast.Call, int] | None:
    end = start
    while True:
        end = text.find(")", end + 1)
        if end < 0 or end - start > 2000:
            return None
        try:
            expression = pyast.parse_expression(text[start : end + 1])
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        if isinstance(expression, ast.Call) and isinstance(expression.func, ast.Name):
            return (expression, end + 1) if expression.func.id == name else None
        return None


_STATES = re.compile(r"\s*(?:==|=>|->|→|➞|should return|returns?|should be|gives)\s*(?![=\s])")


_GOES_ON = re.compile(r"(?:and|or|but|for|if|when|since|because|as|while)\b")


def documented_outputs(docstring: str | None, name: str) -> dict[str, str]:
    """``{argument source: expected output repr}`` for the docstring's prose examples that state their
    output on the same line - ``f([1, 2]) == 3``, ``f('a') => 'b'``, ``f(0) returns True`` - when the output
    is a whole literal (``f(x) == 1 + 2 = 3`` states nothing we can read). Doctest lines are not included:
    the tests already run them."""
    text = _docstring_text(docstring)
    if text is None:
        return {}
    out: dict[str, str] = {}
    for match in re.finditer(rf"(?<![\w.]){re.escape(name)}\s*\(", text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        if text[line_start : match.start()].lstrip().startswith(">>>"):
            continue
        found = _call_span(text, match.start(), name)
        if found is None:
            continue
        call, end = found
        states = _STATES.match(text, end)
        if states is None:
            continue
        rest = text[states.end() :].split("\n", 1)[0].strip()
        value = _literal_prefix(rest)
        if value is _NO_LITERAL or repr(value) != repr(pyast.literal_eval(repr(value))):
            continue
        shown = rest[: _literal_length(rest)]
        after = rest[len(shown) :].lstrip()
        if after and not (after[0] in ",;.#(" or _GOES_ON.match(after)):
            continue  # more follows (``1 + 9 = 10``, ``3 times x``): the literal is only its start
        if not all(_is_literal(node) for node in (*call.args, *(k.value for k in call.keywords))):
            # ``is_happy(a) => False`` writes the string without quotes: the call would raise NameError, and
            # as an answer it would drop every candidate and send a repair round a doctest nothing passes.
            continue
        arguments = ", ".join(
            [*(ast.unparse(a) for a in call.args), *(ast.unparse(k) for k in call.keywords)]
        )
        out.setdefault(arguments, repr(value))
    return out


def _is_literal(node: ast.expr) -> bool:
    try:
        pyast.literal_eval(node)
        return True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def _literal_length(line: str) -> int:
    """Length of the longest prefix of ``line`` (stripped) that is a literal (0: none)."""
    for end in range(min(len(line), 400), 0, -1):
        if line[end - 1] in " ,;.":
            continue
        try:
            pyast.literal_eval(line[:end])
            return end
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return 0


def _args_source(values: Sequence[Any]) -> str:
    return ", ".join(repr(value) for value in values)


def _variants(value: Any) -> list[Any]:
    """Nearby values of the same type: what a tester would try next to a documented example."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, 0, -value, value * 2]
    if isinstance(value, float):
        return [value + 0.5, -value, 0.0]
    if isinstance(value, str):
        return ["", value[::-1], value.upper(), value[1:], value + value[:1]]
    if isinstance(value, list):
        return [[], value[::-1], value[1:], value + value[:1], sorted(value, key=repr)]
    if isinstance(value, tuple):
        return [value[::-1]]
    if isinstance(value, dict):
        return [{}, dict(list(value.items())[1:])]
    return []
