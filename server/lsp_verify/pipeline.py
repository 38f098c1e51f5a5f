"""One request end to end: target -> context -> generate -> verify -> rank.

The LSP server and the CLI are thin shells over :class:`Pipeline`. Results stream: each candidate is
verified as soon as the engine hands it over, while the other sequences are still decoding. With
``overlap_baseline`` the model starts generating as soon as the tests near the function are known (the prompt
shows them); the baseline run of the original code goes on meanwhile, on its own thread, and the first
candidate's verification waits for it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from .cancel import Cancelled, CancelToken
from .config import Settings
from .model.engine import Engine
from .model.prompts import PromptContext, choose_format, estimate_tokens, fit_prompt
from .model.source import resolve_model
from .model.types import Generation, GenerationEngine, Prompt, SamplingParams
from .syntax.context import nearby_tests_source, prompt_pieces
from .syntax.splice import extract_body, normalise, splice_body
from .syntax.target import EditTarget, TargetError
from .syntax.targets import find_stub_targets, target_at
from .verify.callers import ReachMode
from .verify.cascade import TestSelection, Verifier, VerifyPlan
from .verify.probe import ProbePlan
from .verify.rank import agreeing_samples, rank
from .verify.types import Candidate, CandidateResult

Stage = Literal["target", "baseline", "generating", "verifying", "done"]


@dataclasses.dataclass(frozen=True)
class FixRequest:
    path: Path
    """Absolute path of the document (it need not be saved: ``text`` is what is verified)."""
    text: str
    """The document text the request is computed for."""
    root: Path
    """The project's root (``config.find_project_root``): where tests are searched and run."""
    line: int | None = None
    """0-based line inside the function to rewrite; None means the first stub in the file."""
    version: int | None = None
    feedback: str | None = None
    """A failure the first prompt shows the model (a quick fix for a diagnostic: the failing test)."""
    workspace: Path | None = None
    """The editor's workspace folder, whose trust covers ``root``: the project's environment is looked for
    up to it (see :class:`~lsp_verify.verify.cascade.Verifier`); None: up to the repository's top."""
    trusted: bool = True
    """Whether the settings' trust covers this file. The editor trusts its workspace folders: a file outside
    them (another clone opened beside them, a link out of a folder) is False, and none of its project's
    code runs, whatever ``Settings.trusted`` says."""


@dataclasses.dataclass(frozen=True)
class Progress:
    stage: Stage
    message: str
    """Human text, e.g. "generating 3/8" or "verifying 5/8 — mypy"."""
    generated: int = 0
    verified: int = 0
    passed: int = 0
    total: int = 0


