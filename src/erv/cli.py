"""The `erv` command: a thin dispatcher over per-stage entry points.

Each subcommand lives in the module that implements its stage and exposes
`main(argv: list[str]) -> int`; this file only routes, so importing `erv` stays fast and a
stage's dependencies load only when it runs. User errors (:class:`erv.errors.ErvError`) print
one line and exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from erv.errors import ErvError

# name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("erv.demo", "run the whole pipeline on a synthetic dataset with tiny models"),
    "evaluate": ("erv.eval.evaluate", "WAR/UAR and EEA/EPC/FCR with bootstrap intervals"),
    "judge": ("erv.judge.cli", "LLM judge of explanation emotions (OpenAI-compatible endpoint)"),
    "verifier": ("erv.verifier.cli", "train / evaluate / apply the Emotional Rationale Verifier"),
    "data": ("erv.data.prepare", "build SFT / GRPO / inference records from dataset label files"),
    "infer": ("erv.inference.cli", "sharded batched inference with a HumanOmni checkpoint"),
    "sft": ("erv.train.sft", "supervised fine-tuning of HumanOmni"),
    "grpo": ("erv.train.grpo", "GRPO with format / answer / ERV rewards"),
}

# (command, first argument) -> module with main(argv), for subcommands that live in another stage
SUBCOMMANDS: dict[tuple[str, str], str] = {
    ("judge", "agreement"): "erv.eval.agreement",
    ("judge", "testserver"): "erv.testing.judge_server",
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: erv <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `erv <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        from erv import __version__

        print(f"erv {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"erv: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return run_command(name, rest)


def run_command(name: str, rest: Sequence[str], prog: str | None = None) -> int:
    """Run one subcommand with uniform error handling (also used by wrapper scripts)."""
    module_name = COMMANDS[name][0]
    label = prog or f"erv {name}"
    if rest and (name, rest[0]) in SUBCOMMANDS:
        module_name = SUBCOMMANDS[(name, rest[0])]
        label, rest = f"{label} {rest[0]}", rest[1:]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            print(f"erv: error: `erv {name}` is not built yet in this version", file=sys.stderr)
            return 2
        raise
    try:
        if prog is not None:
            return int(module.main(list(rest), prog=prog) or 0)
        return int(module.main(list(rest)) or 0)
    except ErvError as exc:
        print(f"{label}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{label}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
