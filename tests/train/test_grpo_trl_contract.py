"""What HumanOmniGRPOTrainer assumes about TRL's GRPOTrainer, pinned so a TRL upgrade fails here.

Every overridden method's parameters, and the internal calls the overrides rely on (TRL must
still route through them), are checked against the installed TRL. If one of these fails after
an upgrade, re-read the new `trl/trainer/grpo_trainer.py` and adapt erv.train.grpo_trainer.
"""

from __future__ import annotations

import inspect

import pytest
from trl import GRPOTrainer
from trl.trainer import utils as trl_utils

from erv.train.grpo_data import RoundSampler
from erv.train.grpo_trainer import HumanOmniGRPOTrainer

OVERRIDDEN = {
    "__init__": [
        "self",
        "model",
        "reward_funcs",
        "args",
        "train_dataset",
        "eval_dataset",
        "processing_class",
        "reward_processing_classes",
        "callbacks",
        "optimizers",
        "quantization_config",
        "peft_config",
        "tools",
        "rollout_func",
        "environment_factory",
    ],
    "get_train_dataloader": ["self"],
    "get_eval_dataloader": ["self", "eval_dataset"],
    "_prepare_inputs": ["self", "generation_batch"],
    "_generate_and_score_completions": ["self", "inputs"],
    "_tokenize_prompts": ["self", "prompts"],
    "_generate_single_turn": [
        "self",
        "prompt_ids",
        "images",
        "multimodal_fields",
        "num_generations",
        "has_tool_images",
    ],
    "compute_loss": ["self", "model", "inputs", "return_outputs", "num_items_in_batch"],
    "_get_per_token_logps_and_entropies": [
        "self",
        "model",
        "input_ids",
        "attention_mask",
        "logits_to_keep",
        "batch_size",
        "compute_entropy",
        "compute_aux_loss",
        "pixel_values",
        "image_grid_thw",
        "num_images",
        "pixel_attention_mask",
        "spatial_shapes",
        "num_tiles",
        "image_sizes",
        "token_type_ids",
        "mm_token_type_ids",
        "image_position_ids",
    ],
}


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_overridden_trl_methods_keep_their_signature(name):
    assert name in HumanOmniGRPOTrainer.__dict__, f"{name} is no longer overridden: update OVERRIDDEN"
    assert list(inspect.signature(getattr(GRPOTrainer, name)).parameters) == OVERRIDDEN[name]


def source(method) -> str:
    return inspect.getsource(method)


def test_trl_still_routes_through_the_overridden_methods():
    assert "self._tokenize_prompts(prompts)" in source(GRPOTrainer._generate)
    assert "self._generate_single_turn(" in source(GRPOTrainer._generate)
    generate_and_score = source(GRPOTrainer._generate_and_score_completions)
    assert "self._generate(prompts)" in generate_and_score
    assert generate_and_score.count("self._get_per_token_logps_and_entropies(") >= 3  # old, ref, PEFT ref
    assert "self._get_per_token_logps_and_entropies(" in source(GRPOTrainer._compute_loss)
    assert "compute_entropy=True" in source(GRPOTrainer._compute_loss)
    # the trainer builds its reference model from the config's name when beta != 0 (so erv builds its own)
    assert "create_model_from_path(get_config_model_id(self.model.config)" in source(GRPOTrainer.__init__)


def test_group_shuffle_draws_what_trl_draws():
    # erv's group-preserving shuffle makes the same single torch.randperm(rows) call as TRL's
    prepare = source(GRPOTrainer._prepare_inputs)
    assert "shuffle_sequence_dict(generation_batch)" in prepare and "split_tensor_dict(" in prepare
    assert "permutation = torch.randperm(batch_size)" in source(trl_utils.shuffle_sequence_dict)


def test_fused_head_scores_pre_shifted_labels():
    fused = source(trl_utils.add_fused_lm_head)
    assert "shift_labels" in fused and "getattr(self, backbone_attr)" in fused


def test_round_sampler_keeps_trls_order_and_marks_the_first_pass():
    kwargs = dict(data_source=list(range(7)), mini_repeat_count=2, batch_size=3, repeat_count=3, shuffle=True, seed=5)
    plain = list(trl_utils.RepeatSampler(**kwargs))
    tagged = list(RoundSampler(**kwargs))
    assert [index for index, _ in tagged] == plain
    per_pass, per_round = 3 * 2, 3 * 2 * 3
    assert [fresh for _, fresh in tagged] == [i % per_round < per_pass for i in range(len(plain))]
