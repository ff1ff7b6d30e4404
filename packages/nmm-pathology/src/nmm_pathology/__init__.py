"""nmm-pathology: PathVQA with LLaVA-1.5 QLoRA, and a YOLOv8 brain-tumour detection baseline."""

__version__ = "0.1.0"
