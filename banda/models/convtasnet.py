"""Conv-TasNet (Luo & Mesgarani, 2019): a learned filterbank and a masking TCN on the waveform.

mixture ``(batch, 1, time)`` -> zero-padded on the right to a whole number of strides ->
encoder ``Conv1d(1, N, L, stride L//2, padding L//2, no bias)`` (+ ReLU) -> ``w`` ``(batch, N,
frames)`` -> mask network -> ``C`` masks ``(batch, C, N, frames)`` -> ``mask * w`` -> decoder
``ConvTranspose1d(N, 1, L, stride L//2, padding L//2, no bias)`` per source -> cropped back to
the input length -> ``(batch, C, 1, time)``, ``C = len(stems)``.

Mask network: input norm over ``N`` -> 1x1 bottleneck ``N -> B`` -> ``R`` repeats of ``X``
temporal blocks (dilation ``2**x`` in block ``x`` of a repeat) -> 1x1 mask conv ``B -> C*N`` ->
mask activation. A temporal block is ``1x1 conv B->H, PReLU, norm, depthwise conv H (kernel P,
dilation 2**x), PReLU, norm, 1x1 conv H->B``, added to its input (residual path).

Two layouts:

- ``skip=False`` (default): SpeechBrain's ``speechbrain.lobes.models.conv_tasnet`` with
  ``dual_path.Encoder``/``Decoder`` as in its WSJ0-Mix recipe: encoder ReLU, channel-wise input
  norm, no conv biases, the residual path only; the mask conv reads the last block's output.
  The ``default`` preset then has 8,643,136 parameters for one source (8,708,672 for two).
- ``skip=True``: the original (naplab) layout that ``torchaudio.models.ConvTasNet`` implements:
  each block also has a 1x1 skip conv ``H -> B``; the skips are summed, passed through a PReLU
  and into the mask conv; the last block has no residual conv (its residual would be unused).
  With ``bias=True, enc_act="linear", input_norm="gLN"`` it is torchaudio's network,
  parameter for parameter: :func:`from_torchaudio` converts one (e.g. a pretrained
  ``torchaudio.pipelines.CONVTASNET_BASE_LIBRI2MIX`` model) into this class. The residual and
  skip convs of a block are one conv ``H -> 2B`` here (one matrix product instead of two);
  :func:`torchaudio_state_dict` maps the weights.

Normalisations (``norm`` in the blocks, ``input_norm`` before the bottleneck): ``gLN`` over
(channels, time) per item (GroupNorm with one group) and ``cLN`` over channels per frame, with
per-channel affine parameters. Both compute in float32 whatever the input's dtype (so neither
the statistics nor ``eps`` = 1e-8 underflow under fp16/bf16 autocast) and return the input's
dtype. ``causal=True`` left-pads the depthwise convs and requires ``cLN`` norms (a global norm
looks at the future); the encoder/decoder framing still spans ``L`` samples.

Speed: on CPU (eager) the 1x1 convs run as batched matrix products (:func:`pointwise_conv`,
``baddbmm``), and the depthwise convs and the PReLUs as two small autograd functions
(:class:`_DepthwiseConv`, :class:`_PReLU`) instead of ``F.conv1d``/``F.prelu``, whose CPU
kernels are slow for 1x1 and dilated depthwise convs and for PReLU's backward; their backward
passes keep their temporaries small (blocks of :data:`_CHUNK` elements). The values are the
same to float rounding (``CPU_FAST_PATHS = False`` turns them off). CUDA and ``torch.compile``
use the plain operators. See ``test/bench/bench_convtasnet.py``.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .registry import MODELS

# Architecture presets: N encoder filters, L kernel (stride L//2), B bottleneck, H block
# channels, P depthwise kernel, X blocks per repeat, R repeats. Parameter counts (skip=False,
# bias=False, one source): small 1,114,400; default 8,643,136; large 34,325,568.
PRESETS: Dict[str, Dict[str, int]] = {
    "small": dict(N=128, L=16, B=128, H=256, P=3, X=8, R=2),
    "default": dict(N=256, L=16, B=256, H=512, P=3, X=8, R=4),
    "large": dict(N=512, L=16, B=512, H=1024, P=3, X=8, R=4),
}
ARCH_KEYS = ("N", "L", "B", "H", "P", "X", "R")
NORMS = ("gLN", "cLN")
MASK_ACTS = ("relu", "sigmoid")
ENC_ACTS = ("relu", "linear")
EPS = 1e-8


class GlobalLayerNorm(nn.Module):
    """gLN: ``(batch, channels, time)`` normalised over (channels, time) per item, then a
    per-channel scale and shift (``torch.nn.GroupNorm(1, channels)``). Computed in float32
    (the input is upcast, ``eps`` added in float32); returns the input's dtype."""

    def __init__(self, channels: int, eps: float = EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), 1, self.weight.float(), self.bias.float(), self.eps).to(x.dtype)


