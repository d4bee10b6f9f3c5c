"""Async client for any OpenAI-compatible chat-completions endpoint, built for judging.

What it adds to the `openai` SDK:

- bounded concurrency (a semaphore per event loop) and a sync `complete_many` wrapper;
- failures as values: a request that still fails after the SDK's own retries (429, 5xx,
  timeouts, connection errors, with its exponential backoff and `Retry-After` support)
  becomes `JudgeReply(error=...)`; `complete_many` never raises for a failed request;
- a persistent cache of successful replies (:mod:`erv.judge.cache`);
- secrets: the key is read from an environment variable only when the client is made, kept
  only inside the SDK client, and scrubbed (whole or any 8+ character fragment of it) from
  every text this module returns, stores or reports: replies (a server may echo the
  `Authorization` header), cache entries and error messages;
- failing early: errors no retry can fix (401/403 — a wrong key —, 404 — a wrong model or
  path) are *fatal*: the first one is returned with `fatal=True` and every later call returns
  it at once without sending anything, and the first request of a loop goes out alone, so a
  wrong key costs one request instead of one per sample. An invalid `base_url` is refused
  when the config is made.

Event loops. An `AsyncOpenAI` client's connection pool belongs to the loop it was first used
on; TRL runs async reward functions on its own loop in a background thread, and
`complete_many` uses a fresh loop per call. So the SDK client and the semaphore are created
lazily *per running loop* (held weakly, keyed by the loop object): one `JudgeClient` can be
awaited from any loop and any thread. Concurrency is bounded per loop. Call `await
client.aclose()` on a loop you are done with (or use `async with`), `close()` at the end.
"""

from __future__ import annotations

import asyncio
import os
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from erv.errors import ConfigError
from erv.io.jobs import run_sync
from erv.judge.cache import ReplyCache

DEFAULT_MODEL = "gpt-4.1-mini"


@dataclass
class JudgeConfig:
    """Settings of a judge endpoint; safe to log (it holds the *name* of the key variable)."""

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    """OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM); None: the SDK's
    default (OPENAI_BASE_URL or api.openai.com)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the key. Servers without auth: set it to any value."""
    concurrency: int = 32
    timeout: float = 60.0
    """Seconds per HTTP request attempt."""
    max_retries: int = 5
    """Retries the SDK makes (with exponential backoff) on 408/409/429/5xx, timeouts and
    connection errors before a request counts as failed."""
    temperature: float | None = 0.0
    """None: do not send (for models that reject the parameter)."""
    max_tokens: int | None = None
    """None: do not send (the server's default)."""
    cache: str | os.PathLike[str] | None = None
    """SQLite file of successful replies; None: no cache."""
    extra_body: dict[str, Any] | None = None
    """Extra JSON fields merged into every request body (e.g. {"reasoning_effort": "none"}
    for Gemini 2.5 Flash, {"top_k": 1} for vLLM); part of the cache key."""
    system: str | None = None
    """Default system message (None: none, as in the paper's judge)."""

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("judge model name is empty")
        if int(self.concurrency) < 1:
            raise ConfigError(f"judge concurrency must be at least 1, got {self.concurrency}")
        if not float(self.timeout) > 0:
            raise ConfigError(f"judge timeout must be positive, got {self.timeout}")
        if int(self.max_retries) < 0:
            raise ConfigError(f"judge max_retries must be 0 or more, got {self.max_retries}")
        if self.max_tokens is not None and int(self.max_tokens) < 1:
            raise ConfigError(f"judge max_tokens must be at least 1, got {self.max_tokens}")
        if self.extra_body is not None and not isinstance(self.extra_body, dict):
            raise ConfigError("judge extra_body must be a JSON object")
        if not str(self.api_key_env).strip():
            raise ConfigError("api_key_env must name an environment variable")
        if self.base_url is not None:
            check_base_url(self.base_url)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cache"] = str(self.cache) if self.cache is not None else None
        return out


