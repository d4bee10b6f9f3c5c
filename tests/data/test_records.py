import json

import pytest

from erv.data.records import read_judgments, read_predictions, validate_grpo_record, validate_sft_record
from erv.errors import RecordError
from erv.io.jsonl import write_json, write_jsonl


def _pred(i, gold="happy", response="<think>t</think><answer>happy</answer>", **kw):
    return {"id": str(i), "video": f"{i}.mp4", "dataset": "DFEW", "gold": gold, "response": response, **kw}


def test_reads_jsonl_and_json_list(tmp_path):
    rows = [_pred(1), _pred(2, extra_key=5)]
    write_jsonl(tmp_path / "p.jsonl", rows)
    write_json(tmp_path / "p.json", rows)
    for name in ("p.jsonl", "p.json"):
        preds = read_predictions(tmp_path / name, "DFEW")
        assert [p.id for p in preds] == ["1", "2"]
        assert preds[1].extra == {"extra_key": 5}


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(_pred(1)) + "\n\n" + '{"id": "2", "gold": \n')
    with pytest.raises(RecordError, match=r"p\.jsonl:3: invalid JSON"):
        read_predictions(path, "DFEW")


def test_non_object_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(RecordError, match=r"p\.jsonl\[0\]: expected a JSON object"):
        read_predictions(path, "DFEW")


def test_duplicate_id(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", [_pred(1), _pred(2), _pred(1)])
    with pytest.raises(RecordError, match=r"p\.jsonl:3: duplicate id '1' \(first seen at .*p\.jsonl:1\)"):
        read_predictions(tmp_path / "p.jsonl", "DFEW")


def test_unknown_gold_is_an_error(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", [_pred(1), _pred(2, gold="contempt")])
    with pytest.raises(RecordError, match=r"p\.jsonl:2: gold label 'contempt' of sample 2 is not a DFEW label"):
        read_predictions(tmp_path / "p.jsonl", "DFEW")


def test_missing_keys_and_types(tmp_path):
    for bad, msg in (
        ({"gold": "sad", "response": "x"}, "missing required key 'id'"),
        ({"id": "1", "response": "x"}, "missing required key 'gold'"),
        ({"id": "1", "gold": "sad"}, "missing required key 'response'"),
        ({"id": "1", "gold": "sad", "response": 3}, "'response' must be a string"),
        ({"id": "", "gold": "sad", "response": "x"}, "'id' is empty"),
    ):
        write_jsonl(tmp_path / "p.jsonl", [bad])
        with pytest.raises(RecordError, match=msg):
            read_predictions(tmp_path / "p.jsonl", "DFEW")


def test_integer_ids_become_strings(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", [{"id": 7, "gold": "sad", "response": ""}])
    assert read_predictions(tmp_path / "p.jsonl", "DFEW")[0].id == "7"


def test_empty_file(tmp_path):
    (tmp_path / "p.jsonl").write_text("")
    with pytest.raises(RecordError, match="holds no predictions"):
        read_predictions(tmp_path / "p.jsonl", "DFEW")
    with pytest.raises(RecordError, match="file not found"):
        read_predictions(tmp_path / "nope.jsonl", "DFEW")


def test_dataset_field_picks_taxonomy_when_none_given(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", [_pred(1, gold="Anger", dataset="MAFW")])
    assert read_predictions(tmp_path / "p.jsonl")[0].gold == "anger"


def _judgment(i, emotion="happy", error=None):
    return {"id": str(i), "judge": "m", "explanation_emotion": emotion, "raw": emotion, "error": error}


def test_judgments_success_supersedes_failure(tmp_path):
    write_jsonl(
        tmp_path / "j.jsonl",
        [
            _judgment(1, None, "HTTP 500"),
            _judgment(2, None, "timeout"),
            _judgment(1, "Sad"),
            _judgment(2, None, "HTTP 429"),
            _judgment(1, None, "late failure"),
        ],
    )
    out = read_judgments(tmp_path / "j.jsonl", "DFEW")
    assert out["1"].ok and out["1"].explanation_emotion == "sad"
    assert not out["2"].ok and out["2"].error == "HTTP 429"


def test_conflicting_judgments_are_an_error(tmp_path):
    write_jsonl(tmp_path / "j.jsonl", [_judgment(1, "happy"), _judgment(1, "sad")])
    with pytest.raises(RecordError, match="already judged 'happy'"):
        read_judgments(tmp_path / "j.jsonl", "DFEW")


def test_judgment_outside_taxonomy_is_an_error(tmp_path):
    write_jsonl(tmp_path / "j.jsonl", [_judgment(1, "contempt")])
    with pytest.raises(RecordError, match="not a DFEW label"):
        read_judgments(tmp_path / "j.jsonl", "DFEW")


def test_torn_tail_is_dropped_only_at_the_end(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps(_judgment(1)) + "\n" + '{"id": "2", "judge"')
    with pytest.warns(UserWarning, match="incomplete last line"):
        assert list(read_judgments(path, "DFEW")) == ["1"]
    path.write_text('{"id": "2", "judge"\n' + json.dumps(_judgment(1)) + "\n")
    with pytest.raises(RecordError, match=":1: invalid JSON"):
        read_judgments(path, "DFEW")


def test_sft_and_grpo_record_validation():
    human = {"from": "human", "value": "<video>\n<audio>\nQ"}
    sft = {
        "video": "v.mp4",
        "conversations": [human, {"from": "gpt", "value": "<think>r</think>\n<answer>happy</answer>"}],
    }
    validate_sft_record(sft, "f:1", "DFEW")
    bad = {"video": "v.mp4", "conversations": [human, {"from": "gpt", "value": "happy"}]}
    with pytest.raises(RecordError, match="f:2: SFT target must hold"):
        validate_sft_record(bad, "f:2")
    assert validate_grpo_record(bad, "f:3", "DFEW") == "happy"
    with pytest.raises(RecordError, match="f:4: label 'calm' is not a DFEW label"):
        validate_grpo_record({"video": "v", "conversations": [human, {"from": "gpt", "value": "calm"}]}, "f:4", "DFEW")
    with pytest.raises(RecordError, match="f:5: 'conversations' must be a list"):
        validate_grpo_record({"video": "v"}, "f:5")


def test_ids_naming_one_sample_are_duplicates_even_without_labels(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"id": "00025", "gold": "sad", "response": "x"})
        + "\n"
        + json.dumps({"id": "25", "gold": "sad", "response": "y"})
        + "\n"
    )
    with pytest.raises(RecordError, match=r"p.jsonl:2: id '25' is the same sample as '00025'"):
        read_predictions(path, "DFEW")


def test_judgments_of_another_dataset_are_refused(tmp_path):
    path = tmp_path / "j.jsonl"
    record = {"id": "1", "judge": "m", "explanation_emotion": "happiness", "raw": "happiness", "error": None}
    path.write_text(json.dumps({**record, "dataset": "MAFW"}) + "\n")
    with pytest.raises(RecordError, match=r"j.jsonl:1: judgment of sample 1 is from dataset 'MAFW', but --dataset"):
        read_judgments(path, "DFEW")  # "happiness" would normalise to DFEW's "happy"
    path.write_text(json.dumps({**record, "id": "0001", "dataset": "DFEW"}) + "\n")
    assert list(read_judgments(path, "DFEW")) == ["1"]  # keyed by the canonical id, as labels are
