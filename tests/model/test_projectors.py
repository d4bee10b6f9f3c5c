"""Projector families and their properties beyond the fixture (which covers all_in_one_small)."""

from __future__ import annotations

import pytest
import torch

from erv.errors import ConfigError
from erv.model import build_model, preset_config
from erv.model.projectors import AllInOneProjector, build_audio_projector, build_vision_projector


def test_sampler_is_causal_in_time():
    """Output step t mixes input frames t-1 and t: changing the last frame changes only the last step."""
    torch.manual_seed(0)
    proj = AllInOneProjector(8, 16, depth=2, spatial_padding=0).eval()
    frames, side = 4, 4
    x = torch.randn(1, frames, side * side, 8)
    y = x.clone()
    y[:, -1] += 1.0
    with torch.no_grad():
        a, _, _ = proj(x)
        b, _, _ = proj(y)
    per_frame = (side // 2) ** 2
    a, b = a.reshape(frames, per_frame, 16), b.reshape(frames, per_frame, 16)
    assert torch.equal(a[:-1], b[:-1])
    assert not torch.allclose(a[-1], b[-1])
    y = x.clone()
    y[:, 1] += 1.0  # frame 1 reaches steps 1 and 2 only
    with torch.no_grad():
        c = proj(y)[0].reshape(frames, per_frame, 16)
    changed = [not torch.equal(a[t], c[t]) for t in range(frames)]
    assert changed == [False, True, True, False]


def test_all_in_one_needs_an_odd_grid_and_matches_face_pooling():
    torch.manual_seed(0)
    vision = dict(image_size=40, patch_size=8)  # 5x5 patches, like 27x27 for siglip-so400m-384
    config = preset_config("humanomni-tiny", mm_projector_type="all_in_one")
    config.vision_config.image_size, config.vision_config.patch_size = vision["image_size"], vision["patch_size"]
    model = build_model(config, dtype=torch.float32)
    assert [n for n in model.state_dict() if n.startswith("model.mm_projector.s1_video.")][-1].startswith(
        "model.mm_projector.s1_video.b4."
    )  # depth 4
    frames = config.num_frames
    tokens = model.model.encode_videos(torch.randn(2, frames, 3, 40, 40), torch.softmax(torch.randn(2, 3), dim=-1))
    assert tokens.shape == (2, frames * 3 * 3, config.hidden_size) and model.model.num_video_tokens() == frames * 9
    even = preset_config("humanomni-tiny", mm_projector_type="all_in_one")  # 4x4 patches
    with pytest.raises(ConfigError, match="needs an odd patch grid"):
        build_model(even)
    odd_small = preset_config("humanomni-tiny")
    odd_small.vision_config.image_size = 40
    with pytest.raises(ConfigError, match="needs an even patch grid"):
        build_model(odd_small)


@pytest.mark.parametrize(
    "kind, keys",
    [
        ("linear", {"model.mm_projector.weight", "model.mm_projector.bias"}),
        (
            "mlp2x_gelu",
            {
                "model.mm_projector.0.weight",
                "model.mm_projector.0.bias",
                "model.mm_projector.2.weight",
                "model.mm_projector.2.bias",
            },
        ),
    ],
)
def test_plain_vision_projectors(kind, keys):
    torch.manual_seed(0)
    model = build_model(preset_config("humanomni-tiny", mm_projector_type=kind), dtype=torch.float32)
    assert {n for n in model.state_dict() if n.startswith("model.mm_projector.")} == keys
    frames = model.config.num_frames
    tokens = model.model.encode_videos(torch.randn(1, frames, 3, 32, 32), None)  # no gate needed
    assert tokens.shape == (1, frames * 16, 64) == (1, model.model.num_video_tokens(), 64)


def test_projector_type_errors():
    with pytest.raises(ConfigError, match="unsupported mm_projector_type 'pllava'"):
        build_vision_projector("pllava", 8, 16)
    with pytest.raises(ConfigError, match="unsupported mm_audio_projector_type"):
        build_audio_projector("qformer", 8, 16)
    assert isinstance(build_audio_projector("linear", 8, 16), torch.nn.Linear)
    assert len(build_audio_projector("mlp3x_gelu", 8, 16)) == 5
    with pytest.raises(ConfigError, match="identity"):
        build_audio_projector("identity", 8, 16)
    with pytest.raises(ConfigError, match="no vision_config"):
        build_model(preset_config("humanomni-tiny", vision_config=None))
