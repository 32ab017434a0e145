"""Training: the train state and compiled steps, the loop, evaluation and checkpoints."""