@dataclass
class JudgeReply:
    """One reply: `text` on success, else `error` (a message without secrets)."""

    text: str | None
    error: str | None = None
    cached: bool = False
    retries: int | None = None
    """Retries the SDK needed for a fresh success (0: first try); None if cached or failed."""
    finish_reason: str | None = None
    fatal: bool = False
    """An error no retry can fix (wrong key, unknown model or path): the caller should stop."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


@dataclass
class _LoopState:
    client: Any  # openai.AsyncOpenAI
    semaphore: asyncio.Semaphore
    opened: asyncio.Event
    """Set once the first request of this loop has an answer: until then the others wait."""
    probing: bool = False


def check_base_url(url: str) -> str:
    """An http(s) URL with a host; ConfigError otherwise (instead of one connection error per sample)."""
    parsed = urllib.parse.urlparse(str(url).strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"--base-url {url!r} is not an http(s) URL (e.g. http://localhost:8000/v1)")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a non-numeric port
    except ValueError:
        raise ConfigError(f"--base-url {url!r} has an invalid port") from None
    return str(url).strip()


# HTTP statuses no retry can fix for a whole endpoint: the key (401/403) or the model / path (404).
FATAL_STATUSES = (401, 403, 404)


class _Redactor:
    """Removes a secret, and any fragment of 8+ consecutive characters of it, from text."""

    MIN_FRAGMENT = 8

    def __init__(self, secret: str) -> None:
        self._secret = secret if len(secret) >= 6 else ""

    def __call__(self, text: str) -> str:
        secret = self._secret
        if not secret or not text:
            return text
        text = text.replace(secret, "***")
        n = self.MIN_FRAGMENT
        if len(secret) < n:
            return text
        grams = {secret[i : i + n] for i in range(len(secret) - n + 1)}
        out: list[str] = []
        i = 0
        while i < len(text):
            if text[i : i + n] in grams:
                j = i + n
                while j < len(text) and text[i : j + 1] in secret:
                    j += 1
                out.append("***")
                i = j
            else:
                out.append(text[i])
                i += 1
        return "".join(out)


def read_api_key(env_var: str) -> str:
    """The key from `env_var`; a clear ConfigError (naming the variable, never a value) if unset."""
    value = os.environ.get(env_var)
    if value is None or not value.strip():
        raise ConfigError(
            f"environment variable {env_var} is not set; export your API key there (or name another variable "
            f"with --api-key-env). Servers without authentication (vLLM, the test server) accept any value, "
            f"e.g. {env_var}=EMPTY"
        )
    return value.strip()


class JudgeClient:
    """`await complete(prompt)` from any event loop, or `complete_many(prompts)` from sync code."""

    def __init__(self, config: JudgeConfig) -> None:
        import openai  # noqa: F401 - fail early with a clear ImportError if the SDK is missing

        self.config = config
        self._api_key = read_api_key(config.api_key_env)
        self._redact = _Redactor(self._api_key)
        self.cache = ReplyCache(config.cache) if config.cache is not None else None
        self._lock = threading.Lock()
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self.requests_sent = 0  # replies not served from the cache (successes + failures)
        self.fatal_error: str | None = None
        """The first error no retry can fix; once set, no request is sent any more."""

    def __repr__(self) -> str:
        return f"JudgeClient(model={self.config.model!r}, base_url={self.config.base_url!r})"

    # ------------------------------------------------------------ requests

    def build_request(
        self, prompt: str, *, system: str | None = None, json_mode: bool = False, seed: int | None = None
    ) -> dict[str, Any]:
        """The JSON body sent for a prompt (also the cache's key material).

        `seed` is the API's sampling seed: generation with temperature > 0 (the verifier's
        complement data) sends a different seed per request, so that equal prompts ask for
        different samples and the cache keys them apart.
        """
        if not isinstance(prompt, str) or not prompt:
            raise ValueError("prompt must be a non-empty string")
        system = self.config.system if system is None else system
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": prompt})
        body: dict[str, Any] = {"model": self.config.model, "messages": messages}
        if self.config.temperature is not None:
            body["temperature"] = float(self.config.temperature)
        if self.config.max_tokens is not None:
            body["max_tokens"] = int(self.config.max_tokens)
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        if seed is not None:
            body["seed"] = int(seed)
        if self.config.extra_body:
            body["extra_body"] = dict(self.config.extra_body)
        return body

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._states.get(loop)
            if state is None:
                # A state refers to its loop (through the pool), so a closed loop is never
                # collected from the weak mapping by itself: drop those first.
                for closed in [other for other in self._states if other.is_closed()]:
                    del self._states[closed]
                from openai import AsyncOpenAI

                client = AsyncOpenAI(
                    api_key=self._api_key,
                    base_url=self.config.base_url,
                    timeout=float(self.config.timeout),
                    max_retries=int(self.config.max_retries),
                )
                state = _LoopState(client, asyncio.Semaphore(int(self.config.concurrency)), asyncio.Event())
                self._states[loop] = state
            return state

    async def complete(
        self,
        prompt: str,
        *,
        system: str | None = None,
        json_mode: bool = False,
        seed: int | None = None,
        accept: Callable[[str], bool] | None = None,
    ) -> JudgeReply:
        """Ask the judge once (the SDK retries transient failures); never raises for API failures.

        `accept(text)` decides whether a fresh reply may enter the cache: a reply the caller
        cannot parse (malformed FG-CE JSON) is returned but not cached, so a later call asks again
        instead of replaying it.
        """
        request = self.build_request(prompt, system=system, json_mode=json_mode, seed=seed)
        if self.cache is not None:
            hit = self.cache.get(request)
            if hit is not None:
                return JudgeReply(self._redact(hit), None, cached=True)
        if self.fatal_error is not None:
            return JudgeReply(None, self.fatal_error, fatal=True)
        state = self._state()
        if not state.opened.is_set():
            if state.probing:
                await state.opened.wait()  # the first request of this loop tells whether the endpoint works
                if self.fatal_error is not None:
                    return JudgeReply(None, self.fatal_error, fatal=True)
            else:
                state.probing = True
                try:
                    return await self._send(state, request, accept)
                finally:
                    state.opened.set()
        return await self._send(state, request, accept)

    async def _send(
        self, state: _LoopState, request: dict[str, Any], accept: Callable[[str], bool] | None
    ) -> JudgeReply:
        kwargs = dict(request)
        extra_body = kwargs.pop("extra_body", None)
        if extra_body:
            kwargs["extra_body"] = extra_body
        async with state.semaphore:
            if self.fatal_error is not None:
                return JudgeReply(None, self.fatal_error, fatal=True)
            with self._lock:
                self.requests_sent += 1
            try:
                raw = await state.client.chat.completions.with_raw_response.create(**kwargs)
                completion = raw.parse()
                retries = getattr(raw, "retries_taken", None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every API/transport/parse failure becomes a value
                message = self.describe_error(exc)
                if getattr(exc, "status_code", None) in FATAL_STATUSES:
                    with self._lock:
                        self.fatal_error = self.fatal_error or message
                    return JudgeReply(None, message, fatal=True)
                return JudgeReply(None, message)
        if not hasattr(completion, "choices"):  # the SDK hands back the body as text when it is not JSON
            return JudgeReply(None, self._not_json(raw, completion))
        choices = completion.choices or []
        if not choices:
            return JudgeReply(None, "the endpoint's reply holds no choices (not a chat completion)")
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        finish = getattr(choices[0], "finish_reason", None)
        if not isinstance(text, str) or not text.strip():
            return JudgeReply(None, f"empty reply (finish_reason={finish})", finish_reason=finish)
        text = self._redact(text)  # a server may echo the Authorization header: never store or show it
        if self.cache is not None and (accept is None or _accepts(accept, text)):
            self.cache.put(request, text)
        return JudgeReply(text, None, cached=False, retries=retries, finish_reason=finish)

    def _not_json(self, raw: Any, body: Any) -> str:
        response = getattr(raw, "http_response", None)
        kind = response.headers.get("content-type", "no content-type") if response is not None else "unknown type"
        snippet = " ".join(str(body if isinstance(body, str) else getattr(response, "text", "")).split())[:80]
        return self._redact(f"the endpoint's reply is not JSON ({kind}): {snippet!r}; is --base-url the API's URL?")

    def describe_error(self, exc: BaseException) -> str:
        """One line naming the failure kind, with any trace of the key removed."""
        import openai

        name = type(exc).__name__
        retried = f" (after {self.config.max_retries} retries)" if self.config.max_retries else ""
        if isinstance(exc, openai.APITimeoutError):
            message = f"request timed out after {self.config.timeout:g} s{retried}"
        elif isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
            where = self.config.base_url or "the default OpenAI endpoint"
            message = f"cannot connect to {where}{detail}{retried}"
        elif isinstance(exc, openai.APIStatusError):
            retryable = exc.status_code in (408, 409, 429) or exc.status_code >= 500
            body = _error_text(exc)
            message = f"HTTP {exc.status_code}: {body}" + (retried if retryable else "")
        elif isinstance(exc, ValueError):  # json.JSONDecodeError, pydantic.ValidationError
            message = f"malformed response from the endpoint ({str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        else:
            message = str(exc)
        text = f"{name}: {message}".replace("\n", " ")
        if len(text) > 500:
            text = text[:497] + "..."
        return self._redact(text)

    # ------------------------------------------------------------ batches

    async def complete_all(
        self,
        prompts: Sequence[str],
        *,
        system: str | None = None,
        json_mode: bool = False,
        progress: bool = False,
        desc: str = "judge",
    ) -> list[JudgeReply]:
        """All replies in prompt order, on the running loop (concurrency bounded by the config)."""
        from tqdm.auto import tqdm

        bar = tqdm(total=len(prompts), desc=desc, unit="req", disable=not progress, dynamic_ncols=True)

        async def one(prompt: str) -> JudgeReply:
            reply = await self.complete(prompt, system=system, json_mode=json_mode)
            bar.update(1)
            return reply

        try:
            return list(await asyncio.gather(*(one(p) for p in prompts)))
        finally:
            bar.close()

    def complete_many(
        self,
        prompts: Sequence[str],
        *,
        system: str | None = None,
        json_mode: bool = False,
        progress: bool = False,
        desc: str = "judge",
    ) -> list[JudgeReply]:
        """Sync wrapper of :meth:`complete_all`; works even where a loop already runs (Jupyter)."""
        prompts = list(prompts)

        async def run() -> list[JudgeReply]:
            try:
                return await self.complete_all(
                    prompts, system=system, json_mode=json_mode, progress=progress, desc=desc
                )
            finally:
                await self.aclose()

        return run_sync(run)

    # ------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Close the SDK client of the running loop (its connection pool)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._states.pop(loop, None)
        if state is not None:
            await state.client.close()

    def close(self) -> None:
        """Close the cache; SDK clients of loops still open are dropped with their loops."""
        with self._lock:
            self._states.clear()
        if self.cache is not None:
            self.cache.close()

    async def __aenter__(self) -> JudgeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _accepts(accept: Callable[[str], bool], text: str) -> bool:
    try:
        return bool(accept(text))
    except Exception:  # a validator that raises rejects the reply
        return False


def _error_text(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body) if isinstance(body.get("error", body), dict) else body
        message = inner.get("message") if isinstance(inner, dict) else None
        if message:
            return str(message)
    if isinstance(body, str) and body.strip():
        return body.strip()
    return str(getattr(exc, "message", "") or exc)


def default_cache_path(out: str | os.PathLike[str]) -> Path:
    """Where `erv judge` keeps its cache unless told otherwise: beside the output file."""
    out = Path(out)
    return out.with_name(out.name + ".cache.sqlite")
