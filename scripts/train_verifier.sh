#!/usr/bin/env bash
# Train the Emotional Rationale Verifier from a recipe.
#
#   scripts/train_verifier.sh [RECIPE] [--key value ...]
#   NPROC=8 scripts/train_verifier.sh configs/verifier_paper.yaml --output_dir outputs/erv
#
# RECIPE defaults to configs/verifier_paper.yaml. Extra `--key value` pairs override recipe
# fields. With NPROC > 1 it runs under torchrun and keeps the paper's global batch of 64 by
# setting the per-device batch to 64 / NPROC (an explicit --per_device_train_batch_size wins).
# Resume an interrupted run with `--resume_from_checkpoint true`.
set -euo pipefail

RECIPE="${1:-configs/verifier_paper.yaml}"
if [[ $# -gt 0 ]]; then shift; fi
NPROC="${NPROC:-1}"
GLOBAL_BATCH="${GLOBAL_BATCH:-64}"

if [[ ! -f "$RECIPE" ]]; then
  echo "train_verifier.sh: recipe $RECIPE not found" >&2
  exit 2
fi

if [[ "$NPROC" -gt 1 ]]; then
  if (( GLOBAL_BATCH % NPROC != 0 )); then
    echo "train_verifier.sh: global batch $GLOBAL_BATCH is not divisible by NPROC=$NPROC" >&2
    exit 2
  fi
  exec torchrun --nproc_per_node "$NPROC" -m erv.cli verifier train --config "$RECIPE" \
    --per_device_train_batch_size "$((GLOBAL_BATCH / NPROC))" "$@"
fi
exec python -m erv.cli verifier train --config "$RECIPE" "$@"
