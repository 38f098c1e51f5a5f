"""Which Python runs the project's tests and probes.

The project's tests import the project and its dependencies, which live in the project's environment, not
necessarily in the one lsp-verify was installed into (pipx, a shared tools venv, the editor's own). The
``python`` setting names that interpreter; left unset, a trusted workspace's own ``.venv`` or ``venv`` is
used when its Python has pytest, else lsp-verify's own interpreter (as before: the project installed beside
lsp-verify). mypy always runs in lsp-verify's interpreter (the project need not have it) and finds the
project's installed packages through ``--python-executable``.

Finding out about an interpreter runs it: only in a trusted workspace (where its tests run anyway) may
anything but lsp-verify's own be used, and the repository's ``[tool.lsp-verify]`` cannot set ``python`` in
an untrusted one (``config.UNTRUSTED_PROJECT_IGNORES``). It is asked inside the sandbox, and only where the
sandbox confines it from outside: under bubblewrap, or with the sandbox turned off. Without bubblewrap the
sandbox confines writes from inside lsp-verify's own Python (Landlock, applied by the worker script), which
another interpreter - a binary or a ``.pth`` file in the workspace's ``.venv`` - would run code before.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sandbox import Isolation

_QUERY = """\
import json, os, sys
try:
    import pytest
    version = pytest.__version__
except Exception:
    version = None
paths = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *sys.path]
paths.append(os.path.dirname(os.path.realpath(sys.executable)))
print(json.dumps({"executable": sys.executable, "version": list(sys.version_info[:3]), "pytest": version,
                  "paths": paths}))
"""
_VENVS = (".venv", "venv")
_MINIMUM = (3, 8)
"""The oldest Python the worker script runs on."""


class InterpreterError(Exception):
    """The configured ``python`` cannot run the project's tests; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class ProjectPython:
    """An interpreter that runs workspace code, and what running it needs to read."""

    executable: str
    readable: tuple[Path, ...]
    """Its prefixes (a virtualenv and the Python it was made from), its executable's directory and its
    ``sys.path``: mounted back read-only under bubblewrap."""
    source: str
    """Where it came from, for the user: "the python setting", "the workspace's .venv", "lsp-verify's own"."""
    note: str = ""
    """Why a workspace environment that was found is not used (empty: nothing to say)."""

    @property
    def own(self) -> bool:
        return self.executable == sys.executable

    def describe(self) -> str:
        return f"{self.executable} ({self.source})"


def own_python(note: str = "") -> ProjectPython:
    """The interpreter lsp-verify runs in."""
    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *sys.path}
    paths.add(os.path.dirname(os.path.realpath(sys.executable)))
    readable = tuple(Path(p) for p in sorted(paths) if p and os.path.isabs(p))
    return ProjectPython(sys.executable, readable, "lsp-verify's own", note)


def project_python(
    root: Path, setting: str | None, trusted: bool, isolation: Isolation, up_to: Path | None = None
) -> ProjectPython:
    """The interpreter for ``root``'s tests: ``setting`` (a path, relative to ``root`` or absolute) when
    given, else the nearest ``.venv``/``venv`` Python in ``root`` or a directory above it up to ``up_to`` (a
    uv workspace keeps one environment at its top for all its members; None: ``root`` alone) when it has
    pytest, else the active virtualenv's (``$VIRTUAL_ENV``) when it has pytest, else lsp-verify's own. An
    untrusted workspace always gets lsp-verify's own (its tests do not run), and so does an ``isolation``
    that confines writes only from inside lsp-verify's own Python. Raises :class:`InterpreterError` when
    ``setting`` names an interpreter that cannot run the tests, or cannot be confined."""
    if not trusted:
        return own_python()
    confined = isolation in ("bwrap", "off")
    if setting:
        path = Path(os.path.expanduser(setting))
        path = path if path.is_absolute() else root / path
        if not confined:
            raise InterpreterError(
                f"the python setting ({setting}) needs bubblewrap: without it the sandbox confines writes "
                "from inside lsp-verify's own Python, which another interpreter would bypass. Install "
                "bubblewrap, "
                'or set sandbox = "none" to run the tests unconfined'
            )
        found = _query(path, root, isolation)
        if isinstance(found, str):
            raise InterpreterError(f"the python setting ({setting}): {found}")
        if found.get("pytest") is None:
            raise InterpreterError(
                f"the python setting ({setting}): pytest is not installed there; install it "
                f"(`{path} -m pip install pytest`) or unset python to run the tests with {sys.executable}"
            )
        return _described(found, "the python setting")
    for where, name in _environments(root, up_to):
        path = where / name / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        if not path.exists():
            continue
        name = name if where == root else str(where / name)
        if not confined:
            return own_python(
                f"the workspace's {name} is not used without bubblewrap (nothing would confine it): "
                f"tests run with {sys.executable}"
            )
        found = _query(path, root, isolation)
        if isinstance(found, str):
            return own_python(f"the workspace's {name} cannot run ({found}): tests run with {sys.executable}")
        if found.get("pytest") is None:
            return own_python(f"the workspace's {name} has no pytest: tests run with {sys.executable}")
        return _described(found, f"the workspace's {name}")
    active = _active_environment()
    if active is None:
        return own_python()
    if not confined:
        return own_python(
            f"the active virtualenv ({active.parent.parent}) is not used without bubblewrap (nothing would "
            f"confine it): tests run with {sys.executable}"
        )
    found = _query(active, root, isolation)
    if isinstance(found, str) or found.get("pytest") is None:
        why = found if isinstance(found, str) else "it has no pytest"
        return own_python(
            f"the active virtualenv cannot run the tests ({why}): tests run with {sys.executable}"
        )
    return _described(found, f"the active virtualenv, {active.parent.parent}")


