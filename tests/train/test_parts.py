"""erv.train.parts: every parameter has one part, names are checked, requires_grad follows the parts."""

from __future__ import annotations

import re

import pytest

from erv.errors import ConfigError
from erv.model import build_model, preset_config
from erv.train.parts import (
    PAPER_SFT_PARTS,
    RELEASED_SFT_PARTS,
    TUNABLE_PARTS,
    apply_tune_parts,
    frozen_parts,
    llm_lora_target_regex,
    modules_to_save,
    normalize_parts,
    part_of,
)


@pytest.fixture(scope="module")
def model():
    return build_model(preset_config("humanomni-tiny"))


def test_every_parameter_belongs_to_exactly_one_part(model):
    for name, _ in model.named_parameters():
        owners = [p for p, prefixes in TUNABLE_PARTS.items() if name.startswith(prefixes)]
        assert len(owners) == 1, (name, owners)
    assert part_of("base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight") == "llm"
    assert part_of("base_model.model.model.audio_projector.0.modules_to_save.default.weight") == "audio_projector"


def test_unknown_part_lists_the_valid_names():
    with pytest.raises(ConfigError, match="unknown tune_parts name 'projector'.*llm, mm_projector, audio_projector"):
        normalize_parts(["llm", "projector"])
    with pytest.raises(ConfigError, match="empty"):
        normalize_parts([])
    # the reference's spellings and comma strings are accepted
    assert normalize_parts("mm_mlp_adapter,audio_projector,mm_language_model") == (
        "llm",
        "mm_projector",
        "audio_projector",
    )


def test_apply_tune_parts_and_frozen_parts(model):
    apply_tune_parts(model, PAPER_SFT_PARTS)
    assert set(frozen_parts(model)) == {"bert", "audio_tower"}
    assert "vision_tower" not in frozen_parts(model)
    for name, param in model.named_parameters():
        if part_of(name) in ("bert", "audio_tower"):
            assert not param.requires_grad, name
    # parameters the forward pass never reads stay frozen even in a tuned part
    unused = [n for n, p in model.named_parameters() if n.startswith("model.vision_tower.") and not p.requires_grad]
    assert unused and all(re.search(r"post_layernorm|head\.|encoder\.layers\.1\.", n) for n in unused)
    apply_tune_parts(model, RELEASED_SFT_PARTS)  # what the released run updated: no vision tower
    assert {"vision_tower", "audio_tower"} <= set(frozen_parts(model))


def test_lora_targets_only_the_llm(model):
    pattern = re.compile(llm_lora_target_regex(None))
    hits = [n for n, _ in model.named_modules() if pattern.fullmatch(n)]
    assert hits and all(n.startswith("model.layers.") for n in hits)
    assert any("self_attn.q_proj" in n for n in hits) and any("mlp.down_proj" in n for n in hits)
    assert not any(pattern.fullmatch(n) for n, _ in model.named_modules() if "vision_tower" in n)
    with pytest.raises(ConfigError, match="not linear layers of the LLM"):
        llm_lora_target_regex(["out_proj"])
    saved = modules_to_save(model, ["llm", "audio_projector", "bert_gate"])
    assert saved == ["model.bert_gate.0", "model.bert_gate.2", "model.audio_projector.0", "model.audio_projector.2"]
