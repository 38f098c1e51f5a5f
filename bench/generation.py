"""Generation throughput: the batched k-sequence Engine vs k sequential ``Llama.create_completion`` calls
and vs a plain ``llama_decode`` loop over the same batch, and (``--llama-server``) the same GGUF through
llama.cpp's ``llama-server`` and lsp-verify's RemoteEngine.

The plain loop (:class:`PlainLoop`) is the floor the engine is held to: the same prompt decoded once into
sequence 0 and copied to k sequences, one ``llama_batch`` of k tokens per step, one native sampler chain per
sequence (EOS bias -> top-k -> temp -> top-p -> dist) -- and nothing else: no log-probabilities, no text
decoding, no stop rules, no callbacks. "engine / plain loop" is what lsp-verify's own per-token work costs.

Same model, same prompt, same n_ctx, same threads, same sampling (top-k 40, temperature 0.8, top-p 0.95),
and end-of-generation tokens masked so every sequence decodes exactly ``--tokens`` tokens. Both sides are
timed end to end (prompt included) and interleaved per k, so drift in machine load hits both alike.

    python bench/generation.py [--model PATH] [--tokens 128] [--ks 1,4,8] [--threads N] [--json OUT]
                               [--llama-server]
    python bench/generation.py --prefix-reuse [--repeats 3]

``--prefix-reuse`` times, instead, the prompt of a second request in one file: two prompts that share a
module and differ in the function asked for, the second decoded after the first (the engine keeps the
shared prefix) and cold (``Engine.forget_prompt``), interleaved; k = 1, one token, so the prompt is the time.

With ``--llama-server`` the cached server binary (``bash scripts/build-llama-server.sh``) is started on the
same model with ``--parallel max(ks)``, a unified KV cache of the same ``n_ctx`` and the same threads, and
each k is also run as one streamed ``n = k`` request over HTTP on 127.0.0.1 (the server side of the table).

Prints machine information and a Markdown table of aggregate tokens/s, the batched/sequential ratio and the
engine / plain loop ratio (1.00x: the engine adds nothing over the bare bindings).
This is a benchmark, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
sys.path.insert(
    0, str(Path(__file__).resolve().parents[1] / "tests")
)  # openai_servers: the llama-server launcher

from lsp_verify.model.engine import Engine, backend_info, default_threads
from lsp_verify.model.source import resolve_model
from lsp_verify.model.types import Prompt, SamplingParams

PROMPT = (
    "<|im_start|>system\nYou are an expert Python programmer.<|im_end|>\n"
    "<|im_start|>user\nWrite a Python module with a class LRUCache(capacity) offering get(key) and "
    "put(key, value), with docstrings and a few doctests.<|im_end|>\n<|im_start|>assistant\n```python\n"
)
TEMPERATURE, TOP_P, TOP_K = 0.8, 0.95, 40


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_batched(engine: Engine, k: int, tokens: int, seed: int) -> tuple[float, int]:
    params = SamplingParams(
        k=k, max_tokens=tokens, temperature=TEMPERATURE, top_p=TOP_P, top_k=TOP_K, seed=seed
    )
    start = time.perf_counter()
    gens = engine.generate(Prompt(text=PROMPT, format="chat"), params, ignore_eos=True)
    return time.perf_counter() - start, sum(g.n_tokens for g in gens)


def run_sequential(llm: Any, eog: dict[int, float], k: int, tokens: int, seed: int) -> tuple[float, int]:
    # Forget the previous run's prompt: like the batched engine, each run decodes the prompt once (later
    # calls in the loop still reuse it through Llama's prefix cache).
    llm.reset()
    start = time.perf_counter()
    produced = 0
    for i in range(k):
        out = llm.create_completion(
            PROMPT,
            max_tokens=tokens,
            temperature=TEMPERATURE,
            top_p=TOP_P,
            top_k=TOP_K,
            min_p=0.0,
            seed=seed + i,
            logit_bias=eog,
        )
        produced += int(out["usage"]["completion_tokens"])
    return time.perf_counter() - start, produced


class PlainLoop:
    """The bare llama-cpp-python loop over the same batch the Engine decodes: its own model handle and a
    context with the Engine's parameters (n_batch/n_ubatch 512, unified KV, the same threads)."""

    def __init__(self, model_path: Path, n_ctx: int, n_seq_max: int, threads: int, n_gpu_layers: int) -> None:
        from llama_cpp import llama_cpp as lib

        self.lib = lib
        mparams = lib.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers
        self.model = lib.llama_model_load_from_file(str(model_path).encode("utf-8"), mparams)
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = cparams.n_ubatch = min(n_ctx, 512)
        cparams.n_seq_max = n_seq_max
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        cparams.kv_unified = True
        self.ctx = lib.llama_init_from_model(self.model, cparams)
        self.vocab = lib.llama_model_get_vocab(self.model)
        self.n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        self.mem = lib.llama_get_memory(self.ctx)
        self.batch = lib.llama_batch_init(max(512, n_seq_max), 0, 1)
        eog = [t for t in range(self.n_vocab) if lib.llama_vocab_is_eog(self.vocab, t)]
        self.eog = (lib.llama_logit_bias * len(eog))(*[lib.llama_logit_bias(t, float("-inf")) for t in eog])

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        buf = (self.lib.llama_token * (len(data) + 8))()
        n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, len(buf), True, True)
        return list(buf[:n])

    def _decode(self, items: list[tuple[int, int, int]], last_only: bool) -> None:
        batch = self.batch
        for j, (token, pos, seq) in enumerate(items):
            batch.token[j], batch.pos[j], batch.n_seq_id[j] = token, pos, 1
            batch.seq_id[j][0] = seq
            batch.logits[j] = not last_only or j == len(items) - 1
        batch.n_tokens = len(items)
        if self.lib.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def run(self, prompt: str, k: int, tokens: int, seed: int) -> tuple[float, int]:
        lib = self.lib
        start = time.perf_counter()
        ids = self.tokenize(prompt)
        lib.llama_memory_clear(self.mem, True)
        samplers = []
        for i in range(k):
            chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
            lib.llama_sampler_chain_add(
                chain, lib.llama_sampler_init_logit_bias(self.n_vocab, len(self.eog), self.eog)
            )
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(TOP_K))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(TEMPERATURE))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(TOP_P, 1))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist((seed + i) & 0xFFFFFFFF))
            samplers.append(chain)
        for begin in range(0, len(ids), 512):
            chunk = ids[begin : begin + 512]
            self._decode([(t, begin + j, 0) for j, t in enumerate(chunk)], last_only=True)
        for i in range(1, k):
            lib.llama_memory_seq_cp(self.mem, 0, i, -1, -1)
        rows = [self.batch.n_tokens - 1] * k
        pos = len(ids)
        for step in range(tokens):
            last = [lib.llama_sampler_sample(samplers[i], self.ctx, rows[i]) for i in range(k)]
            if step == tokens - 1:
                break
            self._decode([(last[i], pos, i) for i in range(k)], last_only=False)
            rows = list(range(k))
            pos += 1
        for chain in samplers:
            lib.llama_sampler_free(chain)
        return time.perf_counter() - start, k * tokens

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)
        self.lib.llama_free(self.ctx)
        self.lib.llama_model_free(self.model)


