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
