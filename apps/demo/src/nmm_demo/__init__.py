"""nmm-demo: the offline end-to-end demo (synthetic shapes VQA, tiny Qwen2-VL twin, LoRA)."""

__version__ = "0.1.0"
