"""SigLIP vision tower and Whisper audio encoder, nested as the reference nests them.

The released state dicts name the towers `model.vision_tower.vision_tower.vision_model.*` and
`model.audio_tower.audio_tower.encoder.*` (plus the never-used `projector` / `classifier` head of
`WhisperForAudioClassification`), so the wrappers below keep that nesting. Current transformers'
`SiglipVisionModel` no longer has a `vision_model` level of its own; `SiglipBackbone` restores it.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from transformers import SiglipVisionConfig, SiglipVisionModel, WhisperConfig, WhisperForAudioClassification

from erv.errors import ConfigError


def _grad_context(module: nn.Module) -> contextlib.AbstractContextManager:
    """No autograd graph through a frozen tower (the usual case): saves activation memory."""
    if any(p.requires_grad for p in module.parameters()):
        return contextlib.nullcontext()
    return torch.no_grad()


class SiglipBackbone(nn.Module):
    """Holds `vision_model` (a `SiglipVisionModel`) so the state-dict keys read `vision_model.*`."""

    def __init__(self, vision_model: SiglipVisionModel) -> None:
        super().__init__()
        self.vision_model = vision_model


class SiglipVisionTower(nn.Module):
    """Per-frame SigLIP patch features from `hidden_states[select_layer]` (the reference uses -2).

    Only the encoder layers up to the selected one are run: the later layers, `post_layernorm`
    and the pooling head cannot influence `hidden_states[-2]`, so skipping them changes nothing
    but the cost. Input is cast to the tower's dtype, output back to the input's dtype (as the
    reference's wrapper does). With all parameters frozen the tower runs without autograd.
    """

    def __init__(self, config: SiglipVisionConfig, *, select_layer: int = -2, select_feature: str = "patch") -> None:
        super().__init__()
        if select_feature != "patch":
            raise ConfigError(
                f"mm_vision_select_feature {select_feature!r} is not supported with SigLIP "
                f"(it has no CLS token); use 'patch'"
            )
        num_layers = config.num_hidden_layers
        # hidden_states has num_layers + 1 entries: the embeddings, then one per layer.
        index = select_layer if select_layer >= 0 else num_layers + 1 + select_layer
        if not 0 <= index <= num_layers:
            raise ConfigError(
                f"mm_vision_select_layer {select_layer} is out of range for a {num_layers}-layer vision tower"
            )
        self.select_layer = select_layer
        self.num_layers_used = index
        self.vision_tower = SiglipBackbone(SiglipVisionModel._from_config(config))

    @property
    def config(self) -> SiglipVisionConfig:
        return self.vision_tower.vision_model.config

    @property
    def num_patches_per_side(self) -> int:
        return self.config.image_size // self.config.patch_size

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) frames -> (N, patches, width)."""
        model = self.vision_tower.vision_model
        param = model.embeddings.patch_embedding.weight
        with _grad_context(model):
            hidden = model.embeddings(pixel_values.to(device=param.device, dtype=param.dtype))
            for layer in model.encoder.layers[: self.num_layers_used]:
                hidden = layer(hidden, None)
        return hidden.to(pixel_values.dtype)


class WhisperAudioTower(nn.Module):
    """Whisper encoder `last_hidden_state` (after its final layer norm), as the reference uses it.

    Wraps a `WhisperForAudioClassification` only because the released checkpoints store its
    (unused) classification head; the forward pass touches the encoder alone.
    """

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__()
        self.audio_tower = WhisperForAudioClassification._from_config(config)

    @property
    def config(self) -> WhisperConfig:
        return self.audio_tower.config

    @property
    def expected_frames(self) -> int:
        encoder = self.audio_tower.encoder
        return self.config.max_source_positions * encoder.conv1.stride[0] * encoder.conv2.stride[0]

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        """(B, mel bins, frames) log-mel features -> (B, positions, width)."""
        encoder = self.audio_tower.encoder
        param = encoder.conv1.weight
        with _grad_context(encoder):
            out = encoder(input_features.to(device=param.device, dtype=param.dtype))
        return out.last_hidden_state
