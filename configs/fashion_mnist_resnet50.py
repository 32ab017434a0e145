"""Table 1: ResNet-50 on Fashion-MNIST (the paper reports 93.3% test accuracy)."""

from configs import default


def get_config():
    return default.get_config(dataset="fashion_mnist", model="resnet50")
