"""`erv judge`: judge explanations; `erv judge agreement`: compare judges; `erv judge testserver`.

    erv judge --predictions P.jsonl --dataset MAFW --out J.jsonl [--model gpt-4.1-mini] ...
    erv judge agreement J_gpt.jsonl J_gemini.jsonl --predictions P.jsonl --dataset MAFW [--json OUT]
    erv judge testserver --port 8000 [--latency 0.3 ...]

Exit status of a judging run: 0 when every selected sample has a judgment or a
no-explanation record, 1 when some API calls still failed (re-run the same command to
retry only those), 2 for usage errors and for an endpoint that refuses every request (a
wrong key, an unknown model: the run stops after the first such reply).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from erv.io.identity import ON_CHANGED
from erv.judge.client import DEFAULT_MODEL, JudgeConfig, default_cache_path
from erv.judge.prompts import EXPLANATION_PROMPT_VARIANTS


def _temperature(value: str) -> float | None:
    if value.strip().lower() in ("none", "omit", ""):
        return None
    return float(value)


def _json_object(value: str) -> dict:
    try:
        obj = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return obj


def add_judge_options(
    parser: argparse.ArgumentParser,
    *,
    temperature: float | None = 0.0,
    temperature_help: str = "sampling temperature (default 0; 'none' to omit)",
) -> None:
    """The endpoint options every judge-driven command shares (`erv judge`, `erv verifier augment`)."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"judge model (default {DEFAULT_MODEL}, the paper's)")
    parser.add_argument(
        "--base-url",
        default=None,
        help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL or api.openai.com)",
    )
    parser.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key (default OPENAI_API_KEY)",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request attempt (default 60)")
    parser.add_argument(
        "--max-retries", type=int, default=5, help="SDK retries with backoff on 429/5xx/timeouts (default 5)"
    )
    parser.add_argument("--temperature", type=_temperature, default=temperature, help=temperature_help)
    parser.add_argument("--max-tokens", type=int, default=None, help="reply token limit (default: the server's)")
    parser.add_argument(
        "--extra-body",
        type=_json_object,
        default=None,
        help='JSON merged into each request, e.g. \'{"reasoning_effort": "none"}\'',
    )
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--cache", default=None, help="reply cache (SQLite); default: OUT.cache.sqlite beside --out")
    cache.add_argument("--no-cache", action="store_true", help="do not cache replies")


def judge_config_from_args(args: argparse.Namespace, out: str | Path) -> JudgeConfig:
    """A :class:`JudgeConfig` from :func:`add_judge_options`' arguments; the cache defaults to OUT.cache.sqlite."""
    if args.no_cache:
        cache_path = None
    else:
        cache_path = Path(args.cache) if args.cache else default_cache_path(out)
    return JudgeConfig(
        model=args.model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        concurrency=args.concurrency,
        timeout=args.timeout,
        max_retries=args.max_retries,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        cache=cache_path,
        extra_body=args.extra_body,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="erv judge",
        description="Name the emotion of each prediction's <think> explanation with an LLM judge "
        "(any OpenAI-compatible endpoint), resumably. See docs/judge.md.",
        epilog="Also: `erv judge agreement J1 J2 ... --predictions P --dataset D` (judge agreement, Table 4) and "
        "`erv judge testserver` (an offline OpenAI-compatible test endpoint).",
    )
    parser.add_argument("--predictions", required=True, help="predictions JSONL (id, gold, response, ...)")
    parser.add_argument(
        "--dataset", required=True, help="taxonomy for the emotion list and normalisation (DFEW, MAFW, EMER, RAVDESS)"
    )
    parser.add_argument("--out", required=True, help="judgments JSONL; resumed if it exists")
    add_judge_options(parser)
    parser.add_argument("--limit", type=int, default=None, help="judge only the first N predictions")
    parser.add_argument(
        "--prompt",
        choices=EXPLANATION_PROMPT_VARIANTS,
        default="paper",
        help="explanation prompt: 'paper' (Figure 3, default) or 'released' (the released script's text)",
    )
    parser.add_argument(
        "--allow-unclosed-think",
        action="store_true",
        help="also judge a <think> that is never closed (a truncated generation), as the released script does",
    )
    parser.add_argument(
        "--on-changed",
        choices=ON_CHANGED,
        default="redo",
        help="an id of --out judged from another explanation than --predictions now holds: judge it again "
        "(redo, default) or stop before any request (refuse)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _main_judge(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    from erv.judge.run import run_judge

    config = judge_config_from_args(args, args.out)
    summary = run_judge(
        args.predictions,
        args.dataset,
        args.out,
        config,
        limit=args.limit,
        prompt_variant=args.prompt,
        allow_unclosed_think=args.allow_unclosed_think,
        on_changed=args.on_changed,
        progress=False if args.no_progress else None,
    )
    if summary.errors:
        print(f"erv judge: {summary.api_errors} API calls failed:", file=sys.stderr)
        for message, count in summary.errors.most_common(5):
            print(f"  {count} x {message}", file=sys.stderr)
        print("erv judge: re-run the same command to retry only the failed samples", file=sys.stderr)
    rejudged = f", {summary.changed} judged again (explanation changed)" if summary.changed else ""
    print(f"{args.out}: {summary.file_line()}; this run: {summary.requests} requests sent{rejudged}")
    print(summary.line(), flush=True)
    return 1 if summary.api_errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    return _main_judge(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
