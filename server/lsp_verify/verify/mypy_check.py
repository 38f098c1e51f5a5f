"""The mypy stage: the errors a candidate adds to its file, judged against the unmodified file.

mypy runs on the shadow's copy of the edited file with the project's own configuration (the shadow links
the project's mypy.ini / pyproject.toml / setup.cfg, and mypy runs from the shadow root, so it finds them
as it would in the user's tree). Only errors reported *in the edited file* count, and they are compared as
a multiset of (message, error code): line numbers shift whenever a body changes length, messages do not.

Warm start (measured on the 20-test fixture, 2 cores; see bench/verification.py): a fresh ``mypy`` process
with a warm incremental cache takes ~0.20 s per check, ``mypy.api.run`` in a pre-imported process ~0.03 s.
So mypy runs in a fork server (``_worker.py mypy``) that imported mypy once, with an incremental cache
outside the workspace shared by every run and request of one workspace and trust level
(``$XDG_CACHE_HOME/lsp-verify/mypy/<trust>-<tag>``, see :func:`default_cache_dir`);
each check is a forked child, so a plugin's state or a crash cannot leak into the next check. dmypy would
be faster still per check but binds the daemon to one set of file paths and runs workspace plugins in a
long-lived process; at ~30 ms a check, mypy is no longer the bottleneck.

In an untrusted workspace nothing of the repository may run, and mypy's configuration can run plenty: plugins
(imported), ``python_executable`` (executed to find site-packages), ``install_types`` (pip), and report and
cache options write where they say. So there mypy never reads the project's configuration: it runs with
``--config-file`` naming a file *we* write into the private shadow directory (:func:`restricted_config`),
holding only an allowlist of the project's options that change what is reported - strictness flags,
``python_version``, error codes, ``follow_imports``, ``mypy_path`` inside the workspace, and per-module
overrides of those - and the evidence names what was left out. An explicit ``--config-file`` is the only file
mypy then reads (mypy/config_parser.py: no search upward for mypy.ini / .mypy.ini / pyproject.toml /
setup.cfg, no ``~/.config/mypy/config``), so the shadow's links to the project's files are never consulted.
The project's file is found as mypy finds it (:func:`project_config`). A trusted workspace uses the
project's configuration as it is.
"""

from __future__ import annotations

import collections
import configparser
import dataclasses
import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ..cancel import CancelToken
from ..config import cache_home
from .sandbox import WorkerError, WorkerProcess
from .shadow import Shadow, ShadowRoot

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

_LINE = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?:\d+:)? (?P<severity>error|warning|note): (?P<message>.*?)"
    r"(?:  \[(?P<code>[a-z0-9-]+)\])?$"
)

_LINE_REFERENCE = re.compile(r"\bline \d+\b")

# mypy reads its configuration from the first of these that parses: mypy.ini and .mypy.ini even without a
# [mypy] section, the shared files only with one (mypy/config_parser.py, _find_config_file).
_CONFIG_FILES = ("mypy.ini", ".mypy.ini", "pyproject.toml", "setup.cfg")
_SHARED_CONFIG_FILES = ("pyproject.toml", "setup.cfg")

