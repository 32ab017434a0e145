"""Offline quickstart: a ResNet-8 on the Fashion-MNIST sample shipped with the package.

About two minutes on 2 CPU cores, no internet needed:
    python main.py --config=configs/quickstart.py --workdir=/tmp/qs
"""

from configs import default
from flax_resnets.data.sources import SAMPLE_FASHION_MNIST


def get_config():
    config = default.get_config(dataset="image_folder", model="resnet8")
    config.data_dir = str(SAMPLE_FASHION_MNIST)
    config.batch_size = 32
    config.num_epochs = 20
    config.learning_rate = 0.05
    config.weight_decay = 5e-4
    config.checkpoint_every_steps = 0
    return config
