"""The tiny reference fixture (made by running the ERV reference code) is reproduced stage by stage."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from erv.model import HumanOmniQwen2ForCausalLM, load_model
from erv.model.projectors import bilinear_face_pool, fuse_branches

ATOL = 1e-4


@pytest.fixture(scope="module")
def fixture_tensors(tiny_fixture):
    return (
        load_file(str(tiny_fixture / "inputs.safetensors")),
        load_file(str(tiny_fixture / "outputs.safetensors")),
        load_file(str(tiny_fixture / "intermediates.safetensors")),
    )


@pytest.fixture(scope="module")
def reference_model(tiny_fixture) -> HumanOmniQwen2ForCausalLM:
    return load_model(tiny_fixture / "checkpoint", bert=str(tiny_fixture / "bert-tiny"), torch_dtype=torch.float32)


def model_inputs(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return dict(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        pixel_values_videos=inputs["pixel_values_videos"][None],  # (T,C,H,W) -> one video
        audio_input_features=inputs["audio_input_features"],
        bert_input_ids=inputs["bert_input_ids"],
        bert_attention_mask=inputs["bert_attention_mask"],
        bert_token_type_ids=inputs["bert_token_type_ids"],
    )


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual.float() - expected.float()).abs().max().item()
    assert diff <= ATOL, f"{what}: max abs diff {diff:.3g} > {ATOL}"


def test_loader_resolves_fixture_components(reference_model, tiny_fixture):
    config = reference_model.config
    assert config.mm_vision_tower == str(tiny_fixture / "siglip-tiny")  # relative name, found beside the checkpoint
    assert config.mm_audio_tower == str(tiny_fixture / "whisper-tiny")
    assert config.mm_bert_tower == str(tiny_fixture / "bert-tiny")
    assert config.mm_projector_type == "all_in_one_small" and config.mm_feature_compressor is None
    assert reference_model.dtype == torch.float32
    assert not any(p.requires_grad for p in reference_model.model.vision_tower.parameters())
    assert not any(p.requires_grad for p in reference_model.model.audio_tower.parameters())


def test_vision_and_projector_stages(reference_model, fixture_tensors):
    inputs, _, inter = fixture_tensors
    inner = reference_model.model
    with torch.no_grad():
        features = inner.vision_tower(inputs["pixel_values_videos"])
        assert_close(features, inter["vision_tower_features"], "vision_tower_features")
        video, body, face = inner.mm_projector(inter["vision_tower_features"][None])
        assert_close(video, inter["projector_video_out"], "projector_video_out")
        assert_close(body, inter["projector_body_out"], "projector_body_out")
        assert_close(face, inter["projector_face_out"], "projector_face_out")
        pooled = bilinear_face_pool(inter["projector_face_out"], 1, inner.vision_tower.num_patches_per_side)
        assert_close(pooled, inter["face_pooled"].flatten(1, 2), "face_pooled")


def test_gate_and_video_tokens(reference_model, fixture_tensors):
    inputs, _, inter = fixture_tensors
    inner = reference_model.model
    with torch.no_grad():
        bert = inner.bert_model(
            input_ids=inputs["bert_input_ids"],
            attention_mask=inputs["bert_attention_mask"],
            token_type_ids=inputs["bert_token_type_ids"],
        ).last_hidden_state
        assert_close(bert, inter["bert_last_hidden_state"], "bert_last_hidden_state")
        assert_close(inner.bert_gate(bert[:, 0]), inter["branch_logits"], "branch_logits")
        probs = inner.branch_probs(
            inputs["bert_input_ids"], inputs["bert_attention_mask"], inputs["bert_token_type_ids"]
        )
        assert_close(probs, inter["branch_probs"], "branch_probs")
        fused = fuse_branches(
            inter["projector_video_out"],
            inter["projector_body_out"],
            inter["face_pooled"].flatten(1, 2),
            inter["branch_probs"],
        )
        assert_close(fused, inter["video_tokens"], "video_tokens (fusion alone)")
        tokens = inner.encode_videos(inputs["pixel_values_videos"][None], probs)
        assert_close(tokens, inter["video_tokens"], "video_tokens")
        assert inner.num_video_tokens() == tokens.shape[1] == 72


def test_audio_stages(reference_model, fixture_tensors):
    inputs, _, inter = fixture_tensors
    inner = reference_model.model
    with torch.no_grad():
        hidden = inner.audio_tower(inputs["audio_input_features"])
        assert_close(hidden, inter["audio_tower_features"], "audio_tower_features")
        assert_close(inner.audio_projector(inter["audio_pooled"]), inter["audio_tokens"], "audio_tokens (projector)")
        tokens = inner.encode_audios(inputs["audio_input_features"])
        assert_close(tokens, inter["audio_tokens"], "audio_tokens")
        assert inner.num_audio_tokens() == tokens.shape[1] == 16


def test_splice_matches_reference_embeddings(reference_model, fixture_tensors):
    inputs, _, inter = fixture_tensors
    kwargs = model_inputs(inputs)
    with torch.no_grad():
        spliced = reference_model.model.embed_multimodal(
            kwargs.pop("input_ids"), kwargs.pop("attention_mask"), **kwargs
        )
    assert_close(spliced.inputs_embeds, inter["inputs_embeds"], "inputs_embeds")
    assert torch.equal(spliced.attention_mask, inter["expanded_attention_mask"])
    assert spliced.position_ids is None  # no padding: positions 0..L-1, as the reference


def test_logits_match_reference(reference_model, fixture_tensors):
    inputs, outputs, _ = fixture_tensors
    with torch.no_grad():
        out = reference_model(**model_inputs(inputs))
    assert_close(out.logits, outputs["logits"], "logits")
    assert out.attention_mask.shape == (1, 206)


def test_greedy_generation_matches_reference(reference_model, fixture_tensors):
    inputs, outputs, _ = fixture_tensors
    out = reference_model.generate(
        **model_inputs(inputs), max_new_tokens=8, do_sample=False, output_scores=True, return_dict_in_generate=True
    )
    assert out.sequences.tolist() == outputs["generated_ids"].tolist()  # only the new tokens
    assert len(out.scores) == 8
    for step, score in enumerate(out.scores):
        assert_close(score[0], outputs["generation_scores"][step], f"generation score at step {step}")


def test_sampled_generation_runs_with_cache(reference_model, fixture_tensors):
    inputs, _, _ = fixture_tensors
    torch.manual_seed(0)
    ids = reference_model.generate(
        **model_inputs(inputs), max_new_tokens=6, do_sample=True, temperature=0.3, top_p=0.9
    )
    assert ids.shape == (1, 6)
    assert int(ids.min()) >= 0 and int(ids.max()) < reference_model.config.vocab_size