def _active_environment() -> Path | None:
    """The Python of the virtualenv activated where lsp-verify was started (``$VIRTUAL_ENV``: a Poetry or
    Hatch shell, whose environments live outside the project), unless it is lsp-verify's own. In that shell
    ``python -m pytest`` runs with it. It is the user's choice, never the repository's."""
    env = os.environ.get("VIRTUAL_ENV", "")
    if not env or not os.path.isabs(env) or os.path.realpath(env) == os.path.realpath(sys.prefix):
        return None
    python = Path(env) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    return python if python.exists() else None


def _environments(root: Path, up_to: Path | None) -> list[tuple[Path, str]]:
    """Where a project's own environment may be, nearest first."""
    bound = up_to.resolve() if up_to is not None else None
    where = [root]
    if bound is not None and root.resolve().is_relative_to(bound):
        for parent in root.resolve().parents:
            if not parent.is_relative_to(bound):
                break
            where.append(parent)
    return [(directory, name) for directory in where for name in _VENVS]


def _described(found: dict[str, object], source: str) -> ProjectPython:
    raw = found.get("paths")
    paths = {str(p) for p in raw if isinstance(p, str)} if isinstance(raw, list) else set()
    readable = tuple(Path(p) for p in sorted(paths) if p and os.path.isabs(p))
    return ProjectPython(str(found["executable"]), readable, source)


def _query(path: Path, root: Path, isolation: Isolation) -> dict[str, object] | str:
    """What ``path`` says about itself, asked inside the sandbox (nothing writable), or why it could not
    say (one line)."""
    from .sandbox import Limits, run_process  # sandbox.py imports this module

    if not path.is_file():
        return f"{path} does not exist"
    if not os.access(path, os.X_OK):
        return f"{path} is not executable"
    try:
        ran = run_process(
            [str(path), "-I", "-c", _QUERY],
            cwd=root,
            timeout_s=30,
            limits=Limits(memory_mb=1024, cpu_s=30),
            isolation=isolation,
            readable=(root, *_prefixes(path)),
        )
    except OSError as exc:
        return f"{path} cannot run: {exc}"
    try:
        found = json.loads(ran.output.strip().splitlines()[-1]) if ran.returncode == 0 else None
    except (json.JSONDecodeError, IndexError):
        found = None
    if not isinstance(found, dict) or not isinstance(found.get("executable"), str):
        last = (
            "timed out"
            if ran.timed_out
            else (ran.output.strip().splitlines() or [f"exit {ran.returncode}"])[-1]
        )
        return f"{path} is not a working Python ({last})"
    version = found.get("version")
    if isinstance(version, list) and tuple(version[:2]) < _MINIMUM:
        return f"{path} is Python {'.'.join(map(str, version))}; the test runner needs 3.8 or later"
    return found


def _prefixes(path: Path) -> list[Path]:
    """Where running ``path`` reads from before it can say so itself: its environment (``bin/..``), where
    the executable really lives, the installation a virtual environment was made from (``pyvenv.cfg``'s
    ``home``) and the directories its site-packages' ``.pth`` files add (an editable install elsewhere).
    Read as text: nothing of the environment runs here."""
    env = path.parent.parent
    found = [env, Path(os.path.realpath(path)).parent.parent]
    lines = [(env, line) for line in _lines(env / "pyvenv.cfg")]
    for pth in [*env.glob("lib/python*/site-packages/*.pth"), *env.glob("Lib/site-packages/*.pth")][:100]:
        lines += [(pth.parent, f"pth = {line}") for line in _lines(pth)]
    for base, line in lines:
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "home" and os.path.isabs(value):
            found.append(Path(value).parent)
        elif key == "pth" and value and not value.startswith(("#", "import ", "import\t")):
            found.append(base / value)  # an absolute value replaces base
    return found


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()[:1000]
    except (OSError, UnicodeDecodeError):
        return []
