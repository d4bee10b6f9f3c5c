"""A persistent cache of successful judge replies, so that re-running a job costs nothing.

Keyed by a hash of the *whole request* — model, messages (system and user), temperature,
max_tokens, response format and any extra body fields — because changing any of them can
change the answer. The endpoint's URL and the API key are not part of the key: the same
model behind a proxy answers the same, and the key is a secret that must never be written
to disk. Only successful replies are stored; failures are always retried.

Storage is one SQLite file (standard library): each insert is its own transaction, so a
killed job never leaves a half-written entry, and several processes (e.g. the ranks of a
GRPO run sharing an FG-CE judge) can use the same file. WAL mode keeps readers and the
writer from blocking each other.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from erv.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    reply TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def request_key(request: dict[str, Any]) -> str:
    """Stable identity of a request body (sorted keys, no whitespace differences)."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ReplyCache:
    """Thread-safe get/put of reply texts by request, backed by SQLite."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise ConfigError(
                f"{self.path}: cannot open the judge cache ({exc}); pass another --cache or --no-cache"
            ) from None
        self._lock = threading.Lock()
        self.hits = 0
        self.stores = 0

    def get(self, request: dict[str, Any]) -> str | None:
        key = request_key(request)
        with self._lock:
            row = self._conn.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        self.hits += 1
        return str(row[0])

    def put(self, request: dict[str, Any], reply: str) -> None:
        key = request_key(request)
        payload = json.dumps(request, sort_keys=True, ensure_ascii=False)
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO replies (key, model, request, reply, created) VALUES (?, ?, ?, ?, ?)",
                (key, str(request.get("model", "")), payload, reply, time.time()),
            )
        self.stores += 1

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ReplyCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
