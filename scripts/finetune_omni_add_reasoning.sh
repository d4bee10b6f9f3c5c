#!/usr/bin/env bash
# SFT of HumanOmni from a recipe, on one GPU, one node or several nodes (torchrun).
#
#   scripts/finetune_omni_add_reasoning.sh [RECIPE] [--field value ...]
#   NPROC_PER_NODE=8 scripts/finetune_omni_add_reasoning.sh configs/sft/emer_0.5b.yaml
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node1 NPROC_PER_NODE=8 scripts/finetune_omni_add_reasoning.sh configs/sft/emer_7b.yaml
#
# RECIPE defaults to configs/sft/emer_0.5b.yaml. The environment variables (NPROC_PER_NODE, NNODES,
# NODE_RANK, MASTER_ADDR, MASTER_PORT, GLOBAL_BATCH, ERV_DRY_RUN) are described in scripts/torchrun_erv.sh.
set -euo pipefail
RECIPE="${1:-configs/sft/emer_0.5b.yaml}"
if [[ $# -gt 0 ]]; then shift; fi
LAUNCHER=finetune_omni_add_reasoning.sh exec "$(dirname "${BASH_SOURCE[0]}")/torchrun_erv.sh" sft "$RECIPE" "$@"
