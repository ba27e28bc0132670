"""Shared ground under every stage: errors, typed config sections, labels, atomic file I/O, device and
memory helpers, progress display. Imports nothing else of the package."""
