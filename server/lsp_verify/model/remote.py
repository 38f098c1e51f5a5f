"""The OpenAI-compatible engine: k candidates from a server (llama.cpp's ``llama-server``, vLLM) over HTTP.

Same interface as the in-process :class:`~lsp_verify.model.engine.Engine` (:class:`GenerationEngine`), so the
pipeline streams and verifies remote candidates exactly like local ones. Verification stays local; only the
sampling moves. Standard library only (``http.client``): one request is small, and a client we own lets a
cancel close the socket under a blocked read.

One request works like this:

1. ``POST {endpoint}/completions`` with the rendered prompt (the same chat or FIM text the local model sees),
   ``n = k``, ``seed``, ``logprobs`` and ``stream: true``;
2. the Server-Sent Events are read as they come; each choice is handed to ``on_generation`` the moment the
   server ends it, or as soon as ``prompt.is_complete`` says its code has left the function; once every
   choice is done the connection is closed (the server stops decoding);
3. a server that ignores ``n`` (it returns one choice) or refuses it (HTTP 400) is remembered; from then on
   the k candidates are k concurrent requests with seeds ``seed + i``.

Faults end in :class:`RemoteEngineError` with one line that says what to do: unreachable server, TLS error,
401/403, unknown model, 429/503 after bounded retries (``Retry-After`` honoured), malformed JSON, a choice
without text, a stream that stalls for ``timeout_s``. The API key is read from the environment variable
named by ``api_key_env`` when a request is made; it is never logged, stored in settings or put in a message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..cancel import Cancelled, CancelToken
from .engine import EngineError, _cut_stop
from .types import EngineInfo, FinishReason, Generation, Prompt, SamplingParams

__all__ = ["ProbeResult", "RemoteEngine", "RemoteEngineError"]

log = logging.getLogger(__name__)

OnGeneration = Callable[[Generation], None]

RETRY_STATUSES = (429, 503)
MAX_RETRY_WAIT_S = 30.0
"""A Retry-After longer than this is cut to it: the user is waiting in the editor."""


class RemoteEngineError(EngineError):
    """The server could not be used; the message is one line that says what to do."""


class _NotHonoured(Exception):
    """The server refused ``n`` > 1 (HTTP 400): fall back to one request per candidate."""


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What ``lsp-verify doctor`` reports about a server."""

    model: str
    models: tuple[str, ...]
    n_honoured: bool
    round_trip_s: float
    """Time of one tiny completion request (one token, two choices)."""


@dataclasses.dataclass
class _Choice:
    index: int
    text: str = ""
    n_tokens: int = 0
    logprob_sum: float = 0.0
    n_logprobs: int = 0
    finish: FinishReason | None = None


@dataclasses.dataclass(frozen=True)
class _Endpoint:
    url: str
    """As the user wrote it, without a trailing slash (for messages)."""
    https: bool
    host: str
    port: int
    path: str
    """Base path, e.g. "/v1"."""


