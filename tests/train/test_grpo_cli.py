"""`erv grpo` from recipes: a tiny run, its checkpoint, recipes, launching, and bad input."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from erv.cli import main as erv_main
from erv.model import load_pretrained
from erv.train.grpo import parse_grpo_args
from erv.train.grpo_trainer import HumanOmniGRPOTrainer
from tests.helpers.grpo import build_world, grpo_records
from tests.helpers.paths import write_records

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "grpo" / "tiny.yaml"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("grpo-cli"))


def tiny_args(world, tmp_path, *extra: str) -> list[str]:
    return [
        "grpo",
        "--config",
        str(TINY),
        "--model_name_or_path",
        str(world.checkpoint),
        "--bert",
        str(world.root / "bert-tiny"),
        "--dataset_name",
        str(world.records),
        "--video_root",
        str(world.root),
        "--verifier",
        str(world.verifier),
        "--output_dir",
        str(tmp_path / "out"),
        "--max_steps",
        "2",
        "--max_completion_length",
        "8",
        *extra,
    ]


def test_a_tiny_run_saves_a_checkpoint_that_load_pretrained_loads(world, tmp_path, capsys):
    assert erv_main(tiny_args(world, tmp_path)) == 0
    out = capsys.readouterr().out
    summary = [line for line in out.splitlines() if line.startswith("erv grpo: done")]
    assert summary and "2 steps" in summary[0] and "on 4 of 4 prompts" in summary[0]
    assert "explanation_reward" in summary[0]
    model, processor = load_pretrained(tmp_path / "out", torch_dtype=torch.float32)
    assert model.config.num_frames == 4 and processor.tokenizer.chat_template
    start = load_pretrained(world.checkpoint, torch_dtype=torch.float32)[0].state_dict()
    trained = model.state_dict()
    assert not torch.equal(start["model.layers.0.mlp.up_proj.weight"], trained["model.layers.0.mlp.up_proj.weight"])
    assert torch.equal(
        start["model.vision_tower.vision_tower.vision_model.embeddings.patch_embedding.weight"],
        trained["model.vision_tower.vision_tower.vision_model.embeddings.patch_embedding.weight"],
    )


def test_a_missing_clip_is_skipped_before_training_and_groups_stay_whole(world, tmp_path, capsys, monkeypatch):
    records = grpo_records(world.clips) + grpo_records([world.root / "gone.mp4"])
    records[-1]["id"] = "gone"
    path = write_records(tmp_path / "with_missing.jsonl", records)
    sizes = []
    build = HumanOmniGRPOTrainer._build_round

    def recording(self, rows, media):
        round_ = build(self, rows, media)
        sizes.append(torch.bincount(round_.row_prompt).tolist())
        return round_

    monkeypatch.setattr(HumanOmniGRPOTrainer, "_build_round", recording)
    args = tiny_args(world, tmp_path, "--dataset_name", str(path), "--on_media_error", "skip")
    assert erv_main(args) == 0
    assert "on 4 of 5 prompts; skipped 1 for missing or unreadable media" in capsys.readouterr().out
    skipped = [json.loads(line) for line in (tmp_path / "out" / "skipped_media.jsonl").read_text().splitlines()]
    assert [row["path"] for row in skipped] == [str(world.root / "gone.mp4")]
    assert sizes and all(group == [4] * len(group) for group in sizes)  # G = 4 completions for every prompt
    code = erv_main(tiny_args(world, tmp_path, "--dataset_name", str(path), "--on_media_error", "error"))
    assert code == 2
    assert "gone.mp4" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--reward_funcs", "format", "coherence"],
            "unknown reward 'coherence'; registered rewards: format, accuracy, explanation, fgce",
        ),
        (["--reward_weights", "1.0", "2.0"], "reward_weights has 2 values for 3 reward functions"),
        (["--verifier", "/nonexistent/verifier"], "/nonexistent/verifier"),
        (["--model_name_or_path", "/nonexistent/checkpoint"], "/nonexistent/checkpoint"),
        (["--no_such_field", "1"], "no_such_field"),
        (["--tune_parts", "llm", "towers"], "unknown tune_parts name 'towers'"),
    ],
)
def test_bad_input_is_one_line_before_anything_trains(world, tmp_path, capsys, extra, message):
    assert erv_main(tiny_args(world, tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("erv grpo: error:") and message in err[0], err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_recipes_parse_and_hold_the_paper_and_released_settings():
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    try:
        recipes = {
            path.stem: parse_grpo_args(["--config", str(path), "--use_cpu", "true"])
            for path in (REPO / "configs" / "grpo").glob("*.yaml")
        }
    finally:
        unset_hf_deepspeed_config()
    assert {
        "erv_0.5b",
        "erv_7b",
        "released_0.5b",
        "baseline_0.5b",
        "fgce_0.5b",
        "tiny",
        "ablation_no_neutral_filter_0.5b",
        "ablation_no_sentence_level_0.5b",
        "ablation_no_augmentation_0.5b",
    } <= set(recipes)
    _, _, rewards, paper = recipes["erv_0.5b"]
    assert (
        paper.num_generations,
        paper.beta,
        paper.learning_rate,
        paper.lr_scheduler_type,
        paper.num_train_epochs,
        paper.bf16,
    ) == (16, 0.04, 1e-6, "cosine", 2, True)
    assert paper.per_device_train_batch_size == 16 and paper.gradient_accumulation_steps == 2
    assert rewards.reward_funcs == ["format", "accuracy", "explanation"]
    _, _, _, released = recipes["released_0.5b"]
    assert (
        released.num_generations,
        released.temperature,
        released.max_completion_length,
        released.loss_type,
        released.num_iterations,
        released.use_bias_correction_kl,
        released.scale_rewards,
    ) == (4, 1.0, 512, "grpo", 1, False, "group")
    assert recipes["baseline_0.5b"][2].reward_funcs == ["format", "accuracy"]
    assert recipes["ablation_no_neutral_filter_0.5b"][2].neutral_filter is False
    assert recipes["ablation_no_sentence_level_0.5b"][2].sentence_level is False
    assert recipes["fgce_0.5b"][2].reward_funcs[-1] == "fgce"
    model_args = recipes["erv_0.5b"][0]
    assert model_args.tune_parts == ["llm", "mm_projector", "audio_projector", "bert", "bert_gate"]


@pytest.mark.parametrize("trainer", ["sft", "grpo"])
def test_report_to_with_a_comma_names_both_backends(trainer):
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    from erv.train.sft import parse_sft_args

    parse = {"sft": parse_sft_args, "grpo": parse_grpo_args}[trainer]
    recipe = REPO / "configs" / trainer / "tiny.yaml"
    try:
        training_args = parse(["--config", str(recipe), "--use_cpu", "true", "--report_to", "tensorboard,wandb"])[-1]
    finally:
        unset_hf_deepspeed_config()
    assert training_args.report_to == ["tensorboard", "wandb"]


def test_launch_script_builds_the_torchrun_command():
    env = dict(os.environ, ERV_DRY_RUN="1", NPROC_PER_NODE="8", GLOBAL_BATCH="64")
    run = subprocess.run(
        [
            "bash",
            str(REPO / "scripts" / "run_grpo_erv.sh"),
            "configs/grpo/released_0.5b.yaml",
            "--learning_rate",
            "2e-6",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    cmd = shlex.split(run.stdout.strip())
    assert cmd[:3] == ["torchrun", "--nproc_per_node", "8"]
    tail = cmd[cmd.index("erv.cli") :]
    assert tail == [
        "erv.cli",
        "grpo",
        "--config",
        "configs/grpo/released_0.5b.yaml",
        "--gradient_accumulation_steps",
        "2",
        "--learning_rate",
        "2e-6",
    ]  # 64 completions = 4 per device x 8 x 2


@pytest.mark.slow
@pytest.mark.parametrize("deepspeed", [None, "configs/deepspeed/zero3.json"])
def test_torchrun_two_processes_on_cpu(world, tmp_path, deepspeed):
    env = dict(
        os.environ,
        NPROC_PER_NODE="2",
        MASTER_PORT=str(29100 + os.getpid() % 700 + (7 if deepspeed else 0)),
        OMP_NUM_THREADS="1",
        DS_ACCELERATOR="cpu",
        PYTHONPATH=str(REPO / "src"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )  # torchrun beside python
    extra = ["--deepspeed", deepspeed] if deepspeed else []
    args = tiny_args(world, tmp_path, "--per_device_train_batch_size", "4", *extra)[3:]  # after `grpo --config TINY`
    run = subprocess.run(
        ["bash", str(REPO / "scripts" / "run_grpo_erv.sh"), str(TINY), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "erv grpo: done: 2 steps" in run.stdout
    model, _ = load_pretrained(tmp_path / "out", torch_dtype=torch.float32)
    assert model.model.vision_tower is not None


def test_a_run_resumes_from_its_last_checkpoint(world, tmp_path, capsys):
    common = ["--save_strategy", "steps", "--save_steps", "1", "--resume_from_checkpoint", "auto"]
    assert erv_main(tiny_args(world, tmp_path, *common)) == 0
    assert (tmp_path / "out" / "checkpoint-2" / "trainer_state.json").is_file()
    capsys.readouterr()
    assert erv_main(tiny_args(world, tmp_path, *common, "--max_steps", "3")) == 0
    assert "erv grpo: done: 3 steps" in capsys.readouterr().out
    state = json.loads((tmp_path / "out" / "checkpoint-3" / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3]
