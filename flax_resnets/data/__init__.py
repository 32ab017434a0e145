"""Data: sources read into memory, the order of examples, augmentation, and the feeds of batches."""
