#!/usr/bin/env bash
# GRPO of HumanOmni with the ERV reward from a recipe, on one GPU, one node or several nodes (torchrun).
#
#   scripts/run_grpo_erv.sh [RECIPE] [--field value ...]
#   NPROC_PER_NODE=8 scripts/run_grpo_erv.sh configs/grpo/erv_0.5b.yaml
#   scripts/run_grpo_erv.sh configs/grpo/released_0.5b.yaml       # the released script's settings
#   scripts/run_grpo_erv.sh configs/grpo/baseline_0.5b.yaml       # format + answer rewards only
#
# RECIPE defaults to configs/grpo/erv_0.5b.yaml. The environment variables (NPROC_PER_NODE, NNODES,
# NODE_RANK, MASTER_ADDR, MASTER_PORT, GLOBAL_BATCH, ERV_DRY_RUN) are described in scripts/torchrun_erv.sh.
# Logging to wandb reads its key from WANDB_API_KEY (never from a file); without one it logs offline.
set -euo pipefail
RECIPE="${1:-configs/grpo/erv_0.5b.yaml}"
if [[ $# -gt 0 ]]; then shift; fi
LAUNCHER=run_grpo_erv.sh exec "$(dirname "${BASH_SOURCE[0]}")/torchrun_erv.sh" grpo "$RECIPE" "$@"
