"""Batched, sharded, resumable generation with a HumanOmni checkpoint (`erv infer`; docs/inference.md).

Modules, each with one job (imports run down this list):
  cli          `erv infer`: arguments, early checks, loading, the summary
  run          one run: lock, plan, predict a shard, merge (alone or as a torchrun rank)
  engine       batches -> responses: DataLoader dataset, towers once per clip, K samples
  sampling     per-row seeded sampling (a sample depends on its clip and seed, not its batch)
  settings     user settings merged with the checkpoint's generation_config.json
  store        output, shards and their records; validation and merging
  identity     the run header beside the output, fingerprints, refusal of another run
  inputs       the inference record file as validated items
  distributed  rank, device and the two collective steps
"""
