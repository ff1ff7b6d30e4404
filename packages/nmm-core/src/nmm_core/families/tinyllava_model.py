"""TinyLLaVA-Phi-2-SigLIP as a transformers Llava whose language-model head keeps Phi-2's bias."""

from __future__ import annotations

from torch import nn
from transformers import LlavaConfig, LlavaForConditionalGeneration


class TinyLlavaForConditionalGeneration(LlavaForConditionalGeneration):
    """Llava (SigLIP + MLP connector + Phi) with a biased `lm_head`, as Phi-2 has.

    Without the bias the logits differ from the published model's by Phi-2's head bias, a
    difference a key-name check cannot see.
    """

    def __init__(self, config: LlavaConfig) -> None:
        super().__init__(config)
        text = config.text_config
        self.lm_head = nn.Linear(text.hidden_size, text.vocab_size, bias=True)
        self.post_init()
