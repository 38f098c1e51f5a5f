"""The engine's lead sequence (``SamplingParams.lead``), on the real embedded model with fixed seeds.

With a lead, sequence 0 is greedy and decoded alone before the others, so it is handed over first with the
text a lone greedy completion has; the other k - 1 then decode together from the same prompt.
"""

from __future__ import annotations

import pytest

from lsp_verify.cancel import CancelToken
from lsp_verify.model.engine import Engine
from lsp_verify.model.types import Generation, Prompt, SamplingParams

pytestmark = pytest.mark.model

ADD = Prompt(
    text=(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWrite a Python function that adds two numbers.<|im_end|>\n"
        "<|im_start|>assistant\n```python\n"
    ),
    format="chat",
    stop=("```",),
)


def test_the_lead_is_the_greedy_completion_and_is_handed_over_first(engine: Engine) -> None:
    greedy = engine.generate(ADD, SamplingParams(k=1, max_tokens=40, temperature=0.0))[0]
    order: list[Generation] = []

    gens = engine.generate(
        ADD,
        SamplingParams(k=4, max_tokens=40, temperature=1.0, seed=2, lead=True),
        on_generation=order.append,
    )

    assert [g.index for g in gens] == [0, 1, 2, 3]
    assert order[0].index == 0 and order[0].text == greedy.text
    assert all(g.n_tokens > 0 and g.finish_reason != "cancelled" for g in gens)
    # The others are still sampled: they differ from one another.
    assert len({g.text for g in gens[1:]}) > 1


def test_the_waiting_sequences_continue_the_whole_prompt(engine: Engine) -> None:
    # All greedy: a waiting sequence that lost a prompt token or a position would write something else.
    greedy = engine.generate(ADD, SamplingParams(k=1, max_tokens=30, temperature=0.0))[0]

    gens = engine.generate(ADD, SamplingParams(k=3, max_tokens=30, temperature=0.0, lead=True))

    assert [g.text for g in gens] == [greedy.text] * 3


def test_cancel_during_the_lead_ends_every_sequence(engine: Engine) -> None:
    token = CancelToken()
    seen: list[Generation] = []

    def on_generation(generation: Generation) -> None:
        seen.append(generation)
        token.cancel("the lead is enough")

    gens = engine.generate(
        ADD,
        SamplingParams(k=3, max_tokens=40, temperature=1.0, seed=1, lead=True),
        on_generation=on_generation,
        cancel=token,
    )

    assert gens[0].finish_reason != "cancelled"
    assert [(g.finish_reason, g.n_tokens) for g in gens[1:]] == [("cancelled", 0)] * 2
    assert len(seen) == 3
