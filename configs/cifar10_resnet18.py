"""Table 1: ResNet-18 on CIFAR-10 (the paper reports 89.3% test accuracy)."""

from configs import default


def get_config():
    return default.get_config(dataset="cifar10", model="resnet18")