def _file_prompt(function: str) -> Prompt:
    module = "\n".join(
        [
            "import math",
            "from dataclasses import dataclass",
            "",
            "",
            "@dataclass",
            "class Point:",
            '    """A point in the plane."""',
            "",
            "    x: float",
            "    y: float",
            "",
            "",
            "def distance(a: Point, b: Point) -> float:",
            '    """Euclidean distance between two points."""',
            "    return math.hypot(a.x - b.x, a.y - b.y)",
        ]
    )
    return Prompt(
        text=(
            "<|im_start|>system\nYou are an expert Python programmer.<|im_end|>\n"
            f"<|im_start|>user\nThe module:\n```python\n{module}\n```\n"
            f"Write the body of {function}.<|im_end|>\n"
            "<|im_start|>assistant\n```python\n"
        ),
        format="chat",
    )


def prefix_reuse(model_path: Path, threads: int, repeats: int) -> int:
    first, second = (
        _file_prompt("midpoint(a: Point, b: Point) -> Point"),
        _file_prompt("norm(p: Point) -> float"),
    )
    one = SamplingParams(k=1, max_tokens=1, temperature=0.0)
    load_before = os.getloadavg()
    rows = []
    with Engine(model_path, n_ctx=1024, n_seq_max=1, n_threads=threads) as engine:
        engine.generate(first, one)  # warm-up
        for _ in range(repeats):
            engine.forget_prompt()
            engine.generate(first, one)
            start = time.perf_counter()
            engine.generate(second, one)
            warm = time.perf_counter() - start
            reused, decoded = engine.prompt_tokens_reused, engine.prompt_tokens_decoded
            engine.forget_prompt()
            start = time.perf_counter()
            engine.generate(second, one)
            rows.append((warm, reused, decoded, time.perf_counter() - start, engine.prompt_tokens_decoded))
    print(f"load average before/after: {load_before} / {os.getloadavg()}; {threads} threads")
    print("| second request | reused tokens | decoded tokens | s |")
    print("|---|---:|---:|---:|")
    for warm, reused, decoded, cold, cold_decoded in rows:
        print(f"| after the first (prefix kept) | {reused} | {decoded} | {warm:.2f} |")
        print(f"| cold | 0 | {cold_decoded} | {cold:.2f} |")
    return 0


