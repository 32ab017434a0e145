"""Table 1: ResNet-34 on Fashion-MNIST (the paper reports 93.7% test accuracy)."""

from configs import default


def get_config():
    return default.get_config(dataset="fashion_mnist", model="resnet34")
