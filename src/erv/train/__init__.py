"""Trainers for HumanOmni: `erv sft` (supervised fine-tuning) and the pieces every trainer shares.

Modules (docs/training.md):
  sft      `erv sft`: SFTConfig, HumanOmniSFTTrainer (HF Trainer), train_sft, main(argv)
  common   recipe parsing, one-line errors, loading for training, resuming, saving, logging back-ends
  data     record validation, the media pre-check and policy, the training dataset and collator
  parts    tunable parts by name -> parameter prefixes; apply_tune_parts, frozen_parts, LoRA targets
  args     ModelArguments and DataArguments, the recipe fields shared with GRPO
"""