class ChannelLayerNorm(nn.Module):
    """cLN: ``(batch, channels, time)`` normalised over channels per frame, then a per-channel
    scale and shift. Computed in float32; returns the input's dtype."""

    def __init__(self, channels: int, eps: float = EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.float().transpose(1, 2), (x.shape[1],), self.weight.float(), self.bias.float(), self.eps)
        return y.transpose(1, 2).to(x.dtype)


def make_norm(kind: str, channels: int) -> nn.Module:
    return GlobalLayerNorm(channels) if kind == "gLN" else ChannelLayerNorm(channels)


# ---------------------------------------------------------------------- CPU kernels
# On CPU (eager), PyTorch's dilated depthwise Conv1d and PReLU's backward are slow (the
# depthwise conv runs 2-3x slower at dilation > 1 than at 1; PReLU's backward takes ~5x its
# forward). These two autograd functions compute the same values with a few vectorised
# passes each. CUDA, and anything torch.compile traces, uses the plain operators.
CPU_FAST_PATHS = True


def _fast(x: torch.Tensor) -> bool:
    return CPU_FAST_PATHS and x.device.type == "cpu" and not torch.compiler.is_compiling()


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a convolution would compute ``x`` in (autocast's, when it is on)."""
    if x.dtype.is_floating_point and torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class _DepthwiseConv(torch.autograd.Function):
    """``y[:, c, t] = bias[c] + sum_k w[c, 0, k] * x[:, c, t + k * dilation - left]`` (zero outside),
    the same length as ``x``: a depthwise Conv1d with ``left`` zeros before and the rest after."""

    @staticmethod
    def forward(ctx, x, weight, bias, dilation: int, left: int):
        taps = weight.to(x.dtype).squeeze(1).unsqueeze(-1)  # (C, P, 1)
        n = x.shape[-1]
        offsets = [k * dilation - left for k in range(weight.shape[-1])]  # y[t] += w_k x[t + o_k]
        centre = offsets.index(0) if 0 in offsets else None
        if centre is None:
            y = x.new_zeros(x.shape) if bias is None else bias.to(x.dtype).unsqueeze(-1).expand(x.shape).clone()
        elif bias is None:
            y = torch.mul(x, taps[:, centre])
        else:
            y = torch.addcmul(bias.to(x.dtype).unsqueeze(-1), x, taps[:, centre])
        for k, o in enumerate(offsets):
            if k == centre or abs(o) >= n:
                continue
            if o > 0:
                y[..., : n - o].addcmul_(x[..., o:], taps[:, k])
            else:
                y[..., -o:].addcmul_(x[..., : n + o], taps[:, k])
        ctx.save_for_backward(x, weight)
        ctx.dilation, ctx.left, ctx.has_bias = dilation, left, bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        n, acc = x.shape[-1], torch.float32
        taps = weight.to(grad.dtype).squeeze(1).unsqueeze(-1)
        offsets = [k * ctx.dilation - ctx.left for k in range(weight.shape[-1])]
        centre = offsets.index(0) if 0 in offsets else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.zeros_like(x) if centre is None else torch.mul(grad, taps[:, centre])
        grad_w = torch.zeros(weight.shape[0], weight.shape[-1], dtype=acc, device=weight.device)
        # the products of each tap in blocks of time (one small buffer, reused: no temporary of the input's size)
        step = max(1, _CHUNK // max(1, x.shape[0] * x.shape[1]))
        buf = torch.empty(*grad.shape[:-1], min(step, n), dtype=torch.promote_types(grad.dtype, x.dtype),
                          device=grad.device)
        for k, o in enumerate(offsets):
            if abs(o) >= n:
                continue
            xs, gs = (x[..., o:], grad[..., : n - o]) if o >= 0 else (x[..., : n + o], grad[..., -o:])
            if grad_x is not None and k != centre:
                (grad_x[..., o:] if o >= 0 else grad_x[..., : n + o]).addcmul_(gs, taps[:, k])
            for t in range(0, gs.shape[-1], step):
                m = min(step, gs.shape[-1] - t)
                prod = torch.mul(gs[..., t: t + m], xs[..., t: t + m], out=buf[..., :m])
                grad_w[:, k] += prod.sum((0, 2), dtype=acc)
        grad_b = grad.sum((0, 2), dtype=acc).to(weight.dtype) if ctx.has_bias else None
        return grad_x, grad_w.view_as(weight).to(weight.dtype), grad_b, None, None


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], dilation: int,
                   left: int) -> torch.Tensor:
    """Depthwise conv of ``x`` ``(batch, C, T)`` with ``weight`` ``(C, 1, P)``, output length ``T``:
    ``left`` zeros padded before, ``(P - 1) * dilation - left`` after."""
    if _fast(x):
        dtype = _compute_dtype(x)
        return _DepthwiseConv.apply(x.to(dtype), weight, bias, dilation, left)
    right = (weight.shape[-1] - 1) * dilation - left
    if left == right:
        return F.conv1d(x, weight, bias, padding=left, dilation=dilation, groups=x.shape[1])
    return F.conv1d(F.pad(x, (left, right)), weight, bias, dilation=dilation, groups=x.shape[1])


def pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """1x1 conv of ``x`` ``(batch, C_in, T)`` with ``weight`` ``(C_out, C_in, 1)`` -> ``(batch, C_out, T)``.
    On CPU one batched matrix product (``baddbmm``: with its backward, 1.3-1.6x faster than
    oneDNN's 1x1 convolution at Conv-TasNet's sizes); elsewhere ``F.conv1d``."""
    if not _fast(x):
        return F.conv1d(x, weight, bias)
    w = weight.squeeze(-1).expand(x.shape[0], -1, -1)
    if bias is None:
        return torch.bmm(w, x)
    return torch.baddbmm(bias.unsqueeze(-1), w, x)


# blocks of this many elements bound the temporaries of the backward passes below: large
# temporaries cost page faults on every allocation (glibc maps blocks > 32 MiB afresh)
_CHUNK = 1 << 20


class _PReLU(torch.autograd.Function):
    """PReLU with one slope: the forward is ``F.prelu``; the backward one fused pass for the
    input's gradient and a dot product for the slope's (the slope is read as a Python number,
    fine on CPU)."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return F.prelu(x, weight.to(x.dtype))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = torch.ops.aten.leaky_relu_backward(grad, x, float(weight), False) if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            g, v = grad.reshape(-1), x.reshape(-1)
            grad_w = sum(torch.dot(gc.float(), vc.clamp(max=0).float())
                         for gc, vc in zip(g.split(_CHUNK), v.split(_CHUNK))).reshape(weight.shape)
        return grad_x, grad_w.to(weight.dtype) if grad_w is not None else None


class PReLU(nn.PReLU):
    """``torch.nn.PReLU`` (one slope, same parameter), with :class:`_PReLU` on CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _fast(x) and self.weight.numel() == 1:
            return _PReLU.apply(x.to(_compute_dtype(x)), self.weight)
        return F.prelu(x, self.weight)


