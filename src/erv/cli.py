"""The `erv` command: a thin dispatcher over per-stage entry points.

Each subcommand lives in the module that implements its stage and exposes
`main(argv: list[str]) -> int`; this file only routes, so importing `erv` stays fast and a
stage's dependencies load only when it runs. User errors (:class:`erv.errors.ErvError`) and
errors of the environment (a full disk, a permission: `OSError`) print one line and exit 2;
anything else is a bug and keeps its traceback. Warnings meant for the user
(:class:`erv.errors.ErvWarning`) print as one plain line. A closed stdout (`erv evaluate ... |
head -1`) ends the command quietly with status 141, as a Unix tool killed by SIGPIPE.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence

from erv.errors import ErvError, ErvWarning, one_line_text

SIGPIPE_STATUS = 128 + getattr(signal, "SIGPIPE", 13)

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
        with _plain_warnings(label):
            if prog is not None:
                status = int(module.main(list(rest), prog=prog) or 0)
            else:
                status = int(module.main(list(rest)) or 0)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        _discard_stdout()
        return SIGPIPE_STATUS
    except ErvError as exc:
        print(f"{label}: error: {one_line_text(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # the environment, not the code: a full disk, a permission, a vanished file
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"{label}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{label}: interrupted", file=sys.stderr)
        return 130


def _discard_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (tests)
        pass


@contextlib.contextmanager
def _plain_warnings(label: str) -> Iterator[None]:
    """Format :class:`ErvWarning` as `label: warning: message`, without Python's source line.

    Only the formatting changes, so warnings stay filterable and recordable (`-W error`,
    `warnings.catch_warnings(record=True)`).
    """
    previous = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):  # noqa: ANN001 - stdlib signature
        if isinstance(category, type) and issubclass(category, ErvWarning):
            return f"{label}: warning: {one_line_text(str(message))}\n"
        return previous(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning
    try:
        yield
    finally:
        warnings.formatwarning = previous


if __name__ == "__main__":
    raise SystemExit(main())
