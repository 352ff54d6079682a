"""SEANet autoencoder (EnCodec's encoder and decoder, Défossez et al. 2022) with a continuous latent.

Encoder ``(batch, channels, time)`` -> ``(batch, dimension, frames)``, ``frames = ceil(time /
hop_length)``, ``hop_length = prod(ratios)``::

    conv(channels -> F, kernel_size)
    for r in reversed(ratios):   # F doubles at each stage
        n_residual_layers x ResBlock(F)   # ELU, conv(F -> F//compress, residual_kernel_size,
                                          # dilation dilation_base**j), ELU, conv(-> F, 1), + skip
        ELU, conv(F -> 2F, kernel 2r, stride r)
    LSTM(lstm layers, + skip)   # when lstm > 0
    ELU, conv(-> dimension, last_kernel_size)

The decoder mirrors it (``ratios`` in their order, transposed convs of kernel ``2r``, stride
``r``, then ``channels`` out, and an optional final activation), ``(batch, dimension, frames)``
-> ``(batch, channels, frames * hop_length)``.

The layers are those of the ``encodec`` package (0.1.1): the same arguments, the same padding
(each conv pads ``(kernel - 1) * dilation - (stride - 1)`` samples, split evenly with the extra
one on the left, or all on the left when ``causal``, plus what makes the last window whole,
on the right; ``reflect`` padding of inputs shorter than the pad first appends zeros; the
transposed convs trim the same amount, on the right when causal, with ``trim_right_ratio``),
and the same ``state_dict`` keys (``model.0.conv.conv.weight_g``, ``model.7.lstm.weight_ih_l0``,
...), so EnCodec's weights load here and back with ``strict=True`` and give its outputs
(``test/test_seanet.py``).

Weight norm (``norm="weight_norm"``) is :class:`WeightNorm`, not the deprecated
``torch.nn.utils.weight_norm``: a conv keeps ``weight_g`` (one gain per output channel, shape
``(out, 1, ...)``; ``(in, 1, ...)`` for a transposed conv, whose dim 0 is the input) and
``weight_v``, and uses ``weight = weight_v * weight_g / ||weight_v||``, the norm over all dims
but 0; at construction ``weight_v`` is the layer's default initial weight and ``weight_g`` its
norm. ``norm="none"``: plain convs (``weight``).

:class:`SEANetAutoencoder` (registered ``seanet``) is the encoder and decoder as one model:
``forward`` reconstructs its input at the same length (zero-padded on the right to a whole
number of hops inside, and cropped back).

Speed: on CPU (eager) the residual blocks' 1x1 convs run as batched matrix products
(:func:`banda.models.convtasnet.pointwise_conv`; with their backward about 2x faster than
oneDNN's 1x1 conv at these widths); elsewhere, and under ``torch.compile``, ``F.conv1d``.
"""
import math
from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .convtasnet import pointwise_conv
from .registry import MODELS

NORMS = ("weight_norm", "none")
PAD_MODES = ("reflect", "constant", "replicate")
MAX_CHANNELS = 32


# ---------------------------------------------------------------------- weight norm
class WeightNorm:
    """Mixin for a ``torch.nn`` conv class: replaces its ``weight`` parameter by ``weight_g``
    and ``weight_v`` (registered after ``bias``, the order of torch's old ``weight_norm``) and
    runs the conv with ``weight_v * weight_g / ||weight_v||`` (the L2 norm over all dims but 0)."""

    def _init_weight_norm(self) -> None:
        weight = self.weight.detach()
        del self.weight
        self.weight_g = nn.Parameter(_norm_except_dim0(weight))
        self.weight_v = nn.Parameter(weight.clone())

    def normed_weight(self) -> torch.Tensor:
        # torch's own fused kernel (what torch.nn.utils.weight_norm's hook calls): one pass over
        # the weight instead of a norm, a division and a product
        return torch._weight_norm(self.weight_v, self.weight_g, 0)


def _norm_except_dim0(v: torch.Tensor) -> torch.Tensor:
    return v.norm(2, dim=tuple(range(1, v.ndim)), keepdim=True)


class WNConv1d(WeightNorm, nn.Conv1d):
    """``nn.Conv1d`` with weight norm (``weight_g`` ``(out, 1, 1)``, ``weight_v``, ``bias``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normed_weight(), self.bias)


class WNConv2d(WeightNorm, nn.Conv2d):
    """``nn.Conv2d`` with weight norm (``weight_g`` ``(out, 1, 1, 1)``, ``weight_v``, ``bias``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normed_weight(), self.bias)


