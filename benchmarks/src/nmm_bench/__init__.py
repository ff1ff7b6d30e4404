"""nmm-bench: benchmarks that print ratios against a peer measured in the same run."""

__version__ = "0.1.0"
