"""GILLMapper: [IMG] hidden states -> Stable Diffusion text conditioning (a small Transformer
whose decoder reads learned queries, one per conditioning position)."""

from __future__ import annotations

import warnings

import torch
from torch import nn


class GILLMapper(nn.Module):
    """(bs, r, lm_dim) [IMG] states -> (bs, out_tokens, out_dim), e.g. (bs, 77, 768) for SD1.5.

    in -> Linear(lm_dim, dim) -> nn.Transformer(encoder over the r states, decoder over
    `out_tokens` learned queries) -> Linear(dim, out_dim). Pre-norm, no dropout, as GILL's.
    """

    def __init__(self, lm_dim: int, out_dim: int, out_tokens: int, *, dim: int = 512, heads: int = 4,
                 layers: int = 4) -> None:
        super().__init__()
        self.proj_in = nn.Linear(lm_dim, dim)
        with warnings.catch_warnings():  # torch warns that pre-norm layers skip its nested-tensor fast path
            warnings.simplefilter("ignore", UserWarning)
            self.transformer = nn.Transformer(d_model=dim, nhead=heads, num_encoder_layers=layers,
                                              num_decoder_layers=layers, dim_feedforward=4 * dim, dropout=0.0,
                                              batch_first=True, norm_first=True)
        self.proj_out = nn.Linear(dim, out_dim)
        self.queries = nn.Parameter(torch.randn(1, out_tokens, dim))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """states : Tensor, shape (bs, r, lm_dim) -> Tensor, shape (bs, out_tokens, out_dim)."""
        x = self.proj_in(states)
        x = self.transformer(x, self.queries.expand(x.shape[0], -1, -1))
        return self.proj_out(x)
