#!/usr/bin/env bash
# The paper code's judge script, kept under its name: every argument goes to `erv judge`
# (see docs/judge.md). The paper's --dataset_name spelling is accepted for --dataset.
#
#   OPENAI_API_KEY=... tools/response_gpt_check.sh --predictions P.jsonl --dataset_name MAFW --out J.jsonl
#
# Interpreter: $PYTHON if set, else the checkout's .venv, else an `erv` on PATH, else python3.
set -euo pipefail

args=()
while (($#)); do
    case "$1" in
        --dataset_name) args+=(--dataset "${2:?--dataset_name needs a value}"); shift 2 ;;
        --dataset_name=*) args+=(--dataset "${1#*=}"); shift ;;
        *) args+=("$1"); shift ;;
    esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x "$here/.venv/bin/python" ]]; then
    py="$here/.venv/bin/python"
elif command -v erv >/dev/null 2>&1; then
    exec erv judge ${args[@]+"${args[@]}"}
else
    py=python3
fi
PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m erv.cli judge ${args[@]+"${args[@]}"}
