"""The demo's stages, each through the code path its command runs (`erv sft`, `erv verifier train`,
`erv grpo`, `erv infer`, `erv judge`, `erv evaluate`), with the recipes in `configs/demo/`."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import erv
from erv.errors import ConfigError, ErvError
from erv.io.jsonl import PathLike
from erv.io.recipes import recipe_overrides

SRC_DIR = Path(erv.__file__).resolve().parents[1]
GRPO_RUNS = ("grpo_baseline", "grpo_erv")
ROWS = ("sft", "grpo_baseline", "grpo_erv")
JUDGE_MODEL = "erv-verifier-judge"
JUDGE_KEY_ENV = "ERV_DEMO_JUDGE_KEY"
MAX_NEW_TOKENS = 64


def default_recipes() -> Path:
    """`configs/demo/` of the checkout this package runs from."""
    return SRC_DIR.parent / "configs" / "demo"


def recipe(recipes: Path, name: str) -> Path:
    path = recipes / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"demo recipe {path} not found (pass --recipes DIR, the folder with configs/demo's files)")
    return path


# ---------------------------------------------------------------- small helpers
class Stages:
    """Prints numbered stage lines with timings; keeps them for the report."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def stage(self, title: str) -> Iterator[None]:
        number = len(self.done) + 1
        print(f"[{number}/{self.total}] {title} ...", flush=True)
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.done.append((title, seconds))
        print(f"[{number}/{self.total}] {title}: done in {seconds:.1f} s", flush=True)


