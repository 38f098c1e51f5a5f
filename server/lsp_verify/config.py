"""The one typed settings object, and where its values come from.

Sources, lowest precedence first: defaults, ``[tool.lsp-verify]`` in the project's pyproject.toml, then the
editor (initializationOptions / workspace/configuration) or CLI flags. An invalid value never stops the
caller: it is reported in ``Settings.problems`` (the server shows them with window/showMessage, the CLI
prints them) and the previous value is kept.

The repository's own ``[tool.lsp-verify]`` is written by whoever wrote the repository. In an untrusted
workspace it can therefore only make things stricter or change what is harmless (how many candidates, the
sampling): every field that weakens isolation, picks what is loaded or run, or spends the user's machine
comes from the user (editor settings, initializationOptions, CLI flags) and is ignored in the repository's
table, with one problem saying so. :data:`UNTRUSTED_PROJECT_IGNORES` decides each field; a team can still
commit those settings for trusted checkouts, and the CLI is trusted by being run, so they apply there.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PromptFormat = Literal["auto", "chat", "fim"]
SandboxMode = Literal["auto", "bwrap", "none"]
AnswersAs = Literal["test", "doctest", "none"]
EngineKind = Literal["local", "openai"]


@dataclasses.dataclass
class Settings:
    """Every knob of lsp-verify. Field names are the keys users write (snake_case or camelCase)."""

    model_path: str | None = None
    """A GGUF to use instead of the embedded default."""
    prompt_format: PromptFormat = "auto"
    k: int = 8
    """Candidates generated per request."""
    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    n_ctx: int = 4096
    n_gpu_layers: int | None = None
    """Layers to offload; None means all when the llama.cpp build supports offload, none otherwise."""
    n_threads: int | None = None
    test_timeout_s: float = 30.0
    mypy_timeout_s: float = 120.0
    suite_guard_timeout_s: float = 300.0
    """``check`` also runs the whole test suite on a change, for the tests that reach a changed function
    without naming it (through a fixture, another function, a re-export); the suite run may take this
    long. 0: only the nearby tests (the report then says so)."""
    trace_timeout_s: float = 120.0
    """How long the one traced run of the whole test suite may take that finds, for each function, the tests
    that reach it through other functions (a test of ``slugify`` runs its helper ``_normalize``): those run
    on its candidates too, and one that passes makes a suggestion tested, not types only. Made when a
    request first needs it and again after changes (at most every 5 minutes), in the background (the CLI's
    ``fix`` waits for it). 0: only the tests that name a function, its module's test module and its
    doctests."""
    memory_limit_mb: int = 2048
    lead_sequence: bool = True
    """Decode one greedy candidate alone ahead of the other k - 1, so the first suggestion can be verified as
    early as a lone greedy completion would be ready (bench/latency.py measures it; false: all k batched)."""
    quorum: int = 0
    """Stop generating once this many passing samples behave alike -- the same outputs on every probe input,
    or the same code without probes; the rest of k would only confirm the rank (what was generated is still
    verified). 0: always generate all k. Off by default: ``bench/latency.py --quorum-replay`` over 105
    HumanEval problems, 3 keeps the top suggestion's precision (80/105) and decides the rank 10% sooner
    (median), but leaves a question to ask in 56 problems instead of 67 (the disagreeing samples are never
    generated); 2 also loses a problem."""
    repair_rounds: int = 1
    """When no candidate passes: rounds of k more candidates, prompted with a failure and its first error."""
    probe_inputs: int = 24
    """Inputs each passing candidate is called on to rank by behaviour (trusted workspaces; 0: off)."""
    questions: int = 2
    """When the passing candidates behave differently: questions asked per request (0: never ask)."""
    answers_as: AnswersAs = "test"
    """How an answer is kept: a test in the conventional test module, a doctest line, or not at all."""
    require_tests: bool = False
    """Refuse "types only" results (no nearby tests ran)."""
    python: str | None = None
    """The Python that runs the project's tests and probes (a trusted workspace's code): a path, relative to
    the workspace root or absolute. None: the workspace's own ``.venv`` or ``venv`` when its Python has
    pytest, else the interpreter lsp-verify runs in."""
    trusted: bool = False
    """Whether workspace code (tests, conftest.py, mypy plugins) may run. The CLI is trusted by being run."""
    sandbox: SandboxMode = "auto"
    check_on_save: bool = True
    """The language server checks the functions changed since git HEAD on save and publishes diagnostics."""
    inline_completion: bool = True
    """The language server answers textDocument/inlineCompletion in stub bodies with verified bodies."""
    prepare_ahead: bool = True
    """When the cursor rests on a function (the editor asks for its code actions), the language server runs
    what a request for it needs first -- the baseline of its tests and mypy, and the prompt when the model is
    loaded -- so that picking the action generates at once (``bench/latency.py``, ``lead-prepared``)."""
    engine: EngineKind = "local"
    """"local": the GGUF in-process (llama.cpp); "openai": an OpenAI-compatible server at ``endpoint``."""
    endpoint: str | None = None
    """The server's API base for engine "openai", e.g. http://gpu-box:8080/v1 (llama-server, vLLM)."""
    remote_model: str | None = None
    """The model name sent to the server; None: the first one it lists at /v1/models."""
    api_key_env: str | None = None
    """The *name* of the environment variable holding the server's API key (the key never lives here)."""
    remote_timeout_s: float = 60.0
    """How long the remote engine waits for the server to send anything before giving up (a stall)."""
    problems: list[str] = dataclasses.field(default_factory=list, compare=False, repr=False)

    def updated(self, values: Mapping[str, Any], source: str) -> Settings:
        """A copy with ``values`` applied; unknown keys and invalid values become ``problems``."""
        new = dataclasses.replace(self, problems=list(self.problems))
        fields = {f.name: f for f in dataclasses.fields(Settings) if f.name != "problems"}
        for raw_key, value in values.items():
            key = _snake(raw_key)
            field = fields.get(key)
            if field is None:
                new.problems.append(f"{source}: unknown setting '{raw_key}' (ignored)")
                continue
            try:
                setattr(new, key, _coerce(key, field.type, value))
            except ValueError as exc:
                new.problems.append(
                    f"{source}: invalid value {value!r} for '{raw_key}': {exc}; using {getattr(new, key)!r}"
                )
        return new


