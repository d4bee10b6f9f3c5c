"""Verifier text–label data: readers, importers, the unknown-label policy, counts, split."""

from __future__ import annotations

import json

import pytest

from erv.errors import RecordError
from erv.verifier.data import (
    ImportReport,
    TextExample,
    detect_format,
    label_counts,
    load_examples,
    load_many,
    train_eval_split,
    write_examples,
)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_labels_are_normalised(tmp_path):
    path = write(
        tmp_path / "d.jsonl",
        '{"text": "He is furious.", "labels": ["Angry"]}\n'
        '{"text": "She weeps and trembles.", "labels": "sad, scared", "id": 7}\n'
        '{"text": "He frowns.", "labels": ["anger", "angry"]}\n',
    )
    examples = load_examples(path, "MAFW")
    assert [ex.labels for ex in examples] == [("anger",), ("sadness", "fear"), ("anger",)]
    assert examples[1].id == "7" and examples[1].source == f"{path}:2"


def test_unknown_label_is_an_error_naming_file_and_line(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "a", "labels": ["sad"]}\n{"text": "b", "labels": ["doubt"]}\n')
    with pytest.raises(RecordError, match=rf"{path.name}:2: label 'doubt' is not a MAFW label"):
        load_examples(path, "MAFW")


def test_dropping_unknown_labels_is_counted_and_reported(tmp_path):
    path = write(
        tmp_path / "d.jsonl",
        '{"text": "a", "labels": ["sad", "doubt"]}\n{"text": "b", "labels": ["doubt"]}\n'
        '{"text": "c", "labels": ["happy"]}\n',
    )
    report = ImportReport()
    examples = load_examples(path, "MAFW", drop_unknown=True, report=report)
    assert [ex.labels for ex in examples] == [("sadness",), ("happiness",)]
    assert report.kept == 2 and report.dropped_labels == {"doubt": 2} and report.dropped_examples == 1
    assert "'doubt'×2" in report.summary() and f"{path}:1" in report.summary()


def test_bad_records(tmp_path):
    with pytest.raises(RecordError, match="missing key 'labels'"):
        load_examples(write(tmp_path / "a.jsonl", '{"text": "x"}\n'), "MAFW", fmt="jsonl")
    with pytest.raises(RecordError, match="'text' is empty"):
        load_examples(write(tmp_path / "b.jsonl", '{"text": " ", "labels": ["sad"]}\n'), "MAFW")
    with pytest.raises(RecordError, match="no label given"):
        load_examples(write(tmp_path / "c.jsonl", '{"text": "x", "labels": []}\n'), "MAFW")
    with pytest.raises(RecordError, match="file not found"):
        load_examples(tmp_path / "missing.jsonl", "MAFW")


def test_emer_v1_csv(tmp_path):
    path = write(
        tmp_path / "gt-eng.csv",
        "names,emotions,subtitles,reasons\n"
        'sample_00000013,worried,"I don\'t know.","The furrowed brow, and a trembling voice, show worry."\n'
        "sample_00000050,happy,Great!,She laughs and smiles broadly.\n",
    )
    examples = load_examples(path, "MAFW")
    assert examples == [
        TextExample(
            "The furrowed brow, and a trembling voice, show worry.", ("anxiety",), "sample_00000013", f"{path}:2"
        ),
        TextExample("She laughs and smiles broadly.", ("happiness",), "sample_00000050", f"{path}:3"),
    ]
    emer = load_examples(path, "EMER")
    assert emer[0].labels == ("worried",)


def test_emer_csv_with_other_columns_must_name_them(tmp_path):
    path = write(tmp_path / "final-EMER-reason.csv", "clip,gt_label,description\nv1,angry,He shouts.\n")
    with pytest.raises(RecordError, match="cannot tell which column holds the labels"):
        load_examples(path, "MAFW")
    examples = load_examples(path, "MAFW", label_column="gt_label", id_column="clip")
    assert examples[0].labels == ("anger",) and examples[0].id == "v1" and examples[0].text == "He shouts."


def test_merr_fine(tmp_path):
    data = {
        "sample_00000007": {"pseu_emotion": "surprise", "smp_reason_caption": "Her eyes widen.", "AU_list": []},
        "sample_00000009": {"pseu_emotion": "doubt", "smp_reason_caption": "He tilts his head."},
    }
    path = write(tmp_path / "MERR_fine_grained.json", json.dumps(data, indent=2))
    assert detect_format(path) == "merr"
    with pytest.raises(RecordError, match="sample_00000009.*'doubt'"):
        load_examples(path, "MAFW")
    report = ImportReport()
    examples = load_examples(path, "MAFW", drop_unknown=True, report=report)
    assert examples == [TextExample("Her eyes widen.", ("surprise",), "sample_00000007", f"{path}['sample_00000007']")]
    assert report.dropped_examples == 1