@contextlib.contextmanager
def quiet(log: Path) -> Iterator[None]:
    """Library chatter (trainer logs, weight-loading bars, warnings) goes to `log`, not the console."""
    from transformers.utils import logging as hf_logging

    log.parent.mkdir(parents=True, exist_ok=True)
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with (
        open(log, "a", encoding="utf-8") as stream,
        contextlib.redirect_stdout(stream),
        contextlib.redirect_stderr(stream),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            hf_logging.set_verbosity(previous)
            hf_logging.enable_progress_bar()


def child_environment() -> dict[str, str]:
    """One thread per process (two GRPO runs share the two cores), this checkout's sources first."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC_DIR), env.get("PYTHONPATH", "")) if p)
    return env


# ---------------------------------------------------------------- training
def train_sft_stage(
    recipes: Path, data: Any, out: Path, *, seed: int, overrides: dict[str, Any], log: Path
) -> dict[str, Any]:
    """`erv sft --config configs/demo/sft.yaml` on the world's SFT records."""
    from erv.train.sft import parse_sft_args, train_sft

    argv = ["--config", str(recipe(recipes, "sft"))] + recipe_overrides(
        {
            "model_name_or_path": data.checkpoint,
            "bert": data.bert,
            "dataset_name": data.sft_records,
            "output_dir": out,
            "seed": seed,
            "data_seed": seed,
            **overrides,
        }
    )
    with quiet(log):
        result = train_sft(*parse_sft_args(argv))
        print(result.summary())
    return {
        "output_dir": str(result.output_dir),
        "steps": result.global_step,
        "epochs": result.epochs,
        "train_loss": result.train_loss,
        "records": result.trained_records,
        "summary": result.summary(),
    }


def train_verifier_stage(
    recipes: Path, data: Any, out: Path, *, seed: int, overrides: dict[str, Any], log: Path
) -> dict[str, Any]:
    """`erv verifier train --config configs/demo/verifier.yaml` from a tiny random RoBERTa."""
    from erv.demo.world import write_verifier_backbone
    from erv.verifier.train import parse_train_args, train_verifier

    backbone = out.parent / "verifier-backbone"
    argv = ["--config", str(recipe(recipes, "verifier"))] + recipe_overrides(
        {
            "model_name_or_path": backbone,
            "train_files": [data.verifier_train],
            "eval_files": [data.verifier_held_out],
            "output_dir": out,
            "seed": seed,
            "data_seed": seed,
            **overrides,
        }
    )
    with quiet(log):
        write_verifier_backbone(backbone, seed)
        result = train_verifier(*parse_train_args(argv))
    return {
        "output_dir": str(result.output_dir),
        "train_texts": result.train_examples,
        "held_out_texts": result.eval_examples,
        "held_out_macro_f1": result.metrics.get("macro_f1"),
        "held_out_micro_f1": result.metrics.get("micro_f1"),
    }


@dataclass
class GrpoRun:
    name: str
    output_dir: Path
    log: Path
    process: subprocess.Popen | None = None
    seconds: float = 0.0


def grpo_command(
    recipes: Path,
    name: str,
    data: Any,
    *,
    sft_dir: Path,
    verifier: Path,
    out: Path,
    seed: int,
    overrides: dict[str, Any],
) -> list[str]:
    """The `erv grpo` command line of one demo run (the ERV run also gets the verifier)."""
    values: dict[str, Any] = {
        "model_name_or_path": sft_dir,
        "bert": data.bert,
        "dataset_name": data.grpo_records,
        "output_dir": out,
        "seed": seed,
        "data_seed": seed,
        **overrides,
    }
    if name == "grpo_erv":
        values["verifier"] = verifier
    return [sys.executable, "-m", "erv.cli", "grpo", "--config", str(recipe(recipes, name))] + recipe_overrides(values)


def train_grpo_pair(
    recipes: Path,
    data: Any,
    *,
    sft_dir: Path,
    verifier: Path,
    runs_dir: Path,
    logs: Path,
    seed: int,
    overrides: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Both GRPO runs side by side, one `erv grpo` process with one thread each."""
    runs = [GrpoRun(name, runs_dir / name, logs / f"{name}.log") for name in GRPO_RUNS]
    env = child_environment()
    start = time.perf_counter()
    try:
        for run in runs:
            run.log.parent.mkdir(parents=True, exist_ok=True)
            command = grpo_command(
                recipes,
                run.name,
                data,
                sft_dir=sft_dir,
                verifier=verifier,
                out=run.output_dir,
                seed=seed,
                overrides=overrides,
            )
            with open(run.log, "w", encoding="utf-8") as stream:
                stream.write(" ".join(command) + "\n")
                stream.flush()
                run.process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, env=env)
        pending = list(runs)
        while pending:
            for run in list(pending):
                assert run.process is not None
                if run.process.poll() is not None:
                    run.seconds = time.perf_counter() - start
                    pending.remove(run)
            time.sleep(0.2)
    finally:  # interrupted (Ctrl-C) or failed to start the second: do not leave a run behind
        for run in runs:
            if run.process is not None and run.process.poll() is None:
                run.process.terminate()
                run.process.wait(timeout=30)
    for run in runs:
        assert run.process is not None
        if run.process.returncode != 0:
            raise ErvError(
                f"{run.name} failed (exit status {run.process.returncode}): {last_line(run.log)} (log: {run.log})"
            )
    return {run.name: {"output_dir": str(run.output_dir), "seconds": run.seconds, "log": str(run.log)} for run in runs}


def last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


# ---------------------------------------------------------------- inference, judge, evaluation
def infer_stage(checkpoint: Path, records: Path, out: Path, *, seed: int, log: Path, batch_size: int = 32) -> None:
    """`erv infer` (greedy) of one checkpoint on the test clips."""
    from erv.inference.cli import main as infer_main

    argv = ["--model", str(checkpoint), "--data", str(records), "--out", str(out)]
    argv += ["--batch-size", str(batch_size), "--max-new-tokens", str(MAX_NEW_TOKENS), "--num-workers", "1"]
    argv += ["--seed", str(seed), "--no-progress"]
    with quiet(log):
        infer_main(argv)


class VerifierJudge:
    """An OpenAI-compatible judge's answers from the trained verifier reading the whole explanation.

    The test server hands over the request body; the explanation is the text between `Reason:`
    and `Answer Emotion:` of the paper's judge prompt, and the reply is the label the verifier
    gives it the highest probability. It reads nothing but the explanation (no gold label).
    """

    _REASON = re.compile(r"Reason:\s*(.*?)\s*Answer Emotion:\s*$", re.S)

    def __init__(self, verifier_dir: PathLike, taxonomy: str = "DFEW") -> None:
        from erv.verifier.model import Verifier

        self.verifier = Verifier.from_pretrained(verifier_dir, taxonomy=taxonomy)
        self.taxonomy = taxonomy
        self._lock = threading.Lock()  # the server answers from several threads; the verifier is not shared-safe

    def __call__(self, body: dict[str, Any]) -> str:
        prompt = str(body["messages"][-1]["content"])
        match = self._REASON.search(prompt)
        if match is None or not match.group(1).strip():
            return "unsure"  # outside the label list: stored as unjudged, never coerced
        with self._lock:
            labels, probs = self.verifier.taxonomy_proba([match.group(1)], self.taxonomy)
        return labels[int(probs[0].argmax())]


def judge_stage(predictions: dict[str, Path], judgments: dict[str, Path], verifier_dir: Path) -> dict[str, Any]:
    """`erv judge` of every prediction file against the local verifier judge."""
    from erv.judge.client import JudgeConfig
    from erv.judge.run import run_judge
    from erv.testing.judge_server import JudgeTestServer, ServerConfig

    os.environ.setdefault(JUDGE_KEY_ENV, "local-demo-key")
    summaries = {}
    with JudgeTestServer(ServerConfig(responder=VerifierJudge(verifier_dir))) as server:
        config = JudgeConfig(
            model=JUDGE_MODEL,
            base_url=server.base_url,
            api_key_env=JUDGE_KEY_ENV,
            concurrency=8,
            timeout=30.0,
            max_retries=2,
            cache=None,
        )
        for name, path in predictions.items():
            summary = run_judge(path, "DFEW", judgments[name], config, progress=False)
            summaries[name] = {
                "line": summary.line(),
                "file": summary.file_line(),
                "requests": summary.requests,
                "out_of_taxonomy": summary.out_of_taxonomy,
            }
    return summaries


def evaluate_stage(
    predictions: dict[str, Path], judgments: dict[str, Path], labels: Path, *, seed: int, resamples: int = 1000
) -> dict[str, Any]:
    """`erv evaluate` of each row (with the records as the label file), and the paired ERV - baseline test."""
    from erv.eval.evaluate import evaluate
    from erv.eval.paired import compare_files

    table = {
        name: evaluate(
            [str(path)],
            "DFEW",
            judgments=[str(judgments[name])],
            labels=[str(labels)],
            n_resamples=resamples,
            seed=seed,
        )
        for name, path in predictions.items()
    }
    paired = compare_files(
        predictions["grpo_baseline"],
        predictions["grpo_erv"],
        "DFEW",
        judgments_a=judgments["grpo_baseline"],
        judgments_b=judgments["grpo_erv"],
        n_resamples=resamples,
        seed=seed,
    )
    return {"table": table, "paired": paired}


def configure_threads() -> None:
    """One torch thread in this process: its DataLoader worker decodes media on the other core."""
    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(1)
    logging.getLogger("erv").setLevel(logging.WARNING)


class MemoryWatch:
    """Peak resident memory of the demo and all its processes together (GRPO runs, DataLoader workers).

    A thread samples the process tree twice a second (psutil);
    `getrusage` alone would only give the largest single process.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak_total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-memory-watch", daemon=True)

    def _sample(self) -> float:
        import psutil

        root = psutil.Process()
        total = 0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a process ending mid-sample
                self.peak_total = max(self.peak_total, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def report(self) -> dict[str, float]:
        """MB: the sampled peak of the whole tree, and `getrusage`'s exact per-process peaks."""
        import resource

        scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20  # ru_maxrss: KiB on Linux, bytes on macOS
        return {
            "all_processes": self.peak_total,
            "demo_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale,
            "largest_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale,
        }


def stage_argv_for_quick(quick: bool) -> dict[str, dict[str, Any]]:
    """Recipe overrides of `--quick`: a few steps of every trainer, same code paths."""
    if not quick:
        return {"sft": {}, "verifier": {}, "grpo": {}}
    return {
        "sft": {"max_steps": 4, "per_device_train_batch_size": 4, "logging_steps": 1},
        "verifier": {"num_train_epochs": 1, "warmup_steps": 0, "logging_steps": 1},
        "grpo": {"max_steps": 2, "num_generations": 4, "per_device_train_batch_size": 8, "logging_steps": 1},
    }
