"""nmm-charts: Chart question answering (ChartQA, PJN_CHARTS) with Qwen2-VL-2B, SmolVLM and Moondream2."""

__version__ = "0.1.0"
