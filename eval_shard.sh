#!/usr/bin/env bash
# Sharded inference on every local GPU, then the recognition metrics (the paper's entry-point name).
#
#   bash eval_shard.sh CKPT data/DFEW/test_set_5.json out/ [more erv infer options]
#
# writes out/test_set_5.jsonl (predictions), out/test_set_5.meta.json (checkpoint and settings)
# and out/test_set_5.metrics.json. Re-running resumes the predictions. Environment:
#   NPROC_PER_NODE  processes (default: the number of visible GPUs, at least 1)
#   DATASET         taxonomy for erv evaluate (default: the 'dataset' field of the first record)
#   PYTHON          interpreter with erv installed (default: python)
# Sampling as the paper: add --temperature 0.3 (greedy by default). See docs/inference.md.
set -euo pipefail

if [ "$#" -lt 3 ]; then
    echo "usage: bash eval_shard.sh CKPT RECORDS OUT_DIR [erv infer options]" >&2
    exit 2
fi
CKPT=$1
DATA=$2
OUT_DIR=$3
shift 3
PYTHON=${PYTHON:-python}

if [ -z "${NPROC_PER_NODE:-}" ]; then
    NPROC_PER_NODE=$("$PYTHON" -c "import torch; print(max(1, torch.cuda.device_count()))")
fi
if [ -z "${DATASET:-}" ]; then
    DATASET=$("$PYTHON" -c "
import sys
from erv.io.jsonl import iter_json_records
for _, record in iter_json_records(sys.argv[1]):
    print(record.get('dataset') or ''); break
" "$DATA")
fi
if [ -z "$DATASET" ]; then
    echo "eval_shard.sh: $DATA names no dataset; set DATASET=DFEW (or MAFW, ...)" >&2
    exit 2
fi

NAME=$(basename "$DATA")
NAME=${NAME%.*}
PRED="$OUT_DIR/$NAME.jsonl"
mkdir -p "$OUT_DIR"

"$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$NPROC_PER_NODE" \
    -m erv.cli infer --model "$CKPT" --data "$DATA" --out "$PRED" "$@"
"$PYTHON" -m erv.cli evaluate --predictions "$PRED" --dataset "$DATASET" --labels "$DATA" \
    --json "$OUT_DIR/$NAME.metrics.json"
