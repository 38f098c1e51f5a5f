"""The llama.cpp engine: load a GGUF, offload it, and sample k candidates from one prompt in one batch.

Built on llama-cpp-python's low-level ctypes bindings (``llama_cpp.llama_cpp``) because the high-level
``Llama`` class decodes one sequence at a time. One request works like this:

1. clear the KV memory of every candidate sequence (one context serves every request);
2. decode the prompt once and copy its KV cells to sequences 0..k-1 (``llama_memory_seq_cp``; with a
   unified KV cache the copy shares cells instead of duplicating them). The prompt lives in a reserved
   sequence (id ``n_seq_max``) that outlives the request: the next request keeps the longest token prefix it
   shares with the last prompt and decodes only the rest -- requests for one file share their imports,
   class and surrounding code, so the second one skips most of its prompt (``prompt_tokens_reused``);
3. each step decodes one token for every live sequence in a single ``llama_batch``; each sequence samples
   with its own native sampler chain (top-k -> temp -> top-p -> dist, seed ``params.seed + i``; greedy at
   temperature 0);
4. a sequence ends on an end-of-generation token, a stop string, ``max_tokens``, or when
   ``prompt.is_complete`` says the code has left the function; it is handed to ``on_generation`` at once.
   It cannot end before it has written something: while its text is blank, the end-of-generation tokens and
   those that start a stop string are masked in its logits (:meth:`Engine.blank_bans`);
5. with ``params.lead``, sequence 0 is greedy and steps 3-4 run for it alone first, then for the other k - 1
   together (they decode the prompt's last token again: its logits are gone by then). Batching k sequences
   buys throughput at the price of each one's speed; the lead is the one the user waits for.

Every native handle lives in :class:`Engine` and is freed in reverse order by :meth:`Engine.close`.

llama.cpp logs to stderr by default, and its loader must never write to stdout (JSON-RPC owns it in
``serve``). Instead of pointing file descriptor 1 at /dev/null while loading -- which would also swallow
protocol messages another thread writes meanwhile -- we install a ``llama_log_set`` callback that forwards
every native log line to Python :mod:`logging` at debug level.
"""

from __future__ import annotations

import codecs
import ctypes
import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from ..cancel import CancelToken
from .types import EngineInfo, FinishReason, Generation, Prompt, SamplingParams

__all__ = ["BackendInfo", "Engine", "EngineError", "backend_info"]

log = logging.getLogger(__name__)
native_log = logging.getLogger("lsp_verify.llama_cpp")

OnGeneration = Callable[[Generation], None]

# Backend registry names as ggml reports them, most specific first; "CPU" is always there.
_GPU_BACKENDS = ("CUDA", "Metal", "Vulkan", "ROCm", "HIP", "SYCL", "MUSA", "CANN", "OpenCL", "RPC")


class EngineError(RuntimeError):
    """The native library failed (model would not load, decode error); the message says what to do."""


def _bindings() -> Any:
    """The ctypes bindings, imported on first use so that importing this module stays cheap.

    Typed as Any on purpose: the bindings' own annotations are partial and would drown ``mypy --strict``.
    """
    from llama_cpp import llama_cpp

    return llama_cpp


# --------------------------------------------------------------------------------------------- native logging

_log_lock = threading.Lock()
_log_callback: Any = None
"""The installed ctypes callback. Kept referenced for the life of the process: llama.cpp keeps the raw
function pointer, and a collected callback would crash the next log call."""
_backend_ready = False


def _forward_native_log(level: int, text: bytes | None, user_data: Any) -> None:
    if text:
        native_log.debug("%s", text.decode("utf-8", "replace").rstrip("\n"))


def _init_native() -> Any:
    """Install the log forwarder and initialise the llama.cpp backend, once per process."""
    global _log_callback, _backend_ready
    lib = _bindings()
    with _log_lock:
        if _log_callback is None:
            _log_callback = lib.llama_log_callback(_forward_native_log)
            lib.llama_log_set(_log_callback, ctypes.c_void_p(0))
        if not _backend_ready:
            lib.llama_backend_init()
            _backend_ready = True
    return lib


