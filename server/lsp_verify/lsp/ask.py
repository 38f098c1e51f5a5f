"""Asking in the editor: the question as ``window/showMessageRequest``, the answer's test in the edit.

The question loop (:mod:`lsp_verify.ask`) runs on the pipeline's worker thread; :class:`EditorAsker` hands
each request to the event loop and waits for the user there, giving up when the request is cancelled. The
outputs are the action items, then "another value…" (only for a client that can ask for text: it says so
with ``experimental.lspVerifyAskValue`` and answers :data:`ASK_VALUE` requests, as the VS Code extension does
with an input box) and "skip". Clients without ``window.showMessage.messageActionItem`` are not asked: the
server offers one code action per answer instead (:func:`answer_actions`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path
from pygls.workspace.position_codec import PositionCodec

from ..ask import Asked, keep_answers
from ..cancel import CancelToken
from ..config import Settings
from ..pipeline import FixRequest
from ..syntax.target import EditTarget
from ..verify.question import SKIP, Answer, AnswerError, Question, TestEdit, another_value, keep_agreeing
from . import actions
from .edits import EditOutsideTarget, text_edit, workspace_edit

ASK_VALUE = "lsp-verify/askValue"
"""Server -> client request ``{prompt, error}`` -> the typed text, or null when the user cancels."""
ANOTHER = "another value…"
SKIP_TITLE = "skip"
ANSWER_KIND = f"{actions.ACTION_KIND}.answer"

T = TypeVar("T")


def can_ask(capabilities: types.ClientCapabilities) -> bool:
    """The client shows a message with action items (``window/showMessageRequest``)."""
    window = capabilities.window
    show = window.show_message if window else None
    return bool(show and show.message_action_item is not None)


def can_ask_value(capabilities: types.ClientCapabilities) -> bool:
    experimental = capabilities.experimental
    return isinstance(experimental, dict) and bool(experimental.get("lspVerifyAskValue"))


def option_title(question: Question, index: int) -> str:
    option = question.options[index]
    return f"{option.label}  ({option.samples} sample{'s' if option.samples != 1 else ''})"


class EditorAsker:
    """An :data:`~lsp_verify.ask.Asker` for the worker thread, asking through the client."""

    def __init__(
        self, server: LanguageServer, loop: asyncio.AbstractEventLoop, token: CancelToken, *, values: bool
    ) -> None:
        self._server = server
        self._loop = loop
        self._token = token
        self._values = values

    def __call__(self, question: Question, target: EditTarget) -> Answer:
        titles = [option_title(question, i) for i in range(len(question.options))]
        extra = [ANOTHER] if self._values else []
        params = types.ShowMessageRequestParams(
            type=types.MessageType.Info,
            message=f"lsp-verify: the verified candidates for {target.qualname} disagree. {question.text()}",
            actions=[types.MessageActionItem(title=t) for t in [*titles, *extra, SKIP_TITLE]],
        )
        item = self._wait(lambda: self._server.window_show_message_request_async(params))
        if item is None or item.title == SKIP_TITLE:
            return SKIP
        if item.title in titles:
            return Answer(option=question.options[titles.index(item.title)])
        error = None
        while True:  # another value: asked again, with the parse error, until it is a literal or cancelled
            prompt = f"{question.call} returns (a Python literal):"
            request = functools.partial(
                self._server.protocol.send_request_async, ASK_VALUE, {"prompt": prompt, "error": error}
            )
            text = self._wait(request)
            if not isinstance(text, str) or not text.strip():
                return SKIP
            try:
                return another_value(text, question)
            except AnswerError as exc:
                error = str(exc)

    def _wait(self, request: Callable[[], Awaitable[T]]) -> T | None:
        async def call() -> T:
            return await request()

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        while True:
            try:
                return future.result(timeout=0.2)
            except concurrent.futures.TimeoutError:
                if self._token.cancelled:
                    future.cancel()
                    self._token.raise_if_cancelled()
            except Exception:  # the client failed the request: treated as no answer
                return None


def answer_edit(
    asked: Asked,
    uri: str,
    text: str,
    version: int | None,
    codec: PositionCodec,
    *,
    documents: bool,
) -> tuple[types.WorkspaceEdit | None, str]:
    """The edit for the best candidate ``asked`` kept, with the answer's test; and a note for the user.

    Raises EditOutsideTarget as :func:`~lsp_verify.lsp.edits.text_edit` does."""
    best = asked.fix.best
    if best is None:
        return None, asked.fix.message
    edit = text_edit(text, best.candidate.new_text, asked.fix.target, codec)
    if edit is None:
        return None, f"{asked.fix.target.qualname}: the best candidate is the current code"
    change = workspace_edit(uri, version, edit, document_changes=documents)
    note = asked.fix.message
    if asked.tests is not None:
        path = asked.tests.path
        existing = path.read_text(encoding="utf-8") if asked.tests.exists else None
        problem = _add_test(change, asked.tests, existing, codec, documents=documents)
        note += f"\n{problem}" if problem else f"\nthe answer is kept as a test in {path.name}"
    return change, note


def _add_test(
    change: types.WorkspaceEdit,
    tests: TestEdit,
    existing: str | None,
    codec: PositionCodec,
    *,
    documents: bool,
) -> str | None:
    """Append ``tests`` in ``change`` (``existing``: the module's text, None when it does not exist); a
    message when the client cannot take it (creating a file needs ``documentChanges``)."""
    uri = from_fs_path(str(tests.path)) or ""
    if existing is None:
        if not documents:
            return f"the answer's test was not added: the editor cannot create {tests.path.name}"
        start = types.Position(line=0, character=0)
        create = types.CreateFile(uri=uri, options=types.CreateFileOptions(ignore_if_exists=True))
        edit = types.TextEdit(range=types.Range(start=start, end=start), new_text=tests.text.lstrip("\n"))
        change.document_changes = [*(change.document_changes or []), create, _document_edit(uri, edit)]
        return None
    lines = existing.split("\n")
    end = types.Position(line=len(lines) - 1, character=codec.client_num_units(lines[-1]))
    edit = types.TextEdit(range=types.Range(start=end, end=end), new_text=tests.text)
    if documents:
        change.document_changes = [*(change.document_changes or []), _document_edit(uri, edit)]
    else:
        change.changes = {**(change.changes or {}), uri: [edit]}
    return None


def _document_edit(uri: str, edit: types.TextEdit) -> types.TextDocumentEdit:
    return types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=None), edits=[edit]
    )


def answer_actions(
    settings: Settings,
    request: FixRequest,
    asked: Asked,
    question: Question,
    codec: PositionCodec,
    *,
    uri: str,
    documents: bool,
) -> list[types.CodeAction]:
    """For a client that cannot be asked: one code action per answer, each with the edit it leads to."""
    out = []
    for index, option in enumerate(question.options):
        answer = Answer(option=option)
        kept = keep_agreeing(asked.fix.results, question, answer)
        if not kept:
            continue
        chosen = keep_answers(settings, request, asked.fix, kept, [(question, answer)], asked.question)
        try:
            change, _ = answer_edit(chosen, uri, request.text, request.version, codec, documents=documents)
        except EditOutsideTarget:
            continue
        if change is not None:
            title = f"{question.call} → {option_title(question, index)} (lsp-verify: the right output?)"
            out.append(types.CodeAction(title=title, kind=ANSWER_KIND, edit=change))
    return out
