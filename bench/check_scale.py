"""``lsp-verify check --all`` at scale: a synthetic library against one plain ``python -m pytest`` run.

Generates (in a temporary directory) a git repository of ``--functions`` small functions, ten to a module,
each module with a conventional test module testing each of its functions; then times, end to end:

- ``python -m pytest`` of the whole suite (what the project's own test run costs),
- ``lsp-verify check --all`` with this checkout's package,
- the same with ``--before SERVER_DIR`` (another checkout's ``server/``, e.g. extracted with
  ``git archive main server | tar -x -C /tmp/before``) when given.

    python bench/check_scale.py [--functions 300] [--before /tmp/before/server] [--keep DIR]

Prints a Markdown table of seconds and the ratio to plain pytest, and checks that every function passed.
This is a benchmark, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = Path(__file__).resolve().parents[1] / "server"
PER_MODULE = 10


def write_library(root: Path, functions: int) -> None:
    """``lib/mod_K.py`` with up to ten functions ``f_K_I`` each and ``tests/test_mod_K.py``, committed."""
    (root / "lib").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "lib"\nversion = "0"\n', encoding="utf-8")
    (root / "lib" / "__init__.py").write_text("", encoding="utf-8")
    for module in range((functions + PER_MODULE - 1) // PER_MODULE):
        names = [f"f_{module}_{i}" for i in range(min(PER_MODULE, functions - module * PER_MODULE))]
        source = [f'"""Module {module}."""\n']
        tests = [f"from lib.mod_{module} import {', '.join(names)}\n"]
        for i, name in enumerate(names):
            source.append(f"\n\ndef {name}(x: int) -> int:\n    return x * {i + 2} + {module}\n")
            tests.append(f"\n\ndef test_{name}() -> None:\n    assert {name}(3) == {3 * (i + 2) + module}\n")
        (root / "lib" / f"mod_{module}.py").write_text("".join(source), encoding="utf-8")
        (root / "tests" / f"test_mod_{module}.py").write_text("".join(tests), encoding="utf-8")
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "library"], cwd=root, check=True)


def timed(
    command: list[str], cwd: Path, env: dict[str, str]
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    return time.monotonic() - started, proc


def check_all(repo: Path, server: Path, cache: Path) -> tuple[float, str]:
    """Seconds for ``lsp-verify check --all`` run from ``server``, and its summary."""
    env = {**os.environ, "PYTHONPATH": str(server), "XDG_CACHE_HOME": str(cache)}
    seconds, proc = timed(
        [sys.executable, "-m", "lsp_verify", "check", "--all", "--format", "json"], repo, env
    )
    try:
        summary = json.loads(proc.stdout)["summary"]
    except (ValueError, KeyError):
        raise SystemExit(
            f"check --all failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
        ) from None
    if summary["passed"] != summary["functions"]:
        raise SystemExit(f"not every function passed: {summary}")
    return seconds, f"{summary['passed']}/{summary['functions']} passed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=300)
    parser.add_argument("--before", type=Path, help="another checkout's server/ directory to time too")
    parser.add_argument("--keep", type=Path, help="build the library here and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lsp-verify-scale-") as scratch:
        repo = (args.keep or Path(scratch) / "repo").resolve()
        write_library(repo, args.functions)
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        plain, proc = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], repo, env)
        if proc.returncode != 0:
            raise SystemExit(f"the library's own tests fail: {proc.stdout[-500:]}")
        rows = [("`python -m pytest` (whole suite)", plain, f"{args.functions} tests passed")]
        # Each command gets a fresh mypy cache: a cold start, as on a CI runner.
        rows.append(
            ("`lsp-verify check --all` (this checkout)", *check_all(repo, SERVER, Path(scratch) / "c1"))
        )
        if args.before is not None:
            label = f"`lsp-verify check --all` ({args.before})"
            rows.append((label, *check_all(repo, args.before.resolve(), Path(scratch) / "c2")))

    print(f"{args.functions} functions in {(args.functions + PER_MODULE - 1) // PER_MODULE} modules, "
          f"one test each ({os.cpu_count()} CPUs)\n")  # fmt: skip
    print("| run | seconds | × plain pytest | result |")
    print("| --- | ---: | ---: | --- |")
    for label, seconds, result in rows:
        print(f"| {label} | {seconds:.1f} | {seconds / plain:.1f} | {result} |")


if __name__ == "__main__":
    main()
