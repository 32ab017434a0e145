#!/usr/bin/env bash
# The benchmark, then a timed ResNet-18 run of the paper's Fashion-MNIST recipe, on a GPU
# machine without TensorFlow.
#
#   scripts/gpu_run.sh FASHION_MNIST.npz [EPOCHS] [OUT]
#
# FASHION_MNIST.npz comes from `python -m flax_resnets.data export --dataset=fashion_mnist
# --out=...` (or --dataset=image_folder on ../shared/data's PNGs) on a machine with TensorFlow.
# Trains resnet18 with the paper's recipe (batch 16, lr 0.001, cosine over EPOCHS epochs,
# default 2) from device-resident data, in float32 and in bfloat16, then prints one table:
# images/s and seconds of the last epoch (the first pays for compilation), validation and test
# accuracy. 20 epochs take about 20 x the printed seconds per epoch. steps_per_call fuses 8
# steps per dispatch (same results as one step per call).
set -euo pipefail
data=${1:?usage: scripts/gpu_run.sh FASHION_MNIST.npz [EPOCHS] [OUT]}
epochs=${2:-2}
out=${3:-${OUT:-/tmp/gpu_run}}
model=${MODEL:-resnet18}  # MODEL=resnet8 makes a quick rehearsal on a CPU
cd "$(dirname "$0")/.."
mkdir -p "$out"

for dtype in float32 bfloat16; do
  python -m flax_resnets.benchmark --models="$model" --batch_sizes=16,128,512 --dtype=$dtype \
    --steps=10 --rounds=1 --json="$out/benchmark_$dtype.json"
done

dataset=$(python -c "import numpy as np, sys; print(np.load(sys.argv[1])['dataset'])" "$data")
for dtype in float32 bfloat16; do
  rm -rf "$out/${model}_$dtype"
  python main.py --config=configs/fashion_mnist_resnet18.py --workdir="$out/${model}_$dtype" \
    --config.model="$model" --config.dataset="$dataset" --config.data_dir="$data" --config.input_pipeline=device \
    --config.dtype=$dtype --config.num_epochs="$epochs" --config.steps_per_call=8 \
    --config.checkpoint_every_steps=0 --config.log_every_steps=1000
done
python -m flax_resnets.reports "$out/${model}_float32" "$out/${model}_bfloat16"