# The options an untrusted project may set, by the kind of value they take. None of them names a file mypy
# writes or a program or module it runs; mypy_path may only name directories inside the workspace.
_BOOLEANS = frozenset(
    {
        "strict",
        "check_untyped_defs",
        "ignore_missing_imports",
        "ignore_errors",
        "follow_untyped_imports",
        "local_partial_types",
        "extra_checks",
        "namespace_packages",
        "explicit_package_bases",
        "no_site_packages",
        "no_silence_site_packages",
    }
)
# Families of check switches: a boolean under these names only changes which errors are reported.
_BOOLEAN_PREFIXES = ("disallow_", "allow_", "warn_", "strict_", "implicit_", "no_implicit_")
_LIST_ITEM = {
    "always_true": re.compile(r"[A-Za-z_][A-Za-z0-9_]*"),
    "always_false": re.compile(r"[A-Za-z_][A-Za-z0-9_]*"),
    "enable_error_code": re.compile(r"[a-z0-9-]+"),
    "disable_error_code": re.compile(r"[a-z0-9-]+"),
    "enable_incomplete_feature": re.compile(r"[A-Za-z0-9_]+"),
    "untyped_calls_exclude": re.compile(r"[A-Za-z_][A-Za-z0-9_.]*"),
}
_WORD = {
    "python_version": re.compile(r"3\.[0-9]+"),
    "platform": re.compile(r"[a-z0-9_]+"),
    "follow_imports": re.compile(r"normal|silent|skip|error"),
}
_MODULE_PATTERN = re.compile(r"[A-Za-z0-9_*]+(\.[A-Za-z0-9_*]+)*")
_TRUE_FALSE = configparser.RawConfigParser.BOOLEAN_STATES


@dataclasses.dataclass(frozen=True)
class MypyError:
    line: int
    message: str
    code: str

    @property
    def key(self) -> tuple[str, str]:
        # "already defined on line 3": a line elsewhere in the file, which moves when a body changes length.
        return (_LINE_REFERENCE.sub("line N", self.message), self.code)

    def __str__(self) -> str:
        code = f"  [{self.code}]" if self.code else ""
        return f"line {self.line + 1}: {self.message}{code}"


@dataclasses.dataclass(frozen=True)
class MypyRun:
    errors: tuple[MypyError, ...]
    """Errors reported in the edited file (0-based lines)."""
    crashed: str = ""
    """Non-empty when mypy itself failed (bad configuration, crash, timeout): the reason."""
    seconds: float = 0.0


def parse_output(output: str, relative: Path, root: Path | None = None) -> tuple[MypyError, ...]:
    """The errors in ``output`` that mypy reported for the file ``relative`` (paths as mypy prints them:
    relative to its working directory ``root``, or absolute where it could not make them so)."""
    wanted = {relative.as_posix()}
    if root is not None:
        wanted |= {(root / relative).as_posix(), (root.resolve() / relative).as_posix()}
    errors = []
    for line in output.splitlines():
        match = _LINE.match(line)
        if match is None or match["severity"] != "error":
            continue
        if Path(match["path"]).as_posix() not in wanted:
            continue
        errors.append(MypyError(int(match["line"]) - 1, match["message"], match["code"] or ""))
    return tuple(errors)


def added_errors(
    baseline: Sequence[MypyError], candidate: Sequence[MypyError], *, same_lines: bool = False
) -> list[MypyError]:
    """Errors of ``candidate`` beyond those of ``baseline``, matched by (message, code) as a multiset; with
    ``same_lines`` (the file is the same in both runs, only what it imports changed) by (line, code): an
    error that was there already may name a changed signature in its message."""

    def key(error: MypyError) -> tuple[object, str]:
        return (error.line, error.code) if same_lines else error.key

    remaining = collections.Counter(key(error) for error in baseline)
    added = []
    for error in candidate:
        if remaining[key(error)] > 0:
            remaining[key(error)] -= 1
        else:
            added.append(error)
    return added


def project_config(root: Path) -> tuple[str, dict[str, dict[str, object]]] | None:
    """The mypy configuration file mypy would use in ``root`` and its sections, found as mypy finds it.

    Sections are ``mypy`` and ``mypy-<module patterns>`` (pyproject.toml's ``[[tool.mypy.overrides]]`` become
    the latter, as mypy does); values are strings (ini) or TOML values. None when there is no such file. A
    file that cannot be parsed is skipped, as mypy skips it.
    """
    for name in _CONFIG_FILES:
        path = root / name
        if not path.is_file():
            continue
        try:
            if name == "pyproject.toml":
                tool = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {})
                table = tool.get("mypy") if isinstance(tool, dict) else None
                if not isinstance(table, dict):
                    continue
                return name, _toml_sections(table)
            parser = configparser.RawConfigParser()
            parser.read(path, encoding="utf-8")
        except (OSError, ValueError, configparser.Error):  # TOMLDecodeError and UnicodeDecodeError included
            continue
        if name in _SHARED_CONFIG_FILES and not parser.has_section("mypy"):
            continue
        sections = parser.sections()
        return name, {s: dict(parser[s]) for s in sections if s == "mypy" or s.startswith("mypy-")}
    return None


