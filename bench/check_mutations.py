"""Does `lsp-verify check` block a staged breaking change in a real library, now and at an earlier revision?

Each library is a git repository of an unmodified source tree with its own .venv (pytest and what its tests
import; see bench/results/realworld-unmodified-2026-12-06.md). Per case: one exact replacement in one file
(a change its own suite catches, or - the control - one it does not), staged, checked, then undone with
`git reset --hard`. Prints a Markdown table: the exit code (1: blocked) and the first FAIL line.

    python bench/check_mutations.py --libs /tmp/libs7 [--before /path/to/older/checkout]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# library directory, file, exact text (found once), replacement, what it breaks
CASES: list[tuple[str, str, str, str, str]] = [
    (
        "asttokens-3.0.2", "asttokens/line_numbers.py",
        "    return (line_index + 1, offset - self._line_offsets[line_index])",
        "    return (line_index, offset - self._line_offsets[line_index])",
        "LineNumbers.offset_to_line off by one line",
    ),
    (
        "tinydb-4.9.0", "tinydb/table.py",
        "        return len(self.search(cond))", "        return len(self.search(cond)) or 1",
        "Table.count never 0",
    ),
    (
        "pathspec-1.1.1", "pathspec/util.py",
        "\t\tnorm_file = norm_file[2:]", "\t\tnorm_file = norm_file[1:]",
        "normalize_file strips one character of './'",
    ),
    (
        "iso8601-2.1.0", "iso8601/iso8601.py",
        "        minutes = -minutes", "        minutes = minutes",
        "parse_timezone keeps a negative offset's minutes positive",
    ),
    (
        "arrow-1.4.0", "arrow/arrow.py",
        "        return self.span(frame, **kwargs)[0]", "        return self.span(frame, **kwargs)[1]",
        "Arrow.floor returns the span's end",
    ),
    (
        "pyrsistent-0.20.0", "pyrsistent/_helpers.py",
        "        return tuple(map(curried_freeze, o))", "        return tuple(o)",
        "freeze leaves a tuple's items unfrozen",
    ),
    (
        "jaraco_functools-4.6.0", "jaraco/functools/__init__.py",
        "    return functools.reduce(compose_two, funcs)",
        "    return functools.reduce(compose_two, reversed(funcs))",
        "compose applies its functions in reverse (its own doctest, in a namespace package)",
    ),
    (
        "toml-0.10.2", "toml/encoder.py",
        "        v = v.replace('\"', '\\\\\"')", "        pass",
        "_dump_str no longer escapes '\"' (control: its suite does not catch it)",
    ),
]  # fmt: skip


def git(library: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=library, check=True, capture_output=True)


def check(library: Path, server: Path) -> tuple[int, float, str]:
    env = {**os.environ, "PYTHONPATH": str(server)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "lsp_verify", "check"],
        cwd=library, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    first = next((line for line in lines if line.startswith(("FAIL", "ERROR"))), None)
    if first is None:  # no verdict line: the summary, or why there is none
        first = (lines or done.stderr.strip().splitlines() or [""])[-1]
    return done.returncode, time.monotonic() - started, first[:200].replace("|", "\\|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--libs", type=Path, required=True, help="the directory of the library checkouts")
    parser.add_argument("--before", type=Path, help="an older checkout of lsp-verify to compare with")
    args = parser.parse_args()
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    print(f"revision {revision}; before: {args.before or '-'}; {os.cpu_count()} cores; load {load}\n")
    print("| library | staged change | side | exit | seconds | first verdict (or last line) |")
    print("|---|---|---|---:|---:|---|")
    sides = [("now", REPO / "server")] + ([("before", args.before / "server")] if args.before else [])
    for name, relative, old, new, label in CASES:
        library = args.libs / name
        if not library.is_dir():
            print(f"{library}: missing", file=sys.stderr)
            continue
        path = library / relative
        text = path.read_text(encoding="utf-8")
        if text.count(old) != 1:
            print(f"{name} {relative}: the text to replace is found {text.count(old)} times", file=sys.stderr)
            continue
        try:
            path.write_text(text.replace(old, new), encoding="utf-8")
            git(library, "add", "-A")
            for side, server in sides:
                code, seconds, first = check(library, server)
                print(f"| {name} | {label} | {side} | {code} | {seconds:.0f} | {first} |", flush=True)
        finally:
            git(library, "reset", "-q", "--hard")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
