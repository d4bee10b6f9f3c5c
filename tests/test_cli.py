"""The `erv` dispatcher: user errors are one line with exit 2, never a traceback; pipes close quietly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from erv.cli import main as erv_main
from tests.helpers.judge import write_predictions
from tests.helpers.paths import subprocess_env


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Inputs a user may get wrong, in a scratch folder that is the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ERV_CLI_KEY", "sk-cli-test")
    monkeypatch.delenv("ERV_NO_SUCH_KEY", raising=False)
    write_predictions(tmp_path / "P.jsonl", 3)
    (tmp_path / "file.txt").write_text("x\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "outputs").mkdir()
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 triste\n".encode("latin-1"))
    (tmp_path / "texts.jsonl").write_text(json.dumps({"text": "he cries", "labels": ["sad"]}) + "\n")
    (tmp_path / "labels.csv").write_text("video_name,label\n1,1\n")
    return tmp_path


P = ["--predictions", "P.jsonl", "--dataset", "DFEW"]
JUDGE = ["judge", *P, "--api-key-env", "ERV_CLI_KEY", "--no-progress"]
PREPARE = ["data", "prepare", "--dataset", "DFEW", "--video-dir", ".", "--labels", "labels.csv"]

BAD_INVOCATIONS = {
    "evaluate: predictions is a folder": (["evaluate", "--predictions", "folder", "--dataset", "DFEW"], "folder"),
    "evaluate: --json under a file": (["evaluate", *P, "--json", "file.txt/m.json"], "file.txt is a file"),
    "evaluate: --plots is a file": (["evaluate", *P, "--plots", "file.txt"], "is a file; give a folder"),
    "evaluate: --report is a folder": (["evaluate", *P, "--report", "folder"], "is a folder"),
    "evaluate: --json is the predictions": (["evaluate", *P, "--json", "P.jsonl"], "also an input"),
    "evaluate: negative --bootstrap": (["evaluate", *P, "--bootstrap", "-5"], "--bootstrap must be 0"),
    "judge: --out is a folder": ([*JUDGE, "--out", "folder"], "is a folder"),
    "judge: --out under a file": ([*JUDGE, "--out", "file.txt/J.jsonl"], "file.txt is a file"),
    "judge: --cache under a file": ([*JUDGE, "--out", "J.jsonl", "--cache", "file.txt/c.sqlite"], "is a file"),
    "judge: invalid --base-url": ([*JUDGE, "--out", "J.jsonl", "--base-url", "not a url"], "not an http(s) URL"),
    "judge: no key": (
        ["judge", *P, "--out", "new/J.jsonl", "--api-key-env", "ERV_NO_SUCH_KEY"],
        "ERV_NO_SUCH_KEY is not set",
    ),
    "judge agreement: --json under a file": (
        ["judge", "agreement", "P.jsonl", "P.jsonl", *P, "--json", "file.txt/a.json"],
        "file.txt is a file",
    ),
    "judge testserver: missing rules file": (["judge", "testserver", "--rules", "nope.json"], "cannot read"),
    "judge testserver: bad port": (["judge", "testserver", "--port", "99999"], "--port must be 0..65535"),
    "data prepare: missing --prompt-file": ([*PREPARE, "--out", "o.json", "--prompt-file", "nope.txt"], "not found"),
    "data prepare: empty --prompt-file": ([*PREPARE, "--out", "o.json", "--prompt-file", "empty.txt"], "is empty"),
    "data prepare: --out is a folder": ([*PREPARE, "--out", "folder"], "is a folder"),
    "data prepare: --out is the label file": ([*PREPARE, "--out", "labels.csv"], "also an input"),
    "data prepare: labels file is a folder": (
        ["data", "prepare", "--dataset", "DFEW", "--video-dir", ".", "--labels", "folder", "--out", "o.json"],
        "is a folder",
    ),
    "verifier data: empty input": (["verifier", "data", "--inputs", "empty.txt", "--out", "t.jsonl"], "no records"),
    "verifier data: not UTF-8": (["verifier", "data", "--inputs", "latin1.txt", "--out", "t.jsonl"], "not UTF-8"),
    "verifier data: --out under a file": (
        ["verifier", "data", "--inputs", "texts.jsonl", "--out", "file.txt/t.jsonl"],
        "file.txt is a file",
    ),
    "verifier data: --out is the input": (
        ["verifier", "data", "--inputs", "texts.jsonl", "--out", "texts.jsonl"],
        "also an input",
    ),
    "verifier train: missing recipe": (["verifier", "train", "--config", "nope.yaml"], "recipe file not found"),
    "verifier train: recipe is a folder": (["verifier", "train", "--config", "folder"], "is a folder"),
    "verifier train: missing backbone": (
        ["verifier", "train", "--model_name_or_path", "/abs/missing", "--train_files", "missing.jsonl"],
        "model_name_or_path folder /abs/missing does not exist",
    ),
    "verifier train: output_dir is a file": (
        ["verifier", "train", "--model_name_or_path", "folder", "--train_files", "texts.jsonl"]
        + ["--output_dir", "file.txt"],
        "output_dir file.txt is a file",
    ),
    "verifier eval: missing path-like model": (
        ["verifier", "eval", "--model", "outputs/verifier-paper", "--data", "texts.jsonl"],
        "verifier folder outputs/verifier-paper does not exist",
    ),
    "verifier eval: threshold above 1": (
        ["verifier", "eval", "--model", "folder", "--data", "texts.jsonl", "--threshold", "2"],
        "outside [0, 1]",
    ),
    "verifier eval: sweep above 1": (
        ["verifier", "eval", "--model", "folder", "--data", "texts.jsonl", "--sweep", "0.5", "1.5"],
        "--sweep 1.5 is outside [0, 1]",
    ),
    "verifier predict: threshold above 1": (
        ["verifier", "predict", "--model", "folder", "--input", "texts.jsonl", "--out", "o.jsonl", "--threshold", "2"],
        "--threshold 2.0 is outside [0, 1]",
    ),
    "verifier predict: top_k 0": (
        ["verifier", "predict", "--model", "folder", "--input", "texts.jsonl", "--out", "o.jsonl", "--top_k", "0"],
        "--top_k must be at least 1",
    ),
    "verifier predict: --out is the input": (
        ["verifier", "predict", "--model", "folder", "--input", "texts.jsonl", "--out", "texts.jsonl"],
        "also an input",
    ),
    "verifier predict: not UTF-8": (
        ["verifier", "predict", "--model", "folder", "--input", "latin1.txt", "--out", "o.jsonl"],
        "not UTF-8",
    ),
    "verifier augment: --out under a file": (
        ["verifier", "augment", "pseudo-label", *P, "--out", "file.txt/x.jsonl", "--api-key-env", "ERV_CLI_KEY"],
        "file.txt is a file",
    ),
    "demo: --out is a file": (["demo", "--out", "file.txt"], "is a file; give a folder"),
}


@pytest.mark.parametrize("name", list(BAD_INVOCATIONS))
def test_user_errors_are_one_line_and_exit_2(world, capsys, name):
    argv, expected = BAD_INVOCATIONS[name]
    before = sorted(p.name for p in world.iterdir())
    assert erv_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and " error: " in err[0] and expected in err[0], err
    assert sorted(p.name for p in world.iterdir()) == before  # nothing was created: no folder, lock or file


def test_argparse_usage_errors_exit_2(world, capsys):
    with pytest.raises(SystemExit) as exc:  # --labels and --label-dir are alternatives
        erv_main([*PREPARE, "--label-dir", ".", "--out", "o.json"])
    assert exc.value.code == 2 and "not allowed with argument --labels" in capsys.readouterr().err


def test_environment_errors_are_one_line(world, capsys, monkeypatch):
    def disk_full(argv):
        raise OSError(28, "No space left on device", "/data/out.jsonl")

    monkeypatch.setattr("erv.eval.evaluate.main", disk_full)
    assert erv_main(["evaluate"]) == 2
    assert capsys.readouterr().err == "erv evaluate: error: /data/out.jsonl: No space left on device\n"


def test_a_closed_pipe_ends_quietly_like_a_unix_tool(tmp_path):
    """`erv evaluate ... | head -1`: no BrokenPipeError traceback, status 141 as for SIGPIPE."""
    write_predictions(tmp_path / "P.jsonl", 7)
    proc = subprocess.Popen(
        [sys.executable, "-m", "erv.cli", "evaluate", "--predictions", str(tmp_path / "P.jsonl")]
        + ["--dataset", "DFEW", "--bootstrap", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(),
    )
    proc.stdout.close()  # the reader is gone before the table is printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 128 + 13  # the shell's status of a process killed by SIGPIPE
    assert "Traceback" not in err and "BrokenPipeError" not in err and err == ""
