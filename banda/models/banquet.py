"""Banquet: query-based band-split separation (Watcharasupat & Lerch, ISMIR 2024).

mixture ``(batch, channels, time)`` -> STFT -> band split ``(batch, bands, frames, dim)`` ->
TF stack -> FiLM by the query embedding ``(batch, query_dim)`` -> one shared mask decoder ->
masked mixture STFT -> iSTFT -> ``(batch, 1, channels, time)``: the stem the query names.

The band split, TF blocks and mask decoder are the band-split family's
(:mod:`banda.models.bandit`), under the same state_dict names (``band_split.*``,
``tf_model.*``), so a trained fixed-stem Bandit initialises them (``--init_param``; Banquet's
"pre"), optionally frozen (``freeze_core``; "prefz").

Queries, by ``query``, the kind the model is trained with:

- ``audio``: a clip of the wanted instrument ``(batch, channels, time)`` at the model's rate,
  through a query encoder from :data:`QUERY_ENCODERS` (``melconv``: a trainable log-mel CNN;
  ``melstats``: an MLP on each mel band's mean and spread;
  a pretrained tagger registered there plugs into the same slot, its weights loaded from a
  local file with ``torch.load(weights_only=True)`` and frozen with ``freeze_query_encoder``);
- ``embedding``: the vector itself ``(batch, query_dim)``, e.g. precomputed (an audio model
  also takes these: the encoder's output space);
- ``label``: class indices ``(batch,)`` into a learned table, one row per name in ``labels``
  (:meth:`Banquet.label_index` maps names).
"""
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from ..config import check_params
from ..errors import ConfigError
from ..registry import Registry
from .bandit import MaskDecoder, build_band_split_core
from .registry import MODELS

QUERY_KINDS = ("audio", "embedding", "label")
FILM_PLACES = ("after", "middle")
QUERY_ENCODERS = Registry("query encoder")


@QUERY_ENCODERS.register("melconv")
class MelConvQueryEncoder(nn.Module):
    """Query clip -> embedding: mono log-mel spectrogram -> ``len(channels)`` blocks of
    (3x3 conv, GroupNorm, ReLU, 2x2 average pooling) -> mean over mel bins and frames ->
    Linear. ``(batch, channels, time)`` -> ``(batch, out_dim)``."""

    def __init__(self, out_dim: int, sample_rate: int, n_fft: int = 1024, hop_length: int = 320, n_mels: int = 64,
                 channels: Sequence[int] = (32, 64, 128, 128)):
        super().__init__()
        from torchaudio.functional import melscale_fbanks

        if not channels:
            raise ConfigError("model.params.query_encoder.params.channels: at least one conv block")
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        fb = melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, norm="slaney", mel_scale="slaney")
        self.register_buffer("mel", fb, persistent=False)  # (freq, n_mels)
        blocks, c_in = [], 1
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1), nn.GroupNorm(min(8, c), c), nn.ReLU(), nn.AvgPool2d(2, ceil_mode=True)]
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.proj = nn.Linear(c_in, out_dim)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio.float().mean(1)  # (batch, time)
        if x.shape[-1] < self.n_fft:
            x = nn.functional.pad(x, (0, self.n_fft - x.shape[-1]))
        spec = torch.stft(x, self.n_fft, self.hop_length, window=self.window, return_complex=True).abs().square()
        logmel = torch.log(torch.einsum("bft,fm->bmt", spec, self.mel) + 1e-6)  # (batch, mels, frames)
        h = self.blocks(logmel[:, None])
        return self.proj(h.mean(dim=(2, 3)))


