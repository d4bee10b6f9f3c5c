"""GRPO rewards: format, answer accuracy, the ERV explanation reward (paper §4) and CA-EMER's
LLM-judged FG-CE reward, plus the registry GRPO recipes name them by.

Modules, each with one job:
  common       completion texts, gold labels and per-sample taxonomies (TRL's calling convention)
  basic        `format_reward`, `accuracy_reward`, `make_accuracy_reward`
  explanation  `ExplanationReward` (Algorithm 1) and its batched scoring
  fgce         `FGCEReward` (CA-EMER), async and de-duplicated judge calls
  registry     `REWARDS`: recipe name -> factory; `build_reward`, `build_rewards`

Importing this package is cheap: no model loads until a reward that needs one is built.
"""

from erv.rewards.basic import accuracy_reward, format_reward, make_accuracy_reward
from erv.rewards.common import TAXONOMY_COLUMNS, completion_texts, gold_labels, gold_text, resolve_taxonomies
from erv.rewards.explanation import NEUTRAL_RULES, ExplanationReward, explanation_scores, score_label_sets
from erv.rewards.fgce import (
    FGCE_FUNCTION_WEIGHTS,
    MALFORMED_POLICIES,
    FGCEReward,
    fgce_modality_weight,
    fgce_reward_value,
    fgce_sentence_weight,
)
from erv.rewards.registry import REWARDS, RewardSpec, build_reward, build_rewards, reward_names

__all__ = [
    "FGCE_FUNCTION_WEIGHTS",
    "MALFORMED_POLICIES",
    "NEUTRAL_RULES",
    "REWARDS",
    "TAXONOMY_COLUMNS",
    "ExplanationReward",
    "FGCEReward",
    "RewardSpec",
    "accuracy_reward",
    "build_reward",
    "build_rewards",
    "completion_texts",
    "explanation_scores",
    "fgce_modality_weight",
    "fgce_reward_value",
    "fgce_sentence_weight",
    "format_reward",
    "gold_labels",
    "gold_text",
    "make_accuracy_reward",
    "resolve_taxonomies",
    "reward_names",
    "score_label_sets",
]
