"""nmm-arena: a blind web arena where people judge two models' answers from nmm pair files."""

__version__ = "0.1.0"
