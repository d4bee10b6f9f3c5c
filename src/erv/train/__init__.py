"""Training stages: SFT (`sft`) and GRPO (`grpo`) of HumanOmni, and the pieces they share."""
