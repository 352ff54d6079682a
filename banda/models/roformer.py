"""BS-RoFormer (Lu et al., 2023) with the exact parameter layout of lucidrains' ``bs-roformer``
0.3.9 (``BSRoformer``), the layout of the community checkpoints trained with
Music-Source-Separation-Training (MSST), written with banda's own blocks.

::

    mixture (batch, channels, time)
      -> STFT (Hann, center, reflect) -> complex (batch, channels, freq, frames)
      -> channels interleaved into frequency ((f s)), real/imag last: per frame (f, s, re/im)
      -> band split: per band RMSNorm + Linear -> (batch, frames, bands, dim)
      -> depth x [time transformer over frames (RoPE), band transformer over bands (RoPE)]
      -> final RMSNorm
      -> per stem, per band: MLP (Tanh) + GLU -> complex mask -> mask x STFT -> iSTFT
      -> (batch, stems, channels, time)

Blocks: RMSNorm is ``x / |x| * sqrt(dim) * gamma``; attention is pre-norm, a bias-free QKV,
rotary position embeddings (interleaved pairs, theta 10000) on queries and keys,
``F.scaled_dot_product_attention``, a sigmoid gate per head (``to_gates``) and a bias-free output
projection; the feed-forward is RMSNorm, Linear (4x), GELU, Linear. The time and band
transformers each share one rotary table (``rotary_embed.freqs``, stored under every attention
layer as the reference stores it).

``zero_dc`` (MSST's newer code, off in ``bs-roformer`` 0.3.9 and when the published
checkpoints were trained) zeroes the DC bin before the inverse STFT; ``skip_connection``
(MSST's) adds every earlier layer's output to each layer's input.
"""
from types import SimpleNamespace
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .registry import MODELS

#: BS-RoFormer's 62 bands for a 2048-point STFT: widths 2x24, 4x12, 12x8, 24x8, 48x8, 128, 129 bins.
DEFAULT_FREQS_PER_BANDS = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)


