"""Table 1: ResNet-34 on CIFAR-100 (the paper reports 65.2% test accuracy)."""

from configs import default


def get_config():
    return default.get_config(dataset="cifar100", model="resnet34")
