"""How many CPU threads torch should use in a command-line run.

torch starts one OpenMP thread per core. When other processes already keep cores busy (a
shared node, the ranks of a torchrun job, DataLoader workers) those threads spin-wait for a
core: a tiny verifier's training was seen to take 16 s with the default threads and 0.13 s
with one on a busy 2-core machine. So the commands pick the count themselves: the cores this
process may use, shared among the local ranks, and no more than the cores that are idle now
(counted from the kernel's run queue). `OMP_NUM_THREADS`, when set, is the user's choice and
is left alone.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _runnable_others(samples: int = 3, pause: float = 0.01) -> int | None:
    """Processes other than this one that are running or ready to run (Linux), median of a few looks."""
    seen = []
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as handle:
                running = int(handle.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        seen.append(max(0, running - 1))  # the reader itself is running
        if i + 1 < samples:
            time.sleep(pause)
    return sorted(seen)[len(seen) // 2]


def choose_torch_threads(
    *, cores: int | None = None, busy: int | None = None, local_world_size: int | None = None
) -> int:
    """The thread count for this process (module doc); arguments override what is measured."""
    cores = _usable_cores() if cores is None else max(1, int(cores))
    if local_world_size is None:
        try:
            local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        except ValueError:
            local_world_size = 1
    share = max(1, cores // max(1, local_world_size))
    busy = _runnable_others() if busy is None else max(0, int(busy))
    idle = cores - busy if busy is not None else cores
    return max(1, min(share, idle))


@contextlib.contextmanager
def cli_torch_threads() -> Iterator[int]:
    """Run the body with :func:`choose_torch_threads` threads (unless OMP_NUM_THREADS is set), then restore."""
    import torch

    previous = torch.get_num_threads()
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        yield previous
        return
    chosen = choose_torch_threads()
    torch.set_num_threads(chosen)
    try:
        yield chosen
    finally:
        torch.set_num_threads(previous)
