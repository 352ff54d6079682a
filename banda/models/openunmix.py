"""Open-Unmix (Stöter et al., 2019): one BiLSTM magnitude model per stem, Wiener post-filter.

mixture ``(batch, channels, time)`` -> STFT -> magnitude ``(batch, channels, freq, frames)``
-> per stem an :class:`UnmixTarget` (a magnitude estimate) -> multichannel Wiener filter
(:func:`banda.wiener.wiener`, ``niter`` EM iterations) or the mixture's phase -> iSTFT ->
``(batch, stems, channels, time)``.

The per-stem module has the parameter names, shapes and arithmetic of Open-Unmix's
``openunmix.model.OpenUnmix`` (version 1.3.0), so the published weights (plain state dicts,
one per target) load into it unchanged, and :class:`OpenUnmix` reproduces Open-Unmix's
``Separator`` (STFT: periodic Hann window, ``center=True`` with reflect padding, not
normalised; magnitude ``|X|``; Wiener filtering over windows of ``wiener_win_len`` frames).

Published model folders (``umxhq``, ``umxl``, ``umxse``, ``umx``, or one written by
Open-Unmix's ``train.py``) load with :func:`load_openunmix`, which
:func:`banda.models.load_model` calls for such a folder. A folder holds

- ``separator.json``: ``{"nfft", "nhop", "sample_rate", "nb_channels"}`` (required, as
  Open-Unmix's ``load_separator`` reads it). banda also reads these optional fields, absent
  from the published files: ``targets`` (list: which stems, in this order), ``niter``
  (default 1), ``residual`` (default false), ``softmask`` (default false),
  ``wiener_win_len`` (default 300; ``null``: all frames), ``wiener_eps`` (1e-10) and
  ``wiener_precision`` (``float32``) -- Open-Unmix's published defaults;
- ``<target>.pth`` per target (a plain state dict; the published names carry a hash,
  ``vocals-b62c91ce.pth`` or ``speech_f5e0d9f9.pth``), for every target loaded;
- ``<target>.json`` per target (optional here): Open-Unmix's training record, whose
  ``args`` (``nfft``, ``nb_channels``, ``hidden_size``, ``unidirectional``) are checked
  against the weights. The architecture itself is read off the weights (``max_bin`` from
  ``input_mean`` as Open-Unmix does, the hidden size, layers and directions from the
  ``fc1`` and ``lstm`` tensors).

Training (banda's Trainer compares waveforms): in training mode the forward pass skips
the Wiener filter (``niter`` is 0 while ``self.training``) and returns
``iSTFT(|estimate| * mixture phase)``; the ``mse_magnitude`` loss then compares the
magnitude spectrograms of the estimated and target waveforms. This is close to, not the
same as, Open-Unmix's loss on the network's magnitude output (the STFT of an iSTFT is the
nearest consistent spectrogram, not the estimate itself). ``input_mean``/``input_scale``
start at 0/1 (no normalisation; both are trained, as in Open-Unmix); Open-Unmix
initialises them from the training set's statistics: :func:`input_statistics` and
:func:`save_input_statistics` write such a start for ``banda-train --init_param``.
"""
import json
import logging
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BandaError, ConfigError
from ..wiener import PRECISIONS, wiener
from .registry import MODELS
from .stft import STFT

log = logging.getLogger("banda.models.openunmix")

# The published defaults of Open-Unmix's separators (umxhq, umxl, umxse, umx).
PUBLISHED_WIENER = {"niter": 1, "residual": False, "softmask": False, "wiener_win_len": 300, "wiener_eps": 1e-10,
                    "wiener_precision": "float32"}
SEPARATOR_JSON = "separator.json"
SEPARATOR_KEYS = ("nfft", "nhop", "sample_rate", "nb_channels")
# Stems in this order first when a folder's targets are discovered from its files.
KNOWN_ORDER = ("vocals", "drums", "bass", "other", "speech", "noise")
RESIDUAL_STEM = "residual"


def bandwidth_to_max_bin(sample_rate: float, n_fft: int, bandwidth: float) -> int:
    """Bins ``0..max_bin-1`` are those at or below ``bandwidth`` Hz (Open-Unmix's rule)."""
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1, endpoint=True)
    return int(np.max(np.where(freqs <= bandwidth)[0]) + 1)