@dataclasses.dataclass(frozen=True)
class FixReport:
    target: EditTarget
    results: tuple[CandidateResult, ...]
    """Every distinct candidate, passing ones first in rank order, then the failures."""
    n_generated: int
    seconds: float
    first_verified_s: float | None
    message: str
    """One-paragraph summary for a user: what was tried and, when nothing passed, why each failed."""
    notes: tuple[str, ...] = ()
    """Caveats of the verification, e.g. "no nearby tests: types only"."""
    probe: ProbePlan | None = None
    """The inputs the passing candidates were called on (None: not probed); a question is asked on one."""

    @property
    def passing(self) -> tuple[CandidateResult, ...]:
        return tuple(r for r in self.results if r.passed)

    @property
    def best(self) -> CandidateResult | None:
        passing = self.passing
        return passing[0] if passing else None


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What :meth:`Pipeline.prepare` did ahead of a request."""

    target: EditTarget
    seconds: float
    prompt_tokens: int
    """Prompt tokens the engine decoded now (0: the model is not loaded yet, or it had them already)."""

    def __str__(self) -> str:
        return f"{self.target.qualname} in {self.seconds:.1f}s, {self.prompt_tokens} prompt tokens decoded"


ProgressCallback = Callable[[Progress], None]
ResultCallback = Callable[[CandidateResult], None]


LIVE_VERIFIERS = 4
"""Projects whose verifiers (workers, shadow) a pipeline keeps at once; see :meth:`Pipeline.verifier`."""


class Pipeline:
    """Owns the engine (loaded lazily, once per process) and one verifier per project root.

    Thread model: :meth:`run` blocks and is meant to be called from one worker thread at a time (the LSP
    layer queues requests on a single worker; the CLI calls it directly). :meth:`targets` is cheap
    (tree-sitter only) and safe to call from any thread.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine_factory: Callable[[Settings], GenerationEngine] | None = None,
        overlap_baseline: bool = False,
        reach: ReachMode = "background",
    ) -> None:
        self.settings = settings
        self.reach: ReachMode = reach
        """How verifiers use the tests that reach a function through others (see ``Verifier``)."""
        self.overlap_baseline = overlap_baseline
        """Generate while the baseline runs. Off: on 2 cores the baseline's mypy and pytest slow the decoding
        as much as starting earlier gains (``bench/results/latency-overlap.md``); an engine that decodes
        elsewhere (a GPU, a model server) should gain, which is not measured yet."""
        self._engine_factory = engine_factory or load_engine
        self._engine: GenerationEngine | None = None
        self._engine_key: tuple[object, ...] | None = None
        self._verifiers: dict[tuple[Path, bool], Verifier] = {}
        self._lock = threading.Lock()

    # -- cheap queries -----------------------------------------------------------------------------
    @staticmethod
    def targets(text: str, path: Path, version: int | None = None) -> list[EditTarget]:
        """Stub functions in ``text`` (tree-sitter only; no model, no subprocess)."""
        return find_stub_targets(text, path, version)

    @staticmethod
    def target(request: FixRequest) -> EditTarget:
        if request.line is None:
            stubs = find_stub_targets(request.text, request.path, request.version)
            if not stubs:
                raise TargetError(
                    f"{request.path.name}: no function with a stub body (..., pass, "
                    "raise NotImplementedError, TODO) found; give a line to rewrite a specific function"
                )
            return stubs[0]
        return target_at(request.text, request.path, request.line, request.version)

    # -- settings and resources --------------------------------------------------------------------
    def update_settings(self, settings: Settings) -> None:
        """Apply new settings; the engine is reloaded lazily if a model setting changed."""
        with self._lock:
            self.settings = settings
            for verifier in self._verifiers.values():
                verifier.close()
            self._verifiers.clear()

    def engine(self) -> GenerationEngine:
        """The loaded engine (loading it on first use)."""
        key = _engine_key(self.settings)
        with self._lock:
            if self._engine is not None and self._engine_key != key:
                self._engine.close()
                self._engine = None
            if self._engine is None:
                self._engine = self._engine_factory(self.settings)
                self._engine_key = key
            return self._engine

    def warm_up(self, root: Path, workspace: Path | None = None, trusted: bool = True) -> None:
        """Start what the first request for ``root`` needs besides the model: the verifier's mypy and
        pytest workers (they import in the background). The model stays unloaded until a request needs it,
        so an idle editor does not hold its memory."""
        self.verifier(root, workspace, trusted)

    def verifier(self, root: Path, workspace: Path | None = None, trusted: bool = True) -> Verifier:
        """The verifier of the project at ``root`` (``workspace``, ``trusted``: see :class:`FixRequest`;
        not trusted, it runs with ``Settings.trusted`` off).

        Each holds worker processes and a shadow: in a monorepo whose members are edited one after another,
        only the :data:`LIVE_VERIFIERS` used last are kept (the others are closed, and made again when
        needed: their caches are gone, their results are not). Called from the one worker thread that runs
        requests, so a verifier is never closed while a request holds it."""
        key = (root, trusted and self.settings.trusted)
        with self._lock:
            verifier = self._verifiers.pop(key, None)
            if verifier is None:
                settings = self.settings if key[1] else dataclasses.replace(self.settings, trusted=False)
                verifier = Verifier(root, settings, workspace, reach=self.reach)
            self._verifiers[key] = verifier  # the most recently used last
            idle = [self._verifiers.pop(key) for key in list(self._verifiers)[:-LIVE_VERIFIERS]]
        for old in idle:
            old.close()
        return verifier

    def invalidate(self, paths: Sequence[Path]) -> None:
        """Files changed on disk: drop test indexes, baselines and caches that depend on them."""
        with self._lock:
            verifiers = list(self._verifiers.values())
        for verifier in verifiers:
            verifier.invalidate(paths)

    def close(self) -> None:
        with self._lock:
            for verifier in self._verifiers.values():
                verifier.close()
            self._verifiers.clear()
            if self._engine is not None:
                self._engine.close()
                self._engine = None

    # -- ahead of a request ------------------------------------------------------------------------
    def prepare(self, request: FixRequest, cancel: CancelToken | None = None) -> Prepared:
        """Do now what a request for ``request``'s function will need first, so that it generates at once.

        The server calls this while the cursor rests on a function, before the user asks: the tests near it
        are selected and the baseline runs (mypy and those tests on the code as it is; both cached by
        content, so the request finds them), and, when the model is loaded already, the request's prompt is
        decoded into the engine's kept prefix (the request then decodes one token of it). The model is never
        loaded for this: an editor that was not asked for anything does not hold its memory.

        Runs the workspace's tests (when trusted) exactly as the request would, under ``cancel``. Raises
        what :meth:`run` raises before generating (TargetError, VerifyError, PromptTooLarge, Cancelled).
        """
        cancel = cancel or CancelToken()
        start = time.monotonic()
        target = self.target(request)
        verifier = self.verifier(request.root, request.workspace, request.trusted)
        selection = verifier.select(target, request.text, cancel)
        cancel.raise_if_cancelled()
        verifier.baseline(selection, cancel)
        cancel.raise_if_cancelled()
        decoded = 0
        with self._lock:
            loaded = self._engine is not None and self._engine_key == _engine_key(self.settings)
        if loaded:
            prompt, _ = self.prompt(request, target, selection, feedback=request.feedback)
            prefill = getattr(self.engine(), "prefill", None)  # an engine without it just starts cold
            decoded = int(prefill(prompt, cancel)) if prefill is not None else 0
        return Prepared(target=target, seconds=time.monotonic() - start, prompt_tokens=decoded)

    # -- the request -------------------------------------------------------------------------------
    def prompt(
        self,
        request: FixRequest,
        target: EditTarget,
        plan: TestSelection | VerifyPlan,
        *,
        k: int | None = None,
        feedback: str | None = None,
    ) -> tuple[Prompt, SamplingParams]:
        """The prompt and sampling parameters for ``target`` (loads the engine to choose the format).

        The prompt is cut to fit the model's context next to the k candidates (the context farthest from
        the function first); PromptTooLarge when even the function's own code does not fit.
        """
        settings = self.settings
        engine = self.engine()
        fmt = choose_format(engine.info.model_path, settings.prompt_format)
        pieces = prompt_pieces(request.text, target)
        context = PromptContext(
            path=request.path,
            imports=pieces.imports,
            class_header=pieces.class_header,
            class_methods=pieces.class_methods,
            header=pieces.header,
            docstring=pieces.docstring,
            indent=pieces.indent,
            prefix=pieces.prefix,
            suffix=pieces.suffix,
            tests=nearby_tests_source(request.root, prompt_tests(plan)),
            feedback=feedback,
        )
        params = SamplingParams(
            k=k or settings.k,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=settings.seed,
            lead=settings.lead_sequence,
        )
        return fit_prompt(
            context, fmt, count_tokens=_token_counter(engine), budget=_prompt_budget(engine, params)
        ), params

    def run(
        self,
        request: FixRequest,
        *,
        cancel: CancelToken | None = None,
        on_progress: ProgressCallback | None = None,
        on_result: ResultCallback | None = None,
        k: int | None = None,
    ) -> FixReport:
        """Generate, verify and rank candidates for the target of ``request``.

        Raises TargetError (nothing to rewrite), ModelNotFound / CorruptModel (no usable model),
        PromptTooLarge (the function alone does not fit the model's context),
        VerifyError (the project's tests cannot be collected) and Cancelled.
        """
        cancel = cancel or CancelToken()
        start = time.monotonic()
        settings = self.settings
        k = k or settings.k
        report = _Reporter(on_progress, total=k)

        report.stage("target", "finding the function to write")
        target = self.target(request)
        cancel.raise_if_cancelled()

        report.stage("baseline", f"checking the original {target.qualname} (baseline)")
        verifier = self.verifier(request.root, request.workspace, request.trusted)
        selection = verifier.select(target, request.text, cancel)
        cancel.raise_if_cancelled()
        baseline = _Baseline(verifier, selection, cancel, background=self.overlap_baseline)
        if not self.overlap_baseline:
            baseline.plan()  # raises the baseline's error before anything is generated

        results: list[CandidateResult] = []
        seen: dict[str, Candidate] = {}
        first_verified: list[float] = []
        failures: list[BaseException] = []
        n_generated = 0
        results_lock = threading.Lock()
        quorum_note: list[str] = []

        def one_round(prompt: Prompt, params: SamplingParams, first_index: int) -> None:
            """Generate ``params.k`` sequences; verify each distinct candidate as soon as it is finished."""
            pending: queue.Queue[Candidate | None] = queue.Queue()
            # Ends this round's generation: the user's cancel, or a quorum of agreeing passing samples
            # (settings.quorum) -- the rest of k would only add votes to a decided rank. What was generated
            # is still verified: a finished sample that disagrees is what a question is asked about.
            stop = CancelToken()
            unregister = cancel.on_cancel(lambda: stop.cancel(cancel.reason))

            def check_quorum() -> None:
                """Called with results_lock held, after a passing result or a duplicate's vote."""
                quorum = settings.quorum
                if quorum and not stop.cancelled and (votes := agreeing_votes(results, seen)) >= quorum:
                    stop.cancel(f"stopped at a quorum: {votes} passing samples behave alike")

            def on_generation(generation: Generation) -> None:
                # Runs on the generating thread: cheap work only, verification happens on the verify thread.
                nonlocal n_generated
                if generation.finish_reason == "cancelled":
                    return  # cut off mid-body (a cancel or the quorum): not a sample
                n_generated += 1
                report.generated(n_generated)
                candidate = candidate_from(generation, prompt, request.text, target)
                if candidate is None:
                    return
                candidate = dataclasses.replace(candidate, index=first_index + candidate.index)
                with results_lock:
                    if candidate.key in seen:
                        earlier = seen[candidate.key]
                        seen[candidate.key] = dataclasses.replace(earlier, duplicates=earlier.duplicates + 1)
                        check_quorum()
                        return
                    seen[candidate.key] = candidate
                pending.put(candidate)

            def verify_loop() -> None:
                while True:
                    candidate = pending.get()
                    if candidate is None or cancel.cancelled:
                        return
                    report.verifying(candidate.index)
                    try:
                        plan = baseline.plan()  # the first candidate waits for the baseline to finish
                        result = verifier.verify(
                            plan,
                            candidate,
                            cancel,
                            on_stage=functools.partial(report.verifying, candidate.index),
                        )
                    except Cancelled:
                        return
                    except BaseException as exc:  # surfaced on the request's thread below
                        failures.append(exc)
                        cancel.cancel(f"verification failed: {exc}")
                        return
                    result = dataclasses.replace(result, verified_at_s=time.monotonic() - start)
                    with results_lock:
                        results.append(result)
                        if result.passed and not first_verified:
                            first_verified.append(result.verified_at_s)
                        if result.passed:
                            check_quorum()
                    report.verified(result)
                    if on_result is not None:
                        on_result(result)

            verify_thread = threading.Thread(target=verify_loop, name="lsp-verify-verify", daemon=True)
            verify_thread.start()
            try:
                engine.generate(prompt, params, on_generation=on_generation, cancel=stop)
            finally:
                pending.put(None)
                verify_thread.join()
                unregister()
            if stop.cancelled and not cancel.cancelled:
                quorum_note.append(f"{stop.reason} ({n_generated} of {report.total} generated)")
            if failures:
                raise failures[0]
            if cancel.cancelled:
                baseline.raise_failure()  # a failed baseline stopped generation: its error is the answer
            cancel.raise_if_cancelled()

        try:  # loads the engine (while the baseline runs)
            prompt, params = self.prompt(request, target, selection, k=k, feedback=request.feedback)
            engine = self.engine()
        except BaseException:
            baseline.abandon()
            raise
        report.stage("generating", f"generating {k} candidates for {target.qualname}")
        one_round(prompt, params, 0)
        for attempt in range(1, settings.repair_rounds + 1):
            # A failed check is feedback: when nothing passed, show the model the most promising failure
            # and its first error, and sample k more (new seeds, so the sequences differ from round one).
            feedback = repair_feedback(results)
            if feedback is None or any(r.passed for r in results):
                break
            prompt, params = self.prompt(request, target, selection, k=k, feedback=feedback)
            params = dataclasses.replace(params, seed=params.seed + attempt * k)
            report.total += k
            report.stage(
                "generating", f"repairing {target.qualname}: {k} more candidates, told why the last failed"
            )
            one_round(prompt, params, attempt * k)

        plan = baseline.plan()  # its notes and probe; raises its error when no candidate was verified
        # Self-consistency votes were counted on `seen` after some candidates were already verified.
        votes = {key: candidate.duplicates for key, candidate in seen.items()}
        final = [
            dataclasses.replace(
                r, candidate=dataclasses.replace(r.candidate, duplicates=votes[r.candidate.key])
            )
            for r in results
        ]
        ranked = tuple(rank(final))
        seconds = time.monotonic() - start
        out = FixReport(
            target=target,
            results=ranked,
            n_generated=n_generated,
            seconds=seconds,
            first_verified_s=first_verified[0] if first_verified else None,
            message=summarise(target, ranked, n_generated, [*plan.notes, *quorum_note]),
            notes=(*plan.notes, *quorum_note),
            probe=plan.probe,
        )
        report.stage("done", out.message.splitlines()[0])
        return out


