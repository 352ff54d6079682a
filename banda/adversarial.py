"""EnCodec's codec losses: multi-scale mel reconstruction, hinge GAN, relative feature matching,
and the gradient balancer.

Shapes: waveforms are ``(batch, channels, time)`` (``x`` the real audio, ``x̂`` the decoder's
reconstruction); a discriminator made of ``K`` sub-discriminators gives, per input, a list of
``K`` logit tensors (any shape, e.g. ``(batch, 1, frames, freq)``) and a list of ``K`` lists of
feature maps ``D_k^l`` (``l = 1..L_k``, any shapes). Every loss returns a scalar tensor.
Sources: Défossez et al., "High Fidelity Neural Audio Compression" (EnCodec, 2022), sec. 3.4,
and the released training code of its authors, ``facebookresearch/audiocraft``
(``losses/specloss.py``, ``adversarial/losses.py``, ``losses/balancer.py``,
``config/solver/compression/default.yaml``). Written here from those definitions.

:class:`MultiScaleMelLoss` (λf, the frequency-domain reconstruction loss)
    For each scale ``i`` in ``min_exp..max_exp`` (default 5..11: windows 32..2048, 7 scales):
    ``S_i`` = mel spectrogram with ``n_fft = win = 2^i``, ``hop = 2^i / 4``, Hann window,
    power 2, ``n_mels`` (64) HTK-scale triangular filters without area normalisation
    (torchaudio's ``MelSpectrogram`` defaults, as audiocraft), ``f_min`` 64 Hz (audiocraft's
    EnCodec recipe; the paper gives none) to ``f_max`` = Nyquist, and a *normalised* STFT
    (divided by ``sqrt(Σ window²)``, the paper's "normalized STFT"). Framing as audiocraft: the
    signal is reflect-padded by ``(n_fft - hop) / 2`` on both sides and zero-padded on the right
    to whole frames (``center=False``), which gives ``ceil(T / hop)`` frames. Then::

        L_f = Σ_i ( mean|S_i(x) - S_i(x̂)| + α_i · mean((log10(ε + S_i(x)) - log10(ε + S_i(x̂)))²) )
              / Σ_i (1 + α_i)

    with ``α_i = 1`` (the paper's choice; ``alphas=True`` gives audiocraft's optional
    ``sqrt(2^i - 1)``) and ``ε = 1e-5`` (``floor_level``). The paper writes the term as
    ``||S_i(x) - S_i(x̂)||_1 + α_i ||S_i(x) - S_i(x̂)||_2`` averaged over the terms; we follow
    the authors' released code, which takes the L1 on the linear mel and the L2 (mean square)
    on the log10 mel (``log_l2=False``: the L2 on the linear mel too, the literal formula), and
    divides by ``Σ(1 + α_i)`` (audiocraft's ``normalized=True``). Scales 2^5..2^11 are the
    paper's (audiocraft's EnCodec recipe uses 2^6..2^10). The means run over batch, channels,
    mel bins and frames: a multichannel input is scored per channel and averaged. Computed in
    float32 with autocast off; windows and filterbanks are built once (non-persistent buffers);
    mel filters that cover no FFT bin (many at 2^5 with 64 bands) are left out of the matrix
    product and counted back into the means as the zeros they give.

:func:`l1_waveform_loss` (λt)
    ``mean|x - x̂|`` over all elements.

:func:`hinge_generator_loss` (λg)
    ``1/K Σ_k mean(max(0, 1 - D_k(x̂)))`` (paper eq. for ``ℓ_g``; audiocraft's ``hinge2``).

:func:`hinge_discriminator_loss`
    ``1/K Σ_k [mean(max(0, 1 - D_k(x))) + mean(max(0, 1 + D_k(x̂)))]`` (paper's ``L_d``;
    audiocraft's ``hinge_real_loss + hinge_fake_loss``, normalised by ``K``).

:func:`feature_matching_loss` (λfeat)
    ``1/K Σ_k 1/L_k Σ_l mean|D_k^l(x) - D_k^l(x̂)| / mean|D_k^l(x)|`` -- the paper's relative
    L1 (``1/(KL) Σ_k Σ_l ||D_k^l(x) - D_k^l(x̂)||_1 / mean(||D_k^l(x)||_1)``, the same when every
    sub-discriminator has ``L`` layers). The denominator is detached (a normaliser) and floored
    at ``eps``. ``relative=False`` gives audiocraft's ``FeatureMatchingLoss`` (plain mean L1; it
    computes the scale but does not use it).

:class:`Balancer` (audiocraft's ``Balancer``; EnCodec sec. 3.4 "Balancer")
    With ``g_i = ∂ℓ_i/∂x̂`` (the losses' gradients on the decoder output) and ``avg`` an
    exponential moving average with bias correction over steps, the gradient sent into the
    decoder is::

        G = Σ_i  total_norm · (w_i / Σ_j w_j) · g_i / (epsilon + avg(||g_i||))

    so that loss ``i`` contributes the fraction ``w_i / Σ w`` of a gradient of norm about
    ``total_norm``, whatever the scale of ``ℓ_i``. ``||g||`` is, with ``per_batch_item``, the
    mean over the batch of the per-item L2 norms (else the norm of the whole tensor).
    ``balance_grads=False``: ``G = Σ_i w_i g_i``, the gradient of the plain weighted sum.
    Instead of calling ``x̂.backward(G)``, :meth:`Balancer.backward` returns a surrogate scalar
    whose gradient w.r.t. ``x̂`` is ``G`` and whose value is the weighted loss ``Σ_i w_i ℓ_i``
    (what the log and progress bar show: with the balancer, the effective loss ``Σ_i c_i ℓ_i``,
    ``c_i`` the multiplier applied to ``g_i``, is scaled by ``1 / avg(||g_i||)``, often by 10^4,
    and drifts with the averages; it is kept as ``effective_loss``), so the trainer's
    ``loss.backward()`` (through a GradScaler too) applies it; add further terms that do not go
    through ``x̂`` (a commitment loss) to it.
"""
import math
import warnings
from typing import Dict, List, Mapping, Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MultiScaleMelLoss",
    "l1_waveform_loss",
    "hinge_generator_loss",
    "hinge_discriminator_loss",
    "feature_matching_loss",
    "Balancer",
]