class UnmixTarget(nn.Module):
    """One stem's magnitude model, parameter for parameter Open-Unmix's ``OpenUnmix``.

    ``(batch, channels, freq, frames)`` mixture magnitude -> the stem's magnitude estimate,
    same shape: crop to ``max_bin`` bins -> ``(x + input_mean) * input_scale`` -> per frame
    ``fc1`` (channels x bins -> hidden) + BatchNorm -> tanh -> ``nb_layers`` LSTM layers
    (bidirectional: ``hidden/2`` per direction) -> concatenated with their input (skip) ->
    ``fc2`` + BatchNorm + ReLU -> ``fc3`` (-> channels x all bins) + BatchNorm ->
    ``x * output_scale + output_mean`` -> ReLU -> times the mixture magnitude.
    ``input_mean`` holds the *negated* mean and ``input_scale`` the *inverse* std, as in
    Open-Unmix's state dicts.
    """

    def __init__(self, nb_bins: int = 2049, nb_channels: int = 2, hidden_size: int = 512, nb_layers: int = 3,
                 unidirectional: bool = False, max_bin: Optional[int] = None, lstm_dropout: float = 0.4):
        super().__init__()
        self.nb_output_bins = nb_bins
        self.nb_bins = int(max_bin) if max_bin else nb_bins
        if not 0 < self.nb_bins <= nb_bins:
            raise ConfigError(f"model.params.max_bin must be in 1..{nb_bins}, not {max_bin!r}")
        if not unidirectional and hidden_size % 2:
            raise ConfigError(f"model.params.hidden_size must be even for a bidirectional LSTM, not {hidden_size}")
        self.nb_channels = nb_channels
        self.hidden_size = hidden_size
        self.fc1 = nn.Linear(self.nb_bins * nb_channels, hidden_size, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden_size)
        self.lstm = nn.LSTM(
            input_size=hidden_size,
            hidden_size=hidden_size if unidirectional else hidden_size // 2,
            num_layers=nb_layers,
            bidirectional=not unidirectional,
            batch_first=False,
            dropout=lstm_dropout if nb_layers > 1 else 0.0,
        )
        self.fc2 = nn.Linear(2 * hidden_size, hidden_size, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden_size)
        self.fc3 = nn.Linear(hidden_size, nb_bins * nb_channels, bias=False)
        self.bn3 = nn.BatchNorm1d(nb_bins * nb_channels)
        self.input_mean = nn.Parameter(torch.zeros(self.nb_bins))
        self.input_scale = nn.Parameter(torch.ones(self.nb_bins))
        self.output_scale = nn.Parameter(torch.ones(nb_bins))
        self.output_mean = nn.Parameter(torch.ones(nb_bins))

    def set_input_statistics(self, mean, std) -> None:
        """Normalise inputs by a per-bin ``mean`` and ``std`` (arrays of >= ``max_bin`` bins)."""
        mean = torch.as_tensor(np.asarray(mean)[: self.nb_bins], dtype=torch.float32)
        std = torch.as_tensor(np.asarray(std)[: self.nb_bins], dtype=torch.float32)
        with torch.no_grad():
            self.input_mean.copy_(-mean)
            self.input_scale.copy_(1.0 / std)

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        x = mag.permute(3, 0, 1, 2)  # (frames, batch, channels, freq): the LSTM runs over frames
        frames, batch, channels, _ = x.shape
        mix = x.detach()
        x = (x[..., : self.nb_bins] + self.input_mean) * self.input_scale
        x = self.bn1(self.fc1(x.reshape(-1, channels * self.nb_bins)))
        x = torch.tanh(x.reshape(frames, batch, self.hidden_size))
        x = torch.cat([x, self.lstm(x)[0]], -1)
        x = F.relu(self.bn2(self.fc2(x.reshape(-1, x.shape[-1]))))
        x = self.bn3(self.fc3(x)).reshape(frames, batch, channels, self.nb_output_bins)
        x = x * self.output_scale + self.output_mean
        return (F.relu(x) * mix).permute(1, 2, 3, 0)


