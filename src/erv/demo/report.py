"""The demo's report: `metrics.json`, `report.md` and the PNG plots it links."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from erv.eval.report import pyplot, save_png
from erv.io.jsonl import atomic_write_text, write_json

TITLES = {
    "sft": "SFT",
    "grpo_baseline": "Baseline GRPO (format + answer)",
    "grpo_erv": "ERV GRPO (format + answer + explanation)",
}
TABLE_COLUMNS = ("eea", "fcr", "epc", "war", "uar")
NAMES = {"eea": "EEA", "fcr": "FCR", "epc": "EPC", "war": "WAR", "uar": "UAR", "fcr_given_correct": "FCR/WAR"}
JUDGE_NOTE = (
    "The explanation judge is the trained verifier reading the whole explanation, served behind the "
    "OpenAI-compatible test server (`erv.testing.judge_server`) and called by `erv judge`: it stands in for "
    "GPT-4.1-mini, the paper's judge, which this offline demo cannot reach. Because the ERV reward uses the "
    "same verifier (sentence by sentence), the ERV run is judged by the model it was trained against; the "
    "paper's independent LLM judge avoids that."
)


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def _cell(result: dict[str, Any], name: str) -> str:
    ci = (result.get("ci95") or {}).get(name)
    value = _pct(result.get(name))
    return value + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}"


def _interval(ci: list[float] | None, missing: str = "n/a") -> str:
    """A difference's interval in signed points, `[-1.4, +0.0]`; `missing` when there is none."""
    return f"[{_signed(ci[0])}, {_signed(ci[1])}]" if ci else missing


# ---------------------------------------------------------------- plots
def log_history(run_dir: Path) -> list[dict[str, Any]]:
    state = run_dir / "trainer_state.json"
    return json.loads(state.read_text(encoding="utf-8"))["log_history"] if state.is_file() else []


def plot_sft_loss(run_dir: Path, path: Path) -> Path:
    plt = pyplot()
    points = [(h["step"], h["loss"]) for h in log_history(run_dir) if "loss" in h and "step" in h]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    if points:
        ax.plot(*zip(*points, strict=True), marker=".", color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (per supervised token)")
    ax.set_title("SFT")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)
    return path


def reward_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """`{reward name: [(step, mean reward)]}` from a GRPO run's logged history."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history(run_dir):
        for key, value in entry.items():
            if key.startswith("rewards/") and key.endswith("/mean") and "step" in entry:
                curves.setdefault(key[len("rewards/") : -len("/mean")], []).append((entry["step"], float(value)))
    return curves


def plot_rewards(curves: dict[str, list[tuple[int, float]]], title: str, path: Path) -> Path:
    """The :func:`reward_curves` of one GRPO run."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, points in curves.items():
        ax.plot(*zip(*points, strict=True), marker=".", label=name.replace("_reward", ""))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward of the step's completions")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- examples
def pick_examples(test_ids: list[str], count: int, seed: int) -> list[str]:
    """Clips shown in the report: a seeded draw of test ids (nothing about them is looked at)."""
    rng = random.Random(f"demo-examples-{seed}")
    return sorted(rng.sample(test_ids, min(count, len(test_ids))), key=lambda s: (len(s), s))


def examples(predictions: dict[str, Path], judgments: dict[str, Path], ids: list[str]) -> list[dict[str, Any]]:
    """For each chosen clip: its gold label and each row's response and judged explanation emotion."""
    from erv.data.ids import canonical_id
    from erv.data.records import read_judgments, read_predictions

    preds = {name: {canonical_id(p.id): p for p in read_predictions(path)} for name, path in predictions.items()}
    judged = {name: read_judgments(path) for name, path in judgments.items()}

    def row(name: str, key: str) -> dict[str, Any]:
        pred, judgment = preds[name].get(key), judged[name].get(key)
        return {
            "response": None if pred is None or pred.failed else pred.response,
            "explanation_emotion": judgment.explanation_emotion if judgment is not None else None,
        }

    out = []
    for clip in ids:
        key = canonical_id(clip)
        first = next(iter(preds.values())).get(key)
        out.append(
            {
                "id": clip,
                "gold": first.gold if first is not None else None,
                "rows": {name: row(name, key) for name in preds},
            }
        )
    return out


