"""Table 1: AlexNet on CIFAR-10 (the paper reports 77.6% test accuracy)."""

from configs import default


def get_config():
    return default.get_config(dataset="cifar10", model="alexnet")
