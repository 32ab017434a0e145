"""What a run leaves: metrics, provenance, plots, and reading a finished run back."""
