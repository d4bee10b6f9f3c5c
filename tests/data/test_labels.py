import pytest
from openpyxl import Workbook

from erv.data.labels import (
    canonical_id,
    fold_label_file,
    read_dfew_csv,
    read_emer_csv,
    read_label_file,
    read_mafw_xlsx,
    read_name_label_txt,
)
from erv.errors import LabelFileError


def test_canonical_id():
    assert canonical_id("00025.mp4") == "25" == canonical_id(25) == canonical_id(" 25 ")
    assert canonical_id("clip_01.MP4") == "clip_01"
    assert canonical_id("sample_00000018") == "sample_00000018"


def test_dfew_csv(tmp_path):
    path = tmp_path / "single_testset_5.csv"
    path.write_text("video_name,label\n1,1\n00002,7\n3,3\n")
    assert read_dfew_csv(path) == {"1": "happy", "2": "fear", "3": "neutral"}


@pytest.mark.parametrize(
    "body,msg",
    [
        ("video_name,label\n1,8\n", r":2: label id 8 is outside 1..7"),
        ("video_name,label\n1\n", r":2: expected 'video_id,label_id'"),
        ("video_name,label\n1,1\n01,2\n", r":3: sample '01' listed twice \(first at .*:2\)"),
        ("video_name,label\n", "no samples"),
        ("video_name,label\n1,calm\n", r":2: 'calm' is not a DFEW label"),
    ],
)
def test_dfew_csv_errors(tmp_path, body, msg):
    path = tmp_path / "l.csv"
    path.write_text(body)
    with pytest.raises(LabelFileError, match=msg):
        read_dfew_csv(path)


def test_mafw_txt(tmp_path):
    path = tmp_path / "test.txt"
    path.write_text("00025.mp4 anger\n00026.mp4 happiness\n\n00027.mp4 contempt\n")
    assert read_name_label_txt(path, "MAFW") == {"25": "anger", "26": "happiness", "27": "contempt"}
    path.write_text("00025.mp4 anger extra\n")
    with pytest.raises(LabelFileError, match=r"test\.txt:1: expected 'clip label'"):
        read_name_label_txt(path, "MAFW")
    path.write_text("00025.mp4 rage-ish\n")
    with pytest.raises(LabelFileError, match=r"test\.txt:1: 'rage-ish' is not a MAFW label"):
        read_name_label_txt(path, "MAFW")


def _xlsx(path, rows):
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.save(path)


def test_mafw_xlsx(tmp_path):
    path = tmp_path / "single-set.xlsx"
    header = ["clip"] + [f"c{i}" for i in range(1, 12)] + ["label"]
    _xlsx(
        path,
        [["MAFW single-label set"], header, ["00001.mp4"] + [None] * 11 + [4], ["00002.mp4"] + [None] * 11 + [11]],
    )
    assert read_mafw_xlsx(path) == {"1": "happiness", "2": "disappointment"}
    _xlsx(path, [header, ["00001.mp4"] + [None] * 11 + [4], ["00002.mp4"] + [None] * 11 + ["1,3"]])
    with pytest.raises(LabelFileError, match="row 3: compound label '1,3'"):
        read_mafw_xlsx(path)
    (tmp_path / "bad.xlsx").write_text("not a workbook")
    with pytest.raises(LabelFileError, match="cannot read as .xlsx"):
        read_mafw_xlsx(tmp_path / "bad.xlsx")


def test_emer_csv(tmp_path):
    path = tmp_path / "gt-eng.csv"
    path.write_text(
        'names,emotions,subtitles,reasons\nsample_1,worried,"Hi, you",He frowns and sighs.\n'
        "sample_2,happy,,She laughs.\n"
    )
    samples = read_emer_csv(path)
    assert [(s.id, s.label, s.reason, s.subtitle) for s in samples] == [
        ("sample_1", "worried", "He frowns and sighs.", "Hi, you"),
        ("sample_2", "happy", "She laughs.", None),
    ]
    path.write_text("names,emotions,subtitles,reasons\nsample_1,worried,,\n")
    with pytest.raises(LabelFileError, match=r":2: sample 'sample_1' has an empty 'reasons'"):
        read_emer_csv(path)
    with pytest.raises(LabelFileError, match="no column 'why'"):
        read_emer_csv(path, reason_column="why")


