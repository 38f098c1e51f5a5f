"""The ``lsp-verify`` command: ``serve | check | fix | generate | doctor``.

A thin shell: it parses arguments, builds :class:`~lsp_verify.config.Settings`, calls the headless logic in
:mod:`lsp_verify.check` and :mod:`lsp_verify.fix` (or the pipeline, or the LSP server) and prints. Imports
are lazy so that ``lsp-verify check`` starts quickly and never loads llama.cpp.

Exit codes: 0 success, 1 a check failed / no verified candidate, 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .config import Settings
    from .pipeline import Progress
    from .report import RunReport

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("lsp-verify: interrupted", file=sys.stderr)
        return 130
    except Exception:
        # A bug, not a verdict: exit 1 would read as "a check failed".
        import traceback

        traceback.print_exc()
        print("lsp-verify: internal error (the traceback above is worth a bug report)", file=sys.stderr)
        return EXIT_ERROR


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="lsp-verify",
        description="A language server and command line that only show code they have checked.",
    )
    parser.add_argument("--version", action="version", version=f"lsp-verify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--stdio", action="store_true", help="talk JSON-RPC on stdin/stdout (the default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on a TCP socket instead of stdio")
    serve.add_argument("--log-level", help="stderr log level (default: $LSP_VERIFY_LOG or INFO)")
    serve.set_defaults(handler=_serve)

    check = sub.add_parser(
        "check",
        help="type-check and test changed functions as they are (no model)",
        description=(
            "Verify code as it is. Without paths: the functions the staged change touches "
            "(git diff --cached), as staged. With paths: every function in those files, as on disk "
            "(with --changed: only those that differ from HEAD or --base). --base REV without paths: the "
            "functions changed since REV in the work tree. --all: every function in the project's tracked, "
            "non-test Python files. mypy errors count only when they are new relative to HEAD; the nearby "
            "tests are compared with a run on HEAD's version of the file."
        ),
    )
    check.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    check.add_argument("--all", action="store_true", help="every function of every tracked non-test .py file")
    check.add_argument(
        "--changed",
        action="store_true",
        help="with PATHs: only the functions that differ from HEAD (or --base); the pre-commit hook's mode",
    )
    check.add_argument(
        "--base",
        metavar="REV",
        help="judge changes against REV instead of HEAD; without PATHs, check every function changed since "
        "REV in the work tree (CI: --base origin/main)",
    )
    _common(check)
    check.set_defaults(handler=_check)

    fix = sub.add_parser(
        "fix",
        help="fill stub functions with verified code and show (or --apply) the best candidate",
        description=(
            "For each stub function in the given files (default: the files in the staged change) or each "
            "function at FILE:LINE, generate candidates with the local model, verify them, and print the "
            "best verified one as a diff. Nothing is written without --apply."
        ),
    )
    fix.add_argument("targets", nargs="*", metavar="PATH|FILE:LINE")
    fix.add_argument("-k", type=int, help="candidates per function (default: settings, 8)")
    fix.add_argument("--apply", action="store_true", help="write the verified bodies into the files")
    fix.add_argument("--require-tests", action="store_true", help="refuse results backed by types only")
    fix.add_argument(
        "--ask",
        action="store_true",
        help="when the verified candidates disagree, ask which output is right (on a terminal only)",
    )
    _model_options(fix)
    _common(fix)
    fix.set_defaults(handler=_fix)

    generate = sub.add_parser(
        "generate", help="print the distinct UNVERIFIED candidates for one function (debug aid)"
    )
    generate.add_argument("location", metavar="FILE:LINE")
    generate.add_argument("-k", type=int, help="sequences to sample (default: settings, 8)")
    _model_options(generate)
    generate.set_defaults(handler=_generate)

    doctor = sub.add_parser("doctor", help="report model, backend, sandbox and tool availability")
    doctor.add_argument("--model", metavar="PATH", help="a GGUF (or embedded:NAME) instead of the default")
    _engine_options(doctor)
    doctor.add_argument(
        "--project", type=Path, default=None, help="project whose settings to use (default: .)"
    )
    doctor.set_defaults(handler=_doctor)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json", "github"), default="text", help="output format")


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", help="a GGUF (or embedded:NAME) instead of the default")
    parser.add_argument("--seed", type=int, help="sampling seed (sequence i uses seed+i)")
    parser.add_argument("--max-tokens", type=int, help="token limit per candidate")
    _engine_options(parser)


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=("local", "openai"),
        help="local: the GGUF in-process; openai: a server (--endpoint)",
    )
    parser.add_argument(
        "--endpoint", metavar="URL", help="OpenAI-compatible API base, e.g. http://HOST:8080/v1"
    )
    parser.add_argument(
        "--remote-model", metavar="NAME", help="model name on the server (default: its first)"
    )
    parser.add_argument(
        "--api-key-env", metavar="VAR", help="name of the environment variable holding the server's API key"
    )


def _engine_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "engine": args.engine,
        "endpoint": args.endpoint,
        "remote_model": args.remote_model,
        "api_key_env": args.api_key_env,
    }


# -- settings and terminal -----------------------------------------------------------------------------
def _settings(root: Path, overrides: dict[str, Any]) -> Settings:
    """Project settings (``[tool.lsp-verify]``) with command-line flags on top; the CLI is trusted."""
    from .config import project_settings

    settings = project_settings(root, trusted=True)
    settings = settings.updated(
        {key: value for key, value in overrides.items() if value is not None}, "command line"
    )
    settings.trusted = True
    for problem in settings.problems:
        _warn(problem)
    return settings


def _warn(message: str) -> None:
    print(f"lsp-verify: warning: {message}", file=sys.stderr)


def _error(message: str) -> int:
    print(f"lsp-verify: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


class StatusLine:
    """Progress on stderr: one rewritten line on a terminal; on a pipe, one line per function started."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self._shown = False
        self._label = ""

    def started(self, message: str) -> None:
        self._label = message
        if self.live:
            self.update(message)
        else:
            print(f"lsp-verify: {message}", file=self.stream, flush=True)

    def update(self, message: str) -> None:
        if not self.live:
            return
        width = shutil.get_terminal_size((80, 20)).columns - 1
        self.stream.write("\r\x1b[K" + message[:width])
        self.stream.flush()
        self._shown = True

    def progress(self, progress: Progress) -> None:
        self.update(f"{self._label} — {progress.message}" if self._label else progress.message)

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def _emit(report: RunReport, fmt: str) -> int:
    from .report import render

    if fmt == "text" and report.error is not None:
        print(f"lsp-verify: error: {report.error}", file=sys.stderr)
    sys.stdout.write(render(report, fmt, colour=use_colour(sys.stdout)))  # type: ignore[arg-type]
    sys.stdout.flush()
    return report.exit_code


