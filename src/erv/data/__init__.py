"""The task's data: emotion taxonomies and label normalisation, dataset label files, record
schemas, `<think>`/`<answer>` parsing and sentence splitting, task prompts, and
`erv data prepare` (label files + videos -> SFT / GRPO / inference records).
"""
