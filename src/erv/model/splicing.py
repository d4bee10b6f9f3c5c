"""Replace the multimodal placeholders of a batch of prompts by their feature sequences, in place.

Prompt ids carry one negative placeholder per modality (−201 video, −202 audio; −200 image is
treated as video, as the reference does). Each placeholder expands into that sample's feature
rows, where it stands, so the rows keep the placeholder's attention-mask value and labels get
−100 there. Rows that become shorter than the longest one get the missing positions on the
left, with mask 0 and label −100, so the ends of all rows stay aligned (a right-padded training
batch keeps its own right padding inside each row).

The reference instead *prepends* ones to the attention mask for the extra length (wrong as soon
as the batch is left-padded: pad rows become attended and multimodal rows at the end are masked)
and right-pads unequal rows; batched generation there only works at batch size 1. Here a
left-padded row gives the same expanded row as the sample alone, shifted right, and
`position_ids_from_mask` gives it the same positions.

Everything is vectorised over the batch: one embedding call, one scatter per modality.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from erv.errors import ModelInputError
from erv.model.constants import AUDIO_PLACEHOLDER, IGNORE_INDEX, IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER


@dataclass
class SplicedInputs:
    inputs_embeds: torch.Tensor  # (B, L', H)
    attention_mask: torch.Tensor  # (B, L'), the input mask's dtype
    labels: torch.Tensor | None  # (B, L') with −100 on inserted and padding rows
    position_ids: torch.Tensor | None  # (B, L'), None when there is no padding (0..L'-1 then)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counting only attended rows (0 at padding): as transformers' generate builds them."""
    mask = attention_mask.long()
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)


def _check_placeholders(
    input_ids: torch.Tensor, name: str, is_kind: torch.Tensor, tokens: torch.Tensor | None, feature_arg: str
) -> None:
    per_row = is_kind.sum(dim=1)
    if not bool((per_row > 0).any()):
        return
    if tokens is None:
        rows = per_row.nonzero().flatten().tolist()
        raise ModelInputError(f"batch rows {rows} contain a {name} placeholder but no {feature_arg} were given")
    if bool((per_row > 1).any()):
        rows = (per_row > 1).nonzero().flatten().tolist()
        raise ModelInputError(
            f"batch rows {rows} contain more than one {name} placeholder; one {name} per sample is supported "
            f"(the reference would silently give every placeholder the same features)"
        )
    if tokens.shape[0] != input_ids.shape[0]:
        raise ModelInputError(f"{feature_arg} has {tokens.shape[0]} samples but input_ids has {input_ids.shape[0]}")


def splice_multimodal(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    embed_tokens: Callable[[torch.Tensor], torch.Tensor],
    *,
    video_tokens: torch.Tensor | None = None,
    audio_tokens: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> SplicedInputs:
    """Expand placeholders into `video_tokens[b]` (B, Nv, H) / `audio_tokens[b]` (B, Na, H)."""
    if input_ids.ndim != 2:
        raise ModelInputError(f"input_ids must be (batch, length), got {tuple(input_ids.shape)}")
    batch, length = input_ids.shape
    device = input_ids.device
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ModelInputError(
            f"attention_mask {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}"
        )
    if labels is not None and labels.shape != input_ids.shape:
        raise ModelInputError(f"labels {tuple(labels.shape)} do not match input_ids {tuple(input_ids.shape)}")

    is_video = (input_ids == VIDEO_PLACEHOLDER) | (input_ids == IMAGE_PLACEHOLDER)
    is_audio = input_ids == AUDIO_PLACEHOLDER
    is_text = ~(is_video | is_audio)
    if bool((input_ids[is_text] < 0).any()):
        bad = sorted(set(input_ids[is_text & (input_ids < 0)].tolist()))
        raise ModelInputError(
            f"input_ids contain negative ids {bad} that are not placeholders "
            f"(video {VIDEO_PLACEHOLDER}, audio {AUDIO_PLACEHOLDER}, image {IMAGE_PLACEHOLDER})"
        )
    _check_placeholders(input_ids, "video", is_video, video_tokens, "pixel_values_videos")
    _check_placeholders(input_ids, "audio", is_audio, audio_tokens, "audio_input_features")

    n_video = video_tokens.shape[1] if video_tokens is not None else 1
    n_audio = audio_tokens.shape[1] if audio_tokens is not None else 1
    width = 1 + is_video.long() * (n_video - 1) + is_audio.long() * (n_audio - 1)
    row_len = width.sum(dim=1)
    out_len = int(row_len.max())
    offset = out_len - row_len  # extra padding on the left (module doc)
    start = offset[:, None] + width.cumsum(dim=1) - width  # (B, L): first output row of each input position

    text_embeds = embed_tokens(input_ids.masked_fill(~is_text, 0))
    hidden = text_embeds.shape[-1]
    embeds = text_embeds.new_zeros(batch, out_len, hidden)
    mask = attention_mask.new_zeros(batch, out_len)
    new_labels = labels.new_full((batch, out_len), IGNORE_INDEX) if labels is not None else None

    b, j = is_text.nonzero(as_tuple=True)
    pos = start[b, j]
    embeds[b, pos] = text_embeds[b, j]
    mask[b, pos] = attention_mask[b, j]
    if new_labels is not None:
        new_labels[b, pos] = labels[b, j]

    for is_kind, tokens in ((is_video, video_tokens), (is_audio, audio_tokens)):
        if tokens is None or not bool(is_kind.any()):
            continue
        b, j = is_kind.nonzero(as_tuple=True)
        rows = start[b, j][:, None] + torch.arange(tokens.shape[1], device=device)
        embeds[b[:, None], rows] = tokens[b].to(device=embeds.device, dtype=embeds.dtype)
        mask[b[:, None], rows] = attention_mask[b, j][:, None]

    has_padding = bool((mask == 0).any())
    return SplicedInputs(
        inputs_embeds=embeds,
        attention_mask=mask,
        labels=new_labels,
        position_ids=position_ids_from_mask(mask) if has_padding else None,
    )