def _snake(key: str) -> str:
    out = []
    for ch in key.replace("-", "_"):
        if ch.isupper():
            out.append("_" + ch.lower())
        else:
            out.append(ch)
    return "".join(out)


_POSITIVE = {
    "k",
    "max_tokens",
    "n_ctx",
    "test_timeout_s",
    "mypy_timeout_s",
    "memory_limit_mb",
    "n_threads",
} | {"remote_timeout_s"}
_LITERALS: dict[str, Any] = {
    "PromptFormat": PromptFormat,
    "SandboxMode": SandboxMode,
    "EngineKind": EngineKind,
    "AnswersAs": AnswersAs,
}


def _coerce(key: str, annotation: Any, value: Any) -> Any:
    text = str(annotation)
    if value is None:
        if "None" in text:
            return None
        raise ValueError("a value is required")
    if text in _LITERALS:
        choices = get_args(_LITERALS[text])
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value
    if "bool" in text:
        if isinstance(value, bool):
            return value
        raise ValueError("expected true or false")
    if "int" in text and "float" not in text:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            else:
                raise ValueError("expected an integer")
        if key in _POSITIVE and value <= 0:
            raise ValueError("expected a positive integer")
        if key == "repair_rounds" and value < 0:
            raise ValueError("expected 0 (no repair) or a number of rounds")
        if key == "quorum" and value < 0:
            raise ValueError("expected 0 (generate all k) or a number of agreeing samples")
        if key == "questions" and value < 0:
            raise ValueError("expected 0 (never ask) or a number of questions")
        if key == "probe_inputs" and value < 0:
            raise ValueError("expected 0 (no probes) or a number of inputs")
        if key == "n_gpu_layers" and value < -1:
            raise ValueError("expected -1 (all), 0 (none) or a layer count")
        return value
    if "float" in text:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("expected a number")
        value = float(value)
        if key in _POSITIVE and value <= 0:
            raise ValueError("expected a positive number")
        if key == "temperature" and value < 0:
            raise ValueError("expected a number >= 0")
        if key == "suite_guard_timeout_s" and value < 0:
            raise ValueError("expected 0 (nearby tests only) or a number of seconds")
        if key == "trace_timeout_s" and value < 0:
            raise ValueError("expected 0 (no traced run) or a number of seconds")
        if key == "top_p" and not 0 < value <= 1:
            raise ValueError("expected a number in (0, 1]")
        return value
    if "str" in text:
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value or None if "None" in text else value
    raise ValueError(f"unsupported setting type {text}")  # pragma: no cover


