"""erv.io.locations: a model name that cannot be a usable model fails at once, with no network retries."""

from __future__ import annotations

import socket
import time

import pytest

from erv.errors import ConfigError
from erv.io.locations import looks_like_path, resolve_model_location


def test_local_folders_files_and_path_like_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "model").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"")
    assert resolve_model_location("model") == "model"
    with pytest.raises(ConfigError, match="is a file"):
        resolve_model_location("weights.bin")
    # `outputs/verifier-paper` names a folder of the existing `outputs/`: not a hub id
    for name in ("outputs/verifier-paper", "./verifier", "../x/y", "/abs/missing", "a/b/c", "~/nope-erv"):
        assert looks_like_path(name), name
        with pytest.raises(ConfigError, match="does not exist"):
            resolve_model_location(name, "verifier")
    assert not looks_like_path("SamLowe/roberta-base-go_emotions")


def test_hub_ids_offline_and_unreachable_fail_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="not in the Hugging Face cache, and HF_HUB_OFFLINE is set"):
        resolve_model_location("someone/not-cached", "verifier")
    # Online but the hub cannot be reached: one look-up, no minute of retries.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(ConfigError, match="the hub cannot be reached"):
        resolve_model_location("someone/not-cached", "verifier")
    assert time.monotonic() - start < 5
