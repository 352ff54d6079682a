"""Bandit: band-split separator with one complex-mask decoder per stem.

mixture ``(batch, channels, time)`` -> STFT -> per-band features ``(batch, bands, time, dim)``
-> alternating time/band sequence model -> per stem, per band mask MLPs -> masks combined
over overlapping bands -> masked mixture STFT -> iSTFT -> ``(batch, stems, channels, time)``.
Band layouts: :mod:`banda.models.bands`; TF blocks: :mod:`banda.models.tf_blocks`.
"""
import inspect
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from ..config import check_params
from ..errors import ConfigError
from .registry import MODELS
from .bands import band_layout
from .stft import STFT
from .tf_blocks import TF_BLOCKS

MASK_COMBINE = ("weighted", "mean", "sum")


def _width_groups(ranges):
    """Bands grouped by width, so that each group runs as one batched matrix product.

    Returns ``[(width, band indices), ...]`` and ``order``: the band indices in group order.
    """
    groups: Dict[int, List[int]] = {}
    for i, (s, e) in enumerate(ranges):
        groups.setdefault(e - s, []).append(i)
    out = [(w, idx) for w, idx in groups.items()]
    return out, [i for _, idx in out for i in idx]


def _inverse(order: List[int]) -> Optional[List[int]]:
    """The permutation that puts ``order``'s items back in place (``None``: already in place)."""
    if order == list(range(len(order))):
        return None
    inv = [0] * len(order)
    for k, i in enumerate(order):
        inv[i] = k
    return inv


def upgrade_entries(state: Dict[str, Any], sources: Dict[str, List[str]]) -> None:
    """Replace, in place, each complete set of per-band entries of ``state`` by their stack under
    the grouped name (``sources``: grouped name -> per-band names); others are left alone."""
    for name, olds in sources.items():
        if all(o in state for o in olds):
            state[name] = torch.stack([state.pop(o) for o in olds])


class GroupedNorm(nn.Module):
    """LayerNorms of equal width, one per band, as one module: ``(bands, rows, features)`` ->
    the same, each band with its own affine ``weight``/``bias`` ``(bands, features)``."""

    def __init__(self, bands: int, features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(bands, features))
        self.bias = nn.Parameter(torch.zeros(bands, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps)
        return torch.addcmul(self.bias[:, None], y, self.weight[:, None])


class GroupedLinear(nn.Module):
    """Linear layers of equal shape, one per band, as one batched product:
    ``(bands, rows, in)`` -> ``(bands, rows, out)``; ``weight (bands, out, in)``, ``bias (bands, out)``.

    Initialised from ``layers`` (default: ``bands`` new :class:`~torch.nn.Linear` layers made one
    after the other, the same random draws as the per-band modules it replaces)."""

    def __init__(self, bands: int, in_features: int, out_features: int, layers: Optional[Sequence[nn.Linear]] = None):
        super().__init__()
        if layers is None:
            layers = [nn.Linear(in_features, out_features) for _ in range(bands)]
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias[:, None], x, self.weight.transpose(1, 2))


