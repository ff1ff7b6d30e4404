"""Tiny twins of the real architectures, a locally built tokenizer, synthetic data: what tests and the demo run on."""
