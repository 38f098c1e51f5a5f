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

Plugins named in the project's mypy configuration are workspace code: in an untrusted workspace the stage is
skipped with a note when the configuration names any.
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
from collections.abc import Sequence
from pathlib import Path

from ..cancel import CancelToken
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

# mypy reads its configuration from the first of these that has a mypy section.
_CONFIG_FILES = ("mypy.ini", ".mypy.ini", "pyproject.toml", "setup.cfg")


@dataclasses.dataclass(frozen=True)
class MypyError:
    line: int
    message: str
    code: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.message, self.code)

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


def parse_output(output: str, relative: Path) -> tuple[MypyError, ...]:
    """The errors in ``output`` that mypy reported for the file ``relative`` (paths as mypy prints them)."""
    wanted = relative.as_posix()
    errors = []
    for line in output.splitlines():
        match = _LINE.match(line)
        if match is None or match["severity"] != "error":
            continue
        if Path(match["path"]).as_posix() != wanted:
            continue
        errors.append(MypyError(int(match["line"]) - 1, match["message"], match["code"] or ""))
    return tuple(errors)


def added_errors(baseline: Sequence[MypyError], candidate: Sequence[MypyError]) -> list[MypyError]:
    """Errors of ``candidate`` beyond those of ``baseline``, matched by (message, code) as a multiset."""
    remaining = collections.Counter(error.key for error in baseline)
    added = []
    for error in candidate:
        if remaining[error.key] > 0:
            remaining[error.key] -= 1
        else:
            added.append(error)
    return added


def config_plugins(root: Path) -> list[str]:
    """The mypy plugins the project's configuration loads (workspace code when they live in the tree)."""
    for name in _CONFIG_FILES:
        path = root / name
        if not path.is_file():
            continue
        try:
            if name == "pyproject.toml":
                table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("mypy")
                if table is None:
                    continue
                plugins = table.get("plugins", [])
                return [plugins] if isinstance(plugins, str) else [str(p) for p in plugins]
            parser = configparser.ConfigParser()
            parser.read(path, encoding="utf-8")
            if not parser.has_section("mypy"):
                continue
            raw = parser.get("mypy", "plugins", fallback="")
            return [p.strip() for p in raw.replace("\n", ",").split(",") if p.strip()]
        except (OSError, ValueError, configparser.Error, tomllib.TOMLDecodeError):
            return []
    return []


def config_digest(root: Path) -> str:
    """A hash of the project's mypy configuration files (part of every cached baseline's key)."""
    digest = hashlib.sha256()
    for name in _CONFIG_FILES:
        path = root / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def default_cache_dir(root: Path, trusted: bool) -> Path:
    """mypy's incremental cache for one workspace at one trust level, outside the workspace.

    mypy trusts what it finds in its cache, and a trusted workspace's mypy plugins (workspace code) run
    with write access to it: a cache shared with another project, or between the trusted and the untrusted
    view of this one, would let one run's code decide what every later run believes. So the key is the
    workspace's real path, the trust level, the interpreter and the mypy configuration. The price: a new
    clone or worktree starts cold once (calc fixture, load ~8 on 2 cores: 4.0 s cold, 0.85 s warm, for a
    fresh mypy process).
    """
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    trust = "trusted" if trusted else "untrusted"
    key = f"{sys.executable}\0{root.resolve()}\0{trust}\0{config_digest(root)}"
    tag = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = base / "lsp-verify" / "mypy" / f"{trust}-{tag}"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


class MypyChecker:
    """Runs mypy on shadows through one pre-imported fork server; one check at a time."""

    def __init__(self, worker: WorkerProcess, shadows: ShadowRoot, cache_dir: Path, timeout_s: float) -> None:
        self._worker = worker
        self._shadows = shadows
        self._cache_dir = cache_dir
        self._timeout_s = timeout_s

    def check(self, shadow: Shadow, cancel: CancelToken) -> MypyRun:
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
            shadow.relative.as_posix(),
        ]
        request = {
            "op": "mypy",
            "cwd": str(shadow.root),
            "args": args,
            "result_file": str(result_file),
            "log_file": str(log_file),
            "timeout": self._timeout_s,
        }
        try:
            answer = self._worker.request(request, cancel)
        except WorkerError as exc:
            return MypyRun((), crashed=f"mypy could not run: {exc}")
        seconds = float(answer.get("seconds", 0.0))
        if answer.get("status") == "timeout":
            return MypyRun((), crashed=f"mypy timed out after {self._timeout_s:g} s", seconds=seconds)
        try:
            data = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log = _read_tail(log_file)
            return MypyRun((), crashed=f"mypy crashed: {log or 'no output'}", seconds=seconds)
        finally:
            result_file.unlink(missing_ok=True)
            log_file.unlink(missing_ok=True)
        stdout, stderr, status = str(data["stdout"]), str(data["stderr"]), int(data["status"])
        if status >= 2:
            # 2 is mypy's "usage or configuration error / crash"; 1 means "found errors".
            reason = (stderr or stdout).strip().splitlines()
            return MypyRun((), crashed="mypy failed: " + " | ".join(reason[-3:]), seconds=seconds)
        return MypyRun(parse_output(stdout, shadow.relative), seconds=seconds)


def _read_tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()[-500:]
    except OSError:
        return ""
