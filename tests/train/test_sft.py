"""`erv sft` on the tiny fixture: learning, what trains, saving, resuming, loss normalisation, LoRA."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import TrainerCallback

from erv.cli import main as erv_main
from erv.model import load_model, load_pretrained
from erv.model.processor import MODEL_INPUT_NAMES
from erv.train.data import TrainingCollator, TrainingDataset, read_training_records
from erv.train.parts import part_of
from erv.train.sft import parse_sft_args, train_sft
from tests.train.conftest import REPO, recipe_argv, weights

TUNED = ["llm", "mm_projector", "audio_projector", "bert_gate", "vision_tower"]


def _initial_state(release) -> dict[str, torch.Tensor]:
    """The weights training starts from (towers as the loader reads them from their folders)."""
    model = load_model(release["checkpoint"], bert=str(release["bert"]), torch_dtype="float32")
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def trained(release, sft_data, tmp_path_factory):
    """12 steps of the tiny recipe through the `erv sft` command (vision tower included)."""
    out = tmp_path_factory.mktemp("sft-run") / "out"
    argv = recipe_argv(release, sft_data, out, max_steps=12, save_steps=6, tune_parts=TUNED)
    args = parse_sft_args(argv)
    result = train_sft(*args)
    return {"out": out, "result": result, "argv": argv}


def test_loss_goes_down(trained):
    history = json.loads((trained["out"] / "trainer_state.json").read_text())["log_history"]
    losses = [row["loss"] for row in history if "loss" in row]
    assert len(losses) == 12
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.7 * first, losses


def test_frozen_parts_bit_identical_and_tuned_parts_change(trained, release):
    before = _initial_state(release)
    after = weights(trained["out"])
    changed = {part_of(k): False for k in before}
    for key, value in before.items():
        if key not in after:  # tied lm_head
            continue
        if not torch.equal(after[key], value):
            changed[part_of(key)] = True
    for part in ("bert", "audio_tower"):
        frozen = [k for k in before if part_of(k) == part]
        assert frozen and all(torch.equal(after[k], before[k]) for k in frozen), part
    for part in TUNED:
        assert changed[part], part


def test_optimizer_holds_state_only_for_trainable_parameters(trained, release):
    state = torch.load(trained["out"] / "checkpoint-12" / "optimizer.pt", weights_only=False)
    in_optimizer = sum(len(group["params"]) for group in state["param_groups"])
    model = trained["result"].model
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert in_optimizer == len(trainable) == len(state["state"])  # and every trainable one got a gradient
    assert {part_of(n) for n in trainable} == set(TUNED)


def test_saved_folder_reloads_with_the_same_logits(trained, sft_data):
    result = trained["result"]
    loaded, processor = load_pretrained(trained["out"], torch_dtype="float32")  # towers etc. from config.json
    assert processor.tokenizer.chat_template and loaded.config.tower_weights == "checkpoint"
    dataset = TrainingDataset(
        read_training_records(sft_data, with_answers=True),
        result.processor,
        with_answers=True,
        video_root=sft_data.parent,
        aspect_ratio="pad",
    )
    batch = TrainingCollator(result.processor, padding_side="right")([dataset[0], dataset[3]])
    inputs = {k: batch[k] for k in MODEL_INPUT_NAMES if k in batch}
    with torch.no_grad():
        expected = result.model.eval()(**inputs).logits
        got = loaded.eval()(**inputs).logits
    assert torch.equal(got, expected)
    for name in ("generation_config.json", "tokenizer_config.json", "config.json"):
        assert (trained["out"] / name).is_file()
    config = json.loads((trained["out"] / "config.json").read_text())
    assert os.path.isabs(config["mm_vision_tower"]) and config["num_frames"] == 4 and config["use_cache"]


def test_summary_line(trained):
    line = trained["result"].summary()
    assert line.startswith("erv sft: done: 12 steps") and "on 6 of 6 records" in line and "skipped 0" in line


class _KillAtFirstSave(TrainerCallback):
    """Stands for a crash: SIGKILL right after the first checkpoint is on disk."""

    def on_save(self, args, state, _control, **kwargs):
        os.kill(os.getpid(), 9)


_KILLED_RUN = """
import sys
from tests.train.test_sft import _KillAtFirstSave
from erv.train.sft import parse_sft_args, train_sft
train_sft(*parse_sft_args(sys.argv[1:]), callbacks=[_KillAtFirstSave()])
"""


def _run(code_or_module: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{REPO}", OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.run([sys.executable, *code_or_module], cwd=REPO, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_loss_and_weights(release, sft_data, tmp_path):
    common = dict(max_steps=4, save_steps=2, dataloader_num_workers=1, save_total_limit=5)
    # uninterrupted, through the command line, with both logging back-ends (wandb offline)
    full = tmp_path / "full"
    done = _run(
        ["-m", "erv.cli", "sft", *recipe_argv(release, sft_data, full, report_to="tensorboard,wandb", **common)],
        {"WANDB_MODE": "offline", "WANDB_CONSOLE": "off", "WANDB_SILENT": "true"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "erv sft: done: 4 steps" in done.stdout
    assert list((full / "runs").glob("*/events.out.tfevents.*"))
    assert list((full / "wandb").glob("offline-run-*/run-*.wandb"))

    part = tmp_path / "part"
    killed = _run(["-c", _KILLED_RUN, *recipe_argv(release, sft_data, part, **common)])
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (part / "checkpoint-2" / "trainer_state.json").is_file() and not (part / "checkpoint-4").exists()
    assert erv_main(["sft", *recipe_argv(release, sft_data, part, resume_from_checkpoint="auto", **common)]) == 0

    def losses(folder):
        history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
        return [(row["step"], row["loss"]) for row in history if "loss" in row]

    assert losses(part) == losses(full) and len(losses(full)) == 4
    a, b = weights(full), weights(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _first_step(release, data, out, **overrides):
    """Loss and gradients of the first optimizer step."""

    class Grab(TrainerCallback):
        grads: dict = {}

        def on_pre_optimizer_step(self, args, state, _control, model=None, **kwargs):
            Grab.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}

    args = parse_sft_args(recipe_argv(release, data, out, max_steps=1, save_strategy="no", **overrides))
    result = train_sft(*args, callbacks=[Grab()])
    return result.last_loss, Grab.grads


def test_batch_two_equals_two_accumulated_batches_of_one(release_without_dropout, sft_data, tmp_path):
    lengths = {len(r["conversations"][1]["value"]) for r in json.loads(sft_data.read_text())}
    assert len(lengths) > 3  # answers of different lengths: padding and token counts differ per sample
    loss_a, grads_a = _first_step(
        release_without_dropout, sft_data, tmp_path / "a", per_device_train_batch_size=2, gradient_accumulation_steps=1
    )
    loss_b, grads_b = _first_step(
        release_without_dropout, sft_data, tmp_path / "b", per_device_train_batch_size=1, gradient_accumulation_steps=2
    )
    assert loss_a == pytest.approx(loss_b, rel=1e-4)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-3, atol=1e-5, msg=name)


def test_lora_adapters_on_the_llm_projectors_fully_trained(release, sft_data, tmp_path):
    before = _initial_state(release)
    merged_out = tmp_path / "merged"
    args = parse_sft_args(
        recipe_argv(release, sft_data, merged_out, max_steps=3, save_strategy="no", use_peft="true", lora_r=4)
    )
    result = train_sft(*args)
    after = weights(merged_out)
    assert torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])  # no adapter there
    assert not torch.equal(
        after["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"]
    )
    assert torch.equal(after["model.layers.0.input_layernorm.weight"], before["model.layers.0.input_layernorm.weight"])
    for key in (
        "model.audio_projector.0.weight",
        "model.bert_gate.0.weight",
        "model.mm_projector.mlp_2xgelu_face.0.weight",
    ):
        assert not torch.equal(after[key], before[key]), key
    vision = [k for k in before if k.startswith("model.vision_tower.")]
    assert any(not torch.equal(after[k], before[k]) for k in vision)
    loaded, _ = load_pretrained(merged_out, torch_dtype="float32")
    state = result.model.state_dict()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())

    adapter_out = tmp_path / "adapter"
    args = parse_sft_args(
        recipe_argv(
            release, sft_data, adapter_out, max_steps=1, save_strategy="no", use_peft="true", lora_merge="false"
        )
    )
    train_sft(*args)
    from safetensors.torch import load_file

    adapter = load_file(str(adapter_out / "adapter_model.safetensors"))
    lora = [k for k in adapter if "lora_" in k]
    assert lora and all(".layers." in k for k in lora)
    assert any("audio_projector" in k for k in adapter) and (adapter_out / "tokenizer_config.json").is_file()
