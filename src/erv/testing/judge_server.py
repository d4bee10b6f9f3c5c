"""An OpenAI-compatible chat-completions server for tests, benchmarks and offline runs.

Why it exists: the judge must be tested against the real `openai` SDK (retries, timeouts,
error types, connection pooling), and researchers without an API key want to run the whole
pipeline offline. The server speaks just enough of the API for that — `POST
/v1/chat/completions` and `GET /v1/models` — and can misbehave on purpose.

Determinism. Every decision is a hash of `(seed, request messages, ...)`, never of arrival
order, so a test can predict what the server does whatever the client's concurrency:

- *what it answers* to a prompt (:meth:`JudgeTestServer.expected_reply`) depends on the
  prompt only: an emotion of the list named in the prompt, or — for a configured fraction of
  prompts — a word outside the list or garbage text;
- *whether the k-th request for a prompt fails* (429, 500, a hang longer than the client's
  timeout, a malformed body, an HTML page instead of JSON — a proxy's login page) depends on
  the prompt and k, so retries of a prompt see fresh
  draws; `max_transient_faults` makes every later attempt succeed;
- a configured fraction of prompts fails permanently (HTTP 500 on every attempt);
- scripted `rules` (regex → reply or HTTP status) override all of this for the prompts they
  match, so a test can say exactly what the judge answers to each sentence;
- a complement (generation) request that carries a sampling `seed` gets one of 60 variants of
  its description chosen by that seed, as a sampling model would vary its output.

It binds to 127.0.0.1 only and runs one thread per connection (`ThreadingHTTPServer`
with a deep listen backlog), which serves the 32+ concurrent connections a judge opens.

    python -m erv.testing.judge_server --port 8000 --latency 0.3 --labels happy,sad,neutral
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from erv.errors import ConfigError

# Words the server answers when it is told to step outside the prompt's emotion list.
OUT_OF_LIST_WORDS: tuple[str, ...] = ("confusion", "boredom", "nostalgia", "curiosity", "awe")
GARBAGE_TEXTS: tuple[str, ...] = (
    "As an AI language model I cannot determine that.",
    "lorem ipsum dolor sit amet",
    "### 42 ###",
    "The reasoning mentions several cues; it is hard to say.",
)
_DESCRIPTION_DETAILS = (
    "her brows draw together and her voice drops",
    "she looks away and speaks in short, clipped phrases",
    "her eyes widen and she raises her voice",
)
_DESCRIPTION_OPENERS = (
    "Her face and voice clearly show",
    "Everything about him signals",
    "The speaker plainly conveys",
    "Throughout the clip she displays",
)
_DESCRIPTION_VOICES = (
    "the pitch of the voice climbs",
    "the words come out slowly",
    "a sigh breaks the sentence",
    "the volume drops to a murmur",
    "the speech speeds up",
)
FGCE_FUNCTIONS_SERVED = ("information extraction", "information analysis", "conclusion", "others")
FGCE_MODALITIES_SERVED = (
    "audio",
    "visual",
    "contextual",
    "audio-contextual",
    "visual-contextual",
    "audio-visual",
    "audio-visual-contextual",
)

# "... the appropriate emotion in a, b, c." / "... in a, b, c. Primarily ..." (judge prompts)
_LIST_IN_PROMPT = re.compile(r"emotion in ([^\n]+?)\.(?:\s|$)")


@dataclass
class ServerConfig:
    """Behaviour of :class:`JudgeTestServer`; every rate is a probability in [0, 1]."""

    seed: int = 0
    latency: float = 0.0
    """Seconds the server waits before answering each request."""
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_hang: float = 0.0
    """Requests that hang for `hang_seconds` (set it above the client's timeout)."""
    hang_seconds: float = 30.0
    rate_malformed: float = 0.0
    """Requests answered 200 with a body that is not JSON."""
    rate_html: float = 0.0
    """Requests answered 200 with an HTML page (`text/html`), as a proxy or a wrong URL does."""
    rate_out_of_list: float = 0.0
    """Prompts (stable per prompt) answered with an emotion outside the prompt's list."""
    rate_garbage: float = 0.0
    """Prompts (stable per prompt) answered with text that names no emotion."""
    rate_permanent_failure: float = 0.0
    """Prompts (stable per prompt) that fail with HTTP 500 on every attempt."""
    max_transient_faults: int | None = None
    """Attempts after this many of one prompt never fault (None: no limit)."""
    retry_after_ms: int | None = 20
    """Sent as `retry-after-ms` with 429/5xx so the SDK's backoff stays short; None: omit."""
    api_key: str | None = None
    """Bearer key the server requires; None accepts any. A wrong key gets a 401 whose body
    echoes the key it received (as some servers do) — clients must not leak it."""
    echo_authorization: bool = False
    """Deliberately hostile: append the `Authorization` header received to every 200 reply text."""
    labels: tuple[str, ...] | None = None
    """Emotion list to answer from; None: read it from the prompt ("... emotion in a, b, c.")."""
    model: str | None = None
    """Model name the server serves; None accepts any."""
    responder: Callable[[dict[str, Any]], str] | None = field(default=None, repr=False)
    """Custom reply text for a request body; replaces the built-in answers."""
    rules: tuple[tuple[str, str | int], ...] = ()
    """Scripted replies: `(regex, reply)` pairs tried in order against the request's last user
    message (`re.search`, multi-line, dot matches newline); the first match answers `reply`, or,
    if `reply` is an int, fails with that HTTP status on every attempt. Requests no rule
    matches get the built-in answers. Lets a test fix what each FG-CE sentence is classified
    and scored as."""


def _unit(*parts: object) -> float:
    """A deterministic draw in [0, 1) from the given parts."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _pick(options: Sequence[str], *parts: object) -> str:
    return options[int(_unit(*parts) * len(options)) % len(options)]


def prompt_key(messages: Any) -> str:
    """Identity of a request's conversation (what the server's decisions hash)."""
    return json.dumps(messages, sort_keys=True, ensure_ascii=False)


def _last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


@dataclass
class ServerStats:
    """What the server saw; read it through :meth:`JudgeTestServer.snapshot`."""

    requests: int = 0
    outcomes: Counter = field(default_factory=Counter)
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    last_outcome: dict[str, str] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    authorization_seen: set[str] = field(default_factory=set)


class JudgeTestServer:
    """Run with `with JudgeTestServer(ServerConfig(...)) as server: server.base_url`."""

    def __init__(self, config: ServerConfig | None = None, *, port: int = 0) -> None:
        self.config = config or ServerConfig()
        self._port = port
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stop = threading.Event()
        self.stats = ServerStats()
        self._httpd: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> JudgeTestServer:
        handler = type("_BoundHandler", (_Handler,), {"server_state": self})
        httpd = _QuietServer(("127.0.0.1", self._port), handler)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="judge-test-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> JudgeTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------ observation

    def reset_stats(self) -> None:
        with self._lock:
            self.stats = ServerStats()

    def snapshot(self) -> ServerStats:
        """A copy of the statistics, safe to read while requests are running."""
        with self._lock:
            s = self.stats
            return ServerStats(
                s.requests,
                Counter(s.outcomes),
                dict(s.attempts),
                dict(s.last_outcome),
                s.in_flight,
                s.max_in_flight,
                set(s.authorization_seen),
            )

    @property
    def request_count(self) -> int:
        with self._lock:
            return self.stats.requests

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no request is being served (e.g. hangs of a killed client drained)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.stats.in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    # ------------------------------------------------------------ behaviour

    def is_permanent_failure(self, messages: Any) -> bool:
        return _unit(self.config.seed, "permanent", prompt_key(messages)) < self.config.rate_permanent_failure

    def fault_for(self, messages: Any, attempt: int) -> str | None:
        """The fault the `attempt`-th (1-based) request for `messages` gets, or None."""
        cfg = self.config
        if self.is_permanent_failure(messages):
            return "500"
        if cfg.max_transient_faults is not None and attempt > cfg.max_transient_faults:
            return None
        draw = _unit(cfg.seed, "fault", prompt_key(messages), attempt)
        for name, rate in (
            ("429", cfg.rate_429),
            ("500", cfg.rate_500),
            ("hang", cfg.rate_hang),
            ("malformed", cfg.rate_malformed),
            ("html", cfg.rate_html),
        ):
            if draw < rate:
                return name
            draw -= rate
        return None

    def expected_reply(
        self, prompt: str | list[dict[str, Any]], *, system: str | None = None, json_mode: bool = False
    ) -> str:
        """The text the server answers for a prompt when the request does not fault."""
        if isinstance(prompt, str):
            messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system is not None else []
            messages.append({"role": "user", "content": prompt})
        else:
            messages = prompt
        body: dict[str, Any] = {"messages": messages}
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        return self._reply_text(body)

    def scripted_reply(self, text: str) -> str | int | None:
        """The reply (or HTTP status) of the first rule matching a user message, else None."""
        for pattern, reply in self._compiled_rules():
            if pattern.search(text):
                return reply
        return None

    def _compiled_rules(self) -> list[tuple[re.Pattern[str], str | int]]:
        rules = self.config.rules
        cached = getattr(self, "_rules_cache", None)
        if cached is None or cached[0] is not rules:
            compiled = [(re.compile(p, re.MULTILINE | re.DOTALL), r) for p, r in rules]
            self._rules_cache = cached = (rules, compiled)
        return cached[1]

    def _reply_text(self, body: dict[str, Any]) -> str:
        cfg = self.config
        if cfg.responder is not None:
            return cfg.responder(body)
        messages = body.get("messages")
        key = prompt_key(messages)
        text = _last_user_text(messages)
        scripted = self.scripted_reply(text)
        if isinstance(scripted, str):
            return scripted
        json_mode = (body.get("response_format") or {}).get("type") in ("json_object", "json_schema")
        if json_mode or '"function"' in text or '"score"' in text:
            return self._json_reply(text, key)
        if "Target Emotion:" in text:  # the complement prompt: a description of that emotion
            emotion = (text.rsplit("Target Emotion:", 1)[1].strip().splitlines() or ["neutral"])[0]
            sample = body.get("seed")
            if isinstance(sample, int) and not isinstance(sample, bool):
                # A sampled generation: the request's seed picks one of 3 x 4 x 5 variants.
                return (
                    f"{_pick(_DESCRIPTION_OPENERS, cfg.seed, 'opener', key, sample)} {emotion}: "
                    f"{_pick(_DESCRIPTION_DETAILS, cfg.seed, 'detail', key, sample)}, and "
                    f"{_pick(_DESCRIPTION_VOICES, cfg.seed, 'voice', key, sample)}."
                )
            return (
                f"Her face and voice clearly show {emotion}: {_pick(_DESCRIPTION_DETAILS, cfg.seed, 'detail', key)}."
            )
        draw = _unit(cfg.seed, "content", key)
        if draw < cfg.rate_garbage:
            return _pick(GARBAGE_TEXTS, cfg.seed, "garbage", key)
        draw -= cfg.rate_garbage
        if draw < cfg.rate_out_of_list:
            return _pick(OUT_OF_LIST_WORDS, cfg.seed, "outside", key)
        labels = list(cfg.labels) if cfg.labels else _labels_in_prompt(text)
        first = _pick(labels, cfg.seed, "label", key)
        if "up to 2" in text and len(labels) > 1 and _unit(cfg.seed, "two", key) < 0.3:
            second = _pick([lab for lab in labels if lab != first], cfg.seed, "label2", key)
            return f"{first}, {second}"
        return first

    def _json_reply(self, text: str, key: str) -> str:
        seed = self.config.seed
        if _unit(seed, "content", key) < self.config.rate_garbage:
            return "{not json"
        if '"function"' in text and '"modality"' in text:
            return json.dumps(
                {
                    "function": _pick(FGCE_FUNCTIONS_SERVED, seed, "function", key),
                    "modality": _pick(FGCE_MODALITIES_SERVED, seed, "modality", key),
                    "confidence": round(0.5 + 0.5 * _unit(seed, "confidence", key), 2),
                }
            )
        return json.dumps({"score": 1 + int(_unit(seed, "score", key) * 5) % 5})

    # Called by the handler; returns (status, headers, body bytes) or None for a hang.
    def _serve(self, body_bytes: bytes, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        cfg = self.config
        presented = (authorization or "")[7:] if (authorization or "").startswith("Bearer ") else (authorization or "")
        with self._lock:
            self.stats.requests += 1
            self.stats.authorization_seen.add(presented)
        if cfg.api_key is not None and presented != cfg.api_key:
            self._record(None, "401")
            # Deliberately hostile: echo the presented key, as some servers do.
            return (
                401,
                {},
                _error_body(f"Incorrect API key provided: {presented}.", "invalid_request_error", "invalid_api_key"),
            )
        try:
            body = json.loads(body_bytes or b"{}")
        except json.JSONDecodeError:
            self._record(None, "400")
            return 400, {}, _error_body("request body is not JSON", "invalid_request_error", None)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._record(None, "400")
            return 400, {}, _error_body("'messages' must be a non-empty list", "invalid_request_error", None)
        model = body.get("model")
        if cfg.model is not None and model != cfg.model:
            self._record(None, "404")
            return (
                404,
                {},
                _error_body(f"The model `{model}` does not exist.", "invalid_request_error", "model_not_found"),
            )
        key = prompt_key(messages)
        with self._lock:
            self.stats.attempts[key] += 1
            attempt = self.stats.attempts[key]
        scripted = self.scripted_reply(_last_user_text(messages))
        if isinstance(scripted, int):
            self._record(key, str(scripted))
            return (
                scripted,
                {},
                _error_body(f"Scripted failure (test server rule): HTTP {scripted}.", "server_error", None),
            )
        fault = self.fault_for(messages, attempt)
        if cfg.latency > 0:
            self._stop.wait(cfg.latency)
        retry_headers = {"retry-after-ms": str(cfg.retry_after_ms)} if cfg.retry_after_ms is not None else {}
        if fault == "429":
            self._record(key, "429")
            return (
                429,
                retry_headers,
                _error_body("Rate limit reached (test server).", "requests", "rate_limit_exceeded"),
            )
        if fault == "500":
            self._record(key, "500")
            return 500, retry_headers, _error_body("The server had an error (test server).", "server_error", None)
        if fault == "hang":
            self._record(key, "hang")
            self._stop.wait(cfg.hang_seconds)
        if fault == "malformed":
            self._record(key, "malformed")
            return 200, {}, b'{"id": "chatcmpl-broken", "choices": [{"message": '
        if fault == "html":
            self._record(key, "html")
            page = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in.</body></html>"
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page
        text = self._reply_text(body)
        if cfg.echo_authorization:
            text = f"{text} (request authorised with: {authorization})"
        if fault is None:
            self._record(key, "ok")
        completion = {
            "id": "chatcmpl-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model or "test-judge",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": len(key) // 4,
                "completion_tokens": max(1, len(text) // 4),
                "total_tokens": len(key) // 4 + max(1, len(text) // 4),
            },
        }
        return 200, {}, json.dumps(completion).encode("utf-8")

    def _record(self, key: str | None, outcome: str) -> None:
        with self._lock:
            self.stats.outcomes[outcome] += 1
            if key is not None:
                self.stats.last_outcome[key] = outcome

    def _enter(self) -> None:
        with self._lock:
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)

    def _leave(self) -> None:
        with self._idle:
            self.stats.in_flight -= 1
            if not self.stats.in_flight:
                self._idle.notify_all()


def _labels_in_prompt(text: str) -> list[str]:
    match = _LIST_IN_PROMPT.search(text)
    if not match:
        return ["neutral"]
    labels = [part.strip() for part in match.group(1).split(",") if part.strip()]
    return labels or ["neutral"]


def _error_body(message: str, type_: str, code: str | None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode("utf-8")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # socketserver's default of 5 drops bursts of connects
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that timed out or was killed: expected here
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDK reuses pooled connections
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall
    server_state: JudgeTestServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet; and never print request lines or headers

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        headers = dict(headers)
        try:
            self.send_response(status)
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the client gave up (timeout) or was killed

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            name = self.server_state.config.model or "test-judge"
            body = json.dumps(
                {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "erv"}]}
            ).encode("utf-8")
            self._send(200, {}, body)
        else:
            self._send(404, {}, _error_body(f"no route {self.path}", "invalid_request_error", None))

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        state = self.server_state
        state._enter()
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send(404, {}, _error_body(f"no route {self.path}", "invalid_request_error", None))
                return
            status, headers, payload = state._serve(body, self.headers.get("Authorization"))
            self._send(status, headers, payload)
        finally:
            state._leave()


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="erv judge testserver",
        description="OpenAI-compatible chat-completions test server on 127.0.0.1 (deterministic answers, "
        "optional faults).",
    )
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port)")
    rates = {f.name for f in fields(ServerConfig) if f.name.startswith("rate_")}
    for f in fields(ServerConfig):
        if f.name in ("responder", "labels", "port", "rules"):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name in rates or f.name in ("latency", "hang_seconds"):
            parser.add_argument(flag, type=float, default=f.default)
        elif f.name in ("seed",):
            parser.add_argument(flag, type=int, default=f.default)
        elif f.name in ("max_transient_faults", "retry_after_ms"):
            parser.add_argument(flag, type=int, default=f.default)
        elif isinstance(f.default, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(
                flag,
                type=str,
                default=f.default,
                help="required bearer key (default: accept any)" if f.name == "api_key" else None,
            )
    parser.add_argument(
        "--labels",
        type=str,
        default=None,
        help="comma-separated emotion list to answer from (default: the list in each prompt)",
    )
    parser.add_argument(
        "--rules",
        type=str,
        default=None,
        help="JSON file with a list of [regex, reply] pairs (reply: text, or an int HTTP status)",
    )
    return parser


def load_rules(path: str) -> tuple[tuple[str, str | int], ...]:
    """Rules for :attr:`ServerConfig.rules` from a JSON file: `[[regex, reply], ...]`."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the rules file ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: the rules file is not JSON ({exc})") from None
    if not isinstance(data, list) or not all(
        isinstance(r, list) and len(r) == 2 and isinstance(r[0], str) and isinstance(r[1], (str, int)) for r in data
    ):
        raise ConfigError(f"{path}: expected a JSON list of [regex, reply] pairs")
    for pattern, _ in data:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{path}: bad regex {pattern!r}: {exc}") from None
    return tuple((p, r) for p, r in data)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535 (0: any free port), got {args.port}")
    values = {
        f.name: getattr(args, f.name) for f in fields(ServerConfig) if f.name not in ("responder", "labels", "rules")
    }
    labels = tuple(x.strip() for x in args.labels.split(",") if x.strip()) if args.labels else None
    rules = load_rules(args.rules) if args.rules else ()
    server = JudgeTestServer(ServerConfig(labels=labels, rules=rules, **values), port=args.port)
    server.start()
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"erv judge test server on {server.base_url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        stats = server.snapshot()
        print(f"served {stats.requests} requests: {dict(stats.outcomes)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