_STAGE_DEPTH = {"parse": 0, "mypy": 1, "tests": 2}


def prompt_tests(plan: TestSelection | VerifyPlan) -> list[str]:
    """The selected tests in the order the prompt shows them: those that name the function first (they say
    what it must do; the module's guard tests only what it must not break), each group in file order."""
    direct = set(plan.direct_tests)
    # The tests that reach it through other functions say how those are used, not what it must do.
    shown = [node_id for node_id in plan.pytest_targets if node_id not in plan.reaching_tests]
    return sorted(shown, key=lambda node_id: node_id not in direct)  # stable: file order kept


def agreeing_votes(results: Sequence[CandidateResult], seen: dict[str, Candidate]) -> int:
    """The largest number of generated samples (duplicates included, as counted in ``seen`` so far) among
    the passing ``results`` that behave alike -- the agreement the ranking's first vote counts."""
    passing = [
        dataclasses.replace(
            r, candidate=dataclasses.replace(r.candidate, duplicates=seen[r.candidate.key].duplicates)
        )
        for r in results
        if r.passed
    ]
    return max((agreeing_samples(passing, r) for r in passing), default=0)


def repair_feedback(results: Sequence[CandidateResult]) -> str | None:
    """The failed candidate that got furthest through the cascade (then the likeliest) and its error."""
    failed = [r for r in results if not r.passed and r.first_error]
    if not failed:
        return None
    best = max(
        failed,
        key=lambda r: (max((_STAGE_DEPTH[s.stage] for s in r.stages), default=0), r.candidate.mean_logprob),
    )
    return f"```python\n{best.candidate.body}\n```\n{best.first_error}"


