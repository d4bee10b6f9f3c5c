"""Rewards by name, as GRPO recipes list them (`reward_funcs: [format, accuracy, explanation]`).

A recipe names rewards; the trainer needs callables. `REWARDS` maps each name to a factory
that takes the recipe's reward options and returns the TRL reward function. Factories run
only when a reward is built, so nothing loads a verifier or opens a judge client for a
reward the recipe does not use, and a bad option (a verifier folder that does not exist)
fails at start-up, not at the first training step.

A name that is not registered may be a dotted `package.module:function` path to any TRL
reward function.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from erv.errors import ConfigError

RewardFunction = Callable[..., Any]


@dataclass(frozen=True)
class RewardSpec:
    """One registered reward: its factory and the options (recipe fields) the factory reads."""

    name: str
    factory: Callable[..., RewardFunction]
    help: str

    @property
    def options(self) -> tuple[str, ...]:
        params = inspect.signature(self.factory).parameters.values()
        return tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def _format(**_: Any) -> RewardFunction:
    from erv.rewards.basic import format_reward

    return format_reward


def _accuracy(*, taxonomy: str | None = None) -> RewardFunction:
    from erv.rewards.basic import accuracy_reward, make_accuracy_reward

    return make_accuracy_reward(taxonomy) if taxonomy else accuracy_reward


def _explanation(
    *,
    verifier: Any = None,
    taxonomy: str | None = None,
    explanation_preset: str = "released",
    verifier_threshold: float | None = None,
    verifier_top_k: int | None = None,
    neutral_rule: str | None = None,
    neutral_filter: bool = True,
    sentence_level: bool = True,
    sentence_splitter: str = "regex",
    verifier_batch_size: int | None = None,
    verifier_device: str | None = None,
) -> RewardFunction:
    from erv.rewards.explanation import ExplanationReward

    if verifier is None or verifier == "":
        raise ConfigError(
            "reward 'explanation' needs a verifier: set the recipe field `verifier` to an ERV "
            "checkpoint folder (erv verifier train) or a hub id"
        )
    if explanation_preset not in ExplanationReward.PRESETS:
        raise ConfigError(
            f"explanation_preset must be one of {', '.join(ExplanationReward.PRESETS)}, got {explanation_preset!r}"
        )
    preset = ExplanationReward.PRESETS[explanation_preset]
    return ExplanationReward(
        verifier,
        threshold=preset["threshold"] if verifier_threshold is None else verifier_threshold,
        top_k=preset["top_k"] if verifier_top_k is None else verifier_top_k,
        neutral_rule=neutral_rule or preset["neutral_rule"],
        neutral_filter=neutral_filter,
        sentence_level=sentence_level,
        splitter=sentence_splitter,
        taxonomy=taxonomy,
        batch_size=verifier_batch_size,
        device=verifier_device,
    )


def _fgce(
    *,
    judge_model: str | None = None,
    judge_base_url: str | None = None,
    judge_api_key_env: str = "OPENAI_API_KEY",
    judge_concurrency: int = 16,
    judge_cache: str | None = None,
    taxonomy: str | None = None,
    fgce_weighted: bool = True,
    fgce_splitter: str = "punkt",
    fgce_malformed: str = "others",
) -> RewardFunction:
    from erv.judge.client import DEFAULT_MODEL, JudgeConfig
    from erv.rewards.fgce import FGCEReward

    config = JudgeConfig(
        model=judge_model or DEFAULT_MODEL,
        base_url=judge_base_url,
        api_key_env=judge_api_key_env,
        concurrency=judge_concurrency,
        cache=judge_cache,
    )
    return FGCEReward(
        config, weighted=fgce_weighted, taxonomy=taxonomy, splitter=fgce_splitter, malformed=fgce_malformed
    )


REWARDS: dict[str, RewardSpec] = {
    spec.name: spec
    for spec in (
        RewardSpec("format", _format, "1 if the completion is <think>…</think><answer>…</answer> (paper regex)"),
        RewardSpec("accuracy", _accuracy, "1 if the normalised <answer> equals the gold label"),
        RewardSpec(
            "explanation",
            _explanation,
            "ERV reward (Algorithm 1): share of <think> sentences whose verifier labels hold the gold emotion",
        ),
        RewardSpec("fgce", _fgce, "CA-EMER FG-CE: LLM-judged function/modality-weighted sentence scores"),
    )
}


def reward_names() -> list[str]:
    return list(REWARDS)


def _import_dotted(name: str) -> RewardFunction:
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"reward {name!r}: cannot import {module_name!r} ({exc})") from None
    try:
        function = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"reward {name!r}: {module_name} has no {attr!r}") from None
    if not callable(function):
        raise ConfigError(f"reward {name!r} is not callable")
    return function


def build_reward(name: str, options: Mapping[str, Any] | None = None) -> RewardFunction:
    """The reward function for `name` (a registry name or `module:function`), built from `options`.

    Each factory reads only the options it declares; the others are ignored, so one recipe's
    option set serves every reward it lists.
    """
    options = dict(options or {})
    spec = REWARDS.get(name)
    if spec is None:
        if ":" in name:
            return _import_dotted(name)
        raise ConfigError(
            f"unknown reward {name!r}; registered rewards: {', '.join(REWARDS)} "
            f"(or a dotted 'package.module:function')"
        )
    return spec.factory(**{k: v for k, v in options.items() if k in spec.options})


def build_rewards(names: Sequence[str], options: Mapping[str, Any] | None = None) -> list[RewardFunction]:
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ConfigError(f"no reward functions given; choose from {', '.join(REWARDS)}")
    return [build_reward(name, options) for name in names]