def _toml_sections(table: dict[str, object]) -> dict[str, dict[str, object]]:
    sections: dict[str, dict[str, object]] = {"mypy": {k: v for k, v in table.items() if k != "overrides"}}
    overrides = table.get("overrides", [])
    if not isinstance(overrides, list):
        raise ValueError("tool.mypy.overrides must be an array")  # mypy skips the file too
    for override in overrides:
        modules = override.get("module") if isinstance(override, dict) else None
        if isinstance(modules, str):
            modules = [modules]
        if not isinstance(override, dict) or not isinstance(modules, list):
            raise ValueError("a [[tool.mypy.overrides]] entry needs a module")
        values = {k: v for k, v in override.items() if k != "module"}
        for module in modules:
            sections.setdefault(f"mypy-{module}", {}).update(values)
    return sections


@dataclasses.dataclass(frozen=True)
class RestrictedConfig:
    """Our mypy configuration for an untrusted workspace: the harmless part of the project's."""

    text: str
    """The configuration file's text (ini)."""
    source: str | None
    """The project file it was taken from (``pyproject.toml``...), None when the project has none."""
    dropped: tuple[str, ...]
    """The project's options left out (``plugins``, ``[mypy-pkg.*] cache_dir``...)."""

    @property
    def note(self) -> str:
        """For the evidence: that mypy ran with our configuration, and what of the project's it left out."""
        where = f"options from {self.source}" if self.source else "the project has no mypy configuration"
        left_out = f"; left out: {', '.join(self.dropped)}" if self.dropped else ""
        return f"untrusted workspace: mypy (restricted config: {where}{left_out})"

    def write(self, directory: Path) -> Path:
        """Write the file into ``directory`` (the private shadow directory); named by its content, so a
        request's baseline and candidates keep reading the same file even if the project's changes."""
        digest = hashlib.sha256(self.text.encode()).hexdigest()[:16]
        # Not named mypy.ini: mypy must never find it by searching upward from a shadow.
        path = directory / f"restricted-mypy-{digest}.ini"
        if not path.is_file():
            partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            partial.write_text(self.text, encoding="utf-8")
            os.replace(partial, path)
        return path


def restricted_config(root: Path) -> RestrictedConfig:
    """The allowlisted options of the project's mypy configuration, as a configuration file of ours."""
    found = project_config(root)
    lines: list[str] = []
    dropped: list[str] = []
    source, sections = found if found is not None else (None, {})
    for section, values in sections.items():
        name = section if section == "mypy" else _module_section(section)
        where = "" if section == "mypy" else f"[{_printable(section)}] "
        kept: list[str] = []
        for key, value in values.items():
            line = _allowed(root, key, value) if name is not None else None
            if line is None:
                dropped.append(where + _printable(key))
            else:
                kept.append(f"{key} = {line}")
        if name is not None and (kept or name == "mypy"):
            lines += [f"[{name}]", *kept, ""]
    if "[mypy]" not in lines:
        lines = ["[mypy]", "", *lines]
    return RestrictedConfig("\n".join(lines), source, tuple(dict.fromkeys(dropped)))


