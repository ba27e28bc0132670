"""Data stages: io (read/validate) -> clean -> markers -> augment -> features."""
