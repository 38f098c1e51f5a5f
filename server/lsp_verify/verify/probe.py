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

Inputs are argument-list sources (``"1, [2, 3]"``): the docstring's calls keep their own expressions,
generated ones are ``repr``s of literals. Generation is deterministic (fixed seed), so every candidate of a
request - and every request for the same signature - sees the same inputs.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import random
import re
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..cancel import CancelToken
from ..syntax.target import EditTarget
from .sandbox import WorkerError, WorkerProcess
from .shadow import Shadow, ShadowRoot

MAX_INPUTS = 24
CALL_TIMEOUT_S = 0.25
"""Per call: a probe input is small, so a call that takes longer is looping (or exponential)."""
MAX_SHOWN = 80
"""Longest output ``repr`` a question offers as an answer: a longer one is not judged at a glance."""
_FROM_DOCTEST = 8
_MUTATIONS = 8

Maker = Callable[[random.Random], Any]


@dataclasses.dataclass(frozen=True)
class ProbePlan:
    """What to call: ``module.function(<args>)`` for each argument-list source in ``inputs``."""

    module: str
    function: str
    inputs: tuple[str, ...]
    import_root: str = ""
    """Where ``module`` is imported from, relative to the workspace root (``src`` in a src layout)."""


@dataclasses.dataclass(frozen=True)
class ProbeOutputs:
    fingerprints: tuple[str, ...]
    """Per input: digest of the canonical ``repr``, or ``!ExceptionType`` / ``!timeout``."""
    shown: tuple[str | None, ...]
    """Per input: the result's ``repr`` when it is short and reads back as an equal literal, ``!Type`` when
    the call raised, None when neither (a timeout, an object without a literal ``repr``, a long output)."""


def probe_plan(target: EditTarget, root: Path, module: str, limit: int = MAX_INPUTS) -> ProbePlan | None:
    """The probe for ``target`` (its file lies under ``root``), or None when it cannot be probed."""
    inputs = probe_inputs(target, limit)
    if not inputs or not module:
        return None
    relative = target.path.resolve().relative_to(root.resolve())
    packages = module.count(".") + (1 if relative.stem == "__init__" else 0)
    parents = relative.parents
    import_root = parents[packages] if packages < len(parents) else Path()
    return ProbePlan(module, target.name, inputs, import_root.as_posix() if import_root != Path() else "")


def probe_inputs(target: EditTarget, limit: int = MAX_INPUTS, seed: int = 0) -> tuple[str, ...]:
    """Argument lists to call the target with; empty when the target cannot be called on its own.

    Only plain module-level functions are probed (a method needs an instance, a nested function is not
    reachable, a coroutine function would need an event loop).
    """
    if limit <= 0 or target.class_name is not None or target.is_async or target.qualname != target.name:
        return ()
    function = _signature(target.header)
    if function is None:
        return ()
    rng = random.Random(seed)
    out: list[str] = []

    def add(source: str) -> None:
        if source not in out and len(out) < limit:
            out.append(source)

    calls = _doctest_calls(target.docstring, target.name)
    for source, _ in calls[:_FROM_DOCTEST]:
        add(source)
    literal_calls = [values for _, values in calls if values is not None]
    for values in _prose_examples(target.docstring, function)[:_FROM_DOCTEST]:
        add(_args_source(values))
        literal_calls.append(values)
    mutations = 0
    for values in literal_calls:
        for index in range(len(values)):
            for variant in _variants(values[index]):
                if mutations >= _MUTATIONS:
                    break
                before = len(out)
                add(_args_source([*values[:index], variant, *values[index + 1 :]]))
                mutations += len(out) - before

    makers = _parameter_makers(function, literal_calls)
    if makers:
        for _ in range(limit * 4):
            if len(out) >= limit:
                break
            add(_args_source([make(rng) for make in makers]))
    return tuple(out)


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
        tree = ast.parse(textwrap.dedent(header) + "\n    ...\n")
    except SyntaxError:
        return None
    node = tree.body[0] if tree.body else None
    return node if isinstance(node, ast.FunctionDef) else None


