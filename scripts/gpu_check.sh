#!/usr/bin/env bash
# On a machine with a CUDA GPU: the GPU tests, a short training and sampling run on the GPU, and the device
# benchmark (`python -m vqvae bench --device cuda`). Everything it measured is written to one folder
# (default bench/gpu-check): the tests' output, the run's evaluation, its samples, bench JSON and a table
# beside the CPU's figures of bench/device-cpu.json.
#   bash scripts/gpu_check.sh [OUT_FOLDER]
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export GRADIO_TEMP_DIR="${GRADIO_TEMP_DIR:-$PWD/.gradio}"
out="${1:-bench/gpu-check}"
mkdir -p "$out"
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "error: no CUDA GPU is visible to PyTorch here; this script measures a GPU" >&2
    exit 2
fi
python -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0), torch.cuda.device_count(), 'GPU(s)')" \
    | tee "$out/device.txt"

echo "== the GPU tests"
python -m pytest -q tests/test_gpu.py tests/test_placement.py 2>&1 | tee "$out/tests.txt"

echo "== a short run on the GPU: the mnist preset, its prior, evaluate, sample"
run="$(mktemp -d)/mnist"
python -m vqvae train --preset mnist --out "$run" --steps 1000 --device cuda --no-umap 2>&1 | tail -n 20 \
    | tee "$out/train.txt"
python -m vqvae train-prior "$run" --steps 1000 --device cuda 2>&1 | tail -n 5 | tee -a "$out/train.txt"
python -m vqvae evaluate "$run" --device cuda --json > "$out/evaluate-cuda.json"
python -m vqvae evaluate "$run" --device cpu --json > "$out/evaluate-cpu.json"  # the same folder on the CPU
python -m vqvae sample "$run" --device cuda --n 64 --out "$out/samples.png"
python -m vqvae reconstruct "$run" --device cuda --out "$out/reconstructions.png"

echo "== the device benchmark"
python -m vqvae bench --device cuda --out "$out/device-cuda.json" | tee "$out/bench.md"
echo "wrote $out"