def run_server(engine: Any, k: int, tokens: int, seed: int) -> tuple[float, int]:
    """One streamed request for k choices through the RemoteEngine (EOS ignored, like the other two)."""
    params = SamplingParams(
        k=k, max_tokens=tokens, temperature=TEMPERATURE, top_p=TOP_P, top_k=TOP_K, seed=seed
    )
    start = time.perf_counter()
    gens = engine.generate(Prompt(text=PROMPT, format="chat"), params, ignore_eos=True)
    return time.perf_counter() - start, sum(g.n_tokens for g in gens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="GGUF path (default: the embedded model)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per sequence (default 128)")
    parser.add_argument("--ks", default="1,4,8", help="comma-separated candidate counts (default 1,4,8)")
    parser.add_argument("--threads", type=int, default=None, help="threads for both engines")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", help="also write the results as JSON to this file")
    parser.add_argument(
        "--llama-server", action="store_true", help="also measure the model through the cached llama-server"
    )
    parser.add_argument(
        "--prefix-reuse", action="store_true", help="time a second request's prompt, prefix kept vs cold"
    )
    parser.add_argument("--repeats", type=int, default=3, help="--prefix-reuse: rounds (default 3)")
    args = parser.parse_args(argv)
    if args.prefix_reuse:
        return prefix_reuse(resolve_model(args.model).path, args.threads or default_threads(), args.repeats)
    ks = [int(k) for k in args.ks.split(",") if k.strip()]
    threads = args.threads or default_threads()

    from llama_cpp import Llama

    model = resolve_model(args.model)
    backend = backend_info()
    engine = Engine(model.path, n_ctx=args.n_ctx, n_seq_max=max(ks), n_threads=threads)
    llm = Llama(
        str(model.path),
        n_ctx=args.n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_gpu_layers=engine.info.n_gpu_layers,
        verbose=False,
    )
    eog = {t: float("-inf") for t in engine.eog_tokens()}
    plain = PlainLoop(model.path, args.n_ctx, max(ks), threads, engine.info.n_gpu_layers)
    server: contextlib.ExitStack = contextlib.ExitStack()
    remote: Any = None
    if args.llama_server:
        from lsp_verify.model.remote import RemoteEngine
        from openai_servers import start_llama_server

        url = server.enter_context(
            start_llama_server(model.path, parallel=max(ks), ctx_total=args.n_ctx, threads=threads)
        )
        remote = RemoteEngine(url, n_ctx=args.n_ctx, n_seq_max=max(ks), timeout_s=600)
    # Warm them up (page the weights in, build graphs) before anything is timed.
    run_batched(engine, 1, 8, args.seed)
    run_sequential(llm, eog, 1, 8, args.seed)
    plain.run(PROMPT, 1, 8, args.seed)
    if remote is not None:
        run_server(remote, 1, 8, args.seed)

    machine = {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "threads": threads,
        "backend": backend.backend,
        "n_gpu_layers": engine.info.n_gpu_layers,
        "llama_cpp_python": backend.llama_cpp_python,
        "model": model.path.name,
        "n_ctx": args.n_ctx,
        "tokens_per_sequence": args.tokens,
        "load_average_before": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    rows = []
    for k in ks:
        b_s, b_tok = run_batched(engine, k, args.tokens, args.seed)
        p_s, p_tok = plain.run(PROMPT, k, args.tokens, args.seed)
        s_s, s_tok = run_sequential(llm, eog, k, args.tokens, args.seed)
        rows.append(
            {
                "k": k,
                "batched_s": b_s,
                "batched_tokens": b_tok,
                "batched_tok_s": b_tok / b_s,
                "sequential_s": s_s,
                "sequential_tokens": s_tok,
                "sequential_tok_s": s_tok / s_s,
                "ratio": (b_tok / b_s) / (s_tok / s_s),
                "plain_s": p_s,
                "plain_tok_s": p_tok / p_s,
                # Time per token, engine over plain loop: 1.10 would be 10% slower than the bare bindings.
                "engine_over_plain": (b_s / b_tok) / (p_s / p_tok),
            }
        )
        if remote is not None:
            r_s, r_tok = run_server(remote, k, args.tokens, args.seed)
            rows[-1] |= {
                "server_s": r_s,
                "server_tokens": r_tok,
                "server_tok_s": r_tok / r_s,
                "server_ratio": (r_tok / r_s) / (b_tok / b_s),
            }
    machine["load_average_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    engine.close()
    llm.close()
    plain.close()
    server.close()

    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, {threads} threads, "
        f"backend {machine['backend']} "
        f"({machine['n_gpu_layers']} layers offloaded), llama-cpp-python {machine['llama_cpp_python']}"
    )
    print(f"model: {machine['model']}, n_ctx {args.n_ctx}, {args.tokens} tokens per sequence, EOS masked")
    print(f"load average before/after: {machine['load_average_before']} / {machine['load_average_after']}")
    print()
    print(
        "| k | batched: s | batched: tok/s | sequential: s | sequential: tok/s | batched / sequential "
        "| plain loop: tok/s | engine / plain loop (time) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['k']} | {r['batched_s']:.1f} | {r['batched_tok_s']:.1f} | {r['sequential_s']:.1f} "
            f"| {r['sequential_tok_s']:.1f} | {r['ratio']:.2f}x | {r['plain_tok_s']:.1f} "
            f"| {r['engine_over_plain']:.2f}x |"
        )
    if remote is not None:
        print()
        print("| k | llama-server: s | llama-server: tok/s | llama-server / in-process batched |")
        print("|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['k']} | {r['server_s']:.1f} | {r['server_tok_s']:.1f} | {r['server_ratio']:.2f}x |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"machine": machine, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
