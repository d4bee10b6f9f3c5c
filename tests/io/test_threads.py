"""erv.io.threads: torch threads never outnumber the idle cores a command-line run can use."""

from __future__ import annotations

import torch

from erv.io.threads import choose_torch_threads, cli_torch_threads


def test_thread_count_follows_cores_ranks_and_load():
    assert choose_torch_threads(cores=16, busy=0, local_world_size=1) == 16
    assert choose_torch_threads(cores=16, busy=0, local_world_size=4) == 4  # torchrun ranks share the cores
    assert choose_torch_threads(cores=2, busy=1, local_world_size=1) == 1  # a shared, busy 2-core machine
    assert choose_torch_threads(cores=2, busy=5, local_world_size=1) == 1


def test_cli_threads_are_chosen_and_restored_unless_the_user_set_them(monkeypatch):
    previous = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("erv.io.threads.choose_torch_threads", lambda: 1)
    torch.set_num_threads(2)
    try:
        with cli_torch_threads() as chosen:
            assert chosen == 1 == torch.get_num_threads()
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        with cli_torch_threads():
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
