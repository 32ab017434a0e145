"""What runs underneath: the device mesh, XLA:CPU settings, the jax/flax version check, profiling."""
