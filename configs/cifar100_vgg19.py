"""Table 1: VGG19 on CIFAR-100 (the paper reports 47.9% test accuracy)."""

from configs import default


def get_config():
    return default.get_config(dataset="cifar100", model="vgg19")
