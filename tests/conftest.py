"""Suite-wide set-up: offline hub, one torch thread, and the fixtures the repository carries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Tests never reach the Hugging Face hub: fail fast instead of waiting on the network. Set at
# import time because huggingface_hub reads these when it is first imported.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """tests/fixtures: reference outputs and tiny checkpoints (provenance in its README)."""
    return FIXTURES


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