class RMSNorm(nn.Module):
    """``x / max(|x|, 1e-12) * sqrt(dim) * gamma`` over the last axis."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class RotaryTable(nn.Module):
    """Rotary position embedding along a sequence: ``freqs (dim_head/2,)`` (``1/10000^(2i/d)``,
    a non-trainable parameter, as the reference stores it); :meth:`rotate` turns ``(..., n, d)``
    queries or keys by their positions ``0..n-1`` (pairs ``(x0, x1)`` interleaved)."""

    def __init__(self, dim_head: int, theta: float = 10000.0):
        super().__init__()
        freqs = 1.0 / theta ** (torch.arange(0, dim_head, 2)[: dim_head // 2].float() / dim_head)
        self.freqs = nn.Parameter(freqs, requires_grad=False)

    def cos_sin(self, n: int, device, dtype):
        t = torch.arange(n, device=device, dtype=self.freqs.dtype)
        angles = (t[:, None] * self.freqs[None]).repeat_interleave(2, dim=-1)  # (n, d): pairs share an angle
        return angles.cos().to(dtype), angles.sin().to(dtype)

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        pairs = x.unflatten(-1, (-1, 2))
        half = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # (x0, x1) -> (-x1, x0)
        return x * cos + half * sin


class Attention(nn.Module):
    """Pre-norm multi-head self-attention with RoPE and a sigmoid gate per head; ``(batch, n, dim)``."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float, rotary: RotaryTable):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.rotary_embed = rotary
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim, bias=False), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        x = self.norm(x)
        q, k, v = self.to_qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)  # each (b, h, n, d)
        cos, sin = self.rotary_embed.cos_sin(n, x.device, q.dtype)
        q, k = RotaryTable.rotate(q, cos, sin), RotaryTable.rotate(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        out = out * torch.sigmoid(self.to_gates(x)).transpose(1, 2).unsqueeze(-1)
        return self.to_out(out.transpose(1, 2).flatten(2))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(RMSNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim * mult, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Transformer(nn.Module):
    """``depth`` residual (attention, feed-forward) pairs over ``(batch, n, dim)``; ``norm``: the
    output norm (an identity in BS-RoFormer, an RMSNorm in Mel-Band-RoFormer)."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, attn_dropout: float, ff_dropout: float,
                 rotary: RotaryTable, norm_output: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, heads, dim_head, attn_dropout, rotary), FeedForward(dim, 4, ff_dropout)])
            for _ in range(depth))
        self.norm = RMSNorm(dim) if norm_output else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.norm(x)


class BandSplit(nn.Module):
    """``(batch, frames, sum(dims))`` -> ``(batch, frames, bands, dim)``: per band RMSNorm + Linear."""

    def __init__(self, dim: int, dims: Sequence[int]):
        super().__init__()
        self.dims = list(dims)
        self.to_features = nn.ModuleList(nn.Sequential(RMSNorm(d), nn.Linear(d, dim)) for d in self.dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([f(part) for f, part in zip(self.to_features, x.split(self.dims, dim=-1))], dim=-2)


def _mlp(dim_in: int, dim_out: int, hidden: int, layers: int) -> nn.Sequential:
    """``layers`` Linear layers ``dim_in -> hidden ... -> dim_out`` with Tanh between them."""
    sizes = [dim_in] + [hidden] * (layers - 1) + [dim_out]
    layers: List[nn.Module] = []
    for i, (a, c) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, c))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MaskEstimator(nn.Module):
    """``(batch, frames, bands, dim)`` -> ``(batch, frames, sum(dims))``: per band MLP + GLU
    (``layers`` Linear layers: BS-RoFormer's ``mask_estimator_depth``, Mel-Band-RoFormer's plus one)."""

    def __init__(self, dim: int, dims: Sequence[int], layers: int, mlp_expansion_factor: int):
        super().__init__()
        self.to_freqs = nn.ModuleList(
            nn.Sequential(_mlp(dim, 2 * d, dim * mlp_expansion_factor, layers), nn.GLU(dim=-1)) for d in dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([f(band) for f, band in zip(self.to_freqs, x.unbind(dim=-2))], dim=-1)


class _Roformer(nn.Module):
    """What BS- and Mel-Band-RoFormer share: the checks, the STFT, the axial transformer stack
    and the inverse STFT; subclasses say which bins each band reads and how masks come back."""

    def _setup(self, stems, in_channels, sample_rate, dim, depth, time_transformer_depth, freq_transformer_depth,
               dim_head, heads, attn_dropout, ff_dropout, stft_n_fft, stft_hop_length, stft_win_length,
               stft_normalized, zero_dc, skip_connection, norm_output):
        self.stems = list(stems)
        if not self.stems or len(set(self.stems)) != len(self.stems):
            raise ConfigError(f"stems must be distinct and at least one, got {self.stems}")
        if in_channels not in (1, 2):
            raise ConfigError(f"a RoFormer takes mono or stereo audio, not {in_channels} channels")
        self.in_channels, self.sample_rate = int(in_channels), int(sample_rate)
        self.n_fft, self.hop_length, self.win_length = stft_n_fft, stft_hop_length, stft_win_length
        self.normalized, self.zero_dc, self.skip_connection = stft_normalized, zero_dc, bool(skip_connection)
        self.stft = SimpleNamespace(n_fft=stft_n_fft)  # what Separator reads: the shortest segment
        self.register_buffer("window", torch.hann_window(stft_win_length), persistent=False)
        time_rotary, freq_rotary = RotaryTable(dim_head), RotaryTable(dim_head)
        common = dict(dim=dim, heads=heads, dim_head=dim_head, attn_dropout=attn_dropout, ff_dropout=ff_dropout,
                      norm_output=norm_output)
        self.layers = nn.ModuleList(
            nn.ModuleList([Transformer(depth=time_transformer_depth, rotary=time_rotary, **common),
                           Transformer(depth=freq_transformer_depth, rotary=freq_rotary, **common)])
            for _ in range(depth))

    def _spectrum(self, mixture: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, time)`` -> complex ``(batch, freq * channels, frames)``, channels interleaved."""
        b, s, n = mixture.shape
        if s != self.in_channels:
            raise ValueError(f"model expects {self.in_channels} channels, got {s}")
        spec = torch.stft(mixture.reshape(b * s, n), self.n_fft, self.hop_length, self.win_length, self.window,
                          normalized=self.normalized, return_complex=True)  # (b s, f, t)
        f, t = spec.shape[-2:]
        return spec.reshape(b, s, f, t).transpose(1, 2).reshape(b, f * s, t)

    def _axial(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, bands, dim)`` through the time and band transformers of every layer;
        with ``skip_connection`` (MSST's) each layer's input also gets every earlier layer's output."""
        b, t, k, _ = x.shape
        outputs = []
        for time_tf, freq_tf in self.layers:
            if self.skip_connection:
                for earlier in outputs:
                    x = x + earlier
            x = time_tf(x.transpose(1, 2).reshape(b * k, t, -1)).reshape(b, k, t, -1).transpose(1, 2)
            x = freq_tf(x.reshape(b * t, k, -1)).reshape(b, t, k, -1)
            if self.skip_connection:
                outputs.append(x)
        return x

    def _masks(self, x: torch.Tensor, rows: int) -> torch.Tensor:
        """Complex masks ``(batch, stems, rows, frames)`` from ``(batch, frames, bands, dim)``."""
        masks = torch.stack([est(x) for est in self.mask_estimators], dim=1)  # (b, stems, t, rows * 2)
        return torch.view_as_complex(masks.unflatten(-1, (rows, 2)).transpose(2, 3).contiguous().float())

    def _waveform(self, out: torch.Tensor, n: int) -> torch.Tensor:
        """Masked spectra ``(batch, stems, freq * channels, frames)`` -> ``(batch, stems, channels, n)``."""
        b, _, fs, t = out.shape
        s = self.in_channels
        out = out.reshape(b * len(self.stems), fs // s, s, t).transpose(1, 2).reshape(-1, fs // s, t)
        if self.zero_dc:
            out = out.index_fill(1, torch.tensor([0], device=out.device), 0.0)
        audio = torch.istft(out, self.n_fft, self.hop_length, self.win_length, self.window, normalized=self.normalized,
                            length=n)
        return audio.reshape(b, len(self.stems), s, n)


@MODELS.register("bs_roformer")
class BSRoformer(_Roformer):
    """BS-RoFormer, parameter for parameter the layout of ``bs_roformer.BSRoformer`` (0.3.9).

    Args:
        stems: the output stems (the reference's ``num_stems``: their count).
        in_channels: 1 or 2 (the reference's ``stereo``).
        sample_rate: of the audio (the model itself does not depend on it).
        dim, depth, time_transformer_depth, freq_transformer_depth, dim_head, heads,
        attn_dropout, ff_dropout, mask_estimator_depth, mlp_expansion_factor: as the reference
            (``mlp_expansion_factor``: the mask MLPs' hidden width over ``dim``; the reference
            fixes it at 4, MSST's configs set it).
        freqs_per_bands: STFT bins per band, summing to ``stft_n_fft // 2 + 1``.
        stft_n_fft, stft_hop_length, stft_win_length, stft_normalized: the STFT (Hann window).
        zero_dc: zero the DC bin of the masked spectra before the inverse STFT (MSST's newer code).
        skip_connection: MSST's option: before each layer, add the outputs of all earlier layers
            (no parameters; off in the published configs).

    The output always has the input's length and a stem axis (the reference drops the stem
    axis of a one-stem model and returns ``hop * (time // hop)`` samples).
    """

    def __init__(self, stems: Sequence[str] = ("vocals",), in_channels: int = 2, sample_rate: int = 44100,
                 dim: int = 512, depth: int = 12, time_transformer_depth: int = 1, freq_transformer_depth: int = 1,
                 freqs_per_bands: Sequence[int] = DEFAULT_FREQS_PER_BANDS, dim_head: int = 64, heads: int = 8,
                 attn_dropout: float = 0.0, ff_dropout: float = 0.0, stft_n_fft: int = 2048,
                 stft_hop_length: int = 512, stft_win_length: int = 2048, stft_normalized: bool = False,
                 mask_estimator_depth: int = 2, mlp_expansion_factor: int = 4, zero_dc: bool = False,
                 skip_connection: bool = False):
        super().__init__()
        self._setup(stems, in_channels, sample_rate, dim, depth, time_transformer_depth, freq_transformer_depth,
                    dim_head, heads, attn_dropout, ff_dropout, stft_n_fft, stft_hop_length, stft_win_length,
                    stft_normalized, zero_dc, skip_connection, norm_output=False)
        freqs_per_bands = [int(f) for f in freqs_per_bands]
        if sum(freqs_per_bands) != stft_n_fft // 2 + 1 or len(freqs_per_bands) < 2 or min(freqs_per_bands) < 1:
            raise ConfigError(f"model.params.freqs_per_bands: {len(freqs_per_bands)} bands of {sum(freqs_per_bands)} "
                              f"bins; they must be at least 2 and cover the {stft_n_fft // 2 + 1} bins of a "
                              f"{stft_n_fft}-point STFT")
        self.final_norm = RMSNorm(dim)
        dims = [2 * f * self.in_channels for f in freqs_per_bands]
        self.band_split = BandSplit(dim, dims)
        self.mask_estimators = nn.ModuleList(
            MaskEstimator(dim, dims, mask_estimator_depth, mlp_expansion_factor) for _ in self.stems)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, time)`` -> ``(batch, stems, channels, time)``."""
        b, _, n = mixture.shape
        spec = self._spectrum(mixture)  # (b, f s, t)
        fs, t = spec.shape[-2:]
        x = torch.view_as_real(spec).permute(0, 2, 1, 3).reshape(b, t, fs * 2)  # per frame (f, s, re/im)
        x = self.final_norm(self._axial(self.band_split(x)))
        return self._waveform(spec.unsqueeze(1) * self._masks(x, fs), n)


def mel_band_membership(sample_rate: int, n_fft: int, num_bands: int) -> torch.Tensor:
    """``(num_bands, n_fft // 2 + 1)`` bool: which STFT bins each band reads, as Mel-Band-RoFormer
    builds it: the bins where librosa's ``filters.mel(sr, n_fft, n_mels)`` (Slaney mel scale,
    Slaney area normalisation, 0 to sr/2, float32 weights) is positive, with the first bin of the
    first band and the last bin of the last band forced in. Computed here in float64 numpy as
    librosa does (the binary layout decides the parameter shapes, so the rounding must match)."""
    import numpy as np

    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m):
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), num_bands + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((num_bands, len(fft_freqs)), dtype=np.float32)
    for i in range(num_bands):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2:num_bands + 2] - mel_f[:num_bands]))[:, None]
    weights[0, 0] = 1.0
    weights[-1, -1] = 1.0
    return torch.from_numpy(weights > 0)


@MODELS.register("mel_band_roformer")
class MelBandRoformer(_Roformer):
    """Mel-Band-RoFormer (Wang et al., 2023), parameter for parameter the layout of
    ``bs_roformer.MelBandRoformer`` (0.3.9): ``num_bands`` overlapping bands on the mel scale
    (:func:`mel_band_membership`), each band reading its bins of every channel; the masks of
    bins that two bands share are averaged. Its transformers end with an RMSNorm (no final
    norm), and its mask MLPs have ``mask_estimator_depth + 1`` Linear layers.

    Args: as :class:`BSRoformer`, with ``num_bands`` instead of ``freqs_per_bands``; the
    ``sample_rate`` places the mel bands.
    """

    def __init__(self, stems: Sequence[str] = ("vocals",), in_channels: int = 2, sample_rate: int = 44100,
                 dim: int = 384, depth: int = 6, time_transformer_depth: int = 1, freq_transformer_depth: int = 1,
                 num_bands: int = 60, dim_head: int = 64, heads: int = 8, attn_dropout: float = 0.0,
                 ff_dropout: float = 0.0, stft_n_fft: int = 2048, stft_hop_length: int = 441,
                 stft_win_length: int = 2048, stft_normalized: bool = False, mask_estimator_depth: int = 2,
                 mlp_expansion_factor: int = 4, zero_dc: bool = False, skip_connection: bool = False):
        super().__init__()
        self._setup(stems, in_channels, sample_rate, dim, depth, time_transformer_depth, freq_transformer_depth,
                    dim_head, heads, attn_dropout, ff_dropout, stft_n_fft, stft_hop_length, stft_win_length,
                    stft_normalized, zero_dc, skip_connection, norm_output=True)
        if not 2 <= num_bands <= stft_n_fft // 2:
            raise ConfigError(f"model.params.num_bands must be in [2, {stft_n_fft // 2}], not {num_bands}")
        member = mel_band_membership(self.sample_rate, stft_n_fft, num_bands)
        if not member.any(0).all():
            raise ConfigError(f"model.params.num_bands: {num_bands} mel bands of a {stft_n_fft}-point STFT leave "
                              f"bins uncovered")
        index = torch.arange(member.shape[1]).expand_as(member)[member]  # band-major, ascending within a band
        s = self.in_channels
        index = (index[:, None] * s + torch.arange(s)).flatten()  # rows of the (f s) interleaved spectrum
        self.register_buffer("freq_indices", index, persistent=False)
        self.register_buffer("num_bands_per_freq", member.sum(0).repeat_interleave(s), persistent=False)
        dims = [2 * int(c) * s for c in member.sum(1)]
        self.band_split = BandSplit(dim, dims)
        self.mask_estimators = nn.ModuleList(
            MaskEstimator(dim, dims, mask_estimator_depth + 1, mlp_expansion_factor) for _ in self.stems)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, time)`` -> ``(batch, stems, channels, time)``."""
        b, _, n = mixture.shape
        spec = self._spectrum(mixture)  # (b, f s, t)
        fs, t = spec.shape[-2:]
        picked = spec[:, self.freq_indices]  # (b, rows, t): each band's bins, shared bins repeated
        x = torch.view_as_real(picked).permute(0, 2, 1, 3).reshape(b, t, -1)
        x = self._axial(self.band_split(x))
        masks = self._masks(x, len(self.freq_indices))  # (b, stems, rows, t)
        summed = masks.new_zeros(b, len(self.stems), fs, t).index_add_(2, self.freq_indices, masks)
        averaged = summed / self.num_bands_per_freq.clamp(min=1).to(summed.real.dtype)[:, None]
        return self._waveform(spec.unsqueeze(1) * averaged, n)
