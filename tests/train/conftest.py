"""Shared pieces of the trainer tests: the tiny recipe, synthetic SFT clips, weight snapshots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from erv.io.recipes import recipe_overrides
from tests.helpers.paths import REPO, load_script

TINY_RECIPE = REPO / "configs" / "sft" / "tiny.yaml"


@pytest.fixture(scope="session")
def sft_data(tmp_path_factory) -> Path:
    """Six synthetic clips and their EMER-style SFT records (answers of different lengths)."""
    folder = tmp_path_factory.mktemp("sft-data")
    return load_script(REPO / "scripts" / "make_tiny_sft_data.py").make_tiny_sft_data(folder, 6)


@pytest.fixture(scope="session")
def release(tiny_fixture) -> dict[str, Path]:
    return {
        "checkpoint": tiny_fixture / "checkpoint",
        "bert": tiny_fixture / "bert-tiny",
        "vision": tiny_fixture / "siglip-tiny",
        "audio": tiny_fixture / "whisper-tiny",
    }


@pytest.fixture(scope="session")
def release_without_dropout(tiny_fixture, tmp_path_factory) -> dict[str, Path]:
    """The fixture release with BERT's dropout off, for tests that compare two runs number for number
    (dropout draws differ between a batch of 2 and two batches of 1)."""
    root = tmp_path_factory.mktemp("release-no-dropout")
    for name in ("checkpoint", "bert-tiny", "siglip-tiny", "whisper-tiny"):
        shutil.copytree(tiny_fixture / name, root / name)
    cfg_file = root / "bert-tiny" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg_file.write_text(json.dumps(cfg))
    return {"checkpoint": root / "checkpoint", "bert": root / "bert-tiny"}


def recipe_argv(release: dict[str, Path], data: Path, out: Path, **overrides) -> list[str]:
    """`--config configs/sft/tiny.yaml` plus overrides pointing at the test's files."""
    argv = [
        "--config",
        str(TINY_RECIPE),
        "--model_name_or_path",
        str(release["checkpoint"]),
        "--bert",
        str(release["bert"]),
        "--dataset_name",
        str(data),
        "--video_root",
        str(data.parent),
        "--output_dir",
        str(out),
        "--disable_tqdm",
        "true",
        "--dataloader_num_workers",
        "0",
    ]
    return argv + recipe_overrides(overrides)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path
