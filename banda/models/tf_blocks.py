"""Time-frequency sequence blocks for band-split models.

Every block maps ``(batch, bands, time, dim)`` to the same shape and alternates a pass
along time (each band separately) with a pass along bands (each frame separately); bands
x time is never flattened into one sequence. All blocks share the constructor arguments
``dim`` (width D), ``n_layers`` (time+band pass pairs), ``hidden``, ``dropout`` and
``checkpointing`` (activation checkpointing of each pass while training), plus their own:

- ``gru`` / ``lstm``: pre-norm BiGRU / BiLSTM of ``hidden`` units a direction, 2H -> D.
- ``transformer``: RoPE self-attention (``heads`` x ``head_dim``), FFN x ``ff_mult``, RMSNorm.
  Lean on memory: the norms keep only their input and ``rstd`` for the backward pass, the
  GELU is recomputed there, and ``v`` does not hold on to the q|k|v buffer.
- ``mamba``: bidirectional Mamba (forward scan + scan of the reversed sequence,
  ``bidirectional_merge`` ``sum`` or ``concat`` -> Linear), ``d_state``, ``d_conv``, ``expand``.
"""
from typing import Optional

import torch
from torch import nn

from ..errors import ConfigError
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
    """Alternates ``time_passes[i]`` and ``band_passes[i]`` over ``(batch, bands, time, dim)``.

    With ``checkpointing`` each pass's activations are recomputed in the backward pass
    (training only); outputs and gradients are the same as without (the RNG state is
    restored for the recomputation, so dropout masks agree).
    """

    def __init__(self, time_passes, band_passes, checkpointing: bool = False):
        super().__init__()
        self.time_passes = nn.ModuleList(time_passes)
        self.band_passes = nn.ModuleList(band_passes)
        self.checkpointing = checkpointing

    def _run(self, layer, x, *extra):
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(layer, x, *extra, use_reentrant=False)
        return layer(x, *extra)

    def pass_inputs(self, seq: int, x: torch.Tensor) -> tuple:
        """Further arguments of every pass along an axis of length ``seq`` (made once per forward)."""
        return ()

    def compile_regions(self, **options) -> None:
        """Regional compilation: ``torch.compile`` each pass in place (the passes share their code,
        so one compilation per axis serves all of them; parameter names do not change)."""
        for layer in [*self.time_passes, *self.band_passes]:
            layer.compile(**options)

    def forward(self, x: torch.Tensor, start: int = 0, stop: Optional[int] = None) -> torch.Tensor:
        """``(batch, bands, time, dim)`` -> the same, through the pass pairs ``start:stop`` (all by
        default; a model conditioning between them runs the halves separately)."""
        b, k, t, d = x.shape
        along_time, along_bands = self.pass_inputs(t, x), self.pass_inputs(k, x)
        for time_pass, band_pass in zip(self.time_passes[start:stop], self.band_passes[start:stop]):
            x = self._run(time_pass, x.reshape(b * k, t, d), *along_time).reshape(b, k, t, d)
            x = x.transpose(1, 2).reshape(b * t, k, d)
            x = self._run(band_pass, x, *along_bands).reshape(b, t, k, d).transpose(1, 2)
        return x.contiguous()


