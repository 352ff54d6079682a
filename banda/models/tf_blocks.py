"""Time-frequency sequence blocks for band-split models.

Every block maps ``(batch, bands, time, dim)`` to the same shape and alternates a pass
along time (each band separately) with a pass along bands (each frame separately).
"""
import torch
from torch import nn

from ..registry import Registry

TF_BLOCKS = Registry("time-frequency block")


class RNNPass(nn.Module):
    """Pre-norm bidirectional RNN along one axis with a residual: ``x + W rnn(norm(x))``."""

    def __init__(self, dim: int, hidden: int, cell: str = "gru", dropout: float = 0.0):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.norm = nn.LayerNorm(dim)
        self.rnn = rnn(dim, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, seq, dim)`` -> ``(batch, seq, dim)``."""
        y, _ = self.rnn(self.norm(x))
        return x + self.dropout(self.proj(y))


class _AlternatingTF(nn.Module):
    """Alternates ``time_passes[i]`` and ``band_passes[i]`` over ``(batch, bands, time, dim)``."""

    def __init__(self, time_passes, band_passes, checkpointing: bool = False):
        super().__init__()
        self.time_passes = nn.ModuleList(time_passes)
        self.band_passes = nn.ModuleList(band_passes)
        self.checkpointing = checkpointing

    def _run(self, layer, x):
        if self.checkpointing and self.training and x.requires_grad:
            return torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=False)
        return layer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k, t, d = x.shape
        for time_pass, band_pass in zip(self.time_passes, self.band_passes):
            x = self._run(time_pass, x.reshape(b * k, t, d)).reshape(b, k, t, d)
            x = x.transpose(1, 2).reshape(b * t, k, d)
            x = self._run(band_pass, x).reshape(b, t, k, d).transpose(1, 2)
        return x.contiguous()


@TF_BLOCKS.register("gru")
class GRUTF(_AlternatingTF):
    def __init__(self, dim: int, n_layers: int, hidden: int = 256, dropout: float = 0.0, checkpointing: bool = False):
        super().__init__(
            [RNNPass(dim, hidden, "gru", dropout) for _ in range(n_layers)],
            [RNNPass(dim, hidden, "gru", dropout) for _ in range(n_layers)],
            checkpointing,
        )


@TF_BLOCKS.register("lstm")
class LSTMTF(_AlternatingTF):
    def __init__(self, dim: int, n_layers: int, hidden: int = 256, dropout: float = 0.0, checkpointing: bool = False):
        super().__init__(
            [RNNPass(dim, hidden, "lstm", dropout) for _ in range(n_layers)],
            [RNNPass(dim, hidden, "lstm", dropout) for _ in range(n_layers)],
            checkpointing,
        )


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps).to(x.dtype) * self.weight


def rotary(x: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding along the sequence axis of ``(batch, heads, seq, head_dim)``."""
    seq, half = x.shape[-2], x.shape[-1] // 2
    freqs = 10000.0 ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = torch.arange(seq, device=x.device, dtype=torch.float32)[:, None] * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class TransformerPass(nn.Module):
    """Pre-norm (RMSNorm) self-attention with RoPE along one axis, then a x4 GELU feed-forward.

    Attention runs through ``scaled_dot_product_attention`` (flash/memory-efficient kernels
    on GPUs). ``(batch, seq, dim)`` -> ``(batch, seq, dim)``.
    """

    def __init__(self, dim: int, heads: int = 8, head_dim: int = 64, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        inner = heads * head_dim
        self.attn_norm = RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.out = nn.Linear(inner, dim, bias=False)
        self.ff = nn.Sequential(RMSNorm(dim), nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ff_mult * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(rotary(q), rotary(k), v, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.out(y.transpose(1, 2).reshape(b, n, -1))
        return x + self.ff(x)


@TF_BLOCKS.register("transformer")
class TransformerTF(_AlternatingTF):
    """RoFormer-style blocks: attention along time, then along bands (never bands x time at once).

    ``hidden`` is unused (kept so all blocks share one signature); ``heads`` x ``head_dim`` is the
    attention width.
    """

    def __init__(self, dim: int, n_layers: int, hidden: int = 256, dropout: float = 0.0, checkpointing: bool = False,
                 heads: int = 8, head_dim: int = 64):
        super().__init__(
            [TransformerPass(dim, heads, head_dim, dropout=dropout) for _ in range(n_layers)],
            [TransformerPass(dim, heads, head_dim, dropout=dropout) for _ in range(n_layers)],
            checkpointing,
        )
