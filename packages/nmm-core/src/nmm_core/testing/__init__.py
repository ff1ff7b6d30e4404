"""Tiny twins of the real architectures, a tokenizer built locally, and synthetic data: what tests and the demo run on, offline."""
