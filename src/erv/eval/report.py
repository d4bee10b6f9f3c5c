"""Human-readable views of evaluation results: a console table, markdown, confusion PNGs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from erv.io.jsonl import atomic_write_text

_ORDER = ("war", "uar", "eea", "epc", "fcr", "fcr_given_correct")
_NAMES = {"war": "WAR", "uar": "UAR", "eea": "EEA", "epc": "EPC", "fcr": "FCR", "fcr_given_correct": "FCR|correct"}


def _md(text: str) -> str:
    """A Markdown table cell: a `|` inside it would split the cell."""
    return str(text).replace("|", "\\|")


def fold_names(paths: Sequence[str], *, suffix: bool = True) -> list[str]:
    """Short names that tell prediction files apart (report rows; plot files with `suffix=False`).

    The file name when the names differ; else the shortest tail of the paths that differs
    (`fold1/predictions.jsonl`, `fold2/predictions.jsonl`); a path given twice gets `#2`, ...
    """
    parts = [(Path(p) if suffix else Path(p).with_suffix("")).parts or (str(p),) for p in paths]
    longest = max((len(x) for x in parts), default=1)
    for depth in range(1, longest + 1):
        names = ["/".join(x[-depth:]) for x in parts]
        if len(set(names)) == len(names):
            return names
    names = ["/".join(x) for x in parts]
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def _has_intervals(result: dict[str, Any]) -> bool:
    folds = result.get("folds", [result])
    return any((fold.get(_ci_key(fold) or "") or {}) for fold in folds)


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
    lines.append(f"  {'metric':<12} {'value %':>8}   " + (f"{level}% interval" if cis else "(no bootstrap)"))
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
    total = len(result["folds"])
    blocks.append(f"== {total} folds: mean ± std (sample std)")
    for name in _ORDER:
        if name in result["mean"]:
            mean, std = result["mean"][name], result["std"].get(name)
            line = f"  {_NAMES[name]:<12} {_pct(mean):>8} ± {_pct(std).strip() if std is not None else 'n/a'}"
            blocks.append(line + _coverage(result, name, total))
    return "\n".join(blocks)


def _coverage(result: dict[str, Any], name: str, total: int) -> str:
    covered = result.get("folds_in_mean", {}).get(name, total)
    if covered == total:
        return ""
    return f"  (over {covered} of {total} folds; the others have no value)"


def to_markdown(result: dict[str, Any]) -> str:
    folds = result.get("folds", [result])
    names = fold_names([fold["predictions"] for fold in folds])
    present = [m for m in _ORDER if m in folds[0]]
    lines = [f"# Evaluation: {result['dataset']}", ""]
    lines.append("| predictions | n | unknown | " + " | ".join(_md(_NAMES[m]) for m in present) + " |")
    lines.append("|---|---|---|" + "---|" * len(present))
    for fold, name in zip(folds, names, strict=True):
        key = _ci_key(fold)
        cells = []
        for m in present:
            ci = fold.get(key, {}).get(m) if key else None
            cell = _pct(fold[m]).strip()
            if ci:
                cell += f" [{_pct(ci[0]).strip()}, {_pct(ci[1]).strip()}]"
            cells.append(cell)
        lines.append(f"| {_md(name)} | {fold['n']} | {fold['unknown']} | " + " | ".join(cells) + " |")
    notes = []
    if "folds" in result:
        total = len(folds)
        cells = []
        for m in present:
            cell = f"{_pct(result['mean'].get(m)).strip()} ± {_pct(result['std'].get(m)).strip()}"
            covered = result.get("folds_in_mean", {}).get(m, total)
            if covered != total:
                cell += f" ({covered} of {total} folds)"
                notes.append(f"{_NAMES[m]}: mean over the {covered} of {total} folds that have a value.")
            cells.append(cell)
        lines.append("| **mean ± std** | | | " + " | ".join(cells) + " |")
    if _has_intervals(result):
        level = (_ci_key(folds[0]) or "ci95")[2:]
        legend = f"Values in %, brackets: {level}% bootstrap interval."
    else:
        legend = "Values in %, no bootstrap intervals (--bootstrap 0)."
    lines += ["", " ".join([legend, "Unknown answers count as wrong.", *notes])]
    for fold, name in zip(folds, names, strict=True):
        rows, columns, matrix = confusion_rows(fold)
        lines += [
            "",
            f"## Confusion: {name}",
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


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (files only: no display is needed or opened)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path, *, dpi: int) -> Path:
    """Write `fig` to `path` atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=dpi)
    tmp.replace(path)
    return path


def plot_confusions(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """One row-normalised confusion-matrix PNG per fold (counts annotated)."""
    import numpy as np

    plt = pyplot()

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    folds = result.get("folds", [result])
    stems = fold_names([fold["predictions"] for fold in folds], suffix=False)
    for fold, name in zip(folds, stems, strict=True):
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
        war = fold.get("war")
        ax.set_title(f"{fold['dataset']} {name}" + (f"  WAR {100 * war:.2f}%" if war is not None else ""))
        fig.tight_layout()
        path = save_png(fig, out_dir / f"confusion_{name.replace('/', '_').replace('#', '_')}.png", dpi=120)
        plt.close(fig)
        written.append(path)
    return written
