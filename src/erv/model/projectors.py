"""Projectors from tower features to LLM tokens, with the reference's module names.

Module and attribute names (`s1_video`, `sampler_video.0`, `readout_video.2`,
`mlp_2xgelu_face.0`, `audio_projector.0` ...) are part of the checkpoint format: they must stay
exactly as the released state dicts spell them (docs/reference.md §6, §7).
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from timm.models.regnet import RegStage
from torch import nn

from erv.errors import ConfigError, ModelInputError

_MLP_GELU = re.compile(r"^mlp(\d+)x_gelu$")


def mlp_gelu(depth: int, in_features: int, out_features: int) -> nn.Sequential:
    """Linear, then (GELU, Linear) x (depth - 1): keys `.0`, `.2`, `.4` ... as the reference."""
    layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
    for _ in range(1, depth):
        layers += [nn.GELU(), nn.Linear(out_features, out_features)]
    return nn.Sequential(*layers)


def _regstage(depth: int, in_chs: int, out_chs: int) -> RegStage:
    # timm's Bottleneck with LayerNorm2d becomes LayerNormAct2d (eps 1e-5), SE width round(0.25*c_in),
    # depthwise 3x3 (group_size 1): exactly the reference's blocks.
    return RegStage(
        depth=depth, in_chs=in_chs, out_chs=out_chs, stride=1, dilation=1, act_layer=nn.SiLU, norm_layer=LayerNorm2d
    )


class AllInOneProjector(nn.Module):
    """The `all_in_one` (7B) / `all_in_one_small` (0.5B) video projector.

    Three branches read the same SigLIP features (docs/reference.md §7): "video" and "body" are each
    RegStage (per frame) -> causal 2x2x2 Conv3d sampler + SiLU (last time step dropped) ->
    RegStage -> 2-layer GELU MLP, flattened in (time, row, column) order; "face" is a 2-layer
    GELU MLP on every patch of every frame. The two variants differ only in RegStage depth and
    the sampler's spatial padding, which decides the token grid: `all_in_one` gives
    floor(s/2)+1 per side (needs an odd patch grid), `all_in_one_small` floor(s/2) (even grid),
    so that the branches agree with the ceil(s/2) face pooling.
    """

    def __init__(self, vision_hidden: int, hidden: int, *, depth: int, spatial_padding: int) -> None:
        super().__init__()
        self.depth = depth
        self.spatial_padding = spatial_padding
        for branch in ("video", "body"):
            self.add_module(f"s1_{branch}", _regstage(depth, vision_hidden, hidden))
            self.add_module(
                f"sampler_{branch}",
                nn.Sequential(
                    nn.Conv3d(
                        hidden,
                        hidden,
                        kernel_size=(2, 2, 2),
                        stride=(1, 2, 2),
                        padding=(1, spatial_padding, spatial_padding),
                        bias=True,
                    ),
                    nn.SiLU(),
                ),
            )
            self.add_module(f"s2_{branch}", _regstage(depth, hidden, hidden))
            self.add_module(f"readout_{branch}", mlp_gelu(2, hidden, hidden))
        self.mlp_2xgelu_face = mlp_gelu(2, vision_hidden, hidden)

    def output_side(self, side: int) -> int:
        """Token grid side of the video/body branches for a `side` x `side` patch grid."""
        return (side + 2 * self.spatial_padding - 2) // 2 + 1

    def _branch(self, features: torch.Tensor, branch: str) -> torch.Tensor:
        b, t, n, d = features.shape
        side = math.isqrt(n)
        x = features.reshape(b * t, side, side, d).permute(0, 3, 1, 2)  # (b t) d h w
        x = getattr(self, f"s1_{branch}")(x)
        h = x.shape[1]
        x = x.reshape(b, t, h, side, side).permute(0, 2, 1, 3, 4)  # b h t s s
        x = getattr(self, f"sampler_{branch}")(x)[:, :, :-1]  # causal in time: drop the extra step
        t2, s2 = x.shape[2], x.shape[3]
        x = x.permute(0, 2, 1, 3, 4).reshape(b * t2, h, s2, x.shape[4])
        x = getattr(self, f"s2_{branch}")(x)
        x = x.reshape(b, t2, h, s2 * s2).permute(0, 1, 3, 2).reshape(b, t2 * s2 * s2, h)
        return getattr(self, f"readout_{branch}")(x)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, N, D) SigLIP features -> video (B, T*h*w, H), body (B, T*h*w, H), face (B*T, N, H)."""
        if features.ndim != 4:
            raise ModelInputError(f"expected (batch, frames, patches, width) features, got {tuple(features.shape)}")
        side = math.isqrt(features.shape[2])
        if side * side != features.shape[2]:
            raise ModelInputError(f"{features.shape[2]} patches do not form a square grid")
        video = self._branch(features, "video")
        body = self._branch(features, "body")
        face = self.mlp_2xgelu_face(features.flatten(0, 1))
        return video, body, face


