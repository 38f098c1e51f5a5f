"""Methods of real classes: how many sampled bodies the chat prompt lets the model write.

The chat prompt pre-fills the assistant's turn with the code the model continues: the class line, the
members a body may use, the method's header and docstring. Until 2026-12-06 that pre-filled class also held
one ``def name(...): ...`` line for every other method of the class; in a class of a real library that is a
run of dozens of body-less stubs right above the method, and the 0.5B model took the hint: it closed the code
block at once (``semver.Version.bump_patch``: P(closing fence) = 0.98 as the first token), so `fix` had no
candidate to verify. Now those signatures are listed in the user's message instead
(``syntax.context._class_members``). This benchmark measures both layouts side by side, on the product's own
code path (``Pipeline.prompt``: prompt pieces, fitting to the context, the engine's batched sampling and
``pipeline.candidate_from``), for methods sampled from pinned sdists, in three variants:

- ``apart`` (now): the other methods' signatures in the user's message, and the engine lets no sequence
  end before it has written something (``Engine.blank_bans``: an end of generation or the start of a stop
  string cannot be sampled while the text is blank);
- ``apart, may end empty``: the same prompt, a sequence may end at once (``Engine.allow_empty``);
- ``prefill, may end empty`` (before 2026-12-06): the signatures in the pre-filled class, as the earlier code
  put them, and a sequence may end at once.

Per method (classes with ``--min-methods`` to ``--max-methods`` methods, default 6 or more; bodies of
1-15 lines that are not stubs; at most ``--per-library`` a library, a seeded sample) it samples ``-k``
bodies in each layout and counts the usable ones (``candidate_from`` turns them into a candidate: parsed,
not a stub) and the methods with at least one.
It shows no tests (the verifier is not run): it measures what reaches verification, not what passes it.

    python bench/methods.py [--methods 24] [-k 4] [--seed 0] [--out bench/results/methods.md]

A benchmark, not a test: it prints a table and writes Markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import random
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT / "bench"))

import realworld  # noqa: E402
import runinfo  # noqa: E402

if TYPE_CHECKING:
    from lsp_verify.pipeline import Pipeline
    from lsp_verify.syntax.context import PromptPieces
    from lsp_verify.syntax.target import EditTarget

LAYOUTS = ("apart", "apart, may end empty", "prefill, may end empty")
"""Each a prompt layout and whether the engine lets a sequence end before writing anything (the last is
how the product worked before 2026-12-06)."""

# Libraries with large classes, each a different style (pinned like bench/realworld.py's).
LIBRARIES: tuple[realworld.Library, ...] = tuple(
    realworld.Library(*fields)
    for fields in (
        # name, version, sha256 of the sdist, package directory, tests directory, why
        ("cachetools", "5.5.0", "2cc24fb4cbe39633fb7badd9db9ca6295d766d9c2995f245725a46715d050f2a",
         "src/cachetools", "tests", "cache classes with dunder methods"),
        ("click", "8.1.7", "ca9853ad459e787e2192211578cc907e7594e294c7ccc834310722b41b9ca6de",
         "src/click", "tests", "large classes (Context, Command, Parameter)"),
        ("tomlkit", "0.13.2", "fff5fe59a87295b278abd31bec92c15d9bc4a06885ab12bcea52c71119392e79",
         "tomlkit", "tests", "container and item classes, many properties"),
        ("tenacity", "9.0.0", "807f37ca97d62aa361264d497b0e31e92b8027044942bfa756160d908320d73b",
         "tenacity", "tests", "retrying strategies, small callable classes"),
        ("pyflakes", "3.2.0", "1c61603ff154621fb2a9172037d84dca3500def8c8b630657d1701f026f8af3f",
         "pyflakes", "pyflakes/test", "one very large visitor class (Checker)"),
        ("jmespath", "1.0.1", "90261b206d6defd58fdd5e85f478bf633a2901798906be2ad389150c5c60edbe",
         "jmespath", "tests", "a parser and a visitor class"),
        ("semver", "3.0.2", "6253adb39c70f6e51afed2fa7152bcd414c411286088fb4b9effb133885ab4cc",
         "src/semver", "tests", "one value class (Version) with properties and comparators"),
        ("jinja2", "3.1.4", "4a3aee7acbbe7303aede8e9648d13b8bf88a429282aa6122a993f0ac800cb369",
         "src/jinja2", "tests", "very large classes (CodeGenerator, Environment)"),
    )
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Method:
    library: str
    path: Path
    text: str
    target: EditTarget

    @property
    def key(self) -> str:
        return f"{self.library}:{self.path.name}:{self.target.qualname}"


def methods(roots: dict[str, Path], sizes: range, per_library: int, count: int, seed: int) -> list[Method]:
    """A seeded sample of methods with real bodies from classes with a number of methods in ``sizes``."""
    from lsp_verify.syntax.targets import function_targets

    pool: list[Method] = []
    for library in LIBRARIES:
        package = roots[library.name] / library.package
        for path in sorted(package.rglob("*.py")):
            if "test" in path.relative_to(roots[library.name]).parts[:-1] or path.name.startswith("test"):
                continue
            text = path.read_text(encoding="utf-8")
            try:
                targets = function_targets(text, path)
            except Exception:  # a file tree-sitter cannot read is no sample
                continue
            by_class: dict[str, list[EditTarget]] = {}
            for target in targets:
                if target.class_name:
                    by_class.setdefault(target.class_name, []).append(target)
            for siblings in by_class.values():
                if len(siblings) not in sizes:
                    continue
                pool.extend(Method(library.name, path, text, t) for t in siblings if _real_body(t))
    random.Random(seed).shuffle(pool)
    taken: dict[str, int] = {}
    chosen: list[Method] = []
    for method in pool:
        if taken.get(method.library, 0) < per_library:
            taken[method.library] = taken.get(method.library, 0) + 1
            chosen.append(method)
    return chosen[:count]


def _real_body(target: EditTarget) -> bool:
    lines = target.body_end_line - target.body_start_line
    body = target.current_body.strip()
    return (
        target.name != "__init__"
        and 1 <= lines <= 15
        and body not in ("pass", "...")
        and "NotImplementedError" not in body
    )


def prefill_layout(pieces: PromptPieces) -> PromptPieces:
    """The pieces as the earlier code laid them out: every other method's signature in the class header."""
    if pieces.class_header is None or not pieces.class_methods:
        return pieces
    indent = pieces.header[: len(pieces.header) - len(pieces.header.lstrip())] or "    "
    lines = [indent + line for method in pieces.class_methods for line in method.split("\n")]
    return dataclasses.replace(
        pieces, class_header="\n".join([pieces.class_header, *lines]), class_methods=()
    )


