"""The one resumable batch-job runner: judge, verifier augmentation and inference are built on it.

A job turns work items into output records, one JSONL line each, and must survive being
killed at any moment without losing or duplicating a record. :class:`ResumableJob` gives
every job the same life cycle:

1. lock the output (a second job on the same file stops with a clear message);
2. read what an earlier run left (the job's own `load` validates it and refuses records of
   another producer or input), compact it to one record per unit and rewrite it atomically,
   which also drops a torn last line;
3. skip the units already done (:meth:`ResumableJob.pending`) — done *and computed from the
   current input*: given a fingerprint per item, a record whose stored input hash differs
   (:mod:`erv.io.identity`) is redone or refused — and do the rest, appending each
   record as one whole fsynced line as soon as it exists: from synchronous code
   (:meth:`ResumableJob.write`, used by inference) or from a pool of async workers with bounded
   concurrency and a batch writer that keeps disk writes off the event loop
   (:meth:`ResumableJob.run`, used by the LLM jobs);
4. at the end, even after an error, read the file back, compact it and rewrite it atomically,
   so it holds exactly one record per unit in the job's order.

Counting is the job's own (its summary dataclass); the runner counts what it skipped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sys
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from erv.errors import ConfigError
from erv.io.identity import INPUT_HASH_KEY, check_on_changed, stale_message, succeeded
from erv.io.jsonl import JsonlAppender, PathLike, exclusive_output, iter_json_records, write_jsonl

T = TypeVar("T")
Record = dict[str, Any]


def run_sync(make_coroutine: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, also inside a running event loop.

    Jupyter, TRL's reward thread and async web apps call our sync entry points from a running
    loop, where `asyncio.run` refuses to start; then the coroutine runs on its own loop in a
    helper thread. `make_coroutine` is called in the thread that runs it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="erv-async") as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


def progress_bar(total: int, desc: str, unit: str, progress: bool | None = None) -> Any:
    """A tqdm bar on stderr; `progress=None` shows it only on a terminal."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        dynamic_ncols=True,
        file=sys.stderr,
        disable=None if progress is None else not progress,
    )


class BatchWriter:
    """Appends records in batches from a worker thread, so a slow disk never stalls requests."""

    def __init__(self, appender: JsonlAppender) -> None:
        self._appender = appender
        self._pending: list[Record] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._run())

    def put(self, record: Record) -> None:
        self._pending.append(record)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                await asyncio.to_thread(self._appender.append_many, batch)
            if self._closing and not self._pending:
                return

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        await self._task


def resumed_records(out: PathLike) -> Iterator[tuple[str, Record]]:
    """`(file:line, record)` of what an earlier run left in `out` (nothing when there is no file);
    a torn last line, left by a crash, is dropped."""
    if Path(out).exists():
        yield from iter_json_records(out, tolerate_torn_tail=True)


class ResumableJob:
    """Lock → resume → append → compact, for one output file (module doc).

    `load()` returns the records now in the file, validated, one per unit (a job whose units
    can be retried keeps the first success, else the last failure); `arrange(records)` puts
    them in output order. `done(record)` says whether a unit needs no more work (default: no
    `error`). `key(record)` names the unit a record belongs to (default: its `id`).
    `on_changed` ("redo" | "refuse") decides what :meth:`pending` does with a record whose
    input hash differs from the item's fingerprint; `changed_what` names that input in the
    refusal ("explanation", "text").
    """

    def __init__(
        self,
        out: PathLike,
        command: str,
        *,
        load: Callable[[], Iterable[Record]],
        arrange: Callable[[Iterable[Record]], list[Record]],
        done: Callable[[Record], bool] = succeeded,
        key: Callable[[Record], Hashable] = lambda record: record["id"],
        on_changed: str = "redo",
        changed_what: str = "input",
    ) -> None:
        self.out = Path(out)
        self.command = command
        self._load, self._arrange, self._done, self._key = load, arrange, done, key
        self.on_changed = check_on_changed(on_changed)
        self._changed_what = changed_what
        self._lock: contextlib.ExitStack | None = None
        self._appender: JsonlAppender | None = None
        self.existing: dict[Hashable, Record] = {}
        self.final: list[Record] = []
        self.skipped = 0
        self.changed = 0
        """Units whose record was computed from another input: redone (counted in no other field)."""

    # ---------------------------------------------------------------- life cycle
    def __enter__(self) -> ResumableJob:
        stack = contextlib.ExitStack()
        stack.enter_context(exclusive_output(self.out, self.command))
        try:
            records = list(self._load())
            if records or self.out.exists():
                write_jsonl(self.out, self._arrange(records))  # drops retries' leftovers and a torn last line
        except BaseException:
            stack.close()
            raise
        self.existing = {self._key(r): r for r in records}
        self._lock = stack
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._appender is not None:
                self._appender.close()
                self._appender = None
            self.final = self._arrange(self._load())
            write_jsonl(self.out, self.final)
        finally:
            assert self._lock is not None
            self._lock.close()

    @property
    def appender(self) -> JsonlAppender:
        if self._appender is None:
            self._appender = JsonlAppender(self.out)
        return self._appender

    # ---------------------------------------------------------------- work
    def is_done(self, unit: Hashable) -> bool:
        record = self.existing.get(unit)
        return record is not None and self._done(record)

    def pending(
        self,
        items: Iterable[T],
        unit: Callable[[T], Hashable],
        fingerprint: Callable[[T], str] | None = None,
    ) -> list[T]:
        """The items whose unit is not done yet; the others are counted in `skipped`.

        With `fingerprint(item)` (the hash of what the unit is computed from), a finished
        record whose stored hash differs is stale: its unit is redone (counted in `changed`)
        or, with ``on_changed="refuse"``, the job stops here, before any work. (An unfinished
        record is retried anyway, from the current input.)
        """
        todo = []
        stale: list[tuple[Hashable, Record]] = []
        for item in items:
            key = unit(item)
            record = self.existing.get(key)
            if (
                record is not None
                and fingerprint is not None
                and self._done(record)
                and record.get(INPUT_HASH_KEY) != fingerprint(item)
            ):
                stale.append((key, record))
                todo.append(item)
            elif self.is_done(key):
                self.skipped += 1
            else:
                todo.append(item)
        if stale and self.on_changed == "refuse":
            key, record = stale[0]
            where = f"{self.out} ({len(stale)} stale record{'s' if len(stale) > 1 else ''}, the first)"
            raise ConfigError(stale_message(where, record.get("id", key), self._changed_what))
        self.changed += len(stale)
        return todo

    def write(self, records: Sequence[Record]) -> None:
        """Append finished records now (one fsynced write), from synchronous code."""
        self.appender.append_many(records)

    async def run(
        self, items: Sequence[T], handle: Callable[[T, Callable[[Record], None]], Awaitable[None]], *, concurrency: int
    ) -> None:
        """Process `items` with at most `concurrency` in flight; `handle(item, put)` calls
        `put(record)` for each record it produces (appended in batches off the event loop)."""
        writer = BatchWriter(self.appender)
        iterator = iter(items)  # one shared iterator: each item goes to exactly one worker

        async def worker() -> None:
            for item in iterator:
                await handle(item, writer.put)

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(int(concurrency), max(1, len(items))))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # One worker's error (an endpoint that refuses every request) stops the others:
            # nothing more is sent, and what finished is still written below.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            await writer.close()
