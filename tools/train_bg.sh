#!/usr/bin/env bash
# Start (or resume) a long training run in the background, surviving the shell: tools/train_bg.sh CONFIG OUT
# The run checkpoints to OUT/last every save_every steps; run this again to continue from there.
set -euo pipefail
cfg=$1 out=$2
resume=()
[ -f "$out/last/state.json" ] && resume=(--resume)
mkdir -p "$out"
nohup .venv/bin/ftrt train restorer --config "$cfg" --out "$out" "${resume[@]}" --no-progress >>"$out/train.out" 2>&1 &
echo "started PID $! (${resume[*]:-fresh}); log: $out/train.out, $out/log.jsonl"