def _allowed(root: Path, key: str, value: object) -> str | None:
    """``value`` as ini text when ``key`` is an allowed option and ``value`` a valid value for it."""
    if key in _LIST_ITEM:
        items = _items(value, ",")
        pattern = _LIST_ITEM[key]
        if items is None or not all(pattern.fullmatch(item) for item in items):
            return None
        return ", ".join(items)
    if key in _WORD:
        # TOML may spell python_version as a float; mypy reads str() of it too.
        text = str(value) if isinstance(value, (str, float)) else ""
        return text if _WORD[key].fullmatch(text) else None
    if key == "mypy_path":
        return _mypy_path(root, value)
    if _is_boolean(key):
        flag = value if isinstance(value, bool) else _TRUE_FALSE.get(str(value).strip().lower())
        return None if flag is None else str(flag)
    return None


def _is_boolean(key: str) -> bool:
    if key.startswith("no_") and _is_boolean(key[3:]):
        return True
    return key in _BOOLEANS or (
        key.startswith(_BOOLEAN_PREFIXES) and re.fullmatch(r"[a-z_]+", key) is not None
    )


def _items(value: object, separators: str) -> list[str] | None:
    if isinstance(value, str):
        return [item.strip() for item in re.split(f"[{separators}]", value) if item.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    return None


def _mypy_path(root: Path, value: object) -> str | None:
    """mypy_path with every entry inside the workspace, relative (mypy resolves it against the shadow it
    runs in); None when an entry lies outside or depends on the environment."""
    entries = _items(value, ",:")
    if entries is None:
        return None
    kept = []
    for entry in entries:
        entry = re.sub(r"\$(MYPY_CONFIG_FILE_DIR|\{MYPY_CONFIG_FILE_DIR\})", ".", entry)
        if "$" in entry or entry.startswith("~"):
            return None
        resolved = (root / entry).resolve()
        if resolved != root and root not in resolved.parents:
            return None
        relative = resolved.relative_to(root).as_posix()
        if not re.fullmatch(r"[\w.+@/-]+", relative):
            return None  # a newline or '=' would write options of its own into our file
        kept.append(relative)
    return ", ".join(kept)


def _module_section(section: str) -> str | None:
    """``mypy-<patterns>`` with every pattern a module name (``*`` allowed), or None."""
    patterns = [p.strip() for p in section[len("mypy-") :].split(",")]
    if not patterns or not all(_MODULE_PATTERN.fullmatch(p) for p in patterns):
        return None
    return "mypy-" + ",".join(patterns)


def _printable(name: str) -> str:
    return name if re.fullmatch(r"[\w.*,/\- ]{1,80}", name) else repr(name[:40])


def config_digest(root: Path) -> str:
    """A hash of the project's mypy configuration files (part of every cached baseline's key)."""
    digest = hashlib.sha256()
    for name in _CONFIG_FILES:
        path = root / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def default_cache_dir(root: Path, trusted: bool, python: str | None = None) -> Path:
    """mypy's incremental cache for one workspace at one trust level, outside the workspace.

    mypy trusts what it finds in its cache, and a trusted workspace's mypy plugins (workspace code) run
    with write access to it: a cache shared with another project, or between the trusted and the untrusted
    view of this one, would let one run's code decide what every later run believes. So the key is the
    workspace's real path, the trust level, the interpreter and the mypy configuration. The price: a new
    clone or worktree starts cold once (calc fixture, load ~8 on 2 cores: 4.0 s cold, 0.85 s warm, for a
    fresh mypy process).
    """
    trust = "trusted" if trusted else "untrusted"
    key = f"{sys.executable}\0{root.resolve()}\0{trust}\0{config_digest(root)}"
    if python is not None:  # the project's interpreter decides which installed packages mypy sees
        key += f"\0{python}"
    tag = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = cache_home() / "mypy" / f"{trust}-{tag}"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


class MypyChecker:
    """Runs mypy on shadows through one pre-imported fork server; one check at a time."""

    def __init__(
        self,
        worker: WorkerProcess,
        shadows: ShadowRoot,
        cache_dir: Path,
        timeout_s: float,
        python_executable: str | None = None,
        restricted: Callable[[], Path] | None = None,
    ) -> None:
        self._worker = worker
        self._shadows = shadows
        self._cache_dir = cache_dir
        self._timeout_s = timeout_s
        self._python_executable = python_executable
        """The project's interpreter, when it is not the one mypy runs in: mypy resolves third-party imports
        from its installed packages (``--python-executable``)."""
        self._restricted = restricted
        """In an untrusted workspace: writes our restricted configuration (:func:`restricted_config`) and
        returns its path, for every run not given a configuration file - so that no caller can run mypy with
        the project's own configuration (its plugins are code) by leaving ``config_file`` out."""

    def check(self, shadow: Shadow, cancel: CancelToken, config_file: Path | None = None) -> MypyRun:
        """mypy on ``shadow``: with ``config_file`` only (see :func:`restricted_config`), else with the
        project's configuration, found from the shadow's root as mypy would find it in the user's tree - in a
        trusted workspace; in an untrusted one, with ours."""
        return self.check_files(shadow, (shadow.relative,), cancel, config_file)[shadow.relative]

    def check_files(
        self,
        shadow: Shadow,
        relatives: Sequence[Path],
        cancel: CancelToken,
        config_file: Path | None = None,
    ) -> dict[Path, MypyRun]:
        """One mypy run over several files of ``shadow`` (``lsp-verify check`` of many files): each file's
        errors, as :meth:`check` of that file reports them. A crash is every file's."""
        if config_file is None and self._restricted is not None:
            config_file = self._restricted()
        result_file = self._shadows.scratch("mypy-result")
        log_file = self._shadows.scratch("mypy-log")
        args = [
            "--cache-dir",
            str(self._cache_dir),
            "--no-error-summary",
            "--show-error-codes",
            "--hide-error-context",
            "--no-pretty",
            "--no-color-output",
            "--show-traceback",
            *(["--python-executable", self._python_executable] if self._python_executable else []),
            *(["--config-file", str(config_file)] if config_file is not None else []),
            # Absolute: mypy trusts a cached module whose path, size and mtime (in whole seconds) match, and
            # a relative path is the same in every shadow - a candidate of the baseline's size written in
            # the same second would get the baseline's errors. A shadow's own path makes mypy compare the
            # file's hash instead.
            *(str(shadow.root / relative) for relative in relatives),
        ]
        request = {
            "op": "mypy",
            "cwd": str(shadow.root),
            "args": args,
            "result_file": str(result_file),
            "log_file": str(log_file),
            "timeout": self._timeout_s,
        }

        def every(run: MypyRun) -> dict[Path, MypyRun]:
            return dict.fromkeys(relatives, run)

        try:
            answer = self._worker.request(request, cancel)
        except WorkerError as exc:
            return every(MypyRun((), crashed=f"mypy could not run: {exc}"))
        seconds = float(answer.get("seconds", 0.0))
        if answer.get("status") == "timeout":
            return every(MypyRun((), crashed=f"mypy timed out after {self._timeout_s:g} s", seconds=seconds))
        try:
            data = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log = _read_tail(log_file)
            return every(MypyRun((), crashed=f"mypy crashed: {log or 'no output'}", seconds=seconds))
        finally:
            result_file.unlink(missing_ok=True)
            log_file.unlink(missing_ok=True)
        stdout, stderr, status = str(data["stdout"]), str(data["stderr"]), int(data["status"])
        if status >= 2:
            # 2 is mypy's "usage or configuration error / crash"; 1 means "found errors".
            reason = (stderr or stdout).strip().splitlines()
            return every(MypyRun((), crashed="mypy failed: " + " | ".join(reason[-3:]), seconds=seconds))
        return {
            relative: MypyRun(parse_output(stdout, relative, shadow.root), seconds=seconds)
            for relative in relatives
        }


def _read_tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()[-500:]
    except OSError:
        return ""
