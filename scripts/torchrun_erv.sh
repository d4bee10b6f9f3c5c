#!/usr/bin/env bash
# One launcher for the HumanOmni trainers: torchrun on one GPU, one node or several nodes.
#
#   scripts/torchrun_erv.sh sft|grpo RECIPE [--field value ...]
#
# The paper-named entry points call it: scripts/finetune_omni_add_reasoning.sh (SFT) and
# scripts/run_grpo_erv.sh (GRPO). Extra `--field value` pairs override recipe fields.
# torchrun settings come from the environment, with single-node defaults:
#   NPROC_PER_NODE  processes (GPUs) per node   default: the GPUs nvidia-smi lists, else 1
#   NNODES          nodes                        default 1
#   NODE_RANK       this node's rank             default 0
#   MASTER_ADDR     rank-0 node address          default 127.0.0.1
#   MASTER_PORT     rendezvous port              default 29500
# GLOBAL_BATCH (optional) sets gradient_accumulation_steps so that per-device batch x processes x
# accumulation equals it (GRPO's per-device batch counts completions, as in TRL; the recipes'
# per-device batch is read from --per_device_train_batch_size when given, else from the recipe).
# ERV_DRY_RUN=1 prints the command instead of running it.
# Resume an interrupted run by re-running the same command (recipes set resume_from_checkpoint: auto).
set -euo pipefail
LAUNCHER="${LAUNCHER:-torchrun_erv.sh}"

COMMAND="${1:?usage: scripts/torchrun_erv.sh sft|grpo RECIPE [--field value ...]}"
shift
RECIPE="${1:?usage: scripts/torchrun_erv.sh sft|grpo RECIPE [--field value ...]}"
shift
if [[ ! -f "$RECIPE" ]]; then
  echo "$LAUNCHER: recipe $RECIPE not found" >&2
  exit 2
fi

if [[ -z "${NPROC_PER_NODE:-}" ]]; then
  NPROC_PER_NODE=1
  if command -v nvidia-smi >/dev/null 2>&1; then
    gpus=$(nvidia-smi --list-gpus 2>/dev/null | wc -l || true)
    if [[ "${gpus:-0}" -gt 0 ]]; then NPROC_PER_NODE="$gpus"; fi
  fi
fi
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"

extra=()
if [[ -n "${GLOBAL_BATCH:-}" ]]; then
  per_device=""
  args=("$@")
  for ((i = 0; i < ${#args[@]}; i++)); do
    if [[ "${args[$i]}" == "--per_device_train_batch_size" ]]; then per_device="${args[$((i + 1))]:-}"; fi
  done
  if [[ -z "$per_device" ]]; then
    per_device=$(sed -n 's/^per_device_train_batch_size:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$RECIPE" | head -n1)
  fi
  per_device="${per_device:-1}"
  world=$((NPROC_PER_NODE * NNODES * per_device))
  if (( GLOBAL_BATCH % world != 0 )); then
    echo "$LAUNCHER: GLOBAL_BATCH=$GLOBAL_BATCH is not a multiple of" \
      "per-device batch $per_device x $NPROC_PER_NODE processes x $NNODES nodes" >&2
    exit 2
  fi
  extra=(--gradient_accumulation_steps "$((GLOBAL_BATCH / world))")
fi

cmd=(torchrun --nproc_per_node "$NPROC_PER_NODE" --nnodes "$NNODES" --node_rank "$NODE_RANK"
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT"
  -m erv.cli "$COMMAND" --config "$RECIPE" "${extra[@]}" "$@")
if [[ -n "${ERV_DRY_RUN:-}" ]]; then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
exec "${cmd[@]}"
