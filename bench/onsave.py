"""On-save checks: time from didSave to diagnostics, and the server's answers while a check runs.

The real language server (stdio), the real pipeline and verifier (mypy, pytest in the sandbox) on a git copy
of tests/fixtures/textkit: ``slugify`` with its twenty nearby tests (and a doctest), plus a stub ``title``.
Only generation is scripted (this script serves itself with ``--serve``): the question is what the check
costs and whether handlers stay responsive, not the model.

Each round saves a breaking change to ``slugify`` (diagnostics appear), then the fix (they clear): both
count as didSave -> publishDiagnostics samples (the 0.3 s debounce included). While each check runs, the
client keeps asking for code actions at ``slugify`` and for an inline completion in ``title``'s stub and
times each answer. The first round starts the verifier's workers and baselines: reported apart (cold).

    PYTHONPATH=server python bench/onsave.py [--rounds 10] [--out bench/results/onsave.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "textkit"
STUB = "    raise NotImplementedError\n"
GOOD = "    return sep.join(words(text))\n"
BAD = "    return sep.join(words(text)).upper()\n"
FIXED = "    return sep.join(word for word in words(text))\n"
"""The fix as the user writes it: not HEAD's bytes, so it is checked (and passes) rather than matched."""
TITLE = '\n\ndef title(text: str) -> str:\n    """``text`` with each word capitalised."""\n    ...\n'
TITLE_BODY = "return text.title()"


# -- the server side (``--serve``): the real server with a scripted engine ---------------------------------
def serve() -> int:
    from lsp_verify.cancel import CancelToken
    from lsp_verify.config import Settings
    from lsp_verify.lsp.server import build_server, configure_logging
    from lsp_verify.lsp.server import serve as serve_stdio
    from lsp_verify.model.types import EngineInfo, Generation, Prompt, SamplingParams
    from lsp_verify.pipeline import Pipeline

    class ScriptedEngine:
        info = EngineInfo("scripted.gguf", "CPU", False, 0, 0, 1, 4096, 8)

        def generate(
            self,
            prompt: Prompt,
            params: SamplingParams,
            *,
            on_generation: Callable[[Generation], None] | None = None,
            cancel: CancelToken | None = None,
        ) -> list[Generation]:
            out = [Generation(i, f"    {TITLE_BODY}\n", 5, -0.1, "stop", 0.0) for i in range(params.k)]
            for generation in out:
                if on_generation is not None:
                    on_generation(generation)
            return out

        def close(self) -> None:
            pass

    def pipeline(settings: Settings) -> Pipeline:
        return Pipeline(settings, engine_factory=lambda _: ScriptedEngine())  # type: ignore[arg-type,return-value]

    configure_logging(os.environ.get("LSP_VERIFY_LOG", "WARNING"))
    return serve_stdio(server=build_server(pipeline))


# -- the client side ------------------------------------------------------------------------------------
class Client(LanguageClient):
    def __init__(self) -> None:
        super().__init__("lsp-verify-bench", "0")
        self.published: dict[int | None, float] = {}
        self.diagnostics: dict[int | None, list[types.Diagnostic]] = {}
        self.progress: dict[str, int] = {"begin": 0, "end": 0}


