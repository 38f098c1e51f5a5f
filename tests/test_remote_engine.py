"""The OpenAI-compatible engine against real HTTP servers: a scripted one on 127.0.0.1 for the protocol and
every fault, and the real llama.cpp ``llama-server`` (when built) for the end-to-end path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lsp_verify.cancel import CancelToken
from lsp_verify.config import UNTRUSTED_PROJECT_IGNORES, Settings, project_settings
from lsp_verify.model.remote import RemoteEngine, RemoteEngineError
from lsp_verify.model.types import Generation, Prompt, SamplingParams
from lsp_verify.pipeline import load_engine
from openai_servers import (
    SKIP_REASON,
    Reply,
    ScriptedServer,
    closed_port_url,
    completion_events,
    llama_server_binary,
    start_llama_server,
)

REPO = Path(__file__).resolve().parents[1]
PROMPT = Prompt(text="<|im_start|>user\nwrite add<|im_end|>\n", format="chat", stop=("```", "<|im_end|>"))
PARAMS = SamplingParams(k=4, max_tokens=64, seed=7)


def engine_for(server: ScriptedServer, **options: Any) -> RemoteEngine:
    return RemoteEngine(server.url, **{"timeout_s": 5.0, "backoff_s": 0.01, **options})


# ----------------------------------------------------------------------------------------------- protocol


def test_one_request_with_n_k_streams_each_candidate_as_it_finishes() -> None:
    texts = ["    return a + b\n```", "    return b + a\n```", "    s = a\n    s += b\n    return s\n```"]
    with ScriptedServer(texts) as server:
        engine = engine_for(server)
        handed: list[Generation] = []
        gens = engine.generate(PROMPT, PARAMS, on_generation=handed.append)

    (request,) = server.completion_requests()
    assert (request["n"], request["seed"], request["logprobs"], request["stream"]) == (4, 7, 1, True)
    assert request["model"] == "scripted-coder", "the default model is the first the server lists"
    assert request["prompt"] == PROMPT.text and request["stop"] == ["```", "<|im_end|>"]
    assert engine.n_honoured is True
    assert [g.index for g in gens] == [0, 1, 2, 3]
    assert [g.text for g in gens] == [
        "    return a + b\n",
        "    return b + a\n",
        texts[2][:-3],
        texts[0][:-3],
    ]
    assert all(g.finish_reason == "stop" and g.mean_logprob == -0.5 and g.n_tokens > 0 for g in gens)
    # Handed over one by one as each ended (the short ones before the long one), not at the end.
    assert [g.index for g in handed][-1] == 2 and sorted(g.index for g in handed) == [0, 1, 2, 3]


def test_vllm_style_logprobs_and_a_server_that_does_not_stream() -> None:
    # vLLM streams OpenAI's completion logprobs ({"tokens", "token_logprobs"}); some proxies answer the whole
    # completion at once even when asked to stream.
    def chunk(index: int, text: str, reason: str | None = None) -> str:
        logprobs = {"tokens": [text], "token_logprobs": [-0.25], "top_logprobs": None, "text_offset": [0]}
        return json.dumps(
            {"choices": [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": reason}]}
        )

    vllm = Reply(events=[chunk(0, "    return a"), chunk(0, " + b\n", "stop"), "[DONE]"])
    with ScriptedServer(completions=lambda request: vllm) as server:
        (gen,) = engine_for(server).generate(PROMPT, SamplingParams(k=1))
    assert (gen.text, gen.n_tokens, gen.mean_logprob, gen.finish_reason) == (
        "    return a + b\n",
        2,
        -0.25,
        "stop",
    )

    whole = {
        "choices": [{"index": i, "text": f"    return {i}\n", "finish_reason": "length"} for i in range(4)]
    }
    with ScriptedServer(completions=lambda request: Reply(body=json.dumps(whole).encode())) as server:
        gens = engine_for(server).generate(PROMPT, PARAMS)
    assert [(g.text, g.finish_reason) for g in gens] == [(f"    return {i}\n", "length") for i in range(4)]


def test_a_candidate_that_leaves_the_function_is_handed_over_without_waiting_for_the_server() -> None:
    prompt = Prompt(text="p", format="chat", is_complete=lambda text: "\ndef " in text)
    with ScriptedServer(["    return 1\ndef other():\n    pass\n" * 20]) as server:
        gens = engine_for(server).generate(prompt, SamplingParams(k=1, max_tokens=500))
    assert gens[0].finish_reason == "left_function" and gens[0].text.startswith("    return 1\ndef ")
    assert len(gens[0].text) < 40


@pytest.mark.parametrize("refusal", ["ignores", "refuses"])
def test_a_server_without_n_gets_k_concurrent_requests_with_seed_plus_i(refusal: str) -> None:
    def reply(request: dict[str, Any]) -> Reply:
        if refusal == "refuses" and request["n"] > 1:
            return Reply(status=400, body=b'{"error": {"message": "n > 1 is not supported"}}')
        return Reply(events=completion_events([f"    return {request['seed']}\n```"], n=1))

    with ScriptedServer(completions=reply) as server:
        engine = engine_for(server)
        gens = engine.generate(PROMPT, PARAMS)
        assert engine.n_honoured is False
        again = engine.generate(PROMPT, PARAMS)

    requests = server.completion_requests()
    assert (requests[0]["n"], requests[0]["seed"]) == (4, 7)
    # Ignored: choice 0 came from that request, the other three follow; refused: all four follow.
    rest = [r["seed"] for r in requests[1 : 5 if refusal == "refuses" else 4]]
    assert sorted(rest) == ([7, 8, 9, 10] if refusal == "refuses" else [8, 9, 10])
    seeds = [r["seed"] for r in requests]
    assert sorted(seeds[-4:]) == [7, 8, 9, 10], "once known, no request asks for n > 1"
    assert all(r["n"] == 1 for r in server.completion_requests()[-4:])
    for round_ in (gens, again):
        assert [g.text for g in round_] == [f"    return {7 + i}\n" for i in range(4)]


def test_the_api_key_comes_from_the_named_variable_and_never_appears_in_a_message() -> None:
    env = {"TEAM_LLM_KEY": "sk-very-secret"}
    reply = Reply(status=401, body=b'{"error": {"message": "invalid api key"}}')
    with ScriptedServer(completions=lambda request: reply) as server:
        engine = engine_for(server, api_key_env="TEAM_LLM_KEY", environ=env)
        with pytest.raises(RemoteEngineError) as raised:
            engine.generate(PROMPT, PARAMS)
    assert all(
        headers.get("Authorization") == "Bearer sk-very-secret" for _, _, headers, _ in server.requests
    )
    message = str(raised.value)
    assert "sk-very-secret" not in message and "$TEAM_LLM_KEY" in message and "HTTP 401" in message
    assert "\n" not in message

    with pytest.raises(RemoteEngineError, match="MISSING_KEY, which is not set"):
        RemoteEngine("http://127.0.0.1:9/v1", api_key_env="MISSING_KEY", environ={})


def test_cancel_closes_the_connection_and_ends_the_candidates_as_cancelled() -> None:
    # The server sends one chunk and then nothing for longer than the read timeout: without the cancel
    # closing the socket, generate would end in a "stalled" error instead.
    first = completion_events(["    return"], n=4)[:1]
    with ScriptedServer(completions=lambda request: Reply(events=first, stall_s=8)) as server:
        engine = engine_for(server, timeout_s=6.0)
        token = CancelToken()
        handed: list[Generation] = []

        def on_generation(gen: Generation) -> None:
            handed.append(gen)

        threading.Timer(0.5, token.cancel).start()
        gens = engine.generate(PROMPT, PARAMS, on_generation=on_generation, cancel=token)
    assert [g.finish_reason for g in gens] == ["cancelled"] * 4
    assert len(handed) == 4


def test_with_the_openai_engine_the_local_model_is_never_loaded() -> None:
    with ScriptedServer() as server:
        settings = Settings(engine="openai", endpoint=server.url, model_path="/nonexistent/model.gguf")
        engine = load_engine(settings)
    assert isinstance(engine, RemoteEngine) and engine.info.model_path == "scripted-coder"


# ----------------------------------------------------------------------------------------------- faults


def fault(reply: Reply | None = None, **options: Any) -> str:
    """The one-line message generate fails with against a server that answers ``reply``."""
    with ScriptedServer(completions=lambda request: reply or Reply()) as server:
        engine = engine_for(server, **options)
        with pytest.raises(RemoteEngineError) as raised:
            engine.generate(PROMPT, PARAMS)
    message = str(raised.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_unreachable_server() -> None:
    url = closed_port_url()
    with pytest.raises(RemoteEngineError, match=r"cannot reach the model server at .*; is it running"):
        RemoteEngine(url, timeout_s=5)


def test_tls_error() -> None:
    with ScriptedServer() as server:
        url = server.url.replace("http://", "https://")
        with pytest.raises(RemoteEngineError, match=r"^TLS error talking to https://127\.0\.0\.1"):
            RemoteEngine(url, timeout_s=5)


@pytest.mark.parametrize("status", [401, 403])
def test_not_authorised(status: int) -> None:
    message = fault(Reply(status=status, body=b'{"error": {"message": "no"}}'))
    assert f"HTTP {status}, not authorised" in message and "set 'api_key_env'" in message


def test_unknown_model() -> None:
    message = fault(Reply(status=404, body=b'{"error": {"message": "model nope not found"}}'), model="nope")
    assert "has no model 'nope'" in message and "model nope not found" in message


def test_busy_server_is_retried_honouring_retry_after() -> None:
    replies = [Reply(status=429, headers={"Retry-After": "0"}), Reply(status=503)]
    ok = Reply(events=completion_events(["    return 0\n```"], n=4))
    with ScriptedServer(completions=lambda request: replies.pop(0) if replies else ok) as server:
        gens = engine_for(server).generate(PROMPT, PARAMS)
    assert len(server.completion_requests()) == 3
    assert [g.text for g in gens] == ["    return 0\n"] * 4


@pytest.mark.parametrize("status", [429, 503])
def test_busy_server_gives_up_after_bounded_retries(status: int) -> None:
    message = fault(Reply(status=status, headers={"Retry-After": "0"}), retries=2)
    assert f"busy (HTTP {status}) after 3 attempts" in message


def test_malformed_json() -> None:
    assert "sent malformed JSON" in fault(Reply(events=['{"choices": [{"index": 0, "text": "  re']))


def test_a_choice_without_text() -> None:
    message = fault(Reply(events=['{"choices": [{"index": 0, "delta": {"content": "x"}}]}']))
    assert "sent choice 0 without text" in message


def test_a_stalled_stream_times_out() -> None:
    events = completion_events(["    return 1\n```"], n=4)[:2]
    message = fault(Reply(events=events, stall_s=5), timeout_s=0.5)
    assert "sent nothing for 0.5s (stalled)" in message


def test_an_error_object_in_the_stream() -> None:
    message = fault(Reply(events=['{"error": {"message": "context size exceeded", "code": 400}}']))
    assert message.endswith("reported an error: context size exceeded")


def test_no_endpoint_or_a_bad_one() -> None:
    with pytest.raises(RemoteEngineError, match="needs an endpoint"):
        RemoteEngine(None)
    with pytest.raises(RemoteEngineError, match="is not an http:// or https:// URL"):
        RemoteEngine("gpu-box:8080")


# ----------------------------------------------------------------------------------------------- settings


def test_an_untrusted_repository_cannot_send_the_code_or_the_key_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.lsp-verify]\nengine = "openai"\nendpoint = "https://attacker.example/v1"\n'
        'api_key_env = "AWS_SECRET_ACCESS_KEY"\nremote_model = "theirs"\nremote-timeout-s = 9999\n'
    )
    untrusted = project_settings(tmp_path, trusted=False)
    assert (untrusted.engine, untrusted.endpoint, untrusted.api_key_env, untrusted.remote_model) == (
        "local",
        None,
        None,
        None,
    )
    assert all(
        name in UNTRUSTED_PROJECT_IGNORES
        for name in ("engine", "endpoint", "api_key_env", "remote_model", "remote_timeout_s")
    )
    (problem,) = untrusted.problems
    assert "'endpoint' decides which server the user's code (and API key) is sent to" in problem
    # The user's own (editor) settings still apply on top, and a trusted checkout uses the team's table.
    editor = untrusted.updated({"engine": "openai", "endpoint": "http://gpu:8080/v1"}, "editor")
    assert (editor.engine, editor.endpoint) == ("openai", "http://gpu:8080/v1")
    trusted = project_settings(tmp_path, trusted=True)
    assert (trusted.engine, trusted.endpoint, trusted.api_key_env) == (
        "openai",
        "https://attacker.example/v1",
        "AWS_SECRET_ACCESS_KEY",
    )
    assert Settings().updated({"engine": "gpu"}, "editor").problems == [
        "editor: invalid value 'gpu' for 'engine': expected one of local, openai; using 'local'"
    ]


# ----------------------------------------------------------------------------------------------- the CLI

SERVER_DIR = REPO / "server"
OPS = '''\
"""Arithmetic."""


def add(a: int, b: int) -> int:
    """Return the sum of ``a`` and ``b``."""
    ...
'''
TESTS = "from mathx.ops import add\n\n\ndef test_add() -> None:\n    assert add(2, 3) == 5\n"


def make_project(root: Path) -> Path:
    (root / "mathx").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "mathx"\nversion = "0"\n')
    (root / "mathx" / "__init__.py").write_text("")
    (root / "mathx" / "ops.py").write_text(OPS)
    (root / "tests" / "test_ops.py").write_text(TESTS)
    return root


def cli(cwd: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SERVER_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")
    return subprocess.run(
        [sys.executable, "-m", "lsp_verify", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_fix_through_a_server_gives_a_verified_body(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    texts = ["    return a - b\n```", "    return a + b\n```"]
    with ScriptedServer(texts) as server:
        engine = ("--engine", "openai", "--endpoint", server.url)
        done = cli(project, tmp_path, "fix", "mathx/ops.py", "-k", "2", *engine, "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    (add,) = json.loads(done.stdout)["functions"]
    assert add["status"] == "pass" and "+    return a + b" in add["diff"]
    assert "tests/test_ops.py::test_add" in add["tests"]["passed"]
    assert (project / "mathx" / "ops.py").read_text() == OPS


@pytest.mark.parametrize("where", ["unreachable", "401"])
def test_cli_fault_is_one_line_exit_2_and_touches_nothing(tmp_path: Path, where: str) -> None:
    project = make_project(tmp_path / "proj")
    reply = Reply(status=401, body=b'{"error": {"message": "bad key"}}')
    with ScriptedServer(completions=lambda request: reply) as server:
        url = closed_port_url() if where == "unreachable" else server.url
        done = cli(
            project, tmp_path, "fix", "mathx/ops.py", "--apply", "--engine", "openai", "--endpoint", url
        )
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("lsp-verify: error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert ("cannot reach the model server" if where == "unreachable" else "HTTP 401") in errors[0]
    assert (project / "mathx" / "ops.py").read_text() == OPS


def test_doctor_reports_the_server(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    with ScriptedServer() as server:
        done = cli(project, tmp_path, "doctor", "--engine", "openai", "--endpoint", server.url)
    lines = {line[:16].strip(): line[17:] for line in done.stdout.splitlines() if len(line) > 17}
    assert lines["engine"] == "openai" and lines["endpoint"] == server.url
    assert lines["remote model"].startswith("scripted-coder")
    assert lines["n per request"].startswith("honoured")
    assert lines["round trip"].endswith("ms (one token, two choices)")
    assert "model size" not in lines, "the local model is not resolved"


# ----------------------------------------------------------------------------------------------- llama-server


@pytest.fixture(scope="module")
def llama_server(model_file: Any) -> Iterator[str]:
    """The real llama-server on the embedded GGUF: 4 parallel sequences sharing a unified 8192-cell cache."""
    if llama_server_binary() is None:
        pytest.skip(SKIP_REASON)
    with start_llama_server(model_file.path, parallel=4, ctx_total=8192) as url:
        yield url


@pytest.mark.model
def test_real_llama_server_streams_k_choices_with_n_seed_and_logprobs(llama_server: str) -> None:
    engine = RemoteEngine(llama_server, n_ctx=2048)
    probe = engine.probe()
    prompt = Prompt(
        text="<|im_start|>user\nWrite a Python function add(a, b).<|im_end|>\n<|im_start|>assistant\n"
        "```python\ndef add(a: int, b: int) -> int:\n",
        format="chat",
        stop=("```", "<|im_end|>"),
    )
    handed: list[Generation] = []
    gens = engine.generate(prompt, SamplingParams(k=4, max_tokens=48, seed=1), on_generation=handed.append)
    assert probe.n_honoured and engine.n_honoured
    assert len(gens) == 4 and len(handed) == 4 and all(g.text for g in gens)
    assert all(g.n_tokens > 0 and g.mean_logprob < 0 for g in gens)
    assert all(g.finish_reason in ("stop", "length") for g in gens)


@pytest.mark.model
def test_real_llama_server_cli_fix_gives_a_verified_body(llama_server: str, tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    engine = ("--engine", "openai", "--endpoint", llama_server)
    done = cli(
        project, tmp_path, "fix", "mathx/ops.py", "-k", "4", "--seed", "0", *engine, "--format", "json"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (add,) = json.loads(done.stdout)["functions"]
    assert add["status"] == "pass" and "tests/test_ops.py::test_add" in add["tests"]["passed"]