class TemporalBlock(nn.Module):
    """``(batch, B, frames)`` -> ``(residual or None, skip or None)``, each ``(batch, B, frames)``.

    ``conv1`` 1x1 ``B -> H``, ``act1`` PReLU, ``norm1``, ``dconv`` depthwise (kernel ``P``,
    ``dilation``; "same" padding, or left padding when causal), ``act2`` PReLU, ``norm2``,
    ``out`` 1x1 ``H -> B`` per output (residual first, then skip, in one conv).
    """

    def __init__(self, B: int, H: int, P: int, dilation: int, norm: str, causal: bool, bias: bool,
                 residual: bool = True, skip: bool = False):
        super().__init__()
        self.residual, self.skip, self.B = residual, skip, B
        self.left = (P - 1) * dilation if causal else (P - 1) * dilation // 2
        self.conv1 = nn.Conv1d(B, H, 1, bias=bias)
        self.act1 = PReLU()
        self.norm1 = make_norm(norm, H)
        self.dconv = nn.Conv1d(H, H, P, dilation=dilation, groups=H, bias=bias)
        self.act2 = PReLU()
        self.norm2 = make_norm(norm, H)
        self.out = nn.Conv1d(H, B * (int(residual) + int(skip)), 1, bias=bias)

    def forward(self, x: torch.Tensor) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        y = self.norm1(self.act1(pointwise_conv(x, self.conv1.weight, self.conv1.bias)))
        y = depthwise_conv(y, self.dconv.weight, self.dconv.bias, self.dconv.dilation[0], self.left)
        y = pointwise_conv(self.norm2(self.act2(y)), self.out.weight, self.out.bias)
        if self.residual and self.skip:
            res, skip = y.split(self.B, dim=1)  # (split's backward is one cat; slices' would fill zeros)
            return res, skip
        return (y, None) if self.residual else (None, y)


class MaskNet(nn.Module):
    """``(batch, N, frames)`` encoder output -> ``(batch, C, N, frames)`` masks."""

    def __init__(self, N: int, B: int, H: int, P: int, X: int, R: int, C: int, norm: str, input_norm: str,
                 causal: bool, mask_act: str, skip: bool, bias: bool):
        super().__init__()
        self.C, self.N, self.skip = C, N, skip
        self.input_norm = make_norm(input_norm, N)
        self.bottleneck = nn.Conv1d(N, B, 1, bias=bias)
        n = X * R
        self.blocks = nn.ModuleList(
            TemporalBlock(B, H, P, 2 ** (i % X), norm, causal, bias, residual=not (skip and i == n - 1), skip=skip)
            for i in range(n))
        self.out_act = PReLU() if skip else None
        self.mask_conv = nn.Conv1d(B, C * N, 1, bias=bias)
        self.mask_act = mask_act

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        y = pointwise_conv(self.input_norm(w), self.bottleneck.weight, self.bottleneck.bias)
        total: Optional[torch.Tensor] = None
        owned = False  # whether ``total`` is a tensor of its own (not a block's output): then add in place
        for block in self.blocks:
            res, skip = block(y)
            if skip is not None:
                if total is None:
                    total = skip
                elif owned:
                    total = total.add_(skip)
                else:
                    total, owned = total + skip, True
            if res is not None:
                y = y + res
        if self.out_act is not None and total is not None:
            y = self.out_act(total)
        score = pointwise_conv(y, self.mask_conv.weight, self.mask_conv.bias)
        mask = torch.sigmoid(score) if self.mask_act == "sigmoid" else F.relu(score)
        return mask.view(w.shape[0], self.C, self.N, w.shape[-1])


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"model.params.{name} must be an integer >= {minimum}, not {value!r}")
    return value


