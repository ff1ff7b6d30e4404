"""nmm-core: the shared path from records to report for narrow-domain VLM fine-tuning."""

__version__ = "0.1.0"
