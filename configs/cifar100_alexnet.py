"""Table 1: AlexNet on CIFAR-100 (the paper reports 40.0% test accuracy)."""

from configs import default


def get_config():
    return default.get_config(dataset="cifar100", model="alexnet")
