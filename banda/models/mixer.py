"""The learned mixer: listens to every stem and predicts, per stem, which mixing tools to apply
and with what parameters (a program of :mod:`banda.mixing.program`).

::

    stems (batch, stems, channels, time)
      -> per stem: an encoder of MIXER_ENCODERS (shared weights) -> (batch, stems, dim)
      -> + a learned embedding of the stem's name (+ of a text tag, if the model has tags)
      -> a transformer encoder over the stems (attention across stems: the balance of the mix)
      -> heads: tool presence logits (batch, stems, tools), parameter values (batch, stems, params)

The heads cover the tools and parameters of ``tools`` (``{tool: [param, ...]}``, from the
training config's distortions); a parameter's value is predicted in units of its scale
(12 dB for gains, half the range otherwise: :func:`param_scale`). The encoder slot takes any
module of :data:`MIXER_ENCODERS` mapping ``(batch, channels, time) -> (batch, out_dim)``:
``melstats`` (each channel's log-mel band means and spreads: level, balance and spectral
shape, what volume, pan and EQ change) and ``melcnn`` (a small CNN on the channels' log-mel
spectrograms, then mean and spread over time). Levels are kept absolute (log-mel in bels, no
per-item normalisation; ``melstats``' BatchNorm standardises each feature across the items of
a batch, so an item's level stays visible), since a volume change is nothing but a level.
"""
from typing import Dict, List, Mapping, Optional, Sequence

import torch
from torch import nn

from ..config import check_params
from ..errors import ConfigError
from ..registry import Registry
from .registry import MODELS

MIXER_ENCODERS = Registry("mixer encoder")


def param_scale(tool: str, param: str) -> float:
    """The unit in which the mixer predicts ``tool.param``: 12 for dB, half the range otherwise."""
    from ..mixing.tools import get_tool

    p = get_tool(tool).param(param)
    return 12.0 if p.unit == "dB" else (p.high - p.low) / 2.0


class _LogMel(nn.Module):
    """``(batch, channels, time) -> (batch, channels, n_mels, frames)``: log10 of the mel power
    (bels), floored at -10; absolute, so levels stay visible."""

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int):
        super().__init__()
        from torchaudio.functional import melscale_fbanks

        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        fb = melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, norm="slaney", mel_scale="slaney")
        self.register_buffer("mel", fb * (2.0 / self.window.sum() ** 2), persistent=False)  # (freq, n_mels), power per unit

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        b, c, t = audio.shape
        x = audio.float().reshape(b * c, t)
        if t < self.n_fft:
            x = nn.functional.pad(x, (0, self.n_fft - t))
        spec = torch.stft(x, self.n_fft, self.hop_length, window=self.window, return_complex=True).abs().square()
        mel = torch.einsum("bft,fm->bmt", spec, self.mel)
        return torch.log10(mel + 1e-10).reshape(b, c, -1, mel.shape[-1])


