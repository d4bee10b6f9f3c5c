"""Training records and media: label mask on token ids, record validation, media pre-check and skips."""

from __future__ import annotations

import json

import pytest

from erv.errors import MediaError, RecordError
from erv.model.constants import AUDIO_PLACEHOLDER, IGNORE_INDEX, VIDEO_PLACEHOLDER
from erv.model.processor import HumanOmniProcessor
from erv.testing.synthetic_media import write_clip
from erv.train.data import (
    TrainingCollator,
    TrainingDataset,
    apply_media_policy,
    check_media,
    read_training_records,
)
from tests.train.conftest import write_records


@pytest.fixture(scope="module")
def processor(release) -> HumanOmniProcessor:
    return HumanOmniProcessor.from_pretrained(
        release["checkpoint"],
        vision_tower=str(release["vision"]),
        audio_tower=str(release["audio"]),
        bert=str(release["bert"]),
        prompt_style="sft",
        aspect_ratio="pad",
    )


def _dataset(sft_data, processor, **kwargs):
    data = read_training_records(sft_data, with_answers=True)
    return data, TrainingDataset(data, processor, with_answers=True, video_root=sft_data.parent, **kwargs)


def test_label_mask_on_token_ids(sft_data, processor):
    data, ds = _dataset(sft_data, processor)
    tok = processor.tokenizer
    end_of_turn = tok.convert_tokens_to_ids("<|im_end|>")
    for index in range(len(ds)):
        item = ds[index]
        ids, labels = item["input_ids"], item["labels"]
        supervised = [pos for pos, label in enumerate(labels) if label != IGNORE_INDEX]
        first = supervised[0]
        # one contiguous supervised span at the end, labels equal to the input there
        assert supervised == list(range(first, len(ids))) and all(labels[p] == ids[p] for p in supervised)
        # it is exactly the answer's tokens followed by the end-of-turn token
        answer = data.records[index]["conversations"][1]["value"]
        assert ids[-1] == end_of_turn and end_of_turn not in ids[first:-1]
        assert tok.decode(ids[first:-1]) == answer
        # everything before it is the SFT prompt, ending with the assistant header
        prompt = ids[:first]
        assert prompt.count(VIDEO_PLACEHOLDER) == 1 and prompt.count(AUDIO_PLACEHOLDER) == 1
        text = tok.decode([t for t in prompt if t >= 0])
        assert text.endswith("<|im_start|>assistant\n") and "<vi_start><vi_end>\n<au_start><au_end>\n\n\n" in text
    batch = TrainingCollator(processor, padding_side="right")([ds[0], ds[1]])
    assert batch["pixel_values_videos"].shape[1] == processor.media.num_frames


def test_max_length_counts_the_media_tokens_and_truncates_the_answer(sft_data, processor):
    expansion = {VIDEO_PLACEHOLDER: 100, AUDIO_PLACEHOLDER: 50}
    _, full = _dataset(sft_data, processor, max_length=None)
    longest = max(ds_len := [len(full[i]["input_ids"]) for i in range(len(full))])
    limit = longest + 148 - 3  # the longest example is 3 tokens too long once expanded
    _, ds = _dataset(sft_data, processor, max_length=limit, expansion=expansion)
    assert ds.truncated == sum(n + 148 > limit for n in ds_len) >= 1
    for i in range(len(ds)):
        assert ds.llm_length(ds[i]["input_ids"]) <= limit
    with pytest.raises(RecordError, match=r"records.json\[0\] \(id s0\): the prompt alone needs"):
        _dataset(sft_data, processor, max_length=160, expansion=expansion)


def test_records_without_answer_or_with_empty_answer_are_named(tmp_path):
    human = {"from": "human", "value": "<video>\n<audio>\nWhich emotion?"}
    no_turn = write_records(tmp_path / "a.json", [{"id": "x1", "video": "v.mp4", "conversations": [human]}])
    with pytest.raises(RecordError, match=r"a.json\[0\] \(id x1\): no answer"):
        read_training_records(no_turn, with_answers=True)
    empty = [
        {"id": "ok", "video": "v.mp4", "conversations": [human, {"from": "gpt", "value": "<answer>sad</answer>"}]},
        {"id": "x2", "video": "v.mp4", "conversations": [human, {"from": "gpt", "value": "  "}]},
    ]
    path = tmp_path / "b.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in empty) + "\n")
    with pytest.raises(RecordError, match=r"b.jsonl:2 \(id x2\): the assistant answer is empty"):
        read_training_records(path, with_answers=True)


