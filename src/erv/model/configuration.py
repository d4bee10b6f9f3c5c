"""Configuration of the HumanOmni model (Qwen2 LLM + SigLIP + Whisper + BERT branch gate).

Released checkpoints (HumanOmni, R1-Omni, EMER-SFT, ERV) store a `Qwen2Config` with
`model_type = "HumanOmni_qwen2"` and a handful of `mm_*` fields; their towers are only *named*
(`mm_vision_tower`, `mm_audio_tower`), BERT not at all. To build the module tree we also need
the towers' and BERT's own configs, which we keep as optional sub-configs (`vision_config`,
`audio_config`, `bert_config`): the loader fills them from the resolved folders, and
`save_pretrained` then writes a self-describing checkpoint. A released config (without them)
still parses; `erv.model.load_model` completes it.
"""

from __future__ import annotations

from typing import Any

from transformers import BertConfig, Qwen2Config, SiglipVisionConfig, WhisperConfig
from transformers.configuration_utils import SubConfigSpec

MODEL_TYPE = "HumanOmni_qwen2"

# Values the reference hard-codes (no config field exists for them in released checkpoints).
BERT_GATE_WIDTH = 3584  # hidden width of the branch gate MLP, for every model size
NUM_BRANCHES = 3  # video, body, face
AUDIO_POOL_STRIDE = 3  # Whisper positions averaged per audio token (1500 -> 500)
COMPRESSOR_MID_CHANNELS = 256  # width of the (unused) slow-fast compressor projections

FEATURE_COMPRESSORS = (None, "slow_fast")


class HumanOmniQwen2Config(Qwen2Config):
    """`Qwen2Config` plus the multimodal fields of the reference (docs/reference.md §6) and tower sub-configs.

    Fields the reference does not have: `vision_config` / `audio_config` / `bert_config` (the
    towers' and BERT's configs, so the model can be built without their folders),
    `mm_bert_tower` (where BERT's tokenizer/config were found) and `mm_feature_compressor`
    (`"slow_fast"` for upstream-HumanOmni checkpoints that carry `model.feature_compressor.*`;
    the loader sets it from the checkpoint's keys because no released config records it).
    """

    model_type = MODEL_TYPE
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=SiglipVisionConfig, optional=True),
        "audio_config": SubConfigSpec(config_class=WhisperConfig, optional=True),
        "bert_config": SubConfigSpec(config_class=BertConfig, optional=True),
    }

    vision_config: dict | SiglipVisionConfig | None = None
    audio_config: dict | WhisperConfig | None = None
    bert_config: dict | BertConfig | None = None

    mm_vision_tower: str | None = None
    mm_audio_tower: str | None = None
    mm_bert_tower: str | None = None
    mm_projector_type: str = "all_in_one_small"
    mm_audio_projector_type: str = "mlp2x_gelu"
    mm_hidden_size: int | None = None
    audio_hidden_size: int | None = None
    mm_vision_select_layer: int = -2
    mm_vision_select_feature: str = "patch"
    num_frames: int = 8
    mm_use_x_start_end: bool = True
    image_aspect_ratio: str = "pad"
    mm_feature_compressor: str | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.sync_tower_fields()

    def sync_tower_fields(self) -> None:
        """Derive the width fields from the sub-configs, as the reference derives them from its towers."""
        if self.vision_config is not None and self.mm_hidden_size is None:
            self.mm_hidden_size = self.vision_config.hidden_size
        if self.audio_config is not None:
            # The reference recomputes this from the Whisper tower in __init__, whatever was saved.
            self.audio_hidden_size = self.audio_config.d_model


def _llm_fields(size: str) -> dict[str, Any]:
    if size == "0.5B":
        return dict(
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            vocab_size=151936,
            tie_word_embeddings=True,
            max_position_embeddings=32768,
            max_window_layers=21,
            rope_theta=1000000.0,
            rms_norm_eps=1e-6,
            bos_token_id=151643,
            eos_token_id=151645,
        )
    if size == "7B":
        return dict(
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            vocab_size=152064,
            tie_word_embeddings=False,
            max_position_embeddings=32768,
            max_window_layers=28,
            rope_theta=1000000.0,
            rms_norm_eps=1e-6,
            bos_token_id=151643,
            eos_token_id=151645,
        )
    raise ValueError(size)


