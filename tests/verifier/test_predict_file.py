"""`erv verifier predict` resumes per text: tied to the text and to the verifier that scored it."""

from __future__ import annotations

import json
import os

import pytest

from erv.cli import main as erv_main
from erv.data.emotions import DFEW
from erv.testing.synthetic_text import save_tiny_verifier, word_tokenizer

WORDS = "he she is sad angry happy looks away cries shouts smiles at the door window and very".split()
TEXTS = ["he cries at the window .", "she smiles .", "he shouts at the door ."]


@pytest.fixture(scope="module")
def verifiers(tmp_path_factory):
    root = tmp_path_factory.mktemp("verifiers")
    tok = word_tokenizer(WORDS)
    for seed in (1, 2):
        save_tiny_verifier(root / f"v{seed}", tok, DFEW.labels, hidden=16, layers=1, heads=2, seed=seed)
    return root


def _predict(model, sentences, out, *extra):
    argv = ["verifier", "predict", "--model", str(model), "--input", str(sentences), "--out", str(out)]
    return erv_main([*argv, "--device", "cpu", "--no_progress", "true", *extra])


def _records(out):
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_line_inserted_at_the_top_is_scored_and_the_others_follow_their_text(verifiers, tmp_path, capsys):
    sentences, out = tmp_path / "s.txt", tmp_path / "labels.jsonl"
    sentences.write_text("\n".join(TEXTS) + "\n")
    assert _predict(verifiers / "v1", sentences, out) == 0
    first = {r["text"]: r for r in _records(out)}
    sentences.write_text("\n".join(["she is very angry ."] + TEXTS) + "\n")
    capsys.readouterr()
    assert _predict(verifiers / "v1", sentences, out) == 0
    assert "1 texts scored, 3 copied (same text), 0 already in the output" in capsys.readouterr().out
    records = _records(out)
    assert [r["text"] for r in records] == ["she is very angry ."] + TEXTS  # each record is its line's text
    assert [r["id"] for r in records] == ["#1", "#2", "#3", "#4"]
    for r in records[1:]:
        assert (r["labels"], r["probs"]) == (first[r["text"]]["labels"], first[r["text"]]["probs"])


def test_the_same_file_by_a_relative_and_an_absolute_path_is_one_input(verifiers, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.txt").write_text("\n".join(TEXTS) + "\n")
    assert _predict(verifiers / "v1", "s.txt", "labels.jsonl") == 0
    assert _predict(verifiers / "v1", os.path.abspath("s.txt"), "labels.jsonl") == 0
    assert "0 texts scored, 0 copied (same text), 3 already in the output" in capsys.readouterr().out
    assert len(_records(tmp_path / "labels.jsonl")) == 3


def test_another_verifier_or_threshold_is_refused_not_mixed(verifiers, tmp_path, capsys):
    sentences, out = tmp_path / "s.txt", tmp_path / "labels.jsonl"
    sentences.write_text("\n".join(TEXTS[:2]) + "\n")
    assert _predict(verifiers / "v1", sentences, out) == 0
    before = out.read_text()
    sentences.write_text("\n".join(TEXTS) + "\n")
    capsys.readouterr()
    assert _predict(verifiers / "v2", sentences, out) == 2
    assert "written by another verifier or with other settings" in capsys.readouterr().err
    assert _predict(verifiers / "v1", sentences, out, "--threshold", "0.3") == 2
    assert out.read_text() == before
    assert _predict(verifiers / "v2", sentences, out, "--overwrite", "true") == 0
    assert len(_records(out)) == 3 and {r["verifier"] for r in _records(out)} == {str(verifiers / "v2")}


def test_an_edited_text_is_scored_again_or_refused(verifiers, tmp_path, capsys):
    sentences, out = tmp_path / "s.jsonl", tmp_path / "labels.jsonl"
    rows = [{"id": f"t{i}", "text": t} for i, t in enumerate(TEXTS)]
    sentences.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _predict(verifiers / "v1", sentences, out) == 0
    rows[1]["text"] = "she is very sad ."
    sentences.write_text("".join(json.dumps(r) + "\n" for r in rows))
    capsys.readouterr()
    assert _predict(verifiers / "v1", sentences, out, "--on_changed", "refuse") == 2
    assert "sample 't1' was computed from another text" in capsys.readouterr().err
    assert _predict(verifiers / "v1", sentences, out) == 0
    printed = capsys.readouterr().out
    assert "1 texts scored" in printed and "1 scored again (text changed)" in printed
    assert [r["text"] for r in _records(out)] == [r["text"] for r in rows]
