"""Data: sources read into memory, the split and order of examples, augmentation, and the feeds
that turn them into batches on the mesh."""
