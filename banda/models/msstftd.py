"""Multi-scale STFT discriminator (EnCodec's MS-STFT; the ``encodec`` package 0.1.1's
``MultiScaleSTFTDiscriminator``, whose layers and state_dict keys it shares).

One sub-discriminator per scale (FFT sizes 1024, 2048 and 512 by default). Each takes the
complex STFT of its input (hann window of ``win_length``, hop ``hop_length``, no centring,
divided by the window's L2 norm ``sqrt(sum(window^2))`` when ``normalized``: torchaudio's
``Spectrogram(normalized=True, power=None, center=False)``), its real and imaginary parts as
``2C`` planes (the ``C`` real parts, then the ``C`` imaginary ones), laid out ``(batch, 2C,
frames, freq)``, and runs::

    conv(2C -> filters, 3x9)                       # encodec leaves this one without weight norm
    3 x conv(-> filters, 3x9, stride (1, 2), dilation (d, 1)), d = 1, 2, 4
    conv(-> filters, 3x3)
    each followed by LeakyReLU(0.2): the five feature maps
    conv_post(-> out_channels, 3x3): the logits

(widths ``filters``, then ``min(filters * filters_scale ** i, max_filters)`` for ``i = 1, 2, ...``;
"same" padding in both dims; encodec's second conv expects ``min(filters * filters_scale,
max_filters)`` input channels, which fails unless that is ``filters``: here it is the first
conv's width, and the two agree wherever encodec runs).
Keys: ``discriminators.<scale>.convs.<i>.conv.weight_g`` / ``weight_v`` / ``bias`` (``weight``
for ``convs.0`` and with ``norm="none"``), ``discriminators.<scale>.conv_post.conv.*`` and
the window buffer ``discriminators.<scale>.spec_transform.window``.

``per_channel=True`` discriminates each input channel on its own: the sub-discriminators are
built for one channel, a ``(batch, C, time)`` input is folded to ``(batch * C, 1, time)``, and
every logit and feature map has ``batch * C`` rows (row ``b * C + c`` is channel ``c`` of item
``b``); the output for channel ``c`` depends on channel ``c`` alone, and one network (the same
weights) judges every channel.
"""
from typing import List, Sequence, Tuple

import torch
from torch import nn

from ..errors import ConfigError
from .registry import MODELS
from .seanet import NORMS, _int, make_conv, wrapped

Output = Tuple[List[torch.Tensor], List[List[torch.Tensor]]]


def _same_padding(kernel: Sequence[int], dilation: Sequence[int] = (1, 1)) -> Tuple[int, int]:
    return ((kernel[0] - 1) * dilation[0]) // 2, ((kernel[1] - 1) * dilation[1]) // 2