def test_judge_pseudo_labels(tmp_path):
    path = write(
        tmp_path / "pseudo.jsonl",
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": "a", "text": "He yells and sobs.", "raw": "Anger, Sadness.", "error": None},
                {
                    "id": "b",
                    "text": "She smiles.",
                    "explanation_emotion": "happiness",
                    "raw": "happiness",
                    "error": None,
                },
                {"id": "c", "text": "?", "explanation_emotion": None, "raw": None, "error": "timeout"},
                {"id": "d", "text": "He trembles.", "labels": ["fear"]},
                {"id": "e", "text": "Nothing.", "explanation_emotion": None, "raw": "", "error": None},
            ]
        )
        + "\n",
    )
    assert detect_format(path) == "judge"
    report = ImportReport()
    examples = load_examples(path, "MAFW", report=report)
    assert [(ex.id, ex.labels) for ex in examples] == [
        ("a", ("anger", "sadness")),
        ("b", ("happiness",)),
        ("d", ("fear",)),
    ]
    assert report.skipped == {"judge error": 1, "no label": 1}


def test_judge_records_take_text_from_predictions(tmp_path):
    preds = write(
        tmp_path / "p.jsonl",
        "\n".join(
            json.dumps(r)
            for r in [
                {
                    "id": "a",
                    "video": "a.mp4",
                    "dataset": "MAFW",
                    "gold": "anger",
                    "response": "<think>He clenches his fists.</think><answer>anger</answer>",
                },
                {
                    "id": "b",
                    "video": "b.mp4",
                    "dataset": "MAFW",
                    "gold": "anger",
                    "response": "<answer>anger</answer>",
                },
            ]
        )
        + "\n",
    )
    judged = write(
        tmp_path / "j.jsonl",
        '{"id": "a", "explanation_emotion": "anger", "raw": "anger", "error": null}\n'
        '{"id": "b", "explanation_emotion": "anger", "raw": "anger", "error": null}\n',
    )
    report = ImportReport()
    examples = load_examples(judged, "MAFW", fmt="judge", predictions=preds, report=report)
    assert [(ex.id, ex.text) for ex in examples] == [("a", "He clenches his fists.")]
    assert report.skipped == {"prediction without <think>": 1}
    with pytest.raises(RecordError, match="no explanation text"):
        load_examples(judged, "MAFW", fmt="judge")


def test_counts_and_seeded_split_keep_identical_texts_together():
    examples = [
        TextExample(f"text {i % 40}", (label,))
        for i, label in enumerate(["sadness"] * 50 + ["anger"] * 30 + ["fear"] * 4)
    ]
    counts = label_counts(examples, "MAFW")
    assert counts["sadness"] == 50 and counts["fear"] == 4 and counts["contempt"] == 0
    assert list(counts) == [
        "anger",
        "disgust",
        "fear",
        "happiness",
        "neutral",
        "sadness",
        "surprise",
        "contempt",
        "anxiety",
        "helplessness",
        "disappointment",
    ]
    train, held = train_eval_split(examples, 0.25, seed=3)
    assert len(train) + len(held) == len(examples)
    assert not {ex.text for ex in train} & {ex.text for ex in held}
    assert any("fear" in ex.labels for ex in held)  # rare classes reach the held-out side
    assert train_eval_split(examples, 0.25, seed=3) == (train, held)
    assert train_eval_split(examples, 0.25, seed=4) != (train, held)


def test_load_many_and_write_round_trip(tmp_path):
    a = write(tmp_path / "a.jsonl", '{"text": "x", "labels": ["sad"]}\n')
    b = write(tmp_path / "b.csv", "names,emotions,reasons\nn1,angry,He shouts.\n")
    examples = load_many([a, b], "DFEW")
    assert [ex.labels for ex in examples] == [("sad",), ("angry",)]
    write_examples(tmp_path / "out.jsonl", examples)
    assert load_examples(tmp_path / "out.jsonl", "DFEW") == [
        TextExample("x", ("sad",), None, f"{tmp_path / 'out.jsonl'}:1"),
        TextExample("He shouts.", ("angry",), "n1", f"{tmp_path / 'out.jsonl'}:2"),
    ]


def test_json_list_files_are_detected(tmp_path):
    canonical = write(tmp_path / "a.json", json.dumps([{"text": "He sobs.", "labels": ["sad"]}]))
    judged = write(tmp_path / "b.json", json.dumps([{"id": "1", "text": "He sobs.", "raw": "sadness", "error": None}]))
    assert detect_format(canonical) == "jsonl" and detect_format(judged) == "judge"
    assert load_examples(judged, "MAFW")[0].labels == ("sadness",)
