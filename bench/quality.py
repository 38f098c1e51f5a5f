"""HumanEval quality benchmark: how often lsp-verify surfaces a suggestion, and how often it is right.

This module runs the benchmark (the pipelines, one problem after the other, and the command line). What it
uses lives beside it, one module each: ``humaneval.py`` (problems as one-file workspaces, and the held-out
judge), ``quality_records.py`` (the per-problem records, pass@k and the per-k views),
``quality_report.py`` (summary, targets, markdown, plot) and ``runinfo.py`` (machine, revision, load).

Problems fall in two groups, reported apart and together:

* ``tests`` ("visible tests"): the prompt carries doctest examples (76 of 164);
* ``types`` ("types only"): no runnable example, so a suggestion can only be backed by parse + mypy.

The sampled run is the real pipeline, the code path of ``lsp-verify fix``:
``Pipeline(settings).run(FixRequest(path, text, root, line=None))`` with the embedded default model.
By default k = max(--ks) sequences are sampled once per problem and the figures for smaller k are
*derived* from the first k sequences (the engine seeds sequence i with ``seed + i``, so they are that
k-run's sequences up to batching numerics): the verified results of those sequences are re-ranked with
the pipeline's own ``rank``.
``--separate`` runs the pipeline once per k instead (faithful timings, slower). A greedy pass (temperature 0,
k = 1) gives the model's raw, unverified pass@1.

Run ``python bench/quality.py --help``; bench/README.md explains the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "server", REPO / "bench"):
    if str(_path) not in sys.path:
        # Run from a checkout without installing: the package lives in server/, the other modules beside us.
        sys.path.insert(0, str(_path))

from humaneval import (  # noqa: E402
    JudgeBackend,
    Problem,
    Verdict,
    detect_judge_backend,
    judge,
    load_problems,
    request_line,
    workspace_root,
    write_workspace,
)
from quality_records import (  # noqa: E402
    CandidateRecord,
    KView,
    ProblemRecord,
    RunRecord,
    SequenceRecord,
    key_id,
    percentile,
    read_records,
    rerank_first_k,
    view_of,
)
from quality_report import markdown, plot, repair_stats, round_or_none, summarise, target_lines  # noqa: E402
from runinfo import git_revision, load_average, machine_info  # noqa: E402

if TYPE_CHECKING:
    from lsp_verify.cancel import CancelToken
    from lsp_verify.config import Settings
    from lsp_verify.model.engine import Engine
    from lsp_verify.model.types import EngineInfo, Generation, Prompt, SamplingParams
    from lsp_verify.pipeline import FixReport, Pipeline

DEFAULT_KS = (1, 4, 8)


# -------------------------------------------------------------------------------------- running problems


@dataclasses.dataclass(frozen=True)
class _Finished:
    index: int
    """Over the whole request: round * k + the engine's sequence index, as the pipeline numbers candidates."""
    round: int
    generation: Generation
    prompt: Prompt
    finished_s: float