SIGLIP_BASE_224 = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    image_size=224,
    patch_size=16,
    hidden_act="gelu_pytorch_tanh",
    layer_norm_eps=1e-6,
)
SIGLIP_SO400M_384 = dict(
    hidden_size=1152,
    intermediate_size=4304,
    num_hidden_layers=27,
    num_attention_heads=16,
    image_size=384,
    patch_size=14,
    hidden_act="gelu_pytorch_tanh",
    layer_norm_eps=1e-6,
)
WHISPER_LARGE_V3 = dict(
    d_model=1280,
    encoder_layers=32,
    encoder_attention_heads=20,
    encoder_ffn_dim=5120,
    decoder_layers=32,
    decoder_attention_heads=20,
    decoder_ffn_dim=5120,
    num_mel_bins=128,
    max_source_positions=1500,
    max_target_positions=448,
    vocab_size=51866,
    classifier_proj_size=256,
    activation_function="gelu",
    scale_embedding=False,
    pad_token_id=50256,
    bos_token_id=50257,
    eos_token_id=50257,
    decoder_start_token_id=50258,
)
BERT_BASE_UNCASED = dict(
    vocab_size=30522,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=512,
    type_vocab_size=2,
    hidden_act="gelu",
    layer_norm_eps=1e-12,
    pad_token_id=0,
)

PRESETS = ("humanomni-0.5b", "humanomni-7b", "humanomni-tiny")

# A few-MB model with the 0.5B layout, for tests, demos and CPU smoke runs (random weights).
_TINY_LLM = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=512,
    tie_word_embeddings=True,
    max_position_embeddings=4096,
    max_window_layers=2,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    bos_token_id=500,
    eos_token_id=502,
)
_TINY_SIGLIP = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=8,
    hidden_act="gelu_pytorch_tanh",
    layer_norm_eps=1e-6,
)
_TINY_WHISPER = dict(
    d_model=32,
    encoder_layers=2,
    encoder_attention_heads=4,
    encoder_ffn_dim=64,
    decoder_layers=1,
    decoder_attention_heads=4,
    decoder_ffn_dim=64,
    num_mel_bins=128,
    max_source_positions=50,
    max_target_positions=32,
    classifier_proj_size=16,
)
_TINY_BERT = dict(
    vocab_size=1000,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=128,
    type_vocab_size=2,
    pad_token_id=0,
)


def preset_config(name: str, **overrides: Any) -> HumanOmniQwen2Config:
    """A complete config of a real-size model (tower configs included), for random-init builds.

    `humanomni-0.5b`: Qwen2-0.5B LLM, siglip-base-patch16-224, whisper-large-v3, bert-base-uncased,
    `all_in_one_small` (the R1-Omni-0.5B / ERV-0.5B layout). `humanomni-7b`: Qwen2-7B LLM,
    siglip-so400m-patch14-384, `all_in_one`. Values from the public configs of those models.
    `humanomni-tiny`: the 0.5B layout at toy size (LLM width 64, 4x4 SigLIP patches, 100 mel
    frames -> 16 audio tokens, 4 frames -> 16 video tokens), for tests and demos.
    Keyword overrides go to the top-level config (e.g. `num_hidden_layers=2`).
    """
    key = name.lower()
    if key == "humanomni-0.5b":
        llm, vision, projector, tower = (
            _llm_fields("0.5B"),
            SIGLIP_BASE_224,
            "all_in_one_small",
            "siglip-base-patch16-224",
        )
    elif key == "humanomni-7b":
        llm, vision, projector, tower = _llm_fields("7B"), SIGLIP_SO400M_384, "all_in_one", "siglip-so400m-patch14-384"
    elif key == "humanomni-tiny":
        fields = dict(
            _TINY_LLM,
            vision_config=SiglipVisionConfig(**_TINY_SIGLIP),
            audio_config=WhisperConfig(**_TINY_WHISPER),
            bert_config=BertConfig(**_TINY_BERT),
            mm_vision_tower="siglip-tiny",
            mm_audio_tower="whisper-tiny",
            mm_bert_tower="bert-tiny",
            mm_projector_type="all_in_one_small",
            num_frames=4,
            use_sliding_window=False,
            sliding_window=None,
            architectures=["HumanOmniQwen2ForCausalLM"],
        )
        fields.update(overrides)
        return HumanOmniQwen2Config(**fields)
    else:
        from erv.errors import ConfigError

        raise ConfigError(f"unknown HumanOmni preset {name!r}; choose one of {', '.join(PRESETS)}")
    fields: dict[str, Any] = dict(
        llm,
        vision_config=SiglipVisionConfig(**vision),
        audio_config=WhisperConfig(**WHISPER_LARGE_V3),
        bert_config=BertConfig(**BERT_BASE_UNCASED),
        mm_vision_tower=f"google/{tower}",
        mm_audio_tower="openai/whisper-large-v3",
        mm_bert_tower="bert-base-uncased",
        mm_projector_type=projector,
        mm_audio_projector_type="mlp2x_gelu",
        mm_vision_select_layer=-2,
        num_frames=8,
        use_sliding_window=False,
        sliding_window=None,
        dtype="bfloat16",
        architectures=["HumanOmniQwen2ForCausalLM"],
    )
    fields.update(overrides)
    return HumanOmniQwen2Config(**fields)
