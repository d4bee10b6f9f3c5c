"""Where a model named on the command line lives: a local folder, or a hub repository.

transformers takes any string that is not an existing folder for a hub id and, offline or
with a typo, retries the network for most of a minute before saying "couldn't connect".
The docs' own example `outputs/verifier` is such a string when the folder is not there yet.
:func:`resolve_model_location` decides at once:

1. an existing folder is used as is; an existing file is an error;
2. a name that looks like a path (starts with `/`, `./`, `../` or `~`, has more than one
   `/`, a backslash, or a first component that exists here, like `outputs/` or `runs/`) and
   does not exist is an error naming it — no network;
3. a hub id (`org/name` or `name`) found in the local Hugging Face cache is used from there
   (offline first: no network, no retries);
4. otherwise, with `HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE` set, an error; online, one quick
   look-up of the repository (a short timeout, no retries) tells a missing or private
   repository and an unreachable hub apart before the loader starts downloading.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from erv.errors import ConfigError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
HUB_PROBE_TIMEOUT_S = 10.0
_TRUE = ("1", "on", "yes", "true")


def hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def looks_like_path(name: str) -> bool:
    """Whether `name` is meant as a local path rather than a hub id (module doc, rule 2)."""
    if name.startswith(("/", "./", "../", "~", ".\\", "..\\")) or "\\" in name or name in (".", ".."):
        return True
    parts = name.split("/")
    if len(parts) > 2:
        return True
    return len(parts) == 2 and Path(parts[0]).exists()


def cached_snapshot(repo_id: str) -> Path | None:
    """The folder of `repo_id` in the local Hugging Face cache (its config.json's snapshot), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # a malformed id or cache: not cached
        return None
    return Path(found).parent if isinstance(found, str) else None


def _probe_hub(repo_id: str, what: str) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(repo_id, timeout=HUB_PROBE_TIMEOUT_S)
    except GatedRepoError:
        raise ConfigError(
            f"{what} {repo_id!r}: a gated hub repository; accept its terms and log in (`hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise ConfigError(
            f"{what} {repo_id!r} is neither a local folder nor a hub repository (or it is private: log in)"
        ) from None
    except Exception as exc:
        raise ConfigError(
            f"{what} {repo_id!r} is not a local folder, is not in the Hugging Face cache, and the hub cannot be "
            f"reached ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}); pass a "
            f"local folder"
        ) from None


def resolve_model_location(name: str | os.PathLike[str], what: str = "model") -> str:
    """A local folder (as a string) or a hub id the loaders can use right away (module doc)."""
    text = str(name).strip() if name is not None else ""
    if not text:
        raise ConfigError(f"no {what} given")
    local = Path(text).expanduser()
    if local.is_dir():
        return str(local)
    if local.exists():
        raise ConfigError(f"{what} {local} is a file; expected a folder (save_pretrained) or a hub id")
    if looks_like_path(text):
        raise ConfigError(f"{what} folder {local} does not exist")
    if not _HUB_ID.match(text):
        raise ConfigError(f"{what} {text!r} is neither an existing folder nor a hub id (org/name)")
    snapshot = cached_snapshot(text)
    if snapshot is not None:
        return str(snapshot)
    if hub_offline():
        raise ConfigError(
            f"{what} {text!r} is not a local folder and not in the Hugging Face cache, and HF_HUB_OFFLINE is set"
        )
    _probe_hub(text, what)
    return text