def _parse_endpoint(url: str | None) -> _Endpoint:
    if not url:
        raise RemoteEngineError(
            "engine 'openai' needs an endpoint: set 'endpoint' to the server's API base, e.g. "
            "http://HOST:8080/v1"
        )
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RemoteEngineError(
            f"endpoint {url!r} is not an http:// or https:// URL (e.g. http://HOST:8080/v1)"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RemoteEngineError(f"endpoint {url!r} has an invalid port") from None
    return _Endpoint(
        url=url.strip().rstrip("/"),
        https=parts.scheme == "https",
        host=parts.hostname,
        port=port,
        path=parts.path.rstrip("/"),
    )


class RemoteEngine:
    """A model behind an OpenAI-compatible ``/v1`` API. Thread-safe; holds no connection between requests."""

    def __init__(
        self,
        endpoint: str | None,
        *,
        model: str | None = None,
        api_key_env: str | None = None,
        n_ctx: int = 4096,
        n_seq_max: int = 8,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Check the endpoint and the key's variable, and choose the model (the first the server lists when
        ``model`` is None: one request). ``n_ctx`` is the context the server gives each sequence."""
        self._endpoint = _parse_endpoint(endpoint)
        self._api_key_env = api_key_env
        self._environ = os.environ if environ is None else environ
        if api_key_env and not self._environ.get(api_key_env):
            raise RemoteEngineError(
                f"api_key_env names the environment variable {api_key_env}, which is not set in the "
                "environment lsp-verify runs in"
            )
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._n_ctx = n_ctx
        self._callback_lock = threading.Lock()
        self.n_honoured: bool | None = None
        """Whether the server returns k choices for ``n = k``; None until a request with k > 1 tells."""
        self.model = model or self._first_model()
        self._info = EngineInfo(
            model_path=self.model,
            backend=f"openai-compatible server {self._endpoint.url}",
            gpu_offload_supported=False,
            n_gpu_layers=0,
            n_layers=0,
            n_threads=0,
            n_ctx=n_ctx,
            n_seq_max=n_seq_max,
        )
        log.info("remote engine ready: model %s at %s", self.model, self._endpoint.url)

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def endpoint(self) -> str:
        return self._endpoint.url

    def close(self) -> None:
        """Nothing is held between requests; here for the engine interface."""

    def prompt_budget(self, params: SamplingParams) -> int:
        """Prompt tokens that fit next to one sequence: each choice has its own slot on the server."""
        return self._n_ctx - params.max_tokens

    def prefill(self, prompt: Prompt, cancel: CancelToken | None = None) -> int:
        """Nothing: a shared server's prompt cache is its own (llama-server keeps the last prompt per slot
        and reuses it when asked with ``cache_prompt``), and a request that generates nothing would only
        take a slot another user needs. Here for the engine interface."""
        return 0

    # ----------------------------------------------------------------------------------------- requests

    def models(self) -> list[str]:
        """Model ids the server lists at ``/models``."""
        conn, response = self._open("GET", "/models", None, None)
        try:
            data = self._json(response.read())
        except OSError as exc:
            raise self._transport_error(exc) from None
        finally:
            conn.close()
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise RemoteEngineError(f"{self._endpoint.url}/models answered without a 'data' list of models")
        return [str(item["id"]) for item in items if isinstance(item, dict) and "id" in item]

    def _first_model(self) -> str:
        models = self.models()
        if not models:
            raise RemoteEngineError(
                f"{self._endpoint.url}/models lists no model; set 'remote_model' to the model's name"
            )
        return models[0]

    def probe(self) -> ProbeResult:
        """One tiny request (one token, two choices): whether ``n`` is honoured, and the round-trip time."""
        models = self.models()
        body = {"model": self.model, "prompt": "def", "max_tokens": 1, "n": 2, "seed": 0, "temperature": 0}
        start = time.monotonic()
        try:
            conn, response = self._open("POST", "/completions", body, None)
        except _NotHonoured:
            honoured = False
        else:
            seen: set[object] = set()
            try:
                for chunk in self._events(response):  # a server may stream even when not asked to
                    items = chunk.get("choices") if isinstance(chunk, dict) else None
                    seen.update(c.get("index", 0) for c in items or () if isinstance(c, dict))
            except OSError as exc:
                raise self._transport_error(exc) from None
            finally:
                conn.close()
            honoured = len(seen) >= 2
        return ProbeResult(
            model=self.model,
            models=tuple(models),
            n_honoured=honoured,
            round_trip_s=time.monotonic() - start,
        )

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        on_generation: OnGeneration | None = None,
        cancel: CancelToken | None = None,
        ignore_eos: bool = False,
    ) -> list[Generation]:
        """Sample ``params.k`` continuations of ``prompt``, as :meth:`Engine.generate` does.

        ``on_generation`` is called (never concurrently) as each choice ends; a cancel closes the connection
        and ends the unfinished choices with "cancelled". ``mean_logprob`` is the server's log-probability of
        the sampled tokens where it reports them (0.0 where it does not).
        """
        if params.k <= 0 or params.max_tokens <= 0:
            raise ValueError("k and max_tokens must be positive")
        cancel = cancel or CancelToken()
        start = time.monotonic()
        finished: dict[int, Generation] = {}

        def hand_over(choice: _Choice) -> None:
            text = choice.text if choice.finish == "stop" else _cut_stop(choice.text, prompt.stop)[0]
            gen = Generation(
                index=choice.index,
                text=text,
                n_tokens=choice.n_tokens,
                mean_logprob=choice.logprob_sum / choice.n_logprobs if choice.n_logprobs else 0.0,
                finish_reason=choice.finish or "cancelled",
                seconds=time.monotonic() - start,
            )
            with self._callback_lock:
                finished[gen.index] = gen
                if on_generation is not None:
                    on_generation(gen)

        missing = list(range(params.k))
        if params.k > 1 and self.n_honoured is not False:
            try:
                self._stream(prompt, params, missing, params.seed, ignore_eos, hand_over, cancel)
            except _NotHonoured:
                self.n_honoured = False
            missing = [i for i in range(params.k) if i not in finished]
            if not cancel.cancelled and self.n_honoured is None:
                # A server that ignores n answers with choice 0 only.
                self.n_honoured = not missing
                if missing:
                    log.info(
                        "%s ignores n=%d; sending one request per candidate", self._endpoint.url, params.k
                    )
        if missing and not cancel.cancelled:
            self._concurrent(prompt, params, missing, ignore_eos, hand_over, cancel)
        for index in range(params.k):
            if index not in finished:
                hand_over(_Choice(index, finish="cancelled"))
        return [finished[i] for i in sorted(finished)]

    def _concurrent(
        self,
        prompt: Prompt,
        params: SamplingParams,
        indices: list[int],
        ignore_eos: bool,
        hand_over: Callable[[_Choice], None],
        cancel: CancelToken,
    ) -> None:
        """One request per candidate, all at once, candidate i with seed ``seed + i``; the first error stops
        the others and is raised."""
        errors: list[BaseException] = []
        inner = CancelToken()
        unregister = cancel.on_cancel(lambda: inner.cancel(cancel.reason))

        def one(index: int) -> None:
            try:
                self._stream(prompt, params, [index], params.seed + index, ignore_eos, hand_over, inner)
            except BaseException as exc:  # raised on the caller's thread below
                errors.append(exc)
                inner.cancel("another request failed")

        threads = [
            threading.Thread(target=one, args=(i,), name=f"lsp-verify-remote-{i}", daemon=True)
            for i in indices
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            unregister()
        if errors and not cancel.cancelled:
            raise errors[0]

    # ----------------------------------------------------------------------------------------- one stream

    def _stream(
        self,
        prompt: Prompt,
        params: SamplingParams,
        indices: list[int],
        seed: int,
        ignore_eos: bool,
        hand_over: Callable[[_Choice], None],
        cancel: CancelToken,
    ) -> None:
        """One streamed request for the candidates ``indices`` (several: ``n = len(indices)``). Returns
        when each has ended or on cancel; raises RemoteEngineError or _NotHonoured (n > 1 refused)."""
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt.text,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": seed & 0xFFFFFFFF,
            "n": len(indices),
            "logprobs": 1,
            "stream": True,
        }
        if params.top_k > 0:
            body["top_k"] = params.top_k
        if prompt.stop:
            body["stop"] = list(prompt.stop[:4])  # the OpenAI API takes at most four
        if ignore_eos:
            body["ignore_eos"] = True
        choices = {position: _Choice(index) for position, index in enumerate(indices)}
        try:
            conn, response = self._open("POST", "/completions", body, cancel)
        except Cancelled:
            return
        abort = cancel.on_cancel(functools.partial(_shutdown, conn))
        try:
            for chunk in self._events(response):
                self._apply(chunk, choices, prompt, params, hand_over)
                if all(c.finish is not None for c in choices.values()):
                    break
        except OSError as exc:
            if not cancel.cancelled:
                raise self._transport_error(exc) from None
        finally:
            abort()
            conn.close()
        if cancel.cancelled:
            return
        unfinished = [c for c in choices.values() if c.finish is None]
        if len(indices) > 1 and unfinished and all(c.n_tokens == 0 for c in unfinished):
            return  # n ignored: the caller asks for these separately
        for choice in unfinished:
            if choice.n_tokens == 0 and not choice.text:
                raise RemoteEngineError(
                    f"{self._endpoint.url} ended the stream without any text for choice {choice.index}"
                )
            choice.finish = "length"  # the stream ended without a finish reason: keep what came
            hand_over(choice)

    def _apply(
        self,
        chunk: Any,
        choices: dict[int, _Choice],
        prompt: Prompt,
        params: SamplingParams,
        hand_over: Callable[[_Choice], None],
    ) -> None:
        """Add one streamed (or the whole non-streamed) completion object to the choices."""
        if isinstance(chunk, dict) and "error" in chunk:
            raise RemoteEngineError(f"{self._endpoint.url} reported an error: {_error_text(chunk)}")
        items = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(items, list):
            raise RemoteEngineError(f"{self._endpoint.url} sent a completion without a 'choices' list")
        for item in items:
            position = item.get("index", 0) if isinstance(item, dict) else None
            choice = choices.get(position) if isinstance(position, int) else None
            if choice is None:
                raise RemoteEngineError(
                    f"{self._endpoint.url} sent choice {position!r}, not one of the {len(choices)} asked for"
                )
            assert isinstance(item, dict)
            text = item.get("text")
            reason = item.get("finish_reason")
            if not isinstance(text, str) and not (text is None and "text" not in item and reason):
                raise RemoteEngineError(
                    f"{self._endpoint.url} sent choice {position} without text (is it an OpenAI-compatible "
                    "/v1 completions endpoint?)"
                )
            if choice.finish is not None:
                continue  # done on our side (it left the function); the server is still finishing it
            if text:
                choice.text += text
                choice.n_tokens += 1
            logprobs = _token_logprobs(item.get("logprobs"))
            if logprobs:
                choice.n_tokens += len(logprobs) - (1 if text else 0)
                choice.logprob_sum += sum(logprobs)
                choice.n_logprobs += len(logprobs)
            if prompt.stop and text:
                cut, hit = _cut_stop(choice.text, prompt.stop)
                if hit:
                    choice.text, choice.finish = cut, "stop"
            if choice.finish is None and prompt.is_complete is not None and prompt.is_complete(choice.text):
                choice.finish = "left_function"
            if choice.finish is None and reason:
                choice.finish = "length" if reason == "length" else "stop"
            if choice.finish is None and choice.n_tokens >= params.max_tokens:
                choice.finish = "length"
            if choice.finish is not None:
                hand_over(choice)

    def _events(self, response: http.client.HTTPResponse) -> Iterator[Any]:
        """The JSON objects of a Server-Sent Events stream (or the one object of a non-streamed answer)."""
        kind = response.getheader("Content-Type", "")
        if "text/event-stream" not in kind:
            yield self._json(response.read())
            return
        while True:
            line = response.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").strip()
            if not text.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, "event:" lines
            data = text[5:].strip()
            if data == "[DONE]":
                return
            yield self._json(data.encode("utf-8"))

    # ----------------------------------------------------------------------------------------- HTTP

    def _connection(self) -> http.client.HTTPConnection:
        ep = self._endpoint
        if ep.https:
            return http.client.HTTPSConnection(
                ep.host, ep.port, timeout=self._timeout_s, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(ep.host, ep.port, timeout=self._timeout_s)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self._api_key_env:
            key = self._environ.get(self._api_key_env, "")
            if key:
                headers["Authorization"] = f"Bearer {key}"
        return headers

    def _open(
        self, method: str, path: str, body: dict[str, Any] | None, cancel: CancelToken | None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send one request and return the open response with a 2xx status; 429/503 are retried (at most
        ``retries`` times, waiting Retry-After or an exponential backoff)."""
        payload = json.dumps(body).encode("utf-8") if body is not None else None
        for attempt in range(self._retries + 1):
            conn = self._connection()
            abort = cancel.on_cancel(functools.partial(_shutdown, conn)) if cancel is not None else _nothing
            try:
                conn.request(method, self._endpoint.path + path, body=payload, headers=self._headers())
                response = conn.getresponse()
            except OSError as exc:
                conn.close()
                if cancel is not None and cancel.cancelled:
                    raise Cancelled(cancel.reason) from None
                raise self._transport_error(exc) from None
            finally:
                abort()
            if 200 <= response.status < 300:
                return conn, response
            try:
                detail = _error_text(_loads_or_text(response.read()))
            except OSError:
                detail = ""
            finally:
                conn.close()
            if response.status in RETRY_STATUSES and attempt < self._retries:
                wait = _retry_after(response.getheader("Retry-After"), self._backoff_s * 2**attempt)
                log.info("%s answered HTTP %d; retrying in %.1fs", self._endpoint.url, response.status, wait)
                if cancel is not None and cancel.wait(wait):
                    raise Cancelled(cancel.reason)
                if cancel is None:
                    time.sleep(wait)
                continue
            raise self._http_error(response.status, detail, path, body, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _http_error(
        self, status: int, detail: str, path: str, body: dict[str, Any] | None, attempt: int
    ) -> Exception:
        url = self._endpoint.url
        said = f": {detail}" if detail else ""
        if status in (401, 403):
            if self._api_key_env:
                hint = f"check the key in ${self._api_key_env}"
            else:
                hint = "set 'api_key_env' to the name of the environment variable that holds the key"
            return RemoteEngineError(
                f"{url} refused the request (HTTP {status}, not authorised){said}; {hint}"
            )
        if status == 404:
            if path == "/completions":
                return RemoteEngineError(
                    f"{url} has no model '{self.model}' or no /completions endpoint (HTTP 404){said}; "
                    "check 'remote_model' and that 'endpoint' ends in /v1"
                )
            return RemoteEngineError(f"{url}{path} not found (HTTP 404); check that 'endpoint' ends in /v1")
        if status in RETRY_STATUSES:
            return RemoteEngineError(
                f"{url} is busy (HTTP {status}) after {attempt + 1} attempts{said}; try again later"
            )
        if status == 400 and body is not None and body.get("n", 1) > 1:
            return _NotHonoured(detail)
        return RemoteEngineError(f"{url} answered HTTP {status}{said}")

    def _transport_error(self, exc: OSError) -> RemoteEngineError:
        url = self._endpoint.url
        if isinstance(exc, ssl.SSLError):
            reason = getattr(exc, "reason", None) or exc
            return RemoteEngineError(f"TLS error talking to {url}: {reason}")
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return RemoteEngineError(
                f"{url} sent nothing for {self._timeout_s:g}s (stalled); is the server overloaded? "
                "('remote_timeout_s' sets how long to wait)"
            )
        if isinstance(exc, http.client.HTTPException):
            return RemoteEngineError(f"{url} broke the HTTP exchange: {type(exc).__name__} {exc}".rstrip())
        reason = exc.strerror or str(exc) or type(exc).__name__
        return RemoteEngineError(f"cannot reach the model server at {url}: {reason}; is it running?")

    def _json(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError:
            sample = data[:80].decode("utf-8", "replace")
            raise RemoteEngineError(
                f"{self._endpoint.url} sent malformed JSON ({sample!r}); is 'endpoint' an OpenAI-compatible "
                "/v1 API?"
            ) from None


def _nothing() -> None:
    pass


def _shutdown(conn: http.client.HTTPConnection) -> None:
    """Unblock a read on another thread (close alone does not wake a blocked recv)."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _retry_after(header: str | None, default: float) -> float:
    """Seconds to wait: the Retry-After header (delta-seconds) when given, else ``default``; capped."""
    if header:
        try:
            return min(max(float(header), 0.0), MAX_RETRY_WAIT_S)
        except ValueError:
            pass  # an HTTP date: rare for these servers, the backoff will do
    return min(default, MAX_RETRY_WAIT_S)


def _loads_or_text(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


def _error_text(payload: Any) -> str:
    """The server's own message from an error body (OpenAI: {"error": {"message": ...}}), one line."""
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        message = error.get("message") if isinstance(error, dict) else error
        payload = message if message is not None else payload.get("detail", "")
    text = " ".join(str(payload).split())
    return text[:200]


def _token_logprobs(logprobs: Any) -> list[float]:
    """Sampled tokens' log-probabilities from either format servers use: OpenAI completions
    (``{"token_logprobs": [...]}``) or llama-server's (``{"content": [{"logprob": ...}, ...]}``)."""
    if not isinstance(logprobs, dict):
        return []
    values = logprobs.get("token_logprobs")
    if isinstance(values, list):
        return [float(v) for v in values if isinstance(v, (int, float))]
    content = logprobs.get("content")
    if isinstance(content, list):
        return [
            float(item["logprob"])
            for item in content
            if isinstance(item, dict) and isinstance(item.get("logprob"), (int, float))
        ]
    return []