# -- serve ---------------------------------------------------------------------------------------------
def _serve(args: argparse.Namespace) -> int:
    # The server parses its own options (lsp.server.main); they are forwarded unchanged.
    argv = ["--tcp", args.tcp] if args.tcp else []
    if args.log_level:
        argv += ["--log-level", args.log_level]
    try:
        from .lsp.server import main as server_main
    except ImportError as exc:
        return _error(f"the language server cannot start: {exc}")
    return server_main(argv)


# -- check ---------------------------------------------------------------------------------------------
def _check(args: argparse.Namespace) -> int:
    from .check import CheckOptions, run_check

    status = StatusLine(sys.stderr)
    options = CheckOptions(
        paths=tuple(args.paths), all_files=args.all, changed_only=args.changed, base=args.base
    )
    try:
        report = run_check(options, settings_for=lambda root: _settings(root, {}), status=status)
    finally:
        status.clear()
    return _emit(report, args.format)


# -- fix -----------------------------------------------------------------------------------------------
def _fix(args: argparse.Namespace) -> int:
    from .fix import FixOptions, run_fix, terminal_asker

    status = StatusLine(sys.stderr)
    overrides = {
        "k": args.k,
        "model_path": args.model,
        "seed": args.seed,
        "max_tokens": args.max_tokens,
        "require_tests": True if args.require_tests else None,
        **_engine_overrides(args),
    }
    options = FixOptions(specs=tuple(args.targets), apply=args.apply)
    # Never prompt where nobody can answer (pre-commit, CI): the question is still in the report.
    asker = terminal_asker(sys.stdin, sys.stderr, status.clear) if args.ask and sys.stdin.isatty() else None
    try:
        report = run_fix(
            options, settings_for=lambda root: _settings(root, overrides), status=status, asker=asker
        )
    finally:
        status.clear()
    if args.ask and asker is None and any(f.question for f in report.functions):
        report.notes.append(
            "--ask: stdin is not a terminal, so nothing was asked (the questions are reported)"
        )
    return _emit(report, args.format)