def _check_common(dim: int, n_layers: int, dropout: float) -> None:
    if dim < 1 or n_layers < 1:
        raise ConfigError(f"TF block needs dim >= 1 and n_layers >= 1, got dim={dim}, n_layers={n_layers}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"TF block dropout must be in [0, 1), got {dropout}")


@TF_BLOCKS.register("gru")
class GRUTF(_AlternatingTF):
    def __init__(self, dim: int, n_layers: int, hidden: int = 256, dropout: float = 0.0, checkpointing: bool = False):
        _check_common(dim, n_layers, dropout)
        super().__init__(
            [RNNPass(dim, hidden, "gru", dropout) for _ in range(n_layers)],
            [RNNPass(dim, hidden, "gru", dropout) for _ in range(n_layers)],
            checkpointing,
        )


@TF_BLOCKS.register("lstm")
class LSTMTF(_AlternatingTF):
    def __init__(self, dim: int, n_layers: int, hidden: int = 256, dropout: float = 0.0, checkpointing: bool = False):
        _check_common(dim, n_layers, dropout)
        super().__init__(
            [RNNPass(dim, hidden, "lstm", dropout) for _ in range(n_layers)],
            [RNNPass(dim, hidden, "lstm", dropout) for _ in range(n_layers)],
            checkpointing,
        )


# ---------------------------------------------------------------------- transformer
class _RMSNormFunction(torch.autograd.Function):
    """``x * rsqrt(mean(x^2) + eps) * weight`` in float32 that keeps only ``x`` and the per-row
    ``rstd`` for the backward pass (the composite of elementwise ops keeps about twice that).
    Under autocast ``x`` is kept in the autocast dtype: the forward is exact, and the backward's
    error is that of the half-precision matrix products around it."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        compute = torch.promote_types(x.dtype, torch.float32)
        xf = x.to(compute)
        rstd = torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps)
        kept = x
        if torch.is_autocast_enabled(x.device.type) and x.is_floating_point():
            kept = x.to(torch.get_autocast_dtype(x.device.type))
        ctx.save_for_backward(kept, weight, rstd)
        ctx.input_dtype = x.dtype
        return (xf * rstd * weight.to(compute)).to(torch.promote_types(x.dtype, weight.dtype))

    @staticmethod
    def backward(ctx, grad):
        x, weight, rstd = ctx.saved_tensors
        x_hat = x.to(rstd.dtype) * rstd
        grad = grad.to(rstd.dtype)
        grad_weight = (grad * x_hat).reshape(-1, x.shape[-1]).sum(0).to(weight.dtype) if ctx.needs_input_grad[1] else None
        g = grad * weight.to(rstd.dtype)
        grad_x = rstd * (g - x_hat * (g * x_hat).mean(-1, keepdim=True))
        return grad_x.to(ctx.input_dtype), grad_weight, None


class RMSNorm(nn.Module):
    """RMS normalisation over the last axis with a learned gain, computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _RMSNormFunction.apply(x, self.weight, self.eps)


class _GELULinearFunction(torch.autograd.Function):
    """``linear(gelu(h), weight, bias)`` that keeps ``h`` but not ``gelu(h)`` for the backward
    pass: the GELU is recomputed there (elementwise, cheap) instead of holding a second
    ``ff_mult * dim`` activation per token. Under autocast the matrix products run in the
    dtype the forward used."""

    @staticmethod
    def forward(ctx, h, weight, bias):
        y = nn.functional.linear(nn.functional.gelu(h), weight, bias)
        ctx.save_for_backward(h, weight)
        ctx.has_bias = bias is not None
        ctx.compute_dtype = y.dtype
        return y

    @staticmethod
    def backward(ctx, grad):
        h, weight = ctx.saved_tensors
        dt = ctx.compute_dtype
        grad = grad.to(dt)
        activation = nn.functional.gelu(h).to(dt)
        grad_activation = grad @ weight.to(dt)
        grad_h = torch.ops.aten.gelu_backward(grad_activation.to(h.dtype), h)
        grad_2d = grad.reshape(-1, grad.shape[-1])
        grad_weight = (grad_2d.t() @ activation.reshape(-1, activation.shape[-1])).to(weight.dtype)
        grad_bias = grad_2d.sum(0).to(weight.dtype) if ctx.has_bias else None
        return grad_h, grad_weight, grad_bias


def rotary_tables(seq: int, head_dim: int, device=None, base: float = 10000.0):
    """``cos``, ``sin`` ``(seq, head_dim)`` float32 of the rotary embedding, ``sin`` signed for
    :func:`rotary`: ``rotary(x) = x * cos + swap_halves(x) * sin``. Pairs ``(x[i], x[i + half])``
    rotate by ``pos * base^(-i / half)``, so a rotated query's dot product with a rotated key
    depends only on their relative position. Computed in float32 (bf16 angles lose the position)."""
    half = head_dim // 2
    freqs = base ** (-torch.arange(half, device=device, dtype=torch.float32) / half)
    angles = torch.arange(seq, device=device, dtype=torch.float32)[:, None] * freqs
    cos, sin = angles.cos(), angles.sin()
    return torch.cat([cos, cos], -1), torch.cat([-sin, sin], -1)


def _swap_halves(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([x[..., half:], x[..., :half]], -1)


def rotary(x: torch.Tensor, base: float = 10000.0, tables=None) -> torch.Tensor:
    """Rotary position embedding along the sequence axis of ``(batch, heads, seq, head_dim)``
    (see :func:`rotary_tables`), computed in float32 and cast back to ``x``'s dtype."""
    cos, sin = tables if tables is not None else rotary_tables(x.shape[-2], x.shape[-1], x.device, base)
    return torch.addcmul(x * cos, _swap_halves(x), sin).to(x.dtype)


class _RotaryQKV(torch.autograd.Function):
    """``(batch, seq, 3 * heads * head_dim)`` q|k|v -> ``q``, ``k`` rotated and ``v``, each
    ``(batch, heads, seq, head_dim)``: the rotation of q and k in one pass over the buffer, and
    a backward that writes the q|k|v gradient in one buffer (the inverse rotation, no slice
    gradients to add up). ``v`` is copied out, so attention does not keep the whole buffer
    alive through it. Saves nothing but the rotary tables."""

    @staticmethod
    def forward(ctx, qkv, cos, sin, heads: int):
        b, n, _ = qkv.shape
        t = qkv.view(b, n, 3, heads, -1)
        qk = t[:, :, :2]
        c, s = cos[:, None, None], sin[:, None, None]                        # (seq, 1, 1, head_dim)
        rotated = torch.addcmul(qk * c, _swap_halves(qk), s).to(qkv.dtype)  # (b, seq, 2, heads, head_dim)
        ctx.save_for_backward(cos, sin)
        q, k = rotated.permute(2, 0, 3, 1, 4)
        return q, k, t[:, :, 2].transpose(1, 2).contiguous()

    @staticmethod
    def backward(ctx, grad_q, grad_k, grad_v):
        cos, sin = ctx.saved_tensors
        b, h, n, d = grad_v.shape
        c, s = cos[:, None, None], sin[:, None, None]
        out = grad_v.new_empty(b, n, 3, h, d)
        g = torch.stack([grad_q, grad_k], 2).transpose(1, 3)              # (b, seq, 2, heads, head_dim)
        # the transpose of x -> x c + swap(x) s is g -> g c - swap(g) s (s is odd under the swap)
        out[:, :, :2] = torch.addcmul(g * c, _swap_halves(g), s, value=-1.0)
        out[:, :, 2] = grad_v.transpose(1, 2)
        return out.view(b, n, -1), None, None, None


class TransformerPass(nn.Module):
    """Pre-norm (RMSNorm) self-attention with RoPE along one axis, then a x``ff_mult`` GELU feed-forward.

    Attention runs through ``scaled_dot_product_attention`` (flash/memory-efficient kernels
    on GPUs). ``(batch, seq, dim)`` -> ``(batch, seq, dim)``.
    """

    def __init__(self, dim: int, heads: int = 8, head_dim: int = 64, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        if heads < 1 or head_dim < 2 or head_dim % 2:
            raise ConfigError(f"transformer needs heads >= 1 and an even head_dim (RoPE), got heads={heads}, head_dim={head_dim}")
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        inner = heads * head_dim
        self.attn_norm = RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.out = nn.Linear(inner, dim, bias=False)
        self.out_dropout = nn.Dropout(dropout)
        self.ff = nn.Sequential(RMSNorm(dim), nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ff_mult * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, tables=None) -> torch.Tensor:
        """``x``; ``tables``: :func:`rotary_tables` for this sequence length (made here when not
        given; :class:`TransformerTF` makes them once for all its passes along one axis)."""
        b, n, _ = x.shape
        cos, sin = tables if tables is not None else rotary_tables(n, self.head_dim, x.device)
        q, k, v = _RotaryQKV.apply(self.qkv(self.attn_norm(x)), cos, sin, self.heads)
        y = nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.out_dropout(self.out(y.transpose(1, 2).reshape(b, n, -1)))
        return x + self._feed_forward(x)

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        norm, up, _, dropout, down, out_dropout = self.ff
        h = up(norm(x))
        if self.training and self.dropout > 0:  # dropout between GELU and the down projection: plain path
            return out_dropout(down(dropout(nn.functional.gelu(h))))
        return _GELULinearFunction.apply(h, down.weight, down.bias)


@TF_BLOCKS.register("transformer")
class TransformerTF(_AlternatingTF):
    """RoFormer-style blocks: attention along time, then along bands (never bands x time at once).

    ``hidden`` is unused (kept so all blocks share one signature); ``heads`` x ``head_dim`` is the
    attention width, ``ff_mult`` x ``dim`` the feed-forward width.
    """

    def __init__(self, dim: int, n_layers: int, hidden: int = 256, dropout: float = 0.0, checkpointing: bool = False,
                 heads: int = 8, head_dim: int = 64, ff_mult: int = 4):
        _check_common(dim, n_layers, dropout)
        super().__init__(
            [TransformerPass(dim, heads, head_dim, ff_mult, dropout) for _ in range(n_layers)],
            [TransformerPass(dim, heads, head_dim, ff_mult, dropout) for _ in range(n_layers)],
            checkpointing,
        )
        self.head_dim = head_dim

    def pass_inputs(self, seq: int, x: torch.Tensor) -> tuple:
        """The rotary tables of the axis, shared by its passes."""
        return (rotary_tables(seq, self.head_dim, x.device),)


# ---------------------------------------------------------------------- mamba
MAMBA_BACKENDS = ("auto", "mamba_ssm", "mambapy")
_MAMBA_INSTALL = ("pip install mambapy (or pip install 'banda[mamba]'); on CUDA machines the fused kernels of "
                  "mamba_ssm are used instead when installed")


def mamba_backend(backend: str = "auto") -> str:
    """Resolve the Mamba implementation: ``mamba_ssm`` (fused CUDA kernels; chosen by ``auto``
    when importable and a GPU is present), else ``mambapy`` (pure PyTorch, any device).
    Raises :class:`ConfigError` when the requested one cannot be imported."""
    if backend not in MAMBA_BACKENDS:
        raise ConfigError(f"mamba backend must be one of {MAMBA_BACKENDS}, not {backend!r}")
    if backend in ("auto", "mamba_ssm"):
        try:
            import mamba_ssm  # noqa: F401
            fused = True
        except Exception:  # ImportError, or a compiled extension that does not load
            fused = False
        if backend == "mamba_ssm":
            if not fused:
                raise ConfigError("tf_block 'mamba' with backend 'mamba_ssm': `import mamba_ssm` failed; install mamba-ssm "
                                  "(CUDA only) or use backend 'auto'/'mambapy' (" + _MAMBA_INSTALL + ")")
            return "mamba_ssm"
        if fused and torch.cuda.is_available():
            return "mamba_ssm"
    try:
        import mambapy.mamba  # noqa: F401
    except ImportError:
        raise ConfigError("tf_block 'mamba' needs a Mamba implementation: " + _MAMBA_INSTALL) from None
    return "mambapy"


def _mamba_mixer(backend: str, dim: int, d_state: int, d_conv: int, expand: int) -> nn.Module:
    """One unidirectional Mamba mixer ``(batch, seq, dim)`` -> ``(batch, seq, dim)`` (no norm, no residual).

    Both backends name their parameters alike (``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``,
    ``A_log``, ``D``, ``out_proj``), so weights trained with one load into the other.
    """
    if backend == "mamba_ssm":
        from mamba_ssm import Mamba

        return Mamba(d_model=dim, d_state=d_state, d_conv=d_conv, expand=expand)
    from mambapy.mamba import MambaBlock, MambaConfig

    return MambaBlock(MambaConfig(d_model=dim, n_layers=1, d_state=d_state, d_conv=d_conv, expand_factor=expand, pscan=True))


class MambaPass(nn.Module):
    """Pre-norm bidirectional Mamba along one axis with a residual.

    ``x + dropout(merge(fwd(h), flip(bwd(flip(h)))))`` with ``h = RMSNorm(x)``: one mixer scans
    the sequence forwards, a second (own weights) scans it reversed; ``merge`` is their sum or
    a Linear of their concatenation. A unidirectional scan would see only the past, which
    is wrong for offline separation. With the pure-PyTorch backend the scan runs in float32
    even under autocast (a long recurrence in bf16 drifts); mamba_ssm handles precision itself.
    """

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dropout: float = 0.0,
                 bidirectional_merge: str = "sum", backend: str = "auto"):
        super().__init__()
        if bidirectional_merge not in ("sum", "concat"):
            raise ConfigError(f"mamba bidirectional_merge must be 'sum' or 'concat', not {bidirectional_merge!r}")
        self.backend = mamba_backend(backend)
        self.norm = RMSNorm(dim)
        self.fwd = _mamba_mixer(self.backend, dim, d_state, d_conv, expand)
        self.bwd = _mamba_mixer(self.backend, dim, d_state, d_conv, expand)
        self.merge = nn.Linear(2 * dim, dim) if bidirectional_merge == "concat" else None
        self.dropout = nn.Dropout(dropout)

    def _scan(self, mixer: nn.Module, h: torch.Tensor) -> torch.Tensor:
        if self.backend == "mambapy":
            with torch.autocast(h.device.type, enabled=False):
                return mixer(h.float())
        return mixer(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, seq, dim)`` -> ``(batch, seq, dim)``."""
        h = self.norm(x)
        fwd = self._scan(self.fwd, h)
        bwd = self._scan(self.bwd, h.flip(1)).flip(1)
        y = fwd + bwd if self.merge is None else self.merge(torch.cat([fwd, bwd], dim=-1))
        return x + self.dropout(y)


@TF_BLOCKS.register("mamba")
class MambaTF(_AlternatingTF):
    """Bidirectional Mamba along time, then along bands.

    ``hidden`` is unused (kept so all blocks share one signature); the width is ``expand`` x
    ``dim`` inner channels with a ``d_state`` state each and a ``d_conv``-tap causal conv.
    ``backend``: ``auto`` (mamba_ssm on CUDA when installed, else mambapy), ``mamba_ssm``
    or ``mambapy`` (``pip install 'banda[mamba]'``).
    """

    def __init__(self, dim: int, n_layers: int, hidden: int = 256, dropout: float = 0.0, checkpointing: bool = False,
                 d_state: int = 16, d_conv: int = 4, expand: int = 2, bidirectional_merge: str = "sum", backend: str = "auto"):
        _check_common(dim, n_layers, dropout)

        def make():
            return MambaPass(dim, d_state, d_conv, expand, dropout, bidirectional_merge, backend)

        super().__init__([make() for _ in range(n_layers)], [make() for _ in range(n_layers)], checkpointing)
