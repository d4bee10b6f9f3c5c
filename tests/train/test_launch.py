"""Launch paths: torchrun + DeepSpeed ZeRO-3 on CPU, the launch script, the Slurm template, the configs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
import torch

from erv.model import load_pretrained
from erv.train.sft import parse_sft_args, train_sft
from tests.train.conftest import REPO, recipe_argv, weights

SCRIPT = REPO / "scripts" / "finetune_omni_add_reasoning.sh"
SBATCH = REPO / "scripts" / "slurm" / "train.sbatch"


def _env(**extra) -> dict:
    bin_dir = os.path.dirname(sys.executable)
    return dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{REPO}",
        OMP_NUM_THREADS="1",
        **extra,
    )


@pytest.mark.slow
def test_torchrun_two_processes_zero3_on_cpu(release_without_dropout, sft_data, tmp_path):
    """Two processes x batch 1 under ZeRO-3 train exactly like one process x batch 2, and the
    gathered output folder loads with load_pretrained.

    Plain SGD, not AdamW: Adam's first steps move every weight by about lr whatever the size of
    its gradient, so a weight whose gradient is near zero can move either way depending on the
    order of the all-reduce sums. SGD keeps each weight's difference proportional to the
    rounding of its gradient, which is what the comparison is about."""
    common = dict(max_steps=2, save_steps=2, dataloader_num_workers=0, optim="sgd")
    out = tmp_path / "zero3"
    argv = recipe_argv(
        release_without_dropout,
        sft_data,
        out,
        per_device_train_batch_size=1,
        deepspeed=REPO / "configs" / "deepspeed" / "zero3.json",
        **common,
    )
    run = subprocess.run(
        ["bash", str(SCRIPT), *argv[1:]],  # the script takes the recipe first
        cwd=REPO,
        env=_env(NPROC_PER_NODE="2", MASTER_PORT=str(29400 + os.getpid() % 500), DS_ACCELERATOR="cpu"),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "erv sft: done: 2 steps" in run.stdout
    single = tmp_path / "single"
    result = train_sft(
        *parse_sft_args(
            recipe_argv(release_without_dropout, sft_data, single, per_device_train_batch_size=2, **common)
        )
    )

    def losses(folder):
        history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
        return [row["loss"] for row in history if "loss" in row]

    assert losses(out) == pytest.approx(losses(single), rel=1e-4)
    model, _ = load_pretrained(out, torch_dtype="float32")
    reference = weights(single)
    initial = weights(release_without_dropout["checkpoint"])
    moved = max(float((reference[k] - initial[k]).abs().max()) for k in reference if k in initial)
    assert moved > 1e-4  # the steps changed the weights far more than the tolerance below
    for name, value in model.state_dict().items():
        if name in reference:
            torch.testing.assert_close(value, reference[name], rtol=1e-5, atol=1e-6)
    assert (out / "checkpoint-2" / "model.safetensors").is_file() and result.global_step == 2


def test_launch_script_reads_torchrun_settings_from_the_environment(tmp_path):
    recipe = REPO / "configs" / "sft" / "emer_0.5b.yaml"
    env = _env(ERV_DRY_RUN="1", NPROC_PER_NODE="4", NNODES="2", NODE_RANK="1", MASTER_ADDR="n1", GLOBAL_BATCH="32")
    run = subprocess.run(["bash", str(SCRIPT), str(recipe), "--seed", "3"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    cmd = shlex.split(run.stdout)
    assert cmd[:11] == [
        "torchrun", "--nproc_per_node", "4", "--nnodes", "2", "--node_rank", "1", "--master_addr", "n1",
        "--master_port", "29500",
    ]  # fmt: skip
    # 32 = 4 per device (recipe) x 4 processes x 2 nodes x 1 accumulation step
    assert cmd[11:] == ["-m", "erv.cli", "sft", "--config", str(recipe), "--gradient_accumulation_steps", "1"] + [
        "--seed",
        "3",
    ]
    env.update(GLOBAL_BATCH="20")
    bad = subprocess.run(["bash", str(SCRIPT), str(recipe)], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "not a multiple" in bad.stderr
    missing = subprocess.run(["bash", str(SCRIPT), "nope.yaml"], env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_slurm_template_derives_torchrun_variables(tmp_path):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "scontrol").write_text("#!/bin/sh\nprintf 'gpu-a01\\ngpu-a02\\n'\n")
    # srun runs the per-node command once, as node 1 would
    (stubs / "srun").write_text('#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\nSLURM_NODEID=1 exec "$@"\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    env = _env(
        ERV_DRY_RUN="1",
        SLURM_NNODES="2",
        SLURM_GPUS_ON_NODE="8",
        SLURM_JOB_NODELIST="gpu-a[01-02]",
        SLURM_JOB_ID="1234",
    )
    env["PATH"] = f"{stubs}{os.pathsep}{env['PATH']}"
    env.pop("NPROC_PER_NODE", None)
    run = subprocess.run(
        ["bash", str(SBATCH), "configs/sft/emer_7b.yaml"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    cmd = shlex.split(run.stdout.strip().splitlines()[-1])
    flags = dict(zip(cmd[1:11:2], cmd[2:11:2], strict=True))
    assert flags == {
        "--nproc_per_node": "8",
        "--nnodes": "2",
        "--node_rank": "1",
        "--master_addr": "gpu-a01",
        "--master_port": "29734",
    }


def test_deepspeed_and_accelerate_configs():
    from accelerate.commands.config.config_args import load_config_from_file

    stages = {}
    for name in ("zero2", "zero3", "zero3_offload"):
        cfg = json.loads((REPO / "configs" / "deepspeed" / f"{name}.json").read_text())
        stages[name] = cfg["zero_optimization"]["stage"]
        for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
            assert cfg[key] == "auto", (name, key)
        assert cfg["bf16"]["enabled"] == "auto"
    assert stages == {"zero2": 2, "zero3": 3, "zero3_offload": 3}
    for name in ("zero3", "zero3_offload"):
        cfg = json.loads((REPO / "configs" / "deepspeed" / f"{name}.json").read_text())
        assert cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    for name in ("ddp", "zero2", "zero3"):
        cfg = load_config_from_file(str(REPO / "configs" / "accelerate" / f"{name}.yaml"))
        if name != "ddp":
            assert (REPO / cfg.deepspeed_config["deepspeed_config_file"]).is_file()


@pytest.mark.parametrize(("recipe", "epochs", "frames_px"), [("emer_0.5b", 5, 224), ("emer_7b", 10, 384)])
def test_paper_recipes(recipe, epochs, frames_px):
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    try:
        model_args, data_args, args = parse_sft_args(
            ["--config", str(REPO / "configs" / "sft" / f"{recipe}.yaml"), "--use_cpu", "true"]
        )
        assert args.num_train_epochs == epochs and args.learning_rate == 2e-5
        assert args.lr_scheduler_type == "cosine" and args.warmup_steps == 0.03 and args.bf16
        assert args.per_device_train_batch_size * args.gradient_accumulation_steps * 8 == 32  # 8 GPUs
        assert args.activation_checkpointing and args.max_length == 2048 and data_args.num_frames == 8
        assert args.hf_deepspeed_config.is_zero3() and args.resume_from_checkpoint == "auto"
        assert model_args.tune_parts == ["llm", "mm_projector", "audio_projector", "bert_gate", "vision_tower"]
        assert (
            data_args.aspect_ratio == "pad"
            and str(frames_px) in (REPO / "configs" / "sft" / f"{recipe}.yaml").read_text()
        )
    finally:
        unset_hf_deepspeed_config()  # parsing a ZeRO-3 recipe registers it process-wide