# --------------------------------------------------------------------------------------------- backend info


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    """What the installed llama.cpp build can do (for ``lsp-verify doctor``); no model is loaded."""

    backend: str
    """The compute backend a model would use: "CUDA", "Metal", ... or "CPU"."""
    gpu_offload_supported: bool
    devices: tuple[str, ...]
    """Devices ggml can use, e.g. ("CPU",) or ("CUDA0", "CPU")."""
    system_info: str
    """llama_print_system_info(): backends and their compile-time features."""
    llama_cpp_python: str
    max_parallel_sequences: int


def _devices(lib: Any) -> tuple[str, ...]:
    """Names of the ggml devices, read through the symbols the llama library pulls in (dlsym follows deps)."""
    raw = lib._lib
    try:
        count = raw.ggml_backend_dev_count
        get = raw.ggml_backend_dev_get
        name = raw.ggml_backend_dev_name
    except AttributeError:
        return ()
    count.restype, count.argtypes = ctypes.c_size_t, []
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    out = []
    for i in range(int(count())):
        value = name(get(i))
        if value:
            out.append(value.decode("utf-8", "replace"))
    return tuple(out)


def _backend_name(system_info: str, devices: Sequence[str], offload: bool) -> str:
    if offload:
        for backend in _GPU_BACKENDS:
            if any(d.upper().startswith(backend.upper()) for d in devices) or f"{backend} :" in system_info:
                return backend
    return "CPU"


def backend_info() -> BackendInfo:
    """Describe the llama.cpp build without loading a model. Raises ImportError without llama-cpp-python."""
    lib = _init_native()
    import llama_cpp

    system_info = (lib.llama_print_system_info() or b"").decode("utf-8", "replace").strip()
    offload = bool(lib.llama_supports_gpu_offload())
    devices = _devices(lib)
    return BackendInfo(
        backend=_backend_name(system_info, devices, offload),
        gpu_offload_supported=offload,
        devices=devices,
        system_info=system_info,
        llama_cpp_python=str(getattr(llama_cpp, "__version__", "unknown")),
        max_parallel_sequences=int(lib.llama_max_parallel_sequences()),
    )


