"""Batches behave like their samples alone; labels, loss and gradient checkpointing (tiny random model)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from erv.model import AUDIO_PLACEHOLDER, IGNORE_INDEX, VIDEO_PLACEHOLDER, ModelInputError, build_model, preset_config

PAD = 500  # the tiny preset's <|endoftext|>-like id


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(1234)
    # Untied and sharpened head: the default init gives near-uniform logits and a tied tiny model just
    # repeats its input; this one generates varied tokens with clear margins (smallest top-2 gap ~1e-3,
    # numerical noise between batched and single runs ~1e-5).
    model = build_model(preset_config("humanomni-tiny", tie_word_embeddings=False), dtype=torch.float32)
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)
    return model


def make_samples(model, lengths=(9, 23, 14, 5), seed=7):
    """Prompts of different lengths with a video and an audio placeholder at different places."""
    gen = torch.Generator().manual_seed(seed)
    cfg = model.config
    vision, audio = cfg.vision_config, model.model.audio_tower
    samples = []
    for i, n in enumerate(lengths):
        ids = torch.randint(0, 400, (n,), generator=gen)
        v = int(torch.randint(0, n // 2, (1,), generator=gen))
        ids = torch.cat(
            [
                ids[:v],
                torch.tensor([VIDEO_PLACEHOLDER]),
                ids[v : v + 1],
                torch.tensor([AUDIO_PLACEHOLDER]),
                ids[v + 1 :],
            ]
        )
        bert_len = 4 + 3 * i
        samples.append(
            dict(
                input_ids=ids,
                pixel_values_videos=torch.randn(
                    cfg.num_frames, 3, vision.image_size, vision.image_size, generator=gen
                ),
                audio_input_features=torch.randn(128, audio.expected_frames, generator=gen),
                bert_input_ids=torch.randint(1, 1000, (bert_len,), generator=gen),
            )
        )
    return samples


def alone(sample):
    return dict(
        input_ids=sample["input_ids"][None],
        attention_mask=torch.ones(1, len(sample["input_ids"]), dtype=torch.long),
        pixel_values_videos=sample["pixel_values_videos"][None],
        audio_input_features=sample["audio_input_features"][None],
        bert_input_ids=sample["bert_input_ids"][None],
        bert_attention_mask=torch.ones(1, len(sample["bert_input_ids"]), dtype=torch.long),
    )


def collate(samples, side="left"):
    width = max(len(s["input_ids"]) for s in samples)
    bert_width = max(len(s["bert_input_ids"]) for s in samples)
    ids = torch.full((len(samples), width), PAD)
    mask = torch.zeros(len(samples), width, dtype=torch.long)
    bert = torch.zeros(len(samples), bert_width, dtype=torch.long)
    bert_mask = torch.zeros_like(bert)
    for i, s in enumerate(samples):
        n = len(s["input_ids"])
        cols = slice(width - n, width) if side == "left" else slice(0, n)
        ids[i, cols], mask[i, cols] = s["input_ids"], 1
        b = len(s["bert_input_ids"])
        bert[i, :b], bert_mask[i, :b] = s["bert_input_ids"], 1  # BERT pads on the right, as its tokenizer does
    return dict(
        input_ids=ids,
        attention_mask=mask,
        pixel_values_videos=torch.stack([s["pixel_values_videos"] for s in samples]),
        audio_input_features=torch.stack([s["audio_input_features"] for s in samples]),
        bert_input_ids=bert,
        bert_attention_mask=bert_mask,
    )


def test_expanded_mask_marks_padding_and_multimodal_rows(tiny_model):
    samples = make_samples(tiny_model)
    batch = collate(samples)
    inner = tiny_model.model
    n_video, n_audio = inner.num_video_tokens(), inner.num_audio_tokens()
    with torch.no_grad():
        spliced = inner.embed_multimodal(batch.pop("input_ids"), batch.pop("attention_mask"), **batch)
        mask = spliced.attention_mask
        expanded = [len(s["input_ids"]) - 2 + n_video + n_audio for s in samples]
        assert mask.shape == (4, max(expanded))
        for row, (sample, length) in enumerate(zip(samples, expanded, strict=True)):
            pad = mask.shape[1] - length
            assert mask[row, :pad].eq(0).all() and mask[row, pad:].eq(1).all()
            ids = sample["input_ids"].tolist()
            v, a = ids.index(VIDEO_PLACEHOLDER), ids.index(AUDIO_PLACEHOLDER)
            video_rows = slice(pad + v, pad + v + n_video)
            audio_rows = slice(pad + a - 1 + n_video, pad + a - 1 + n_video + n_audio)
            one = alone(sample)
            video = inner.encode_videos(one["pixel_values_videos"], inner.branch_probs(one["bert_input_ids"]))
            audio = inner.encode_audios(one["audio_input_features"])
            torch.testing.assert_close(spliced.inputs_embeds[row, video_rows], video[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(spliced.inputs_embeds[row, audio_rows], audio[0], atol=1e-5, rtol=1e-5)
            assert mask[row, video_rows].eq(1).all() and mask[row, audio_rows].eq(1).all()
            assert spliced.position_ids[row, pad:].tolist() == list(range(length))


def test_batched_left_padded_forward_equals_alone(tiny_model):
    samples = make_samples(tiny_model)
    with torch.no_grad():
        batched = tiny_model(**collate(samples))
        for row, sample in enumerate(samples):
            single = tiny_model(**alone(sample)).logits[0]
            torch.testing.assert_close(batched.logits[row, -single.shape[0] :], single, atol=1e-4, rtol=1e-4)


def test_batched_greedy_generation_equals_alone(tiny_model):
    samples = make_samples(tiny_model)
    out = tiny_model.generate(
        **collate(samples), max_new_tokens=6, do_sample=False, output_scores=True, return_dict_in_generate=True
    )
    assert out.sequences.shape == (4, 6)
    assert len(set(out.sequences.flatten().tolist())) > 6  # a real test: varied tokens, not one repeated id
    scores = torch.stack(out.scores, dim=1)
    for row, sample in enumerate(samples):
        one = tiny_model.generate(
            **alone(sample), max_new_tokens=6, do_sample=False, output_scores=True, return_dict_in_generate=True
        )
        assert out.sequences[row].tolist() == one.sequences[0].tolist()
        torch.testing.assert_close(scores[row], torch.stack(one.scores, dim=1)[0], atol=1e-4, rtol=1e-4)


def test_rows_with_and_without_placeholders(tiny_model):
    """A text-only row (no placeholder) beside a multimodal one: each computes what it computes alone."""
    samples = make_samples(tiny_model, lengths=(8, 11))
    text_only = samples[1]["input_ids"][samples[1]["input_ids"] >= 0]
    samples[1] = dict(samples[1], input_ids=text_only)
    batch = collate(samples, side="right")
    with torch.no_grad():
        out = tiny_model(**batch)
        video_row = tiny_model(**alone(samples[0])).logits[0]
        text_row = tiny_model(input_ids=text_only[None]).logits[0]
    # row 0 (right-padded by one input token) fills the expanded width; the shorter text row gets the
    # difference as padding on the left
    extra = out.logits.shape[1] - text_only.shape[0]
    assert out.attention_mask[1, :extra].eq(0).all() and out.attention_mask[1, extra:].eq(1).all()
    torch.testing.assert_close(out.logits[1, extra:], text_row, atol=1e-4, rtol=1e-4)
    kept = out.attention_mask[0].bool()
    assert kept.sum() == video_row.shape[0] and kept[: video_row.shape[0]].all()
    torch.testing.assert_close(out.logits[0, kept], video_row, atol=1e-4, rtol=1e-4)


def test_right_padded_training_batch_and_loss(tiny_model):
    samples = make_samples(tiny_model, lengths=(12, 6))
    batch = collate(samples, side="right")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
    labels = labels.masked_fill(labels < 0, IGNORE_INDEX)  # placeholders are never targets
    with torch.no_grad():
        out = tiny_model(**batch, labels=labels)
    inner = tiny_model.model
    n_inserted = inner.num_video_tokens() + inner.num_audio_tokens() - 2
    assert out.labels.shape == out.attention_mask.shape == out.logits.shape[:2]
    for row, sample in enumerate(samples):
        n = len(sample["input_ids"]) + n_inserted
        assert out.attention_mask[row, :n].eq(1).all() and out.attention_mask[row, n:].eq(0).all()
        kept = out.labels[row][out.labels[row] != IGNORE_INDEX]
        text = sample["input_ids"][sample["input_ids"] >= 0]
        assert kept.tolist() == text.tolist()  # every text label kept, in order; inserted rows are -100
    shift_logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1])
    expected = F.cross_entropy(shift_logits, out.labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(out.loss, expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # the right-padded row computes what it computes alone
        single = tiny_model(**alone(samples[1])).logits[0]
    torch.testing.assert_close(out.logits[1, : single.shape[0]], single, atol=1e-4, rtol=1e-4)


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing_(en|dis)able` is deprecated:FutureWarning")
def test_gradient_checkpointing_same_loss_and_grads():
    torch.manual_seed(99)
    model = build_model(preset_config("humanomni-tiny"), dtype=torch.float32)
    model.model.vision_tower.requires_grad_(False)
    samples = make_samples(model, lengths=(10, 7))
    batch = collate(samples, side="right")
    labels = batch["input_ids"].masked_fill((batch["attention_mask"] == 0) | (batch["input_ids"] < 0), IGNORE_INDEX)

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        torch.manual_seed(5)  # same dropout masks in BERT in both runs
        loss = model(**batch, labels=labels).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.train()
    plain_loss, plain = loss_and_grads()
    model.gradient_checkpointing_enable()
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    ckpt_loss, ckpt = loss_and_grads()
    model.gradient_checkpointing_disable()
    torch.testing.assert_close(ckpt_loss, plain_loss)
    assert plain.keys() == ckpt.keys()
    for name in (
        "model.layers.0.self_attn.q_proj.weight",
        "model.mm_projector.s1_video.b1.conv1.conv.weight",
        "model.bert_gate.0.weight",
        "model.bert_model.encoder.layer.0.attention.self.query.weight",
        "model.audio_projector.0.weight",
        "model.embed_tokens.weight",
    ):
        assert name in plain, f"no gradient reached {name}"
    for name, grad in plain.items():
        torch.testing.assert_close(ckpt[name], grad, atol=1e-6, rtol=1e-5, msg=f"gradient of {name}")
    assert not any(n.startswith("model.vision_tower.") for n in plain)  # frozen tower: no graph through it


def test_input_errors_are_clear(tiny_model):
    sample = alone(make_samples(tiny_model, lengths=(6,))[0])
    with pytest.raises(ModelInputError, match="no pixel_values_videos"):
        tiny_model(**{k: v for k, v in sample.items() if k != "pixel_values_videos"})
    with pytest.raises(ModelInputError, match="no audio_input_features"):
        tiny_model(**{k: v for k, v in sample.items() if k != "audio_input_features"})
    with pytest.raises(ModelInputError, match="bert_input_ids"):
        tiny_model(**{k: v for k, v in sample.items() if not k.startswith("bert")})
    doubled = dict(
        sample,
        input_ids=torch.cat([sample["input_ids"], torch.tensor([[VIDEO_PLACEHOLDER]])], 1),
        attention_mask=torch.ones(1, sample["input_ids"].shape[1] + 1, dtype=torch.long),
    )
    with pytest.raises(ModelInputError, match="more than one video placeholder"):
        tiny_model(**doubled)
    with pytest.raises(ModelInputError, match="negative ids"):
        tiny_model(
            **dict(
                sample,
                input_ids=sample["input_ids"].masked_fill(sample["input_ids"] == 3, -5)
                if (sample["input_ids"] == 3).any()
                else torch.cat([sample["input_ids"][:, :-1], torch.tensor([[-5]])], 1),
            )
        )
    with pytest.raises(ModelInputError, match="mel bins, frames"):
        tiny_model(**dict(sample, audio_input_features=sample["audio_input_features"][..., :-3]))
    with pytest.raises(ModelInputError, match="pixel_values_videos must be"):
        tiny_model(**dict(sample, pixel_values_videos=sample["pixel_values_videos"][0]))


def test_audio_only_prompt_needs_no_dummy_video(tiny_model):
    """The reference only splices audio when a video is given; here an audio-only prompt works directly."""
    sample = alone(make_samples(tiny_model, lengths=(8,))[0])
    ids = sample["input_ids"][sample["input_ids"] != VIDEO_PLACEHOLDER][None]
    audio = sample["audio_input_features"][:, None]  # (B, 1, mel, frames) is accepted too
    with torch.no_grad():
        out = tiny_model(input_ids=ids, audio_input_features=audio)
        tokens = tiny_model.model.encode_audios(audio)
    a = ids[0].tolist().index(AUDIO_PLACEHOLDER)
    assert out.logits.shape[1] == ids.shape[1] - 1 + tiny_model.model.num_audio_tokens()
    with torch.no_grad():
        spliced = tiny_model.model.embed_multimodal(ids, audio_input_features=audio)
    torch.testing.assert_close(spliced.inputs_embeds[0, a : a + tokens.shape[1]], tokens[0])
    assert tiny_model.generate(input_ids=ids, audio_input_features=audio, max_new_tokens=2).shape == (1, 2)


def test_text_only_prompts_pass_through(tiny_model):
    ids = torch.randint(0, 400, (2, 7))
    with torch.no_grad():
        out = tiny_model(input_ids=ids, attention_mask=torch.ones_like(ids))
        plain = tiny_model.lm_head(tiny_model.model(input_ids=ids).last_hidden_state)
    torch.testing.assert_close(out.logits, plain)
    new = tiny_model.generate(input_ids=ids, max_new_tokens=3, do_sample=False)
    assert new.shape == (2, 3)
