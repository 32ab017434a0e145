"""Table 1, CIFAR-10 VGG19, as the paper's notebook ran it: VGG19 without BatchNorm.
Its test accuracy was 74.70% (Table 1: 74.7).
"""

from configs import default


def get_config():
    return default.cell_config("cifar10_vgg19")