UNTRUSTED_PROJECT_IGNORES: dict[str, str] = {
    "model_path": "picks the model file that is loaded",
    "n_ctx": "sizes the memory the model takes",
    "n_gpu_layers": "decides what runs on the GPU",
    "n_threads": "decides how much of the CPU generation takes",
    "test_timeout_s": "sets how long workspace code may run",
    "mypy_timeout_s": "sets how long a check may run",
    "suite_guard_timeout_s": "sets how long workspace code may run, and whether check runs the whole suite",
    "trace_timeout_s": "sets how long workspace code may run",
    "memory_limit_mb": "sets the memory checks may take",
    "python": "picks the program that runs the workspace's tests",
    "trusted": "only the editor can trust a workspace",
    "sandbox": "decides how checks are isolated",
    "check_on_save": "decides whether checks run on every save",
    "inline_completion": "decides whether the model runs as the user types",
    "prepare_ahead": "decides whether checks run before they are asked for",
    "engine": "decides where the user's code is sent for generation",
    "endpoint": "decides which server the user's code (and API key) is sent to",
    "remote_model": "picks the model that is used",
    "api_key_env": "decides which of the user's secrets is sent",
    "remote_timeout_s": "sets how long a request may wait",
}
"""Fields an untrusted repository's ``[tool.lsp-verify]`` may not set, each with the reason (shown to the
user)."""

UNTRUSTED_PROJECT_ALLOWS = frozenset(
    {"prompt_format", "k", "max_tokens", "temperature", "top_p", "seed", "repair_rounds", "probe_inputs"}
    | {"require_tests", "questions", "answers_as"}
    | {"lead_sequence"}  # one candidate greedy and decoded first: it shapes the candidates like temperature
    | {"quorum"}  # stops sampling early: it shapes how many candidates there are, like k
)
"""Fields an untrusted repository may still set: the first only shape the candidates (probes run in trusted
workspaces only); ``questions`` and ``answers_as`` only shape what the user is asked and how an answer is
kept (questions come from probes: trusted workspaces only); ``require_tests`` can only refuse more, since
the repository's layer lies under the user's and ``false`` is merely the default. Every field is in exactly
one of the two tables (a test checks it)."""


PYTEST_CONFIG_FILES = (
    ("pytest.toml", None),  # pytest 9
    (".pytest.toml", None),
    ("pytest.ini", None),
    (".pytest.ini", None),
    ("pyproject.toml", re.compile(r"^\[tool\.pytest(\.ini_options)?\]", re.MULTILINE)),
    ("tox.ini", re.compile(r"^\[pytest\]", re.MULTILINE)),
    ("setup.cfg", re.compile(r"^\[tool:pytest\]", re.MULTILINE)),
)
"""pytest's configuration files in its order of preference, each with the section that makes it one (None:
the file is one by being there)."""

PROJECT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")


_CONFIG_READ_LIMIT = 1 << 20
"""Bytes of a configuration file read to find its section: the editor asks for a file's project on every
code action, and a hostile repository's file may be huge (or a FIFO: only regular files are read)."""


