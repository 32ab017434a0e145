#!/usr/bin/env bash
# Table 1 on one GPU machine without TensorFlow or internet: measure how seeds and cells share the
# accelerator, then train the offline Table 1 cells as the paper's code ran them (each cell's
# config: flax_resnets.config.cell_config), Fashion-MNIST first, NUM_SEEDS seeds each, PARALLEL
# cells at a time, within the run's budget, resumable by the next run.
#
#   FLAX_RESNETS_COMMIT=<sha> BUDGET_SECONDS=560 scripts/gpu_run.sh OUT DATA.npz...
#
# Run twice on the same machine, once per dataset (where each upload is limited to 64 MiB), each
# time with .gpu/ (git-ignored) beside the clone, holding ml-collections and tensorboardX wheels in
# .gpu/wheels/ (the machine has no package index) and that run's dataset:
#   run 1: .gpu/fashion_mnist.npz (python -m flax_resnets data export --dataset=image_folder
#           --data_dir=<Fashion-MNIST folder> --out=.gpu/fashion_mnist.npz: 42 MB; lossless)
#           scripts/gpu_run.sh "$OUT" .gpu/fashion_mnist.npz            # STAGES=setup,measure,sweep
#   run 2: .gpu/cifar10_jpeg_packed.npz and .gpu/unpack_npz.py (../shared/gpu/README.md)
#           STAGES=setup,sweep scripts/gpu_run.sh "$OUT" .gpu/cifar10_jpeg_packed.npz
# Each run leaves its dataset in DATA_ROOT and the cells' workdirs in RUN_ROOT (both under /tmp,
# kept between runs on one machine), so run 2 trains CIFAR-10 and resumes any Fashion-MNIST cell
# that run 1's budget stopped (Fashion-MNIST first: lossless data, its cells speak to fidelity
# without a JPEG caveat).
#
# Stages (STAGES, default setup,measure,sweep):
#   setup    installs the carried wheels if missing; copies (or unpacks) each DATA into DATA_ROOT.
#   measure  `benchmark`: MODEL at batch BATCH, images/s for 1, 2, 4, 8 seeds and 1, 2, 4 cells at
#            once; then one seed with XLA's command buffers (CUDA graphs) off, as XLA sets them, and
#            with every kind of command (while loops too) at 1 and 10 steps per call.
#   sweep    `sweep`: the Fashion-MNIST then the CIFAR-10 cells found in DATA_ROOT (or CELLS),
#            kept in OUT as results/runs/<cell>/ with table1.md, packed in table1_runs.tar.gz.
# BUDGET_SECONDS (default 560) bounds the run: measure takes at most MEASURE_SECONDS (300) and
# the sweep what is left, less the time its cells need to save on SIGTERM.
# OUT holds 4 files, to fetch: log.txt, seeds_and_cells.json, command_buffers.tar.gz,
# table1_runs.tar.gz.
#
# Tried on a 2-core CPU in its two runs (results/checks/gpu_run_on_cpu/), a tiny model,
# 2 seeds x 2 cells at once:
#   MODEL=resnet8 BATCH=8 STAGES=setup,measure MEASURE_SECONDS=400 BUDGET_SECONDS=900 \
#     scripts/gpu_run.sh /tmp/gpu_run1 .gpu/fashion_mnist.npz
#   NUM_SEEDS=2 PARALLEL=2 CELLS=fashion_mnist_resnet18,cifar10_resnet18 STAGES=setup,sweep \
#     SWEEP_FLAGS="--config.model=resnet8 --config.num_epochs=1" BUDGET_SECONDS=1500 \
#     scripts/gpu_run.sh /tmp/gpu_run2 .gpu/cifar10_jpeg_packed.npz
set -euo pipefail
out=${1:?usage: scripts/gpu_run.sh OUT DATA.npz...}
shift
deadline=$((SECONDS + ${BUDGET_SECONDS:-560}))
model=${MODEL:-resnet18}
batch=${BATCH:-16}
num_seeds=${NUM_SEEDS:-3}
parallel=${PARALLEL:-2}
data_root=${DATA_ROOT:-/tmp/flax_resnets_data}
run_root=${RUN_ROOT:-/tmp/flax_resnets_runs}
stages=${STAGES:-setup,measure,sweep}
cd "$(dirname "$0")/.."
mkdir -p "$out" "$data_root"
out=$(cd "$out" && pwd)
log="$out/log.txt"
export FLAX_RESNETS_COMMIT=${FLAX_RESNETS_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
wanted() { [[ ",$stages," == *",$1,"* ]]; }
read -r -a sweep_flags <<< "${SWEEP_FLAGS:-}"

# stage NAME CAP_SECONDS COMMAND...: run COMMAND for at most CAP seconds and what is left of the
# budget, its output in the log; a stage that fails is logged and the script goes on.
stage() {
  local name=$1 cap=$2 left=$((deadline - SECONDS))
  shift 2
  local seconds=$((cap < left ? cap : left))
  if [ "$seconds" -le 5 ]; then echo "== $name: skipped, the budget is spent" | tee -a "$log"; return; fi
  echo "== $name (at most $seconds s): $*" | tee -a "$log"
  local started=$SECONDS status=0
  timeout --kill-after=30 "$seconds" "$@" 2>&1 | tee -a "$log" || status=$?
  echo "== $name: exit $status after $((SECONDS - started)) s" | tee -a "$log"
}

if wanted setup; then
  if ! "$python" -c "import ml_collections, tensorboardX" 2>/dev/null; then
    "$python" -m pip install --quiet --no-deps --no-index .gpu/wheels/*.whl 2>&1 | tee -a "$log"
  fi
  for file in "$@"; do
    case $(basename "$file") in
      cifar10_jpeg_packed.npz) "$python" .gpu/unpack_npz.py "$file" "$data_root/cifar10.npz" ;;
      fashion_mnist*.npz) cp "$file" "$data_root/fashion_mnist.npz" ;;
      cifar10*.npz) cp "$file" "$data_root/cifar10.npz" ;;
      *) echo "== setup: $file is neither Fashion-MNIST nor CIFAR-10 by its name; left out" | tee -a "$log" ;;
    esac
  done
  ls -la "$data_root" | tee -a "$log"
fi

if wanted measure; then
  measure_deadline=$((SECONDS + ${MEASURE_SECONDS:-300}))
  bench=("$python" -m flax_resnets benchmark --models="$model" --batch_sizes="$batch" --steps=20
    --rounds=2 --warmup=3)
  stage "seeds and cells" $((measure_deadline - SECONDS)) "${bench[@]}" --num_seeds=1,2,4,8 \
    --parallel=1,2,4 --json="$out/seeds_and_cells.json"
  mkdir -p "$out/command_buffers"
  all_commands=FUSION,CUBLAS,CUBLASLT,CUDNN,CUSTOM_CALL,CONDITIONAL,WHILE,DYNAMIC_SLICE_FUSION
  for steps_per_call in 1 10; do
    for variant in off default all; do
      case $variant in
        off) flags="--xla_gpu_enable_command_buffer=" ;;
        default) flags="" ;;
        all) flags="--xla_gpu_enable_command_buffer=$all_commands --xla_gpu_graph_min_graph_size=1" ;;
      esac
      [ "$variant$steps_per_call" = default1 ] && continue  # the seeds-and-cells rows above
      # XLA reads a non-empty XLA_FLAGS that does not start with -- as a file name: never " ".
      xla_flags=$(echo "${XLA_FLAGS:-} $flags" | xargs)
      with_flags=(env -u XLA_FLAGS)
      [ -n "$xla_flags" ] && with_flags=(env XLA_FLAGS="$xla_flags")
      stage "command buffers $variant, $steps_per_call step(s) per call" $((measure_deadline - SECONDS)) \
        "${with_flags[@]}" "${bench[@]}" --num_seeds=1 --steps_per_call="$steps_per_call" \
        --json="$out/command_buffers/${variant}_${steps_per_call}_steps.json"
    done
  done
  tar -czf "$out/command_buffers.tar.gz" -C "$out" command_buffers && rm -rf "$out/command_buffers"
fi

if wanted sweep; then
  cells=() data=()
  for dataset in fashion_mnist cifar10; do
    [ -f "$data_root/$dataset.npz" ] || continue
    data+=("$dataset=$data_root/$dataset.npz")
    for cell_model in resnet18 vgg19 alexnet resnet34 resnet50; do cells+=("${dataset}_$cell_model"); done
  done
  cells_flag=${CELLS:-$(IFS=,; echo "${cells[*]}")}
  if [ -z "$cells_flag" ]; then
    echo "== sweep: no dataset in $data_root: run the setup stage with DATA first" | tee -a "$log"
  else
    grace=75  # the sweep's SIGTERM grace (60 s) and the table at its end
    sweep_seconds=$((deadline - SECONDS - grace))
    stage "sweep of $cells_flag" $((sweep_seconds + grace)) "$python" -m flax_resnets sweep \
      --cells="$cells_flag" --data "${data[@]}" --workdir_root="$run_root" \
      --budget_seconds="$sweep_seconds" --results="$out/results" --tar="$out/table1_runs.tar.gz" \
      --num_seeds="$num_seeds" --parallel="$parallel" \
      -- --config.input_pipeline=device --config.checkpoint_every_steps=0 --config.log_every_steps=500 \
      "${sweep_flags[@]}"
    rm -rf "$out/results"
  fi
fi
ls -la "$out" | tee -a "$log"
