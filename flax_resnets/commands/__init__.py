"""The command-line tools, above the library: ``python -m flax_resnets COMMAND`` runs one."""
