"""Which tests judge a function's candidates, with and without the tests that reach it through others.

For each library (a git checkout of an unmodified source tree with its own .venv: pytest and what its tests
import), every function of its source files (not its tests) is classified by what the verifier selects for
it: tests that name it, tests that only reach it through other functions (the traced run of the suite,
verify/callers.py), only its module's guard tests, or nothing. Then, for up to ``--mutate`` functions per
library that only reached tests would judge, a broken candidate - the body replaced by ``return None`` - is
verified without the map (``reach="off"``, as before) and with it (``reach="wait"``): was it refused, and
how long did its verification take? mypy is left out of that comparison (it would refuse some of them
both ways and hide what the tests do).

    python bench/reach.py --libs /tmp/libs [--mutate 8] [LIBRARY ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server"))

from lsp_verify.cancel import CancelToken  # noqa: E402
from lsp_verify.config import Settings  # noqa: E402
from lsp_verify.syntax.splice import splice_body  # noqa: E402
from lsp_verify.syntax.target import EditTarget  # noqa: E402
from lsp_verify.syntax.targets import function_targets  # noqa: E402
from lsp_verify.verify.cascade import Verifier, VerifyError  # noqa: E402
from lsp_verify.verify.types import Candidate  # noqa: E402

_SKIPPED = {".git", ".venv", "venv", "docs", "doc", "build", "dist", "examples", "benchmarks", "__pycache__"}


def source_files(root: Path, test_modules: frozenset[str]) -> list[Path]:
    """The library's own Python files: not its tests, conftest files, setup.py or docs."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIPPED and not d.startswith("test"))
        for name in sorted(files):
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            own = name.endswith(".py") and name not in ("conftest.py", "setup.py", "noxfile.py")
            if own and relative not in test_modules and not name.startswith("test"):
                found.append(path)
    return found


def classify(verifier: Verifier, text: str, target: EditTarget) -> str:
    selection = verifier.select(target, text, CancelToken())
    if selection.direct_tests:
        return "named"
    if selection.reaching_tests:
        return "reached"
    return "guard only" if selection.pytest_targets else "none"


def mutated(verifier: Verifier, text: str, target: EditTarget) -> tuple[bool, float]:
    """(refused, seconds) for the body replaced by ``return None``, mypy left out."""
    started = time.monotonic()
    plan = dataclasses.replace(verifier.prepare(target, text, CancelToken(), probe=False), run_mypy=False)
    body = f"{target.indent}return None\n"
    new_text = splice_body(text, target, body)
    result = verifier.verify(plan, Candidate(index=0, body=body, new_text=new_text, key="m"), CancelToken())
    return not result.passed, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--libs", type=Path, required=True)
    parser.add_argument("--mutate", type=int, default=8)
    parser.add_argument("libraries", nargs="*")
    args = parser.parse_args()
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"revision {revision.stdout.strip()}; {os.cpu_count()} cores; load {load}\n")
    print(
        "| library | functions | named | reached, before: guard tests only | reached, before: none "
        "| guard only | none | first select s (traced run) | mutated: refused before | after "
        "| verify s before / after |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    names = args.libraries or sorted(p.name for p in args.libs.iterdir() if (p / ".venv").is_dir())
    settings = Settings(trusted=True, probe_inputs=0, test_timeout_s=60.0)
    for name in names:
        root = (args.libs / name).resolve()
        counts: Counter[str] = Counter()
        reached: list[tuple[Path, str, EditTarget]] = []
        try:
            with Verifier(root, settings, reach="wait") as verifier, Verifier(root, settings) as untraced:
                started = time.monotonic()
                traced = None
                for path in source_files(root, verifier.test_modules(root / "x.py", "", CancelToken())):
                    text = path.read_text(encoding="utf-8")
                    for target in function_targets(text, path):
                        try:
                            kind = classify(verifier, text, target)
                            if kind == "reached":
                                kind += f", before: {classify(untraced, text, target)}"
                        except VerifyError as exc:
                            kind = "error"
                            print(f"{name} {target.qualname}: {exc}", file=sys.stderr)
                        traced = time.monotonic() - started if traced is None else traced
                        counts[kind] += 1
                        if kind.startswith("reached"):
                            reached.append((path, text, target))
                random.Random(0).shuffle(reached)
                sample = reached[: args.mutate]
                after = [mutated(verifier, text, target) for _, text, target in sample]
            with Verifier(root, settings, reach="off") as verifier:
                before = [mutated(verifier, text, target) for _, text, target in sample]
        except VerifyError as exc:
            print(f"| {name} | {exc} |")
            continue
        total = sum(counts.values())
        mean = lambda runs: sum(s for _, s in runs) / len(runs) if runs else 0.0  # noqa: E731
        print(
            f"| {name} | {total} | {counts['named']} | {counts['reached, before: guard only']} | "
            f"{counts['reached, before: none']} | {counts['guard only']} | "
            f"{counts['none']} | {traced or 0:.1f} | {sum(r for r, _ in before)}/{len(sample)} | "
            f"{sum(r for r, _ in after)}/{len(sample)} | {mean(before):.1f} / {mean(after):.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