def make_client() -> Client:
    client = Client()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(client: Client, params: types.PublishDiagnosticsParams) -> None:
        client.published[params.version] = time.monotonic()
        client.diagnostics[params.version] = list(params.diagnostics)

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def create(client: Client, params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @client.feature(types.PROGRESS)
    def progress(client: Client, params: types.ProgressParams) -> None:
        value = params.value
        kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
        if kind in client.progress:
            client.progress[kind] += 1

    for method in (types.WINDOW_LOG_MESSAGE, types.WINDOW_SHOW_MESSAGE):

        @client.feature(method)
        def ignore(client: Client, params: Any) -> None:
            return None

    return client


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_project(scratch: Path) -> Path:
    root = scratch / "textkit"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__", ".*_cache"))
    path = root / "textkit" / "slug.py"
    path.write_text(path.read_text().replace(STUB, GOOD) + TITLE)
    for command in (
        ["git", "init", "-q", "."],
        ["git", "add", "-A"],
        ["git", "-c", "user.email=b@example.com", "-c", "user.name=b", "commit", "-qm", "bench"],
    ):
        subprocess.run(command, cwd=root, check=True, capture_output=True)
    return root


async def run(rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        root = make_project(Path(scratch))
        path = root / "textkit" / "slug.py"
        good = path.read_text()
        bad = good.replace(GOOD, BAD)
        fixed = good.replace(GOOD, FIXED)
        lines = good.splitlines()
        slugify_line = next(i for i, line in enumerate(lines) if line.startswith("def slugify"))
        stub_line = len(lines) - 1
        client = make_client()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "server"), *sys.path]),
        }
        await client.start_io(
            sys.executable, str(Path(__file__).resolve()), "--serve", env=env, cwd=str(root)
        )
        assert client._server is not None and client._server.stderr is not None
        stderr = client._server.stderr

        async def drain() -> None:  # the server's log must not fill the pipe and stall it
            while await stderr.read(65536):
                pass

        drainer = asyncio.create_task(drain())
        uri = path.as_uri()
        await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(
                    window=types.WindowClientCapabilities(work_done_progress=True)
                ),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="textkit")],
                initialization_options={"trusted": True, "k": 2, "repairRounds": 0},
            )
        )
        client.initialized(types.InitializedParams())
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=good)
            )
        )
        version = 1
        samples: dict[str, list[float]] = {"break": [], "fix": []}
        cold: list[float] = []
        action_ms: list[float] = []
        inline_ms: list[float] = []
        problems: list[int] = []

        async def save(text: str) -> tuple[int, float]:
            nonlocal version
            version += 1
            path.write_text(text)
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
                )
            )
            started = time.monotonic()
            client.text_document_did_save(
                types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
            )
            return version, started

        async def probe_until(done: Callable[[], bool]) -> None:
            """Ask for a code action and an inline completion, again and again, while the check runs."""
            await asyncio.sleep(0.5)  # past the debounce: the check is running
            while not done():
                started = time.monotonic()
                await client.text_document_code_action_async(
                    types.CodeActionParams(
                        text_document=types.TextDocumentIdentifier(uri=uri),
                        range=types.Range(
                            start=types.Position(line=slugify_line, character=4),
                            end=types.Position(line=slugify_line, character=4),
                        ),
                        context=types.CodeActionContext(diagnostics=[]),
                    )
                )
                action_ms.append(1000 * (time.monotonic() - started))
                started = time.monotonic()
                await client.text_document_inline_completion_async(
                    types.InlineCompletionParams(
                        text_document=types.TextDocumentIdentifier(uri=uri),
                        position=types.Position(line=stub_line, character=4),
                        context=types.InlineCompletionContext(
                            trigger_kind=types.InlineCompletionTriggerKind.Automatic
                        ),
                    )
                )
                inline_ms.append(1000 * (time.monotonic() - started))
                await asyncio.sleep(0.1)

        for number in range(rounds + 1):
            for kind, text in (("break", bad), ("fix", fixed)):
                saved, started = await save(text)
                await asyncio.wait_for(probe_until(lambda saved=saved: saved in client.published), 600)
                seconds = client.published[saved] - started
                (cold if number == 0 else samples[kind]).append(seconds)
                problems.append(len(client.diagnostics[saved]))
                # the inline run the probe started for this version: let it finish before the next save
                deadline = time.monotonic() + 120
                while client.progress["end"] < client.progress["begin"] and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
        await client.shutdown_async(None)
        client.exit(None)
        await asyncio.sleep(0.5)
        drainer.cancel()
        await client.stop()
    return {
        "samples": samples,
        "cold": cold,
        "action_ms": action_ms,
        "inline_ms": inline_ms,
        "problems": problems,
    }


def revision() -> str:
    """The checkout's revision, as the run starts (the server imports the code then)."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=False
    )
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def markdown(result: dict[str, Any], rounds: int, command: str, measured: str) -> str:
    samples, actions, inline = result["samples"], result["action_ms"], result["inline_ms"]
    load = os.getloadavg()
    lines = [
        "# On-save checks: didSave -> diagnostics, and answers while a check runs",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, revision {measured}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
        "- workspace: tests/fixtures/textkit in git; `slugify` has 20 nearby tests and a doctest; each round "
        "saves a breaking change (`.upper()`), then a fix that differs from HEAD (both are checked)",
        f"- diagnostics per save (problems published): {sorted(set(result['problems']))}",
        "",
        "| measure | n | p50 | p90 | max |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| didSave -> publishDiagnostics, {what}, warm (s) | {len(values)} | "
            f"{quantile(values, 0.5):.2f} | {quantile(values, 0.9):.2f} | {max(values):.2f} |"
            for what, values in (
                ("breaking change (diagnostics appear)", samples["break"]),
                ("the fix (they clear)", samples["fix"]),
                ("both", samples["break"] + samples["fix"]),
            )
        ),
        f"| didSave -> publishDiagnostics, first round (cold: workers, baselines) (s) | "
        f"{len(result['cold'])} | {quantile(result['cold'], 0.5):.2f} | - | {max(result['cold']):.2f} |",
        f"| codeAction answer while a check runs (ms) | {len(actions)} | {quantile(actions, 0.5):.1f} | "
        f"{quantile(actions, 0.9):.1f} | {max(actions):.1f} |",
        f"| inlineCompletion answer while a check runs (ms) | {len(inline)} | {quantile(inline, 0.5):.1f} | "
        f"{quantile(inline, 0.9):.1f} | {max(inline):.1f} |",
        "",
        f"{rounds} warm rounds; the 0.3 s debounce is part of every didSave figure.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    if "--serve" in sys.argv[1:]:
        return serve()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here too")
    args = parser.parse_args()
    measured = revision()
    result = asyncio.run(run(args.rounds))
    command = "PYTHONPATH=server python bench/onsave.py " + " ".join(sys.argv[1:])
    text = markdown(result, args.rounds, command.strip(), measured)
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
