"""The PyTorch trainer's side of `parity --train --cell=cifar10_resnet18` for one full epoch, one
JSON line per seed (our side is this folder's run: same recipe, same images, same validation cut).

    python results/checks/cifar10_resnet18_epoch1_cpu/theirs_epoch1.py DATA/cifar10 theirs.jsonl 0 1 2 3 4
"""

import argparse
import json
import sys
import time

from flax_resnets.commands.parity_train import recipe, theirs

data_dir, out, *seeds = sys.argv[1:]
config = recipe(argparse.Namespace(cell="cifar10_resnet18", model=None), [f"--config.data_dir={data_dir}"])
for seed in map(int, seeds):
    started = time.time()
    result = {**theirs(config, seed), "seed": seed, "seconds": time.time() - started}
    print(json.dumps(result), flush=True)
    with open(out, "a") as file:
        file.write(json.dumps(result) + "\n")
