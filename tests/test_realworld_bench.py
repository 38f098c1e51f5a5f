"""bench/realworld.py on a tiny local library (no network, no model): the selection rule, the stub, the
mutations, and one whole run with the fix and check steps faked; the judge is the real pytest."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import io
import json
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "realworld.py"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_realworld", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


rw = _load_bench()

CORE = '''"""A tiny library."""


def clamp(value, low, high):
    """Limit value to [low, high]."""
    if value < low:
        return low
    if value > high:
        return high
    return value


def total(values):
    """Sum of values, starting at 0."""
    result = 0
    for v in values:
        result = result + v
    return result


def untested(x):
    """Nobody tests this."""
    y = x * 2
    y = y + 1
    return y


def short(x):
    """Too short to be chosen."""
    return x


def _private(x):
    """Private: not chosen."""
    a = 1
    b = 2
    return a + b + x
'''

TESTS = """import unittest

from tinylib.core import clamp, total


class ClampTests(unittest.TestCase):
    def test_inside(self):
        self.assertEqual(clamp(5, 0, 9), 5)

    def test_outside(self):
        self.assertEqual(clamp(-3, 0, 9), 0)
        self.assertEqual(clamp(12, 0, 9), 9)


class TotalTests(unittest.TestCase):
    def test_total(self):
        self.assertEqual(total([1, 2, 3]), 6)
        self.assertEqual(total([]), 0)
"""


def _sdist(cache: Path, name: str = "tinylib", version: str = "1.0") -> tuple[Any, Path]:
    """A pinned sdist of the tiny library, already in the cache where ``fetch`` looks (no download)."""
    files = {
        f"{name}-{version}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{name}-{version}/tinylib/__init__.py": "",
        f"{name}-{version}/tinylib/core.py": CORE,
        f"{name}-{version}/tests/test_core.py": TESTS,
    }
    path = cache / "sdists" / f"{name}-{version}.tar.gz"
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as archive:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return rw.Library(name, version, digest, "tinylib", "tests", "a unittest suite"), path


def _function(qualname: str) -> Any:
    return next(
        f
        for f in rw._module_functions("tinylib", "tinylib/core.py", CORE, "tests/test_core.py")
        if f.qualname == qualname
    )


def test_selection_rule_takes_public_documented_functions_of_three_or_more_lines() -> None:
    found = [f.qualname for f in rw._module_functions("tinylib", "tinylib/core.py", CORE, "t.py")]
    assert found == ["clamp", "total", "untested"]
    clamp = _function("clamp")
    assert (clamp.line, clamp.body_start, clamp.body_end) == (4, 6, 10)


def test_stub_keeps_the_signature_and_docstring() -> None:
    text = rw.stub_text(CORE, _function("total"))
    assert '    """Sum of values, starting at 0."""\n    raise NotImplementedError\n\n\ndef untested' in text
    ast.parse(text)
    assert text.count("raise NotImplementedError") == 1


def test_stub_of_a_body_that_starts_with_a_decorated_def_parses() -> None:
    text = (
        "def consumer(func):\n"
        '    """Wrap func."""\n'
        "\n"
        "    @wraps(func)\n"
        "    def wrapper(*args):\n"
        "        return func(*args)\n"
        "\n"
        "    return wrapper\n"
    )
    (function,) = rw._module_functions("lib", "lib.py", text, "t.py")
    assert function.body_start == 4
    assert (
        rw.stub_text(text, function)
        == 'def consumer(func):\n    """Wrap func."""\n\n    raise NotImplementedError\n'
    )


def test_mutations_change_one_token_of_the_body_and_are_deterministic() -> None:
    function = _function("total")
    found = rw.mutations(CORE, function)
    assert [m.description for m in found] == ["line 15: 0 -> 1", "line 17: + -> -"]
    assert found == rw.mutations(CORE, function)
    for mutation in found:
        changed = [
            (a, b) for a, b in zip(CORE.splitlines(), mutation.text.splitlines(), strict=True) if a != b
        ]
        assert len(changed) == 1
    clamp = [m.description for m in rw.mutations(CORE, _function("clamp"))]
    assert clamp == ["line 6: < -> <=", "line 8: > -> >="]


def test_unmutated_changes_keep_the_syntax_tree() -> None:
    for change in rw.neutral_changes(CORE, _function("total")):
        assert ast.dump(ast.parse(change.text)) == ast.dump(ast.parse(CORE))
        assert change.text != CORE


class _FakeFix:
    """``lsp-verify fix --apply`` stand-in: for clamp it applies a wrong candidate while a right one was
    also generated; for total it applies nothing (both candidates were "rejected")."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, copy: Any, function: Any, config: Any) -> Any:
        self.calls.append(function.qualname)
        original = copy.git("show", f"HEAD:{function.relpath}")
        right = original
        wrong = original.replace("return high", "return low")
        if function.qualname == "total":
            wrong = original.replace("result = 0", "result = 1")

        def candidate(index: int, text: str, verified: bool) -> Any:
            digest = hashlib.sha256(text.encode()).hexdigest()
            error = None if verified else "tests: test_x failed"
            record = rw.CandidateRecord(index, digest, verified, "tests" if verified else "none", error, 2)
            return record, text

        if function.qualname == "clamp":
            copy.write(function.relpath, wrong)
            report = {
                "functions": [
                    {
                        "status": "pass",
                        "evidence": "tests",
                        "message": "verified",
                        "tests": {"selected": ["a", "b"]},
                    }
                ]
            }
            candidates = [candidate(0, wrong, True), candidate(1, right, False)]
            return rw.FixOutcome(0, report, candidates, 3.5, 7.0, 8)
        report = {
            "functions": [
                {
                    "status": "fail",
                    "evidence": "none",
                    "message": "no candidate passed",
                    "tests": {"selected": ["a"]},
                }
            ]
        }
        return rw.FixOutcome(1, report, [candidate(0, wrong, False)], None, 9.0, 8)


