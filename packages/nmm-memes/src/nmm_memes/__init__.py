"""nmm-memes: Meme understanding (MemeCap, MemeCraft) with TinyLLaVA and GILL, and a base-vs-fine-tuned competition."""

__version__ = "0.1.0"