class BandSplit(nn.Module):
    """Per band: real/imag (and channels) of its bins -> LayerNorm -> Linear to ``dim``.

    The bands of equal width share one :class:`GroupedNorm` and one :class:`GroupedLinear`
    (``groups.<g>.norm``, ``groups.<g>.proj``): one batched product per width, not one per band.
    The result is each band's own LayerNorm + Linear. Checkpoints of the per-band layout
    (``layers.<band>.0|1.weight|bias``) load unchanged (:meth:`legacy_sources`).
    """

    def __init__(self, ranges, channels: int, dim: int):
        super().__init__()
        self.ranges = list(ranges)
        self.channels, self.dim = channels, dim
        self.widths, order = _width_groups(self.ranges)
        # The same random draws as one LayerNorm + Linear per band, in band order.
        per_band = [nn.Linear(2 * channels * (e - s), dim) for s, e in self.ranges]
        self.groups = nn.ModuleList()
        for g, (w, idx) in enumerate(self.widths):
            group = nn.Module()
            group.norm = GroupedNorm(len(idx), 2 * channels * w)
            group.proj = GroupedLinear(len(idx), 2 * channels * w, dim, [per_band[i] for i in idx])
            self.groups.append(group)
            bins = [[self.ranges[i][0] + k for k in range(w)] for i in idx]
            self.register_buffer(f"bins{g}", torch.tensor(bins, dtype=torch.long).flatten(), persistent=False)
        restore = _inverse(order)
        self.register_buffer("restore", None if restore is None else torch.tensor(restore), persistent=False)

    def band_params(self, band: int) -> Dict[str, torch.Tensor]:
        """Band ``band``'s ``norm_weight``, ``norm_bias`` ``(features,)``, ``weight`` ``(dim, features)``
        and ``bias`` ``(dim,)``: views into the grouped parameters."""
        for (w, idx), group in zip(self.widths, self.groups):
            if band in idx:
                j = idx.index(band)
                return {"norm_weight": group.norm.weight[j], "norm_bias": group.norm.bias[j],
                        "weight": group.proj.weight[j], "bias": group.proj.bias[j]}
        raise IndexError(band)

    def legacy_sources(self, prefix: str = "") -> Dict[str, List[str]]:
        """Each grouped parameter's per-band sources in the layout before the grouping
        (``<prefix>layers.<band>.0|1.weight|bias``), stacked in its band order."""
        old = ((0, "weight"), (0, "bias"), (1, "weight"), (1, "bias"))
        return {f"{prefix}groups.{g}.{name}": [f"{prefix}layers.{i}.{m}.{n}" for i in idx]
                for g, (w, idx) in enumerate(self.widths)
                for name, (m, n) in zip(("norm.weight", "norm.bias", "proj.weight", "proj.bias"), old)}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        upgrade_entries(state_dict, self.legacy_sources(prefix))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, freq, time)`` complex -> ``(batch, bands, time, dim)``."""
        return self.features(torch.view_as_real(spec))

    def compile_regions(self, **options) -> None:
        """Compile :meth:`features` in place (the real-valued part; the complex view stays outside)."""
        self.features = torch.compile(self.features, **options)

    def features(self, spec: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, freq, time, 2)`` real and imaginary parts -> ``(batch, bands, time, dim)``."""
        b, c, f, t, _ = spec.shape
        # (freq, batch * time, channels * re/im)
        x = spec.permute(2, 0, 3, 1, 4).reshape(f, b * t, 2 * c)
        out = []
        for g, ((w, idx), group) in enumerate(zip(self.widths, self.groups)):
            xg = x[getattr(self, f"bins{g}")].view(len(idx), w, b * t, 2 * c).transpose(1, 2).reshape(len(idx), b * t, -1)
            out.append(group.proj(group.norm(xg)))
        y = torch.cat(out) if len(out) > 1 else out[0]             # (bands in group order, batch * time, dim)
        if self.restore is not None:
            y = y[self.restore]
        return y.view(-1, b, t, self.dim).transpose(0, 1)


