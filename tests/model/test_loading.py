"""Loading: component resolution, tower weight sources, save/load round trip, bad checkpoints, compressor."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from erv.errors import ConfigError
from erv.model import build_model, load_model, load_pretrained, preset_config
from erv.model.checkpoint import resolve_attn_implementation


@pytest.fixture(scope="module")
def fixture_io(tiny_fixture):
    return load_file(str(tiny_fixture / "inputs.safetensors")), load_file(str(tiny_fixture / "outputs.safetensors"))


def model_inputs(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return dict(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        pixel_values_videos=inputs["pixel_values_videos"][None],
        audio_input_features=inputs["audio_input_features"],
        bert_input_ids=inputs["bert_input_ids"],
        bert_attention_mask=inputs["bert_attention_mask"],
        bert_token_type_ids=inputs["bert_token_type_ids"],
    )


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**model_inputs(inputs)).logits


def copy_release(tiny_fixture: Path, dest: Path) -> Path:
    """The fixture laid out as a user has it: checkpoint + tower folders beside it (names in config are relative)."""
    for name in ("checkpoint", "siglip-tiny", "whisper-tiny", "bert-tiny"):
        shutil.copytree(tiny_fixture / name, dest / name)
    return dest / "checkpoint"


def edit_config(ckpt: Path, **changes) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    (ckpt / "config.json").write_text(json.dumps(cfg))


def rewrite_weights(ckpt: Path, edit) -> None:
    tensors = load_file(str(ckpt / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(ckpt / "model.safetensors"), metadata={"format": "pt"})


# ------------------------------------------------------------------------------------------ round trips
def test_save_then_load_gives_identical_logits(tiny_fixture, fixture_io, tmp_path):
    inputs, outputs = fixture_io
    model = load_model(tiny_fixture / "checkpoint", bert=str(tiny_fixture / "bert-tiny"), torch_dtype="float32")
    before = logits(model, inputs)
    torch.testing.assert_close(before, outputs["logits"], atol=1e-4, rtol=1e-4)
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["model_type"] == "HumanOmni_qwen2"
    assert saved["mm_bert_tower"] == str(tiny_fixture / "bert-tiny")
    assert saved["mm_vision_tower"] == str(tiny_fixture / "siglip-tiny")
    assert saved["vision_config"]["hidden_size"] == 32 and saved["bert_config"]["hidden_size"] == 32
    assert (tmp_path / "saved" / "generation_config.json").is_file()
    for tower_weights in ("original", "checkpoint"):
        again = load_model(tmp_path / "saved", torch_dtype=torch.float32, tower_weights=tower_weights)
        assert torch.equal(logits(again, inputs), before), tower_weights
    # moved to a machine without the tower folders: the stored copies and configs suffice
    moved = json.loads((tmp_path / "saved" / "config.json").read_text())
    moved.update(
        mm_vision_tower="/elsewhere/siglip-tiny",
        mm_audio_tower="/elsewhere/whisper-tiny",
        mm_bert_tower="/elsewhere/bert-tiny",
    )
    (tmp_path / "saved" / "config.json").write_text(json.dumps(moved))
    with pytest.raises(ConfigError, match="cannot find the vision tower"):
        load_model(tmp_path / "saved", torch_dtype=torch.float32)
    alone = load_model(tmp_path / "saved", torch_dtype=torch.float32, tower_weights="checkpoint")
    assert torch.equal(logits(alone, inputs), before)
    (tmp_path / "saved" / "config.json").write_text(json.dumps(saved))
    # the registered auto class goes through the same loader: no trust_remote_code needed
    auto = AutoModelForCausalLM.from_pretrained(tmp_path / "saved", dtype=torch.float32)
    assert type(auto).__name__ == "HumanOmniQwen2ForCausalLM"
    assert torch.equal(logits(auto, inputs), before)


@pytest.mark.filterwarnings("ignore:Passing `repetition_penalty`:UserWarning")
def test_checkpoint_generation_config_is_merged_like_the_reference(tiny_fixture, fixture_io, tmp_path):
    """generation_config.json settings stay active unless overridden (what mm_infer gets from transformers)."""
    inputs, outputs = fixture_io
    ckpt = copy_release(tiny_fixture, tmp_path)
    gen_cfg = json.loads((ckpt / "generation_config.json").read_text())
    (ckpt / "generation_config.json").write_text(json.dumps(dict(gen_cfg, repetition_penalty=3.0)))
    model = load_model(ckpt, bert=str(tmp_path / "bert-tiny"), torch_dtype=torch.float32)
    assert model.generation_config.repetition_penalty == 3.0
    out = model.generate(
        **model_inputs(inputs),
        max_new_tokens=8,
        do_sample=False,
        output_scores=True,
        output_logits=True,
        return_dict_in_generate=True,
    )
    for step in range(1, 8):  # the penalty applies to the tokens generated so far (the prompt is embeddings)
        raw, seen = out.logits[step][0].clone(), out.sequences[0, :step].unique()
        raw[seen] = torch.where(raw[seen] > 0, raw[seen] / 3.0, raw[seen] * 3.0)
        torch.testing.assert_close(out.scores[step][0], raw)
    plain = model.generate(**model_inputs(inputs), max_new_tokens=8, do_sample=False, repetition_penalty=1.0)
    assert plain.tolist() == outputs["generated_ids"].tolist()  # an explicit argument overrides the file


def test_auto_model_loads_a_released_checkpoint(tiny_fixture, fixture_io):
    inputs, outputs = fixture_io
    model = AutoModelForCausalLM.from_pretrained(
        tiny_fixture / "checkpoint", bert=str(tiny_fixture / "bert-tiny"), dtype=torch.float32, use_cache=False
    )  # as TRL passes them
    torch.testing.assert_close(logits(model, inputs), outputs["logits"], atol=1e-4, rtol=1e-4)
    assert model.config.use_cache is False


def test_defaults_are_bf16_and_sdpa(tiny_fixture, fixture_io):
    inputs, outputs = fixture_io
    model = load_model(tiny_fixture / "checkpoint", bert=str(tiny_fixture / "bert-tiny"))
    assert model.dtype == torch.bfloat16
    assert model.config._attn_implementation == "sdpa"
    inner = model.model
    for sub in (inner.vision_tower.vision_tower.vision_model, inner.audio_tower.audio_tower, inner.bert_model):
        assert sub.config._attn_implementation == "sdpa"
        assert next(sub.parameters()).dtype == torch.bfloat16
    out = logits(model, inputs).float()
    assert out.shape == outputs["logits"].shape
    assert (out - outputs["logits"]).abs().max() < 0.5  # bf16 rounding only; the logits reach 19


def test_tower_weights_original_ignores_checkpoint_copies(tiny_fixture, fixture_io, tmp_path):
    inputs, outputs = fixture_io
    ckpt = copy_release(tiny_fixture, tmp_path)

    def perturb_towers(tensors):
        for name in tensors:
            if name.startswith(("model.vision_tower.", "model.audio_tower.audio_tower.encoder.")):
                tensors[name] = tensors[name] + 0.05

    rewrite_weights(ckpt, perturb_towers)
    reference = load_model(ckpt, bert=str(tmp_path / "bert-tiny"), torch_dtype=torch.float32)  # default: original
    torch.testing.assert_close(logits(reference, inputs), outputs["logits"], atol=1e-4, rtol=1e-4)
    copies = load_model(ckpt, bert=str(tmp_path / "bert-tiny"), torch_dtype=torch.float32, tower_weights="checkpoint")
    assert (logits(copies, inputs) - outputs["logits"]).abs().max() > 1e-2
    stored = load_file(str(ckpt / "model.safetensors"))
    name = "model.vision_tower.vision_tower.vision_model.embeddings.patch_embedding.weight"
    assert torch.equal(copies.state_dict()[name], stored[name])


def test_full_siglip_folder_as_vision_tower(tiny_fixture, fixture_io, tmp_path):
    """google/siglip-* folders hold the whole SigLIP (text model too): its vision part is what is used."""
    from transformers import SiglipConfig, SiglipModel, SiglipVisionModel

    inputs, outputs = fixture_io
    vision = SiglipVisionModel.from_pretrained(tiny_fixture / "siglip-tiny")
    full = SiglipModel(
        SiglipConfig(
            vision_config=vision.config.to_dict(),
            text_config=dict(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=4,
                vocab_size=100,
                bos_token_id=1,
                eos_token_id=2,
                pad_token_id=0,
            ),
        )
    )
    full.vision_model.load_state_dict(vision.state_dict())
    full.save_pretrained(tmp_path / "siglip-full")
    model = load_model(
        tiny_fixture / "checkpoint",
        vision_tower=str(tmp_path / "siglip-full"),
        bert=str(tiny_fixture / "bert-tiny"),
        torch_dtype=torch.float32,
    )
    torch.testing.assert_close(logits(model, inputs), outputs["logits"], atol=1e-4, rtol=1e-4)


def test_missing_bert_weights_fall_back_to_bert_folder(tiny_fixture, fixture_io, tmp_path, caplog):
    inputs, outputs = fixture_io
    ckpt = copy_release(tiny_fixture, tmp_path)
    rewrite_weights(ckpt, lambda t: [t.pop(k) for k in [k for k in t if k.startswith("model.bert_model.")]])
    with caplog.at_level(logging.WARNING, logger="erv.model.checkpoint"):
        model = load_model(ckpt, bert=str(tmp_path / "bert-tiny"), torch_dtype=torch.float32)
    assert "no model.bert_model" in caplog.text and "bert-tiny" in caplog.text
    torch.testing.assert_close(logits(model, inputs), outputs["logits"], atol=1e-4, rtol=1e-4)


def test_components_dir_and_explicit_towers(tiny_fixture, tmp_path):
    parts = tmp_path / "parts"
    for name in ("siglip-tiny", "whisper-tiny", "bert-tiny"):
        shutil.copytree(tiny_fixture / name, parts / name)
    ckpt = tmp_path / "elsewhere" / "ckpt"
    shutil.copytree(tiny_fixture / "checkpoint", ckpt)
    edit_config(
        ckpt,
        mm_vision_tower="/mnt/lab/pre-trained/siglip-tiny",
        mm_audio_tower="openai/whisper-tiny",
        mm_bert_tower="/mnt/ssd_hs/Exp/R1-Omni/pre-trained/bert-tiny",
    )
    model = load_model(ckpt, components_dir=parts, torch_dtype=torch.float32)
    assert model.config.mm_vision_tower == str(parts / "siglip-tiny")
    assert model.config.mm_audio_tower == str(parts / "whisper-tiny")
    assert model.config.mm_bert_tower == str(parts / "bert-tiny")
    model = load_model(
        ckpt,
        vision_tower=str(tiny_fixture / "siglip-tiny"),
        audio_tower=str(parts / "whisper-tiny"),
        bert=str(parts / "bert-tiny"),
        torch_dtype=torch.float32,
    )
    assert model.config.mm_vision_tower == str(tiny_fixture / "siglip-tiny")


def test_load_pretrained_calls_the_processor_contract(tiny_fixture, monkeypatch):
    calls = []

    class FakeProcessor:
        @classmethod
        def from_pretrained(cls, path, **kwargs):
            calls.append((path, kwargs))
            return cls()

    import erv.model.loading

    monkeypatch.setattr(erv.model.loading, "HumanOmniProcessor", FakeProcessor)
    model, processor = load_pretrained(
        tiny_fixture / "checkpoint", bert=str(tiny_fixture / "bert-tiny"), torch_dtype=torch.float32
    )
    assert isinstance(processor, FakeProcessor)
    [(path, kwargs)] = calls
    assert path == str(tiny_fixture / "checkpoint")
    assert kwargs == dict(
        vision_tower=str(tiny_fixture / "siglip-tiny"),
        audio_tower=str(tiny_fixture / "whisper-tiny"),
        bert=str(tiny_fixture / "bert-tiny"),
        config=model.config,
    )


# ------------------------------------------------------------------------------------------ bad input
def test_bad_checkpoint_folders(tiny_fixture, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_model(tmp_path / "nope")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file"):
        load_model(tmp_path / "file.bin")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        load_model(tmp_path / "empty")
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_fixture / "checkpoint", ckpt)
    edit_config(ckpt, model_type="qwen2")
    with pytest.raises(ConfigError, match="model_type 'qwen2'"):
        load_model(ckpt)
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be read as JSON"):
        load_model(ckpt)
    with pytest.raises(ConfigError, match="not in the Hugging Face cache, and HF_HUB_OFFLINE is set"):
        load_model("nobody-here/HumanOmni-none")  # hub id: tests run offline


def test_weight_problems_name_the_keys(tiny_fixture, tmp_path):
    bert = str(tiny_fixture / "bert-tiny")
    ckpt = copy_release(tiny_fixture, tmp_path)
    (ckpt / "model.safetensors").rename(tmp_path / "weights.safetensors")
    with pytest.raises(ConfigError, match="has no weights"):
        load_model(ckpt, bert=bert)
    (tmp_path / "weights.safetensors").rename(ckpt / "model.safetensors")

    rewrite_weights(ckpt, lambda t: t.update({"model.vision_resampler.weight": torch.zeros(2)}))
    with pytest.raises(ConfigError, match="model.vision_resampler.weight"):
        load_model(ckpt, bert=bert, torch_dtype=torch.float32)
    rewrite_weights(
        ckpt, lambda t: [t.pop("model.vision_resampler.weight"), t.pop("model.mm_projector.readout_video.2.bias")]
    )
    with pytest.raises(ConfigError, match=r"lacks weights.*model\.mm_projector\.readout_video\.2\.bias"):
        load_model(ckpt, bert=bert, torch_dtype=torch.float32)
    shutil.copy(tiny_fixture / "checkpoint" / "model.safetensors", ckpt / "model.safetensors")
    rewrite_weights(ckpt, lambda t: t.pop("model.vision_tower.vision_tower.vision_model.post_layernorm.weight"))
    load_model(ckpt, bert=bert, torch_dtype=torch.float32)  # original towers: the copy is not needed
    with pytest.raises(ConfigError, match="post_layernorm.weight.*tower_weights='original'"):
        load_model(ckpt, bert=bert, torch_dtype=torch.float32, tower_weights="checkpoint")
    shutil.copy(tiny_fixture / "checkpoint" / "model.safetensors", ckpt / "model.safetensors")
    edit_config(ckpt, intermediate_size=96)
    with pytest.raises(ConfigError, match=r"wrong shape.*mlp\.(down|gate|up)_proj\.weight"):
        load_model(ckpt, bert=bert, torch_dtype=torch.float32)


def test_bad_components_and_options(tiny_fixture, tmp_path):
    ckpt = tiny_fixture / "checkpoint"
    bert = str(tiny_fixture / "bert-tiny")
    with pytest.raises(ConfigError, match="cannot find the vision tower"):
        load_model(ckpt, bert=bert, vision_tower="/no/such/siglip")
    with pytest.raises(ConfigError, match="BERT text encoder config"):
        load_model(ckpt)  # default bert-base-uncased is not available offline
    empty = tmp_path / "whisper-empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="audio tower"):
        load_model(ckpt, bert=bert, audio_tower=str(empty))
    other = tmp_path / "whisper-other"  # a Whisper of another width than the one the checkpoint was trained with
    from transformers import WhisperConfig, WhisperForAudioClassification

    WhisperForAudioClassification(
        WhisperConfig(
            d_model=48,
            encoder_layers=1,
            encoder_attention_heads=4,
            encoder_ffn_dim=64,
            num_mel_bins=128,
            max_source_positions=50,
            classifier_proj_size=16,
        )
    ).save_pretrained(other)
    with pytest.raises(ConfigError, match=f"no place for.*{other}.*audio_tower"):
        load_model(ckpt, bert=bert, audio_tower=str(other))
    with pytest.raises(ConfigError, match="tower_weights"):
        load_model(ckpt, bert=bert, tower_weights="copies")
    with pytest.raises(ConfigError, match="torch_dtype"):
        load_model(ckpt, bert=bert, torch_dtype="int8")
    with pytest.raises(ConfigError, match="attn_implementation"):
        load_model(ckpt, bert=bert, attn_implementation="magic")
    from transformers.utils import is_flash_attn_2_available

    if not is_flash_attn_2_available():
        with pytest.raises(ConfigError, match="flash-attn"):
            resolve_attn_implementation("flash_attention_2")
        assert resolve_attn_implementation("auto") == "sdpa"


# ------------------------------------------------------------------------------------------ compressor
def test_upstream_checkpoint_with_feature_compressor(tmp_path):
    """A released-style checkpoint (towers as folders, no compressor field) with feature_compressor keys."""
    torch.manual_seed(3)
    model = build_model(preset_config("humanomni-tiny", mm_feature_compressor="slow_fast"), dtype=torch.float32)
    ckpt = tmp_path / "HumanOmni-tiny"
    model.save_pretrained(ckpt)
    inner = model.model
    inner.vision_tower.vision_tower.vision_model.save_pretrained(tmp_path / "siglip-tiny")
    inner.audio_tower.audio_tower.save_pretrained(tmp_path / "whisper-tiny")
    inner.bert_model.save_pretrained(tmp_path / "bert-tiny")
    edit_config(
        ckpt, vision_config=None, audio_config=None, bert_config=None, mm_feature_compressor=None, mm_hidden_size=None
    )
    assert "model.feature_compressor.vlm_query_projector.weight" in load_file(str(ckpt / "model.safetensors"))

    loaded = load_model(ckpt, torch_dtype=torch.float32)
    assert loaded.config.mm_feature_compressor == "slow_fast"
    assert loaded.model.feature_compressor is not None
    frames = loaded.config.num_frames
    assert loaded.model.num_video_tokens() == frames * 1 + 1 * 4  # 2x2 grid: pooled 1 per frame + full frame 1

    gen = torch.Generator().manual_seed(0)
    ids = torch.tensor([[5, 6, -201, 7, -202, 8, 9]])
    batch = dict(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        pixel_values_videos=torch.randn(1, frames, 3, 32, 32, generator=gen),
        audio_input_features=torch.randn(1, 128, 100, generator=gen),
        bert_input_ids=torch.tensor([[1, 20, 30, 2]]),
    )
    with torch.no_grad():
        out = loaded(**batch)
        expected = model(**batch)
    assert out.logits.shape[1] == 7 - 2 + 8 + 16
    torch.testing.assert_close(out.logits, expected.logits)
