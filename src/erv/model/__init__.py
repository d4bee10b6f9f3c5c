"""HumanOmni (Qwen2 + SigLIP + Whisper + BERT gate): model, processor, loading."""
