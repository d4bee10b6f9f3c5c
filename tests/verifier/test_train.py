"""A tiny verifier trained in-test learns a compositional emotion-text task.

Training and held-out sentences come from different templates and leading phrases, so only
the emotion cue words carry over: a model that memorised sentences would fail. The corpus,
tokenizer and RoBERTa are built here; nothing is downloaded.
"""

from __future__ import annotations

import json

import pytest
import torch

from erv.cli import main as erv_main
from erv.data.emotions import DFEW, GOEMOTIONS_LABELS, MAFW
from erv.errors import ConfigError
from erv.testing.synthetic_text import corpus_words, save_tiny_verifier, synthetic_corpus, tiny_roberta, word_tokenizer
from erv.verifier.data import TextExample, load_examples, write_examples
from erv.verifier.eval import EvalSettings, evaluate_verifier
from erv.verifier.model import Verifier
from erv.verifier.train import MultiLabelDataset, head_targets, parse_train_args, train_verifier

RECIPE = """
model_name_or_path: {base}
head: taxonomy
max_length: 32
train_files: [{train}]
eval_files: [{held_out}]
taxonomy: DFEW
output_dir: {out}
num_train_epochs: 15
per_device_train_batch_size: 16
learning_rate: 2.0e-3
warmup_steps: 30
eval_strategy: "no"
save_strategy: "no"
logging_steps: 1000
disable_tqdm: true
use_cpu: true
report_to: none
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("verifier")
    tok = word_tokenizer(corpus_words())
    base = tiny_roberta(tok, DFEW.labels, hidden=64, layers=1, heads=4, dropout=0.0, init_range=0.1, seed=1)
    base.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    write_examples(root / "train.jsonl", [TextExample(t, lab) for t, lab in synthetic_corpus(800, seed=1)])
    held_out = [TextExample(t, lab) for t, lab in synthetic_corpus(300, seed=2, held_out=True)]
    write_examples(root / "held_out.jsonl", held_out)
    (root / "recipe.yaml").write_text(
        RECIPE.format(
            base=root / "base", train=root / "train.jsonl", held_out=root / "held_out.jsonl", out=root / "out"
        )
    )
    # recipe + a command-line override, parsed as `erv verifier train` does
    args = parse_train_args(["--config", str(root / "recipe.yaml"), "--seed", "1"])
    result = train_verifier(*args)
    return {"root": root, "result": result, "held_out": held_out, "base": Verifier(base, tok)}


def test_trained_verifier_generalises_to_held_out_sentences(trained):
    result = trained["result"]
    assert result.train_examples == 800 and result.eval_examples == 300
    assert result.metrics["macro_f1"] >= 0.9, result.metrics["per_class"]
    on_disk = json.loads((result.output_dir / "eval_results.json").read_text())
    assert on_disk["macro_f1"] == pytest.approx(result.metrics["macro_f1"])
    assert {row["threshold"] for row in on_disk["sweep"]} >= {0.1, 0.5, 0.9}
    # the same sentences scored by the untrained backbone: the skill was learned, not given
    untrained = evaluate_verifier(trained["base"], trained["held_out"], "DFEW", EvalSettings(sweep=()))
    assert untrained["macro_f1"] < 0.5


def test_save_pretrained_then_load_gives_identical_predictions(trained, tmp_path):
    result = trained["result"]
    texts = [ex.text for ex in trained["held_out"][:50]]
    in_memory = Verifier(result.model, result.tokenizer).predict_proba(texts)
    loaded = Verifier.from_pretrained(result.output_dir, device="cpu")
    assert loaded.default_taxonomy is DFEW and loaded.layout.kind == "labels"
    assert torch.equal(loaded.predict_proba(texts), in_memory)
    loaded.model.save_pretrained(tmp_path)
    loaded.tokenizer.save_pretrained(tmp_path)
    again = Verifier.from_pretrained(tmp_path, device="cpu")
    assert torch.equal(again.predict_proba(texts), in_memory)
    summary = json.loads((result.output_dir / "verifier_data_summary.json").read_text())
    assert summary["label_counts"]["neutral"] > 0 and summary["import"]["kept"] == 1100


def test_cli_eval_and_resumable_predict(trained, tmp_path, capsys):
    out = trained["result"].output_dir
    held = trained["root"] / "held_out.jsonl"
    assert (
        erv_main(
            [
                "verifier",
                "eval",
                "--model",
                str(out),
                "--data",
                str(held),
                "--json",
                str(tmp_path / "eval.json"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["taxonomy"] == "DFEW" and report["n"] == 300 and report["macro_f1"] >= 0.9
    assert set(report["per_class"]) == set(DFEW.labels)

    sentences = tmp_path / "sentences.txt"
    sentences.write_text("clearly the nurse seems sobbing at night .\nthroughout the clip the boy stays grinning .\n")
    target = tmp_path / "labels.jsonl"
    assert (
        erv_main(
            [
                "verifier",
                "predict",
                "--model",
                str(out),
                "--input",
                str(sentences),
                "--out",
                str(target),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["labels"] for r in rows] == [["sad"], ["happy"]]
    sentences.write_text(sentences.read_text() + "we see the driver furious in the car .\n")
    assert (
        erv_main(
            [
                "verifier",
                "predict",
                "--model",
                str(out),
                "--input",
                str(sentences),
                "--out",
                str(target),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "1 texts scored, 0 copied (same text), 2 already in the output" in capsys.readouterr().out
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == 3 and rows[2]["labels"] == ["angry"]


def test_goemotions_head_trains_dataset_labels_on_their_goemotions_columns(tmp_path):
    head_labels, columns = head_targets("goemotions", MAFW)
    assert head_labels == GOEMOTIONS_LABELS and columns["helplessness"] == 16 and columns["contempt"] == 10
    tok = word_tokenizer(corpus_words())
    data = MultiLabelDataset([TextExample("the man is sobbing .", ("sadness", "helplessness"))], tok, columns, 28, 32)
    assert [j for j, v in enumerate(data[0]["labels"]) if v] == [16, 25]
    with pytest.raises(ConfigError, match="no GoEmotions counterpart"):
        head_targets("goemotions", "RAVDESS")

    # a short run from a 7-label backbone: the head becomes the 28-label GoEmotions head
    save_tiny_verifier(tmp_path / "base", tok, DFEW.labels, hidden=32, layers=1, heads=2)
    write_examples(tmp_path / "t.jsonl", [TextExample(t, lab) for t, lab in synthetic_corpus(40, seed=5)])
    args = parse_train_args(
        [
            "--model_name_or_path",
            str(tmp_path / "base"),
            "--head",
            "goemotions",
            "--train_files",
            str(tmp_path / "t.jsonl"),
            "--taxonomy",
            "DFEW",
            "--eval_fraction",
            "0.2",
            "--output_dir",
            str(tmp_path / "out"),
            "--num_train_epochs",
            "1",
            "--per_device_train_batch_size",
            "8",
            "--use_cpu",
            "true",
            "--save_strategy",
            "no",
            "--eval_strategy",
            "no",
            "--disable_tqdm",
            "true",
            "--max_length",
            "32",
        ]
    )
    result = train_verifier(*args)
    assert result.train_examples + result.eval_examples == 40
    loaded = Verifier.from_pretrained(tmp_path / "out", device="cpu")
    assert loaded.layout.kind == "goemotions" and loaded.default_taxonomy is DFEW
    assert loaded.columns()["happy"] == 17
    assert len(load_examples(tmp_path / "out" / "eval_examples.jsonl", "DFEW")) == result.eval_examples


def test_resuming_a_run_on_other_data_is_refused(tmp_path, capsys):
    tok = word_tokenizer(corpus_words())
    save_tiny_verifier(tmp_path / "base", tok, DFEW.labels, hidden=16, layers=1, heads=2, seed=3)
    write_examples(tmp_path / "a.jsonl", [TextExample(t, lab) for t, lab in synthetic_corpus(40, seed=5)])
    write_examples(tmp_path / "b.jsonl", [TextExample(t, lab) for t, lab in synthetic_corpus(40, seed=6)])
    argv = ["verifier", "train", "--model_name_or_path", str(tmp_path / "base"), "--head", "taxonomy"]
    argv += ["--taxonomy", "DFEW", "--eval_fraction", "0", "--output_dir", str(tmp_path / "run"), "--use_cpu", "true"]
    argv += ["--num_train_epochs", "1", "--save_strategy", "epoch", "--eval_strategy", "no", "--report_to", "none"]
    argv += ["--disable_tqdm", "true", "--max_length", "32"]
    assert erv_main([*argv, "--train_files", str(tmp_path / "a.jsonl")]) == 0
    assert (tmp_path / "run" / "erv_run.json").is_file()
    capsys.readouterr()
    resume = ["--resume_from_checkpoint", "true"]
    assert erv_main([*argv, *resume, "--train_files", str(tmp_path / "b.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "holds a run with another train_data_hash" in err and "would mix two runs" in err
