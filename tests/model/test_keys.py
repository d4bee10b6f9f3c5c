"""Real-size structure: state-dict names/shapes equal the reference's key manifests; token counts."""

from __future__ import annotations

import json

import pytest
import torch

from erv.model import build_model, preset_config
from erv.model.projectors import SlowFastCompressor


def manifest(fixtures_dir, size: str) -> dict:
    return json.loads((fixtures_dir / "humanomni-keys" / f"humanomni-{size}-state-dict.json").read_text())


@pytest.mark.parametrize("size, preset, video_tokens", [("0.5B", "humanomni-0.5b", 392), ("7B", "humanomni-7b", 1568)])
def test_meta_model_matches_key_manifest(fixtures_dir, size, preset, video_tokens):
    data = manifest(fixtures_dir, size)
    model = build_model(preset_config(preset), device="meta")
    ours = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    expected = {row["name"]: tuple(row["shape"]) for row in data["parameters"]}
    assert sorted(set(expected) - set(ours)) == [], "keys of the reference missing here"
    assert sorted(set(ours) - set(expected)) == [], "keys here the reference does not have"
    assert {k: v for k, v in ours.items() if expected[k] != v} == {}
    assert len(ours) == data["counts"]["state_dict_entries"]
    stored = {n: p for n, p in model.named_parameters()}  # tied lm_head appears once
    assert sum(p.numel() for p in stored.values()) == data["counts"]["stored_parameters"]
    assert model.model.num_video_tokens() == video_tokens
    assert model.model.num_audio_tokens() == 500
    assert ("lm_head.weight" not in stored) == data["config"]["llm"]["tie_word_embeddings"]


def test_presets_carry_the_manifest_configs(fixtures_dir):
    for size, preset in (("0.5B", "humanomni-0.5b"), ("7B", "humanomni-7b")):
        cfg, expected = preset_config(preset), manifest(fixtures_dir, size)["config"]
        for key, value in expected["llm"].items():
            actual = cfg.rope_parameters["rope_theta"] if key == "rope_theta" else getattr(cfg, key)
            assert actual == value, (size, key)
        for section, sub in (
            ("vision_tower", cfg.vision_config),
            ("audio_tower", cfg.audio_config),
            ("bert", cfg.bert_config),
        ):
            for key, value in expected[section].items():
                if key not in ("name", "model_type"):
                    assert getattr(sub, key) == value, (size, section, key)
        assert cfg.mm_projector_type == expected["mm_projector_type"]
        assert (
            cfg.mm_hidden_size == expected["mm_hidden_size"] and cfg.audio_hidden_size == expected["audio_hidden_size"]
        )


@pytest.mark.parametrize(
    "preset, frames, tokens", [("humanomni-0.5b", 8, 170), ("humanomni-7b", 8, 784), ("humanomni-7b", 32, 3136)]
)
def test_slow_fast_compressor_token_counts(preset, frames, tokens):
    model = build_model(preset_config(preset, mm_feature_compressor="slow_fast"), device="meta")
    names = {n for n in model.state_dict() if n.startswith("model.feature_compressor.")}
    assert names == {
        f"model.feature_compressor.{p}.{w}"
        for p in ("vlm_query_projector", "vlm_key_projector")
        for w in ("weight", "bias")
    }
    assert model.model.feature_compressor.vlm_query_projector.weight.shape == (256, model.config.mm_hidden_size)
    assert model.model.num_video_tokens(frames) == tokens


def test_slow_fast_compressor_values():
    """Fast = 2x2 average of every frame (floor), then slow = full frames 1, 5, 9 ...; checked by hand."""
    torch.manual_seed(0)
    frames, side, hidden = 9, 5, 3
    tokens = torch.randn(2, frames * side * side, hidden)
    out = SlowFastCompressor(4).forward(tokens, frames)
    grid = tokens.reshape(2, frames, side, side, hidden)
    fast = [
        grid[:, t, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].mean(dim=(1, 2))
        for t in range(frames)
        for r in range(side // 2)
        for c in range(side // 2)
    ]
    slow = [grid[:, t].reshape(2, side * side, hidden) for t in (1, 5)]
    expected = torch.cat([torch.stack(fast, dim=1)] + slow, dim=1)
    torch.testing.assert_close(out, expected)
    assert out.shape[1] == SlowFastCompressor.num_tokens(frames, side) == 9 * 4 + 2 * 25
    assert SlowFastCompressor.slow_frames(1) == [0]