GATED_PROJECTORS = {
    "all_in_one": dict(depth=4, spatial_padding=1),
    "all_in_one_small": dict(depth=2, spatial_padding=0),
}


def build_vision_projector(projector_type: str, vision_hidden: int, hidden: int) -> nn.Module:
    if projector_type in GATED_PROJECTORS:
        return AllInOneProjector(vision_hidden, hidden, **GATED_PROJECTORS[projector_type])
    # `linear` / `mlpNx_gelu` (not used by released models; the reference's forward cannot run
    # them): plain modules so their keys match the reference (`mm_projector.weight`,
    # `mm_projector.0.weight`); the model applies them to every patch of every frame, ungated.
    if projector_type == "linear":
        return nn.Linear(vision_hidden, hidden)
    if m := _MLP_GELU.match(projector_type):
        return mlp_gelu(int(m.group(1)), vision_hidden, hidden)
    raise ConfigError(
        f"unsupported mm_projector_type {projector_type!r}; supported: all_in_one, "
        f"all_in_one_small, linear, mlpNx_gelu"
    )


def build_audio_projector(projector_type: str, audio_hidden: int, hidden: int) -> nn.Module:
    if projector_type == "linear":
        return nn.Linear(audio_hidden, hidden)
    if m := _MLP_GELU.match(projector_type):
        return mlp_gelu(int(m.group(1)), audio_hidden, hidden)
    if projector_type == "identity":
        if audio_hidden != hidden:
            raise ConfigError(
                f"mm_audio_projector_type 'identity' needs audio width {audio_hidden} == LLM width {hidden}"
            )
        return nn.Identity()
    raise ConfigError(
        f"unsupported mm_audio_projector_type {projector_type!r}; supported: linear, mlpNx_gelu, identity"
    )


def bilinear_face_pool(face: torch.Tensor, batch: int, side: int) -> torch.Tensor:
    """(B*T, side*side, H) -> (B, T * ceil(side/2)^2, H): bilinear resize of each frame's grid.

    align_corners=False like the reference's `F.interpolate(..., mode="bilinear")`: a 2x2 average
    for even sides, a genuine bilinear resample for odd ones (27 -> 14).
    """
    bt, n, h = face.shape
    x = face.reshape(bt, side, side, h).permute(0, 3, 1, 2)
    pooled_side = math.ceil(side / 2)
    x = F.interpolate(x, size=(pooled_side, pooled_side), mode="bilinear", align_corners=False)
    return x.permute(0, 2, 3, 1).reshape(batch, (bt // batch) * pooled_side * pooled_side, h)


def fuse_branches(
    video: torch.Tensor, body: torch.Tensor, face_pooled: torch.Tensor, branch_probs: torch.Tensor
) -> torch.Tensor:
    """video * p_video + body * p_body + face * p_face per sample; probs (B, 3)."""
    p = branch_probs.to(video.dtype)[:, :, None, None]
    return video * p[:, 0] + body * p[:, 1] + face_pooled * p[:, 2]


class SlowFastCompressor(nn.Module):
    """Upstream HumanOmni's slow-fast video token compressor (docs/reference.md §14).

    Output per video: the 2x2 average-pooled tokens of every frame (floor), then the
    full-resolution tokens of frames 1, 5, 9, ... (frame 0 if there is only one), frame-major.
    The two projections exist only so the checkpoint keys load: upstream never uses them.
    """

    def __init__(self, vision_hidden: int, mid_channels: int = 256) -> None:
        super().__init__()
        self.vlm_query_projector = nn.Linear(vision_hidden, mid_channels)
        self.vlm_key_projector = nn.Linear(vision_hidden, mid_channels)

    @staticmethod
    def slow_frames(num_frames: int) -> list[int]:
        return list(range(1, num_frames, 4)) or [0]

    @classmethod
    def num_tokens(cls, num_frames: int, side: int) -> int:
        return num_frames * (side // 2) ** 2 + len(cls.slow_frames(num_frames)) * side * side

    def forward(self, tokens: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(B, T*side*side, H) fused video tokens -> (B, num_tokens(T, side), H)."""
        b, n, h = tokens.shape
        per_frame = n // num_frames
        side = math.isqrt(per_frame)
        if side * side * num_frames != n:
            raise ModelInputError(f"{n} video tokens do not split into {num_frames} square frames")
        grid = tokens.reshape(b * num_frames, side, side, h).permute(0, 3, 1, 2)
        fast = F.avg_pool2d(grid, 2, 2)
        fast = fast.flatten(2).transpose(1, 2).reshape(b, -1, h)
        frames = tokens.reshape(b, num_frames, per_frame, h)
        slow = frames[:, self.slow_frames(num_frames)].reshape(b, -1, h)
        return torch.cat([fast, slow], dim=1)
