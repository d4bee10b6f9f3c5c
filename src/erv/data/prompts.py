"""Task texts shared by data preparation, training and inference.

The instruction is the one the released checkpoints were trained and evaluated with
(reference `eval_shard.sh` / EMER data), including its two spaces before "Output": the
paper's figure shows one, but the model saw two, and the BERT gate reads this text too.
"""

TASK_PROMPT = (
    "As an emotional recognition expert; throughout the video, which emotion conveyed by the "
    "characters is the most obvious to you?  Output the thinking process in <think> </think> "
    "and final emotion in <answer> </answer> tags."
)

# R1-style system prompt (docs/reference.md §1), in our words: think first, then answer, each in
# its tags. The released GRPO code only uses its version for text-only data.
GRPO_SYSTEM_PROMPT = (
    "You are a helpful assistant that reasons before answering. First think through the "
    "question step by step, then give the final answer. Put the reasoning inside "
    "<think> </think> tags and the final answer inside <answer> </answer> tags, i.e. "
    "<think> reasoning </think><answer> answer </answer>."
)

MODAL_PREFIX = "<video>\n<audio>\n"
