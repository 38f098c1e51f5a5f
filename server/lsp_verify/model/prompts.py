"""Prompt formats: what the model is shown for one target, and how its output is turned back into a body.

Two formats:

``chat`` (default)
    Qwen2.5 ChatML, rendered here as a string (it is what the GGUF's ``tokenizer.chat_template`` produces
    for a system + user message with ``add_generation_prompt``). The assistant turn is *pre-filled* with the
    opening of a ```python block, the enclosing class line, the function's header and its docstring, so the
    small model only has to write the body -- measured on toy functions, that gives far more usable bodies
    from the 0.5B model than asking for the whole function (which it often renames, re-types or wraps in
    prose). Generation stops at the closing fence, or as soon as a line dedents out of the function.

``fim``
    Qwen fill-in-the-middle: ``<|fim_prefix|>{file before the body}<|fim_suffix|>{file after}<|fim_middle|>``.
    Available when the vocabulary has the FIM tokens (Qwen coder models).

In both formats the generated text is the function body: whole lines, indented by ``ctx.indent``
(:attr:`Prompt.prefill` holds what precedes it), possibly followed by the start of a line that left the
function (finish reason "left_function"). ``lsp_verify.syntax.splice.extract_body`` turns it into the body
a splice uses.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from .types import Format, Prompt

__all__ = [
    "PromptContext",
    "PromptTooLarge",
    "build_prompt",
    "choose_format",
    "estimate_tokens",
    "fim_supported",
    "fit_prompt",
]

log = logging.getLogger(__name__)

FENCE = "```"
SYSTEM = "You are an expert Python programmer. Write correct, concise code without comments."
# Characters of surrounding file text kept for FIM (the prompt must fit n_ctx next to k candidates).
FIM_PREFIX_CHARS = 4000
FIM_SUFFIX_CHARS = 1500
TESTS_CHARS = 2500
FEEDBACK_CHARS = 800
MAX_SIGNATURES = 12


@dataclasses.dataclass(frozen=True)
class PromptContext:
    """Everything the prompt may show about one target (built by the pipeline from an EditTarget)."""

    path: Path
    imports: str
    """The module's import statements (may be empty)."""
    class_header: str | None
    """``class Name(Base):`` line of the enclosing class with its attributes, as in the file, or None."""
    header: str
    """Decorators and ``def`` line(s) up to the colon, as in the file (first line at its own indentation)."""
    docstring: str | None
    """Docstring source including quotes, indented as in the file."""
    indent: str
    """Indentation of the body's statements."""
    prefix: str
    """File text before the body range."""
    suffix: str
    """File text after the body range."""
    tests: str = ""
    """Source of nearby tests (may be empty)."""
    feedback: str | None = None
    """Error of a previous failed candidate, for a repair round."""
    signatures_nearby: tuple[str, ...] = ()
    """One-line signatures of other functions in the module, nearest first (helpers the body may call)."""
    class_methods: tuple[str, ...] = ()
    """For a method: signatures of the class's other methods (decorators on lines before), in file order."""


def build_prompt(ctx: PromptContext, fmt: Format) -> Prompt:
    """Render ``ctx`` in format ``fmt``; the generated text will be the function body (see module docs)."""
    if fmt == "fim":
        return _fim_prompt(ctx)
    return _chat_prompt(ctx)


# --------------------------------------------------------------------------------------------- fitting


class PromptTooLarge(Exception):
    """Even the function's own code (header, docstring, class line) does not fit the model's context."""


FIT_STEPS = 12
"""Halvings of the search for the largest share of context that fits (to 1/4096 of each piece)."""
MIN_BYTES_PER_TOKEN = 2
"""For :func:`estimate_tokens`: BPE code tokens average 3-4 bytes; assuming 2 over-counts, never under."""


def estimate_tokens(text: str) -> int:
    """A token count that is not lower than a BPE tokenizer's (used when the engine has no tokenizer)."""
    return len(text.encode("utf-8")) // MIN_BYTES_PER_TOKEN + 1


