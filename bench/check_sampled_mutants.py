"""Does `lsp-verify check` block what a library's own suite catches, on mutants drawn at random?

Where bench/check_mutations.py stages hand-picked changes, this draws them: functions of the library (those
`check --all` reported, test files aside) in a seeded random order, each mutated once by
bench/realworld.py's `mutations` (an operator, a comparison's boundary, a constant), until `--killed` of
them are caught by the library's own suite or three times as many were tried. Per mutant: the suite runs
as its developer would (`.venv/bin/python -m pytest`, up to `--suite-timeout` s and 4 GiB), the change is
staged and checked, then undone with `git reset --hard`. A mutant is *caught by the suite* when the suite
fails and its summary counts more failures and errors than at HEAD (a suite that fails at HEAD already -
missing test data - still tells), or it runs past its time limit (a loop without end).

    python bench/check_sampled_mutants.py --libs /tmp/rw9 --killed 6 addict-2.4.0 munch-4.0.0 ...

Each library is a git repository of an unmodified sdist with its own .venv, and `<lib>.base.json` beside it
(`lsp-verify check --all --format json` on the unmodified tree) or, without one, its functions and methods
read from the syntax trees of its tracked modules. Prints a Markdown table and one line per
mutant: OK (blocked and caught, or passed and not caught), FALSE PASS, FALSE ALARM, ERROR (check exit 2).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realworld

REPO = Path(__file__).resolve().parents[1]
_COUNTS = re.compile(r"(\d+) (failed|error|errors)\b")


def _failures(summary: str) -> int:
    return sum(int(n) for n, _ in _COUNTS.findall(summary))


def _memory_limit() -> None:
    """4 GiB of address space for the library's own suite: a mutant that allocates without bound fails
    with MemoryError (caught) instead of taking the machine's memory."""
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


UNITTEST_FILES = ("-o", "python_files=test*.py")
"""Where plain pytest collects nothing (exit 5: decorator's suite is ``tests/test.py``, unittest classes
that pytest's default ``test_*.py`` never picks up), the suite is run as lsp-verify collects it: with the
files unittest's default pattern names too."""