def pytest_config_file(directory: Path) -> str:
    """The name of the pytest configuration file in ``directory`` (empty: it has none)."""
    for name, section in PYTEST_CONFIG_FILES:
        path = directory / name
        if not path.is_file():
            continue
        if section is None:
            return name
        try:
            with path.open("rb") as config:
                text = config.read(_CONFIG_READ_LIMIT).decode("utf-8", errors="replace")
        except OSError:
            continue
        if section.search(text):
            return name
    return ""


def find_project_root(start: Path, within: Path | None = None) -> Path:
    """The root of the project ``start`` belongs to: where its tests are collected and run, and what a
    shadow copies.

    As pytest finds its rootdir for tests there: the nearest directory above ``start`` that holds a pytest
    configuration (:data:`PYTEST_CONFIG_FILES`), even past a nearer ``pyproject.toml`` without one - in a uv
    workspace, the root's configuration is every member's that has none of its own. Without a configuration,
    the nearest directory holding pyproject.toml, setup.cfg, setup.py or .git, so that each member of a
    monorepo is its own project. The search ends at the repository's top (the directory holding ``.git``)
    and at ``within`` (the editor's workspace folder: nothing above it is trusted), which is the answer when
    nothing below it is one.
    """
    start = start.resolve()
    here = start if start.is_dir() else start.parent
    bound = within.resolve() if within is not None else None
    if bound is not None and not here.is_relative_to(bound):
        bound = None
    ancestors = []
    for candidate in (here, *here.parents):
        ancestors.append(candidate)
        if candidate == bound or (candidate / ".git").exists():
            break
    configured = next((candidate for candidate in ancestors if pytest_config_file(candidate)), None)
    if configured is not None:
        return configured
    marked = (
        candidate
        for candidate in ancestors
        if any((candidate / marker).exists() for marker in PROJECT_MARKERS)
    )
    return next(marked, bound or here)


def repository_top(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` holding ``.git`` (None: not in a repository)."""
    start = start.resolve()
    return next((c for c in (start, *start.parents) if (c / ".git").exists()), None)


def project_settings(root: Path, base: Settings | None = None, *, trusted: bool) -> Settings:
    """``base`` (or the defaults) with ``[tool.lsp-verify]`` from ``root/pyproject.toml`` applied.

    ``trusted``: whether the workspace is trusted; when not, the fields of :data:`UNTRUSTED_PROJECT_IGNORES`
    are left out of the table and named in one problem.
    """
    settings = base or Settings()
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return settings
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        settings = dataclasses.replace(settings, problems=[*settings.problems])
        settings.problems.append(f"{pyproject}: cannot read [tool.lsp-verify]: {exc}")
        return settings
    table = data.get("tool", {}).get("lsp-verify", {})
    if not isinstance(table, dict):
        return settings.updated({}, str(pyproject))
    source = f"{pyproject} [tool.lsp-verify]"
    kept, ignored = untrusted_split(table) if not trusted else (table, "")
    settings = settings.updated(kept, source)
    if ignored:
        settings.problems.append(
            f"{source}: ignored because the workspace is not trusted ({ignored}): set these in the editor's "
            "settings, or trust the workspace"
        )
    return settings


def untrusted_split(table: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """``table`` without the fields a source the repository controls may not set in an untrusted workspace
    (:data:`UNTRUSTED_PROJECT_IGNORES`), and those it held, each with its reason (empty: none)."""
    ignored = [key for key in table if _snake(key) in UNTRUSTED_PROJECT_IGNORES]
    kept = {key: value for key, value in table.items() if key not in ignored}
    return kept, "; ".join(f"'{key}' {UNTRUSTED_PROJECT_IGNORES[_snake(key)]}" for key in ignored)


def cache_home(env: Mapping[str, str] = os.environ) -> Path:
    """lsp-verify's directory under ``$XDG_CACHE_HOME`` (else ``~/.cache``): models, shadows, mypy caches and
    Hypothesis' tables each keep a folder of their own here."""
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "lsp-verify"