class MaskDecoder(nn.Module):
    """One stem's masks: per band LayerNorm -> Linear -> Tanh -> Linear -> GLU, combined over bands.

    The first LayerNorm and Linear of all bands run as one batched product (``norm``,
    ``hidden``: :class:`GroupedNorm`, :class:`GroupedLinear`), the last Linear as one per band
    width (``out.<g>``). Checkpoints of the per-band layout (``mlps.<band>.0|1|3.weight|bias``)
    load unchanged (:meth:`legacy_sources`).
    """

    def __init__(self, ranges, weights: torch.Tensor, channels: int, dim: int, hidden: int, complex_mask: bool,
                 tiling: bool = False):
        super().__init__()
        self.ranges = list(ranges)
        self.channels = channels
        self.parts = 2 if complex_mask else 1
        n = len(self.ranges)
        # The same random draws as one LayerNorm + Linear + Tanh + Linear + GLU per band, in band order.
        per_band = [(nn.Linear(dim, hidden), nn.Linear(hidden, 2 * channels * (e - s) * self.parts)) for s, e in self.ranges]
        self.norm = GroupedNorm(n, dim)
        self.hidden = GroupedLinear(n, dim, hidden, [first for first, _ in per_band])
        self.widths, order = _width_groups(self.ranges)
        self.out = nn.ModuleList(GroupedLinear(len(idx), hidden, 2 * channels * w * self.parts, [per_band[i][1] for i in idx])
                                 for w, idx in self.widths)
        for g, (w, idx) in enumerate(self.widths):
            self.register_buffer(f"bands{g}", torch.tensor(idx, dtype=torch.long), persistent=False)
        # the bins of the group-ordered band outputs, back in band order
        start, pos = 0, {}
        for i in order:
            pos[i] = start
            start += self.ranges[i][1] - self.ranges[i][0]
        restore = [pos[i] + k for i, (s, e) in enumerate(self.ranges) for k in range(e - s)]
        restore = None if restore == list(range(len(restore))) else torch.tensor(restore, dtype=torch.long)
        self.register_buffer("restore", restore, persistent=False)
        # Flattened (band, bin) pairs: where each band's bins go and their combination weights.
        index = torch.cat([torch.arange(s, e) for s, e in self.ranges])
        flat_weights = torch.cat([weights[i, s:e] for i, (s, e) in enumerate(self.ranges)])
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("flat_weights", flat_weights, persistent=False)
        # A tiling layout (each bin in exactly one band, bands in order, unit weights) needs no
        # weighted scatter-add: its masks are the bands' masks concatenated.
        self.concatenate = bool(tiling and torch.all(flat_weights == 1))

    def band_params(self, band: int) -> Dict[str, torch.Tensor]:
        """Band ``band``'s parameters as views into the grouped ones: ``norm_weight``, ``norm_bias``,
        ``hidden_weight``, ``hidden_bias``, ``out_weight`` ``(2 * channels * width * parts, hidden)``, ``out_bias``."""
        params = {"norm_weight": self.norm.weight[band], "norm_bias": self.norm.bias[band],
                  "hidden_weight": self.hidden.weight[band], "hidden_bias": self.hidden.bias[band]}
        for (w, idx), layer in zip(self.widths, self.out):
            if band in idx:
                j = idx.index(band)
                return dict(params, out_weight=layer.weight[j], out_bias=layer.bias[j])
        raise IndexError(band)

    def legacy_sources(self, prefix: str = "") -> Dict[str, List[str]]:
        """Each grouped parameter's per-band sources in the layout before the grouping
        (``<prefix>mlps.<band>.0|1|3.weight|bias``), stacked in its band order."""
        every = range(len(self.ranges))
        sources = {prefix + name: [f"{prefix}mlps.{i}.{m}.{n}" for i in every]
                   for name, m, n in (("norm.weight", 0, "weight"), ("norm.bias", 0, "bias"),
                                      ("hidden.weight", 1, "weight"), ("hidden.bias", 1, "bias"))}
        for g, (w, idx) in enumerate(self.widths):
            for n in ("weight", "bias"):
                sources[f"{prefix}out.{g}.{n}"] = [f"{prefix}mlps.{i}.3.{n}" for i in idx]
        return sources

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        upgrade_entries(state_dict, self.legacy_sources(prefix))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, z: torch.Tensor, n_freq: int) -> torch.Tensor:
        """``(batch, bands, time, dim)`` -> mask ``(batch, channels, freq, time)`` (complex or real)."""
        mask = self.masks(z, n_freq)
        return torch.view_as_complex(mask) if self.parts == 2 else mask[..., 0]

    def masks(self, z: torch.Tensor, n_freq: int) -> torch.Tensor:
        """``(batch, bands, time, dim)`` -> real and imaginary parts (or the real mask) of the mask,
        ``(batch, channels, freq, time, parts)`` float32: real arithmetic only (what
        :meth:`compile_regions` compiles; the complex view is taken outside)."""
        b, n, t, d = z.shape
        cp = self.channels * self.parts
        h = torch.tanh(self.hidden(self.norm(z.transpose(0, 1).reshape(n, b * t, d))))   # (bands, batch * time, hidden)
        per_group = []
        for g, ((w, idx), layer) in enumerate(zip(self.widths, self.out)):
            hg = h if len(idx) == n else h[getattr(self, f"bands{g}")]
            y = nn.functional.glu(layer(hg), dim=-1)                                   # (bands_g, b * t, w * cp)
            per_group.append(y.view(len(idx), b * t, w, cp).transpose(1, 2).reshape(len(idx) * w, b * t, cp))
        # masks are applied in float32 (one cast, not one per band)
        flat = (torch.cat(per_group) if len(per_group) > 1 else per_group[0]).float()   # (band bins, b * t, cp)
        if self.restore is not None:
            flat = flat[self.restore]
        if self.concatenate:
            mask = flat
        else:
            flat = flat * self.flat_weights[:, None, None]
            mask = flat.new_zeros(n_freq, b * t, cp).index_add_(0, self.index, flat)
        return mask.view(n_freq, b, t, self.channels, self.parts).permute(1, 3, 0, 2, 4).contiguous()

    def compile_regions(self, **options) -> None:
        """Compile :meth:`masks` in place (decoders of one model share the compiled code)."""
        self.masks = torch.compile(self.masks, **options)


