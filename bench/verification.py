"""Verification cost: one plain pytest run vs. naive per-candidate processes vs. the verifier.

Runs on a copy of tests/fixtures/textkit (one stub, twenty nearby tests) with k hand-written candidates
(some correct, some failing tests, one type error) and prints a Markdown table:

    PYTHONPATH=server python bench/verification.py [--k 8] [--threads 2]

- plain pytest: one ``python -m pytest`` process running the selected tests (correct code);
- naive: per candidate one ``python -m mypy`` process (warm incremental cache) and one pytest process;
- verifier (cold): a fresh Verifier - worker start-up, baseline mypy and tests, then k ``verify`` calls
  from ``--threads`` threads, as the pipeline does while candidates arrive;
- verifier (warm): the same Verifier again: baselines cached, workers running;
- verifier (warm, no probes): the same with ``probe_inputs = 0``, so the cost of behaviour probes shows.

Target: the cold verifier within 3x one plain pytest run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lsp_verify.cancel import CancelToken
from lsp_verify.config import Settings
from lsp_verify.syntax.target import EditTarget, TargetKind
from lsp_verify.verify.cascade import Verifier
from lsp_verify.verify.sandbox import isolation_report
from lsp_verify.verify.types import Candidate, CandidateResult

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "textkit"
STUB = "    raise NotImplementedError\n"
BODIES = [
    "    return sep.join(words(text))\n",
    "    return sep.join(w for w in re.split(r'[^a-z0-9]+', text.lower()) if w)\n",
    "    return '-'.join(words(text))\n",
    "    return text.lower().replace(' ', sep)\n",
    "    return sep.join(_SEPARATORS.split(text.lower())).strip(sep)\n",
    "    return len(text)\n",
    "    parts = words(text)\n    return sep.join(parts)\n",
    "    return sep.join(text.split())\n",
]


def target(path: Path) -> EditTarget:
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if text.startswith("def slugify("))
    return EditTarget(
        path=path, name="slugify", qualname="slugify", class_name=None, kind=TargetKind.STUB,
        is_async=False, def_start_line=line, def_end_line=line + 6, body_start_byte=0, body_end_byte=0,
        body_start_line=line + 6, body_start_col=4, body_end_line=line + 6, body_end_col=0, indent="    ",
        header=lines[line], docstring=None, current_body=STUB.strip(), source_sha256="",
    )  # fmt: skip


def timed(argv: list[str], cwd: Path) -> float:
    started = time.monotonic()
    subprocess.run(argv, cwd=cwd, capture_output=True, check=False, env=_env())
    return time.monotonic() - started


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def verify_all(verifier: Verifier, path: Path, text: str, k: int, threads: int) -> list[CandidateResult]:
    plan = verifier.prepare(target(path), text, CancelToken())
    candidates = [
        Candidate(i, body, text.replace(STUB, body), key=body) for i, body in enumerate((BODIES * k)[:k])
    ]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda c: verifier.verify(plan, c, CancelToken()), candidates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "textkit"
        shutil.copytree(FIXTURE, root)
        path = root / "textkit" / "slug.py"
        text = path.read_text()
        tests = ["tests/test_slug.py", "--doctest-modules", "textkit/slug.py"]
        pytest_argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
        mypy_cache = Path(scratch) / "mypy-cache"
        mypy_argv = [sys.executable, "-m", "mypy", "--cache-dir", str(mypy_cache), "textkit/slug.py"]

        # Plain runs on correct code (the user's own "run the tests" cost); mypy once to warm its cache.
        path.write_text(text.replace(STUB, BODIES[0]))
        timed(mypy_argv, root)
        plain_pytest = min(timed(pytest_argv, root) for _ in range(2))
        plain_mypy = timed(mypy_argv, root)

        naive_started = time.monotonic()
        for body in (BODIES * args.k)[: args.k]:
            path.write_text(text.replace(STUB, body))
            timed(mypy_argv, root)
            timed(pytest_argv, root)
        naive = time.monotonic() - naive_started
        path.write_text(text)
        shutil.rmtree(mypy_cache, ignore_errors=True)

        settings = Settings(trusted=True)
        started = time.monotonic()
        verifier = Verifier(root, settings)
        try:
            results = verify_all(verifier, path, text, args.k, args.threads)
            cold = time.monotonic() - started
            started = time.monotonic()
            verify_all(verifier, path, text, args.k, args.threads)
            warm = time.monotonic() - started
        finally:
            verifier.close()
        # The same warm run without behaviour probes (probe_inputs = 0): what the probes cost.
        verifier = Verifier(root, Settings(trusted=True, probe_inputs=0))
        try:
            verify_all(verifier, path, text, args.k, args.threads)
            started = time.monotonic()
            verify_all(verifier, path, text, args.k, args.threads)
            warm_unprobed = time.monotonic() - started
        finally:
            verifier.close()

    passed = sum(r.passed for r in results)
    print(f"k={args.k} candidates ({passed} pass), {args.threads} verify threads, 20 nearby tests + doctest")
    print(isolation_report(settings.sandbox))
    print()
    print("| run | seconds | x plain pytest |")
    print("| --- | ---: | ---: |")
    rows = [
        ("one plain `pytest` process (selected tests)", plain_pytest),
        ("one plain `mypy` process (warm cache)", plain_mypy),
        (f"naive: {args.k} x (mypy + pytest processes)", naive),
        (f"verifier, cold: fresh Verifier, prepare + {args.k} verify", cold),
        (f"verifier, warm: prepare (cached) + {args.k} verify", warm),
        (f"verifier, warm, no behaviour probes: prepare (cached) + {args.k} verify", warm_unprobed),
    ]
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / plain_pytest:.2f} |")


if __name__ == "__main__":
    main()