# -- generate ------------------------------------------------------------------------------------------
def _generate(args: argparse.Namespace) -> int:
    from .fix import generate_candidates
    from .headless import UsageError, parse_location
    from .model.engine import EngineError
    from .model.prompts import PromptTooLarge
    from .model.source import ModelError
    from .sourcefile import SourceError

    overrides = {"k": args.k, "model_path": args.model, "seed": args.seed, "max_tokens": args.max_tokens}
    overrides |= _engine_overrides(args)
    status = StatusLine(sys.stderr)
    try:
        path, line = parse_location(args.location, need_line=True)
        assert line is not None
        diffs = generate_candidates(
            path, line, settings_for=lambda root: _settings(root, overrides), status=status
        )
    except (UsageError, SourceError, PromptTooLarge, ModelError, EngineError) as exc:
        status.clear()
        return _error(str(exc))
    finally:
        status.clear()
    for index, (diff, note) in enumerate(diffs):
        print(f"# candidate {index + 1} (unverified): {note}")
        sys.stdout.write(diff if diff else "# (identical to the current body)\n")
    print(f"# {len(diffs)} distinct candidates; none of them has been verified", file=sys.stderr)
    return EXIT_OK if diffs else EXIT_FAILED


# -- doctor --------------------------------------------------------------------------------------------
def _doctor(args: argparse.Namespace) -> int:
    import importlib.util

    from .config import find_project_root

    root = find_project_root(args.project or Path.cwd())
    settings = _settings(root, {"model_path": args.model, **_engine_overrides(args)})
    problems: list[str] = []

    def line(label: str, value: str) -> None:
        print(f"{label:<16} {value}")

    from . import __version__

    line("lsp-verify", f"{__version__} (Python {sys.version.split()[0]}, {sys.executable})")
    line("project", str(root))

    from .model.source import ModelError, resolve_model

    line("engine", settings.engine)
    model = None
    if settings.engine == "openai":
        _doctor_remote(settings, line, problems)
    else:
        started = time.monotonic()
        try:
            model = resolve_model(settings.model_path)
        except ModelError as exc:
            problems.append(f"model: {exc}")
            line("model", "NOT FOUND (see problems)")
        else:
            hashed = (
                "sha256 verified"
                if model.sha256_verified
                else "sha256 not checked (not a known embedded model)"
            )
            line("model", f"{model.path} ({model.origin})")
            line("model size", f"{model.size / 1e6:.1f} MB, {hashed} ({time.monotonic() - started:.1f}s)")

    try:
        from .model.engine import backend_info, default_threads
    except ImportError as exc:
        problems.append(f"backend: the model engine cannot be imported: {exc}")
        line("backend", "unavailable")
    else:
        try:
            backend = backend_info()
        except (ImportError, OSError) as exc:
            problems.append(f"backend: llama-cpp-python is not usable: {exc} (pip install llama-cpp-python)")
            line("backend", "unavailable")
        else:
            line("backend", f"{backend.backend} (llama-cpp-python {backend.llama_cpp_python})")
            line("devices", ", ".join(backend.devices) or "(none reported)")
            if backend.gpu_offload_supported:
                layers = settings.n_gpu_layers
                offload = "all layers" if layers is None or layers < 0 else f"{layers} layers"
                line("gpu offload", f"supported; would offload {offload}")
            else:
                line("gpu offload", "not supported by this build (CPU only)")
            line("parallel seqs", f"up to {backend.max_parallel_sequences} (k = {settings.k})")
            if settings.k > backend.max_parallel_sequences:
                problems.append(
                    f"k = {settings.k} exceeds this build's {backend.max_parallel_sequences} sequences"
                )
            if model is not None:
                from .model.choice import advice, this_machine

                gpu = backend.gpu_offload_supported and any(d != "CPU" for d in backend.devices)
                suggestion = advice(model, this_machine(gpu))
                if suggestion:
                    line("model choice", suggestion)
        line("threads", str(settings.n_threads or default_threads()))

    for module in ("mypy", "pytest"):
        found = importlib.util.find_spec(module) is not None
        line(module, "importable" if found else "MISSING")
        if not found:
            problems.append(f"{module} is not importable in {sys.executable} (pip install {module})")

    try:
        from .verify.sandbox import isolation_report

        report = isolation_report(settings.sandbox, root).splitlines()
        for i, text in enumerate(report):
            line("sandbox" if i == 0 else "", text)
        if "refused" in report[0]:  # sandbox = "bwrap" where bubblewrap cannot run
            problems.append(report[0].removeprefix("isolation: "))
    except ImportError as exc:
        problems.append(f"sandbox: cannot be inspected: {exc}")

    from .cancel import CancelToken
    from .verify.cascade import Verifier

    # Collects the project's tests: runs its conftest.py.
    with Verifier(root, settings, reach="off") as verifier:
        line("test runs", verifier.describe_test_runs(CancelToken()))

    try:
        from .syntax.parse import grammar_dir

        line("grammars", str(grammar_dir()))
    except (ImportError, FileNotFoundError) as exc:
        problems.append(f"tree-sitter: {exc}")
        line("grammars", "NOT FOUND")

    problems.extend(settings.problems)
    if problems:
        print("\nproblems:")
        for problem in problems:
            print("  - " + problem.replace("\n", "\n    "))
        return EXIT_FAILED
    print("\nhealthy")
    return EXIT_OK


