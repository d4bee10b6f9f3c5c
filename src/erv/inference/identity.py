"""What made a predictions file: the header kept beside it (`P.meta.json`) and the run id in each record.

A predictions file alone does not say which checkpoint or which decoding produced it, and a
resumed run must not append to predictions of another model. The header records the
checkpoint and its components (path and a content fingerprint), every setting that changes
the text (the merged generation config, the sampler, the seed, the answer-only prefix, the
missing-audio policy, the dtype) and the `run` id: a hash of the fingerprints and settings,
not of paths, so a checkpoint moved to another folder is still the same producer. Every
record repeats the run id. An existing output whose header or records name another run is
refused (the message says what differs) unless `--overwrite`.

Fingerprints are `erv.io.identity.folder_fingerprint`: the files that define a model folder,
hashed by content (large ones by evenly spaced pieces).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from erv.errors import ConfigError
from erv.io.identity import content_hash, folder_fingerprint
from erv.io.jsonl import PathLike, write_json


def build_header(
    *, checkpoint: PathLike, components: dict[str, str], settings: dict[str, Any], data: PathLike
) -> dict[str, Any]:
    """The header of a run: producer, settings and the run id derived from them (module doc)."""
    model = {
        "checkpoint": {"path": str(Path(checkpoint).resolve()), "fingerprint": folder_fingerprint(checkpoint)},
        **{
            name: {
                "path": str(Path(loc).resolve()) if Path(loc).is_dir() else loc,
                "fingerprint": folder_fingerprint(loc),
            }
            for name, loc in sorted(components.items())
        },
    }
    fingerprints = {name: entry["fingerprint"] for name, entry in model.items()}
    from erv import __version__

    return {
        "run": content_hash({"model": fingerprints, "settings": settings}),
        "model": model,
        "settings": settings,
        "data": str(data),
        "erv_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def header_path(out: PathLike) -> Path:
    out = Path(out)
    return out.with_suffix(".meta.json") if out.suffix == ".jsonl" else out.with_name(out.name + ".meta.json")


def read_header(out: PathLike) -> dict[str, Any] | None:
    path = header_path(out)
    if not path.exists():
        return None
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the run header ({exc}); delete it or use --overwrite") from None
    if not isinstance(header, dict) or not isinstance(header.get("run"), str):
        raise ConfigError(f"{path}: not a run header written by erv infer; delete it or use --overwrite")
    return header


def write_header(out: PathLike, header: dict[str, Any]) -> None:
    write_json(header_path(out), header)


def _differences(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """`key: old in the file, new now` for each differing entry; plain settings before nested ones."""
    keys = sorted(set(before) | set(after), key=lambda k: (isinstance(before.get(k, after.get(k)), dict), k))
    parts = []
    for key in keys:
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            parts.extend(_differences(old, new, f"{prefix}{key}."))
        elif old != new:
            parts.append(f"{prefix}{key}: {old!r} in the file, {new!r} now")
    return parts


def describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two headers, for the refusal message: the model first, then settings."""
    parts = []
    old_model, new_model = old.get("model", {}), new.get("model", {})
    for name in [*new_model, *(n for n in old_model if n not in new_model)]:  # the checkpoint first
        before, after = old_model.get(name, {}), new_model.get(name, {})
        if before.get("fingerprint") != after.get("fingerprint"):
            parts.append(f"{name}: {before.get('path')} in the file, {after.get('path')} now")
    parts += _differences(old.get("settings", {}), new.get("settings", {}))
    if not parts:
        return "the run id"
    return "; ".join(parts[:4]) + (f"; and {len(parts) - 4} more" if len(parts) > 4 else "")


def check_header(out: PathLike, existing: dict[str, Any] | None, current: dict[str, Any]) -> None:
    """Refuse an output written by another run (module doc)."""
    if existing is None or existing["run"] == current["run"]:
        return
    raise ConfigError(
        f"{out} holds predictions of another checkpoint or other generation settings "
        f"({describe_difference(existing, current)}; see {header_path(out)}); use another --out, or --overwrite "
        f"to replace them"
    )