def build_band_split_core(module: nn.Module, *, in_channels: int, sample_rate: int, n_fft: int, hop_length: int,
                          bands: str, n_bands: Optional[int], band_params: Optional[Dict[str, Any]], stereo: str,
                          dim: int, tf_block: str, n_layers: int, hidden: int, heads: int, head_dim: int,
                          dropout: float, mask_combine: str, checkpointing: bool,
                          tf_params: Optional[Dict[str, Any]]):
    """The parts every band-split separator shares, set on ``module`` under the names their
    checkpoints use: ``stft``, ``layout``, ``band_split`` and ``tf_model`` (and ``in_channels``,
    ``sample_rate``, ``stereo``). Returns the masks' combination ``weights`` ``(bands, freq)``
    and the channels each band's features hold (for the mask decoders)."""
    if stereo not in ("joint", "per_channel"):
        raise ConfigError(f"model.params.stereo must be 'joint' or 'per_channel', not {stereo!r}")
    if mask_combine not in MASK_COMBINE:
        raise ConfigError(f"model.params.mask_combine must be one of {MASK_COMBINE}, not {mask_combine!r}")
    module.in_channels = in_channels
    module.sample_rate = sample_rate
    module.stereo = stereo
    module.stft = STFT(n_fft, hop_length)
    layout = band_layout(bands, sample_rate, n_fft, n_bands, band_params)
    module.layout = layout
    weights = torch.from_numpy(layout.weights)
    if mask_combine == "mean":
        # Plain mean of the masks covering a bin, whatever the filterbank's shape.
        weights = (weights > 0).to(weights.dtype)
    if mask_combine != "sum":
        # Rectangular banks: normalised weights equal the mean of the covering masks.
        weights = weights / weights.sum(0, keepdim=True).clamp_min(1e-8)
    feat_channels = in_channels if stereo == "joint" else 1
    module.band_split = BandSplit(layout.ranges, feat_channels, dim)
    block = TF_BLOCKS.get(tf_block)
    extra = dict(tf_params or {})
    common = {"dim", "n_layers", "hidden", "dropout", "checkpointing", "heads", "head_dim"} & set(extra)
    if common:
        raise ConfigError(f"model.params.tf_params.{sorted(common)[0]}: set it in model.params, not in tf_params")
    if "heads" in inspect.signature(block).parameters:
        extra.update(heads=heads, head_dim=head_dim)
    block_params = check_params(block, dict(extra, dim=dim, n_layers=n_layers, hidden=hidden, dropout=dropout,
                                            checkpointing=checkpointing), "model.params.tf_params")
    module.tf_model = block(**block_params)
    return weights, feat_channels


