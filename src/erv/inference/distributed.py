"""The few collective steps of a sharded run, alone or under `torchrun`.

Ranks only exchange small Python objects (the work plan, the counts), so a gloo process group
serves on CPU and GPU machines alike: no NCCL set-up, and a rank that finishes its shard long
before the others waits in a socket instead of tripping NCCL's watchdog. The timeout is long
because shards of unequal difficulty finish at different times.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch

WAIT = datetime.timedelta(hours=24)


@dataclass
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    _initialised_here: bool = False

    @classmethod
    def from_environment(cls) -> Ranks:
        """This process's place in a torchrun launch (one process when not launched by torchrun)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        here = False
        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=WAIT)
            here = True
        return cls(rank, world, local, here)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str | None) -> torch.device:
        """`requested`, or this rank's GPU (`cuda:LOCAL_RANK`) when there is one, else the CPU."""
        if requested:
            device = torch.device(requested)
            if device.type == "cuda" and device.index is None and self.world_size > 1:
                device = torch.device("cuda", self.local_rank)
            return device
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return torch.device("cpu")

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if self.world_size == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (on every rank)."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self._initialised_here:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._initialised_here = False
