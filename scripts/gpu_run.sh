#!/usr/bin/env bash
# Table 1 on one GPU machine without TensorFlow or internet, one call per dataset: the offline Table 1
# cells as the paper's code ran them (each cell's config: flax_resnets.config.cell_config), planned
# so that every cell started finishes within the call (`sweep --rates`: estimates from measured
# rates, cells packed longest first, seeds lowered before a cell is left out), kept under OUT.
#
#   FLAX_RESNETS_COMMIT=<sha> scripts/gpu_run.sh OUT DATA.npz...
#
# Each call brings .gpu/ (git-ignored) beside the clone: ml-collections and tensorboardX wheels in
# .gpu/wheels/ (the machine has no package index) and that call's dataset, one dataset a call
# (each upload is limited to 64 MiB):
#   call 1: .gpu/fashion_mnist.npz (python -m flax_resnets data export --dataset=image_folder
#           --data_dir=<Fashion-MNIST folder> --out=.gpu/fashion_mnist.npz: 42 MB; lossless)
#           scripts/gpu_run.sh "$OUT" .gpu/fashion_mnist.npz
#   call 2: .gpu/cifar10_jpeg_packed.npz and .gpu/unpack_npz.py (../shared/gpu/README.md)
#           scripts/gpu_run.sh "$OUT" .gpu/cifar10_jpeg_packed.npz
# A call leaves its dataset, the measured rates and the cells' workdirs under /tmp (DATA_ROOT,
# RUN_ROOT), kept while the machine stays warm: call 2 on the same machine measures nothing again,
# keeps Fashion-MNIST cells that call 1 finished and plans the ones it left out beside CIFAR-10's.
#
# Stages (STAGES, default setup,measure,sweep):
#   setup    installs the carried wheels if missing; copies (or unpacks) each DATA into DATA_ROOT.
#   measure  at most MEASURE_SECONDS (45), once per machine: `benchmark` of MODEL (resnet18) at batch
#            BATCH (16), 1 and NUM_SEEDS seeds, 1 and PARALLEL cells at once: the rates the sweep
#            plans from (DATA_ROOT/rates.json; where it does not finish, the H100 rates in
#            results/gpu_h100/benchmark_float32.json, which measured no sharing).
#   sweep    `sweep --rates`: the Fashion-MNIST then the CIFAR-10 cells found in DATA_ROOT (or CELLS),
#            NUM_SEEDS (3) seeds each, up to PARALLEL (4) at once, within what is left of
#            BUDGET_SECONDS (520) less 20 s for the table; kept in OUT as results/runs/<cell>/<run>/ with
#            table1.md, packed in table1_runs.tar.gz. A cell whose estimate was short is stopped
#            resumably at the budget's end and may take 60 s more to save: give the call 600 s.
#   command_buffers (opt-in) one seed with XLA's command buffers (CUDA graphs) off, as XLA sets them,
#            and with every kind of command (while loops too) at 1 and 10 steps per call.
# So call 1 spends at most 5 + 45 s of its 520 on setup and measurement (about 90% on cells), call 2
# about 20 s unpacking CIFAR-10 (96%).
#
# What one call fills, estimated (`sweep --dry_run`) from the one H100 rate measured so far
# (ResNet18, batch 16, float32, one seed: 4,474 images/s; other models scaled down by FLOPs, none
# up; seeds and cells at once assumed to cost as many runs, since that sharing was never measured):
#   call 1, 450 s for cells: fashion_mnist_resnet18, 1 seed, ends at ~287 s (VGG19 and AlexNet need
#           ~287 s each alone, ResNet34 ~551 s, ResNet50 ~611 s; two at once, each takes twice).
#   call 2, 480 s: cifar10_resnet18 and cifar10_vgg19, 1 seed each, 2 at once, end at ~450 s.
# The measure stage replaces the assumption with the machine's own sharing: where 3 seeds or 4 cells
# cost about what one does (a GPU at batch 16 is mostly idle between kernel launches), the same
# calls plan more cells, with more seeds.
# OUT holds at most 4 files, to fetch: log.txt, rates.json, table1_runs.tar.gz and, when asked for,
# command_buffers.tar.gz.
#
# Tried on a 2-core CPU (results/checks/sweep_plan_on_cpu/), a tiny model and a budget too small for
# every cell: the three cells started all finished (76-100 s each against 91 s estimated, 270 s of
# 300), the two left out were listed with the seconds they needed.
set -euo pipefail
out=${1:?usage: scripts/gpu_run.sh OUT DATA.npz...}
shift
deadline=$((SECONDS + ${BUDGET_SECONDS:-520}))
model=${MODEL:-resnet18}
batch=${BATCH:-16}
num_seeds=${NUM_SEEDS:-3}
parallel=${PARALLEL:-4}
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
# budget (plus OVERRUN seconds), its output in the log; a stage that fails is logged and the script
# goes on.
stage() {
  local name=$1 cap=$2 left=$((deadline - SECONDS + ${OVERRUN:-0}))
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

rates="$data_root/rates.json"
bench=("$python" -m flax_resnets benchmark --models="$model" --batch_sizes="$batch" --steps=10 --rounds=1
  --warmup=2)
if wanted measure; then
  if [ -f "$rates" ]; then
    echo "== measure: $rates is there from an earlier call on this machine" | tee -a "$log"
  else
    seeds_list=1 cells_list=1
    [ "$num_seeds" -gt 1 ] && seeds_list="1,$num_seeds"
    [ "$parallel" -gt 1 ] && cells_list="1,$parallel"
    stage "rates for the plan" "${MEASURE_SECONDS:-45}" "${bench[@]}" --num_seeds="$seeds_list" \
      --parallel="$cells_list" --json="$rates"
  fi
  [ -f "$rates" ] && cp "$rates" "$out/rates.json"
fi

if wanted command_buffers; then
  measure_deadline=$((SECONDS + ${COMMAND_BUFFER_SECONDS:-240}))
  mkdir -p "$out/command_buffers"
  all_commands=FUSION,CUBLAS,CUBLASLT,CUDNN,CUSTOM_CALL,CONDITIONAL,WHILE,DYNAMIC_SLICE_FUSION
  for steps_per_call in 1 10; do
    for variant in off default all; do
      case $variant in
        off) flags="--xla_gpu_enable_command_buffer=" ;;
        default) flags="" ;;
        all) flags="--xla_gpu_enable_command_buffer=$all_commands --xla_gpu_graph_min_graph_size=1" ;;
      esac
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
    [ -f "$rates" ] || rates=results/gpu_h100/benchmark_float32.json
    table_seconds=20  # the table and the tar at the sweep's end
    sweep_seconds=$((deadline - SECONDS - table_seconds))
    # The stage's cap leaves the sweep's SIGTERM grace (60 s) to a cell whose estimate was short.
    OVERRUN=60 stage "sweep of $cells_flag" $((sweep_seconds + table_seconds + 60)) "$python" -m flax_resnets sweep \
      --cells="$cells_flag" --data "${data[@]}" --workdir_root="$run_root" --rates="$rates" \
      --budget_seconds="$sweep_seconds" --results="$out/results" --tar="$out/table1_runs.tar.gz" \
      --num_seeds="$num_seeds" --parallel="$parallel" \
      -- --config.checkpoint_every_steps=0 --config.log_every_steps=500 \
      "${sweep_flags[@]}"
    rm -rf "$out/results"
  fi
fi
ls -la "$out" | tee -a "$log"
