"""Table 1: VGG19 on Fashion-MNIST (the paper reports 89.6% test accuracy)."""

from configs import default


def get_config():
    return default.get_config(dataset="fashion_mnist", model="vgg19")
