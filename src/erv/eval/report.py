"""Human-readable views of evaluation results: a console table, markdown, confusion PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from erv.io.jsonl import atomic_write_text

_ORDER = ("war", "uar", "eea", "epc", "fcr", "fcr_given_correct")
_NAMES = {"war": "WAR", "uar": "UAR", "eea": "EEA", "epc": "EPC", "fcr": "FCR", "fcr_given_correct": "FCR|correct"}


def _pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{100 * value:6.2f}"


def _ci_key(result: dict[str, Any]) -> str | None:
    return next((k for k in result if k.startswith("ci") and isinstance(result[k], dict)), None)


def _fold_table(result: dict[str, Any]) -> list[str]:
    key = _ci_key(result)
    cis = result.get(key, {}) if key else {}
    level = key[2:] if key else "95"
    lines = [
        f"{result['dataset']}  n={result['n']}  unknown answers={result['unknown']}"
        + (f"  judged={result['judged']}  unjudged={result['unjudged']}" if "judged" in result else "")
    ]
    lines.append(f"  {'metric':<12} {'value %':>8}   {level}% interval")
    for name in _ORDER:
        if name not in result:
            continue
        ci = cis.get(name)
        interval = f"[{_pct(ci[0]).strip()}, {_pct(ci[1]).strip()}]" if ci else ""
        lines.append(f"  {_NAMES[name]:<12} {_pct(result[name]):>8}   {interval}")
    lines.append("  per-class recall (support):")
    for label, recall in result["per_class_recall"].items():
        support = result.get("per_class_support", {}).get(label, "")
        lines.append(f"    {label:<16} {_pct(recall)}  ({support})")
    return lines


def confusion_rows(result: dict[str, Any]) -> tuple[list[str], list[str], list[list[int]]]:
    rows = list(result["confusion"].keys())
    columns = list(next(iter(result["confusion"].values())).keys())
    matrix = [[result["confusion"][r][c] for c in columns] for r in rows]
    return rows, columns, matrix


def _confusion_text(result: dict[str, Any]) -> list[str]:
    rows, columns, matrix = confusion_rows(result)
    width = max(7, max(len(c) for c in columns) + 1)
    head = " " * 16 + "".join(f"{c[: width - 1]:>{width}}" for c in columns)
    lines = ["  confusion (rows gold, columns predicted):", "  " + head]
    for r, counts in zip(rows, matrix, strict=True):
        lines.append("  " + f"{r:<16}" + "".join(f"{v:>{width}}" for v in counts))
    return lines


def format_text(result: dict[str, Any]) -> str:
    """The console view: one block per fold, then mean ± std when there are several."""
    if "folds" not in result:
        return "\n".join(_fold_table(result) + _confusion_text(result))
    blocks = []
    for i, fold in enumerate(result["folds"], start=1):
        blocks.append(f"== fold {i}: {fold['predictions']}")
        blocks.extend(_fold_table(fold))
    blocks.append(f"== {len(result['folds'])} folds: mean ± std (sample std)")
    for name in _ORDER:
        if name in result["mean"]:
            mean, std = result["mean"][name], result["std"].get(name)
            blocks.append(f"  {_NAMES[name]:<12} {_pct(mean):>8} ± {_pct(std).strip() if std is not None else 'n/a'}")
    return "\n".join(blocks)


def to_markdown(result: dict[str, Any]) -> str:
    folds = result.get("folds", [result])
    present = [m for m in _ORDER if m in folds[0]]
    lines = [f"# Evaluation: {result['dataset']}", ""]
    lines.append("| predictions | n | unknown | " + " | ".join(_NAMES[m] for m in present) + " |")
    lines.append("|---|---|---|" + "---|" * len(present))
    for fold in folds:
        key = _ci_key(fold)
        cells = []
        for m in present:
            ci = fold.get(key, {}).get(m) if key else None
            cell = _pct(fold[m]).strip()
            if ci:
                cell += f" [{_pct(ci[0]).strip()}, {_pct(ci[1]).strip()}]"
            cells.append(cell)
        lines.append(
            f"| {Path(fold['predictions']).name} | {fold['n']} | {fold['unknown']} | " + " | ".join(cells) + " |"
        )
    if "folds" in result:
        lines.append(
            "| **mean ± std** | | | "
            + " | ".join(
                f"{_pct(result['mean'].get(m)).strip()} ± {_pct(result['std'].get(m)).strip()}" for m in present
            )
            + " |"
        )
    lines += ["", "Values in %, brackets: bootstrap interval. Unknown answers count as wrong."]
    for fold in folds:
        rows, columns, matrix = confusion_rows(fold)
        lines += [
            "",
            f"## Confusion: {Path(fold['predictions']).name}",
            "",
            "| gold \\ predicted | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        lines += [
            f"| {r} | " + " | ".join(str(v) for v in counts) + " |" for r, counts in zip(rows, matrix, strict=True)
        ]
    return "\n".join(lines) + "\n"


def write_markdown(result: dict[str, Any], path: str | Path) -> None:
    atomic_write_text(path, to_markdown(result))


def plot_confusions(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """One row-normalised confusion-matrix PNG per fold (counts annotated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fold in result.get("folds", [result]):
        rows, columns, matrix = confusion_rows(fold)
        counts = np.array(matrix, dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(columns), 1.0 + 0.6 * len(rows)))
        ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        for i in range(len(rows)):
            for j in range(len(columns)):
                ax.text(
                    j,
                    i,
                    f"{int(counts[i, j])}",
                    ha="center",
                    va="center",
                    color="white" if share[i, j] > 0.5 else "black",
                    fontsize=8,
                )
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        stem = Path(fold["predictions"]).stem
        war = fold.get("war")
        ax.set_title(f"{fold['dataset']} {stem}" + (f"  WAR {100 * war:.2f}%" if war is not None else ""))
        fig.tight_layout()
        path = out_dir / f"confusion_{stem}.png"
        tmp = path.with_suffix(".tmp.png")
        fig.savefig(tmp, dpi=120)
        plt.close(fig)
        tmp.replace(path)
        written.append(path)
    return written