@MIXER_ENCODERS.register("melstats")
class MelStatsEncoder(nn.Module):
    """Each channel's log-mel band means and standard deviations over the frames, and its
    broadband level (log10 of the mean power, the sum over the bands) -> BatchNorm (each feature standardised across the items of a batch, so an item's level
    stays visible) -> MLP -> ``out_dim``. ``(batch, channels, time) -> (batch, out_dim)``."""

    def __init__(self, out_dim: int, sample_rate: int, in_channels: int, n_fft: int = 2048, hop_length: int = 1024,
                 n_mels: int = 48, hidden: int = 256):
        super().__init__()
        self.logmel = _LogMel(sample_rate, n_fft, hop_length, n_mels)
        n = in_channels * (2 * n_mels + 1)
        self.net = nn.Sequential(nn.BatchNorm1d(n), nn.Linear(n, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        lm = self.logmel(audio)  # (batch, channels, mels, frames)
        level = torch.log10(torch.pow(10.0, lm).sum(-2).mean(-1, keepdim=True) + 1e-10)  # (batch, channels, 1)
        feats = torch.cat([lm.mean(-1), lm.std(-1, unbiased=False), level], dim=-1)
        return self.net(feats.flatten(1))


@MIXER_ENCODERS.register("melcnn")
class MelCNNEncoder(nn.Module):
    """The channels' log-mel spectrograms -> ``len(channels)`` blocks of (3x3 conv, GELU, 2x2
    average pooling) -> each feature map's mean and spread over time, flattened over mel bins
    -> linear -> ``out_dim``. ``(batch, channels, time) -> (batch, out_dim)``."""

    def __init__(self, out_dim: int, sample_rate: int, in_channels: int, n_fft: int = 2048, hop_length: int = 1024,
                 n_mels: int = 48, channels: Sequence[int] = (16, 32)):
        super().__init__()
        self.logmel = _LogMel(sample_rate, n_fft, hop_length, n_mels)
        layers, c_in = [], in_channels
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.GELU(), nn.AvgPool2d(2, ceil_mode=True)]
            c_in = c
        self.net = nn.Sequential(*layers)
        mels = n_mels
        for _ in channels:
            mels = -(-mels // 2)
        self.out = nn.Linear(2 * c_in * mels, out_dim)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        h = self.net((self.logmel(audio) + 5.0) / 3.0)  # (batch, c, mels', frames')
        return self.out(torch.cat([h.mean(-1), h.std(-1, unbiased=False)], dim=-1).flatten(1))


@MODELS.register("mixer")
class LearnedMixer(nn.Module):
    """Stems -> a mixing program per stem (see the module doc).

    Args:
        stems: the stem names, in the order of the input's stem axis.
        sample_rate, in_channels: of the audio it listens to.
        tools: ``{tool: [param, ...]}``: the tools it predicts and, for each, the parameters
            it sets (the others keep their defaults).
        encoder: ``{name, params}`` of the per-stem encoder in :data:`MIXER_ENCODERS`.
        dim, layers, heads, dropout: the fusion transformer over the stems.
        tags: text tags it can be conditioned on (a small learned vocabulary; empty: none).
    """

    def __init__(self, stems: List[str], sample_rate: int, in_channels: int, tools: Mapping[str, Sequence[str]],
                 encoder: Optional[Dict] = None, dim: int = 128, layers: int = 2, heads: int = 4, dropout: float = 0.0,
                 tags: Sequence[str] = ()):
        super().__init__()
        from ..mixing.tools import TOOLS, get_tool

        encoder = dict(encoder or {"name": "melstats", "params": {}})
        if not isinstance(tools, Mapping) or not tools:
            raise ConfigError("model.params.tools must map at least one tool to the parameters it predicts")
        self.stems, self.sample_rate, self.in_channels = list(stems), int(sample_rate), int(in_channels)
        self.tool_names = [t for t in TOOLS if t in tools]  # canonical order
        for t in tools:
            get_tool(t)
        self.param_keys = []  # (tool, param)
        for t in self.tool_names:
            for p in tools[t]:
                get_tool(t).param(p)
                self.param_keys.append((t, p))
        self.tools = {t: list(tools[t]) for t in self.tool_names}
        self.tags = list(tags)
        if dim % heads:
            raise ConfigError(f"model.params.heads ({heads}) must divide model.params.dim ({dim})")
        cls = MIXER_ENCODERS.get(encoder.get("name", "melstats"))
        params = check_params(cls, dict(encoder.get("params") or {}, out_dim=dim, sample_rate=sample_rate,
                                        in_channels=in_channels), "model.params.encoder.params")
        self.encoder = cls(**params)
        self.stem_embedding = nn.Parameter(torch.randn(len(self.stems), dim) * 0.02)
        self.tag_embedding = nn.Embedding(len(self.tags) + 1, dim) if self.tags else None  # row 0: no tag
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, activation="gelu", batch_first=True, norm_first=True)
        self.fusion = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.presence_head = nn.Linear(dim, len(self.tool_names))
        self.value_head = nn.Linear(dim, len(self.param_keys))
        self.register_buffer("scales", torch.tensor([param_scale(t, p) for t, p in self.param_keys]), persistent=False)

    def tag_index(self, tag: Optional[str]) -> int:
        """The tag's row (0 for none); an unknown tag is a :class:`ConfigError` listing the known ones."""
        if tag is None:
            return 0
        if tag not in self.tags:
            raise ConfigError(f"unknown tag {tag!r} (this mixer knows: {', '.join(self.tags) or 'no tags'})")
        return self.tags.index(tag) + 1

    def forward(self, stems: torch.Tensor, tags: Optional[torch.Tensor] = None):
        """``stems (batch, stems, channels, time)``, ``tags (batch,)`` tag rows (0 = none) ->
        ``(presence logits (batch, stems, tools), values (batch, stems, params) in the tools' units)``."""
        b, s, c, t = stems.shape
        if s != len(self.stems):
            raise ValueError(f"expected {len(self.stems)} stems ({', '.join(self.stems)}), got {s}")
        h = self.encoder(stems.reshape(b * s, c, t)).reshape(b, s, -1) + self.stem_embedding
        if self.tag_embedding is not None:
            rows = tags if tags is not None else torch.zeros(b, dtype=torch.long, device=stems.device)
            h = h + self.tag_embedding(rows)[:, None]
        elif tags is not None and bool(tags.any()):
            raise ValueError("this mixer has no tags (tag rows must be 0)")
        h = self.norm(self.fusion(h))
        return self.presence_head(h), self.value_head(h) * self.scales

    @torch.no_grad()
    def predict_chains(self, stems: torch.Tensor, tag: Optional[str] = None, threshold: float = 0.5,
                       decimals: int = 1) -> Dict[str, list]:
        """``(stems, channels, time)`` of one song -> ``{stem: [(tool, {param: value}), ...]}``
        (see :func:`chains_from_outputs`)."""
        rows = torch.tensor([self.tag_index(tag)], device=stems.device)
        logits, values = self(stems[None], rows)
        return chains_from_outputs(self.stems, self.tools, logits[0], values[0], threshold, decimals)


def chains_from_outputs(stems: Sequence[str], tools: Mapping[str, Sequence[str]], logits: torch.Tensor,
                        values: torch.Tensor, threshold: float = 0.5, decimals: int = 1) -> Dict[str, list]:
    """One item's outputs (``logits (stems, tools)``, ``values (stems, params)``, in the layout
    of ``tools``) -> ``{stem: [(tool, {param: value}), ...]}``: the tools whose presence
    probability is above ``threshold``, values rounded to ``decimals`` and kept inside each
    parameter's range (so the printed program is the one applied)."""
    from ..mixing.tools import get_tool

    prob, values = torch.sigmoid(logits.float()).cpu(), values.float().cpu()
    keys = [(t, p) for t in tools for p in tools[t]]
    chains = {}
    for i, stem in enumerate(stems):
        calls = []
        for j, tool in enumerate(tools):
            if prob[i, j] <= threshold:
                continue
            params = {}
            for k, (t, p) in enumerate(keys):
                if t == tool:
                    spec = get_tool(t).param(p)
                    params[p] = min(max(round(float(values[i, k]), decimals), spec.low), spec.high) + 0.0  # no -0.0
            calls.append((tool, params))
        chains[stem] = calls
    return chains