def fit_prompt(ctx: PromptContext, fmt: Format, *, count_tokens: Callable[[str], int], budget: int) -> Prompt:
    """The prompt for ``ctx`` with at most ``budget`` tokens (as ``count_tokens`` counts them).

    When the whole context does not fit, the largest share of it that does is found (a bisection): the
    same share of each piece is kept, the part nearest the function (module constants just above it,
    nearby signatures first, the file text around the body). The header, docstring and class line are
    never cut; when they alone are too large, PromptTooLarge says so.
    """

    def fits(share: float) -> tuple[Prompt, int | None]:
        prompt = build_prompt(_trimmed(ctx, share) if share < 1 else ctx, fmt)
        # A text this long cannot fit whatever the tokenizer: no need to tokenize megabytes.
        if len(prompt.text) > budget * _MAX_CHARS_PER_TOKEN:
            return prompt, None
        n = count_tokens(prompt.text)
        return prompt, (n if n <= budget else None)

    prompt, n = fits(1.0)
    if n is not None:
        return prompt
    best, n = fits(0.0)
    if n is None:
        needed = count_tokens(best.text)
        raise PromptTooLarge(
            f"{ctx.path.name}: too large for the model's context: the function's own code needs {needed} "
            f"prompt tokens, and n_ctx leaves {max(budget, 0)} next to the candidates; raise n_ctx, or lower "
            "k or max_tokens"
        )
    low, high = 0.0, 1.0
    for _ in range(FIT_STEPS):
        middle = (low + high) / 2
        prompt, n = fits(middle)
        if n is None:
            high = middle
        else:
            low, best = middle, prompt
    log.info("%s: prompt cut to %.0f%% of its context to fit %d tokens", ctx.path, low * 100, budget)
    return best


_MAX_CHARS_PER_TOKEN = 32


def _trimmed(ctx: PromptContext, share: float) -> PromptContext:
    """``ctx`` with ``share`` of each optional piece of context (0: none of it)."""

    def keep(n: int) -> int:
        return math.ceil(n * share)

    imports: list[str] = []
    others: list[str] = []
    for line in ctx.imports.split("\n") if ctx.imports else []:
        (imports if line.startswith(("import ", "from ")) else others).append(line)
    # Imports name what a body may use; of the constants and aliases, those nearest the function are kept.
    kept = imports[: keep(len(imports))] + others[len(others) - keep(len(others)) :]
    class_header = ctx.class_header
    if class_header is not None:
        first, *members = class_header.split("\n")
        class_header = "\n".join([first, *members[: keep(len(members))]])
    own_code = len(ctx.header) + len(ctx.docstring or "") + len(ctx.indent) + 2
    return dataclasses.replace(
        ctx,
        imports="\n".join(kept),
        class_header=class_header,
        signatures_nearby=ctx.signatures_nearby[: keep(min(len(ctx.signatures_nearby), MAX_SIGNATURES))],
        class_methods=ctx.class_methods[: keep(len(ctx.class_methods))],
        tests=_head_lines(ctx.tests, int(TESTS_CHARS * share)) if share else "",
        prefix=_tail_lines(ctx.prefix, max(int(FIM_PREFIX_CHARS * share), own_code)),
        suffix=_head_lines(ctx.suffix, int(FIM_SUFFIX_CHARS * share)),
    )


# --------------------------------------------------------------------------------------------- chat


