"""A small decoder-only Transformer (GPT-2's layout, after nanoGPT's model.py).

Token and learned position embeddings, ``layers`` pre-norm blocks (causal self-attention, then
a 4x-wide GELU MLP, each added back to the residual stream), a final LayerNorm and a language-
model head that shares its weight with the token embedding. Initialised as nanoGPT: normal
with std 0.02, the residual projections with std 0.02 / sqrt(2 layers), biases zero.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainables.plugins import WorkloadError, check_call

KEY = "model.name"  # the study key a model's problems are reported under


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)  # queries, keys and values of every head at once
        self.proj = nn.Linear(width, width)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        batch, time, width = x.shape
        # [B, T, 3C] -> three [B, heads, T, C / heads]
        q, k, v = (
            part.view(batch, time, self.heads, width // self.heads).transpose(1, 2)
            for part in self.qkv(x).split(width, dim=2)
        )
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(batch, time, width)  # heads side by side again
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(width, 4 * width)
        self.proj = nn.Linear(4 * width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = MLP(width, dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """Logits ``[B, T, vocab_size]`` for token ids ``[B, T]``, ``T <= context``; the logits at
    position ``t`` see only tokens ``0..t``."""

    def __init__(
        self,
        vocab_size: int,
        context: int,
        layers: int = 2,
        heads: int = 4,
        width: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in [("vocab_size", vocab_size), ("context", context), ("layers", layers)]:
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if heads < 1 or width % heads:
            raise ValueError(f"width {width} must be a positive multiple of heads {heads}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.vocab_size, self.context, self.layers, self.width = vocab_size, context, layers, width
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.position_embedding = nn.Embedding(context, width)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(width, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # tied: one Parameter, two uses
        self.apply(_init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith("proj.weight"):  # projections back into the residual stream
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    def forward(self, tokens: Tensor) -> Tensor:
        time = tokens.shape[1]
        if time > self.context:
            raise ValueError(
                f"a sequence of {time} tokens is longer than the context {self.context}"
            )
        positions = torch.arange(time, device=tokens.device)
        x = self.dropout(self.token_embedding(tokens) + self.position_embedding(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def build_gpt(vocab_size: int, context: int, **options: Any) -> GPT:
    """A freshly initialised :class:`GPT` (seed torch's global RNG first to fix it);
    ``options``: ``layers``, ``heads``, ``width``, ``dropout``. A bad option is a one-line
    :class:`~trainables.plugins.WorkloadError` naming ``model.name``."""
    check_call(GPT, KEY, vocab_size, context, **options)
    try:
        return GPT(vocab_size, context, **options)
    except (TypeError, ValueError) as error:
        raise WorkloadError(f"{KEY}: gpt: {error}") from None


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW's parameter groups: ``weight_decay`` on every weight matrix (2-D or more) but the
    embeddings, none on biases, norm weights and embeddings (a head tied to an embedding is
    that embedding). Each parameter is in one group, once; an empty group is left out."""
    embeddings = {
        id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)
    }
    decay, no_decay = [], []
    for parameter in model.parameters():  # a shared Parameter comes once
        if parameter.dim() >= 2 and id(parameter) not in embeddings:
            decay.append(parameter)
        else:
            no_decay.append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def count_parameters(model: nn.Module) -> int:
    """Parameters of ``model``, a shared (tied) one counted once."""
    return sum(parameter.numel() for parameter in model.parameters())


def flops_per_token(model: GPT, context: int) -> int:
    """Training FLOPs per token, forward and backward, at sequence length ``context``: the
    PaLM-paper estimate nanoGPT's MFU uses, ``6 N + 12 layers width context``. ``N`` leaves out
    the position embedding (a lookup, no multiply) and keeps the tied token embedding (the
    head's matrix multiply); the second term is the attention's scores and weighted sum."""
    n = count_parameters(model) - model.position_embedding.weight.numel()
    return 6 * n + 12 * model.layers * model.width * context
