import json

import pytest

from erv.cli import main as erv_main
from erv.data.prepare import prepare
from erv.data.prompts import TASK_PROMPT
from erv.data.records import validate_grpo_record, validate_sft_record
from erv.errors import ConfigError, LabelFileError


@pytest.fixture()
def dfew(tmp_path):
    labels = tmp_path / "label"
    labels.mkdir()
    for fold in range(1, 6):
        train = [f"{i},{(i % 7) + 1}" for i in range(1, 9) if (i % 5) + 1 != fold]
        test = [f"{i},{(i % 7) + 1}" for i in range(1, 9) if (i % 5) + 1 == fold]
        (labels / f"single_trainset_{fold}.csv").write_text("video_name,label\n" + "\n".join(train) + "\n")
        (labels / f"single_testset_{fold}.csv").write_text("video_name,label\n" + "\n".join(test) + "\n")
    videos = tmp_path / "clip" / "part_1"
    videos.mkdir(parents=True)
    for i in range(1, 9):
        (videos / f"{i:05d}.mp4").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("fold", [1, 5])
def test_grpo_records_for_a_fold(dfew, fold):
    out = dfew / "grpo.json"
    report = prepare(
        dataset="DFEW",
        video_dir=str(dfew / "clip"),
        out=str(out),
        fmt="grpo",
        label_dir=str(dfew / "label"),
        fold=fold,
        split="train",
    )
    records = json.loads(out.read_text())
    assert report.written == len(records) > 0
    for i, rec in enumerate(records):
        validate_grpo_record(rec, f"rec {i}", "DFEW")
        assert rec["conversations"][0]["value"] == "<video>\n<audio>\n" + TASK_PROMPT
        assert rec["video"].endswith(f"{int(rec['id']):05d}.mp4")
    assert all((int(r["id"]) % 5) + 1 != fold for r in records)


def test_train_test_overlap_is_refused(dfew):
    test = dfew / "label" / "single_testset_5.csv"
    test.write_text(test.read_text() + "1,2\n")  # clip 1 is a training clip of fold 5
    with pytest.raises(
        LabelFileError, match="1 clip.* appear in both .*single_trainset_5.csv and .*single_testset_5.csv: 1"
    ):
        prepare(
            dataset="DFEW",
            video_dir=str(dfew / "clip"),
            out=str(dfew / "o.json"),
            fmt="grpo",
            label_dir=str(dfew / "label"),
            fold=5,
            split="train",
        )


def test_missing_videos_fail_unless_allowed(dfew, capsys):
    (dfew / "clip" / "part_1" / "00002.mp4").unlink()
    args = [
        "data",
        "prepare",
        "--dataset",
        "DFEW",
        "--video-dir",
        str(dfew / "clip"),
        "--label-dir",
        str(dfew / "label"),
        "--fold",
        "5",
        "--split",
        "train",
        "--out",
        str(dfew / "o.jsonl"),
    ]
    assert erv_main(args) == 2
    assert "1 missing (e.g. 2)" in capsys.readouterr().err
    assert erv_main(args + ["--allow-missing-videos"]) == 0
    captured = capsys.readouterr()
    assert "missing videos (1): 2" in captured.err and "missing videos 1" in captured.out
    ids = [json.loads(line)["id"] for line in (dfew / "o.jsonl").read_text().splitlines()]
    assert "2" not in ids and len(ids) == 6


def test_ambiguous_video_names_are_reported(dfew):
    (dfew / "clip" / "1.avi").write_bytes(b"")
    with pytest.raises(ConfigError, match="1 ambiguous"):
        prepare(
            dataset="DFEW",
            video_dir=str(dfew / "clip"),
            out=str(dfew / "o.json"),
            fmt="infer",
            label_dir=str(dfew / "label"),
            fold=5,
            split="train",
        )


