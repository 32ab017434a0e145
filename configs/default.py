"""The paper's training recipe (section 3.3), shared by every config file.

SGD with momentum 0.9, learning rate 0.001 annealed to 0 by a cosine over the whole run, L2
weight decay 0.001 added to every parameter's gradient (PyTorch's ``weight_decay``), batch
size 16, 20 epochs, 20% of the training images held out for validation, seed 0.

Override any field on the command line: ``--config.learning_rate=0.01``.
"""

import ml_collections
from ml_collections import config_dict


def get_config(dataset: str = "cifar10", model: str = "resnet18") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    # What to train on, and how the data is read.
    config.model = model
    config.dataset = dataset  # fashion_mnist, cifar10, cifar100 (TFDS) or image_folder
    config.data_dir = config_dict.placeholder(str)  # TFDS data_dir, or the image folder's root
    config.download = True  # let TFDS download a dataset missing from data_dir
    config.validation_fraction = 0.2
    config.split_seed = 0  # shuffles an image folder before the validation cut
    config.augment = True  # pad-4 random crop and horizontal flip
    # tfdata: batches made by tf.data on the host; device: the dataset in accelerator memory,
    # batches made inside the compiled step (no TensorFlow needed with an exported .npz file).
    config.input_pipeline = "tfdata"

    # The optimizer and schedule.
    config.batch_size = 16  # global, over all devices and hosts
    config.num_epochs = 20
    config.learning_rate = 0.001
    config.momentum = 0.9
    config.weight_decay = 0.001
    config.seed = 0  # parameters, shuffling and augmentation
    config.dtype = "float32"  # compute dtype: float32 or bfloat16 (parameters stay float32)
    config.steps_per_call = 1  # training steps fused into one compiled call (same results)

    # Evaluation, checkpoints, logs.
    config.eval_batch_size = 256
    config.checkpoint_every_steps = 1000  # and at the end of every epoch
    config.keep_checkpoints = 3  # latest ones kept, besides the best by validation accuracy
    config.log_every_steps = 50  # progress-bar refresh of the running loss and accuracy

    # Multi-host: call jax.distributed.initialize() (also done when JAX_COORDINATOR_ADDRESS is set).
    config.distributed = False
    return config
