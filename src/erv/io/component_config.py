"""Reading a component's JSON config from a local folder, or from the hub cache by id.

Towers, processors and checkpoints are named either by a local folder or by a hub id. A
local folder must hold the file (a folder without it is an error, not a reason to try the
hub); anything else is handed to the transformers loader that knows the hub cache layout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from erv.errors import ConfigError


def read_json_config(
    location: str | os.PathLike[str], filename: str, what: str, hub_loader: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    """`location/filename` parsed as JSON, else `hub_loader(location)` for a hub id."""
    local = Path(location) / filename
    if local.is_file():
        try:
            return json.loads(local.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {local}: {exc}") from exc
    if Path(location).is_dir():
        raise ConfigError(f"the {what} folder {location} has no {filename}")
    try:
        return hub_loader(str(location))
    except Exception as exc:
        raise ConfigError(f"cannot load {filename} of the {what} {str(location)!r}: {exc}") from exc