@MODELS.register("bandit")
class Bandit(nn.Module):
    """Band-split RNN separator (BSRNN/Bandit family) with fixed stems.

    Args:
        stems: names of the output stems, one decoder each.
        in_channels: 1 or 2 audio channels.
        bands: band layout kind: fixed ``v1``..``v7``, ``bass``, ``drums``, ``roformer`` (62 bands), or
            parametric ``musical``, ``mel``, ``bark``, ``tribark``, ``erb``, ``minibark``
            (see :mod:`banda.models.bands`).
        n_bands: number of bands for the parametric layouts.
        band_params: layout-specific options, e.g. ``{threshold: 0.5}`` for ``minibark``
            (see :func:`banda.models.bands.band_layout`).
        stereo: ``joint`` (channels stacked as features of one band) or ``per_channel``
            (channels folded into the batch; the model sees mono).
        dim: band feature width D; ``tf_block``: ``gru``, ``lstm``, ``transformer`` or ``mamba``;
            ``n_layers``: time+band pass pairs; ``hidden``: RNN width; ``heads`` x ``head_dim``:
            attention width; ``dropout`` and ``checkpointing`` (activation checkpointing): every block.
        tf_params: further arguments of the chosen TF block, e.g. ``{ff_mult: 4}`` (transformer) or
            ``{d_state: 16, expand: 2, bidirectional_merge: sum, backend: auto}`` (mamba); see
            :mod:`banda.models.tf_blocks`.
        complex_mask: complex masks (real and imaginary parts) or real masks (phase of the mixture).
        mask_combine: how overlapping bands' masks add up: ``weighted`` (normalised
            filterbank weights), ``mean`` or ``sum``. Checkpoints depend on it.
        decoder_subset: train only this many randomly chosen decoders per step (``None``: all).
            The model never drops stems by itself: the trainer asks :meth:`sample_stems` for the
            stems of a step, passes them to ``forward(mixture, stems)`` and compares with the
            matching target stems only.
    """

    def __init__(
        self,
        stems: Sequence[str] = ("vocals", "drums", "bass", "other"),
        in_channels: int = 2,
        sample_rate: int = 44100,
        n_fft: int = 2048,
        hop_length: int = 512,
        bands: str = "v7",
        n_bands: Optional[int] = None,
        band_params: Optional[Dict[str, Any]] = None,
        stereo: str = "joint",
        dim: int = 128,
        tf_block: str = "gru",
        n_layers: int = 8,
        hidden: int = 256,
        heads: int = 8,
        head_dim: int = 64,
        dropout: float = 0.0,
        mask_hidden: int = 512,
        complex_mask: bool = True,
        mask_combine: str = "weighted",
        checkpointing: bool = False,
        tf_params: Optional[Dict[str, Any]] = None,
        decoder_subset: Optional[int] = None,
    ):
        super().__init__()
        self.stems = list(stems)
        if len(set(self.stems)) != len(self.stems) or not self.stems:
            raise ConfigError(f"stems must be distinct and at least one, got {self.stems}")
        if decoder_subset is not None and not 1 <= decoder_subset <= len(self.stems):
            raise ConfigError(f"model.params.decoder_subset must be null or 1..{len(self.stems)} (the number of stems), "
                              f"not {decoder_subset!r}")
        self.decoder_subset = decoder_subset
        weights, feat_channels = build_band_split_core(
            self, in_channels=in_channels, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, bands=bands,
            n_bands=n_bands, band_params=band_params, stereo=stereo, dim=dim, tf_block=tf_block, n_layers=n_layers,
            hidden=hidden, heads=heads, head_dim=head_dim, dropout=dropout, mask_combine=mask_combine,
            checkpointing=checkpointing, tf_params=tf_params)
        layout = self.layout
        self.decoders = nn.ModuleDict(
            {stem: MaskDecoder(layout.ranges, weights, feat_channels, dim, mask_hidden, complex_mask, layout.tiling)
             for stem in self.stems}
        )

    def compile_regions(self, **options) -> None:
        """Regional compilation (``train.compile``): ``torch.compile`` the repeated blocks in place,
        each block's code compiled once and shared by its repeats: the TF block's passes (one
        compilation per axis) and the mask decoders' real-valued part; and the band split's. The
        STFTs and the complex views and masking stay eager; parameter names do not change."""
        self.band_split.compile_regions(**options)
        self.tf_model.compile_regions(**options)
        for decoder in self.decoders.values():
            decoder.compile_regions(**options)

    def sample_stems(self, generator: Optional[torch.Generator] = None) -> List[str]:
        """The stems to train in one step: ``decoder_subset`` of them drawn at random (in model
        stem order) while training with ``decoder_subset`` set, else all stems.

        For the trainer: ``stems = model.sample_stems(gen)``, ``estimate = net(mix, stems=stems)``,
        loss against ``target[:, [model.stems.index(s) for s in stems]]``. Draw from a generator
        seeded alike on every data-parallel rank so that all ranks train the same decoders.
        """
        if self.decoder_subset is None or not self.training or self.decoder_subset >= len(self.stems):
            return list(self.stems)
        chosen = torch.randperm(len(self.stems), generator=generator)[: self.decoder_subset].sort().values
        return [self.stems[i] for i in chosen.tolist()]

    def forward(self, mixture: torch.Tensor, stems: Optional[Sequence[str]] = None) -> torch.Tensor:
        """``(batch, channels, time)`` -> ``(batch, len(stems), channels, time)``; ``stems``: a subset
        (any order) of the model's stems, default all of them. Only those decoders run."""
        b, c, n = mixture.shape
        stems = list(self.stems if stems is None else stems)
        unknown = [s for s in stems if s not in self.decoders]
        if unknown or not stems:
            raise ValueError(f"unknown or no stems {unknown or stems} (model stems: {self.stems})")
        if c != self.in_channels:
            raise ValueError(f"model expects {self.in_channels} channels, got {c}")
        spec = self.stft(mixture)  # (b, c, f, t)
        if self.stereo == "per_channel":
            spec = spec.reshape(b * c, 1, *spec.shape[-2:])
        z = self.tf_model(self.band_split(spec))
        masked = torch.stack([spec * self.decoders[stem](z, spec.shape[-2]) for stem in stems], dim=1)
        return self._to_waveform(masked, b, c, n)

    def _to_waveform(self, masked: torch.Tensor, b: int, c: int, n: int) -> torch.Tensor:
        """Masked spectra ``(batch', stems, channels', freq, frames)`` -> ``(batch, stems, channels, time)``;
        in per-channel mode batch' = batch * channels and channels' = 1."""
        audio = self.stft.inverse(masked, n)  # (batch', stems, channels', time)
        if self.stereo == "per_channel":
            audio = audio.reshape(b, c, -1, n).transpose(1, 2)
        return audio.reshape(b, -1, c, n)