def _fake_check(copy: Any, config: Any) -> tuple[int, dict[str, Any], float]:
    """``lsp-verify check`` stand-in: blocks a staged change whose syntax tree differs from HEAD's."""
    relpath = "tinylib/core.py"
    staged = copy.git("show", f":{relpath}")
    head = copy.git("show", f"HEAD:{relpath}")
    same = ast.dump(ast.parse(staged)) == ast.dump(ast.parse(head))
    status = "pass" if same else "fail"
    functions = [{"qualname": q, "status": status, "message": status} for q in ("clamp", "total")]
    return (0 if same else 1), {"functions": functions}, 0.5


def test_a_whole_run_on_a_local_library(tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    library, _ = _sdist(cache)
    fix = _FakeFix()
    argv = ["--cache", str(cache), "--out-dir", str(out), "--libraries", "tinylib", "--mutant-tries", "4"]
    assert rw.main(argv, libraries=[library], fix_fn=fix, check_fn=_fake_check) == 0

    # Selection: untested() is documented and long enough, but its stub fails no test: not kept.
    assert fix.calls == ["clamp", "total"]
    summary = json.loads((out / "realworld.json").read_text(encoding="utf-8"))
    figures = summary["fix"]["all"]
    assert (figures["functions"], figures["applied"], figures["applied_correct"]) == (2, 1, 0)
    assert figures["coverage"] == 0.5 and figures["precision"] == 0.0
    # The right clamp candidate passes the library's tests; total's only candidate does not.
    assert figures["oracle"] == 1
    assert summary["fix"]["reasons"] == {
        "applied, fails the library's tests": 1,
        "no candidate passed the nearby tests": 1,
    }
    records = [json.loads(line) for line in (out / "realworld.jsonl").read_text().splitlines()]
    clamp = next(r for r in records if r["qualname"] == "clamp")
    assert [c["library_tests"] for c in clamp["candidates"]] == [False, True]
    assert clamp["first_verified_s"] == 3.5

    # check: clamp's two boundary mutants survive its tests (equivalent on these inputs) and are not
    # counted; total's two mutants are killed and blocked; four unmutated changes pass.
    check = summary["check"]["all"]
    assert (check["mutants"], check["blocked"], check["recall"]) == (2, 2, 1.0)
    assert (check["unmutated"], check["false_alarms"]) == (4, 0)
    assert summary["run"]["command"].startswith("python bench/realworld.py --cache ")
    assert summary["run"]["load_average"]["start"]
    table = (out / "realworld.md").read_text(encoding="utf-8")
    assert "| tinylib | 2 | 1 | 50% | 0% (0/1) | 50% (1) |" in table

    # The user's copy is back at the pristine commit.
    work = cache / "work" / "tinylib"
    assert (work / "tinylib" / "core.py").read_text(encoding="utf-8") == CORE

    # --resume keeps what was recorded and runs nothing again.
    assert rw.main([*argv, "--resume"], libraries=[library], fix_fn=fix, check_fn=_fake_check) == 0
    assert fix.calls == ["clamp", "total"]
    again = json.loads((out / "realworld.json").read_text(encoding="utf-8"))
    assert again["fix"]["all"] == figures
    # Each run is listed with its own command and load, also in a summary written later.
    runs = [json.loads(line) for line in (out / "realworld-runs.jsonl").read_text().splitlines()]
    assert [r["command"].endswith("--resume") for r in runs] == [False, True]
    assert [r["steps"] for r in runs] == [["fix", "check"], ["fix", "check"]]
    assert len(again["runs"]) == 2 and again["runs"][0]["load_average"]["start"]


def test_a_tampered_sdist_stops_the_run_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    library, path = _sdist(cache)
    path.write_bytes(path.read_bytes() + b"tampered")
    argv = ["--cache", str(cache), "--out-dir", str(tmp_path / "out"), "--libraries", "tinylib"]
    assert rw.main(argv, libraries=[library], fix_fn=_FakeFix(), check_fn=_fake_check) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "does not match the pinned" in err[-1]
    assert not (cache / "work").exists()
