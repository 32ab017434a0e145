"""Table 1, CIFAR-100 AlexNet, as the paper's notebook ran it: AlexNet without weight decay.
Its test accuracy was 39.98% (Table 1: 40.0).
"""

from configs import default


def get_config():
    return default.cell_config("cifar100_alexnet")