class Spectrogram(nn.Module):
    """Complex STFT, ``(..., time)`` -> ``(..., n_fft // 2 + 1, 1 + (time - n_fft) // hop_length)``
    (no centring; periodic hann window of ``win_length``, zero-padded to ``n_fft`` in the middle),
    divided by ``sqrt(sum(window^2))`` when ``normalized`` (torchaudio's ``normalized=True``;
    not ``torch.stft``'s, which divides by ``sqrt(n_fft)``). ``time >= n_fft``."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, normalized: bool = True):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length, self.normalized = n_fft, hop_length, win_length, normalized
        self.register_buffer("window", torch.hann_window(win_length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        window = self.window.to(x.dtype)
        spec = torch.stft(x.reshape(-1, shape[-1]), self.n_fft, self.hop_length, self.win_length, window,
                          center=False, return_complex=True)
        if self.normalized:
            spec = spec / window.pow(2).sum().sqrt()
        return spec.reshape(shape[:-1] + spec.shape[-2:])


class DiscriminatorSTFT(nn.Module):
    """One scale (see the module doc): ``(batch, in_channels, time)`` -> ``(logits (batch,
    out_channels, frames, freq'), [5 feature maps (batch, width, frames, freq_i)])`` with
    ``frames = 1 + (time - n_fft) // hop_length`` and the frequencies halved (rounded up) by
    each of the strided convs."""

    def __init__(self, filters: int, in_channels: int = 1, out_channels: int = 1, n_fft: int = 1024,
                 hop_length: int = 256, win_length: int = 1024, max_filters: int = 1024, filters_scale: int = 1,
                 kernel_size: Sequence[int] = (3, 9), dilations: Sequence[int] = (1, 2, 4),
                 stride: Sequence[int] = (1, 2), normalized: bool = True, norm: str = "weight_norm",
                 negative_slope: float = 0.2):
        super().__init__()
        k, sq, stride = tuple(kernel_size), (kernel_size[0], kernel_size[0]), tuple(stride)
        self.n_fft = n_fft
        self.activation = nn.LeakyReLU(negative_slope)
        self.spec_transform = Spectrogram(n_fft, hop_length, win_length, normalized)
        convs = [make_conv("conv2d", 2 * in_channels, filters, k, padding=_same_padding(k), norm="none")]
        width = filters  # encodec takes min(filters_scale * filters, max_filters): wrong unless filters_scale is 1
        for i, d in enumerate(dilations):
            out = min(filters_scale ** (i + 1) * filters, max_filters)
            convs.append(make_conv("conv2d", width, out, k, stride=stride, dilation=(d, 1),
                                   padding=_same_padding(k, (d, 1)), norm=norm))
            width = out
        out = min(filters_scale ** (len(dilations) + 1) * filters, max_filters)
        convs.append(make_conv("conv2d", width, out, sq, padding=_same_padding(sq), norm=norm))
        self.convs = nn.ModuleList(wrapped("conv", c) for c in convs)
        self.conv_post = wrapped("conv", make_conv("conv2d", out, out_channels, sq, padding=_same_padding(sq), norm=norm))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        z = self.spec_transform(x)                                # (batch, C, freq, frames) complex
        z = torch.cat([z.real, z.imag], dim=1).transpose(2, 3)   # (batch, 2C, frames, freq)
        fmap = []
        for layer in self.convs:
            z = self.activation(layer["conv"](z))
            fmap.append(z)
        return self.conv_post["conv"](z), fmap


def _ints(name: str, value, minimum: int, length=None) -> List[int]:
    if (not isinstance(value, (list, tuple)) or not value or (length is not None and len(value) != length)
            or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in value)):
        size = f"{length} " if length is not None else "a non-empty list of "
        raise ConfigError(f"model.params.{name} must be {size}integers >= {minimum}, not {value!r}")
    return [int(v) for v in value]


@MODELS.register("msstftd")
class MultiScaleSTFTDiscriminator(nn.Module):
    """MS-STFT discriminator: ``(batch, in_channels, time)`` -> ``(logits, feature_maps)``:
    per scale ``s``, ``logits[s]`` ``(rows, out_channels, frames_s, freq_s')`` and
    ``feature_maps[s]``, a list of five ``(rows, width, frames_s, freq_s_i)``, with
    ``frames_s = 1 + (time - n_ffts[s]) // hop_lengths[s]`` (``time >= max(n_ffts)``) and
    ``rows = batch``, or ``batch * in_channels`` with ``per_channel`` (row ``b * in_channels +
    c`` is channel ``c`` of item ``b``; see the module doc).

    Args:
        in_channels: audio channels (the config's ``channels``); sample_rate: stored (the
            network is rate-agnostic).
        filters: conv width (32 in EnCodec); out_channels: logit planes.
        n_ffts, hop_lengths, win_lengths: one per scale (``win_length <= n_fft``).
        per_channel: discriminate each channel on its own with one shared network.
        max_filters, filters_scale, kernel_size (time, freq), dilations (in time), stride,
            normalized, norm (``weight_norm`` or ``none``), negative_slope (LeakyReLU): as
            EnCodec's ``DiscriminatorSTFT``.
    """

    def __init__(self, in_channels: int = 1, sample_rate: int = 24000, filters: int = 32, out_channels: int = 1,
                 n_ffts: Sequence[int] = (1024, 2048, 512), hop_lengths: Sequence[int] = (256, 512, 128),
                 win_lengths: Sequence[int] = (1024, 2048, 512), per_channel: bool = False, max_filters: int = 1024,
                 filters_scale: int = 1, kernel_size: Sequence[int] = (3, 9), dilations: Sequence[int] = (1, 2, 4),
                 stride: Sequence[int] = (1, 2), normalized: bool = True, norm: str = "weight_norm",
                 negative_slope: float = 0.2):
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ConfigError(f"model.params.in_channels (the config's channels) must be an integer >= 1, not {in_channels!r}")
        for name, value in (("sample_rate", sample_rate), ("filters", filters), ("out_channels", out_channels),
                            ("max_filters", max_filters), ("filters_scale", filters_scale)):
            _int(name, value, 1)
        n_ffts = _ints("n_ffts", n_ffts, 2)
        hop_lengths = _ints("hop_lengths", hop_lengths, 1, len(n_ffts))
        win_lengths = _ints("win_lengths", win_lengths, 1, len(n_ffts))
        if any(w > n for w, n in zip(win_lengths, n_ffts)):
            raise ConfigError(f"model.params.win_lengths must not exceed n_ffts, not {win_lengths} for {n_ffts}")
        kernel_size, stride = _ints("kernel_size", kernel_size, 1, 2), _ints("stride", stride, 1, 2)
        dilations = _ints("dilations", dilations, 1)
        for name, value in (("per_channel", per_channel), ("normalized", normalized)):
            if not isinstance(value, bool):
                raise ConfigError(f"model.params.{name} must be true or false, not {value!r}")
        if norm not in NORMS:
            raise ConfigError(f"model.params.norm must be one of {', '.join(NORMS)}, not {norm!r}")
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
            raise ConfigError(f"model.params.negative_slope must be a number, not {negative_slope!r}")
        self.in_channels, self.sample_rate, self.per_channel = in_channels, sample_rate, per_channel
        self.n_ffts = n_ffts
        sub_channels = 1 if per_channel else in_channels
        self.discriminators = nn.ModuleList(
            DiscriminatorSTFT(filters, sub_channels, out_channels, n, h, w, max_filters, filters_scale, kernel_size,
                              dilations, stride, normalized, norm, float(negative_slope))
            for n, h, w in zip(n_ffts, hop_lengths, win_lengths))
        self.num_discriminators = len(self.discriminators)

    def forward(self, x: torch.Tensor) -> Output:
        """``(batch, in_channels, time)`` -> ``(logits, feature_maps)`` (see the class doc)."""
        if x.ndim != 3 or x.shape[1] != self.in_channels or x.shape[-1] < max(self.n_ffts):
            raise ValueError(f"msstftd expects (batch, {self.in_channels}, time >= {max(self.n_ffts)}) audio, "
                             f"got shape {tuple(x.shape)}")
        if self.per_channel:
            x = x.reshape(-1, 1, x.shape[-1])
        logits, fmaps = [], []
        for disc in self.discriminators:
            logit, fmap = disc(x)
            logits.append(logit)
            fmaps.append(fmap)
        return logits, fmaps