def suite(root: Path, timeout: float, *extra: str) -> tuple[int, int, float]:
    """(exit code or -9 past the limit, failures and errors in pytest's summary line, seconds)."""
    start = time.monotonic()
    try:
        done = subprocess.run(
            [".venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra],
            cwd=root, capture_output=True, text=True, timeout=timeout, preexec_fn=_memory_limit,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return -9, 0, time.monotonic() - start
    lines = done.stdout.strip().splitlines()
    return done.returncode, _failures(lines[-1] if lines else ""), time.monotonic() - start


def check(root: Path, server: Path) -> tuple[int, str, float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "lsp_verify", "check", "--format", "json"],
        cwd=root, capture_output=True, text=True, timeout=3600,
        env={**os.environ, "PYTHONPATH": str(server)},
    )  # fmt: skip
    try:
        first = next(f for f in json.loads(done.stdout)["functions"] if f["status"] != "pass")
        said = f"{first['status'].upper()} {first['qualname']}: {first['message']}"
    except (ValueError, KeyError, StopIteration):
        said = "PASS" if done.returncode == 0 else done.stderr.strip()[-200:]
    return done.returncode, said, time.monotonic() - start


def library(
    root: Path, killed_wanted: int, seed: int, server: Path, timeout: float
) -> list[dict[str, object]]:
    base_rc, base_failures, base_s = suite(root, timeout)
    extra: tuple[str, ...] = ()
    if base_rc == 5:
        extra = UNITTEST_FILES
        base_rc, base_failures, base_s = suite(root, timeout, *extra)
    base_json = root.parent / f"{root.name}.base.json"
    if base_json.exists():
        functions = json.loads(base_json.read_text(encoding="utf-8"))["functions"]
    else:
        functions = defined_functions(root)
    functions = [f for f in functions if not any(part.startswith("test") for part in Path(f["file"]).parts)]
    random.Random(seed).shuffle(functions)
    records: list[dict[str, object]] = []
    killed = 0
    for f in functions:
        if killed >= killed_wanted or len(records) >= 3 * killed_wanted:
            break
        path = root / f["file"]
        text = path.read_text(encoding="utf-8")
        node = next(
            (
                n
                for n in ast.walk(ast.parse(text))
                if isinstance(n, ast.FunctionDef) and n.lineno == f["line"]
            ),
            None,
        )
        if node is None:
            continue
        function = realworld.Function(root.name, f["file"], f["qualname"], f["line"], node.body[0].lineno,
                                      node.end_lineno or node.lineno, ())  # fmt: skip
        mutants = realworld.mutations(text, function)
        if not mutants:
            continue
        mutant = mutants[0]
        path.write_text(mutant.text, encoding="utf-8")
        try:
            rc, failures, suite_s = suite(root, timeout, *extra)
            caught = rc == -9 or (rc != 0 and (base_rc == 0 or failures > base_failures))
            subprocess.run(["git", "add", f["file"]], cwd=root, check=True)
            check_rc, said, check_s = check(root, server)
        finally:
            subprocess.run(["git", "reset", "-q", "--hard"], cwd=root, check=True)
        killed += caught
        if check_rc == 2:
            verdict = "ERROR"
        elif caught:
            verdict = "OK" if check_rc == 1 else "FALSE PASS"
        else:
            verdict = "OK" if check_rc == 0 else "FALSE ALARM"
        record = {
            "library": root.name, "function": f["qualname"], "mutation": mutant.description,
            "caught_by_suite": caught, "suite_exit": rc, "check_exit": check_rc, "verdict": verdict,
            "check_said": said[:300], "suite_s": round(suite_s, 1), "check_s": round(check_s, 1),
            "suite_at_head_s": round(base_s, 1), "suite_args": " ".join(extra),
        }  # fmt: skip
        print(json.dumps(record), file=sys.stderr, flush=True)
        records.append(record)
    return records


def defined_functions(root: Path) -> list[dict[str, object]]:
    """The functions and methods (nested ones aside) of the library's tracked modules, in file and line
    order: what ``check --all`` reports, read from the syntax trees instead (no ``<lib>.base.json``)."""
    listed = ["git", "ls-files", "*.py"]
    tracked = subprocess.run(listed, cwd=root, capture_output=True, text=True, check=True)
    found: list[dict[str, object]] = []

    def walk(node: ast.AST, relpath: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef):
                found.append({"file": relpath, "qualname": prefix + child.name, "line": child.lineno})
            elif isinstance(child, ast.ClassDef):
                walk(child, relpath, f"{prefix}{child.name}.")

    for relpath in sorted(tracked.stdout.split()):
        try:
            walk(ast.parse((root / relpath).read_text(encoding="utf-8")), relpath, "")
        except (SyntaxError, UnicodeDecodeError):
            continue
    return found


def markdown(records: list[dict[str, object]]) -> str:
    out = [
        "| library | function | mutation | suite catches it | check | verdict | check (s) | suite (s) |",
        "|---|---|---|---|---:|---|---:|---:|",
    ]
    for r in records:
        caught = "yes" if r["caught_by_suite"] else "no"
        out.append(
            f"| {r['library']} | `{r['function']}` | {r['mutation']} | {caught}"
            f" | {r['check_exit']} | {r['verdict']} | {r['check_s']} | {r['suite_s']} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--libs", type=Path, required=True, help="the folder of the libraries' checkouts")
    parser.add_argument("--killed", type=int, default=6, help="mutants the suite catches, per library")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--suite-timeout", type=float, default=400.0)
    parser.add_argument("--server", type=Path, default=REPO / "server", help="the lsp_verify to check with")
    parser.add_argument("library", nargs="+")
    args = parser.parse_args()
    records: list[dict[str, object]] = []
    for name in args.library:
        records += library(args.libs / name, args.killed, args.seed, args.server, args.suite_timeout)
    print(markdown(records))
    counts = {
        v: sum(r["verdict"] == v for r in records) for v in ("OK", "FALSE PASS", "FALSE ALARM", "ERROR")
    }
    print(
        f"\n{len(records)} mutants, {sum(bool(r['caught_by_suite']) for r in records)} caught by the suite: "
        f"{counts}"
    )
    return 1 if counts["FALSE PASS"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