def _doctor_remote(settings: Settings, line: Callable[[str, str], None], problems: list[str]) -> None:
    """The server of engine "openai": endpoint, model, whether it honours ``n``, one round trip."""
    from .model.remote import RemoteEngine, RemoteEngineError

    line("endpoint", settings.endpoint or "(not set)")
    if settings.api_key_env:
        line("api key", f"from ${settings.api_key_env}")  # the name only: the key is never printed
    try:
        engine = RemoteEngine(
            settings.endpoint,
            model=settings.remote_model,
            api_key_env=settings.api_key_env,
            n_ctx=settings.n_ctx,
            timeout_s=settings.remote_timeout_s,
        )
        probe = engine.probe()
    except RemoteEngineError as exc:
        problems.append(f"engine: {exc}")
        line("remote model", "UNAVAILABLE (see problems)")
        return
    listed = f" (server lists: {', '.join(probe.models)})" if probe.models else ""
    line("remote model", f"{probe.model}{listed}")
    line(
        "n per request",
        "honoured (k candidates in one request)"
        if probe.n_honoured
        else f"not honoured: k = {settings.k} concurrent requests (llama-server: --parallel {settings.k})",
    )
    line("round trip", f"{probe.round_trip_s * 1000:.0f} ms (one token, two choices)")