@MODELS.register("convtasnet")
class ConvTasNet(nn.Module):
    """Conv-TasNet for single-channel speech enhancement (one stem) or separation (several).

    ``forward``: ``(batch, 1, time)`` float waveform -> ``(batch, len(stems), 1, time)``, the
    same length as the input (any length >= 1; padded inside to a whole number of strides and
    cropped back).

    Args:
        stems: output names, one source (mask) each; default ``["speech"]``.
        in_channels: must be 1 (Conv-TasNet is a single-channel model); the config's ``channels``.
        sample_rate: stored (for the separator); the model itself is rate-agnostic.
        preset: ``small`` (1.1 M parameters), ``default`` (8.64 M) or ``large`` (34.3 M) fill
            ``N, L, B, H, P, X, R``; ``null`` is ``default``. Any of those given explicitly
            overrides the preset's value.
        N: encoder filters (256); L: encoder/decoder kernel in samples (16; stride ``L // 2``);
            B: bottleneck channels (256); H: block channels (512); P: depthwise kernel (3, odd
            unless causal); X: blocks per repeat (8, dilations 1..2**(X-1)); R: repeats (4).
        norm: block norm, ``gLN`` (global) or ``cLN`` (channel-wise, per frame).
        input_norm: the norm before the bottleneck (``cLN`` as SpeechBrain, ``gLN`` as torchaudio).
        causal: left-padded depthwise convs (needs ``norm`` and ``input_norm`` ``cLN``).
        mask_act: ``relu`` (SpeechBrain) or ``sigmoid`` (torchaudio's default).
        enc_act: ``relu`` after the encoder (SpeechBrain) or ``linear`` (torchaudio).
        skip: the skip-connection layout of the paper and torchaudio (see the module doc);
            ``False``: the residual path only, as SpeechBrain.
        bias: biases in the bottleneck, block and mask convs (torchaudio) or none (SpeechBrain).
    """

    def __init__(
        self,
        stems: Sequence[str] = ("speech",),
        in_channels: int = 1,
        sample_rate: int = 16000,
        preset: Optional[str] = None,
        N: Optional[int] = None,
        L: Optional[int] = None,
        B: Optional[int] = None,
        H: Optional[int] = None,
        P: Optional[int] = None,
        X: Optional[int] = None,
        R: Optional[int] = None,
        norm: str = "gLN",
        input_norm: str = "cLN",
        causal: bool = False,
        mask_act: str = "relu",
        enc_act: str = "relu",
        skip: bool = False,
        bias: bool = False,
    ):
        super().__init__()
        self.stems = list(stems)
        if not self.stems or len(set(self.stems)) != len(self.stems):
            raise ConfigError(f"stems must be distinct and at least one, got {self.stems}")
        if in_channels != 1:
            raise ConfigError(f"convtasnet is a single-channel model: channels (in_channels) must be 1, not {in_channels!r}")
        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"model.params.preset must be one of {', '.join(PRESETS)} or null, not {preset!r}")
        for name, value, allowed in (("norm", norm, NORMS), ("input_norm", input_norm, NORMS),
                                     ("mask_act", mask_act, MASK_ACTS), ("enc_act", enc_act, ENC_ACTS)):
            if value not in allowed:
                raise ConfigError(f"model.params.{name} must be one of {', '.join(allowed)}, not {value!r}")
        arch = dict(PRESETS[preset or "default"])
        given = dict(N=N, L=L, B=B, H=H, P=P, X=X, R=R)
        arch.update({k: v for k, v in given.items() if v is not None})
        for k in ARCH_KEYS:
            _positive_int(k, arch[k], 2 if k == "L" else 1)
        if not causal and arch["P"] % 2 == 0:
            raise ConfigError(f"model.params.P must be odd for a non-causal model (same padding), not {arch['P']}")
        if causal and "gLN" in (norm, input_norm):
            raise ConfigError("model.params.causal: a causal model needs norm: cLN and input_norm: cLN "
                              f"(gLN normalises over the whole signal), not norm {norm!r}, input_norm {input_norm!r}")
        self.in_channels, self.sample_rate = 1, sample_rate
        self.preset = preset
        self.arch = arch
        self.N, self.L, self.stride = arch["N"], arch["L"], arch["L"] // 2
        self.causal, self.skip, self.enc_act = bool(causal), bool(skip), enc_act
        self.encoder = nn.Conv1d(1, self.N, self.L, stride=self.stride, padding=self.stride, bias=False)
        self.masker = MaskNet(arch["N"], arch["B"], arch["H"], arch["P"], arch["X"], arch["R"], len(self.stems),
                              norm, input_norm, bool(causal), mask_act, bool(skip), bool(bias))
        self.decoder = nn.ConvTranspose1d(self.N, 1, self.L, stride=self.stride, padding=self.stride, bias=False)

    @property
    def receptive_field(self) -> int:
        """Encoder frames one output frame of the mask network sees."""
        a = self.arch
        return 1 + a["R"] * (a["P"] - 1) * (2 ** a["X"] - 1)

    def _pad(self, n: int) -> int:
        """Samples appended so that ``n`` ends where torchaudio's framing does (a whole number
        of strides after the first ``L % 2`` samples)."""
        return (-(n - self.L % 2)) % self.stride

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, time)`` -> ``(batch, len(stems), 1, time)``."""
        if mixture.ndim != 3 or mixture.shape[1] != 1:
            raise ValueError(f"convtasnet expects a (batch, 1, time) waveform (one channel), got shape {tuple(mixture.shape)}")
        batch, _, n = mixture.shape
        pad = self._pad(n)
        x = F.pad(mixture, (0, pad)) if pad else mixture
        w = self.encoder(x)
        if self.enc_act == "relu":
            w = F.relu(w)
        masked = self.masker(w) * w.unsqueeze(1)  # (batch, C, N, frames)
        out = self.decoder(masked.reshape(batch * len(self.stems), self.N, -1))
        return out[..., :n].reshape(batch, len(self.stems), 1, n)


# ---------------------------------------------------------------------- torchaudio interop
def torchaudio_config(model) -> Dict[str, object]:
    """Constructor arguments of :class:`ConvTasNet` that build ``torchaudio.models.ConvTasNet``
    ``model``'s network (without ``stems``)."""
    mg = model.mask_generator
    first = mg.conv_layers[0].conv_layers
    dilations = [layer.conv_layers[3].dilation[0] for layer in mg.conv_layers]
    X = dilations.index(1, 1) if dilations.count(1) > 1 else len(dilations)
    return dict(N=model.enc_num_feats, L=model.enc_kernel_size, B=mg.input_conv.out_channels,
                H=first[0].out_channels, P=first[3].kernel_size[0], X=X, R=len(dilations) // X,
                norm="gLN", input_norm="gLN", causal=False,
                mask_act="sigmoid" if isinstance(mg.mask_activate, torch.nn.Sigmoid) else "relu",
                enc_act="linear", skip=True, bias=True)


