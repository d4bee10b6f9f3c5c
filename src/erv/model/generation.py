"""The sampling warpers transformers' `generate` applies, for the decoding loops erv runs itself
(`erv infer`'s per-row sampler, GRPO's shared-prefix rollouts): the same classes, in the order
of `GenerationMixin._get_logits_processor`, so those loops sample as `generate` would.
"""

from __future__ import annotations

from typing import Any

from transformers.generation import logits_process as lp

from erv.errors import ConfigError


def make_warpers(params: dict[str, Any]) -> list[Any]:
    """transformers' sampling warpers for the effective fields, in its order (min_tokens_to_keep 1)."""
    warpers: list[Any] = []
    temperature = params.get("temperature")
    if temperature is not None and temperature != 1.0:
        warpers.append(lp.TemperatureLogitsWarper(temperature))
    if params.get("top_h") is not None:
        top_h = getattr(lp, "TopHLogitsWarper", None)
        if top_h is None:
            raise ConfigError("the checkpoint's generation_config sets top_h, which this transformers cannot apply")
        warpers.append(top_h(top_h=params["top_h"]))
    top_k = params.get("top_k")
    if top_k is not None and top_k != 0:
        warpers.append(lp.TopKLogitsWarper(top_k=top_k))
    top_p = params.get("top_p")
    if top_p is not None and top_p < 1.0:
        warpers.append(lp.TopPLogitsWarper(top_p=top_p))
    if params.get("min_p") is not None:
        warpers.append(lp.MinPLogitsWarper(min_p=params["min_p"]))
    typical = params.get("typical_p")
    if typical is not None and typical < 1.0:
        warpers.append(lp.TypicalLogitsWarper(mass=typical))
    epsilon = params.get("epsilon_cutoff")
    if epsilon is not None and 0.0 < epsilon < 1.0:
        warpers.append(lp.EpsilonLogitsWarper(epsilon=epsilon))
    eta = params.get("eta_cutoff")
    if eta is not None and 0.0 < eta < 1.0:
        warpers.append(lp.EtaLogitsWarper(epsilon=eta))
    return warpers
