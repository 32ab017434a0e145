"""Offline quickstart: a ResNet-8 on the Fashion-MNIST sample shipped with the package.

About two minutes on 2 CPU cores, no internet needed:
    python main.py --config=configs/quickstart.py --workdir=/tmp/qs

The paper's data pipeline, with a recipe for a small model and a short run: batch 32, learning
rate 0.05 annealed to 0 by a cosine over the 20 epochs, weight decay 5e-4.
"""

from configs import default
from flax_resnets.data.sources import SAMPLE_FASHION_MNIST


def get_config():
    config = default.get_config(dataset="image_folder", model="resnet8")
    config.update(
        data_dir=str(SAMPLE_FASHION_MNIST),
        batch_size=32,
        num_epochs=20,
        learning_rate=0.05,
        weight_decay=5e-4,
        schedule="cosine",
        cosine_period_epochs=0,
        checkpoint_every_steps=0,
    )
    return config
