"""Prompt prefix reuse across requests (issue 15): the engine keeps the last prompt's KV and decodes only
what a new prompt does not share with it. Real embedded GGUF, small contexts, fixed seeds."""

from __future__ import annotations

import pytest

from lsp_verify.cancel import CancelToken
from lsp_verify.model.engine import Engine
from lsp_verify.model.source import ModelFile
from lsp_verify.model.types import Generation, Prompt, SamplingParams

pytestmark = pytest.mark.model

MODULE = '''import math
from dataclasses import dataclass


@dataclass
class Point:
    """A point in the plane."""

    x: float
    y: float


def distance(a: Point, b: Point) -> float:
    """Euclidean distance between two points."""
    return math.hypot(a.x - b.x, a.y - b.y)
'''


def request(function: str) -> Prompt:
    """A chat prompt for one function of the same module, as two requests in one file would have."""
    return Prompt(
        text=(
            "<|im_start|>system\nYou are an expert Python programmer.<|im_end|>\n"
            f"<|im_start|>user\nThe module:\n```python\n{MODULE}```\n"
            f"Write the body of {function}.<|im_end|>\n"
            "<|im_start|>assistant\n```python\n"
        ),
        format="chat",
        stop=("```",),
    )


MIDPOINT = request("midpoint(a: Point, b: Point) -> Point")
NORM = request("norm(p: Point) -> float, the distance from the origin")
PARAMS = SamplingParams(k=3, max_tokens=24, temperature=0.8, seed=5, lead=True)


def texts(gens: list[Generation]) -> list[tuple[str, str]]:
    return [(g.text, g.finish_reason) for g in gens]


def test_the_second_request_in_a_file_decodes_only_what_its_prompt_does_not_share(
    model_file: ModelFile,
) -> None:
    with (
        Engine(model_file.path, n_ctx=1024, n_seq_max=3) as warm,
        Engine(model_file.path, n_ctx=1024, n_seq_max=3) as cold,
    ):
        n_norm = len(warm.tokenize(NORM.text))
        warm.generate(MIDPOINT, PARAMS)
        assert warm.prompt_tokens_reused == 0

        second = warm.generate(NORM, PARAMS)

        assert warm.prompt_tokens_reused + warm.prompt_tokens_decoded == n_norm
        assert warm.prompt_tokens_reused > n_norm // 2  # the module is most of the prompt
        reference = cold.generate(NORM, PARAMS)
        assert cold.prompt_tokens_decoded == n_norm
        assert texts(second) == texts(reference)

        # The same prompt again: everything but the last token (its logits start the candidates) is kept.
        again = warm.generate(NORM, PARAMS)
        assert (warm.prompt_tokens_reused, warm.prompt_tokens_decoded) == (n_norm - 1, 1)
        assert texts(again) == texts(reference)


def test_an_unrelated_prompt_reuses_nothing_it_does_not_share(model_file: ModelFile) -> None:
    with Engine(model_file.path, n_ctx=1024, n_seq_max=2) as eng:
        params = SamplingParams(k=2, max_tokens=16, temperature=0.0)
        eng.generate(MIDPOINT, params)
        other = Prompt(text="def fib(n: int) -> int:\n", format="fim")

        first = eng.generate(other, params)
        n_other = len(eng.tokenize(other.text))
        assert eng.prompt_tokens_reused + eng.prompt_tokens_decoded == n_other
        assert eng.prompt_tokens_reused <= 1  # at most a shared first token

        # The same prompt again, now all but one token reused: the greedy answer is what it was.
        assert eng.generate(other, params)[0].text == first[0].text
        assert eng.prompt_tokens_decoded == 1

        # Forgotten (benchmarks time cold requests): the whole prompt is decoded again.
        eng.forget_prompt()
        assert eng.generate(other, params)[0].text == first[0].text
        assert (eng.prompt_tokens_reused, eng.prompt_tokens_decoded) == (0, n_other)


def test_a_prompt_decoded_ahead_leaves_the_request_one_token_and_the_same_candidates(
    model_file: ModelFile,
) -> None:
    with Engine(model_file.path, n_ctx=1024, n_seq_max=3) as eng:
        n_norm = len(eng.tokenize(NORM.text))
        reference = eng.generate(NORM, PARAMS)

        eng.forget_prompt()
        assert eng.prefill(NORM) == n_norm
        assert eng.prefill(NORM) == 0  # kept already: nothing to decode
        prepared = eng.generate(NORM, PARAMS)
        assert (eng.prompt_tokens_reused, eng.prompt_tokens_decoded) == (n_norm - 1, 1)
        assert texts(prepared) == texts(reference)

        # Another function of the same file, decoded ahead over the first: only what differs is decoded.
        n_midpoint = len(eng.tokenize(MIDPOINT.text))
        decoded = eng.prefill(MIDPOINT)
        assert 0 < decoded < n_midpoint // 2

        # A cancel between chunks keeps what was decoded by then (here: nothing) and raises nothing.
        eng.forget_prompt()
        cancel = CancelToken()
        cancel.cancel("the cursor moved on")
        assert eng.prefill(NORM, cancel) == 0
        assert texts(eng.generate(NORM, PARAMS)) == texts(reference)
        assert eng.prompt_tokens_decoded == n_norm