# ---------------------------------------------------------------- reading the table
def _excludes_zero(ci: list[float] | None) -> bool:
    return ci is not None and (ci[0] > 0 or ci[1] < 0)


def reading(info: dict[str, Any]) -> str:
    """A paragraph that reads the table from its numbers, significance included."""
    table, diffs = info["table"], info["paired"]["differences"]
    chance = 1 / 7
    sft_war = table["sft"]["war"]
    n = info["paired"]["n"]
    parts = [
        f"On {n} held-out test clips the SFT model reaches WAR {_pct(sft_war)}% "
        f"({sft_war / chance:.1f}x the 14.3% chance level; the best possible accuracy in this world is "
        f"{_pct(info['world']['best_accuracy'])}%)."
    ]
    for name in ("eea", "fcr", "epc"):
        row = diffs[name]
        ci = row["ci"]
        if row["difference"] is None:
            parts.append(f"{NAMES[name]}: not measured (no explanation of one of the two models was judged).")
            continue
        verdict = (
            "the 95% paired-bootstrap interval excludes 0"
            if _excludes_zero(ci)
            else "the interval includes 0, so this difference is not significant"
        )
        interval = _interval(ci, "(no interval)")
        parts.append(
            f"{NAMES[name]}: ERV GRPO {_pct(row['b'])}% vs baseline GRPO {_pct(row['a'])}%, a difference of "
            f"{_signed(row['difference'])} points {interval}; {verdict}."
        )
    for name in ("war", "uar"):
        row = diffs[name]
        ci = row["ci"]
        if row["difference"] is None:
            continue
        interval = _interval(ci, "(no interval)")
        parts.append(
            f"{NAMES[name]} differs by {_signed(row['difference'])} points {interval}"
            + (
                "; the interval excludes 0, so the accuracy did change."
                if _excludes_zero(ci)
                else ", an interval that includes 0: no evidence that the explanation reward changed recognition."
            )
        )
    base_eea, sft_eea = table["grpo_baseline"].get("eea"), table["sft"].get("eea")
    if base_eea is not None and sft_eea is not None:
        parts.append(
            f"Against the SFT model (not a paired test), baseline GRPO moves EEA by {_signed(base_eea - sft_eea)} "
            f"points and ERV GRPO by {_signed(table['grpo_erv']['eea'] - sft_eea)}."
        )
    parts.append(
        "This is one seed of a tiny model on a synthetic world: it shows the method's mechanics and their "
        "direction, not the paper's numbers."
    )
    return " ".join(parts)


# ---------------------------------------------------------------- the files
def write_metrics(path: Path, info: dict[str, Any]) -> None:
    write_json(path, info)


