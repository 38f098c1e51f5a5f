"""Plain data types of the model stage."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from ..cancel import CancelToken

FinishReason = Literal["eos", "stop", "length", "left_function", "cancelled"]
Format = Literal["chat", "fim"]


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    k: int = 8
    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    """Keep the k most likely tokens before top-p (0 disables). Besides being llama.cpp's usual default, it
    spares top-p a sort of the whole ~150k-token vocabulary for every sampled token."""
    seed: int = 0
    """Sequence i samples with seed ``seed + i``: a run is repeatable, the k sequences differ."""
    lead: bool = False
    """Sequence 0 is greedy and decoded alone, ahead of the others, so it is handed over as early as a lone
    greedy completion would be (and can be verified while the other k - 1 are decoded together)."""


@dataclasses.dataclass(frozen=True)
class Prompt:
    """A fully rendered prompt and the rules that end a sequence."""

    text: str
    format: Format
    stop: tuple[str, ...] = ()
    """Plain strings that end a sequence (excluded from the text)."""
    is_complete: Callable[[str], bool] | None = None
    """Called with the text generated so far; True when the code has left the function being written."""
    prefill: str = ""
    """Text at the end of ``text`` that the model's output continues (for chat: the opening ```python fence,
    class line, header and docstring). The generated text is the function body: whole lines indented by the
    body's indentation; ``prefill + generated`` is the code as the model sees it. Empty for FIM."""


@dataclasses.dataclass(frozen=True)
class Generation:
    """One finished sequence."""

    index: int
    text: str
    n_tokens: int
    mean_logprob: float
    finish_reason: FinishReason
    seconds: float
    """Time from the start of the request until this sequence finished."""


@dataclasses.dataclass(frozen=True)
class EngineInfo:
    model_path: str
    backend: str
    """"CPU", "CUDA", "Metal", "Vulkan", ... as the llama.cpp build reports it."""
    gpu_offload_supported: bool
    n_gpu_layers: int
    n_layers: int
    n_threads: int
    n_ctx: int
    n_seq_max: int


class GenerationEngine(Protocol):
    """What the pipeline needs from an engine: the in-process llama.cpp ``Engine`` and the OpenAI-compatible
    ``RemoteEngine`` both provide it."""

    @property
    def info(self) -> EngineInfo: ...

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        on_generation: Callable[[Generation], None] | None = None,
        cancel: CancelToken | None = None,
        ignore_eos: bool = False,
    ) -> list[Generation]:
        """Sample ``params.k`` continuations; each is handed to ``on_generation`` as soon as it ends."""
        ...

    def prefill(self, prompt: Prompt, cancel: CancelToken | None = None) -> int:
        """Take in ``prompt`` ahead of a request for it, generating nothing (0: nothing to do); returns the
        prompt tokens decoded."""
        ...

    def prompt_budget(self, params: SamplingParams) -> int:
        """Prompt tokens that fit next to the k candidates."""
        ...

    def close(self) -> None: ...
