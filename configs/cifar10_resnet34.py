"""Table 1: ResNet-34 on CIFAR-10 (the paper reports 89.6% test accuracy)."""

from configs import default


def get_config():
    return default.get_config(dataset="cifar10", model="resnet34")
