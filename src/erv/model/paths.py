"""Where a HumanOmni checkpoint's companion models live (SigLIP, Whisper, BERT).

A released checkpoint's config names its towers by hub id (`google/siglip-base-patch16-224`)
or by a path from its author's machine; the reference code also loads BERT from a
hard-coded absolute path. Here every location is resolved from, in order: an explicit
argument, the checkpoint's config, and the folders the user names; nothing is baked in.

Resolution of one name:
1. an existing path as given (absolute, or relative to the current directory for explicit
   arguments);
2. relative to each search folder, first with the whole name, then with its last component
   (so a path from the author's machine ending in `pre-trained/bert-base-uncased`, or the hub
   id `google/siglip-base-patch16-224`, is found as `DIR/bert-base-uncased` /
   `DIR/siglip-base-patch16-224`). Search folders are the user's
   `components_dir`, the checkpoint's parent folder, then the checkpoint folder;
3. otherwise a name of the form `org/name` or `name` is returned unchanged as a hub id for
   transformers to find in its cache; an absolute path that exists nowhere is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erv.errors import ConfigError

DEFAULT_BERT = "bert-base-uncased"
BERT_CONFIG_KEY = "mm_bert_tower"  # our own config field; the reference has none


@dataclass(frozen=True)
class ComponentPaths:
    vision_tower: str
    audio_tower: str
    bert: str


def _candidates(name: str, search_dirs: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    tail = Path(name).name
    for base in search_dirs:
        for rel in (name.lstrip("/"), tail):
            cand = base / rel
            if cand not in out:
                out.append(cand)
    return out


def resolve_component(
    name: str, *, what: str, search_dirs: Iterable[str | os.PathLike[str]] = (), explicit: bool = False
) -> str:
    """Resolve one component name to an existing local folder or a hub id (see module doc)."""
    if not name or not isinstance(name, str):
        raise ConfigError(f"no location given for the {what}")
    dirs = [Path(d) for d in search_dirs if d]
    given = Path(name).expanduser()
    if (given.is_absolute() or explicit) and given.exists():
        return str(given)
    tried = [str(given)] if given.is_absolute() or explicit else []
    for cand in _candidates(name, dirs):
        if cand.exists():
            return str(cand)
        tried.append(str(cand))
    looks_like_hub_id = not given.is_absolute() and not name.startswith(".") and name.count("/") <= 1
    if looks_like_hub_id:
        return name
    raise ConfigError(
        f"cannot find the {what} {name!r}; looked in: {', '.join(tried)}. "
        f"Pass its folder explicitly or a components_dir that contains it."
    )


def config_get(config: Any, key: str, default: Any = None) -> Any:
    """A field of a checkpoint config given as a config object or as its raw config.json dict."""
    if config is None:
        return default
    if isinstance(config, dict):
        return config.get(key, default)
    return getattr(config, key, default)


def resolve_components(
    checkpoint_dir: str | os.PathLike[str],
    config: Any,
    *,
    vision_tower: str | None = None,
    audio_tower: str | None = None,
    bert: str | None = None,
    components_dir: str | os.PathLike[str] | None = None,
) -> ComponentPaths:
    """Resolve the SigLIP, Whisper and BERT locations for a checkpoint (module doc)."""
    ckpt = Path(checkpoint_dir)
    search = [components_dir, ckpt.parent, ckpt]

    def pick(arg: str | None, key: str, default: str | None, what: str) -> str:
        if arg:
            return resolve_component(str(arg), what=what, search_dirs=search, explicit=True)
        value = config_get(config, key) or default
        if not value:
            raise ConfigError(f"{ckpt}/config.json has no {key!r}; pass the {what} explicitly")
        return resolve_component(str(value), what=what, search_dirs=search)

    return ComponentPaths(
        vision_tower=pick(vision_tower, "mm_vision_tower", None, "vision tower (SigLIP)"),
        audio_tower=pick(audio_tower, "mm_audio_tower", None, "audio tower (Whisper)"),
        bert=pick(bert, BERT_CONFIG_KEY, DEFAULT_BERT, "BERT text encoder"),
    )
