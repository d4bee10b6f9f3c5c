"""HumanOmni = Qwen2 decoder + SigLIP video path with a BERT-gated 3-branch projector + Whisper audio path.

Checkpoint-compatible with HumanOmni / R1-Omni / EMER-SFT / ERV releases (module names as in
docs/reference.md §6). The forward pass follows docs/reference.md §7-§9: SigLIP `hidden_states[-2]` of every frame ->
video/body/face branches -> face bilinear pooling -> branch weights from BERT's [CLS] through
the gate -> fused video tokens; Whisper encoder -> average pool 3 -> MLP -> audio tokens; both
spliced in place of the −201 / −202 placeholders (see `splicing`).

Differences from the reference, on purpose: the spliced attention mask marks the multimodal
rows where the placeholders were (the reference prepends ones, wrong under left padding) and
position ids count attended rows only, so a left-padded row computes exactly what the sample
computes alone; batches of any size work; a placeholder without its features, or more than one
video/audio placeholder per sample, is an error instead of silently re-using stale features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertModel, Qwen2ForCausalLM, Qwen2Model
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.models.qwen2.modeling_qwen2 import Qwen2PreTrainedModel
from transformers.utils import can_return_tuple

from erv.errors import ConfigError, ModelInputError
from erv.model.checkpoint import load_checkpoint
from erv.model.configuration import (
    AUDIO_POOL_STRIDE,
    BERT_GATE_WIDTH,
    COMPRESSOR_MID_CHANNELS,
    FEATURE_COMPRESSORS,
    NUM_BRANCHES,
    HumanOmniQwen2Config,
)
from erv.model.constants import AUDIO_PLACEHOLDER, IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER
from erv.model.projectors import (
    GATED_PROJECTORS,
    AllInOneProjector,
    SlowFastCompressor,
    bilinear_face_pool,
    build_audio_projector,
    build_vision_projector,
    fuse_branches,
)
from erv.model.splicing import SplicedInputs, position_ids_from_mask, splice_multimodal
from erv.model.towers import SiglipVisionTower, WhisperAudioTower


def _check_config(config: HumanOmniQwen2Config) -> None:
    missing = [name for name in ("vision_config", "audio_config", "bert_config") if getattr(config, name) is None]
    if missing:
        raise ConfigError(
            f"the HumanOmni config has no {', '.join(missing)}: a released checkpoint only names its towers, "
            f"so load it with erv.model.load_model / load_pretrained (which reads the tower configs), or build "
            f"a full config with erv.model.preset_config"
        )
    if config.mm_feature_compressor not in FEATURE_COMPRESSORS:
        raise ConfigError(
            f"mm_feature_compressor must be one of {FEATURE_COMPRESSORS}, got {config.mm_feature_compressor!r}"
        )
    vision_width = config.vision_config.hidden_size
    if config.mm_hidden_size is not None and config.mm_hidden_size != vision_width:
        raise ConfigError(
            f"mm_hidden_size {config.mm_hidden_size} does not match the vision tower's width "
            f"{vision_width} ({config.mm_vision_tower})"
        )
    if config.mm_projector_type in GATED_PROJECTORS:
        side = config.vision_config.image_size // config.vision_config.patch_size
        needs_odd = config.mm_projector_type == "all_in_one"
        if (side % 2 == 1) != needs_odd:
            raise ConfigError(
                f"{config.mm_projector_type} needs an {'odd' if needs_odd else 'even'} patch grid, but the vision "
                f"tower has {side}x{side} patches (its branches would give different token counts)"
            )


class HumanOmniQwen2Model(Qwen2Model):
    """Qwen2 decoder plus the multimodal modules (towers, projectors, BERT, gate)."""

    config_class = HumanOmniQwen2Config
    _no_split_modules = [
        "Qwen2DecoderLayer",
        "SiglipEncoderLayer",
        "WhisperEncoderLayer",
        "BertLayer",
        "AllInOneProjector",
    ]

    def __init__(self, config: HumanOmniQwen2Config) -> None:
        _check_config(config)
        super().__init__(config)
        config.sync_tower_fields()
        self.vision_tower = SiglipVisionTower(
            config.vision_config,
            select_layer=config.mm_vision_select_layer,
            select_feature=config.mm_vision_select_feature,
        )
        self.mm_projector = build_vision_projector(config.mm_projector_type, config.mm_hidden_size, config.hidden_size)
        self.bert_model = BertModel._from_config(config.bert_config)
        self.bert_gate = nn.Sequential(
            nn.Linear(config.bert_config.hidden_size, BERT_GATE_WIDTH),
            nn.GELU(),
            nn.Linear(BERT_GATE_WIDTH, NUM_BRANCHES),
        )
        if config.mm_feature_compressor == "slow_fast":
            self.feature_compressor = SlowFastCompressor(config.mm_hidden_size, COMPRESSOR_MID_CHANNELS)
        self.audio_tower = WhisperAudioTower(config.audio_config)
        self.audio_projector = build_audio_projector(
            config.mm_audio_projector_type, config.audio_hidden_size, config.hidden_size
        )
        self.post_init()

    # ----------------------------------------------------------------------------- sizes
    @property
    def is_gated(self) -> bool:
        return isinstance(self.mm_projector, AllInOneProjector)

    def num_video_tokens(self, num_frames: int | None = None) -> int:
        """Tokens one video becomes: 392 (0.5B, 8 frames), 1568 (7B), 170 / 784 with the slow-fast compressor."""
        frames = num_frames or self.config.num_frames
        side = self.vision_tower.num_patches_per_side
        if not self.is_gated:
            return frames * side * side
        grid = self.mm_projector.output_side(side)
        if getattr(self, "feature_compressor", None) is not None:
            return SlowFastCompressor.num_tokens(frames, grid)
        return frames * grid * grid

    def num_audio_tokens(self) -> int:
        return self.audio_tower.config.max_source_positions // AUDIO_POOL_STRIDE

    # ----------------------------------------------------------------------------- encoders
    def branch_probs(
        self,
        bert_input_ids: torch.Tensor,
        bert_attention_mask: torch.Tensor | None = None,
        bert_token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, 3) softmax weights of the (video, body, face) branches from BERT's [CLS] vector."""
        out = self.bert_model(
            input_ids=bert_input_ids, attention_mask=bert_attention_mask, token_type_ids=bert_token_type_ids
        )
        return torch.softmax(self.bert_gate(out.last_hidden_state[:, 0]), dim=-1)

    def _projector_dtype(self) -> torch.dtype:
        return next(self.mm_projector.parameters()).dtype

    # The towers are frozen in SFT and GRPO alike, so their outputs for one clip never change during a
    # generation round: `run_vision_tower` / `run_audio_tower` compute them once, and every pass that
    # needs the clip (generation, policy, old policy, reference) takes them back through the
    # `video_tower_features` / `audio_tower_features` arguments instead of re-running the towers.
    def run_vision_tower(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        """(B, T, C, S, S) frames -> (B, T, patches, width) SigLIP features (`mm_vision_select_layer`)."""
        if pixel_values_videos.ndim != 5:
            raise ModelInputError(
                f"pixel_values_videos must be (batch, frames, channels, height, width), got "
                f"{tuple(pixel_values_videos.shape)}"
            )
        batch, frames = pixel_values_videos.shape[:2]
        size = self.vision_tower.config.image_size
        if tuple(pixel_values_videos.shape[2:]) != (self.vision_tower.config.num_channels, size, size):
            raise ModelInputError(
                f"pixel_values_videos frames are {tuple(pixel_values_videos.shape[2:])}, the vision "
                f"tower expects ({self.vision_tower.config.num_channels}, {size}, {size})"
            )
        features = self.vision_tower(pixel_values_videos.flatten(0, 1))
        return features.reshape(batch, frames, *features.shape[1:])

    def project_videos(self, tower_features: torch.Tensor, branch_probs: torch.Tensor | None) -> torch.Tensor:
        """(B, T, patches, width) tower features -> (B, num_video_tokens(T), H) tokens."""
        if tower_features.ndim != 4:
            raise ModelInputError(
                f"video tower features must be (batch, frames, patches, width), got {tuple(tower_features.shape)}"
            )
        batch, frames = tower_features.shape[:2]
        features = tower_features.to(self._projector_dtype())
        if self.is_gated:
            if branch_probs is None:
                raise ModelInputError("video inputs need the BERT question (bert_input_ids) for the branch gate")
            video, body, face = self.mm_projector(features)
            face = bilinear_face_pool(face, batch, self.vision_tower.num_patches_per_side)
            tokens = fuse_branches(video, body, face, branch_probs)
        else:
            tokens = self.mm_projector(features.flatten(1, 2))
        if getattr(self, "feature_compressor", None) is not None:
            tokens = self.feature_compressor(tokens, frames)
        return tokens

    def encode_videos(self, pixel_values_videos: torch.Tensor, branch_probs: torch.Tensor | None) -> torch.Tensor:
        """(B, T, C, S, S) frames -> (B, num_video_tokens(T), H) tokens."""
        return self.project_videos(self.run_vision_tower(pixel_values_videos), branch_probs)

    def run_audio_tower(self, audio_input_features: torch.Tensor) -> torch.Tensor:
        """(B, mel bins, frames) Whisper features -> (B, positions, width) encoder states."""
        features = audio_input_features
        if features.ndim == 4 and features.shape[1] == 1:
            features = features.squeeze(1)
        if features.ndim != 3:
            raise ModelInputError(
                f"audio_input_features must be (batch, mel bins, frames), got {tuple(audio_input_features.shape)}"
            )
        tower = self.audio_tower
        expected = (tower.config.num_mel_bins, tower.expected_frames)
        if tuple(features.shape[1:]) != expected:
            raise ModelInputError(
                f"audio_input_features are {tuple(features.shape[1:])} (mel bins, frames); the "
                f"Whisper encoder needs exactly {expected} (pad or cut the audio to its window)"
            )
        return tower(features)

    def project_audios(self, tower_features: torch.Tensor) -> torch.Tensor:
        """(B, positions, width) Whisper states -> (B, positions // 3, H) tokens."""
        if tower_features.ndim != 3:
            raise ModelInputError(
                f"audio tower features must be (batch, positions, width), got {tuple(tower_features.shape)}"
            )
        pooled = F.avg_pool1d(
            tower_features.transpose(1, 2), kernel_size=AUDIO_POOL_STRIDE, stride=AUDIO_POOL_STRIDE
        ).transpose(1, 2)
        return self.audio_projector(pooled.to(next(self.audio_projector.parameters(), pooled).dtype))

    def encode_audios(self, audio_input_features: torch.Tensor) -> torch.Tensor:
        """(B, mel bins, frames) Whisper features -> (B, positions // 3, H) tokens."""
        return self.project_audios(self.run_audio_tower(audio_input_features))

    def embed_multimodal(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        pixel_values_videos: torch.Tensor | None = None,
        audio_input_features: torch.Tensor | None = None,
        bert_input_ids: torch.Tensor | None = None,
        bert_attention_mask: torch.Tensor | None = None,
        bert_token_type_ids: torch.Tensor | None = None,
        video_tower_features: torch.Tensor | None = None,
        audio_tower_features: torch.Tensor | None = None,
    ) -> SplicedInputs:
        """Encode the media that the prompts refer to and splice them in (module doc).

        Precomputed tower outputs (`video_tower_features` from :meth:`run_vision_tower`,
        `audio_tower_features` from :meth:`run_audio_tower`) stand in for the raw inputs; the
        projectors and the BERT gate always run, since they may be training.
        """
        wants_video = bool(((input_ids == VIDEO_PLACEHOLDER) | (input_ids == IMAGE_PLACEHOLDER)).any())
        wants_audio = bool((input_ids == AUDIO_PLACEHOLDER).any())
        video_tokens = audio_tokens = None
        if wants_video and (pixel_values_videos is not None or video_tower_features is not None):
            probs = None
            if self.is_gated:
                if bert_input_ids is None:
                    raise ModelInputError("video inputs need the BERT question (bert_input_ids) for the branch gate")
                if bert_input_ids.shape[0] != input_ids.shape[0]:
                    raise ModelInputError(
                        f"bert_input_ids has {bert_input_ids.shape[0]} samples but input_ids has {input_ids.shape[0]}"
                    )
                probs = self.branch_probs(bert_input_ids, bert_attention_mask, bert_token_type_ids)
            if video_tower_features is None:
                video_tower_features = self.run_vision_tower(pixel_values_videos)
            video_tokens = self.project_videos(video_tower_features, probs)
        if wants_audio and (audio_input_features is not None or audio_tower_features is not None):
            if audio_tower_features is None:
                audio_tower_features = self.run_audio_tower(audio_input_features)
            audio_tokens = self.project_audios(audio_tower_features)
        return splice_multimodal(
            input_ids,
            attention_mask,
            self.embed_tokens,
            video_tokens=video_tokens,
            audio_tokens=audio_tokens,
            labels=labels,
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        labels: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        audio_input_features: torch.Tensor | None = None,
        bert_input_ids: torch.Tensor | None = None,
        bert_attention_mask: torch.Tensor | None = None,
        bert_token_type_ids: torch.Tensor | None = None,
        video_tower_features: torch.Tensor | None = None,
        audio_tower_features: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> HumanOmniModelOutput:
        """Hidden states over the expanded sequence (placeholders replaced by their feature rows).

        `attention_mask` is a 2-D padding mask over `input_ids`, or a 4-D mask (batch, 1, query,
        key) over the *expanded* sequence for layouts a causal mask cannot express, such as one
        prompt shared by several completions (then `position_ids`, also over the expanded
        sequence, are required). The splice happens here rather than in the LM head's forward, so
        that anything calling the backbone alone (TRL's fused log-prob head calls
        `model.base_model`) sees the multimodal sequence. `labels` (over `input_ids`) are expanded
        like the ids and returned, with the expanded `attention_mask`, so callers can align
        per-token values with them.
        """
        media = (pixel_values_videos, audio_input_features, video_tower_features, audio_tower_features)
        multimodal = any(x is not None for x in media)
        block_mask = attention_mask if attention_mask is not None and attention_mask.ndim == 4 else None
        if block_mask is not None and position_ids is None:
            raise ModelInputError("a 4-D attention mask (over the expanded sequence) needs explicit position_ids")
        if (
            inputs_embeds is None
            and input_ids is not None
            and (multimodal or (input_ids.shape[1] > 1 and bool((input_ids < 0).any())))
        ):
            spliced = self.embed_multimodal(
                input_ids,
                None if block_mask is not None else attention_mask,
                labels,
                pixel_values_videos=pixel_values_videos,
                audio_input_features=audio_input_features,
                bert_input_ids=bert_input_ids,
                bert_attention_mask=bert_attention_mask,
                bert_token_type_ids=bert_token_type_ids,
                video_tower_features=video_tower_features,
                audio_tower_features=audio_tower_features,
            )
            input_ids, inputs_embeds = None, spliced.inputs_embeds
            attention_mask, labels = spliced.attention_mask, spliced.labels
            if block_mask is not None:
                if block_mask.shape[-1] != inputs_embeds.shape[1]:
                    raise ModelInputError(
                        f"the 4-D attention mask covers {block_mask.shape[-1]} positions, the expanded "
                        f"sequence has {inputs_embeds.shape[1]}"
                    )
                attention_mask = block_mask
            elif position_ids is None and spliced.position_ids is not None:
                past = past_key_values.get_seq_length() if past_key_values is not None else 0
                position_ids = spliced.position_ids + past
        elif (
            position_ids is None
            and attention_mask is not None
            and attention_mask.ndim == 2
            and bool((attention_mask == 0).any())
        ):
            length = (inputs_embeds if input_ids is None else input_ids).shape[1]
            position_ids = position_ids_from_mask(attention_mask)[:, -length:]
        out = super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        return HumanOmniModelOutput(
            last_hidden_state=out.last_hidden_state,
            past_key_values=out.past_key_values,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            attention_mask=attention_mask if attention_mask is None or attention_mask.ndim == 2 else None,
            labels=labels,
        )


@dataclass
class HumanOmniModelOutput(BaseModelOutputWithPast):
    """`BaseModelOutputWithPast` plus the spliced mask/labels (see `HumanOmniQwen2Model.forward`)."""

    attention_mask: torch.Tensor | None = None
    labels: torch.Tensor | None = None


@dataclass
class HumanOmniCausalLMOutput(CausalLMOutputWithPast):
    """`CausalLMOutputWithPast` plus the spliced mask/labels, so callers can align logits with them."""

    attention_mask: torch.Tensor | None = None
    labels: torch.Tensor | None = None


class HumanOmniQwen2ForCausalLM(Qwen2ForCausalLM):
    """Causal LM head over `HumanOmniQwen2Model`; loads released HumanOmni checkpoints."""

    config_class = HumanOmniQwen2Config
    _no_split_modules = HumanOmniQwen2Model._no_split_modules

    def __init__(self, config: HumanOmniQwen2Config) -> None:
        Qwen2PreTrainedModel.__init__(self, config)  # skip Qwen2ForCausalLM's plain Qwen2Model
        self.model = HumanOmniQwen2Model(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    # ----------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *model_args: Any, **kwargs: Any):
        """Load through `erv.model.checkpoint.load_checkpoint` (tower/BERT resolution, key checks).

        Accepts the usual transformers keyword arguments plus `vision_tower`, `audio_tower`,
        `bert`, `components_dir` and `tower_weights`, so `AutoModelForCausalLM.from_pretrained`
        works on a released checkpoint without `trust_remote_code`.
        """
        if model_args:
            raise TypeError("HumanOmniQwen2ForCausalLM.from_pretrained takes keyword arguments only")
        return load_checkpoint(cls, pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_pretrained_checkpoint(cls, path: Any, **kwargs: Any):
        """transformers' own `from_pretrained` (no resolution, no checks): for the loader."""
        return super().from_pretrained(path, **kwargs)

    # ----------------------------------------------------------------------------- forward
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        pixel_values_videos: torch.Tensor | None = None,
        audio_input_features: torch.Tensor | None = None,
        bert_input_ids: torch.Tensor | None = None,
        bert_attention_mask: torch.Tensor | None = None,
        bert_token_type_ids: torch.Tensor | None = None,
        video_tower_features: torch.Tensor | None = None,
        audio_tower_features: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> HumanOmniCausalLMOutput:
        """Logits over the expanded sequence (placeholders replaced by their feature rows).

        `labels` are given over `input_ids` and expanded like them (−100 on inserted rows); the
        returned output carries the expanded `attention_mask` and `labels`.
        """
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            labels=labels,
            pixel_values_videos=pixel_values_videos,
            audio_input_features=audio_input_features,
            bert_input_ids=bert_input_ids,
            bert_attention_mask=bert_attention_mask,
            bert_token_type_ids=bert_token_type_ids,
            video_tower_features=video_tower_features,
            audio_tower_features=audio_tower_features,
            **kwargs,
        )
        hidden = out.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=out.labels, vocab_size=self.config.vocab_size, **kwargs)
        return HumanOmniCausalLMOutput(
            loss=loss,
            logits=logits,
            past_key_values=out.past_key_values,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            attention_mask=out.attention_mask,
            labels=out.labels,
        )

    # ----------------------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        audio_input_features: torch.Tensor | None = None,
        bert_input_ids: torch.Tensor | None = None,
        bert_attention_mask: torch.Tensor | None = None,
        bert_token_type_ids: torch.Tensor | None = None,
        video_tower_features: torch.Tensor | None = None,
        audio_tower_features: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        """Splice once, then transformers' generation loop over the embeddings (KV cache, greedy or sampled).

        Returns only the new token ids (or a `GenerateOutput` whose `sequences` are the new ids).
        The checkpoint's `generation_config.json` (loaded into `self.generation_config`) is merged
        with the keyword arguments exactly as transformers does, which is what the reference's
        mm_infer gets: anything not overridden there (e.g. a `repetition_penalty`) stays active.
        `pad_token_id` defaults to the eos id, as mm_infer sets it.
        """
        if "inputs_embeds" in kwargs:
            raise ModelInputError("HumanOmni generate takes input_ids with placeholders, not inputs_embeds")
        if input_ids is None:
            input_ids = kwargs.pop("inputs", None)
        if input_ids is None:
            raise ModelInputError("generate needs input_ids")
        kwargs.pop("position_ids", None)  # rebuilt from the spliced mask by the generation loop
        spliced = self.model.embed_multimodal(
            input_ids,
            attention_mask,
            pixel_values_videos=pixel_values_videos,
            audio_input_features=audio_input_features,
            bert_input_ids=bert_input_ids,
            bert_attention_mask=bert_attention_mask,
            bert_token_type_ids=bert_token_type_ids,
            video_tower_features=video_tower_features,
            audio_tower_features=audio_tower_features,
        )
        generation_config = kwargs.get("generation_config") or self.generation_config
        if kwargs.get("pad_token_id") is None and getattr(generation_config, "pad_token_id", None) is None:
            eos = kwargs.get("eos_token_id", getattr(generation_config, "eos_token_id", None))
            if eos is not None:
                kwargs["pad_token_id"] = eos[0] if isinstance(eos, (list, tuple)) else eos
        return super().generate(inputs_embeds=spliced.inputs_embeds, attention_mask=spliced.attention_mask, **kwargs)


def build_model(
    config: HumanOmniQwen2Config,
    *,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    attn_implementation: str | None = "sdpa",
) -> HumanOmniQwen2ForCausalLM:
    """A randomly initialised model from a complete config (towers from their sub-configs, no files).

    `device="meta"` builds only the structure (for key checks or sizing a real model without memory).
    """
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    with torch.device(device or "cpu"):
        model = HumanOmniQwen2ForCausalLM._from_config(config, dtype=dtype, attn_implementation=attn_implementation)
    return model.eval()