@contextlib.contextmanager
def layout(name: str, pipeline: Pipeline) -> Iterator[None]:
    """Build prompts and sample as variant ``name`` of :data:`LAYOUTS` while inside."""
    import lsp_verify.pipeline as pipeline_module

    original = pipeline_module.prompt_pieces
    if name.startswith("prefill"):
        pipeline_module.prompt_pieces = lambda text, target: prefill_layout(original(text, target))
    engine = pipeline.engine()
    allowed = getattr(engine, "allow_empty", None)
    if allowed is not None:
        engine.allow_empty = "may end empty" in name  # type: ignore[attr-defined]
    try:
        yield
    finally:
        pipeline_module.prompt_pieces = original
        if allowed is not None:
            engine.allow_empty = allowed  # type: ignore[attr-defined]


@dataclasses.dataclass
class Sampled:
    usable: int
    empty: int
    """Sequences that ended before writing anything (the closing fence first)."""
    prompt_tokens: int


def sample(pipeline: Pipeline, method: Method, root: Path, k: int) -> Sampled:
    from lsp_verify.pipeline import FixRequest, candidate_from
    from lsp_verify.verify.cascade import TestSelection

    relative = method.path.relative_to(root)
    selection = TestSelection(method.target, method.text, relative, (), (), None, (), None, time.monotonic())
    request = FixRequest(path=method.path, text=method.text, root=root, line=method.target.def_start_line)
    prompt, params = pipeline.prompt(request, method.target, selection, k=k)
    engine = pipeline.engine()
    generations = engine.generate(prompt, params)
    usable = sum(1 for g in generations if candidate_from(g, prompt, method.text, method.target) is not None)
    empty = sum(1 for g in generations if not g.text.strip())
    tokens = len(engine.tokenize(prompt.text)) if hasattr(engine, "tokenize") else 0
    return Sampled(usable, empty, tokens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", type=int, default=24, help="methods sampled (default 24)")
    parser.add_argument("-k", type=int, default=4, help="bodies sampled per method and layout (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="which methods, and the sampling seed")
    parser.add_argument("--per-library", type=int, default=3, help="at most this many methods a library")
    parser.add_argument("--min-methods", type=int, default=6, help="only classes with this many methods")
    parser.add_argument("--max-methods", type=int, default=10_000, help="... and at most this many")
    parser.add_argument("--cache", type=Path, default=realworld.DEFAULT_CACHE, help="where sdists are kept")
    parser.add_argument("--model", help="a GGUF (or embedded:NAME) instead of the default")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "methods.md")
    args = parser.parse_args(argv)

    from lsp_verify.config import Settings
    from lsp_verify.pipeline import Pipeline

    roots = {
        lib.name: realworld.unpack(realworld.fetch(lib, args.cache), args.cache / "src") for lib in LIBRARIES
    }
    sizes = range(args.min_methods, args.max_methods + 1)
    chosen = methods(roots, sizes, args.per_library, args.methods, args.seed)
    values: dict[str, object] = {"seed": args.seed}
    if args.model:
        values["model"] = args.model
    pipeline = Pipeline(Settings().updated(values, "bench"))
    started = datetime.datetime.now(datetime.timezone.utc)
    load = (runinfo.load_average() or [float("nan")])[0]
    print(
        f"{len(chosen)} methods from {len({m.library for m in chosen})} libraries, k = {args.k}", flush=True
    )
    rows: list[tuple[Method, dict[str, Sampled]]] = []
    for method in chosen:
        row: dict[str, Sampled] = {}
        for name in LAYOUTS:
            with layout(name, pipeline):
                row[name] = sample(pipeline, method, roots[method.library], args.k)
        rows.append((method, row))
        said = "  ".join(f"{n}: {row[n].usable}/{args.k} usable, {row[n].empty} empty" for n in LAYOUTS)
        print(f"{method.key:70} {said}", flush=True)
    info = pipeline.engine().info
    ended = datetime.datetime.now(datetime.timezone.utc)
    table = markdown(rows, args.k)
    command = "python bench/methods.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    header = (
        f"# Methods of real classes: usable bodies by prompt layout\n\n"
        f"`{command.strip()}`, {started:%Y-%m-%d %H:%M}-{ended:%H:%M} UTC, "
        f"revision {runinfo.git_revision()}, "
        f"model {Path(info.model_path).name}, {info.backend}, load average {load:.1f} at the start and "
        f"{(runinfo.load_average() or [float('nan')])[0]:.1f} at the end.\n\n"
    )
    print(table)
    args.out.write_text(header + table, encoding="utf-8")
    print(f"written: {args.out}")
    pipeline.close()
    return 0


def markdown(rows: list[tuple[Method, dict[str, Sampled]]], k: int) -> str:
    lines = [
        "| layout | usable bodies | empty (closed at once) | methods with a usable body |",
        "|---|---:|---:|---:|",
    ]
    for name in LAYOUTS:
        usable = sum(row[name].usable for _, row in rows)
        empty = sum(row[name].empty for _, row in rows)
        covered = sum(1 for _, row in rows if row[name].usable)
        total = k * len(rows)
        lines.append(f"| {name} | {usable}/{total} | {empty}/{total} | {covered}/{len(rows)} |")
    lines += ["", "| method | prompt tokens (apart / prefill) | " + " | ".join(LAYOUTS) + " |",
              "|---|---:|" + "---:|" * len(LAYOUTS)]  # fmt: skip
    for method, row in rows:
        tokens = f"{row[LAYOUTS[0]].prompt_tokens} / {row[LAYOUTS[-1]].prompt_tokens}"
        cells = " | ".join(f"{row[n].usable}/{k} ({row[n].empty} empty)" for n in LAYOUTS)
        lines.append(f"| `{method.key}` | {tokens} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
