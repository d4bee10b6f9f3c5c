"""HumanOmniProcessor against the reference fixture, prompt styles, batching and decoding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from erv.errors import ConfigError
from erv.media import uniform_frame_indices
from erv.model.constants import AUDIO_PLACEHOLDER, IGNORE_INDEX, VIDEO_PLACEHOLDER
from erv.model.processor import HumanOmniProcessor, sft_user_turn, strip_modal_tags
from tests.helpers.media import get_clip


@pytest.fixture(scope="module")
def fixture_data(tiny_fixture):
    from safetensors.torch import load_file

    return {
        "manifest": json.loads((tiny_fixture / "manifest.json").read_text()),
        "inputs": load_file(str(tiny_fixture / "inputs.safetensors")),
    }


@pytest.fixture(scope="module")
def processor(tiny_fixture) -> HumanOmniProcessor:
    return HumanOmniProcessor.from_pretrained(
        tiny_fixture / "checkpoint",
        vision_tower=str(tiny_fixture / "siglip-tiny"),
        audio_tower=str(tiny_fixture / "whisper-tiny"),
        bert=str(tiny_fixture / "bert-tiny"),
    )


# ------------------------------------------------------------------ the reference fixture


def test_fixture_prompt_and_bert_ids_exact(processor, fixture_data):
    man, inp = fixture_data["manifest"], fixture_data["inputs"]
    assert processor.prompt_text(man["instruct"]) == man["prompt_text"]
    enc = processor.encode_prompt(man["instruct"])
    assert enc.input_ids == inp["input_ids"][0].tolist()
    assert enc.input_ids.index(VIDEO_PLACEHOLDER) == man["video_placeholder_index_in_input_ids"]
    assert enc.input_ids.index(AUDIO_PLACEHOLDER) == man["audio_placeholder_index_in_input_ids"]
    assert enc.question == man["bert_question"]
    bert = processor.encode_questions([enc.question])
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(bert[f"bert_{key}"], inp[f"bert_{key}"]), key


def test_fixture_full_call_reproduces_every_input(processor, fixture_data, tiny_fixture):
    man, inp = fixture_data["manifest"], fixture_data["inputs"]
    batch = processor(
        str(tiny_fixture / "inputs" / "frames"), man["instruct"], str(tiny_fixture / "inputs" / "audio.wav")
    )
    for key in ("input_ids", "attention_mask", "bert_input_ids", "bert_attention_mask", "bert_token_type_ids"):
        assert torch.equal(batch[key], inp[key]), key
    assert batch["pixel_values_videos"].shape == (1, 8, 3, 48, 48)
    assert torch.equal(batch["pixel_values_videos"][0], inp["pixel_values_videos"])
    assert batch["audio_input_features"].shape == (1, 128, 100)
    assert (batch["audio_input_features"] - inp["audio_input_features"]).abs().max().item() <= 1e-4
    assert batch["audio_missing"].tolist() == [False]
    assert batch["sample_index"].tolist() == [0] and batch["skipped"] == []


def test_fixture_sampling_and_pad_variant(processor, fixture_data, tiny_fixture):
    inp = fixture_data["inputs"]
    sample = processor.media.load(
        tiny_fixture / "inputs" / "frames", tiny_fixture / "inputs" / "audio.wav", aspect_ratio="pad"
    )
    assert sample.frame_indices == inp["sampled_frame_indices"].tolist() == [1, 4, 6, 8, 11, 13, 15, 18]
    assert torch.equal(sample.pixel_values, inp["pixel_values_videos_pad_variant"])
    raw = inp["raw_video_frames"].numpy()
    from_array = processor.media.frame_processor(list(raw[sample.frame_indices]))
    assert torch.equal(from_array, inp["pixel_values_videos"])
    wave = processor.media.waveform(tiny_fixture / "inputs" / "audio.wav")
    assert np.array_equal(wave, inp["raw_audio_waveform"].numpy())


def test_decode_generated_ids(processor, fixture_data):
    man = fixture_data["manifest"]
    text = processor.decode(torch.tensor([man["generated_ids"]]))
    assert text == processor.tokenizer.decode(man["generated_ids"], skip_special_tokens=True).strip()
    eos = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert processor.batch_decode([[eos] + man["generated_ids"][:3] + [eos]]) == [
        processor.tokenizer.decode(man["generated_ids"][:3], skip_special_tokens=True).strip()
    ]


# ------------------------------------------------------------------ batching


def test_batch_left_padding_equals_single_encodings(processor, tmp_path_factory):
    clip = str(get_clip(tmp_path_factory, "stereo48k"))
    instructions = [
        "Which emotion?",
        "As an expert, which emotion is the most obvious in this video clip? Think first, then answer.",
        "Emotion of the speaker in <answer> tags, please.",
    ]
    batch = processor([clip] * 3, instructions)
    singles = [processor.encode_prompt(t).input_ids for t in instructions]
    lengths = [len(s) for s in singles]
    assert len(set(lengths)) == 3
    width = max(lengths)
    assert batch["input_ids"].shape == (3, width)
    for row, ids in enumerate(singles):
        pad = width - len(ids)
        assert batch["input_ids"][row, pad:].tolist() == ids
        assert batch["attention_mask"][row, :pad].tolist() == [0] * pad
        assert batch["attention_mask"][row, pad:].tolist() == [1] * len(ids)  # placeholders included
        assert (batch["input_ids"][row, :pad] == processor.pad_token_id).all()
    bert_single = [processor.encode_questions([t]) for t in instructions]
    for row, enc in enumerate(bert_single):
        n = enc["bert_input_ids"].shape[1]
        assert batch["bert_input_ids"][row, :n].tolist() == enc["bert_input_ids"][0].tolist()
        assert batch["bert_attention_mask"][row].sum().item() == n
    assert batch["pixel_values_videos"].shape == (3, 8, 3, 48, 48)
    assert batch["audio_input_features"].shape == (3, 128, 100)
    assert torch.equal(batch["pixel_values_videos"][0], batch["pixel_values_videos"][2])


def test_skip_policy_drops_samples_and_reports_them(tiny_fixture, tmp_path_factory):
    proc = HumanOmniProcessor.from_pretrained(
        tiny_fixture / "checkpoint",
        vision_tower=str(tiny_fixture / "siglip-tiny"),
        audio_tower=str(tiny_fixture / "whisper-tiny"),
        bert=str(tiny_fixture / "bert-tiny"),
        on_missing_audio="skip",
    )
    good, silent = str(get_clip(tmp_path_factory, "stereo48k")), str(get_clip(tmp_path_factory, "silent"))
    batch = proc([good, silent, good], ["a", "b", "c"])
    assert batch["sample_index"].tolist() == [0, 2] and batch["skipped"] == [1]
    assert batch["input_ids"].shape[0] == 2 and batch["pixel_values_videos"].shape[0] == 2


def test_zeros_policy_flags_missing_audio(processor, tmp_path_factory):
    batch = processor(
        [str(get_clip(tmp_path_factory, "silent")), str(get_clip(tmp_path_factory, "mono16k"))], ["a", "b"]
    )
    assert batch["audio_missing"].tolist() == [True, False]
    assert torch.all(batch["audio_input_features"][0] == -1.5)


def test_model_input_names_are_in_the_batch(processor, tmp_path_factory):
    batch = processor(str(get_clip(tmp_path_factory, "stereo48k")), "which emotion?")
    assert set(processor.model_input_names) <= set(batch.keys())


# ------------------------------------------------------------------ prompt styles


def test_sft_style_three_newlines_and_bert_question(processor):
    q = "Which emotion?"
    turn = processor.user_turn(q, style="sft")
    assert turn == "<vi_start><video><vi_end>\n<au_start><audio><au_end>\n\n\n" + q
    assert sft_user_turn("<video>\n" + q, wrap=True) == turn  # audio tag added as the reference
    assert processor.default_question(q, style="sft") == "<vi_start><vi_end><au_start><audio><au_end>" + q
    assert processor.default_question(q) == q
    text = processor.prompt_text(q, style="sft")
    assert text.endswith("<|im_start|>user\n" + turn + "<|im_end|>\n<|im_start|>assistant\n")


def test_grpo_style_has_qwen2vl_video_item_and_matches_list_rendering(processor):
    q = "Which emotion?"
    text = processor.prompt_text(q, style="grpo")
    expected_turn = (
        "<|vision_start|><|video_pad|><|vision_end|><vi_start><video><vi_end>\n<au_start><audio><au_end>\n" + q
    )
    assert ("<|im_start|>user\n" + expected_turn + "<|im_end|>") in text
    # the GRPO trainer renders a list-content message; the checkpoint's template gives the same text
    listed = processor.tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "video", "video": "x.mp4"}, {"type": "text", "text": GRPO_TAGS + q}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert listed == text
    ids = processor.encode_prompt(q, style="grpo").input_ids
    assert ids.count(VIDEO_PLACEHOLDER) == 1 and ids.count(AUDIO_PLACEHOLDER) == 1
    assert processor.tokenizer.convert_tokens_to_ids("<|video_pad|>") in ids
    assert processor.default_question(q, style="grpo") == q


GRPO_TAGS = "<vi_start><video><vi_end>\n<au_start><audio><au_end>\n"


def test_inference_modal_variants(processor):
    assert "<vi_start><video><vi_end>\nq" in processor.prompt_text("q", modal="video")
    assert "<au_start><audio><au_end>\nq" in processor.prompt_text("q", modal="audio")
    text_only = processor.encode_prompt("q", modal="text").input_ids
    assert all(t >= 0 for t in text_only)
    with pytest.raises(ConfigError):
        processor.prompt_text("q", style="grpo", modal="video")
    with pytest.raises(ConfigError):
        processor.prompt_text("q", style="chat")


def test_training_example_masks_the_prompt(processor):
    q, answer = "Which emotion?", "<think>The voice trembles.</think>\n<answer>sad</answer>"
    ex = processor.build_training_example(q, answer)
    prompt_ids = processor.encode_prompt(q, style="sft").input_ids
    n = len(prompt_ids)
    assert ex["input_ids"][:n] == prompt_ids and ex["prompt_length"] == n
    assert ex["labels"][:n] == [IGNORE_INDEX] * n
    assert ex["labels"][n:] == ex["input_ids"][n:]
    supervised = processor.tokenizer.decode(ex["input_ids"][n:])
    assert supervised == answer + "<|im_end|>\n"
    assert ex["question"] == processor.default_question(q, style="sft")
    inf = processor.build_training_example(q, answer, style="inference")
    assert inf["input_ids"][: len(processor.encode_prompt(q).input_ids)] == processor.encode_prompt(q).input_ids


def test_record_instruction_helpers():
    assert strip_modal_tags("<video>\n<audio>\nWhich emotion?") == "Which emotion?"
    assert sft_user_turn("<video>\n<audio>\nQ", wrap=False) == "<video>\n<audio>\n\n\nQ"


def test_modal_media_and_crop_window(processor, tmp_path_factory):
    clip = str(get_clip(tmp_path_factory, "stereo48k"))
    video_only = processor(clip, "q", modal="video")
    assert "audio_input_features" not in video_only
    assert video_only["pixel_values_videos"].shape == (1, 8, 3, 48, 48)
    audio_only = processor(None, "q", clip, modal="audio")
    assert audio_only["pixel_values_videos"].shape == (1, 32, 3, 48, 48)  # reference's dummy video
    assert not audio_only["pixel_values_videos"].any()
    assert audio_only["audio_input_features"].shape == (1, 128, 100)
    cropped = processor(clip, "q", starts=0.4, ends=1.2)
    direct = processor.media.load(clip, start=0.4, end=1.2)
    assert torch.equal(cropped["pixel_values_videos"][0], direct.pixel_values)
    assert direct.frame_indices == [9 + i for i in uniform_frame_indices(21, 8)]  # frames 9..29
    with pytest.raises(ConfigError, match="image"):
        processor(clip, "q", modal="image")


def test_chat_template_from_processor_file(tiny_fixture, tmp_path, fixture_data):
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_fixture / "checkpoint", ckpt)
    ckpt.chmod(0o755)
    for f in ckpt.iterdir():
        f.chmod(0o644)
    cfg = json.loads((ckpt / "tokenizer_config.json").read_text())
    (ckpt / "chat_template.json").write_text(json.dumps({"chat_template": cfg.pop("chat_template")}))
    (ckpt / "tokenizer_config.json").write_text(json.dumps(cfg))
    proc = HumanOmniProcessor.from_pretrained(
        ckpt,
        vision_tower=str(tiny_fixture / "siglip-tiny"),
        audio_tower=str(tiny_fixture / "whisper-tiny"),
        bert=str(tiny_fixture / "bert-tiny"),
    )
    man = fixture_data["manifest"]
    assert proc.encode_prompt(man["instruct"]).input_ids == fixture_data["inputs"]["input_ids"][0].tolist()
