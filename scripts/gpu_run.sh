#!/usr/bin/env bash
# One prepared call on a lent GPU machine (no TensorFlow there): the measurements issues 10 and
# 11 ask for, most important first, within a time budget, every result packed into $OUT.
#
#   FLAX_RESNETS_COMMIT=<sha> scripts/gpu_run.sh OUT CIFAR10.npz [FASHION_MNIST.npz]
#
# CIFAR10.npz may be "-" (CIFAR-10 and Fashion-MNIST do not travel together in one 64 MiB call):
# then only Fashion-MNIST cells train, and the stages that need CIFAR-10 are skipped.
# STAGES (default sweep,fast,benchmark,profile) picks the stages, e.g. STAGES=benchmark,profile
# for a second call on the same machine.
#
# 1. The Table 1 sweep: CIFAR-10 ResNet18 with the paper's recipe (its wall time is issue 11's
#    too), then Fashion-MNIST cells while the budget lasts (device-resident data, no mid-epoch
#    checkpoints); finished cells are kept as results/runs/<cell>/ and packed with table1.md.
# 2. configs/cifar10_fast.py: the fast recipe's accuracy and wall time.
# 3. `benchmark --compare_torch`: resnet18 at batch 16, 128 and 512 in bfloat16, then in float32
#    with the trainer's loop on the CIFAR-10 data beside its step.
# 4. `benchmark --profile_dir`: where the bfloat16 step's time goes at batch 16 and 512.
#
# BUDGET_SECONDS (default 540) bounds the whole call: each stage gets at most its own cap and
# what is left; a stage that fails or runs out of time is logged and the next one starts. On one
# H100 (results/gpu_h100/) the stages took 217, 60, >90 (six compilations with PyTorch beside
# them), >100 and 52 s: all of them need about 600 s, so give the last ones a second call
# (STAGES).
# A quick rehearsal on a CPU:
#   BUDGET_SECONDS=900 MODEL=resnet8 BATCH_SIZES=4,8 SWEEP_FLAGS="--config.num_epochs=1" \
#   FAST_FLAGS="--config.num_epochs=1 --config.warmup_epochs=0.5 --config.dtype=float32" scripts/gpu_run.sh ...
# The .npz files come from ../shared/gpu/README.md (CIFAR-10) and `python -m flax_resnets data
# export` (Fashion-MNIST, compressed: 42 MB).
set -euo pipefail
out=${1:?usage: scripts/gpu_run.sh OUT CIFAR10.npz [FASHION_MNIST.npz]}
cifar10=${2:?usage: scripts/gpu_run.sh OUT CIFAR10.npz [FASHION_MNIST.npz]}
fashion_mnist=${3:-}
deadline=$((SECONDS + ${BUDGET_SECONDS:-540}))
model=${MODEL:-resnet18}
batch_sizes=${BATCH_SIZES:-16,128,512}
profile_batch_sizes=${batch_sizes%%,*},${batch_sizes##*,}
cd "$(dirname "$0")/.."
mkdir -p "$out"
log="$out/log.txt"
export FLAX_RESNETS_COMMIT=${FLAX_RESNETS_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
stages=${STAGES:-sweep,fast,benchmark,profile}
wanted() { [[ ",$stages," == *",$1,"* ]]; }
read -r -a sweep_flags <<< "--config.model=$model ${SWEEP_FLAGS:-}"
read -r -a fast_flags <<< "--config.model=$model ${FAST_FLAGS:-}"

# stage NAME CAP_SECONDS COMMAND...: run COMMAND for at most CAP seconds and what is left of the
# budget (SIGTERM: the trainer saves and exits), its output in the log; never stop the script.
stage() {
  local name=$1 cap=$2 left=$((deadline - SECONDS))
  shift 2
  local seconds=$((cap < left ? cap : left))
  if ! wanted "${name%% *}"; then return; fi
  if [ "$seconds" -le 5 ]; then echo "== $name: skipped, the budget is spent" | tee -a "$log"; return; fi
  echo "== $name (at most $seconds s): $*" | tee -a "$log"
  local started=$SECONDS status=0
  timeout --kill-after=30 "$seconds" "$@" 2>&1 | tee -a "$log" || status=$?
  echo "== $name: exit $status after $((SECONDS - started)) s" | tee -a "$log"
}

cells=() data=()
if [ "$cifar10" != - ]; then
  cells+=(cifar10_resnet18)  # MODEL (a smaller one in rehearsals) comes in through the flags
  data+=(cifar10="$cifar10")
fi
if [ -n "$fashion_mnist" ]; then
  cells+=(fashion_mnist_resnet18 fashion_mnist_vgg19 fashion_mnist_alexnet fashion_mnist_resnet34 fashion_mnist_resnet50)
  data+=(fashion_mnist="$fashion_mnist")
fi
reserve=10  # the later stages' share of the budget
for later in fast benchmark profile; do wanted $later && reserve=200; done
sweep_seconds=$((deadline - SECONDS - reserve))
[ ${#cells[@]} -gt 0 ] && stage "sweep of Table 1 cells" $((sweep_seconds + 40)) "$python" -m flax_resnets sweep \
  --cells="$(IFS=,; echo "${cells[*]}")" --data "${data[@]}" --workdir_root="$out/sweep" \
  --budget_seconds="$sweep_seconds" --results="$out/results" --tar="$out/table1_runs.tar.gz" \
  -- --config.input_pipeline=device --config.checkpoint_every_steps=0 --config.log_every_steps=500 \
  "${sweep_flags[@]}"

bench=("$python" -m flax_resnets benchmark --models="$model" --batch_sizes="$batch_sizes" --steps=10
  --rounds=2 --warmup=2)
if [ "$cifar10" != - ]; then
  stage "fast recipe" 90 "$python" main.py --config=configs/cifar10_fast.py --workdir="$out/cifar10_fast" \
    --config.dataset=image_folder --config.data_dir="$cifar10" "${fast_flags[@]}"
  [ -d "$out/cifar10_fast" ] && tar -czf "$out/cifar10_fast.tar.gz" -C "$out" --exclude=checkpoints \
    --exclude=tensorboard cifar10_fast
  loop_flags=(--data_dir="$cifar10" --input_pipeline=device --loop_steps=500)
else
  loop_flags=()
fi
stage "benchmark bfloat16" 140 "${bench[@]}" --dtype=bfloat16 --compare_torch --json="$out/benchmark_bfloat16.json"
stage "benchmark float32 and loop" 150 "${bench[@]}" --dtype=float32 --compare_torch "${loop_flags[@]}" \
  --json="$out/benchmark_float32.json"
stage "profile" 60 "$python" -m flax_resnets benchmark --models="$model" --batch_sizes="$profile_batch_sizes" \
  --dtype=bfloat16 --steps=5 --rounds=1 --warmup=2 --profile_dir="$out/profile" \
  --json="$out/profile.json"
[ -d "$out/profile" ] && tar -czf "$out/profile.tar.gz" -C "$out" profile

# At most 8 files come back: log, 2 benchmark JSONs, profile JSON and traces, the sweep's and the
# fast run's tars.
rm -rf "$out/cifar10_fast" "$out/sweep" "$out/results" "$out/profile"
ls -la "$out" | tee -a "$log"
