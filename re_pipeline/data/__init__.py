"""Stages 1-4 of the flow: read and validate (io, load), repair and quarantine (clean, audit), format the
entities (markers, particles, morphemes), augment, split, and turn rows into features for a model."""