def default_threads() -> int:
    """Threads for decoding: all CPUs we may use on small machines, half of them (physical cores) on big ones.

    llama.cpp's matrix kernels gain nothing from SMT siblings, and on a 2-4 core machine there is nothing to
    spare; the count respects CPU affinity (containers, taskset).
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        n = os.cpu_count() or 1
    return max(1, n // 2) if n > 4 else n


# --------------------------------------------------------------------------------------------- the engine


@dataclasses.dataclass
class _Sequence:
    """Decoding state of one candidate."""

    index: int
    sampler: Any
    decoder: codecs.IncrementalDecoder
    text: str = ""
    n_tokens: int = 0
    logprob_sum: float = 0.0
    last_token: int = 0
    finish: FinishReason | None = None


class Engine:
    """One llama.cpp model + context, reused for every request.

    Not thread-safe: the server drives it from one worker thread. A lock serialises :meth:`generate` and
    :meth:`close` anyway, so a misuse waits instead of corrupting native state.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 4096,
        n_seq_max: int = 8,
        n_gpu_layers: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise EngineError(f"model file {path} does not exist")
        if n_ctx <= 0 or n_seq_max <= 0:
            raise ValueError("n_ctx and n_seq_max must be positive")
        self._lib = lib = _init_native()
        self._lock = threading.Lock()
        self._stack = ExitStack()
        self._kept: list[int] = []
        """Tokens whose KV the reserved prompt sequence holds, positions 0..len-1 (empty: nothing kept)."""
        self.prompt_tokens_decoded = 0
        """Prompt tokens the last request decoded (the rest of its prompt was reused from the one before)."""
        self.prompt_tokens_reused = 0
        self._closed = False
        max_seq = int(lib.llama_max_parallel_sequences())
        if n_seq_max > max_seq:
            raise ValueError(f"n_seq_max {n_seq_max} exceeds what this llama.cpp build supports ({max_seq})")

        offload = bool(lib.llama_supports_gpu_offload())
        if n_gpu_layers is None or n_gpu_layers < 0:
            n_gpu_layers = -1 if offload else 0
        if not offload:
            n_gpu_layers = 0
        threads = n_threads or default_threads()

        try:
            mparams = lib.llama_model_default_params()
            mparams.n_gpu_layers = n_gpu_layers
            model = lib.llama_model_load_from_file(str(path).encode("utf-8"), mparams)
            if not model:
                raise EngineError(
                    f"llama.cpp could not load {path} (not a GGUF it supports, or damaged); "
                    "run `lsp-verify doctor` with --verbose for the loader's log"
                )
            self._model = model
            self._stack.callback(lib.llama_model_free, model)

            cparams = lib.llama_context_default_params()
            cparams.n_ctx = n_ctx
            cparams.n_batch = min(n_ctx, 512)
            cparams.n_ubatch = min(n_ctx, 512)
            # Unified KV: the k sequences share the prompt's cells and the free cells, so n_ctx bounds the
            # total (prompt + all candidates) instead of being split n_seq_max ways -- and the kept prompt's
            # sequence shares its cells with the candidates (split caches would give it a slice of its own:
            # no reuse then).
            self._unified = hasattr(cparams, "kv_unified")
            self._keep: int | None = n_seq_max if self._unified and n_seq_max < max_seq else None
            cparams.n_seq_max = n_seq_max + (self._keep is not None)
            cparams.n_threads = threads
            cparams.n_threads_batch = threads
            cparams.no_perf = True
            if self._unified:
                cparams.kv_unified = True
            ctx = lib.llama_init_from_model(model, cparams)
            if not ctx:
                raise EngineError(
                    f"llama.cpp could not create a context (n_ctx={n_ctx}, n_seq_max={n_seq_max})"
                )
            self._ctx = ctx
            self._stack.callback(lib.llama_free, ctx)

            self._n_batch = int(lib.llama_n_batch(ctx))
            batch = lib.llama_batch_init(max(self._n_batch, n_seq_max), 0, 1)
            self._batch = batch
            self._stack.callback(lib.llama_batch_free, batch)
        except BaseException:
            self._stack.close()
            raise

        self._vocab = lib.llama_model_get_vocab(model)
        self._mem = lib.llama_get_memory(ctx)
        self._n_vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        self._n_ctx = int(lib.llama_n_ctx(ctx))
        self._n_ctx_seq = self._n_ctx if self._unified else self._n_ctx // n_seq_max
        self._pieces: dict[int, bytes] = {}
        self._eog_ids: list[int] | None = None
        self._blank_bans: dict[tuple[str, ...], npt.NDArray[np.intp]] = {}
        self.allow_empty = False
        """Let a sequence end before it has written anything (on only to measure what the ban changes)."""
        n_layers = int(lib.llama_model_n_layer(model))
        system_info = (lib.llama_print_system_info() or b"").decode("utf-8", "replace")
        self._info = EngineInfo(
            model_path=str(path),
            backend=_backend_name(system_info, _devices(lib), offload and n_gpu_layers != 0),
            gpu_offload_supported=offload,
            # -1 asks for every layer; llama.cpp offloads n_layer blocks plus the output layer.
            n_gpu_layers=n_layers if n_gpu_layers < 0 else min(n_gpu_layers, n_layers),
            n_layers=n_layers,
            n_threads=threads,
            n_ctx=self._n_ctx,
            n_seq_max=n_seq_max,
        )
        log.info(
            "engine ready: %s, backend %s, %d/%d layers offloaded, %d threads, n_ctx %d, %d sequences",
            path.name,
            self._info.backend,
            self._info.n_gpu_layers,
            n_layers,
            threads,
            self._n_ctx,
            n_seq_max,
        )

    # ----------------------------------------------------------------------------------------- lifetime

    @property
    def info(self) -> EngineInfo:
        return self._info

    def close(self) -> None:
        """Free batch, context and model, in that order. Safe to call twice."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._stack.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def forget_prompt(self) -> None:
        """Drop the kept prompt: the next request decodes its whole prompt (benchmarks time cold requests)."""
        with self._lock:
            self._check_open()
            self._kept = []
            self._lib.llama_memory_clear(self._mem, True)

    def prefill(self, prompt: Prompt, cancel: CancelToken | None = None) -> int:
        """Decode ``prompt`` into the kept prompt sequence ahead of a request for it, generating nothing.

        The request that follows with this prompt then decodes only its last token (``generate`` keeps the
        longest prefix it shares with the kept prompt); one with another prompt keeps what the two share.
        The server calls this while the user looks at a function, before they ask. Returns the tokens decoded
        now (0 when the prompt was already kept, or when this engine keeps no prompt). ``cancel`` is polled
        between chunks of ``n_batch`` tokens: what was decoded by then stays kept.
        """
        with self._lock:
            self._check_open()
            if self._keep is None:
                return 0
            tokens = self.tokenize(prompt.text)
            if not tokens or len(tokens) >= self._n_ctx_seq:
                return 0  # a prompt too large is the request's error to report, not this warm-up's
            reused = self._reuse_prefix([*tokens, -1])  # keep the whole prompt when it is already kept
            self._decode_prompt(tokens, reused, cancel)
            return self.prompt_tokens_decoded

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError("the engine is closed")

    # ----------------------------------------------------------------------------------------- tokens

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """Token ids of ``text``. Special tokens written in the text (``<|im_start|>``) are parsed as such."""
        self._check_open()
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (ctypes.c_int32 * capacity)()
        n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:  # pragma: no cover - capacity is an upper bound for BPE vocabularies
            capacity = -n
            buf = (ctypes.c_int32 * capacity)()
            n = self._lib.llama_tokenize(
                self._vocab, data, len(data), buf, capacity, add_special, parse_special
            )
        return list(buf[:n])

    def _piece(self, token: int) -> bytes:
        """Bytes of one token (control tokens render as nothing); cached, the vocabulary never changes."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._token_bytes(token)
        return piece

    def _token_bytes(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
        return buf.raw[:n]

    def eog_tokens(self) -> list[int]:
        """Ids of every end-of-generation token (EOS, EOT, FIM pad, ...), computed once."""
        if self._eog_ids is None:
            is_eog = self._lib.llama_vocab_is_eog
            self._eog_ids = [t for t in range(self._n_vocab) if is_eog(self._vocab, t)]
        return self._eog_ids

    def blank_bans(self, stop: tuple[str, ...]) -> npt.NDArray[np.intp]:
        """Tokens a sequence may not write while it has written nothing but whitespace: an end of
        generation, or the start of a stop string. An empty answer is never a candidate, and a small model
        shown a long class or a docstring it takes for the whole function closes the code block at once
        (``bench/methods.py``); computed once per set of stop strings."""
        bans = self._blank_bans.get(stop)
        if bans is None:
            starts = [s for s in stop if s]
            banned = set(self.eog_tokens())
            for token in range(self._n_vocab):  # not through the piece cache: it is for generated tokens
                text = self._token_bytes(token).decode("utf-8", "replace").lstrip()
                if text and any(s.startswith(text) or text.startswith(s) for s in starts):
                    banned.add(token)
            bans = self._blank_bans[stop] = np.array(sorted(banned), dtype=np.intp)
        return bans

    def _ban(self, row: int, tokens: npt.NDArray[np.intp]) -> None:
        """Make ``tokens`` impossible in logits row ``row`` of the last decode (what the samplers read)."""
        logits = np.ctypeslib.as_array(self._lib.llama_get_logits_ith(self._ctx, row), shape=(self._n_vocab,))
        logits[tokens] = -np.inf

    # ----------------------------------------------------------------------------------------- sampling

    def _sampler(self, params: SamplingParams, index: int, ignore_eos: bool) -> Any:
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if ignore_eos:
            eog = self.eog_tokens()
            biases = (lib.llama_logit_bias * len(eog))(*[lib.llama_logit_bias(t, -math.inf) for t in eog])
            lib.llama_sampler_chain_add(
                chain, lib.llama_sampler_init_logit_bias(self._n_vocab, len(eog), biases)
            )
        if params.temperature <= 0 or (params.lead and index == 0):
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(params.top_k))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(params.temperature))
            if params.top_p < 1.0:
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(params.top_p, 1))
            # dist takes a uint32 seed; wrap so any Python int gives a repeatable, distinct stream.
            lib.llama_sampler_chain_add(
                chain, lib.llama_sampler_init_dist((params.seed + index) & 0xFFFFFFFF)
            )
        return chain

    def prompt_budget(self, params: SamplingParams) -> int:
        """How many prompt tokens fit next to ``params.k`` sequences of ``params.max_tokens`` tokens."""
        if self._unified:
            return self._n_ctx - params.k * params.max_tokens
        return self._n_ctx_seq - params.max_tokens

    def _check_budget(self, n_prompt: int, params: SamplingParams) -> None:
        if n_prompt <= self.prompt_budget(params):
            return
        if self._unified:
            need = n_prompt + params.k * params.max_tokens
            where = f"prompt {n_prompt} + k {params.k} x max_tokens {params.max_tokens}"
        else:
            need = n_prompt + params.max_tokens
            where = f"prompt {n_prompt} + max_tokens {params.max_tokens}"
        limit = self._n_ctx if self._unified else self._n_ctx_seq
        raise ValueError(
            f"prompt too long for the context: {where} = {need} tokens > n_ctx {limit}; "
            "shorten the context (fewer tests or surrounding code), lower k or max_tokens, or raise n_ctx"
        )

    # ----------------------------------------------------------------------------------------- generate

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        on_generation: OnGeneration | None = None,
        cancel: CancelToken | None = None,
        ignore_eos: bool = False,
    ) -> list[Generation]:
        """Sample ``params.k`` continuations of ``prompt``; the list is ordered by sequence index.

        Each :class:`Generation` is passed to ``on_generation`` (from this thread) the moment its sequence
        ends, before the others finish. ``cancel`` is polled between decode steps: once set, every live
        sequence ends with finish reason "cancelled" (also handed to ``on_generation``) and this returns.
        ``ignore_eos`` masks end-of-generation tokens (benchmarks: every sequence runs its full budget).

        ``Generation.text`` is the decoded continuation with a matched stop string cut off; for
        ``left_function`` it still holds the line that left the function (the prompt's extraction trims it).
        ``mean_logprob`` averages the model's own log-probability (softmax of the raw logits, before
        temperature and top-p) of every sampled token, end-of-generation token included.
        """
        if params.k <= 0 or params.max_tokens <= 0:
            raise ValueError("k and max_tokens must be positive")
        if params.k > self._info.n_seq_max:
            raise ValueError(f"k={params.k} exceeds the engine's n_seq_max={self._info.n_seq_max}")
        with self._lock:
            self._check_open()
            return self._generate(prompt, params, on_generation, cancel, ignore_eos)

    def _generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        on_generation: OnGeneration | None,
        cancel: CancelToken | None,
        ignore_eos: bool,
    ) -> list[Generation]:
        lib, ctx, batch = self._lib, self._ctx, self._batch
        start = time.monotonic()
        tokens = self.tokenize(prompt.text)
        if not tokens:
            raise ValueError("empty prompt")
        self._check_budget(len(tokens), params)

        # One context serves every request: forget whatever the last one left, but the kept prompt prefix.
        reused = self._reuse_prefix(tokens)

        seqs: list[_Sequence] = []
        finished: list[Generation] = []
        stack = ExitStack()
        try:
            for i in range(params.k):
                sampler = self._sampler(params, i, ignore_eos)
                stack.callback(lib.llama_sampler_free, sampler)
                seqs.append(_Sequence(i, sampler, codecs.getincrementaldecoder("utf-8")("replace")))

            def finish(seq: _Sequence, reason: FinishReason) -> None:
                seq.finish = reason
                seq.text += seq.decoder.decode(b"", final=True)
                if reason != "stop":
                    seq.text = _cut_stop(seq.text, prompt.stop)[0]
                gen = Generation(
                    index=seq.index,
                    text=seq.text,
                    n_tokens=seq.n_tokens,
                    mean_logprob=seq.logprob_sum / seq.n_tokens if seq.n_tokens else 0.0,
                    finish_reason=reason,
                    seconds=time.monotonic() - start,
                )
                finished.append(gen)
                # Free its KV cells at once: with a unified cache the others can use them.
                lib.llama_memory_seq_rm(self._mem, seq.index, -1, -1)
                if on_generation is not None:
                    on_generation(gen)

            if not self._decode_prompt(tokens, reused, cancel):
                for seq in seqs:
                    finish(seq, "cancelled")
                return sorted(finished, key=lambda g: g.index)
            n_prompt = len(tokens)
            # With a lead, sequence 0 decodes alone first: at k = 8 a batched sequence advances at about a
            # quarter of a lone one's speed, so the lead ends as early as a lone greedy completion would. The
            # others wait with the prompt's cells but its last token: the prompt's logits are overwritten by
            # the lead's steps, so they decode that token again themselves when their turn comes.
            lead = params.lead and params.k > 1
            prompt_seq = 0 if self._keep is None else self._keep
            if prompt_seq != 0:
                lib.llama_memory_seq_cp(self._mem, prompt_seq, 0, -1, -1)
            for seq in seqs[1:]:
                lib.llama_memory_seq_cp(self._mem, prompt_seq, seq.index, -1, n_prompt - 1 if lead else -1)
            waves = [seqs[:1], seqs[1:]] if lead else [seqs]
            max_stop = max((len(s) for s in prompt.stop), default=0)
            bans = None if self.allow_empty else self.blank_bans(prompt.stop)
            scratch = np.empty((max(map(len, waves)), self._n_vocab), dtype=np.float32)

            def run_wave(live: list[_Sequence], rows: list[int]) -> bool:
                """Decode ``live`` together until each has ended; False when cancelled in between."""
                pos = n_prompt
                while True:
                    logits = self._logits(rows)
                    lse = _logsumexp_rows(logits, scratch)
                    if bans is not None:  # after lse: log-probabilities stay those of the model
                        for j, seq in enumerate(live):
                            if not seq.text.strip():
                                self._ban(rows[j], bans)
                    still: list[_Sequence] = []
                    for j, seq in enumerate(live):
                        token = int(lib.llama_sampler_sample(seq.sampler, ctx, rows[j]))
                        seq.n_tokens += 1
                        seq.logprob_sum += float(logits[j, token]) - float(lse[j])
                        seq.last_token = token
                        if lib.llama_vocab_is_eog(self._vocab, token) and not ignore_eos:
                            finish(seq, "eos")
                            continue
                        new = seq.decoder.decode(self._piece(token))
                        if new:
                            seq.text += new
                            if max_stop:
                                cut, hit = _cut_stop(seq.text, prompt.stop, len(new) + max_stop)
                                if hit:
                                    seq.text = cut
                                    finish(seq, "stop")
                                    continue
                            if prompt.is_complete is not None and prompt.is_complete(seq.text):
                                finish(seq, "left_function")
                                continue
                        if seq.n_tokens >= params.max_tokens:
                            finish(seq, "length")
                            continue
                        still.append(seq)
                    live = still
                    if not live:
                        return True
                    if cancel is not None and cancel.cancelled:
                        for seq in live:
                            finish(seq, "cancelled")
                        return False
                    self._fill_batch([(s.last_token, pos, s.index) for s in live])
                    self._decode()
                    rows = list(range(len(live)))
                    pos += 1

            # The first wave samples its first token from the prompt's last logits row.
            if run_wave(waves[0], [batch.n_tokens - 1] * len(waves[0])):
                for wave in waves[1:]:
                    if cancel is not None and cancel.cancelled:
                        break
                    self._fill_batch([(tokens[-1], n_prompt - 1, s.index) for s in wave])
                    self._decode()
                    if not run_wave(wave, list(range(len(wave)))):
                        break
            for seq in seqs:
                if seq.finish is None:
                    finish(seq, "cancelled")
        finally:
            stack.close()
        return sorted(finished, key=lambda g: g.index)

    def _fill_batch(self, items: Sequence[tuple[int, int, int]], *, logits_last_only: bool = False) -> None:
        batch = self._batch
        for j, (token, pos, seq_id) in enumerate(items):
            batch.token[j] = token
            batch.pos[j] = pos
            batch.n_seq_id[j] = 1
            batch.seq_id[j][0] = seq_id
            batch.logits[j] = not logits_last_only
        if logits_last_only and items:
            batch.logits[len(items) - 1] = True
        batch.n_tokens = len(items)

    def _decode(self) -> None:
        rc = int(self._lib.llama_decode(self._ctx, self._batch))
        if rc != 0:
            reason = "no room left in the KV cache" if rc == 1 else f"error code {rc}"
            raise EngineError(f"llama_decode failed: {reason}")

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Free every candidate sequence and cut the kept prompt to the longest prefix it shares with
        ``tokens``; returns that prefix's length (at most all but the last token: its logits are needed)."""
        lib = self._lib
        if self._keep is None:
            lib.llama_memory_clear(self._mem, True)
            return 0
        common = 0
        for old, new in zip(self._kept, tokens[:-1], strict=False):  # the shorter one bounds the prefix
            if old != new:
                break
            common += 1
        for seq_id in range(self._info.n_seq_max):
            lib.llama_memory_seq_rm(self._mem, seq_id, -1, -1)
        if not lib.llama_memory_seq_rm(self._mem, self._keep, common, -1):
            # The memory cannot cut a sequence part-way (it can for the transformer models we load).
            lib.llama_memory_clear(self._mem, True)
            common = 0
        self._kept = self._kept[:common]
        return common

    def _decode_prompt(self, tokens: list[int], reused: int, cancel: CancelToken | None) -> bool:
        """Decode the prompt after its first ``reused`` tokens into the prompt's sequence (the kept one, else
        sequence 0) in n_batch chunks; False when cancelled in between."""
        seq_id = 0 if self._keep is None else self._keep
        self.prompt_tokens_reused = reused
        self.prompt_tokens_decoded = 0
        for begin in range(reused, len(tokens), self._n_batch):
            if cancel is not None and cancel.cancelled:
                return False
            chunk = tokens[begin : begin + self._n_batch]
            self._fill_batch([(t, begin + j, seq_id) for j, t in enumerate(chunk)], logits_last_only=True)
            try:
                self._decode()
            except EngineError:
                # What the kept sequence holds is unknown now: start the next request from nothing.
                self._lib.llama_memory_clear(self._mem, True)
                self._kept = []
                raise
            self.prompt_tokens_decoded += len(chunk)
            if self._keep is not None:
                self._kept = tokens[: begin + len(chunk)]
        return True

    def _logits(self, rows: list[int]) -> npt.NDArray[np.float32]:
        """The logits rows of the last decode, as one (len(rows), n_vocab) array (a view, no copy)."""
        lib, ctx = self._lib, self._ctx
        if rows == list(range(len(rows))):
            ptr = lib.llama_get_logits(ctx)
            return np.ctypeslib.as_array(ptr, shape=(len(rows), self._n_vocab))
        # Prompt case: every sequence reads the same (last) row.
        ptr = lib.llama_get_logits_ith(ctx, rows[0])
        row = np.ctypeslib.as_array(ptr, shape=(1, self._n_vocab))
        return np.broadcast_to(row, (len(rows), self._n_vocab))