def write_report(path: Path, info: dict[str, Any], plots: dict[str, str]) -> None:
    table, paired = info["table"], info["paired"]
    world = info["world"]
    lines = [
        "# erv demo: the method on a synthetic emotion world",
        "",
        f"Seed {info['seed']}{' (quick mode: a few steps of everything)' if info.get('quick') else ''}, "
        f"{info['machine']}, everything offline, {info['total_seconds']:.0f} s in all. Every stage ran through "
        "the command a user runs (`erv data prepare`, `erv sft`, `erv verifier train`, `erv grpo`, `erv infer`, "
        "`erv judge`, `erv evaluate`) with the recipes in `configs/demo/`.",
        "",
        f"## Miniature Table 1 ({paired['n']} test clips, %, 95% bootstrap intervals)",
        "",
        "| model | " + " | ".join(NAMES[c] for c in TABLE_COLUMNS) + " |",
        "|---|" + "---|" * len(TABLE_COLUMNS),
    ]
    for name, result in table.items():
        lines.append(f"| {TITLES[name]} | " + " | ".join(_cell(result, c) for c in TABLE_COLUMNS) + " |")
    lines += [
        "",
        f"Chance: 14.3% WAR. Best possible accuracy (a Bayes-optimal reader of both channels): "
        f"{_pct(world['best_accuracy'])}%; of the picture alone {_pct(world['best_accuracy_visual'])}%, of the "
        f"sound alone {_pct(world['best_accuracy_audio'])}%. EEA: the judged explanation emotion equals the gold "
        "label; EPC: it equals the model's answer; FCR: both.",
        "",
        JUDGE_NOTE,
        "",
        f"## ERV GRPO minus baseline GRPO (paired bootstrap over the same {paired['n']} clips)",
        "",
        "| metric | baseline | ERV | difference (points) | 95% interval | excludes 0 |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("eea", "fcr", "epc", "war", "uar", "fcr_given_correct"):
        row = paired["differences"].get(name)
        if row is None:
            continue
        ci = row["ci"]
        lines.append(
            f"| {NAMES[name]} | {_pct(row['a'])} | {_pct(row['b'])} | {_signed(row['difference'])} | "
            + _interval(ci)
            + f" | {'yes' if _excludes_zero(ci) else 'no'} |"
        )
    lines += [
        "",
        f"{paired['bootstrap']['resamples']} resamples of the test clips (seed {paired['bootstrap']['seed']}); "
        "both models are scored on each resample (`erv.eval.paired`).",
        "",
        "## Reading the table",
        "",
        reading(info),
        "",
        "## Training",
        "",
        f"SFT: {info['sft']['steps']} steps on {info['sft']['records']} records; GRPO: "
        f"{info['grpo']['steps']} steps each from the SFT checkpoint, same seed, side by side.",
        "",
        f"![SFT training loss]({plots['sft_loss']})",
        "",
        f"![Baseline GRPO rewards]({plots['rewards_grpo_baseline']})",
        "",
        f"![ERV GRPO rewards]({plots['rewards_grpo_erv']})",
        "",
        "## Confusion matrices (test clips)",
        "",
    ]
    for name in table:
        lines += [f"![{TITLES[name]} confusion]({plots[f'confusion_{name}']})", ""]
    lines += ["## Example explanations (the same three test clips in every row)", ""]
    for example in info["examples"]:
        lines += [
            f"Clip {example['id']}, gold `{example['gold']}`:",
            "",
            "| model | response | judged explanation emotion |",
            "|---|---|---|",
        ]
        for name, row in example["rows"].items():
            response = (row["response"] or "(none)").replace("\n", " ").replace("|", "\\|")
            lines.append(f"| {TITLES[name]} | `{response}` | {row['explanation_emotion'] or 'unjudged'} |")
        lines.append("")
    verifier = info["verifier"]
    lines += [
        "## The world",
        "",
        f"{world['clips']['sft']} SFT clips (EMER-style records with explanations; {_pct(world['sft_incoherent'])}% "
        "of them deliberately incoherent: a sentence about a bystander's other emotion), "
        f"{world['clips']['grpo']} GRPO training clips and {world['clips']['test']} test clips (DFEW fold-5 "
        "label files), all H.264 + AAC. The colour of the picture tells part of the emotion, the pitch and "
        "tempo of the voice another part; each channel shows another emotion's cue in "
        f"{_pct(1 - world['reliability'])}% of the GRPO and test clips. "
        f"Verifier: {verifier['train_texts']} training texts, macro-F1 {_pct(verifier['held_out_macro_f1'])}% on "
        f"{verifier['held_out_texts']} held-out texts of unseen templates. docs/demo.md describes it all.",
        "",
        "## Stages",
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    lines += [f"| {t['stage']} | {t['seconds']:.1f} |" for t in info["timings"]]
    memory = info["peak_memory_mb"]
    lines += [
        f"| total | {info['total_seconds']:.1f} |",
        "",
        f"Peak resident memory of all the demo's processes together: {memory['all_processes']:.0f} MB (sampled "
        f"twice a second); of the demo process alone {memory['demo_process']:.0f} MB, of its largest child (a "
        f"GRPO run) {memory['largest_child']:.0f} MB.",
        "",
        "Files: `predictions/*.jsonl` (erv infer), `judgments/*.jsonl` (erv judge), `metrics.json` (its `table` "
        "holds each row's `erv evaluate --json` object), `runs/` (checkpoints and trainer states), `logs/`, `plots/`.",
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")
