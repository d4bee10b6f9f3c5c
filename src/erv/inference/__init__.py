"""Batched, sharded, resumable generation with a HumanOmni checkpoint (`erv infer`)."""