def _function_code(ctx: PromptContext) -> str:
    """Class line (when any), header and docstring, each line as in the file, ending in a newline."""
    parts: list[str] = []
    if ctx.class_header:
        parts.append(ctx.class_header.rstrip())
    header = ctx.header.rstrip()
    if ctx.class_header and not header.startswith((" ", "\t")):
        # The header's first line may come without its indentation: methods sit one level in.
        header = _reindent_first(header, ctx.indent[: len(ctx.indent) // 2] or "    ")
    parts.append(header)
    if ctx.docstring:
        doc = ctx.docstring.strip("\n")
        if not doc.startswith((" ", "\t")):
            doc = ctx.indent + doc
        parts.append(doc.rstrip())
    return "\n".join(parts) + "\n"


def _reindent_first(text: str, indent: str) -> str:
    first, _, rest = text.partition("\n")
    return indent + first + ("\n" + rest if rest else "")


def _chat_prompt(ctx: PromptContext) -> Prompt:
    code = _function_code(ctx)
    imports = ctx.imports.strip()
    user = ["Complete the body of this Python function."]
    if imports:
        user.append(f"The module imports:\n{FENCE}python\n{imports}\n{FENCE}")
    if ctx.class_methods:
        # Apart from the code the model continues: a run of body-less ``def ...: ...`` lines right above
        # the function made the 0.5B model end the block without writing a body (bench/methods.py).
        methods = "\n".join(ctx.class_methods)
        user.append(f"Other methods of the class:\n{FENCE}python\n{methods}\n{FENCE}")
    if ctx.signatures_nearby:
        sigs = "\n".join(ctx.signatures_nearby[:MAX_SIGNATURES])
        user.append(f"Other functions in the module:\n{FENCE}python\n{sigs}\n{FENCE}")
    if ctx.tests.strip():
        user.append(
            f"It must pass these tests:\n{FENCE}python\n{_clip(ctx.tests.strip(), TESTS_CHARS)}\n{FENCE}"
        )
    if ctx.feedback:
        user.append(
            f"A previous attempt failed with:\n{_clip(ctx.feedback.strip(), FEEDBACK_CHARS)}\nAvoid that."
        )
    user.append(f"{FENCE}python\n{code}{FENCE}")
    prefill = f"{FENCE}python\n{code}"
    text = (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{chr(10).join(user)}<|im_end|>\n"
        f"<|im_start|>assistant\n{prefill}"
    )
    return Prompt(
        text=text,
        format="chat",
        stop=(FENCE, "<|im_end|>"),
        is_complete=_left_function(ctx.indent, closes_fence=True),
        prefill=prefill,
    )


# --------------------------------------------------------------------------------------------- fim


def _fim_prompt(ctx: PromptContext) -> Prompt:
    prefix = ctx.prefix
    # The body range may start after the first line's indentation; give the model whole lines to write.
    last_nl = prefix.rfind("\n")
    if last_nl >= 0 and not prefix[last_nl + 1 :].strip():
        prefix = prefix[: last_nl + 1]
    if ctx.feedback:
        note = _clip(" ".join(ctx.feedback.split()), FEEDBACK_CHARS // 2)
        prefix += f"{ctx.indent}# Note: a previous version failed: {note}\n"
    prefix = _tail_lines(prefix, FIM_PREFIX_CHARS)
    suffix = _head_lines(ctx.suffix, FIM_SUFFIX_CHARS)
    if not suffix.startswith("\n"):
        suffix = "\n" + suffix
    text = f"<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
    return Prompt(
        text=text,
        format="fim",
        stop=("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|im_end|>"),
        is_complete=_left_function(ctx.indent, closes_fence=False),
        prefill="",
    )


# --------------------------------------------------------------------------------------------- shared rules


def _left_function(indent: str, *, closes_fence: bool) -> Callable[[str], bool]:
    """``is_complete`` for a body indented by ``indent``: True once a line starts less indented.

    Decided as soon as a line's first non-blank character arrives (no need to wait for its end), so the
    engine stops right where the model starts on the next function, a ``__main__`` block or prose.
    """
    width = len(indent.expandtabs(4))

    def is_complete(text: str) -> bool:
        if closes_fence and FENCE in text:
            return True
        # A whitespace-only (possibly unfinished) line is ignored: its indentation is not known yet. Once
        # a line's first non-blank character arrives, its indentation is final.
        return any(_dedented(line, width) for line in text.split("\n"))

    return is_complete


def _dedented(line: str, width: int) -> bool:
    """The line has code and starts left of column ``width`` (tabs count as 4)."""
    stripped = line.lstrip(" \t")
    return bool(stripped) and len(line[: len(line) - len(stripped)].expandtabs(4)) < width


# --------------------------------------------------------------------------------------------- format choice


def fim_supported(model_path: str | Path) -> bool:
    """Whether the GGUF's vocabulary has Qwen's FIM tokens (read from the header, no model load)."""
    path = Path(model_path)
    try:
        st = path.stat()
    except OSError:
        return False
    return _fim_supported(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _fim_supported(path: str, size: int, mtime_ns: int) -> bool:
    """Cached per file version: reading the vocabulary takes a few hundred milliseconds."""
    from .source import ModelError, check_gguf

    try:
        return check_gguf(path).has_fim_tokens
    except ModelError:
        return False


def choose_format(model_path: str | Path, setting: Literal["auto", "chat", "fim"]) -> Format:
    """The prompt format for ``model_path``: "chat" unless the setting asks for "fim" and the model has it."""
    if setting == "fim":
        if fim_supported(model_path):
            return "fim"
        log.warning("prompt_format 'fim' asked for, but %s has no FIM tokens; using chat", model_path)
    return "chat"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 4].rstrip() + "\n..."


def _tail_lines(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text``, starting at a line boundary."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    nl = cut.find("\n")
    return cut[nl + 1 :] if nl >= 0 else cut


def _head_lines(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text``, ending at a line boundary."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    nl = cut.rfind("\n")
    return cut[: nl + 1] if nl >= 0 else cut
