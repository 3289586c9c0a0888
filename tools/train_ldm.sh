#!/usr/bin/env bash
# The latent-diffusion chain in the background: VAE -> denoiser (reconstruct) -> adaptors (adapt).
# Each stage resumes from its run folder's last checkpoint and is skipped once its final weights exist.
set -euo pipefail
stage() {  # stage COMMAND CONFIG OUT
  local cmd=$1 cfg=$2 out=$3 resume=()
  [ -f "$out/final.safetensors" ] && return 0
  [ -f "$out/last/state.json" ] && resume=(--resume)
  mkdir -p "$out"
  .venv/bin/ftrt train $cmd --config "$cfg" --out "$out" "${resume[@]}" --no-progress >>"$out/train.out" 2>&1
}
if [ "${1:-}" != "--foreground" ]; then
  nohup "$0" --foreground </dev/null >/dev/null 2>&1 &
  echo "started PID $!; logs: runs/{vae,ldm-reconstruct,ldm-adapt}/train.out"
  exit 0
fi
stage vae configs/vae.yaml runs/vae
stage ldm configs/ldm-reconstruct.yaml runs/ldm-reconstruct
stage ldm configs/ldm-adapt.yaml runs/ldm-adapt