@QUERY_ENCODERS.register("melstats")
class MelStatsQueryEncoder(nn.Module):
    """Query clip -> embedding from its timbre: mono log-mel spectrogram -> each mel band's
    mean and standard deviation over the frames -> LayerNorm -> MLP (``hidden``, ReLU) ->
    ``out_dim``. ``(batch, channels, time)`` -> ``(batch, out_dim)``. Small and quick to train:
    for stems that differ in their spectra (the mini recipe's)."""

    def __init__(self, out_dim: int, sample_rate: int, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 64,
                 hidden: int = 256):
        super().__init__()
        from torchaudio.functional import melscale_fbanks

        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        fb = melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, norm="slaney", mel_scale="slaney")
        self.register_buffer("mel", fb, persistent=False)  # (freq, n_mels)
        self.net = nn.Sequential(nn.LayerNorm(2 * n_mels), nn.Linear(2 * n_mels, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio.float().mean(1)
        if x.shape[-1] < self.n_fft:
            x = nn.functional.pad(x, (0, self.n_fft - x.shape[-1]))
        spec = torch.stft(x, self.n_fft, self.hop_length, window=self.window, return_complex=True).abs().square()
        logmel = torch.log(torch.einsum("bft,fm->bmt", spec, self.mel) + 1e-6)  # (batch, mels, frames)
        return self.net(torch.cat([logmel.mean(-1), logmel.std(-1, unbiased=False)], dim=-1))


class FiLM(nn.Module):
    """GroupNorm over the features, then ``γ(q) · x + β(q)``, broadcast over bands and frames;
    ``γ`` and ``β`` from small MLPs of the query embedding. ``x (batch, bands, frames, dim)``,
    ``q (batch, query_dim)``. ``γ``'s last layer starts with bias 1, so an untrained FiLM passes
    the normalised features on (scaled by about 1) rather than close to zero."""

    def __init__(self, dim: int, query_dim: int, hidden: int, groups: int):
        super().__init__()
        if dim % groups:
            raise ConfigError(f"model.params.film_groups ({groups}) must divide model.params.dim ({dim})")
        self.norm = nn.GroupNorm(groups, dim)
        self.gamma = nn.Sequential(nn.Linear(query_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.beta = nn.Sequential(nn.Linear(query_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        nn.init.ones_(self.gamma[-1].bias)

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        h = self.norm(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # normalised over (dim groups, bands, frames)
        return self.gamma(q)[:, None, None] * h + self.beta(q)[:, None, None]


@MODELS.register("banquet")
class Banquet(nn.Module):
    """Query-based band-split separator with one FiLM-conditioned mask decoder.

    Args:
        in_channels, sample_rate, n_fft, hop_length, bands, n_bands, band_params, stereo, dim,
        tf_block, n_layers, hidden, heads, head_dim, dropout, mask_hidden, complex_mask,
        mask_combine, checkpointing, tf_params: as :class:`~banda.models.bandit.Bandit`.
        query: the query kind it is trained with: ``audio``, ``embedding`` or ``label``.
        query_dim: the embedding's width (of the encoder's output, the given vectors or the label table).
        labels: the class names of a ``label`` model (its table's rows, in order).
        query_encoder: ``{name, params}`` of an ``audio`` model's encoder in :data:`QUERY_ENCODERS`.
        film: ``after`` the TF stack or in its ``middle`` (between its two halves of pass pairs).
        film_hidden, film_groups: the γ/β MLPs' width and the GroupNorm's groups.
        freeze_core: keep the band split and TF stack fixed (e.g. as initialised from a Bandit).
        freeze_query_encoder: keep the query encoder fixed (a pretrained one).
        query_classes: with ``N > 0``, a linear classifier of the embedding into ``N`` stem types
            (:meth:`classify_query`), for a training loss that makes a trainable encoder tell
            the stem types apart (what a pretrained tagger brings); unused at inference.
    """

    def __init__(
        self,
        in_channels: int = 2,
        sample_rate: int = 44100,
        n_fft: int = 2048,
        hop_length: int = 512,
        bands: str = "musical",
        n_bands: Optional[int] = 64,
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
        query: str = "audio",
        query_dim: int = 128,
        labels: Sequence[str] = (),
        query_encoder: Optional[Dict[str, Any]] = None,
        film: str = "after",
        film_hidden: int = 256,
        film_groups: int = 1,
        freeze_core: bool = False,
        freeze_query_encoder: bool = False,
        query_classes: int = 0,
    ):
        super().__init__()
        if query not in QUERY_KINDS:
            raise ConfigError(f"model.params.query must be one of {QUERY_KINDS}, not {query!r}")
        if film not in FILM_PLACES:
            raise ConfigError(f"model.params.film must be one of {FILM_PLACES}, not {film!r}")
        if film == "middle" and n_layers < 2:
            raise ConfigError("model.params.film: 'middle' needs n_layers >= 2 (a TF pass pair on each side)")
        self.query, self.film_place, self.labels = query, film, list(labels)
        if query == "label" and (not self.labels or len(set(self.labels)) != len(self.labels)):
            raise ConfigError(f"model.params.labels: a label model needs distinct class names, got {self.labels}")
        if query != "label" and self.labels:
            raise ConfigError(f"model.params.labels: only for query 'label' (this model's query is {query!r})")
        self.query_dim = query_dim
        self.stems = ["target"]
        weights, feat_channels = build_band_split_core(
            self, in_channels=in_channels, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, bands=bands,
            n_bands=n_bands, band_params=band_params, stereo=stereo, dim=dim, tf_block=tf_block, n_layers=n_layers,
            hidden=hidden, heads=heads, head_dim=head_dim, dropout=dropout, mask_combine=mask_combine,
            checkpointing=checkpointing, tf_params=tf_params)
        self.split_at = n_layers // 2 if film == "middle" else n_layers
        self.film = FiLM(dim, query_dim, film_hidden, film_groups)
        self.decoder = MaskDecoder(self.layout.ranges, weights, feat_channels, dim, mask_hidden, complex_mask,
                                   self.layout.tiling)
        if query == "audio":
            spec = dict(query_encoder or {"name": "melconv"})
            unknown = set(spec) - {"name", "params"}
            if unknown or "name" not in spec:
                raise ConfigError(f"model.params.query_encoder: {{name, params}}, not {sorted(spec)}")
            cls = QUERY_ENCODERS.get(spec["name"])
            params = check_params(cls, dict(spec.get("params") or {}, out_dim=query_dim, sample_rate=sample_rate),
                                  "model.params.query_encoder.params")
            self.query_encoder = cls(**params)
        elif query_encoder:
            raise ConfigError(f"model.params.query_encoder: only for query 'audio' (this model's query is {query!r})")
        if query == "label":
            self.label_table = nn.Embedding(len(self.labels), query_dim)
        if query_classes < 0:
            raise ConfigError(f"model.params.query_classes must be >= 0, not {query_classes}")
        if query_classes:
            self.query_classifier = nn.Linear(query_dim, query_classes)
        self.freeze_core, self.freeze_query_encoder = freeze_core, freeze_query_encoder
        frozen = ([self.band_split, self.tf_model] if freeze_core else []) + \
            ([self.query_encoder] if freeze_query_encoder and query == "audio" else [])
        for module in frozen:
            module.requires_grad_(False)

    # ------------------------------------------------------------------ queries
    def label_index(self, names: Sequence[str]) -> torch.Tensor:
        """Class names -> ``(len(names),)`` indices into the label table."""
        if self.query != "label":
            raise ValueError(f"this model takes {self.query} queries (or embeddings), not labels")
        unknown = [n for n in names if n not in self.labels]
        if unknown:
            raise ValueError(f"unknown query label {unknown[0]!r}; this model knows: {', '.join(self.labels) or 'no labels'}")
        return torch.tensor([self.labels.index(n) for n in names], dtype=torch.long)

    def embed_query(self, query: torch.Tensor, kind: Optional[str] = None) -> torch.Tensor:
        """A query of ``kind`` (default: the model's) -> ``(batch, query_dim)``."""
        kind = kind or self.query
        if kind == "embedding":
            if query.dim() != 2 or query.shape[-1] != self.query_dim:
                raise ValueError(f"an embedding query is (batch, {self.query_dim}), got {tuple(query.shape)}")
            return query.float()
        if kind == "audio":
            if self.query != "audio":
                raise ValueError(f"this model takes {self.query} queries (or embeddings), not audio")
            if query.dim() != 3:
                raise ValueError(f"an audio query is (batch, channels, time), got {tuple(query.shape)}")
            return self.query_encoder(query)
        if kind == "label":
            if self.query != "label":
                raise ValueError(f"this model takes {self.query} queries (or embeddings), not labels")
            return self.label_table(query.long().reshape(-1))
        raise ValueError(f"query kind must be one of {QUERY_KINDS}, not {kind!r}")

    def classify_query(self, embedding: torch.Tensor) -> torch.Tensor:
        """``(batch, query_dim)`` -> stem-type logits ``(batch, query_classes)``."""
        if not hasattr(self, "query_classifier"):
            raise ValueError("this model has no query classifier (model.params.query_classes is 0)")
        return self.query_classifier(embedding)

    def compile_regions(self, **options) -> None:
        """Regional compilation (``train.compile``): the band split's and the mask decoder's
        real-valued parts and the TF block's passes, compiled in place (see :meth:`banda.models.bandit.Bandit.compile_regions`)."""
        self.band_split.compile_regions(**options)
        self.tf_model.compile_regions(**options)
        self.decoder.compile_regions(**options)

    # ------------------------------------------------------------------ separation
    def forward(self, mixture: torch.Tensor, query: torch.Tensor, query_kind: Optional[str] = None,
                with_query_logits: bool = False):
        """``(batch, channels, time)`` and a query of the batch -> ``(batch, 1, channels, time)``;
        with ``with_query_logits`` also the query's stem-type logits (:meth:`classify_query`),
        in the one forward pass that data parallelism sees."""
        embedding = self.embed_query(query, query_kind)
        estimate = self.separate_many(mixture, [embedding])
        return (estimate, self.classify_query(embedding)) if with_query_logits else estimate

    def separate_many(self, mixture: torch.Tensor, embeddings: List[torch.Tensor]) -> torch.Tensor:
        """One mixture, several query embeddings (each ``(batch, query_dim)``) ->
        ``(batch, len(embeddings), channels, time)``. The STFT, band split and the TF passes
        before the FiLM run once for all of them."""
        b, c, n = mixture.shape
        if c != self.in_channels:
            raise ValueError(f"model expects {self.in_channels} channels, got {c}")
        spec = self.stft(mixture)  # (b, c, f, t)
        if self.stereo == "per_channel":
            spec = spec.reshape(b * c, 1, *spec.shape[-2:])
        z = self.tf_model(self.band_split(spec), 0, self.split_at)
        masked = []
        for q in embeddings:
            if self.stereo == "per_channel":
                q = q.repeat_interleave(c, dim=0)
            h = self.tf_model(self.film(z, q), self.split_at)
            masked.append(spec * self.decoder(h, spec.shape[-2]))
        audio = self.stft.inverse(torch.stack(masked, dim=1), n)  # (batch', queries, channels', time)
        if self.stereo == "per_channel":
            audio = audio.reshape(b, c, -1, n).transpose(1, 2)
        return audio.reshape(b, -1, c, n)
