"""`erv demo`: the whole method for real, on a synthetic emotion world, on a CPU, in minutes.

    erv demo --out demo_out            # make demo; about 4 minutes on 2 CPU cores
    erv demo --out /tmp/d --quick      # a few steps of everything (the test suite runs it)

Every stage runs the code path of the command a user runs, with the recipes in configs/demo/:

1. the world (erv.testing.emotion_world): H.264 + AAC clips whose emotion is partly visible
   (colour, a moving bar) and partly audible (pitch, tempo), with distractor cues; DFEW-style
   fold-5 label files for the GRPO and test clips and an EMER-style table of explanations for
   the SFT clips, turned into records by `erv data prepare`; a tiny random HumanOmni release;
2. `erv sft`: the tiny HumanOmni learns the format and the task (frozen random towers, so the
   projectors must carry the cues);
3. `erv verifier train`: the Emotional Rationale Verifier on the world's labelled sentences;
4. `erv grpo` twice, side by side (one thread each), from the same SFT checkpoint with the
   same seed and steps: the baseline (format + answer rewards) and ERV (format + answer +
   explanation reward);
5. `erv infer` of the three models on the held-out test clips;
6. `erv judge` of every explanation; the judge is the trained verifier reading the whole
   explanation behind the OpenAI-compatible test server, a stand-in for GPT-4.1-mini;
7. `erv evaluate` with bootstrap intervals, and the paired bootstrap of ERV minus baseline
   over the same clips (erv.eval.paired);
8. report.md (a miniature Table 1, differences, curves, confusion matrices, examples, timings)
   and metrics.json.

Nothing reads a gold label outside the rewards and the metrics. The same seed gives the same
numbers. docs/demo.md describes the world, the recipes and what the numbers mean.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from erv.errors import ConfigError

MARKER = ".erv-demo"
OWNED = ("data", "models", "runs", "predictions", "judgments", "plots", "logs", "report.md", "metrics.json")
EXAMPLES = 3


def prepare_output(out: Path) -> None:
    """A new or empty folder, or one a previous demo wrote (its demo files are replaced)."""
    from erv.io.outputs import check_output_dir

    check_output_dir(out, "--out")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise ConfigError(f"--out {out} holds files that no erv demo wrote; give a new or empty folder")
        for name in OWNED:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by erv demo; its files are replaced by the next run\n", encoding="utf-8")


def machine() -> str:
    import os

    return f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}"


def run_demo(out: Path, *, seed: int = 0, quick: bool = False, recipes: Path | None = None) -> dict[str, Any]:
    """Run the stages (module doc) into `out`; returns what metrics.json holds."""
    from erv.demo import pipeline, report, world

    start = time.perf_counter()
    recipes = recipes or pipeline.default_recipes()
    for name in ("sft", "verifier", *pipeline.GRPO_RUNS):
        pipeline.recipe(recipes, name)  # all there before minutes of work
    prepare_output(out)
    pipeline.configure_threads()
    overrides = pipeline.stage_argv_for_quick(quick)
    logs, runs, plots_dir = out / "logs", out / "runs", out / "plots"
    with pipeline.MemoryWatch() as memory:
        stages = pipeline.Stages(8)
        info: dict[str, Any] = {"seed": seed, "quick": quick, "machine": machine()}

        with stages.stage("synthetic world: clips, label files, erv data prepare, tiny HumanOmni release"):
            with pipeline.quiet(logs / "world.log"):
                data = world.build_world(
                    out, world.QUICK if quick else world.FULL, seed=seed, sft_config=world.SFT_WORLD
                )
        info["world"] = world.describe(data)
        with stages.stage("erv sft: the tiny HumanOmni learns the format and the task"):
            info["sft"] = pipeline.train_sft_stage(
                recipes, data, runs / "sft", seed=seed, overrides=overrides["sft"], log=logs / "sft.log"
            )
        with stages.stage("erv verifier train: the Emotional Rationale Verifier"):
            info["verifier"] = pipeline.train_verifier_stage(
                recipes,
                data,
                out / "models" / "verifier",
                seed=seed,
                overrides=overrides["verifier"],
                log=logs / "verifier.log",
            )
        with stages.stage("erv grpo: baseline (format + answer) and ERV (+ explanation), side by side"):
            info["grpo_runs"] = pipeline.train_grpo_pair(
                recipes,
                data,
                sft_dir=runs / "sft",
                verifier=Path(info["verifier"]["output_dir"]),
                runs_dir=runs,
                logs=logs,
                seed=seed,
                overrides=overrides["grpo"],
            )
        info["grpo"] = {
            "steps": max((h.get("step", 0) for h in report.log_history(runs / "grpo_erv")), default=0),
            **{name: report.reward_curves(runs / name) for name in pipeline.GRPO_RUNS},
        }
        checkpoints = {"sft": runs / "sft", "grpo_baseline": runs / "grpo_baseline", "grpo_erv": runs / "grpo_erv"}
        predictions = {name: out / "predictions" / f"{name}.jsonl" for name in pipeline.ROWS}
        judgments = {name: out / "judgments" / f"{name}.jsonl" for name in pipeline.ROWS}
        with stages.stage("erv infer: the three models on the test clips"):
            for name in pipeline.ROWS:
                pipeline.infer_stage(
                    checkpoints[name], data.test_records, predictions[name], seed=seed, log=logs / f"infer_{name}.log"
                )
        with stages.stage("erv judge: explanation emotions from the local verifier judge"):
            with pipeline.quiet(logs / "judge.log"):
                info["judge"] = pipeline.judge_stage(predictions, judgments, Path(info["verifier"]["output_dir"]))
        with stages.stage("erv evaluate with bootstrap intervals; paired ERV - baseline"):
            info.update(pipeline.evaluate_stage(predictions, judgments, data.test_records, seed=seed))
        with stages.stage("report"):
            with pipeline.quiet(logs / "report.log"):
                from erv.eval.report import plot_confusions

                plots = {"sft_loss": "plots/sft_loss.png"}
                report.plot_sft_loss(runs / "sft", out / plots["sft_loss"])
                for name in pipeline.GRPO_RUNS:
                    plots[f"rewards_{name}"] = f"plots/rewards_{name}.png"
                    report.plot_rewards(info["grpo"][name], report.TITLES[name], out / plots[f"rewards_{name}"])
                for name, result in info["table"].items():
                    (path,) = plot_confusions(result, plots_dir)
                    plots[f"confusion_{name}"] = str(path.relative_to(out))
                info["examples"] = report.examples(
                    predictions, judgments, report.pick_examples(data.test_ids, EXAMPLES, seed)
                )
                info["judge_note"] = report.JUDGE_NOTE
                info["plots"] = plots
    info["timings"] = [{"stage": title, "seconds": seconds} for title, seconds in stages.done]
    info["total_seconds"] = time.perf_counter() - start
    info["peak_memory_mb"] = memory.report()
    report.write_metrics(out / "metrics.json", info)
    report.write_report(out / "report.md", info, info["plots"])
    return info


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="erv demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--seed", type=int, default=0, help="one seed for the world, every trainer and the bootstrap")
    parser.add_argument("--quick", action="store_true", help="a few steps of every stage on a few clips (tests)")
    parser.add_argument("--recipes", help="folder with the demo recipes (default: this checkout's configs/demo)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    info = run_demo(out, seed=args.seed, quick=args.quick, recipes=Path(args.recipes) if args.recipes else None)
    from erv.demo.report import NAMES, TABLE_COLUMNS, _interval, _pct, _signed

    print()
    for name, result in info["table"].items():
        print(f"{name:>14}: " + "  ".join(f"{NAMES[c]} {_pct(result.get(c))}" for c in TABLE_COLUMNS))
    diff = info["paired"]["differences"]
    for name in ("eea", "fcr", "war"):
        ci = diff[name]["ci"]
        interval = f" {_interval(ci)}" if ci else ""
        print(f"ERV - baseline {NAMES[name]}: {_signed(diff[name]['difference'])} points{interval}")
    print(f"wrote {out / 'report.md'} and {out / 'metrics.json'} in {info['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