class WNConvTranspose1d(WeightNorm, nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` with weight norm over dim 0 (the input channels, as torch's)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self.normed_weight(), self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)


_CONVS = {"conv1d": (nn.Conv1d, WNConv1d), "conv2d": (nn.Conv2d, WNConv2d),
          "convtr1d": (nn.ConvTranspose1d, WNConvTranspose1d)}


def make_conv(kind: str, *args, norm: str = "none", **kwargs) -> nn.Module:
    """A ``conv1d``, ``conv2d`` or ``convtr1d`` layer, weight-normalised when ``norm ==
    "weight_norm"`` (``norm="none"``: the plain torch layer)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")
    return _CONVS[kind][norm == "weight_norm"](*args, **kwargs)


def wrapped(name: str, layer: nn.Module) -> nn.ModuleDict:
    """``layer`` one level down, as ``name`` (encodec's ``NormConv*`` wrapper level, kept so the
    keys read ``conv.conv.weight_g`` / ``convtr.convtr.weight_g``)."""
    return nn.ModuleDict({name: layer})


# ---------------------------------------------------------------------- padded convs
def pad1d(x: torch.Tensor, left: int, right: int, mode: str = "constant") -> torch.Tensor:
    """``F.pad`` on the last dim; ``reflect`` on an input not longer than the pad appends the
    zeros it lacks first (and drops them after), as encodec."""
    if mode != "reflect":
        return F.pad(x, (left, right), mode)
    extra = max(0, max(left, right) - x.shape[-1] + 1)
    if extra:
        x = F.pad(x, (0, extra))
    padded = F.pad(x, (left, right), mode)
    return padded[..., :padded.shape[-1] - extra]


def extra_padding(length: int, kernel_size: int, stride: int, padding_total: int) -> int:
    """Samples appended so that the last window is whole (the conv covers every input sample)."""
    n_frames = (length - kernel_size + padding_total) / stride + 1
    return (math.ceil(n_frames) - 1) * stride + kernel_size - padding_total - length


class PaddedConv1d(nn.Module):
    """encodec's ``SConv1d``: a conv that pads its own input, ``(batch, in, time)`` ->
    ``(batch, out, ceil(time / stride))``. The pad, ``(kernel - 1) * dilation - (stride - 1)``,
    goes all on the left when ``causal``, else half each side (the odd one on the left), plus
    :func:`extra_padding` on the right. The conv is ``self.conv.conv``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 causal: bool = False, norm: str = "weight_norm", pad_mode: str = "reflect"):
        super().__init__()
        self.conv = wrapped("conv", make_conv("conv1d", in_channels, out_channels, kernel_size, stride,
                                              dilation=dilation, norm=norm))
        self.causal, self.pad_mode = causal, pad_mode
        self.padding_total = (kernel_size - 1) * dilation - (stride - 1)
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv["conv"]
        if self.kernel_size == 1 and self.stride == 1:  # no padding: on CPU a batched matrix product
            weight = conv.normed_weight() if isinstance(conv, WeightNorm) else conv.weight
            return pointwise_conv(x, weight, conv.bias)
        total = self.padding_total
        extra = extra_padding(x.shape[-1], self.kernel_size, self.stride, total)
        left = total if self.causal else total - total // 2
        return conv(pad1d(x, left, total - left + extra, self.pad_mode))


class PaddedConvTranspose1d(nn.Module):
    """encodec's ``SConvTranspose1d``: ``(batch, in, frames)`` -> ``(batch, out, frames *
    stride)``; trims ``kernel - stride`` samples: ``ceil(trim * trim_right_ratio)`` on the right
    when ``causal`` (the rest on the left), else half each side (the odd one on the left). The
    conv is ``self.convtr.convtr``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 causal: bool = False, norm: str = "weight_norm", trim_right_ratio: float = 1.0):
        super().__init__()
        if not 0 <= trim_right_ratio <= 1 or (not causal and trim_right_ratio != 1):
            raise ValueError(f"trim_right_ratio must be in [0, 1], and 1 unless causal, not {trim_right_ratio!r}")
        self.convtr = wrapped("convtr", make_conv("convtr1d", in_channels, out_channels, kernel_size, stride, norm=norm))
        total = kernel_size - stride
        right = math.ceil(total * trim_right_ratio) if causal else total // 2
        self.trim = (total - right, right)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convtr["convtr"](x)
        left, right = self.trim
        return y[..., left:y.shape[-1] - right]


class LSTMBlock(nn.Module):
    """encodec's ``SLSTM``: a unidirectional LSTM (``self.lstm``) over the frames of
    ``(batch, dim, frames)``, added to its input."""

    def __init__(self, dim: int, num_layers: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(2, 0, 1)  # (frames, batch, dim)
        y, _ = self.lstm(x)
        return (y + x).permute(1, 2, 0)


class ResBlock(nn.Module):
    """SEANet residual block, ``(batch, dim, time)`` -> same: ``block`` = activation,
    conv(dim -> dim // compress, ``kernel_size``, ``dilation``), activation, conv(-> dim, 1),
    added to ``shortcut(x)`` (a 1x1 conv, or the identity with ``true_skip``)."""

    def __init__(self, dim: int, kernel_size: int = 3, dilation: int = 1, activation: str = "ELU",
                 activation_params: Optional[Dict[str, Any]] = None, norm: str = "weight_norm", causal: bool = False,
                 pad_mode: str = "reflect", compress: int = 2, true_skip: bool = True):
        super().__init__()
        hidden = dim // compress
        conv = dict(norm=norm, causal=causal, pad_mode=pad_mode)
        self.block = nn.Sequential(
            _activation(activation, activation_params), PaddedConv1d(dim, hidden, kernel_size, dilation=dilation, **conv),
            _activation(activation, activation_params), PaddedConv1d(hidden, dim, 1, **conv))
        self.shortcut = nn.Identity() if true_skip else PaddedConv1d(dim, dim, 1, **conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


def _activation(name: str, params: Optional[Dict[str, Any]]) -> nn.Module:
    return getattr(nn, name)(**(params or {}))  # ELU's default alpha is encodec's 1.0


# ---------------------------------------------------------------------- encoder / decoder
class SEANetEncoder(nn.Module):
    """SEANet encoder (encodec's arguments and layers; see the module doc):
    ``(batch, channels, time)`` -> ``(batch, dimension, ceil(time / hop_length))``.

    Args:
        channels: audio channels; dimension: latent channels; n_filters: width of the first stage
            (doubled at each downsampling).
        n_residual_layers: residual blocks per stage (dilations ``dilation_base ** j``).
        ratios: the decoder's upsampling ratios; the encoder downsamples by them in reverse order.
        activation, activation_params: a ``torch.nn`` activation by name (ELU, alpha 1).
        norm: ``weight_norm`` or ``none``. kernel_size / last_kernel_size: the first and last convs'.
        residual_kernel_size: the residual blocks' first conv. causal: left padding only.
        pad_mode: ``reflect``, ``constant`` (zeros) or ``replicate``.
        true_skip: identity skips in the residual blocks (else 1x1 convs).
        compress: the residual branch's width divisor. lstm: LSTM layers before the last conv (0: none).
    """

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32, n_residual_layers: int = 1,
                 ratios: Sequence[int] = (8, 5, 4, 2), activation: str = "ELU",
                 activation_params: Optional[Dict[str, Any]] = None, norm: str = "weight_norm",
                 kernel_size: int = 7, last_kernel_size: int = 7, residual_kernel_size: int = 3,
                 dilation_base: int = 2, causal: bool = False, pad_mode: str = "reflect", true_skip: bool = False,
                 compress: int = 2, lstm: int = 2):
        super().__init__()
        self.channels, self.dimension, self.n_filters = channels, dimension, n_filters
        self.ratios = list(reversed(ratios))
        self.hop_length = math.prod(self.ratios)
        conv = dict(norm=norm, causal=causal, pad_mode=pad_mode)
        act = (activation, activation_params)
        width = n_filters
        layers = [PaddedConv1d(channels, width, kernel_size, **conv)]
        for ratio in self.ratios:
            layers += [ResBlock(width, residual_kernel_size, dilation_base ** j, *act, compress=compress,
                                true_skip=true_skip, **conv) for j in range(n_residual_layers)]
            layers += [_activation(*act), PaddedConv1d(width, 2 * width, 2 * ratio, stride=ratio, **conv)]
            width *= 2
        if lstm:
            layers.append(LSTMBlock(width, lstm))
        layers += [_activation(*act), PaddedConv1d(width, dimension, last_kernel_size, **conv)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SEANetDecoder(nn.Module):
    """SEANet decoder (encodec's arguments and layers): ``(batch, dimension, frames)`` ->
    ``(batch, channels, frames * hop_length)``.

    Args: as :class:`SEANetEncoder`, with ``ratios`` the upsampling ratios in order, and
        final_activation, final_activation_params: an optional ``torch.nn`` activation at the
            end (e.g. ``Tanh``).
        trim_right_ratio: the share of each transposed conv's trim taken on the right when
            ``causal`` (1: all of it).
    """

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32, n_residual_layers: int = 1,
                 ratios: Sequence[int] = (8, 5, 4, 2), activation: str = "ELU",
                 activation_params: Optional[Dict[str, Any]] = None, final_activation: Optional[str] = None,
                 final_activation_params: Optional[Dict[str, Any]] = None, norm: str = "weight_norm",
                 kernel_size: int = 7, last_kernel_size: int = 7, residual_kernel_size: int = 3,
                 dilation_base: int = 2, causal: bool = False, pad_mode: str = "reflect", true_skip: bool = False,
                 compress: int = 2, lstm: int = 2, trim_right_ratio: float = 1.0):
        super().__init__()
        self.channels, self.dimension, self.n_filters = channels, dimension, n_filters
        self.ratios = list(ratios)
        self.hop_length = math.prod(self.ratios)
        conv = dict(norm=norm, causal=causal, pad_mode=pad_mode)
        act = (activation, activation_params)
        width = n_filters * 2 ** len(self.ratios)
        layers = [PaddedConv1d(dimension, width, kernel_size, **conv)]
        if lstm:
            layers.append(LSTMBlock(width, lstm))
        for ratio in self.ratios:
            layers += [_activation(*act), PaddedConvTranspose1d(width, width // 2, 2 * ratio, stride=ratio, norm=norm,
                                                                causal=causal, trim_right_ratio=trim_right_ratio)]
            width //= 2
            layers += [ResBlock(width, residual_kernel_size, dilation_base ** j, *act, compress=compress,
                                true_skip=true_skip, **conv) for j in range(n_residual_layers)]
        layers += [_activation(*act), PaddedConv1d(n_filters, channels, last_kernel_size, **conv)]
        if final_activation is not None:
            layers.append(_activation(final_activation, final_activation_params or {}))
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)


# ---------------------------------------------------------------------- the registered model
def _int(name: str, value, minimum: int, maximum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        want = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"model.params.{name} must be an integer {want}, not {value!r}")
    return value


@MODELS.register("seanet")
class SEANetAutoencoder(nn.Module):
    """SEANet encoder + decoder (EnCodec's, without the quantizer): a continuous latent of
    ``dimension`` channels at ``frame_rate = sample_rate / prod(ratios)`` frames per second
    (75 Hz for the defaults at 24 kHz).

    ``forward``: ``(batch, in_channels, time)`` -> the reconstruction, ``(batch, in_channels,
    time)`` (any ``time >= 1``; zero-padded on the right to a whole number of hops inside, and
    cropped back). ``encode``: ``(batch, in_channels, time)`` -> ``(batch, dimension,
    ceil(time / hop_length))`` (the same zero padding); ``decode(z, length)``: ->
    ``(batch, in_channels, length or frames * hop_length)``.

    Args:
        in_channels: audio channels, 1 to 32 (the config's ``channels``).
        sample_rate: stored (it sets ``frame_rate``); the network itself is rate-agnostic.
        dimension: latent channels. n_filters: width of the first stage, doubled at each of the
            ``len(ratios)`` stages. ratios: upsampling ratios (the encoder uses them reversed);
            ``hop_length = prod(ratios)``.
        n_residual_layers: residual blocks per stage. lstm: LSTM layers at the bottleneck (0: none).
        causal: causal convs (left padding, right trims). norm: ``weight_norm`` or ``none``.
        true_skip: identity skips in the residual blocks (else 1x1 convs). compress: the residual
            branches' width divisor (``n_filters`` must be at least it).
        kernel_size, last_kernel_size, residual_kernel_size, dilation_base: as encodec's.
        pad_mode: ``reflect``, ``constant`` or ``replicate``.
        trim_right_ratio: causal decoder's right share of each transposed conv's trim.
    """

    def __init__(
        self,
        in_channels: int = 1,
        sample_rate: int = 24000,
        dimension: int = 128,
        n_filters: int = 32,
        ratios: Sequence[int] = (8, 5, 4, 2),
        n_residual_layers: int = 1,
        lstm: int = 2,
        causal: bool = False,
        norm: str = "weight_norm",
        true_skip: bool = False,
        compress: int = 2,
        kernel_size: int = 7,
        last_kernel_size: int = 7,
        residual_kernel_size: int = 3,
        dilation_base: int = 2,
        pad_mode: str = "reflect",
        trim_right_ratio: float = 1.0,
    ):
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or not 1 <= in_channels <= MAX_CHANNELS:
            raise ConfigError(f"model.params.in_channels (the config's channels) must be an integer in "
                              f"[1, {MAX_CHANNELS}], not {in_channels!r}")
        _int("sample_rate", sample_rate, 1)
        for name, value, minimum in (("dimension", dimension, 1), ("n_filters", n_filters, 1),
                                     ("n_residual_layers", n_residual_layers, 0), ("lstm", lstm, 0),
                                     ("compress", compress, 1), ("kernel_size", kernel_size, 1),
                                     ("last_kernel_size", last_kernel_size, 1),
                                     ("residual_kernel_size", residual_kernel_size, 1),
                                     ("dilation_base", dilation_base, 1)):
            _int(name, value, minimum)
        if (not isinstance(ratios, (list, tuple)) or not ratios
                or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in ratios)):
            raise ConfigError(f"model.params.ratios must be a non-empty list of integers >= 1, not {ratios!r}")
        if n_filters < compress:
            raise ConfigError(f"model.params.n_filters ({n_filters}) must be at least model.params.compress ({compress}): "
                              "the residual branches are n_filters // compress wide")
        for name, value in (("causal", causal), ("true_skip", true_skip)):
            if not isinstance(value, bool):
                raise ConfigError(f"model.params.{name} must be true or false, not {value!r}")
        for name, value, allowed in (("norm", norm, NORMS), ("pad_mode", pad_mode, PAD_MODES)):
            if value not in allowed:
                raise ConfigError(f"model.params.{name} must be one of {', '.join(allowed)}, not {value!r}")
        if (isinstance(trim_right_ratio, bool) or not isinstance(trim_right_ratio, (int, float))
                or not 0 <= trim_right_ratio <= 1 or (not causal and trim_right_ratio != 1)):
            raise ConfigError(f"model.params.trim_right_ratio must be in [0, 1] (and 1 unless causal), not {trim_right_ratio!r}")
        self.in_channels, self.sample_rate = in_channels, sample_rate
        self.ratios = [int(r) for r in ratios]
        self.dimension = dimension
        common = dict(dimension=dimension, n_filters=n_filters, n_residual_layers=n_residual_layers, ratios=self.ratios,
                      norm=norm, kernel_size=kernel_size, last_kernel_size=last_kernel_size,
                      residual_kernel_size=residual_kernel_size, dilation_base=dilation_base, causal=causal,
                      pad_mode=pad_mode, true_skip=true_skip, compress=compress, lstm=lstm)
        self.encoder = SEANetEncoder(in_channels, **common)
        self.decoder = SEANetDecoder(in_channels, trim_right_ratio=float(trim_right_ratio), **common)

    @property
    def hop_length(self) -> int:
        """Samples per latent frame, ``prod(ratios)``."""
        return math.prod(self.ratios)

    @property
    def frame_rate(self) -> float:
        """Latent frames per second, ``sample_rate / hop_length``."""
        return self.sample_rate / self.hop_length

    @property
    def latent_size(self) -> int:
        """Channels of the latent (``dimension``)."""
        return self.dimension

    def describe(self) -> Dict[str, Any]:
        return {"frame_rate": self.frame_rate, "latent_size": self.latent_size, "hop_length": self.hop_length,
                "channels": self.in_channels, "sample_rate": self.sample_rate,
                "num_parameters": sum(p.numel() for p in self.parameters())}

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.in_channels or x.shape[-1] < 1:
            raise ValueError(f"seanet expects a (batch, {self.in_channels}, time) waveform, got shape {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, time)`` -> ``(batch, dimension, ceil(time / hop_length))``."""
        self._check(x)
        pad = -x.shape[-1] % self.hop_length
        return self.encoder(F.pad(x, (0, pad)) if pad else x)

    def decode(self, z: torch.Tensor, length: Optional[int] = None) -> torch.Tensor:
        """``(batch, dimension, frames)`` -> ``(batch, in_channels, length)`` (``length``
        defaults to ``frames * hop_length``; a shorter one crops the end)."""
        y = self.decoder(z)
        return y if length is None else y[..., :length]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, time)`` -> ``(batch, in_channels, time)``."""
        return self.decode(self.encode(x), x.shape[-1])