# --------------------------------------------------------------------------- reconstruction


class MultiScaleMelLoss(nn.Module):
    """EnCodec's multi-scale mel-spectrogram loss ``L_f`` (see the module doc for the formula).

    Args:
        sample_rate: of the audio, in Hz.
        min_exp, max_exp: scales ``2^min_exp .. 2^max_exp`` (inclusive) as window = FFT size;
            hop = window / 4.
        n_mels: mel bins per scale.
        f_min, f_max: mel filterbank range in Hz (``f_max=None``: Nyquist).
        normalized: window-normalised STFT (divided by ``sqrt(Σ window²)``), as the paper.
        log_l2: take the L2 term on ``log10(floor_level + mel)`` (audiocraft) instead of the
            linear mel.
        alphas: ``α_i = sqrt(2^i - 1)`` instead of 1.
        floor_level: ``ε`` inside the log.
    Call: ``loss(estimate, target)`` with ``(batch, channels, time)`` (or ``(batch, time)``)
    tensors of equal shape -> scalar; symmetric in its two arguments.
    """

    def __init__(self, sample_rate: int, min_exp: int = 5, max_exp: int = 11, n_mels: int = 64,
                 f_min: float = 64.0, f_max: Optional[float] = None, normalized: bool = True,
                 log_l2: bool = True, alphas: bool = False, floor_level: float = 1e-5):
        super().__init__()
        if not 1 <= min_exp <= max_exp:
            raise ValueError(f"need 1 <= min_exp <= max_exp, got {min_exp}, {max_exp}")
        if n_mels < 1:
            raise ValueError(f"n_mels must be >= 1, got {n_mels}")
        from torchaudio.functional import melscale_fbanks

        self.sample_rate = int(sample_rate)
        self.n_ffts = [2 ** e for e in range(min_exp, max_exp + 1)]
        self.alphas = [math.sqrt(n - 1) if alphas else 1.0 for n in self.n_ffts]
        self.log_l2, self.floor_level = bool(log_l2), float(floor_level)
        f_max = self.sample_rate / 2 if f_max is None else float(f_max)
        self.kept: List[float] = []  # per scale: fraction of the n_mels filters that are not empty
        for i, n_fft in enumerate(self.n_ffts):
            window = torch.hann_window(n_fft, dtype=torch.float32)
            if normalized:
                window = window / window.pow(2).sum().sqrt()
            with warnings.catch_warnings():  # small FFTs leave some of the mel filters empty
                warnings.simplefilter("ignore")
                fb = melscale_fbanks(n_fft // 2 + 1, float(f_min), f_max, n_mels, self.sample_rate,
                                     norm=None, mel_scale="htk")
            # Filters that cover no FFT bin (many at small FFT sizes) give 0 for both signals:
            # they are left out and counted back in the means by ``self.kept``.
            keep = fb.abs().sum(0) > 0
            self.kept.append(int(keep.sum()) / n_mels)
            self.register_buffer(f"window{i}", window, persistent=False)
            self.register_buffer(f"fbank{i}", fb[:, keep].float().contiguous(), persistent=False)  # (freqs, kept)

    @property
    def n_scales(self) -> int:
        return len(self.n_ffts)

    def mel(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Power mel spectrogram of scale ``i``: ``(n, time)`` -> ``(n, mels, ceil(time / hop))``,
        without the empty mel filters (``mels = kept[i] * n_mels``)."""
        n_fft = self.n_ffts[i]
        hop = n_fft // 4
        pad = (n_fft - hop) // 2
        x = F.pad(x.unsqueeze(1), (pad, pad), "reflect" if x.shape[-1] > pad else "constant").squeeze(1)
        length = x.shape[-1]
        frames = max(math.ceil((length - n_fft) / hop), 0) + 1
        x = F.pad(x, (0, (frames - 1) * hop + n_fft - length))
        spec = torch.stft(x, n_fft, hop, n_fft, window=getattr(self, f"window{i}"), center=False,
                          return_complex=True)
        power = spec.real.pow(2) + spec.imag.pow(2)  # (n, freqs, frames)
        return torch.matmul(power.transpose(1, 2), getattr(self, f"fbank{i}")).transpose(1, 2)

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if estimate.shape != target.shape:
            raise ValueError(f"estimate {tuple(estimate.shape)} and target {tuple(target.shape)} differ in shape")
        n = target.shape[-1]
        with torch.autocast(target.device.type, enabled=False):
            both = torch.cat([estimate.reshape(-1, n).float(), target.reshape(-1, n).float()])
            half = both.shape[0] // 2
            total = both.new_zeros(())
            for i, alpha in enumerate(self.alphas):
                if not self.kept[i]:  # no filter covers an FFT bin: the scale's terms are 0
                    continue
                s = self.mel(both, i)
                a, b = s[:half], s[half:]
                term = F.l1_loss(a, b)
                if self.log_l2:
                    a, b = torch.log10(self.floor_level + a), torch.log10(self.floor_level + b)
                term = term + alpha * F.mse_loss(a, b)
                total = total + self.kept[i] * term  # the empty filters' zeros, counted in the means
        return total / sum(1.0 + a for a in self.alphas)


def l1_waveform_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """EnCodec's time-domain loss ``ℓ_t``: ``mean|target - estimate|`` over all elements."""
    return F.l1_loss(estimate, target)


# --------------------------------------------------------------------------- adversarial


def _check_list(name: str, xs: Sequence) -> None:
    if len(xs) == 0:
        raise ValueError(f"{name}: no discriminator outputs")


def hinge_generator_loss(logits_fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """``1/K Σ_k mean(relu(1 - D_k(x̂)))`` over the ``K`` sub-discriminators' logits on the
    reconstruction."""
    _check_list("hinge_generator_loss", logits_fake)
    return sum(F.relu(1 - f).mean() for f in logits_fake) / len(logits_fake)


def hinge_discriminator_loss(logits_real: Sequence[torch.Tensor], logits_fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """``1/K Σ_k [mean(relu(1 - D_k(x))) + mean(relu(1 + D_k(x̂)))]`` (pass the reconstruction
    detached)."""
    _check_list("hinge_discriminator_loss", logits_real)
    if len(logits_real) != len(logits_fake):
        raise ValueError(f"{len(logits_real)} real and {len(logits_fake)} fake discriminator outputs")
    terms = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(logits_real, logits_fake)]
    return sum(terms) / len(terms)


def feature_matching_loss(feats_real: Sequence[Sequence[torch.Tensor]], feats_fake: Sequence[Sequence[torch.Tensor]],
                          relative: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """EnCodec's relative L1 feature matching: ``1/K Σ_k 1/L_k Σ_l mean|r - f| / mean|r|`` with
    ``r = D_k^l(x)``, ``f = D_k^l(x̂)`` (feats as ``[discriminator][layer]``). The denominator
    is detached and floored at ``eps``; ``relative=False`` drops it (plain mean L1)."""
    _check_list("feature_matching_loss", feats_real)
    if len(feats_real) != len(feats_fake):
        raise ValueError(f"{len(feats_real)} real and {len(feats_fake)} fake discriminator outputs")
    per_disc = []
    for k, (rs, fs) in enumerate(zip(feats_real, feats_fake)):
        if len(rs) != len(fs) or not rs:
            raise ValueError(f"discriminator {k}: {len(rs)} real and {len(fs)} fake feature maps")
        layers = []
        for r, f in zip(rs, fs):
            if r.shape != f.shape:
                raise ValueError(f"discriminator {k}: feature shapes {tuple(r.shape)} and {tuple(f.shape)} differ")
            d = F.l1_loss(f, r)
            if relative:
                d = d / r.detach().abs().mean().clamp_min(eps)
            layers.append(d)
        per_disc.append(sum(layers) / len(layers))
    return sum(per_disc) / len(per_disc)


# --------------------------------------------------------------------------- balancer


class Balancer:
    """EnCodec's loss balancer (see the module doc for the formula).

    Args:
        weights: loss name -> weight ``w_i >= 0``; a loss with weight 0 is skipped (no gradient
            is computed for it). With ``balance_grads`` the weights only set the shares
            ``w_i / Σ w`` (over the losses given to :meth:`backward`).
        balance_grads: rescale the gradients (else: the plain weighted sum ``Σ w_i g_i``).
        total_norm: the norm the balanced gradient's components add up to.
        ema_decay: decay ``β`` of the moving average of the norms, with bias correction
            (audiocraft/flashy's ``averager``): ``avg_t = Σ_s β^(t-s) n_s / Σ_s β^(t-s)``, so the
            first step uses the step's own norm. ``0`` = the current norm only; ``None`` or ``1``
            = the plain mean over all steps (audiocraft turns 0 into 1; we do not).
        per_batch_item: ``||g||`` = mean over the batch (dim 0) of the per-item norms.
        epsilon: added to the averaged norm in the denominator.

    State (:meth:`state_dict`, :meth:`load_state_dict`): the EMA numerator and denominator per
    loss, as floats, so that a resumed run continues the same averages. Under
    ``torch.distributed`` the step's norms are averaged over the ranks (weighted by batch
    size) before the EMA update, so every rank holds the same state and applies the same
    scales; :meth:`backward` is then a collective call.

    After :meth:`backward`, for logging: ``last_norms`` (this step's ``||g_i||``),
    ``last_avg_norms`` (the EMA), ``last_scales`` (the multiplier ``c_i`` applied to ``g_i``),
    ``effective_loss`` (``Σ c_i ℓ_i``); all detached 0-d tensors, read without a host sync.
    """

    def __init__(self, weights: Mapping[str, float], balance_grads: bool = True, total_norm: float = 1.0,
                 ema_decay: Optional[float] = 0.999, per_batch_item: bool = True, epsilon: float = 1e-12):
        for k, w in weights.items():
            if not (math.isfinite(float(w)) and float(w) >= 0):
                raise ValueError(f"balancer weight {k!r} must be a finite number >= 0, got {w!r}")
        if not (math.isfinite(float(total_norm)) and float(total_norm) > 0):
            raise ValueError(f"total_norm must be > 0, got {total_norm!r}")
        decay = 1.0 if ema_decay is None else float(ema_decay)
        if not 0 <= decay <= 1:
            raise ValueError(f"ema_decay must be in [0, 1], got {ema_decay!r}")
        self.weights = {k: float(w) for k, w in weights.items()}
        self.balance_grads = bool(balance_grads)
        self.total_norm = float(total_norm)
        self.ema_decay = decay
        self.per_batch_item = bool(per_batch_item)
        self.epsilon = float(epsilon)
        self._total: Dict[str, torch.Tensor] = {}  # EMA numerators Σ β^(t-s) n_s
        self._fix: Dict[str, torch.Tensor] = {}  # EMA denominators Σ β^(t-s)
        self.last_norms: Dict[str, torch.Tensor] = {}
        self.last_avg_norms: Dict[str, torch.Tensor] = {}
        self.last_scales: Dict[str, torch.Tensor] = {}
        self.effective_loss: Optional[torch.Tensor] = None

    # ---------------------------------------------------------------- state
    def state_dict(self) -> Dict[str, Dict[str, float]]:
        return {"total": {k: float(v) for k, v in self._total.items()},
                "fix": {k: float(v) for k, v in self._fix.items()}}

    def load_state_dict(self, state: Mapping[str, Mapping[str, float]]) -> None:
        total, fix = dict(state.get("total", {})), dict(state.get("fix", {}))
        if set(total) != set(fix):
            raise ValueError(f"balancer state: numerators {sorted(total)} and denominators {sorted(fix)} differ")
        self._total = {k: torch.as_tensor(float(v), dtype=torch.float32) for k, v in total.items()}
        self._fix = {k: torch.as_tensor(float(v), dtype=torch.float32) for k, v in fix.items()}

    # ---------------------------------------------------------------- step
    def _norm(self, grad: torch.Tensor) -> torch.Tensor:
        if self.per_batch_item and grad.dim() > 1:
            return grad.flatten(1).norm(p=2, dim=1).mean()
        return grad.norm(p=2)

    def backward(self, losses: Mapping[str, torch.Tensor], input: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Balance the gradients of ``losses`` (scalars that depend on the model only through
        ``input``, the decoder output) and return the surrogate loss (see the class doc).

        ``scale``: a loss scale (the fp16 GradScaler's) by which the losses are multiplied before
        their gradients are taken and the gradients divided after, so that small gradients do
        not underflow in half-precision parts of the loss graphs. It does not change the result.
        The EMA is not updated on a step where any norm is not finite (the returned surrogate and
        its gradient are then not finite either, so the trainer skips the step).
        """
        unknown = [k for k in losses if k not in self.weights]
        if unknown:
            raise ValueError(f"losses {unknown} have no balancer weight (weights: {sorted(self.weights)})")
        names = [k for k in losses if self.weights[k] > 0]
        scale = float(scale)
        x32 = input.float()
        self.last_norms, self.last_avg_norms, self.last_scales = {}, {}, {}
        if not names:
            self.effective_loss = x32.new_zeros(())
            return (x32 * 0.0).sum()
        grads, norms = {}, {}
        for k in names:
            loss = losses[k]
            if loss.requires_grad:
                (g,) = torch.autograd.grad(loss * scale if scale != 1.0 else loss, [input],
                                           retain_graph=True, allow_unused=True)
            else:
                g = None
            g = torch.zeros_like(x32) if g is None else g.float()
            grads[k] = g / scale if scale != 1.0 else g
            norms[k] = self._norm(grads[k]).detach()
        norms = self._reduce(norms, input.shape[0] if input.dim() > 0 else 1)
        beta = self.ema_decay
        # one non-finite norm: the step is skipped (its gradient is not finite), so is the update
        finite = torch.stack([torch.isfinite(norms[k]) for k in names]).all()
        avg = {}
        for k in names:
            n = norms[k]
            total = self._total.get(k, n.new_zeros(())).to(n.device)
            fix = self._fix.get(k, n.new_zeros(())).to(n.device)
            total = torch.where(finite, total * beta + n, total)
            fix = torch.where(finite, fix * beta + 1.0, fix)
            self._total[k], self._fix[k] = total, fix
            avg[k] = torch.where(fix > 0, total / fix.clamp_min(1e-30), n)
        sum_w = sum(self.weights[k] for k in names)
        out_grad = torch.zeros_like(x32)
        effective = x32.new_zeros(())
        weighted = sum(self.weights[k] * losses[k].detach().float() for k in names)
        for k in names:
            if self.balance_grads:
                c = (self.weights[k] / sum_w) * self.total_norm / (self.epsilon + avg[k])
            else:
                c = torch.full((), self.weights[k], device=x32.device)
            out_grad = out_grad + c * grads[k]
            effective = effective + c * losses[k].detach().float()
            self.last_scales[k] = c.detach()
        self.last_norms = {k: norms[k] for k in names}
        self.last_avg_norms = {k: avg[k].detach() for k in names}
        self.effective_loss = effective.detach()
        dot = (x32 * out_grad).sum()
        return dot - dot.detach() + weighted

    @staticmethod
    def _reduce(norms: Dict[str, torch.Tensor], count: int) -> Dict[str, torch.Tensor]:
        """Average the norms over the ranks (weighted by batch size) when distributed."""
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return norms
        keys = list(norms)
        vec = torch.stack([norms[k].float() * count for k in keys] + [norms[keys[0]].new_tensor(float(count))])
        dist.all_reduce(vec)
        return {k: vec[i] / vec[-1] for i, k in enumerate(keys)}

    def __repr__(self) -> str:
        return (f"Balancer(weights={self.weights}, balance_grads={self.balance_grads}, total_norm={self.total_norm}, "
                f"ema_decay={self.ema_decay}, per_batch_item={self.per_batch_item})")
