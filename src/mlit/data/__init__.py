"""Data: instruction sets per composition and size, and the MT-Bench-X benchmark files."""