def _logsumexp_rows(
    logits: npt.NDArray[np.float32], scratch: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """log(sum(exp(row))) per row, stable; the log-probability of token t is logits[t] - lse.

    Runs once per decode step over k x n_vocab (~1.2M) floats, the engine's largest per-token cost of its
    own: ``exp`` works in place in ``scratch`` (at least that shape; no allocation per step) and the sum stays
    in float32 (numpy sums pairwise; a float64 sum cost a conversion pass for digits a mean log-prob never
    shows).
    """
    unique = logits[:1] if logits.strides[0] == 0 else logits
    peak = unique.max(axis=1, keepdims=True)
    work = scratch[: unique.shape[0]]
    np.subtract(unique, peak, out=work)
    np.exp(work, out=work)
    lse = np.log(work.sum(axis=1)) + peak[:, 0]
    return np.broadcast_to(lse, (logits.shape[0],)) if unique is not logits else lse


def _cut_stop(text: str, stops: Sequence[str], window: int | None = None) -> tuple[str, bool]:
    """``text`` up to the earliest stop string (searching only the last ``window`` characters)."""
    if not stops:
        return text, False
    begin = 0 if window is None else max(0, len(text) - window)
    best = -1
    for stop in stops:
        at = text.find(stop, begin)
        if at >= 0 and (best < 0 or at < best):
            best = at
    return (text[:best], True) if best >= 0 else (text, False)
