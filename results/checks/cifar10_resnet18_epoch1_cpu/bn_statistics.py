"""Test accuracy of an exported checkpoint, by the PyTorch trainer's test loop, with its BatchNorm
running statistics as trained and recomputed over 10,000 augmented training images (cumulative
average, batches of 16).

    python -m flax_resnets export --workdir=runs/c10_r18_epoch1 --seed=0 --format=torch --out=OUT/model.pt
    python results/checks/cifar10_resnet18_epoch1_cpu/bn_statistics.py OUT/model.pt DATA/cifar10
"""

import copy
import importlib.util
import json
import sys
from pathlib import Path

import torch

from flax_resnets.twins.torch_trainer import Images, accuracy, read_split

model_path, data_dir = Path(sys.argv[1]), Path(sys.argv[2])
spec = json.loads(model_path.with_suffix(".pt.json").read_text())
module_spec = importlib.util.spec_from_file_location("twins", model_path.parent / spec["module"])
twins = importlib.util.module_from_spec(module_spec)
module_spec.loader.exec_module(twins)
model = twins.build(spec["architecture"])
model.load_state_dict(torch.load(model_path))
normalization = (tuple(spec["normalization"]["mean"]), tuple(spec["normalization"]["std"]))
testing = Images(*read_split(data_dir, "test", spec["channels"])[:2], normalization, augment=False)
print(f"test accuracy, running statistics as trained: {accuracy(model, testing):.4f}", flush=True)

train_images, train_labels, _ = read_split(data_dir, "train", spec["channels"])
torch.manual_seed(0)
training = Images(train_images[:10_000], train_labels[:10_000], normalization, augment=True)
recomputed = copy.deepcopy(model).train()
for layer in recomputed.modules():
    if isinstance(layer, torch.nn.BatchNorm2d):
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average
with torch.no_grad():
    for images, _ in torch.utils.data.DataLoader(training, batch_size=16, shuffle=True):
        recomputed(images)
print(f"test accuracy, statistics recomputed: {accuracy(recomputed, testing):.4f}")
