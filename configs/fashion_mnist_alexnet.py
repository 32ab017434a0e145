"""Table 1: AlexNet on Fashion-MNIST (the paper reports 89.4% test accuracy)."""

from configs import default


def get_config():
    return default.get_config(dataset="fashion_mnist", model="alexnet")
