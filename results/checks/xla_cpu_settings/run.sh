#!/usr/bin/env bash
# Every variant of measure.py, one after the other on an otherwise idle machine (the full "all" run
# first and last, to see how far the machine drifted meanwhile). Writes OUT/<variant>.json.
set -euo pipefail
out=${1:?usage: run.sh OUT}
mkdir -p "$out"
here=$(dirname "$0")
rows=(--models=resnet20,resnet18 --batch_sizes=16,128 --steps=3 --rounds=2 --warmup=1)
loops=(--models=resnet20 --batch_sizes=16 --steps_per_call=4 --num_seeds=1,2 --steps=3 --rounds=2 --warmup=1)
for variant in all no_option plain_convolution no_micro_batches; do
  python "$here/measure.py" "$variant" "$out/$variant.json" "${rows[@]}"
done
python "$here/measure.py" all "$out/all_again.json" "${rows[@]}"
for variant in all no_unroll; do
  python "$here/measure.py" "$variant" "$out/loops_$variant.json" "${loops[@]}"
done
# VGG19's last stage convolves 2x2 maps with 3x3 kernels: the small-map product's case.
for variant in no_micro_batches plain_convolution; do
  python "$here/measure.py" "$variant" "$out/vgg_$variant.json" --models=vgg19 --batch_sizes=16 --steps=3 --rounds=2 --warmup=1
done