def summarise(
    target: EditTarget, results: Sequence[CandidateResult], n_generated: int, notes: Sequence[str]
) -> str:
    """What was tried and, when nothing passed, why each candidate failed."""
    passing = [r for r in results if r.passed]
    distinct = len(results)
    head = (
        f"{target.qualname}: {len(passing)} of {distinct} distinct candidates passed "
        f"({n_generated} generated)"
    )
    lines = [head]
    if passing:
        best = passing[0]
        lines.append(f"best: {describe_evidence(best)}")
        if len(passing) > 1 and best.probe_outputs:
            samples = sum(r.candidate.duplicates + 1 for r in passing)
            lines.append(
                f"agreement: {agreeing_samples(passing, best)} of {samples} passing samples behave like the "
                f"best on {len(best.probe_outputs)} probe inputs"
            )
    elif distinct == 0:
        lines.append(
            "the model produced no usable function body (nothing parsed as a body for this function)"
        )
    else:
        for r in results:
            lines.append(f"candidate {r.candidate.index + 1}: {r.first_error or 'failed'}")
    lines.extend(notes)
    return "\n".join(lines)


def describe_evidence(result: CandidateResult) -> str:
    """One line: what was checked for this candidate."""
    return ", ".join(["parses", *result.evidence_parts, f"{result.seconds:.1f}s"])