def torchaudio_state_dict(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A ``torchaudio.models.ConvTasNet`` state dict -> this class's (with :func:`torchaudio_config`)."""
    out = {"encoder.weight": state["encoder.weight"], "decoder.weight": state["decoder.weight"]}
    mg = "mask_generator."
    for ours, theirs in (("input_norm", "input_norm"), ("bottleneck", "input_conv"), ("out_act", "output_prelu"),
                         ("mask_conv", "output_conv")):
        for key in ("weight", "bias"):
            if f"{mg}{theirs}.{key}" in state:
                out[f"masker.{ours}.{key}"] = state[f"{mg}{theirs}.{key}"]
    n = 1 + max(int(k.split(".")[2]) for k in state if k.startswith(mg + "conv_layers."))
    parts = (("conv1", 0), ("act1", 1), ("norm1", 2), ("dconv", 3), ("act2", 4), ("norm2", 5))
    for i in range(n):
        src, dst = f"{mg}conv_layers.{i}.", f"masker.blocks.{i}."
        for name, j in parts:
            for key in ("weight", "bias"):
                if f"{src}conv_layers.{j}.{key}" in state:
                    out[f"{dst}{name}.{key}"] = state[f"{src}conv_layers.{j}.{key}"]
        for key in ("weight", "bias"):
            pieces = [state[f"{src}{o}.{key}"] for o in ("res_out", "skip_out") if f"{src}{o}.{key}" in state]
            out[f"{dst}out.{key}"] = torch.cat(pieces, 0)
    return out


def from_torchaudio(model, stems: Optional[Sequence[str]] = None, sample_rate: int = 8000) -> ConvTasNet:
    """A :class:`ConvTasNet` with the network and weights of a ``torchaudio.models.ConvTasNet``
    (the same output, as ``(batch, sources, 1, time)``). ``stems`` default to ``source1``,
    ``source2``, ...; torchaudio's pretrained Libri2Mix model runs at 8 kHz."""
    stems = list(stems) if stems is not None else [f"source{i + 1}" for i in range(model.num_sources)]
    if len(stems) != model.num_sources:
        raise ConfigError(f"{len(stems)} stems given for a model of {model.num_sources} sources")
    ours = ConvTasNet(stems=stems, sample_rate=sample_rate, **torchaudio_config(model))
    ours.load_state_dict(torchaudio_state_dict(model.state_dict()))
    return ours
