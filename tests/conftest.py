"""Shared test helpers: where the reference fixtures live, and quiet, deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tests never reach the Hugging Face hub: fail fast instead of waiting on the network. Set at
# import time because huggingface_hub reads these when it is first imported.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_dir() -> Path:
    """The steering repo's shared/ folder: $ERV_SHARED_DIR, ../shared beside the clone, or ./shared."""
    candidates = [os.environ.get("ERV_SHARED_DIR"), REPO.parent / "shared", REPO / "shared"]
    for cand in candidates:
        if cand and (Path(cand) / "fixtures").is_dir():
            return Path(cand)
    raise FileNotFoundError("shared/ fixtures not found; set ERV_SHARED_DIR")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return shared_dir() / "fixtures"


@pytest.fixture(scope="session")
def tiny_fixture(fixtures_dir: Path) -> Path:
    return fixtures_dir / "humanomni-tiny"




@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch thread for the whole suite: deterministic float sums for the fixture
    comparisons, and no OpenMP threads spin-waiting for a core on a busy 2-core machine
    (seen to slow tiny-model tests tenfold). DataLoader workers are separate processes."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
