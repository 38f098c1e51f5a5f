"""The lsp-verify language server (pygls 2): capabilities, handlers, cancellation and versioned edits.

Handlers are thin: get the document, hand the work to the pipeline, convert the result. Each is named after
its LSP method and is, on purpose, one of

- a plain ``def`` — fast and on the event loop: document sync, offering code actions (tree-sitter only),
  cancels, ``shutdown``, and the two that only start background work and answer at once: ``didSave``/
  ``didOpen`` (the debounced check on save, :mod:`.diagnostics`) and ``inlineCompletion`` (:mod:`.inline`);
- an ``async def`` — it awaits the client (workspace/configuration, workDoneProgress/create, applyEdit) or
  the pipeline worker (:mod:`.jobs`), which runs all model, mypy and test work on one thread.

Start it with ``lsp-verify serve`` (stdio) or ``python -m lsp_verify.lsp.server [--tcp HOST:PORT]``; both
call :func:`main`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any, Protocol

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcContentModified,
    JsonRpcInvalidParams,
    JsonRpcRequestCancelled,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import TextDocument

from .. import __version__
from ..ask import Asked, ask_and_keep, first_question
from ..cancel import Cancelled, CancelToken
from ..config import Settings, find_project_root
from ..model.engine import EngineError
from ..model.prompts import PromptTooLarge
from ..model.source import ModelError
from ..pipeline import FixReport, FixRequest, Pipeline, Progress, ResultCallback
from ..syntax.target import EditTarget, TargetError
from ..verify.cascade import Verifier, VerifyError
from . import actions, diagnostics, inline, jobs, options, prepare, transport
from .ask import EditorAsker, answer_actions, answer_edit, can_ask, can_ask_value
from .edits import EditOutsideTarget, text_edit, workspace_edit
from .progress import WorkDoneProgress
from .watch import WorkspaceWatcher

log = logging.getLogger("lsp_verify.lsp")


class PipelineLike(Protocol):
    """What the server needs of :class:`~lsp_verify.pipeline.Pipeline`."""

    def run(
        self,
        request: FixRequest,
        *,
        cancel: CancelToken | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_result: ResultCallback | None = None,
    ) -> FixReport: ...

    def engine(self) -> object: ...

    def update_settings(self, settings: Settings) -> None: ...

    def invalidate(self, paths: Sequence[Path]) -> None: ...

    def verifier(self, root: Path, workspace: Path | None = None, trusted: bool = True) -> Verifier: ...

    def warm_up(self, root: Path, workspace: Path | None = None, trusted: bool = True) -> None: ...

    def prepare(self, request: FixRequest, cancel: CancelToken | None = None) -> object: ...

    def close(self) -> None: ...


PipelineFactory = Callable[[Settings], PipelineLike]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a verification request ended with: an edit to apply, or the message saying why not."""

    message: str
    edit: types.WorkspaceEdit | None = None
    report: FixReport | None = None


class VerifyProtocol(LanguageServerProtocol):
    """pygls' protocol, plus: ``$/cancelRequest`` also stops the pipeline job the request started.

    (pygls cancels the request's future, which for ``workspace/executeCommand`` is a wrapper that never
    reaches the running handler.)
    """

    def _handle_cancel_notification(self, msg_id: int | str) -> None:
        server = self._server
        if isinstance(server, VerifyServer):
            server.worker.cancel(lambda job: job.request_id == msg_id, jobs.CLIENT_CANCELLED)
        super()._handle_cancel_notification(msg_id)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(
        self, params: types.DidChangeTextDocumentParams
    ) -> Generator[Any, Any, None]:
        """pygls' document sync, except that a change with a range outside the document is refused whole
        (pygls would drop its text or splice it in the wrong place, and every later edit would be computed
        on text the editor does not have). The document stays as it was and the user is told."""
        doc = self.workspace.get_text_document(params.text_document.uri)
        problem = change_problem(doc, params.content_changes)
        if problem is not None:
            server = self._server
            message = (
                f"lsp-verify: ignored an edit of {doc.filename} (version {params.text_document.version}): "
                f"{problem}; lsp-verify keeps version {doc.version} (reopen the file to resynchronise)"
            )
            if isinstance(server, VerifyServer):
                server.show(types.MessageType.Error, message)
            return
        yield from super().lsp_text_document__did_change(params)


