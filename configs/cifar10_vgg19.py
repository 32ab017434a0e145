"""Table 1: VGG19 on CIFAR-10 (the paper reports 74.7% test accuracy)."""

from configs import default


def get_config():
    return default.get_config(dataset="cifar10", model="vgg19")