def test_sft_records_from_emer(tmp_path):
    csv = tmp_path / "gt-eng.csv"
    csv.write_text(
        "names,emotions,subtitles,reasons\nsample_1,worried,,He frowns. He sighs.\nsample_2,happy,,She laughs.\n"
    )
    (tmp_path / "v").mkdir()
    for name in ("sample_1", "sample_2"):
        (tmp_path / "v" / f"{name}.avi").write_bytes(b"")
    out = tmp_path / "sft.json"
    prepare(dataset="EMER", video_dir=str(tmp_path / "v"), out=str(out), fmt="sft", explanations=str(csv))
    records = json.loads(out.read_text())
    assert records[0]["conversations"][1]["value"] == "<think>He frowns. He sighs.</think>\n<answer>worried</answer>"
    for i, rec in enumerate(records):
        validate_sft_record(rec, f"rec {i}", "EMER")


def test_sft_without_explanations_is_refused(dfew):
    with pytest.raises(ConfigError, match="no explanation for SFT"):
        prepare(
            dataset="DFEW",
            video_dir=str(dfew / "clip"),
            out=str(dfew / "o.json"),
            fmt="sft",
            labels=str(dfew / "label" / "single_testset_5.csv"),
        )


def test_mafw_split_file_and_custom_prompt(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "00010.mp4").write_bytes(b"")
    (tmp_path / "test.txt").write_text("00010.mp4 helplessness\n")
    out = tmp_path / "o.json"
    prepare(
        dataset="MAFW",
        video_dir=str(tmp_path / "v"),
        out=str(out),
        fmt="infer",
        labels=str(tmp_path / "test.txt"),
        prompt="Which emotion?",
    )
    rec = json.loads(out.read_text())[0]
    assert rec["conversations"] == [
        {"from": "human", "value": "<video>\n<audio>\nWhich emotion?"},
        {"from": "gpt", "value": "helplessness"},
    ]
    assert rec["dataset"] == "MAFW" and rec["id"] == "10"


def test_labels_and_label_dir_are_alternatives(dfew, capsys):
    """With both, --label-dir (and with it the leak check) used to be ignored silently."""
    test = dfew / "label" / "single_testset_5.csv"
    test.write_text(test.read_text() + "1,2\n")  # clip 1 is also a training clip of fold 5
    with pytest.raises(SystemExit) as exc:
        erv_main(
            ["data", "prepare", "--dataset", "DFEW", "--video-dir", str(dfew / "clip"), "--out", str(dfew / "o.json")]
            + ["--labels", str(test), "--label-dir", str(dfew / "label"), "--fold", "5", "--split", "test"]
        )
    assert exc.value.code == 2 and "not allowed with argument --labels" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--labels and --label-dir are alternatives"):
        prepare(
            dataset="DFEW",
            video_dir=str(dfew / "clip"),
            out=str(dfew / "o.json"),
            fmt="grpo",
            labels=str(test),
            label_dir=str(dfew / "label"),
            fold=5,
        )
    assert not (dfew / "o.json").exists()


def test_videos_under_symlinked_folders_are_found_once(dfew):
    shared = dfew / "shared_storage"
    shared.mkdir()
    (dfew / "clip" / "part_1" / "00003.mp4").rename(shared / "00003.mp4")
    (dfew / "clip" / "linked").symlink_to(shared, target_is_directory=True)
    (dfew / "clip" / "again").symlink_to(shared, target_is_directory=True)  # one folder reached twice
    (shared / "loop").symlink_to(dfew / "clip", target_is_directory=True)  # and a link loop
    (dfew / "clip" / "00099.mp4").symlink_to(dfew / "nowhere.mp4")  # a broken link is no video
    out = dfew / "o.jsonl"
    report = prepare(
        dataset="DFEW",
        video_dir=str(dfew / "clip"),
        out=str(out),
        fmt="infer",
        label_dir=str(dfew / "label"),
        fold=5,
        split="train",
    )
    records = {json.loads(line)["id"]: json.loads(line)["video"] for line in out.read_text().splitlines()}
    assert report.missing == [] and report.ambiguous == {}
    assert records["3"].endswith("00003.mp4") and len(records) == report.written == 7


def test_output_is_checked_before_the_labels_are_read(dfew, tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match=r"--out .*taken/o.json: .*taken is a file"):
        prepare(
            dataset="DFEW",
            video_dir=str(dfew / "clip"),
            out=str(tmp_path / "taken" / "o.json"),
            fmt="grpo",
            labels=str(tmp_path / "missing-labels.csv"),  # would fail later: the output is checked first
        )
