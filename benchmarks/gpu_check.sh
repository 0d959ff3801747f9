#!/usr/bin/env bash
# The prepared GPU check: on a machine with an NVIDIA GPU, train every recipe a few steps in bf16 on CUDA (the
# reward models first, then the PPO variants on them), generate with vLLM, and time the full FIGA suite; print
# seconds per step. Without a GPU it says so and exits 0 (the project builds and tests on CPU alone).
#
#   benchmarks/gpu_check.sh [MODEL] [OUT]      # default Qwen/Qwen2.5-0.5B-Instruct, results/gpu_check
#
# Its figures are what runs/gpu.yaml's time estimate rests on: correct the estimate with them.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi finds none): nothing to check; the CPU test suite covers the rest"
  exit 0
fi
MODEL=${1:-Qwen/Qwen2.5-0.5B-Instruct}
OUT=${2:-results/gpu_check}
BENCH=${BENCH:-.venv/bin/bench}
PY=${PY:-.venv/bin/python}
STEPS=3
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
"$PY" - <<'PYEOF'
import torch
assert torch.cuda.is_available(), "torch cannot see the GPU: is the CUDA build installed (setup.sh with nvidia-smi)?"
from bench.models import default_dtype
assert default_dtype() == torch.bfloat16, default_dtype()
print("torch", torch.__version__, "CUDA", torch.version.cuda, "bf16:", torch.cuda.is_bf16_supported())
PYEOF
: > "$OUT/times.tsv"
timed() {  # name, command...: wall seconds into times.tsv, the command's output into OUT/name.log
  local name=$1; shift
  local t0=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1 || { echo "gpu_check: $name FAILED; see $OUT/$name.log"; tail -20 "$OUT/$name.log"; exit 1; }
  printf "%s\t%d s\n" "$name" $((SECONDS - t0)) | tee -a "$OUT/times.tsv"
}
COMMON=(--model "$MODEL" --max-steps "$STEPS" --set batch_size=4 --set max_length=512 --set limit=32 --set val_limit=8)
for recipe in sft figa dpo reward-model token-reward-model; do
  timed "train-$recipe" "$BENCH" train "$recipe" "${COMMON[@]}" --output-dir "$OUT/ckpt/$recipe"
done
PPO=(--set rollout_batch=16 --set max_new_tokens=128 --set batch_size=8)
timed train-ppo "$BENCH" train ppo --model "$MODEL" --max-steps 2 "${PPO[@]}" --set limit=32 \
  --set reward_model="$OUT/ckpt/reward-model" --output-dir "$OUT/ckpt/ppo"
timed train-fg-ppo "$BENCH" train fg-ppo --model "$MODEL" --max-steps 2 "${PPO[@]}" --set limit=32 \
  --set reward_model="$OUT/ckpt/token-reward-model" --output-dir "$OUT/ckpt/fg-ppo"
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then  # the same jobs on 2 GPUs (DDP): same global batch, compare the logs
  DDP=("$PY" -m accelerate.commands.launch --config_file configs/accelerate/ddp.yaml --num_processes 2 -m bench.cli)
  timed train-sft-2gpu "${DDP[@]}" train sft "${COMMON[@]/batch_size=4/batch_size=2}" --output-dir "$OUT/ckpt/sft-2gpu"
  timed train-ppo-2gpu "${DDP[@]}" train ppo --model "$MODEL" --max-steps 2 "${PPO[@]}" --set limit=32 \
    --set reward_model="$OUT/ckpt/reward-model" --output-dir "$OUT/ckpt/ppo-2gpu"
fi
timed generate "$BENCH" generate "$OUT/ckpt/sft" --eval-set alpaca_eval --max-new-tokens 512 --backend vllm \
  --output-dir "$OUT/generations"
timed suite "$BENCH" suite "$OUT/ckpt/sft" --suite figa
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
meta = json.loads((out / "generations" / "generation_meta.json").read_text())
print(f"generation: {meta['n']} answers, {meta['tokens_per_s']} tokens/s (engine start {meta['engine_start_seconds']} s)")
for log in sorted((out / "ckpt").glob("*/train_log.jsonl")):
    rows = [json.loads(l) for l in log.read_text().splitlines() if l.strip()]
    print(f"{log.parent.name}: {len(rows)} log rows; last {rows[-1] if rows else None}")
print((out / "times.tsv").read_text())
PYEOF