@pytest.fixture(scope="module")
def bad_media(sft_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-media")
    good = json.loads(sft_data.read_text())[:2]
    for rec in good:
        rec["video"] = str(sft_data.parent / rec["video"])
    silent = write_clip(folder / "silent.mp4", seconds=0.5, fps=10, size=(64, 48), audio_rate=None)
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes((sft_data.parent / "clip_0.mp4").read_bytes()[:700])
    extra = [
        dict(good[0], id="gone", video=str(folder / "missing.mp4")),
        dict(good[0], id="broken", video=str(corrupt)),
        dict(good[0], id="mute", video=str(silent)),
    ]
    return write_records(folder / "records.json", good + extra)


def test_media_precheck_finds_missing_corrupt_and_silent_clips(bad_media):
    data = read_training_records(bad_media, with_answers=True)
    issues = check_media(data)
    assert [(i.index, i.kind) for i in issues] == [(2, "video"), (3, "video"), (4, "audio")]
    assert "not found" in issues[0].reason and "missing.mp4" in issues[0].path
    assert "corrupt" in issues[1].reason and issues[2].reason.endswith("no audio track")

    with pytest.raises(MediaError, match=r"records.json\[2\] \(id gone\): media file not found.*and 1 more"):
        apply_media_policy(data, issues, on_media_error="error", on_missing_audio="zeros")
    kept, report = apply_media_policy(data, issues, on_media_error="skip", on_missing_audio="zeros")
    assert kept == [0, 1, 4] and report.num_skipped == 2 and report.zero_filled_audio == 1
    kept, report = apply_media_policy(data, issues, on_media_error="skip", on_missing_audio="skip")
    assert kept == [0, 1] and [r["id"] if "id" in r else r["record"] for r in report.rows()][-1].endswith("(id mute)")
    with pytest.raises(MediaError, match=r"\(id mute\).*no audio track.*on_missing_audio"):
        apply_media_policy(data, issues, on_media_error="skip", on_missing_audio="error")


def test_media_precheck_refuses_frame_folders_the_decoder_refuses(sft_data, tmp_path):
    from PIL import Image

    from erv.media import read_video_frames

    folders = {name: tmp_path / name for name in ("frames", "stray", "empty")}
    for name, folder in folders.items():
        folder.mkdir()
        if name != "empty":
            for k in range(3):
                Image.new("RGB", (32, 32), (40 * k, 0, 0)).save(folder / f"{k:03d}.png")
        (folder / ".hidden").write_text("ignored, as the decoder ignores it")
    (folders["stray"] / "notes.txt").write_text("not a frame")
    audio = str(sft_data.parent / json.loads(sft_data.read_text())[0]["video"])
    record = json.loads(sft_data.read_text())[0]
    records = [dict(record, id=name, video=str(folder), audio=audio) for name, folder in folders.items()]
    data = read_training_records(write_records(tmp_path / "r.json", records), with_answers=True)
    issues = check_media(data)
    assert [(i.index, i.kind) for i in issues] == [(1, "video"), (2, "video")]
    assert "non-image entries ['notes.txt']" in issues[0].reason and "no frames" in issues[1].reason
    read_video_frames(str(folders["frames"]), num_frames=2)  # what passes the check decodes
    for folder in (folders["stray"], folders["empty"]):
        with pytest.raises(MediaError):
            read_video_frames(str(folder), num_frames=2)


def test_clip_failing_in_a_worker_is_replaced_and_reported(sft_data, processor, tmp_path):
    records = json.loads(sft_data.read_text())[:3]
    for rec in records:
        rec["video"] = str(sft_data.parent / rec["video"])
    doomed = tmp_path / "doomed.mp4"
    doomed.write_bytes((sft_data.parent / "clip_1.mp4").read_bytes())
    records[1]["video"] = str(doomed)
    data = read_training_records(write_records(tmp_path / "r.json", records), with_answers=True)
    assert check_media(data) == []
    doomed.unlink()  # gone after the pre-check
    skip = TrainingDataset(data, processor, with_answers=True, on_error="skip")
    batch = TrainingCollator(processor, padding_side="right")([skip[0], skip[1]])
    assert batch["ids"] == ["s0", "s2"] and batch["input_ids"].shape[0] == 2
    assert batch["skipped"][0]["id"] == "s1" and "not found" in batch["skipped"][0]["reason"]
    strict = TrainingDataset(data, processor, with_answers=True, on_error="raise")
    with pytest.raises(MediaError, match=r"r.json\[1\] \(id s1\).*not found"):
        strict[1]