def test_read_label_file_dispatch(tmp_path):
    (tmp_path / "a.csv").write_text("v,l\n1,2\n")
    assert read_label_file(tmp_path / "a.csv", "DFEW") == {"1": "sad"}
    (tmp_path / "a.yaml").write_text("")
    with pytest.raises(LabelFileError, match="unsupported label file type"):
        read_label_file(tmp_path / "a.yaml", "DFEW")
    with pytest.raises(LabelFileError, match="not found"):
        read_label_file(tmp_path / "nope.csv", "DFEW")


def test_fold_files(tmp_path):
    (tmp_path / "label").mkdir()
    for fold in range(1, 6):
        for split in ("train", "test"):
            (tmp_path / "label" / f"single_{split}set_{fold}.csv").write_text("v,l\n1,1\n")
            d = tmp_path / "MAFW" / "Train & Test Set" / "single" / "no_caption" / f"set_{fold}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{split}.txt").write_text("1.mp4 anger\n")
    assert fold_label_file("DFEW", tmp_path, 3, "test").name == "single_testset_3.csv"
    assert fold_label_file("MAFW", tmp_path / "MAFW", 5, "train").parts[-2:] == ("set_5", "train.txt")
    with pytest.raises(LabelFileError, match="fold must be 1..5"):
        fold_label_file("DFEW", tmp_path, 6, "test")
    with pytest.raises(LabelFileError, match="no fold files"):
        fold_label_file("EMER", tmp_path, 1, "test")


def test_dfew_csv_without_header_keeps_its_first_sample(tmp_path):
    path = tmp_path / "custom.csv"
    path.write_text("clip_a,1\nclip_b,2\n")  # no header, non-numeric ids
    assert read_dfew_csv(path) == {"clip_a": "happy", "clip_b": "sad"}
    path.write_text("00001,1\n00002,2\n")
    assert read_dfew_csv(path) == {"1": "happy", "2": "sad"}


@pytest.mark.parametrize(
    "first_row,message",
    [("00001,9", r":1: label id 9 is outside 1..7"), ("00001,angre", r":1: 'angre' is not a DFEW label")],
)
def test_dfew_csv_bad_first_data_row_is_an_error_not_a_header(tmp_path, first_row, message):
    path = tmp_path / "l.csv"
    path.write_text(first_row + "\n00002,2\n")
    with pytest.raises(LabelFileError, match=message):
        read_dfew_csv(path)


def test_dfew_csv_rows_must_be_id_and_label(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("video_name,label\n1,1,5\n")
    with pytest.raises(LabelFileError, match=r":2: expected 'video_id,label_id', got '1,1,5'"):
        read_dfew_csv(path)
    path.write_text("video_name,label\n1,1,\n")  # a trailing comma is not a third column
    assert read_dfew_csv(path) == {"1": "happy"}


@pytest.mark.parametrize(
    "label,message",
    [
        (12, "row 3: label id 12 is outside 1..11"),
        ("angre", "row 3: 'angre' is not a MAFW label"),
        ("1,3", "row 3: compound label '1,3'"),
        (None, "row 3: missing clip name or label"),
    ],
)
def test_mafw_xlsx_bad_first_data_row_is_an_error_not_a_header(tmp_path, label, message):
    path = tmp_path / "single-set.xlsx"
    header = ["clip"] + [f"c{i}" for i in range(1, 12)] + ["label"]
    rows = [["MAFW single-label set"], header, ["00001.mp4"] + [None] * 11 + [label]]
    _xlsx(path, rows + [["00002.mp4"] + [None] * 11 + [4]])
    with pytest.raises(LabelFileError, match=message):
        read_mafw_xlsx(path)


def test_label_messages_use_the_right_article(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("s1 neutral\n")
    with pytest.raises(LabelFileError, match="'neutral' is not an EMER label"):
        read_name_label_txt(path, "EMER")
