"""Generation throughput: the batched k-sequence Engine vs k sequential ``Llama.create_completion`` calls,
and (``--llama-server``) the same GGUF through llama.cpp's ``llama-server`` and lsp-verify's RemoteEngine.

Same model, same prompt, same n_ctx, same threads, same sampling (top-k 40, temperature 0.8, top-p 0.95),
and end-of-generation tokens masked so every sequence decodes exactly ``--tokens`` tokens. Both sides are
timed end to end (prompt included) and interleaved per k, so drift in machine load hits both alike.

    python bench/generation.py [--model PATH] [--tokens 128] [--ks 1,4,8] [--threads N] [--json OUT]
                               [--llama-server]

With ``--llama-server`` the cached server binary (``bash scripts/build-llama-server.sh``) is started on the
same model with ``--parallel max(ks)``, a unified KV cache of the same ``n_ctx`` and the same threads, and
each k is also run as one streamed ``n = k`` request over HTTP on 127.0.0.1 (the server side of the table).

Prints machine information and a Markdown table of aggregate tokens/s and the batched/sequential ratio.
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
    args = parser.parse_args(argv)
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
    server.close()

    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, {threads} threads, "
        f"backend {machine['backend']} "
        f"({machine['n_gpu_layers']} layers offloaded), llama-cpp-python {machine['llama_cpp_python']}"
    )
    print(f"model: {machine['model']}, n_ctx {args.n_ctx}, {args.tokens} tokens per sequence, EOS masked")
    print(f"load average before/after: {machine['load_average_before']} / {machine['load_average_after']}")
    print()
    print("| k | batched: s | batched: tok/s | sequential: s | sequential: tok/s | batched / sequential |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['k']} | {r['batched_s']:.1f} | {r['batched_tok_s']:.1f} | {r['sequential_s']:.1f} "
            f"| {r['sequential_tok_s']:.1f} | {r['ratio']:.2f}x |"
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
