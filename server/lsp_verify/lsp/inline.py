"""Verified inline completion (LSP 3.18 ``textDocument/inlineCompletion``): ghost text that has passed.

Inside a stub body (``...``, ``pass``, ``raise NotImplementedError``, a TODO) or on the empty line after a
``def`` line and its docstring, a request starts one background run of the pipeline for that document
version (debounced; an edit or closing the file cancels it, as for every job of the document) and is
answered with nothing. A later request for the same version gets the best *verified* body, once one
exists - never unverified text. ``$/progress`` shows that verification is under way, and the item's
command carries the evidence line (it opens the run's report).

The ghost is ready as soon as the *first* candidate passes (issue 15): the progress ends there, which is
the client's cue to ask again, while the run goes on verifying the other candidates for the report. A
better-ranked body found later does not replace the ghost (it is in the report): what the user is looking
at does not change under them.

An inline item replaces text on one line only (LSP): the ghost replaces the stub's line, or fills the
empty line, with the body that was verified.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from ..cancel import Cancelled
from ..pipeline import describe_evidence
from ..syntax.target import EditTarget, TargetError
from ..syntax.targets import find_stub_targets
from ..verify.types import CandidateResult
from . import actions, jobs
from .progress import WorkDoneProgress

if TYPE_CHECKING:
    from .server import VerifyServer

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.3
"""Typing through a stub starts one run, for the version the user paused on."""
PROGRESS_TITLE = "lsp-verify: verifying a completion"
"""The run's ``$/progress`` title; the VS Code extension asks for inline suggestions again when a progress
with this title ends (client-vscode/src/progress.ts, INLINE_RUN_TITLE)."""


@dataclasses.dataclass(frozen=True)
class Spot:
    """Where a ghost can go: the function, and the one line its body replaces (or fills)."""

    target: EditTarget
    line: int
    fills_empty_line: bool


@dataclasses.dataclass(frozen=True)
class Ghost:
    """The verified body for one spot of one document version."""

    line: int
    text: str
    evidence: str


def spot_at(text: str, path: Path, line: int, version: int | None) -> Spot | None:
    """The stub whose one-line body is on ``line``, or the empty ``line`` after a docstring-only stub."""
    try:
        stubs = find_stub_targets(text, path, version)
    except TargetError:
        return None
    lines = text.splitlines()
    for target in stubs:
        if target.current_body.strip():
            if target.body_start_line == target.body_end_line == line:
                return Spot(target, line, fills_empty_line=False)
        elif line == target.def_end_line + 1 and line < len(lines) and not lines[line].strip():
            return Spot(target, line, fills_empty_line=True)
    return None


class InlineCompletions:
    """Runs and their verified results, per document version."""

    def __init__(self) -> None:
        self._started: dict[str, tuple[int | None, str]] = {}
        self._ready: dict[tuple[str, int | None, str], Ghost | None] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def complete(
        self, ls: VerifyServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList | None:
        """The handler's answer, at once: the verified ghost, or nothing (starting a run if none has)."""
        if not ls.settings.inline_completion:
            return None
        doc = ls.workspace.get_text_document(params.text_document.uri)
        if not doc.uri.startswith("file:") or Path(doc.path).suffix != ".py":
            return None
        spot = spot_at(doc.source, Path(doc.path), params.position.line, doc.version)
        if spot is None:
            return None
        key = (doc.uri, doc.version, spot.target.qualname)
        if key in self._ready:
            ghost = self._ready[key]
            if ghost is None or ghost.line != params.position.line:
                return types.InlineCompletionList(items=[])
            return types.InlineCompletionList(items=[_item(ghost, doc.lines[ghost.line], doc.position_codec)])
        if self._started.get(doc.uri) != key[1:]:
            self._started[doc.uri] = key[1:]
            older = self._tasks.pop(doc.uri, None)
            if older is not None:
                older.cancel()
            self._tasks[doc.uri] = asyncio.get_running_loop().create_task(self._run(ls, doc.uri, spot))
        return types.InlineCompletionList(items=[])

    def closed(self, uri: str) -> None:
        task = self._tasks.pop(uri, None)
        if task is not None:
            task.cancel()
        self._started.pop(uri, None)
        for key in [key for key in self._ready if key[0] == uri]:
            del self._ready[key]

    async def _run(self, ls: VerifyServer, uri: str, spot: Spot) -> None:
        await asyncio.sleep(DEBOUNCE_S)
        doc = ls.workspace.get_text_document(uri)
        target = spot.target
        if doc.version != target.version:
            self._started.pop(uri, None)
            return  # edited while debouncing: the next request starts the run for the new version
        path = Path(doc.path)
        request = ls.request_for(path, doc.source, target.def_start_line, doc.version)
        progress = WorkDoneProgress(ls, f"{PROGRESS_TITLE} for {target.qualname}", enabled=ls.shows_progress)
        await progress.begin(f"queued: {target.qualname}")
        key = (uri, doc.version, target.qualname)
        loop = asyncio.get_running_loop()
        first: list[CandidateResult] = []

        def on_result(result: CandidateResult) -> None:
            # On the verify thread: hand the first passing candidate to the event loop, once.
            if result.passed and not first:
                first.append(result)
                loop.call_soon_threadsafe(self._first_verified, key, spot, result, progress)

        ls.preparer.asked(uri, target.qualname)  # a preparation of another function would only delay this
        job = ls.worker.submit(
            functools.partial(ls.run_pipeline, request, progress, on_result=on_result),
            key=(uri, "inline completion"),
            uri=uri,
            progress_token=progress.token,
        )
        try:
            report = await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:  # closed, or a newer version's run: the job goes too
            job.cancel(jobs.SUPERSEDED)
            progress.end(f"stopped: {job.token.reason}")
            raise
        except Cancelled:
            progress.end(f"stopped: {job.token.reason}")
            if self._started.get(uri) == key[1:]:
                del self._started[uri]  # e.g. the settings changed: a later request may try again
            return
        except Exception as exc:
            log.warning("inline completion for %s failed: %s", target.qualname, exc)
            progress.end("failed")
            self._ready.setdefault(key, None)  # a ghost verified before the failure stays
            return
        finally:
            if self._tasks.get(uri) is asyncio.current_task():
                del self._tasks[uri]
        best = report.best
        for old in [k for k in self._ready if k[0] == uri and k[1] != doc.version]:
            del self._ready[old]
        if key not in self._ready:  # nothing passed early (e.g. only after the ranking's tie-break)
            self._ready[key] = _ghost(spot, best) if best is not None else None
        ls.last_report = (report, uri)
        progress.end(report.message.splitlines()[0])

    def _first_verified(
        self,
        key: tuple[str, int | None, str],
        spot: Spot,
        result: CandidateResult,
        progress: WorkDoneProgress,
    ) -> None:
        """On the event loop: the first passing candidate becomes the ghost, and the progress ends (the
        client asks again); the run goes on verifying the others for the report."""
        if self._started.get(key[0]) != key[1:] or key in self._ready:
            return  # a newer version's run, or the file was closed
        self._ready[key] = _ghost(spot, result)
        progress.end(f"{key[2]}: verified ({describe_evidence(result)}); checking the other candidates")


def _ghost(spot: Spot, result: CandidateResult) -> Ghost:
    body = result.candidate.body.rstrip("\n")
    return Ghost(spot.line, body + "\n" if spot.fills_empty_line else body, describe_evidence(result))


def _item(ghost: Ghost, line_text: str, codec: PositionCodec) -> types.InlineCompletionItem:
    end = codec.client_num_units(line_text.rstrip("\r\n"))
    return types.InlineCompletionItem(
        insert_text=ghost.text,
        range=types.Range(start=types.Position(ghost.line, 0), end=types.Position(ghost.line, end)),
        command=types.Command(title=f"lsp-verify: {ghost.evidence}", command=actions.SHOW_REPORT),
    )
