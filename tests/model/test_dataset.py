"""erv.model.dataset: per-item media loading in DataLoader workers, collation, skips and errors."""

from __future__ import annotations

import json

import pytest
import torch

from erv.errors import MediaError, RecordError
from erv.model.constants import IGNORE_INDEX
from erv.model.dataset import HumanOmniCollator, HumanOmniDataset, make_dataloader, record_answer, record_instruction
from erv.model.processor import HumanOmniProcessor
from tests.helpers.media import get_clip

PROMPT = "As an emotional recognition expert, which emotion is the most obvious?"


@pytest.fixture(scope="module")
def processor(tiny_fixture) -> HumanOmniProcessor:
    return HumanOmniProcessor.from_pretrained(
        tiny_fixture / "checkpoint",
        vision_tower=str(tiny_fixture / "siglip-tiny"),
        audio_tower=str(tiny_fixture / "whisper-tiny"),
        bert=str(tiny_fixture / "bert-tiny"),
    )


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    names = ["stereo48k", "stereo44k", "mono16k", "gop"]
    clips = {n: get_clip(tmp_path_factory, n) for n in names}
    root = clips["stereo48k"].parent
    return root, [
        {"id": "a", "video": clips["stereo48k"].name, "instruction": PROMPT, "answer": "<answer>happy</answer>"},
        {
            "id": "b",
            "video": clips["stereo44k"].name,
            "conversations": [
                {"from": "human", "value": "<video>\n<audio>\nWhich emotion?"},
                {"from": "gpt", "value": "<think>smiles</think>\n<answer>happy</answer>"},
            ],
        },
        {"video": str(clips["mono16k"]), "problem": "Name the emotion, briefly.", "solution": "<answer>sad</answer>"},
        {"id": "d", "video": clips["gop"].name, "instruction": "Emotion?", "answer": "<answer>angry</answer>"},
    ]


def test_record_fields():
    rec = {"conversations": [{"from": "human", "value": "<video>\n<audio>\nQ?"}, {"from": "gpt", "value": "A"}]}
    assert record_instruction(rec) == "Q?" and record_answer(rec) == "A"
    assert record_instruction({"problem": "P"}) == "P"
    assert record_instruction({}, default="D") == "D"
    with pytest.raises(RecordError, match="no instruction"):
        record_instruction({"video": "x.mp4"}, where="f.jsonl[3]")


def test_dataloader_with_workers_equals_direct_processor_call(processor, records):
    root, recs = records
    ds = HumanOmniDataset(recs, processor, video_root=root)
    loader = make_dataloader(ds, batch_size=4, num_workers=2)
    (batch,) = list(loader)
    videos = [str(root / r["video"]) if not r["video"].startswith("/") else r["video"] for r in recs]
    instructions = [record_instruction(r) for r in recs]
    direct = processor(videos, instructions)
    for key in processor.model_input_names + ("audio_missing",):
        assert torch.equal(batch[key], direct[key]), key
    assert batch["ids"] == ["a", "b", recs[2]["video"], "d"]
    assert batch["skipped"] == []


def test_training_items_have_right_padded_labels(processor, records):
    root, recs = records
    ds = HumanOmniDataset(recs, processor, video_root=root, with_answers=True, aspect_ratio="pad")
    items = [ds[i] for i in range(len(ds))]
    batch = HumanOmniCollator(processor)(items)
    assert batch["labels"].shape == batch["input_ids"].shape
    for row, item in enumerate(items):
        n = len(item["input_ids"])
        assert batch["input_ids"][row, :n].tolist() == item["input_ids"]
        assert batch["labels"][row, :n].tolist() == item["labels"]
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all()
        assert batch["attention_mask"][row].sum().item() == n
    ex = processor.build_training_example(record_instruction(recs[1]), record_answer(recs[1]))
    assert items[1]["labels"] == ex["labels"]
    # training uses the padded (square) frames
    direct = processor.media.load(root / recs[0]["video"], aspect_ratio="pad")
    assert torch.equal(batch["pixel_values_videos"][0], direct.pixel_values)


def test_bad_media_raise_or_skip(processor, records, tmp_path_factory, tmp_path):
    root, recs = records
    bad = recs[:2] + [{"id": "gone", "video": str(tmp_path / "missing.mp4"), "instruction": "x"}]
    with pytest.raises(MediaError, match=r"records\[2\] \(id gone\).*not found"):
        HumanOmniDataset(bad, processor, video_root=root)[2]
    ds = HumanOmniDataset(bad, processor, video_root=root, on_error="skip")
    batch = HumanOmniCollator(processor)([ds[i] for i in range(3)])
    assert batch["ids"] == ["a", "b"]
    assert batch["skipped"][0]["id"] == "gone" and "not found" in batch["skipped"][0]["reason"]
    assert batch["input_ids"].shape[0] == 2


def test_missing_audio_skip_policy_in_dataset(tiny_fixture, tmp_path_factory):
    proc = HumanOmniProcessor.from_pretrained(
        tiny_fixture / "checkpoint",
        vision_tower=str(tiny_fixture / "siglip-tiny"),
        audio_tower=str(tiny_fixture / "whisper-tiny"),
        bert=str(tiny_fixture / "bert-tiny"),
        on_missing_audio="skip",
    )
    silent = get_clip(tmp_path_factory, "silent")
    ds = HumanOmniDataset([{"id": "s", "video": str(silent), "instruction": "x"}], proc)
    batch = HumanOmniCollator(proc)([ds[0]])
    assert batch["ids"] == [] and batch["skipped"][0]["id"] == "s"
    assert "audio" in batch["skipped"][0]["reason"]


def test_records_file_and_validation(processor, records, tmp_path):
    root, recs = records
    path = tmp_path / "recs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    ds = HumanOmniDataset(path, processor, video_root=root)
    assert len(ds) == 4
    with pytest.raises(RecordError, match="no 'video'"):
        HumanOmniDataset([{"instruction": "x"}], processor)
    with pytest.raises(RecordError, match="no answer"):
        HumanOmniDataset([{"video": "v.mp4", "instruction": "x"}], processor, with_answers=True)
