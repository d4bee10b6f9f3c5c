"""A tiny release, short clips and a record file, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.inference import record, write_clips
from tests.helpers.paths import write_records


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from erv.testing.tiny_checkpoint import write_tiny_release

    return write_tiny_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="session")
def good_records(clip_dir: Path) -> list[dict]:
    return [record(f"{i:05d}", clip_dir / f"clip{i}.mp4", i) for i in range(8)]


@pytest.fixture(scope="session")
def records_file(tmp_path_factory: pytest.TempPathFactory, good_records: list[dict]) -> Path:
    return write_records(tmp_path_factory.mktemp("data") / "test_set.jsonl", good_records)


@pytest.fixture(scope="session")
def loaded(release: Path):
    """(model, processor) of the tiny release, float32 on the CPU."""
    import torch

    from erv.model import load_pretrained

    return load_pretrained(release, torch_dtype=torch.float32)