class _Baseline:
    """``Verifier.baseline`` (mypy and the selected tests on the original code) on a thread of its own, so
    that the model generates meanwhile; :meth:`plan` waits for it.

    It runs under the request's cancel, and a failure cancels the request in turn: generation stops at once
    instead of producing k candidates that could never be verified, and :meth:`raise_failure` gives the
    request the baseline's own error (a :class:`VerifyError` stays the message it was)."""

    def __init__(
        self, verifier: Verifier, selection: TestSelection, cancel: CancelToken, *, background: bool
    ) -> None:
        """``background``: run on a thread of its own; else here, before this returns (no thread to start
        when nothing runs meanwhile)."""
        self._request = cancel
        self._cancel = CancelToken()  # the request's cancel, or the request failing before generation
        self._unlink = cancel.on_cancel(lambda: self._cancel.cancel(cancel.reason))
        self._future: concurrent.futures.Future[VerifyPlan] = concurrent.futures.Future()
        if background:
            threading.Thread(
                target=self._run, args=(verifier, selection), name="lsp-verify-baseline", daemon=True
            ).start()
        else:
            self._run(verifier, selection)

    def _run(self, verifier: Verifier, selection: TestSelection) -> None:
        try:
            plan = verifier.baseline(selection, self._cancel)
        except BaseException as exc:
            # Cancelled, whatever a killed run left behind is a cancel too.
            error = Cancelled(self._cancel.reason) if self._cancel.cancelled else exc
            self._future.set_exception(error)
            if not isinstance(error, Cancelled):
                self._request.cancel(f"checking the original code failed: {error}")
        else:
            self._future.set_result(plan)
        finally:
            self._unlink()

    def plan(self) -> VerifyPlan:
        """The plan, once the baseline has run; raises what the baseline raised."""
        return self._future.result()

    def raise_failure(self) -> None:
        """Wait for the baseline (cancelled, it ends at once) and raise its error, unless it was a cancel."""
        error = self._future.exception()
        if error is not None and not isinstance(error, Cancelled):
            raise error

    def abandon(self) -> None:
        """The request failed before generating: stop the baseline and wait for it to end."""
        self._cancel.cancel("the request failed before generation")
        concurrent.futures.wait([self._future])