@MODELS.register("openunmix")
class OpenUnmix(nn.Module):
    """Open-Unmix separator: one :class:`UnmixTarget` per stem and a Wiener post-filter.

    Args:
        stems: output stems; one magnitude model each, except the last with ``residual``.
        in_channels: 1 or 2 (Open-Unmix's ``nb_channels``).
        n_fft, hop_length: STFT (Hann, centred); 4096/1024 at 44.1 kHz as UMX-HQ, 1024/512 at
            16 kHz as UMX-SE.
        hidden_size: bottleneck width (512 UMX-HQ, 1024 UMX-L, 256 UMX-SE); ``nb_layers`` LSTM
            layers, ``unidirectional`` for a causal LSTM, ``lstm_dropout`` between layers.
        bandwidth: the model sees the bins up to this frequency (Hz; 16 kHz as published;
            ``null``: all); ``max_bin``, when set, gives that bin count directly instead.
        niter: Wiener EM iterations at inference (0: magnitudes with the mixture's phase, or
            soft masks with ``softmask``); never applied while training. Needs >= 2 stems.
        softmask: initial estimates by ratio masks instead of the estimated magnitudes.
        residual: the last stem is not modelled but is the mixture minus the other
            estimates (before Wiener), e.g. ``stems: [vocals, accompaniment]``.
        wiener_win_len: frames filtered together (``null``: all); ``wiener_eps``: the
            filter's regulariser; ``wiener_precision``: ``float32`` (as Open-Unmix) or ``float64``.
    """

    def __init__(
        self,
        stems: Sequence[str] = ("vocals", "drums", "bass", "other"),
        in_channels: int = 2,
        sample_rate: int = 44100,
        n_fft: int = 4096,
        hop_length: int = 1024,
        hidden_size: int = 512,
        nb_layers: int = 3,
        unidirectional: bool = False,
        lstm_dropout: float = 0.4,
        bandwidth: Optional[float] = 16000.0,
        max_bin: Optional[int] = None,
        niter: int = 1,
        softmask: bool = False,
        residual: bool = False,
        wiener_win_len: Optional[int] = 300,
        wiener_eps: float = 1e-10,
        wiener_precision: str = "float32",
    ):
        super().__init__()
        self.stems = list(stems)
        if len(set(self.stems)) != len(self.stems) or not self.stems:
            raise ConfigError(f"stems must be distinct and at least one, got {self.stems}")
        if residual and len(self.stems) < 2:
            raise ConfigError("model.params.residual: the last stem is the residual, so stems needs at least two names")
        if niter < 0:
            raise ConfigError(f"model.params.niter must be >= 0, not {niter}")
        if niter > 0 and len(self.stems) < 2:
            raise ConfigError(f"model.params.niter {niter}: Wiener filtering needs at least two stems "
                              f"(stems {self.stems}); set niter: 0, or residual: true with a second stem")
        if wiener_precision not in PRECISIONS:
            raise ConfigError(f"model.params.wiener_precision must be one of {', '.join(PRECISIONS)}, not {wiener_precision!r}")
        if wiener_win_len is not None and wiener_win_len < 1:
            raise ConfigError(f"model.params.wiener_win_len must be >= 1 or null, not {wiener_win_len}")
        self.in_channels = in_channels
        self.sample_rate = sample_rate
        self.stft = STFT(n_fft, hop_length)
        n_freq = n_fft // 2 + 1
        if max_bin is None:
            max_bin = bandwidth_to_max_bin(sample_rate, n_fft, bandwidth) if bandwidth is not None else n_freq
        self.max_bin = int(max_bin)
        self.niter, self.softmask, self.residual = int(niter), bool(softmask), bool(residual)
        self.wiener_win_len, self.wiener_eps, self.wiener_precision = wiener_win_len, float(wiener_eps), wiener_precision
        self.targets = self.stems[:-1] if residual else list(self.stems)
        self.target_models = nn.ModuleDict({
            stem: UnmixTarget(n_freq, in_channels, hidden_size, nb_layers, unidirectional, self.max_bin, lstm_dropout)
            for stem in self.targets
        })

    def magnitudes(self, spec: torch.Tensor) -> torch.Tensor:
        """Mixture STFT ``(batch, channels, freq, frames)`` -> ``(batch, targets, channels, freq, frames)`` estimates."""
        mag = spec.abs()
        return torch.stack([self.target_models[stem](mag).float() for stem in self.targets], dim=1)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, time)`` -> ``(batch, stems, channels, time)``."""
        b, c, n = mixture.shape
        if c != self.in_channels:
            raise ValueError(f"model expects {self.in_channels} channels, got {c}")
        spec = self.stft(mixture)
        niter = 0 if self.training else self.niter
        est = wiener(self.magnitudes(spec), spec, niter, softmask=self.softmask, residual=self.residual,
                     eps=self.wiener_eps, window=self.wiener_win_len, precision=self.wiener_precision)
        return self.stft.inverse(est, n)


# ---------------------------------------------------------------------- input statistics
@torch.no_grad()
def input_statistics(mixtures: Iterable, n_fft: int = 4096, hop_length: int = 1024) -> Tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and std of the mixture magnitude over all frames, as Open-Unmix's
    ``train.py`` computes them (channels averaged in magnitude; std floored at 1e-4 of its max).

    ``mixtures``: ``(channels, time)`` arrays or tensors (e.g. the training tracks' mixtures).
    Returns two float64 arrays of ``n_fft // 2 + 1`` bins.
    """
    stft = STFT(n_fft, hop_length)
    count, total, total_sq = 0, 0.0, 0.0
    for audio in mixtures:
        mag = stft(torch.as_tensor(np.asarray(audio, dtype=np.float32))).abs().mean(0).double()  # (freq, frames)
        count += mag.shape[1]
        total = total + mag.sum(1)
        total_sq = total_sq + mag.square().sum(1)
    if count == 0:
        raise BandaError("input_statistics: no audio given")
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    std = torch.maximum(std, 1e-4 * std.max())
    return mean.numpy(), std.numpy()


