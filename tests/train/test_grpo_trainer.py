"""HumanOmniGRPOTrainer on the tiny model: log-probs, feature reuse, a short run with every reward."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from erv.model import load_pretrained
from erv.rewards import build_rewards
from erv.train.grpo_data import INDEX_KEY, MEDIA_KEY, RolloutCollator, load_grpo_rows
from erv.train.grpo_trainer import HumanOmniGRPOConfig, HumanOmniGRPOTrainer
from tests.helpers.grpo import build_world, grpo_records
from tests.helpers.paths import write_records


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("grpo-world"))


def length_reward(completions, **kwargs):
    """A reward with spread across a group, so that advantages (and gradients) are not all zero."""
    return [float(len(c) % 7) for c in completions]


def config(tmp_path, **overrides) -> HumanOmniGRPOConfig:
    values = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=12,
        max_steps=2,
        learning_rate=5e-3,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        seed=0,
        dataloader_num_workers=0,
        gradient_checkpointing=False,
    )
    values.update(overrides)
    return HumanOmniGRPOConfig(**values)


def trainer_for(world, tmp_path, rows=None, reward_funcs=None, ref=False, attn="sdpa", **overrides):
    model, processor = load_pretrained(world.checkpoint, torch_dtype=torch.float32, attn_implementation=attn)
    ref_model = load_pretrained(world.checkpoint, torch_dtype=torch.float32)[0] if ref else None
    rows = rows if rows is not None else load_grpo_rows(world.records)
    rewards = reward_funcs if reward_funcs is not None else [length_reward]
    trainer = HumanOmniGRPOTrainer(
        model,
        processor,
        rewards,
        config(tmp_path, **overrides),
        train_dataset=Dataset.from_list(rows),
        ref_model=ref_model,
    )
    return trainer, model, processor, ref_model


@pytest.mark.parametrize("shared_prefix", [False, True])
def test_per_token_logps_match_a_direct_forward(world, tmp_path, shared_prefix):
    prompts = ["Which emotion?", "As an expert, which emotion is the most obvious in this clip? Think first."]
    records = write_records(tmp_path / "two.jsonl", grpo_records(world.clips[:2], prompts))
    rows = load_grpo_rows(records)
    trainer, model, processor, _ = trainer_for(world, tmp_path, rows=rows, shared_prefix=shared_prefix)
    order = [0, 0, 1, 1, 1]  # two groups of different sizes, prompts of different lengths
    batch = RolloutCollator(processor)([{**rows[i], INDEX_KEY: i, MEDIA_KEY: True} for i in order])
    media = [row.pop(MEDIA_KEY) for row in batch]
    trainer._round = trainer._build_round(batch, media)
    assert trainer._round.num_prompts == 2
    lengths = [5, 9, 3, 7, 1]
    gen = torch.Generator().manual_seed(0)
    completions = [torch.randint(0, 400, (n,), generator=gen).tolist() for n in lengths]
    prompt_ids = [trainer._round.prompt_ids[i] for i in trainer._round.row_prompt.tolist()]
    assert len(prompt_ids[0]) != len(prompt_ids[-1])
    p_ids, p_mask = processor.pad_sequences(prompt_ids, padding_side="left")
    c_ids, c_mask = processor.pad_sequences(completions, padding_side="right")
    ids, mask = torch.cat([p_ids, c_ids], 1), torch.cat([p_mask, c_mask], 1)
    trainer._rows_index = torch.arange(len(order))
    with torch.no_grad():
        logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
            model, ids, mask, c_ids.shape[1], batch_size=2, compute_entropy=True
        )
    assert logps.shape == c_ids.shape and entropies.shape == c_ids.shape
    questions = processor.encode_questions([processor.encode_prompt(rows[i]["prompt"]).question for i in order])
    for row, (prompt, completion) in enumerate(zip(prompt_ids, completions, strict=True)):
        sample = media[order.index(order[row])]
        full = torch.tensor([prompt + completion])
        with torch.no_grad():
            logits = model(
                input_ids=full,
                attention_mask=torch.ones_like(full),
                pixel_values_videos=sample.pixel_values[None],
                audio_input_features=sample.audio_features[None],
                bert_input_ids=questions["bert_input_ids"][row : row + 1][
                    :, questions["bert_attention_mask"][row].bool()
                ],
            ).logits[0]
        n = len(completion)
        direct = torch.log_softmax(logits[-n - 1 : -1].float(), -1).gather(1, torch.tensor(completion)[:, None])[:, 0]
        assert torch.allclose(logps[row, :n], direct, atol=1e-5), (row, (logps[row, :n] - direct).abs().max())
        assert torch.all(logps[row, n:] == 0)


def test_towers_and_decoding_run_once_per_prompt_per_round(world, tmp_path):
    trainer, model, processor, ref_model = trainer_for(
        world, tmp_path, ref=True, beta=0.04, num_iterations=2, max_steps=4
    )
    calls = {"policy_vision": 0, "policy_audio": 0, "ref_vision": 0, "ref_audio": 0, "decoded": 0}

    def counter(name):
        def hook(*_):
            calls[name] += 1

        return hook

    model.model.vision_tower.register_forward_hook(counter("policy_vision"))
    model.model.audio_tower.register_forward_hook(counter("policy_audio"))
    ref_model.model.vision_tower.register_forward_hook(counter("ref_vision"))
    ref_model.model.audio_tower.register_forward_hook(counter("ref_audio"))
    load_media = processor.load_media

    def counting_load(*args, **kwargs):
        calls["decoded"] += 1
        return load_media(*args, **kwargs)

    processor.load_media = counting_load
    trainer.train()
    # 4 steps, one prompt x 4 completions per step, each round used for 2 iterations: 2 rounds.
    # Each round: one prompt, 4 completions, generation + 2 policy passes + old-policy + reference passes.
    assert trainer.tower_calls == 2
    # Media: once per round, the replayed batches carry none; accelerate's loader fetches one batch
    # ahead, so the first clip of the round after the last step is decoded too (3 = 2 rounds + 1).
    assert calls == {"policy_vision": 2, "policy_audio": 2, "ref_vision": 0, "ref_audio": 0, "decoded": 3}


def test_a_short_run_logs_every_reward_and_changes_the_policy(world, tmp_path):
    rewards = build_rewards(
        ["format", "accuracy", "explanation"], {"verifier": str(world.verifier), "taxonomy": "DFEW"}
    ) + [length_reward]
    trainer, model, _, ref_model = trainer_for(
        world, tmp_path, reward_funcs=rewards, ref=True, beta=0.04, num_iterations=2, max_steps=4
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ref_before = {k: v.clone() for k, v in ref_model.state_dict().items()}
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 4
    for name in ("format_reward", "accuracy_reward", "explanation_reward", "length_reward"):
        assert f"rewards/{name}/mean" in logs[0]
    assert "explanation_reward/mean_sentences" in logs[0] and "explanation_reward/no_think" in logs[0]
    assert all("kl" in entry and "clip_ratio/region_mean" in entry for entry in logs)
    assert any(entry["kl"] > 0 for entry in logs[1:])
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("model.layers.") for k in changed)
    assert not any(k.startswith(("model.vision_tower.", "model.audio_tower.")) for k in changed)
    assert all(torch.equal(v, ref_model.state_dict()[k]) for k, v in ref_before.items())


def _two_group_batch(world, tmp_path, attn="sdpa", **overrides):
    prompts = ["Which emotion?", "As an expert, which emotion is the most obvious in this clip? Think first."]
    records = write_records(tmp_path / "two.jsonl", grpo_records(world.clips[:2], prompts))
    rows = load_grpo_rows(records)
    trainer, model, processor, _ = trainer_for(world, tmp_path, rows=rows, attn=attn, **overrides)
    order = [0, 1, 0, 1, 1, 0]  # groups interleaved, of different sizes, prompts of different lengths
    batch = RolloutCollator(processor)([{**rows[i], INDEX_KEY: i, MEDIA_KEY: True} for i in order])
    media = [row.pop(MEDIA_KEY) for row in batch]
    trainer._round = trainer._build_round(batch, media)
    gen = torch.Generator().manual_seed(1)
    completions = [torch.randint(0, 400, (n,), generator=gen).tolist() for n in (5, 9, 3, 7, 1, 6)]
    prompt_ids = [trainer._round.prompt_ids[i] for i in trainer._round.row_prompt.tolist()]
    p_ids, p_mask = processor.pad_sequences(prompt_ids, padding_side="left")
    c_ids, c_mask = processor.pad_sequences(completions, padding_side="right")
    trainer._rows_index = torch.arange(len(order))
    return trainer, model, torch.cat([p_ids, c_ids], 1), torch.cat([p_mask, c_mask], 1), c_ids.shape[1], c_mask


@pytest.mark.parametrize(("max_completions", "attn"), [(None, "sdpa"), (2, "sdpa"), (None, "eager")])
def test_shared_prefix_log_probs_and_gradients_equal_the_plain_path(world, tmp_path, max_completions, attn):
    trainer, model, ids, mask, keep, c_mask = _two_group_batch(
        world, tmp_path, attn=attn, shared_prefix_max_completions=max_completions
    )
    advantages = torch.linspace(-1.0, 1.0, ids.shape[0])[:, None]
    results = {}
    for shared in (False, True):
        trainer.args.shared_prefix = shared
        model.zero_grad()
        logps, entropy, _ = trainer._get_per_token_logps_and_entropies(
            model, ids, mask, keep, batch_size=4, compute_entropy=True
        )
        loss = -(logps * advantages * c_mask).sum() / c_mask.sum()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results[shared] = (logps.detach() * c_mask, entropy.detach() * c_mask, grads)
    (plain, plain_h, plain_g), (shared, shared_h, shared_g) = results[False], results[True]
    assert torch.allclose(plain, shared, atol=1e-5), (plain - shared).abs().max()
    assert torch.allclose(plain_h, shared_h, atol=1e-5)
    assert plain_g.keys() == shared_g.keys() and any(k.startswith("model.mm_projector") for k in plain_g)
    for name, grad in plain_g.items():
        scale = grad.abs().max().clamp(min=1e-8)
        assert (grad - shared_g[name]).abs().max() / scale <= 1e-4, name


@pytest.mark.parametrize("accumulation", [1, 2])
def test_a_run_with_and_without_shared_prefix_follows_the_same_trajectory(world, tmp_path, accumulation):
    histories = {}
    for shared in (False, True):
        trainer, *_ = trainer_for(
            world,
            tmp_path / str(shared),
            shared_prefix=shared,
            disable_dropout=True,
            max_steps=3,
            per_device_train_batch_size=8 // accumulation,
            num_generations=4,
            gradient_accumulation_steps=accumulation,
            num_iterations=2,
            reward_funcs=[length_reward],
        )
        trainer.train()
        histories[shared] = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(histories[False]) == len(histories[True]) == 3
    for plain, shared in zip(histories[False], histories[True], strict=True):
        for key in ("loss", "reward", "entropy", "completions/mean_length", "clip_ratio/region_mean", "grad_norm"):
            if key in plain:
                assert shared[key] == pytest.approx(plain[key], rel=1e-3, abs=1e-5), key


def test_a_tower_that_trains_runs_in_every_pass(world, tmp_path):
    model, processor = load_pretrained(world.checkpoint, torch_dtype=torch.float32)
    model.model.vision_tower.requires_grad_(True)
    args = config(tmp_path, max_steps=1)
    trainer = HumanOmniGRPOTrainer(
        model, processor, [length_reward], args, train_dataset=Dataset.from_list(load_grpo_rows(world.records))
    )
    assert trainer.trainable_towers == ("vision_tower",)
    calls = []
    model.model.vision_tower.register_forward_hook(lambda *_: calls.append(1))
    trainer.train()
    # frames kept raw: the tower runs in generation and in the policy pass (not once per round)
    assert len(calls) == 2 and "pixel_values_videos" in trainer._round.inputs
    assert "audio_tower_features" in trainer._round.inputs  # the frozen audio tower is still reused