class _Reporter:
    """Turns stage events into :class:`Progress` for the caller (thread-safe, monotonic counters)."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self.total = total
        self.n_generated = 0
        self.n_verified = 0
        self.n_passed = 0
        self.stage_name: Stage = "target"

    def _emit(self, message: str) -> None:
        if self._callback is None:
            return
        self._callback(
            Progress(
                stage=self.stage_name,
                message=message,
                generated=self.n_generated,
                verified=self.n_verified,
                passed=self.n_passed,
                total=self.total,
            )
        )

    def stage(self, stage: Stage, message: str) -> None:
        with self._lock:
            self.stage_name = stage
            self._emit(message)

    def generated(self, n: int) -> None:
        with self._lock:
            self.n_generated = n
            self._emit(f"generating {n}/{self.total}")

    def verifying(self, index: int, stage: str | None = None) -> None:
        with self._lock:
            self.stage_name = "verifying"
            suffix = f" — {stage}" if stage else ""
            self._emit(f"verifying {index + 1}/{self.total}{suffix}")

    def verified(self, result: CandidateResult) -> None:
        with self._lock:
            self.n_verified += 1
            self.n_passed += int(result.passed)
            self._emit(f"{self.n_passed} passed, {self.n_verified} verified")


def _engine_key(settings: Settings) -> tuple[object, ...]:
    remote = (
        settings.engine,
        settings.endpoint,
        settings.remote_model,
        settings.api_key_env,
        settings.remote_timeout_s,
    )
    return (
        settings.model_path,
        settings.n_ctx,
        settings.n_gpu_layers,
        settings.n_threads,
        settings.k,
        *remote,
    )


def _token_counter(engine: GenerationEngine) -> Callable[[str], int]:
    """The engine's own tokenizer, or a conservative estimate for an engine without one."""
    tokenize = getattr(engine, "tokenize", None)
    if tokenize is None:
        return estimate_tokens
    return lambda text: len(tokenize(text))