def save_input_statistics(model: OpenUnmix, mean, std, path) -> Path:
    """Write ``input_mean``/``input_scale`` of every target of ``model`` from ``mean``/``std``
    as a state dict that ``banda-train --init_param PATH`` loads into a fresh run (the
    other weights keep their initialisation)::

        from banda.models import build_model
        from banda.datadir import read_scp
        from banda.audio import read_audio
        model = build_model("openunmix", dict(stems=["vocals"], in_channels=2, sample_rate=44100, niter=0))
        mixes = (read_audio(p)[0] for p in read_scp("data/train/mix.scp").values())
        save_input_statistics(model, *input_statistics(mixes), "exp/umx_input_stats.pth")
    """
    state = {}
    for stem, target in model.target_models.items():
        target.set_input_statistics(mean, std)
        state[f"target_models.{stem}.input_mean"] = target.input_mean.detach().clone()
        state[f"target_models.{stem}.input_scale"] = target.input_scale.detach().clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state}, path)
    return path


# ---------------------------------------------------------------------- published folders
def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BandaError(f"{path}: not a readable JSON file ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise BandaError(f"{path}: expected a JSON object")
    return data


def _weight_files(folder: Path) -> Dict[str, List[Path]]:
    """Target name -> its ``<target>.pth`` / ``<target>-<hash>.pth`` / ``<target>_<hash>.pth`` files."""
    found: Dict[str, List[Path]] = {}
    for path in sorted(folder.glob("*.pth")):
        m = re.fullmatch(r"(.+?)(?:[-_][0-9a-f]{6,64})?\.pth", path.name)
        if m:
            found.setdefault(m.group(1), []).append(path)
    return found


def is_openunmix_folder(path) -> bool:
    """A folder with ``separator.json``, or with an Open-Unmix ``<target>.json`` (one holding ``args``)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / SEPARATOR_JSON).is_file():
        return True
    for js in path.glob("*.json"):
        try:
            if isinstance(json.loads(js.read_text()).get("args"), dict):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def _order(names: Iterable[str]) -> List[str]:
    names = set(names)
    return [n for n in KNOWN_ORDER if n in names] + sorted(names - set(KNOWN_ORDER))


def _load_state(path: Path) -> Dict[str, torch.Tensor]:
    from ..fileio import safe_torch_load

    state = safe_torch_load(path, what="weights file")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a training checkpoint
        state = state["state_dict"]
    need = ("input_mean", "fc1.weight", "output_mean", "lstm.weight_ih_l0")
    if not isinstance(state, dict) or not all(torch.is_tensor(state.get(k)) for k in need):
        raise BandaError(f"{path}: not an Open-Unmix target state dict (no {', '.join(need)})")
    return state


def _architecture(state: Dict[str, torch.Tensor], path: Path) -> Dict[str, int]:
    """The target model's arguments read off its weights."""
    max_bin = state["input_mean"].shape[0]
    hidden, fc1_in = state["fc1.weight"].shape
    if fc1_in % max_bin:
        raise BandaError(f"{path}: fc1.weight {tuple(state['fc1.weight'].shape)} does not fit input_mean of {max_bin} bins")
    layers = sum(1 for k in state if re.fullmatch(r"lstm\.weight_ih_l\d+", k))
    return {"nb_bins": state["output_mean"].shape[0], "nb_channels": fc1_in // max_bin, "hidden_size": hidden,
            "nb_layers": layers, "unidirectional": "lstm.weight_ih_l0_reverse" not in state, "max_bin": max_bin}


def _check_args(arch: Dict[str, int], args: dict, path: Path) -> None:
    """Compare the weights' architecture with a ``<target>.json``'s training ``args``."""
    expect = {"nb_bins": ("nfft", lambda v: int(v) // 2 + 1), "nb_channels": ("nb_channels", int),
              "hidden_size": ("hidden_size", int), "unidirectional": ("unidirectional", bool)}
    for key, (arg, conv) in expect.items():
        if arg in args and args[arg] is not None and conv(args[arg]) != arch[key]:
            raise BandaError(f"{path}: args.{arg} = {args[arg]!r} does not fit the weights ({key} {arch[key]})")


def _load_into(module: nn.Module, state: Dict[str, torch.Tensor], path: Path) -> None:
    """Non-strict like Open-Unmix (extra keys, e.g. an old ``stft.window``, are ignored), but
    every parameter must be there with its shape."""
    own = module.state_dict()
    for key, value in state.items():
        if key in own and tuple(value.shape) != tuple(own[key].shape):
            raise BandaError(f"{path}: {key} has shape {tuple(value.shape)}, the model needs {tuple(own[key].shape)}")
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise BandaError(f"{path}: missing {len(missing)} weights, e.g. {', '.join(missing[:3])}")
    extra = sorted(set(state) - set(own))
    if extra:
        log.debug("%s: ignoring %d extra entries (%s)", path, len(extra), ", ".join(extra[:5]))
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def _read_folder(folder, targets: Optional[Sequence[str]] = None, **wiener_options) -> Tuple[dict, Dict[str, tuple]]:
    """The :class:`OpenUnmix` arguments of a published Open-Unmix folder and, per target,
    ``(weights path, state dict)`` (see the module doc). ``wiener_options`` (``niter``,
    ``residual``, ``softmask``, ``wiener_win_len``) override ``separator.json`` and the
    published defaults."""
    folder = Path(folder)
    sep_path = folder / SEPARATOR_JSON
    if not sep_path.is_file():
        raise BandaError(f"{sep_path}: missing; an Open-Unmix model folder needs it (keys: {', '.join(SEPARATOR_KEYS)})")
    sep = _read_json(sep_path)
    absent = [k for k in SEPARATOR_KEYS if k not in sep]
    if absent:
        raise BandaError(f"{sep_path}: no {', '.join(absent)} (an Open-Unmix separator.json has {', '.join(SEPARATOR_KEYS)})")
    for key in SEPARATOR_KEYS:
        value = sep[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != int(value):
            raise BandaError(f"{sep_path}: {key} must be a positive whole number, got {value!r}")
    if "targets" in sep and not (isinstance(sep["targets"], list) and all(isinstance(t, str) for t in sep["targets"])):
        raise BandaError(f"{sep_path}: targets must be a list of names, got {sep['targets']!r}")
    unknown = set(wiener_options) - set(PUBLISHED_WIENER)
    if unknown:
        raise TypeError(f"unknown Open-Unmix option(s) {sorted(unknown)} (known: {', '.join(PUBLISHED_WIENER)})")
    weights = _weight_files(folder)
    if targets is None:
        targets = sep.get("targets")
    if targets is None:
        targets = _order(weights)
        if not targets:
            raise BandaError(f"{folder}: no <target>.pth weights found")
    targets = [str(t) for t in targets]
    files: Dict[str, Path] = {}
    for t in targets:
        cands = weights.get(t, [])
        if len(cands) != 1:
            what = "no weights" if not cands else f"several weights files ({', '.join(p.name for p in cands)})"
            raise BandaError(f"{folder}: {what} for target {t!r} (expected {t}.pth or {t}-<hash>.pth)")
        files[t] = cands[0]
    options = {k: sep.get(k, v) for k, v in PUBLISHED_WIENER.items()}
    options.update({k: v for k, v in wiener_options.items() if v is not None})
    n_fft, channels = int(sep["nfft"]), int(sep["nb_channels"])
    n_sources = len(targets) + int(bool(options["residual"]))
    if n_sources < 2 and options["niter"] and "niter" not in sep and wiener_options.get("niter") is None:
        log.info("%s: one target and no residual: Wiener filtering off (niter 0)", folder)
        options["niter"] = 0
    arch, states = None, {}
    for t, path in files.items():
        state = _load_state(path)
        states[t] = (path, state)
        a = _architecture(state, path)
        if (folder / f"{t}.json").is_file():
            args = _read_json(folder / f"{t}.json").get("args")
            if isinstance(args, dict):
                _check_args(a, args, folder / f"{t}.json")
        if a["nb_bins"] != n_fft // 2 + 1 or a["nb_channels"] != channels:
            raise BandaError(f"{path}: a model of {a['nb_bins']} bins and {a['nb_channels']} channels does not fit "
                             f"{sep_path} (nfft {n_fft}: {n_fft // 2 + 1} bins, nb_channels {channels})")
        if arch is not None and a != arch:
            raise BandaError(f"{path}: architecture {a} differs from the other targets' {arch}; banda needs them alike")
        arch = a
    params = {
        "stems": targets + ([RESIDUAL_STEM] if options["residual"] else []),
        "in_channels": channels,
        "sample_rate": int(round(float(sep["sample_rate"]))),
        "n_fft": n_fft,
        "hop_length": int(sep["nhop"]),
        "hidden_size": arch["hidden_size"],
        "nb_layers": arch["nb_layers"],
        "unidirectional": arch["unidirectional"],
        "bandwidth": None,
        "max_bin": arch["max_bin"],
        "niter": int(options["niter"]),
        "softmask": bool(options["softmask"]),
        "residual": bool(options["residual"]),
        "wiener_win_len": None if options["wiener_win_len"] is None else int(options["wiener_win_len"]),
        "wiener_eps": float(options["wiener_eps"]),
        "wiener_precision": str(options["wiener_precision"]),
    }
    return params, states


def load_openunmix(folder, targets: Optional[Sequence[str]] = None, device: Optional[str] = None,
                   **wiener_options) -> OpenUnmix:
    """Build :class:`OpenUnmix` from a published Open-Unmix folder and load its weights (eval mode).

    The model's ``archive_params`` are its constructor arguments, so
    ``banda.models.make_archive(model, "openunmix", model.archive_params)`` packs it as a banda archive.
    """
    params, states = _read_folder(folder, targets, **wiener_options)
    try:
        model = OpenUnmix(**params)
    except ConfigError as e:
        raise BandaError(f"{folder}: {e}") from None
    for t, (path, state) in states.items():
        _load_into(model.target_models[t], state, path)
    model.archive_params = params
    model.eval()
    return model.to(device) if device else model


def export_openunmix(model, folder) -> Path:
    """Write ``model`` (an :class:`OpenUnmix`, or a path :func:`banda.models.load_model` reads)
    as an Open-Unmix folder: ``separator.json`` and ``<target>.pth`` + ``<target>.json`` per
    modelled stem. Exporting several models into one folder combines their targets (their
    STFT settings must agree), e.g. four one-stem models trained with
    ``conf/train_umx_<target>.yaml`` become one four-target separator with Wiener filtering.
    Open-Unmix reads the folder too (for 3-layer models, the only depth its loader builds)."""
    from .. import __version__
    from . import load_model

    if not isinstance(model, OpenUnmix):
        model = load_model(model)
        if not isinstance(model, OpenUnmix):
            raise BandaError(f"export_openunmix: not an Open-Unmix model ({type(model).__name__})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sep = {"nb_channels": model.in_channels, "nfft": model.stft.n_fft, "nhop": model.stft.hop_length,
           "sample_rate": model.sample_rate}
    sep_path = folder / SEPARATOR_JSON
    if sep_path.is_file():
        have = _read_json(sep_path)
        clash = {k: have[k] for k in SEPARATOR_KEYS if k in have and float(have[k]) != float(sep[k])}
        if clash:
            raise BandaError(f"{sep_path}: {clash} differ from this model's {sep}; export into another folder")
    else:
        sep_path.write_text(json.dumps(sep, indent=4, sort_keys=True) + "\n")
    for stem, target in model.target_models.items():
        existing = _weight_files(folder).get(stem, [])
        if existing:
            raise BandaError(f"{folder}: already holds weights for {stem!r} ({', '.join(p.name for p in existing)})")
        torch.save({k: v.detach().cpu() for k, v in target.state_dict().items()}, folder / f"{stem}.pth")
        args = {"target": stem, "nfft": model.stft.n_fft, "nhop": model.stft.hop_length, "nb_channels": model.in_channels,
                "hidden_size": target.hidden_size, "nb_layers": target.lstm.num_layers,
                "unidirectional": not target.lstm.bidirectional, "max_bin": target.nb_bins}
        (folder / f"{stem}.json").write_text(json.dumps({"args": args, "exported_by": f"banda {__version__}"},
                                                        indent=4, sort_keys=True) + "\n")
    return folder
