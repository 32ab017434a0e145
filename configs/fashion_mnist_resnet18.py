"""Table 1: ResNet-18 on Fashion-MNIST (the paper reports 93.4% test accuracy)."""

from configs import default


def get_config():
    return default.get_config(dataset="fashion_mnist", model="resnet18")
