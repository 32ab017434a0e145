#!/usr/bin/env bash
# One prepared call on a lent GPU machine (no TensorFlow there): the measurements issues 10 and
# 11 ask for, within a time budget, with every result packed into $OUT for the trip back.
#
#   FLAX_RESNETS_COMMIT=<sha> scripts/gpu_run.sh OUT CIFAR10.npz [FASHION_MNIST.npz]
#
# 1. `benchmark --compare_torch`: resnet18 at batch 16, 128 and 512, float32 and bfloat16.
# 2. configs/cifar10_fast.py: the fast recipe's accuracy and wall time.
# 3. The Table 1 sweep: CIFAR-10 ResNet18 with the paper's recipe first, then Fashion-MNIST
#    cells while the budget lasts (device-resident data, no mid-epoch checkpoints); finished
#    cells are kept as results/runs/<cell>/ and packed with results/table1.md.
#
# BUDGET_SECONDS (default 500) bounds the whole call. A quick rehearsal on a CPU:
#   MODEL=resnet8 SWEEP_FLAGS="--config.num_epochs=1" \
#   FAST_FLAGS="--config.num_epochs=1 --config.warmup_epochs=0.5 --config.dtype=float32" scripts/gpu_run.sh ...
# The .npz files come from ../shared/gpu/README.md (CIFAR-10) and `python -m flax_resnets.data
# export` (Fashion-MNIST, compressed: 42 MB).
set -euo pipefail
out=${1:?usage: scripts/gpu_run.sh OUT CIFAR10.npz [FASHION_MNIST.npz]}
cifar10=${2:?usage: scripts/gpu_run.sh OUT CIFAR10.npz [FASHION_MNIST.npz]}
fashion_mnist=${3:-}
budget=${BUDGET_SECONDS:-500}
model=${MODEL:-resnet18}
started=$SECONDS
cd "$(dirname "$0")/.."
mkdir -p "$out"
export FLAX_RESNETS_COMMIT=${FLAX_RESNETS_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
# The machine's image lacks ml-collections and tensorboardX: carry their wheels in .gpu/wheels.
if compgen -G ".gpu/wheels/*.whl" > /dev/null; then python -m pip install --quiet --no-deps .gpu/wheels/*.whl; fi
read -r -a sweep_flags <<< "--config.model=$model ${SWEEP_FLAGS:-}"
read -r -a fast_flags <<< "--config.model=$model ${FAST_FLAGS:-}"

for dtype in float32 bfloat16; do
  python -m flax_resnets.benchmark --models="$model" --batch_sizes=16,128,512 --dtype=$dtype \
    --steps=10 --rounds=2 --compare_torch --json="$out/benchmark_$dtype.json" 2>&1 | tee -a "$out/log.txt" \
    || echo "benchmark ($dtype) failed; going on" | tee -a "$out/log.txt"
done

python main.py --config=configs/cifar10_fast.py --workdir="$out/cifar10_fast" "${fast_flags[@]}" \
  --config.dataset=image_folder --config.data_dir="$cifar10" 2>&1 | tee -a "$out/log.txt" \
  || echo "the fast recipe failed; going on" | tee -a "$out/log.txt"

cells=cifar10_resnet18
data=(cifar10="$cifar10")
if [ -n "$fashion_mnist" ]; then
  cells+=,fashion_mnist_resnet18,fashion_mnist_vgg19,fashion_mnist_alexnet,fashion_mnist_resnet34,fashion_mnist_resnet50
  data+=(fashion_mnist="$fashion_mnist")
fi
python -m flax_resnets.sweep --cells="$cells" --data "${data[@]}" --workdir_root="$out/sweep" \
  --budget_seconds=$((budget - (SECONDS - started))) --results="$out/results" --tar="$out/table1_runs.tar.gz" \
  -- --config.input_pipeline=device --config.checkpoint_every_steps=0 --config.log_every_steps=500 \
  "${sweep_flags[@]}" 2>&1 | tee -a "$out/log.txt" || echo "a sweep cell failed" | tee -a "$out/log.txt"

# At most 8 files come back: the benchmark JSONs, the log, the sweep's tar and the fast run's files.
[ -d "$out/cifar10_fast" ] && tar -czf "$out/cifar10_fast.tar.gz" -C "$out" --exclude=checkpoints \
  --exclude=tensorboard cifar10_fast
rm -rf "$out/cifar10_fast" "$out/sweep" "$out/results"
ls -la "$out"
