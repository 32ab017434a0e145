"""The PyTorch twins of the models: the only part of the package that imports torch."""
