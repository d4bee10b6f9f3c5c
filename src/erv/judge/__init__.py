"""LLM judge over any OpenAI-compatible endpoint: explanation emotions (EEA/EPC/FCR), verifier
pseudo-labels and CA-EMER's FG-CE scores. See docs/judge.md.

Importing this package does not import the `openai` SDK; the client does when it is made.
"""

from erv.judge.client import JudgeClient, JudgeConfig, JudgeReply
from erv.judge.prompts import (
    FGCE_FUNCTIONS,
    FGCE_MODALITIES,
    JudgeReplyError,
    complement_prompt,
    explanation_emotion_prompt,
    fgce_classify_prompt,
    fgce_score_prompt,
    parse_emotion_reply,
    parse_fgce_classification,
    parse_fgce_score,
    parse_multi_emotion_reply,
    pseudo_label_prompt,
)

__all__ = [
    "JudgeClient",
    "JudgeConfig",
    "JudgeReply",
    "JudgeReplyError",
    "FGCE_FUNCTIONS",
    "FGCE_MODALITIES",
    "explanation_emotion_prompt",
    "pseudo_label_prompt",
    "complement_prompt",
    "fgce_classify_prompt",
    "fgce_score_prompt",
    "parse_emotion_reply",
    "parse_multi_emotion_reply",
    "parse_fgce_classification",
    "parse_fgce_score",
]