def _doctest_calls(docstring: str | None, name: str) -> list[tuple[str, list[Any] | None]]:
    """``(argument source, literal values or None)`` of every call of ``name`` written in its docstring:
    doctest examples (``>>> name(1, 2)``) and prose ones (``name([1, 2]) == 3``, ``name("a") => 'b'``)."""
    if not docstring:
        return []
    try:
        text = ast.literal_eval(textwrap.dedent(docstring).strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return []
    if not isinstance(text, str):
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
                values = [ast.literal_eval(arg) for arg in expression.args]
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
    if not docstring:
        return []
    try:
        text = ast.literal_eval(textwrap.dedent(docstring).strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return []
    arguments = function.args
    names = [a.arg for a in [*arguments.posonlyargs, *arguments.args] if a.arg not in ("self", "cls")]
    required = names[: len(names) - len(arguments.defaults)]
    if not isinstance(text, str) or not required or arguments.vararg is not None:
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
            return ast.literal_eval(line[:end])
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return _NO_LITERAL


def _call_at(text: str, start: int, name: str) -> ast.Call | None:
    """The call expression that starts at ``text[start]``: the shortest prefix up to a ``)`` that parses."""
    end = start
    while True:
        end = text.find(")", end + 1)
        if end < 0 or end - start > 2000:
            return None
        try:
            expression = ast.parse(text[start : end + 1], mode="eval").body
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        if isinstance(expression, ast.Call) and isinstance(expression.func, ast.Name):
            return expression if expression.func.id == name else None
        return None


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


_INTS = (0, 1, 2, 3, 5, 7, 10, -1, -3, 12, 25, 100)
_FLOATS = (0.0, 1.0, 2.5, -1.5, 3.7, 10.0, 0.1, -0.5)
_STRS = ("", "a", "abc", "Hello World", "aba", "12345", "a b c", "xyzzy", "AbC", "hello", "(())")


def _parameter_makers(function: ast.FunctionDef, literal_calls: list[list[Any]]) -> list[Maker] | None:
    """One value maker per positional parameter without a default, or None when one cannot be made."""
    arguments = function.args
    if arguments.vararg is not None or any(
        default is None for default in arguments.kw_defaults
    ):  # *args: unknown arity; a required keyword-only parameter: not handled
        return None
    positional = [*arguments.posonlyargs, *arguments.args]
    required = positional[: len(positional) - len(arguments.defaults)]
    makers: list[Maker] = []
    for index, parameter in enumerate(required):
        maker = _maker(parameter.annotation)
        if maker is None:
            seen = [call[index] for call in literal_calls if len(call) > index]
            if not seen:
                return None
            maker = _from_examples(seen)
        makers.append(maker)
    return makers


def _from_examples(seen: list[Any]) -> Maker:
    pool = [*seen, *(variant for value in seen for variant in _variants(value))]
    return lambda rng: rng.choice(pool)


def _maker(annotation: ast.expr | None, depth: int = 0) -> Maker | None:
    """A value maker for a type annotation, or None when the type is not one we can build."""
    if annotation is None or depth > 3:
        return None
    if isinstance(annotation, ast.Constant):
        if annotation.value is None:
            return lambda rng: None
        if isinstance(annotation.value, str):  # a string annotation: "list[int]"
            try:
                return _maker(ast.parse(annotation.value, mode="eval").body, depth + 1)
            except SyntaxError:
                return None
        return None
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _union([annotation.left, annotation.right], depth)
    name = _name(annotation)
    if name in ("int", "float", "str", "bool"):
        return _scalar(name)
    if not isinstance(annotation, ast.Subscript):
        if name in ("list", "List", "Sequence", "Iterable", "Collection"):
            return _sequence(_scalar("int"))
        return None
    generic = _name(annotation.value)
    parameters = (
        list(annotation.slice.elts) if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
    )
    if generic in ("Optional",):
        return _union([parameters[0], ast.Constant(None)], depth)
    if generic in ("Union",):
        return _union(parameters, depth)
    if generic in ("list", "List", "Sequence", "Iterable", "Collection", "MutableSequence"):
        item = _maker(parameters[0], depth + 1)
        return None if item is None else _sequence(item)
    if generic in ("set", "Set", "frozenset", "FrozenSet", "AbstractSet"):
        item = _maker(parameters[0], depth + 1)
        return None if item is None else _converted(_sequence(item), set)
    if generic in ("tuple", "Tuple"):
        if len(parameters) == 2 and isinstance(parameters[1], ast.Constant) and parameters[1].value is ...:
            item = _maker(parameters[0], depth + 1)
            return None if item is None else _converted(_sequence(item), tuple)
        items = [_maker(p, depth + 1) for p in parameters]
        if any(item is None for item in items):
            return None
        fixed = [item for item in items if item is not None]
        return lambda rng: tuple(make(rng) for make in fixed)
    if generic in ("dict", "Dict", "Mapping", "MutableMapping"):
        if len(parameters) != 2:
            return None
        key, value = _maker(parameters[0], depth + 1), _maker(parameters[1], depth + 1)
        if key is None or value is None:
            return None
        return lambda rng: {key(rng): value(rng) for _ in range(rng.randint(0, 4))}
    return None


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # typing.List, collections.abc.Sequence
        return node.attr
    return ""


def _scalar(name: str) -> Maker:
    pool: tuple[Any, ...] = {"int": _INTS, "float": _FLOATS, "str": _STRS, "bool": (True, False)}[name]
    return lambda rng: rng.choice(pool)


def _sequence(item: Maker) -> Maker:
    return lambda rng: [item(rng) for _ in range(rng.choice((0, 1, 2, 3, 4, 5, 6)))]


def _converted(make: Maker, convert: Callable[[Any], Any]) -> Maker:
    return lambda rng: convert(make(rng))


def _union(members: list[ast.expr], depth: int) -> Maker | None:
    makers = [_maker(member, depth + 1) for member in members]
    usable = [maker for maker in makers if maker is not None]
    if not usable:
        return None
    return lambda rng: rng.choice(usable)(rng)