class VerifyServer(LanguageServer):
    """The server's state: settings, the pipeline, its worker, the file watcher and the last report."""

    def __init__(self, pipeline_factory: PipelineFactory = Pipeline) -> None:
        super().__init__(
            "lsp-verify",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=VerifyProtocol,
        )
        self.pipeline_factory = pipeline_factory
        self.pipeline: PipelineLike | None = None
        self.settings = Settings()
        self.init_options: dict[str, Any] = {}
        self.root: Path | None = None
        self.worker = jobs.Worker()
        self.watcher: WorkspaceWatcher | None = None
        self.engine_ready = False
        self.last_report: tuple[FixReport, str] | None = None
        self.answers: dict[str, tuple[int | None, EditTarget, list[types.CodeAction]]] = {}
        """Per document: the answer actions of a question this client cannot be asked (see lsp/ask.py)."""
        self.shutdown_requested = False
        self._shown_problems: set[str] = set()
        self._report_dir: Path | None = None
        self._closed = False
        self.on_save = diagnostics.OnSaveChecks()
        self.inline = inline.InlineCompletions()
        self.preparer = prepare.Preparer()

    # -- client capabilities ---------------------------------------------------------------------------
    @property
    def resolves_edit(self) -> bool:
        """The client asks codeAction/resolve for a missing ``edit`` (so the edit can be computed lazily)."""
        action = self.client_capabilities.text_document and self.client_capabilities.text_document.code_action
        support = action.resolve_support if action else None
        return bool(action and action.data_support and support and "edit" in support.properties)

    @property
    def shows_progress(self) -> bool:
        window = self.client_capabilities.window
        return bool(window and window.work_done_progress)

    @property
    def takes_document_changes(self) -> bool:
        workspace = self.client_capabilities.workspace
        edit = workspace.workspace_edit if workspace else None
        return bool(edit and edit.document_changes)

    @property
    def pulls_configuration(self) -> bool:
        workspace = self.client_capabilities.workspace
        return bool(workspace and workspace.configuration)

    @property
    def shows_documents(self) -> bool:
        window = self.client_capabilities.window
        return bool(window and window.show_document and window.show_document.support)

    # -- settings --------------------------------------------------------------------------------------
    def apply_settings(self, settings: Settings) -> None:
        """Use ``settings`` from now on; a running request finishes with the settings it started with."""
        self.settings = settings
        if self.pipeline is None:
            self.pipeline = self.pipeline_factory(settings)
            return
        pipeline = self.pipeline

        def update(token: CancelToken) -> None:
            pipeline.update_settings(settings)
            self.engine_ready = False

        self.worker.submit(update)

    async def read_settings(self) -> Settings:
        """Re-read every source of settings (asking the client for its ``lspVerify`` section if it can)."""
        editor: dict[str, Any] | None = None
        if self.pulls_configuration:
            scope = from_fs_path(str(self.root)) if self.root else None
            try:
                answer = await self.workspace_configuration_async(
                    types.ConfigurationParams(
                        items=[types.ConfigurationItem(section=options.SECTION, scope_uri=scope)]
                    )
                )
            except Exception as exc:
                log.warning("workspace/configuration failed: %s", exc)
            else:
                editor = _as_dict(answer[0] if answer else None)
        return options.effective_settings(self.root, self.init_options, editor)

    def show_problems(self, settings: Settings) -> None:
        """Each settings problem once, as a warning; the server keeps running on the fallback values."""
        new = [problem for problem in settings.problems if problem not in self._shown_problems]
        self._shown_problems.update(new)
        if new:
            self.show(types.MessageType.Warning, "lsp-verify settings: " + "; ".join(new))

    # -- talking to the user ---------------------------------------------------------------------------
    def show(self, kind: types.MessageType, message: str) -> None:
        log.log(logging.WARNING if kind <= types.MessageType.Warning else logging.INFO, "%s", message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def log_to_client(self, message: str) -> None:
        self.window_log_message(types.LogMessageParams(type=types.MessageType.Log, message=message))

    def report_server_error(self, error: Exception, source: Any) -> None:
        # A malformed message from the client is logged, not shown to the user in a pop-up.
        log.warning("%s: %s", getattr(source, "__name__", source), error)

    # -- the work --------------------------------------------------------------------------------------
    @property
    def folders(self) -> tuple[Path, ...]:
        """The workspace folders, resolved: as the client gave them at initialize and changed them since
        (pygls keeps the list), else its root."""
        try:
            uris = [folder.uri for folder in self.workspace.folders.values()]
        except RuntimeError:  # before initialize
            uris = []
        paths = [Path(path) for path in map(to_fs_path, uris) if path]
        return tuple(path.resolve() for path in paths or ([self.root] if self.root else []))

    def folder_of(self, path: Path) -> Path | None:
        """The innermost workspace folder that holds ``path`` once links are resolved (a link inside a
        folder to a file outside it is outside it); None when none does."""
        real = path.resolve()
        return max(
            (f for f in self.folders if real.is_relative_to(f)), key=lambda f: len(f.parts), default=None
        )

    def trusts(self, path: Path) -> bool:
        """Whether the code of ``path``'s project may run: the client trusts the workspace, and the file
        lies in one of its folders. Trust is the editor's for the folders it opened, not for another clone
        whose file was opened beside them; with no folder at all (a lone file), the client's word stands."""
        return self._covered(self.folder_of(path))

    def _covered(self, folder: Path | None) -> bool:
        """Whether the client's trust covers a file in ``folder`` (None: in no workspace folder)."""
        return self.settings.trusted and (folder is not None or not self.folders)

    def request_for(
        self, path: Path, text: str, line: int | None, version: int | None, feedback: str | None = None
    ) -> FixRequest:
        """A request for the function at ``line`` of ``path``: its project's root, never above the folder
        that holds it (each member of a monorepo opened at its top is a project of its own:
        ``config.find_project_root``), and whether the workspace's trust covers it."""
        folder = self.folder_of(path)
        return FixRequest(
            path=path,
            text=text,
            root=find_project_root(path, within=folder),
            line=line,
            version=version,
            feedback=feedback,
            workspace=folder,
            trusted=self._covered(folder),
        )

    def settings_for(self, request: FixRequest) -> Settings:
        """The settings a run for ``request`` goes by: untrusted outside the workspace's folders."""
        return self.settings if request.trusted else dataclasses.replace(self.settings, trusted=False)

    async def fix(self, args: actions.FixArgs, title: str) -> Outcome:
        """Generate, verify and rank candidates for the function at ``args``; an edit for the best one.

        Raises ContentModified when the document changed meanwhile and RequestCancelled when cancelled.
        """
        doc = self.workspace.get_text_document(args.uri)
        if args.version is not None and doc.version is not None and doc.version != args.version:
            raise JsonRpcContentModified(
                f"the document changed since the action was offered (version {args.version}, "
                f"now {doc.version}); ask for the action again"
            )
        text, version, path = doc.source, doc.version, Path(doc.path)
        request = self.request_for(path, text, args.line, version, args.feedback)
        try:
            target = Pipeline.target(request)
        except TargetError as exc:
            self.show(types.MessageType.Warning, f"lsp-verify: {exc}")
            return Outcome(str(exc))

        self.preparer.asked(args.uri, target.qualname)
        progress = WorkDoneProgress(self, title, enabled=self.shows_progress)
        await progress.begin(f"queued: {target.qualname}")
        job = self.worker.submit(
            functools.partial(self._run_and_ask, request, progress, asyncio.get_running_loop()),
            key=(args.uri, target.qualname),
            uri=args.uri,
            request_id=self.protocol.msg_id,
            progress_token=progress.token,
        )
        try:
            asked: Asked = await asyncio.wrap_future(job.future)
            report = asked.fix
        except asyncio.CancelledError:  # $/cancelRequest of an async handler cancels its task
            job.cancel(jobs.CLIENT_CANCELLED)
            progress.end("cancelled")
            raise
        except Cancelled:
            progress.end(f"stopped: {job.token.reason}")
            if job.token.reason == jobs.CONTENT_MODIFIED:
                raise JsonRpcContentModified(
                    f"{target.qualname}: {jobs.CONTENT_MODIFIED}; not applied"
                ) from None
            raise JsonRpcRequestCancelled(f"{target.qualname}: {job.token.reason}") from None
        except (ModelError, EngineError, VerifyError, TargetError, PromptTooLarge) as exc:
            progress.end("failed")
            message = f"lsp-verify could not check {target.qualname}: {exc}"
            self.show(types.MessageType.Error, message)
            return Outcome(message)
        except Exception as exc:
            log.exception("the pipeline failed for %s", target.qualname)
            progress.end("failed")
            message = f"lsp-verify failed on {target.qualname}: {type(exc).__name__}: {exc}"
            self.show(types.MessageType.Error, message)
            return Outcome(message)
        progress.end(report.message.splitlines()[0])
        self.last_report = (report, args.uri)
        self.log_to_client(report.message)
        return self._outcome(report, args.uri, text, version, doc.position_codec, asked, request)

    def run_pipeline(
        self,
        request: FixRequest,
        progress: WorkDoneProgress,
        token: CancelToken,
        on_result: ResultCallback | None = None,
    ) -> FixReport:
        """On the worker thread: one pipeline run (the model loaded first)."""
        assert self.pipeline is not None
        if not self.engine_ready:
            progress.report("loading model", 1)
            self.pipeline.engine()
            self.engine_ready = True
        return self.pipeline.run(
            request, cancel=token, on_progress=progress.pipeline_progress, on_result=on_result
        )

    def _run_and_ask(
        self,
        request: FixRequest,
        progress: WorkDoneProgress,
        loop: asyncio.AbstractEventLoop,
        token: CancelToken,
    ) -> Asked:
        """On the worker thread: the run, then the questions its candidates raise (lsp/ask.py)."""

        def run(request: FixRequest) -> FixReport:
            return self.run_pipeline(request, progress, token)

        capabilities = self.client_capabilities
        asker = None
        if can_ask(capabilities):
            asker = EditorAsker(self, loop, token, values=can_ask_value(capabilities))
        return ask_and_keep(self.settings_for(request), request, run(request), asker, run)

    def _outcome(
        self,
        report: FixReport,
        uri: str,
        text: str,
        version: int | None,
        codec: Any,
        asked: Asked | None = None,
        request: FixRequest | None = None,
    ) -> Outcome:
        current = self.workspace.get_text_document(uri)
        if current.version != version:
            raise JsonRpcContentModified(
                f"{report.target.qualname}: the document changed while it was verified "
                f"(version {version}, now {current.version}); not applied"
            )
        settings = self.settings_for(request) if request is not None else self.settings
        best = report.best
        if best is None:
            message = report.message
            if not settings.trusted:
                message += "\n" + actions.UNTRUSTED_HELP
            self.show(types.MessageType.Warning, f"lsp-verify: no candidate passed.\n{message}")
            return Outcome(message, report=report)
        question = None if asked is None or asked.answers else first_question(report, settings)
        if (
            asked is not None
            and request is not None
            and question is not None
            and not can_ask(self.client_capabilities)
        ):
            # Cannot ask: one code action per answer, offered at the function, instead of a guess.
            choices = answer_actions(
                settings, request, asked, question, codec, uri=uri, documents=self.takes_document_changes
            )
            if choices:
                self.answers[uri] = (version, report.target, choices)
                message = (
                    f"lsp-verify: the verified candidates for {report.target.qualname} disagree: "
                    f"{question.text()} Pick the right output among the code actions at the function."
                )
                self.show(types.MessageType.Info, message)
                return Outcome(message, report=report)
        try:
            if asked is not None:
                change, message = answer_edit(
                    asked, uri, text, version, codec, documents=self.takes_document_changes
                )
                return Outcome(message, change, report)
            edit = text_edit(text, best.candidate.new_text, report.target, codec)
        except EditOutsideTarget as exc:
            self.show(types.MessageType.Error, f"lsp-verify: {exc}")
            return Outcome(str(exc), report=report)
        if edit is None:
            return Outcome(f"{report.target.qualname}: the best candidate is the current code", report=report)
        change = workspace_edit(uri, version, edit, document_changes=self.takes_document_changes)
        return Outcome(report.message, change, report)

    def report_path(self) -> Path:
        if self._report_dir is None:
            self._report_dir = Path(tempfile.mkdtemp(prefix="lsp-verify-report-"))
        return self._report_dir / "report.md"

    def close(self) -> None:
        """Stop everything this server started (children of the pipeline included); idempotent."""
        if self._closed:
            return
        self._closed = True
        self.preparer.close()
        self.worker.cancel_all(jobs.SHUTTING_DOWN)
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if self.worker.idle(timeout=10):
            if self.pipeline is not None:
                self.pipeline.close()
                self.pipeline = None
        else:
            log.warning("the pipeline did not stop within 10s; exiting without closing it")
        self.worker.stop()
        if self._report_dir is not None:
            shutil.rmtree(self._report_dir, ignore_errors=True)


def change_problem(doc: TextDocument, changes: Sequence[types.TextDocumentContentChangeEvent]) -> str | None:
    """Why ``changes`` cannot apply to ``doc`` in order (a range reversed or past the end), or None.

    Each change is checked against the text the previous ones produce, on a copy. A character past the
    end of its line is allowed: LSP says it means the line's end.
    """
    scratch = TextDocument(doc.uri, doc.source, doc.version, position_codec=doc.position_codec)
    for index, change in enumerate(changes):
        if isinstance(change, types.TextDocumentContentChangePartial):
            start, end = change.range.start, change.range.end
            n_lines = len(scratch.lines)
            where = f"change {index + 1}: range {start.line}:{start.character}-{end.line}:{end.character}"
            if (start.line, start.character) > (end.line, end.character):
                return f"{where} ends before it starts"
            if end.line > n_lines:
                return f"{where} is past the end of the document ({n_lines} lines)"
        scratch.apply_change(change)
    return None


# -- handlers ----------------------------------------------------------------------------------------------
def initialize(ls: VerifyServer, params: types.InitializeParams) -> None:
    ls.init_options = _as_dict(params.initialization_options) or {}
    if params.initialization_options is not None and not isinstance(params.initialization_options, dict):
        log.warning("initializationOptions is not an object: %r (ignored)", params.initialization_options)
    ls.root = _workspace_root(params)
    settings = options.effective_settings(ls.root, ls.init_options, None)
    ls.apply_settings(settings)
    log.info("lsp-verify %s (pid %d, client pid %s)", __version__, os.getpid(), params.process_id)
    log.info("cwd: %s", Path.cwd())
    log.info("sys.path: %s", sys.path)
    log.info("workspace root: %s", ls.root)
    log.info("settings: %s", settings)


async def initialized(ls: VerifyServer, params: types.InitializedParams) -> None:
    if ls.pulls_configuration:
        settings = await ls.read_settings()
        if settings != ls.settings:
            ls.apply_settings(settings)
            log.info("settings (with workspace/configuration): %s", settings)
        ls.settings = settings  # equal settings may still carry new problems
    ls.show_problems(ls.settings)
    if not ls.settings.trusted:
        ls.log_to_client(actions.UNTRUSTED_HELP)
    if ls.root is not None:
        pipeline = ls.pipeline

        def invalidate(paths: list[Path]) -> None:
            if pipeline is not None:
                ls.worker.submit(lambda token: pipeline.invalidate(paths))

        ls.watcher = WorkspaceWatcher(ls.root, invalidate)
        try:
            ls.watcher.start()
        except OSError as exc:  # e.g. inotify limits: the server works, caches are just not refreshed
            log.warning("cannot watch %s: %s", ls.root, exc)
            ls.watcher = None
        if pipeline is not None:
            # The verifier's workers start now, while the user reads code, not at the first request
            # (a cold first verification paid their start-up: bench/verification.py, cold vs warm).
            root = ls.root
            ls.worker.submit(lambda token: pipeline.warm_up(root, root))


async def workspace_did_change_configuration(
    ls: VerifyServer, params: types.DidChangeConfigurationParams
) -> None:
    if ls.pulls_configuration:
        settings = await ls.read_settings()
    else:
        pushed = _as_dict(params.settings)
        editor = _as_dict(pushed.get(options.SECTION)) if pushed else None
        settings = options.effective_settings(ls.root, ls.init_options, editor)
    log.info("settings changed: %s", settings)
    ls.apply_settings(settings)
    ls.show_problems(settings)


def shutdown(ls: VerifyServer, params: None) -> None:
    ls.shutdown_requested = True
    ls.preparer.close()
    ls.worker.cancel_all(jobs.SHUTTING_DOWN)


def exit(ls: VerifyServer, params: None) -> None:
    ls.close()


def text_document_did_change(ls: VerifyServer, params: types.DidChangeTextDocumentParams) -> None:
    # A result computed for the old text could only be refused: stop computing it.
    uri = params.text_document.uri
    ls.worker.cancel(lambda job: job.uri == uri, jobs.CONTENT_MODIFIED)


def text_document_did_close(ls: VerifyServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.worker.cancel(lambda job: job.uri == uri, jobs.CLIENT_CANCELLED)
    ls.on_save.closed(ls, uri)
    ls.inline.closed(uri)


def text_document_did_open(ls: VerifyServer, params: types.DidOpenTextDocumentParams) -> None:
    # A file opened with uncommitted changes is checked at once, as if just saved.
    ls.on_save.opened(ls, ls.workspace.get_text_document(params.text_document.uri))


def text_document_did_save(ls: VerifyServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.on_save.schedule(ls, params.text_document.uri)


def text_document_inline_completion(
    ls: VerifyServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList | None:
    return ls.inline.complete(ls, params)


def text_document_code_action(
    ls: VerifyServer, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    if not doc.uri.startswith("file:") or Path(doc.path).suffix != ".py":
        return None
    fixes: list[types.CodeAction] = []
    if actions.wanted(params.context.only, diagnostics.FIX_KIND):
        fixes = diagnostics.quick_fixes(ls, doc, params.context.diagnostics)
    if not actions.wanted(params.context.only):
        return fixes or None
    line = params.range.start.line
    path = Path(doc.path)
    request = ls.request_for(path, doc.source, line, doc.version)
    try:
        target: EditTarget = Pipeline.target(request)
    except TargetError:
        return fixes or None
    args = actions.FixArgs(uri=doc.uri, line=line, version=doc.version)
    offered = [actions.code_action(target, args, trusted=request.trusted, lazy_edit=ls.resolves_edit)]
    ls.preparer.cursor(ls, request, doc.uri, target.qualname)
    answers = ls.answers.get(doc.uri)
    if answers is not None and answers[0] == doc.version and answers[1].qualname == target.qualname:
        offered = [*answers[2], *offered]
    return [*fixes, *offered]


async def code_action_resolve(ls: VerifyServer, action: types.CodeAction) -> types.CodeAction:
    if action.edit is not None or action.data is None:
        return action
    try:
        args = actions.FixArgs.from_json([action.data])
    except ValueError as exc:
        raise JsonRpcInvalidParams(f"codeAction/resolve: {exc}") from None
    outcome = await ls.fix(args, action.title)
    action.edit = outcome.edit
    return action


async def verify_and_apply(ls: VerifyServer, *arguments: Any) -> dict[str, Any]:
    """``lsp-verify.verifyAndApply``: args ``[{uri, line[, version]}]`` or ``[uri, {line, character}]``."""
    try:
        args = actions.FixArgs.from_json(arguments)
    except ValueError as exc:
        raise JsonRpcInvalidParams(f"{actions.VERIFY_AND_APPLY}: {exc}") from None
    outcome = await ls.fix(args, "lsp-verify: verify and apply")
    if outcome.edit is None:
        return {"applied": False, "message": outcome.message}
    result = await ls.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(edit=outcome.edit, label="lsp-verify: verified edit")
    )
    if not result.applied:
        reason = result.failure_reason or "no reason given"
        ls.show(
            types.MessageType.Warning, f"lsp-verify: the editor did not apply the verified edit ({reason})"
        )
    return {"applied": result.applied, "message": outcome.message}


def show_report(ls: VerifyServer, *arguments: Any) -> str | None:
    """``lsp-verify.showReport``: the full report of the last run, as markdown (also logged and shown)."""
    if ls.last_report is None:
        ls.show(types.MessageType.Info, "lsp-verify: no verification has run yet")
        return None
    report, uri = ls.last_report
    markdown = actions.report_markdown(report, uri=uri, trusted=ls.trusts(Path(to_fs_path(uri) or uri)))
    ls.window_log_message(types.LogMessageParams(type=types.MessageType.Info, message=markdown))
    if ls.shows_documents:
        path = ls.report_path()
        path.write_text(markdown, encoding="utf-8")
        ls.window_show_document(types.ShowDocumentParams(uri=from_fs_path(str(path)) or "", take_focus=True))
    return markdown


def window_work_done_progress_cancel(ls: VerifyServer, params: types.WorkDoneProgressCancelParams) -> None:
    ls.worker.cancel(lambda job: job.progress_token == params.token, jobs.CLIENT_CANCELLED)


def build_server(pipeline_factory: PipelineFactory = Pipeline) -> VerifyServer:
    """A server with every feature registered (``pipeline_factory`` builds the pipeline at initialize)."""
    server = VerifyServer(pipeline_factory)
    server.feature(types.INITIALIZE)(initialize)
    server.feature(types.INITIALIZED)(initialized)
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(workspace_did_change_configuration)
    server.feature(types.SHUTDOWN)(shutdown)
    server.feature(types.EXIT)(exit)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(text_document_did_change)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(text_document_did_close)
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(text_document_did_open)
    server.feature(types.TEXT_DOCUMENT_DID_SAVE)(text_document_did_save)
    server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(
        text_document_inline_completion
    )
    server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[actions.ACTION_KIND, diagnostics.FIX_KIND], resolve_provider=True
        ),
    )(text_document_code_action)
    server.feature(types.CODE_ACTION_RESOLVE)(code_action_resolve)
    server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)(window_work_done_progress_cancel)
    server.command(actions.VERIFY_AND_APPLY)(verify_and_apply)
    server.command(actions.SHOW_REPORT)(show_report)
    return server


# -- running it --------------------------------------------------------------------------------------------
def serve(tcp: tuple[str, int] | None = None, *, server: VerifyServer | None = None) -> int:
    """Serve one client on stdio (or on a TCP socket, for debugging) until ``exit``; the exit code.

    0 after ``shutdown`` + ``exit``; 1 when the client went away without them (end of input, or its process
    ``initialize`` named is gone). Child processes of the pipeline are killed either way.
    """
    server = server or build_server()
    if tcp is not None:
        try:
            server.start_tcp(*tcp)
        finally:
            server.close()
        return 0
    stdout = transport.reserve_stdout()
    code = 1
    try:
        asyncio.run(
            transport.serve_stdio(
                server,
                # The raw file: a daemon thread blocked in a buffered read would hold its lock at shutdown.
                getattr(sys.stdin.buffer, "raw", sys.stdin.buffer),
                stdout,
                client_alive=lambda: transport.process_alive(server.process_id),
            )
        )
    except SystemExit as exc:  # pygls ends `exit` with sys.exit(0 after shutdown, else 1)
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        server.close()
    return code


def main(argv: list[str] | None = None) -> int:
    """``lsp-verify serve [--tcp HOST:PORT]``: run the language server; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="lsp-verify serve", description="Run the lsp-verify language server."
    )
    parser.add_argument("--stdio", action="store_true", help="talk JSON-RPC on stdin/stdout (the default)")
    parser.add_argument("--tcp", metavar="HOST:PORT", help="listen on a TCP socket instead (for debugging)")
    parser.add_argument(
        "--log-level", default=os.environ.get("LSP_VERIFY_LOG", "INFO"), help="stderr log level"
    )
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    tcp = None
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        if not host or not port.isdigit():
            parser.error(f"--tcp expects HOST:PORT, got {args.tcp!r}")
        tcp = (host, int(port))
    return serve(tcp)


def configure_logging(level: str) -> None:
    """Logs go to stderr (stdout is JSON-RPC); pygls' per-message logging only when asked for DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if root.level > logging.DEBUG:
        logging.getLogger("pygls").setLevel(logging.WARNING)


def _workspace_root(params: types.InitializeParams) -> Path | None:
    uri = params.workspace_folders[0].uri if params.workspace_folders else params.root_uri
    if uri:
        path = to_fs_path(uri)
        return Path(path) if path else None
    return Path(params.root_path) if params.root_path else None


def _as_dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


if __name__ == "__main__":
    sys.exit(main())