def _prompt_budget(engine: GenerationEngine, params: SamplingParams) -> int:
    """Prompt tokens that fit next to the candidates; without the engine's own answer, as if the k
    sequences shared one context (llama.cpp's unified KV cache)."""
    budget = getattr(engine, "prompt_budget", None)
    if budget is not None:
        return int(budget(params))
    return engine.info.n_ctx - params.k * params.max_tokens


def load_engine(settings: Settings) -> GenerationEngine:
    if settings.engine == "openai":
        # The local model is never resolved or loaded: generation happens on the server.
        from .model.remote import RemoteEngine

        return RemoteEngine(
            settings.endpoint,
            model=settings.remote_model,
            api_key_env=settings.api_key_env,
            n_ctx=settings.n_ctx,
            n_seq_max=max(settings.k, 1),
            timeout_s=settings.remote_timeout_s,
        )
    model = resolve_model(settings.model_path)
    return Engine(
        model.path,
        n_ctx=settings.n_ctx,
        n_seq_max=max(settings.k, 1),
        n_gpu_layers=settings.n_gpu_layers,
        n_threads=settings.n_threads,
    )


def candidate_from(generation: Generation, prompt: Prompt, text: str, target: EditTarget) -> Candidate | None:
    """The candidate a generated sequence proposes for ``target`` in ``text``; None without a usable body."""
    body = extract_body(prompt.prefill + generation.text, target)
    if body is None:
        return None
    return Candidate(
        index=generation.index,
        body=body,
        new_text=splice_body(text, target, body),
        key=normalise(body),
        mean_logprob=generation.mean_logprob,
        n_tokens=generation.n_tokens,
        generated_s=generation.seconds,
    )