class RecordingEngine:
    """The real engine, plus a note of every finished sequence by index.

    ``FixReport`` holds distinct candidates only; deriving the k < max figures needs to know which sequence
    produced which candidate. Each ``generate`` call of a request is one round (the first, then repair
    rounds). Everything else is delegated unchanged.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.finished: list[_Finished] = []
        self.started = time.monotonic()
        self._rounds = 0
        self._next_index = 0

    @property
    def info(self) -> EngineInfo:
        return self._engine.info

    def close(self) -> None:
        self._engine.close()

    def reset(self) -> None:
        self.finished = []
        self.started = time.monotonic()
        self._rounds = 0
        self._next_index = 0

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        on_generation: Callable[[Generation], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> Any:
        this_round, first_index = self._rounds, self._next_index
        self._rounds += 1
        self._next_index += params.k

        def record(generation: Generation) -> None:
            elapsed = time.monotonic() - self.started
            self.finished.append(
                _Finished(first_index + generation.index, this_round, generation, prompt, elapsed)
            )
            if on_generation is not None:
                on_generation(generation)

        return self._engine.generate(prompt, params, on_generation=record, cancel=cancel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


@dataclasses.dataclass
class Bench:
    """The pipelines of one benchmark run, and what they need to judge and record."""

    sampled: Pipeline
    sampled_engine: list[RecordingEngine]
    greedy: Pipeline | None
    greedy_engine: list[RecordingEngine]
    ks: tuple[int, ...]
    separate: bool
    judge_timeout: float
    judge_backend: JudgeBackend
    config: dict[str, Any]


def make_pipeline(settings: Settings) -> tuple[Pipeline, list[RecordingEngine]]:
    """A real pipeline whose engine records sequences; the list holds the engine once it is loaded."""
    from lsp_verify import pipeline as pipeline_module

    holder: list[RecordingEngine] = []

    def factory(s: Settings) -> Engine:
        holder[:] = [RecordingEngine(pipeline_module.load_engine(s))]
        return cast("Engine", holder[0])

    return pipeline_module.Pipeline(settings, engine_factory=factory), holder


def run_one(
    pipeline: Pipeline, holder: list[RecordingEngine], problem: Problem, path: Path, k: int
) -> tuple[FixReport, list[SequenceRecord]]:
    from lsp_verify.pipeline import FixRequest

    pipeline.engine()  # load before the clock starts: model loading is not per-request latency
    holder[0].reset()
    text = path.read_text(encoding="utf-8")
    request = FixRequest(path=path, text=text, root=path.parent, line=request_line(problem, text))
    report = pipeline.run(request, k=k)
    return report, _sequences(report, holder[0].finished, text)


def _sequences(report: FixReport, finished: Sequence[_Finished], text: str) -> list[SequenceRecord]:
    """Every sequence with the key of the candidate it proposes, as the pipeline reads it."""
    from lsp_verify.pipeline import candidate_from

    out = []
    for f in sorted(finished, key=lambda f: f.index):
        candidate = candidate_from(f.generation, f.prompt, text, report.target)
        out.append(
            SequenceRecord(
                index=f.index,
                round=f.round,
                key=key_id(candidate.key) if candidate is not None else None,
                finish_reason=f.generation.finish_reason,
                n_tokens=f.generation.n_tokens,
                finished_s=round(f.finished_s, 3),
            )
        )
    return out


def _run_record(
    report: FixReport,
    sequences: list[SequenceRecord],
    k: int,
    temperature: float,
    verdicts: Mapping[str, Verdict],
) -> RunRecord:
    candidates = []
    for r in report.results:
        verdict = verdicts.get(r.candidate.key, Verdict(False, "not judged"))
        candidates.append(
            CandidateRecord(
                key=key_id(r.candidate.key),
                index=r.candidate.index,
                body=r.candidate.body,
                verified=r.passed,
                evidence=r.evidence.value,
                first_error=r.first_error,
                verified_at_s=round(r.verified_at_s, 3),
                duplicates=r.candidate.duplicates,
                correct=verdict.passed,
                judge_result=verdict.result[:300],
                mean_logprob=round(r.candidate.mean_logprob, 4),
                behaviour=key_id("\n".join(r.probe_outputs)) if r.probe_outputs else None,
            )
        )
    return RunRecord(
        k=k,
        temperature=temperature,
        seconds=round(report.seconds, 3),
        first_verified_s=round(report.first_verified_s, 3) if report.first_verified_s is not None else None,
        n_generated=report.n_generated,
        sequences=sequences,
        candidates=candidates,
        message=report.message,
        notes=list(report.notes),
    )


def run_problem(bench: Bench, problem: Problem, root: Path) -> ProblemRecord:
    """Greedy pass, sampled run(s), held-out judging and the per-k views of one problem."""
    from lsp_verify.model.source import ModelError

    start = time.monotonic()
    path = write_workspace(problem, root)
    for pipeline in (bench.sampled, bench.greedy):
        if pipeline is not None:
            pipeline.invalidate([path])  # the file changed on disk: no baseline of the last problem applies
    reports: list[tuple[int, float, FixReport, list[SequenceRecord]]] = []
    error: str | None = None
    try:
        if bench.greedy is not None:
            report, sequences = run_one(bench.greedy, bench.greedy_engine, problem, path, 1)
            reports.append((0, 0.0, report, sequences))
        run_ks = bench.ks if bench.separate else (max(bench.ks),)
        temperature = bench.sampled.settings.temperature
        for k in run_ks:
            report, sequences = run_one(bench.sampled, bench.sampled_engine, problem, path, k)
            reports.append((k, temperature, report, sequences))
    except ModelError:
        raise
    except Exception as exc:  # one problem's failure is a data point, not the end of the benchmark
        error = f"{type(exc).__name__}: {exc}"

    programs = {r.candidate.key: r.candidate.new_text for _, _, report, _ in reports for r in report.results}
    ids = {key: f"c{i}" for i, key in enumerate(programs)}
    by_id = judge(
        problem, {ids[key]: text for key, text in programs.items()}, bench.judge_timeout, bench.judge_backend
    )
    verdicts = {key: by_id[ids[key]] for key in programs}

    greedy: RunRecord | None = None
    runs: list[RunRecord] = []
    views: list[KView] = []
    for k, temperature, report, sequences in reports:
        record = _run_record(report, sequences, max(k, 1), temperature, verdicts)
        if k == 0:
            greedy = record
            continue
        runs.append(record)
        if bench.separate:
            views.append(view_of(record, k))
        else:
            for small_k in bench.ks:
                ranked = None if small_k == k else rerank_first_k(report, record.sequences, small_k)
                views.append(view_of(record, small_k, ranked))
    if error is None and not runs:
        error = "no sampled run"
    target = reports[0][2].target.name if reports else None
    if target is not None and target != problem.entry_point and error is None:
        error = f"targeted {target}, expected {problem.entry_point}"
    return ProblemRecord(
        task_id=problem.task_id,
        group=problem.group,
        config=bench.config,
        target=target,
        error=error,
        greedy=greedy,
        runs=runs,
        views=views,
        wall_s=round(time.monotonic() - start, 3),
    )


def progress_line(i: int, total: int, record: ProblemRecord) -> str:
    parts = [f"[{i:>3}/{total}] {record.task_id:<14} {record.group:<5}"]
    if record.error:
        parts.append(f"ERROR {record.error}")
    top = max(record.views, key=lambda v: v.k, default=None)
    if top is not None:
        verified = f"verified ({top.surfaced_evidence})" if top.surfaced else "not verified"
        correct = "correct" if top.surfaced_correct else "wrong" if top.surfaced else "-"
        repaired = " (repair round)" if top.surfaced_from_repair else ""
        parts.append(f"k={top.k}: {top.c}/{top.n} correct, {verified}{repaired}, best {correct}")
        t_first = f"{top.t_first_s:.1f}s" if top.t_first_s is not None else "-"
        parts.append(f"first {t_first} full {top.t_full_s:.1f}s")
    if record.greedy is not None:
        parts.append(f"greedy {'correct' if record.greedy_correct else 'wrong'}")
    parts.append(f"wall {record.wall_s:.1f}s")
    return "  ".join(parts)


# ---------------------------------------------------------------------------------------------------- CLI


def parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError("every k must be >= 1")
    return tuple(ks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/quality.py",
        description="Coverage and precision of lsp-verify's verified suggestions on HumanEval.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--limit", type=int, default=None, help="run only this many problems")
    parser.add_argument("--offset", type=int, default=0, help="skip this many problems first")
    parser.add_argument(
        "--group",
        choices=("all", "tests", "types"),
        default="all",
        help="only problems with doctest examples (tests) or without them (types); before --offset/--limit",
    )
    parser.add_argument(
        "--ks", type=parse_ks, default=DEFAULT_KS, help="candidate counts to report, e.g. 1,4,8"
    )
    parser.add_argument(
        "-k",
        type=int,
        default=None,
        help="sample K candidates per problem and report k in {1, 4, 8} below K plus K (shorthand for --ks)",
    )
    parser.add_argument(
        "--separate", action="store_true", help="run the pipeline once per k instead of deriving"
    )
    parser.add_argument("--no-greedy", action="store_true", help="skip the greedy (temperature 0) pass")
    parser.add_argument("--max-tokens", type=int, default=256, help="token budget per candidate")
    parser.add_argument("--seed", type=int, default=0, help="sequence i samples with seed + i")
    parser.add_argument("--model", default=None, help="a GGUF instead of the embedded default model")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs", help="where quality.{json,md,png} go")
    parser.add_argument(
        "--records",
        type=Path,
        default=None,
        help="per-problem JSONL records (default: OUT_DIR/quality.jsonl)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the records already written; run the rest"
    )
    parser.add_argument("--test-timeout", type=float, default=5.0, help="seconds per held-out check() run")
    parser.add_argument(
        "--repair-rounds",
        type=int,
        default=None,
        help="the pipeline's repair rounds when nothing passed (default: the Settings default)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ks: tuple[int, ...] = args.ks
    if args.k is not None:
        if args.k < 1:
            print("error: -k must be >= 1", file=sys.stderr)
            return 2
        ks = tuple(sorted({k for k in DEFAULT_KS if k < args.k} | {args.k}))
    problems = [p for p in load_problems() if args.group in ("all", p.group)][args.offset :]
    if args.limit is not None:
        problems = problems[: args.limit]
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    records_path: Path = args.records or out_dir / "quality.jsonl"

    from lsp_verify.config import Settings

    settings = Settings(
        k=max(ks), max_tokens=args.max_tokens, seed=args.seed, model_path=args.model, trusted=True
    )
    settings.quorum = 0  # pass@k and the per-k views are read off every one of the k samples
    if args.repair_rounds is not None:
        settings.repair_rounds = args.repair_rounds
    config = {
        "ks": list(ks),
        "separate": args.separate,
        "greedy": not args.no_greedy,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
        "model": args.model,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "test_timeout_s": args.test_timeout,
        "repair_rounds": settings.repair_rounds,
    }
    previous = read_records(records_path) if args.resume else []
    for record in previous:
        if record.config != config:
            print(
                f"error: {records_path} was written with other settings ({record.config}); "
                "run without --resume to start over, or with the same options",
                file=sys.stderr,
            )
            return 2
    done = {r.task_id: r for r in previous}
    # Rewrite the file with the records we keep (this also drops a line an interrupted run cut short).
    records_path.write_text("".join(r.to_json() + "\n" for r in done.values()), encoding="utf-8")

    backend = detect_judge_backend(args.test_timeout)
    sampled, sampled_engine = make_pipeline(settings)
    greedy: Pipeline | None = None
    greedy_engine: list[RecordingEngine] = []
    if not args.no_greedy:
        greedy, greedy_engine = make_pipeline(
            # The raw model: one greedy candidate, no repair round (that is the pipeline reacting to failure).
            dataclasses.replace(settings, k=1, temperature=0.0, repair_rounds=0)
        )
    bench = Bench(
        sampled, sampled_engine, greedy, greedy_engine, ks, args.separate, args.test_timeout, backend, config
    )
    todo = [p for p in problems if p.task_id not in done]
    print(
        f"quality: {len(problems)} problems ({len(problems) - len(todo)} already done), ks={list(ks)}, "
        f"{'separate runs' if args.separate else f'one k={max(ks)} run per problem'}, judge={backend}",
        file=sys.stderr,
    )
    start = time.monotonic()
    load_before = load_average()
    try:
        sampled.engine()
        if greedy is not None:
            greedy.engine()
        with workspace_root() as root:
            for i, problem in enumerate(todo, start=len(problems) - len(todo) + 1):
                record = run_problem(bench, problem, root)
                done[problem.task_id] = record
                with records_path.open("a", encoding="utf-8") as fh:
                    fh.write(record.to_json() + "\n")
                print(progress_line(i, len(problems), record), file=sys.stderr, flush=True)
        info = sampled_engine[0].info if sampled_engine else None
    finally:
        sampled.close()
        if greedy is not None:
            greedy.close()
    wall = time.monotonic() - start

    records = [done[p.task_id] for p in problems if p.task_id in done]
    summary = summarise(records, ks)
    sequences = [s for r in records for run in r.runs for s in run.sequences]
    tokens = [float(s.n_tokens) for s in sequences]
    summary["ks"] = list(ks)
    summary["run"] = {
        "command": shlex.join(["python", *sys.argv])
        if argv is None
        else shlex.join(["python", "bench/quality.py", *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "revision": git_revision(),
        "separate": args.separate,
        "derived_note": None
        if args.separate
        else f"k < {max(ks)} derived from the first k sequences of one k={max(ks)} run per problem",
        "load_average": {"start": load_before, "end": load_average()},
        "wall_s": round(
            wall + sum(r.wall_s for r in previous if r.task_id in {p.task_id for p in problems}), 1
        ),
        "problems": len(records),
        "problems_with_errors": sum(1 for r in records if r.error),
        "errors": {r.task_id: r.error for r in records if r.error},
        "machine": machine_info(info),
        "settings": {
            "k": settings.k,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "seed": settings.seed,
            "max_tokens": settings.max_tokens,
            "repair_rounds": settings.repair_rounds,
        },
        "judge": backend,
        "test_timeout_s": args.test_timeout,
        "records": str(records_path),
        "repair": repair_stats(records),
        "sequences": len(sequences),
        "truncated_sequences": sum(1 for s in sequences if s.finish_reason == "length"),
        "tokens_median": round_or_none(percentile(tokens, 50), 0),
        "tokens_p90": round_or_none(percentile(tokens, 90), 0),
        "tokens_max": max(tokens, default=None),
    }
    (out_dir / "quality.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    text = markdown(summary)
    (out_dir / "quality.md").write_text(text, encoding="utf-8")
    plot(summary, records, out_dir / "quality.png")
    print(text)
    for line in target_lines(summary["targets"]):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
