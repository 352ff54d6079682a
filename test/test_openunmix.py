"""Open-Unmix: the per-target model, published model folders, equivalence with openunmix 1.3.0
(skipped without it: ``pip install --no-deps openunmix==1.3.0``), training and the magnitude loss."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from banda.errors import BandaError, ConfigError
from banda.losses import LossHandler
from banda.models import build_model, load_model, make_archive, model_params, resolve_model_path
from banda.models.openunmix import (OpenUnmix, UnmixTarget, bandwidth_to_max_bin, export_openunmix, input_statistics,
                                    load_openunmix, save_input_statistics)

from conftest import full_train_config

TOL = 1e-4  # max abs waveform difference to openunmix's Separator
UMXHQ = dict(nfft=4096, nhop=1024, sample_rate=44100.0, nb_channels=2)
UMXSE = dict(nfft=1024, nhop=512, sample_rate=16000.0, nb_channels=1)
# The state dict of one Open-Unmix target (3 bidirectional LSTM layers).
TARGET_KEYS = {"input_mean", "input_scale", "output_scale", "output_mean", "fc1.weight", "fc2.weight", "fc3.weight"} | {
    f"bn{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
} | {f"lstm.{w}_{m}_l{k}{d}" for w in ("weight", "bias") for m in ("ih", "hh") for k in range(3) for d in ("", "_reverse")}


def randomize_(target, seed):
    """Move a target model (banda's or openunmix's) off its trivial initialisation: input/output
    scaling and batch-norm statistics are what a loading bug would get wrong."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in target.named_parameters():
            if name in ("input_mean", "output_mean"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name in ("input_scale", "output_scale") or name.startswith("bn") and name.endswith("weight"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif name.startswith("bn"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        for bn in (target.bn1, target.bn2, target.bn3):
            bn.running_mean.copy_(0.1 * torch.randn(bn.running_mean.shape, generator=g))
            bn.running_var.copy_(0.5 + 1.5 * torch.rand(bn.running_var.shape, generator=g))
    return target.eval()


def write_folder(folder, targets, separator, hidden=None, names=None, extra_sep=None, extra_keys=False):
    """An Open-Unmix model folder as published: separator.json, ``<target>[-hash].pth`` (plain state
    dicts) and ``<target>.json`` (the training record with ``args``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "separator.json").write_text(json.dumps(dict(separator, **(extra_sep or {})), indent=4, sort_keys=True))
    for i, (name, model) in enumerate(targets.items()):
        state = dict(model.state_dict())
        if extra_keys:  # what Open-Unmix 1.0 checkpoints also hold
            state["stft.window"] = torch.hann_window(separator["nfft"])
            state["sample_rate"] = torch.tensor(separator["sample_rate"])
        file = (names or {}).get(name, f"{name}-{0x1a2b3c4d + i:08x}.pth")
        torch.save(state, folder / file)
        args = {"target": name, "nfft": separator["nfft"], "nhop": separator["nhop"], "nb_channels": separator["nb_channels"],
                "hidden_size": hidden or model.hidden_size, "unidirectional": False, "bandwidth": 16000, "seq_dur": 6.0}
        (folder / f"{name}.json").write_text(json.dumps({"args": args, "best_loss": 0.1, "epochs_trained": 1}))
    return folder


def noise(channels, seconds, rate, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 0.2 * torch.randn(batch, channels, int(seconds * rate), generator=g)
    if batch > 1:
        x[1] *= 3  # items of different level (Wiener rescales per item)
    return x


def banda_targets(stems, nb_bins, channels, hidden, max_bin, seed=0):
    return {s: randomize_(UnmixTarget(nb_bins, channels, hidden, max_bin=max_bin), seed + i) for i, s in enumerate(stems)}


# ---------------------------------------------------------------------- architecture
def test_parameter_counts():
    vocals = UnmixTarget(2049, 2, 512, max_bin=bandwidth_to_max_bin(44100, 4096, 16000))
    assert vocals.nb_bins == 1487
    assert round(sum(p.numel() for p in vocals.parameters()) / 1e6, 2) == 8.89  # UMX-HQ: 8.89 M
    model = build_model("openunmix", model_params("openunmix", {}, ["vocals", "drums", "bass", "other"], 44100, 2))
    assert sum(p.numel() for p in model.parameters()) == 4 * sum(p.numel() for p in vocals.parameters())
    assert set(vocals.state_dict()) == TARGET_KEYS
    assert {k.split(".", 2)[2] for k in model.state_dict()} == TARGET_KEYS
    se = UnmixTarget(513, 1, 256, max_bin=bandwidth_to_max_bin(16000, 1024, 16000))
    assert se.nb_bins == 513 and se.fc1.in_features == 513


def test_state_dict_matches_openunmix():
    um = pytest.importorskip("openunmix.model")
    for kw in (dict(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487), dict(nb_bins=513, nb_channels=1, hidden_size=256),
               dict(nb_bins=2049, nb_channels=2, hidden_size=64, max_bin=1487, unidirectional=True)):
        ref = um.OpenUnmix(**kw).state_dict()
        ours = UnmixTarget(kw["nb_bins"], kw["nb_channels"], kw["hidden_size"], unidirectional=kw.get("unidirectional", False),
                           max_bin=kw.get("max_bin")).state_dict()
        assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}


def test_config_errors():
    with pytest.raises(ConfigError, match="at least two stems"):
        OpenUnmix(stems=["vocals"], niter=1)
    OpenUnmix(stems=["vocals"], niter=0, hidden_size=8, n_fft=256, hop_length=64)
    with pytest.raises(ConfigError, match="residual"):
        OpenUnmix(stems=["vocals"], residual=True, niter=0)
    with pytest.raises(ConfigError, match="precision"):
        OpenUnmix(wiener_precision="half", hidden_size=8)
    with pytest.raises(ConfigError, match="max_bin"):
        OpenUnmix(n_fft=256, max_bin=500, hidden_size=8)
    with pytest.raises(ConfigError, match="unknown config key .model.params.hidden."):
        model_params("openunmix", {"hidden": 8}, ["vocals", "bass"], 44100, 2)


# ---------------------------------------------------------------------- equivalence with openunmix 1.3.0
STEREO_STEMS = ["vocals", "drums", "bass", "other"]


@pytest.fixture(scope="module")
def small_umx(tmp_path_factory):
    """A UMX-HQ-shaped folder (4096/1024, 44.1 kHz, stereo, max_bin 1487) with hidden 32, built
    with openunmix's own class, and a 2.5 s stereo batch of two."""
    um = pytest.importorskip("openunmix.model")
    targets = {s: randomize_(um.OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=32, max_bin=1487), i)
               for i, s in enumerate(STEREO_STEMS)}
    folder = write_folder(tmp_path_factory.mktemp("umx") / "small", targets, UMXHQ, extra_keys=True)
    return folder, noise(2, 2.5, 44100, batch=2)


# niter <= 1: with more float32 EM iterations both implementations amplify rounding (a 1e-7
# change of the input moves Open-Unmix's own niter=2 output by up to ~3e-5), so 1e-4 would be
# a flaky bound there; test_wiener compares the filter itself at niter 2.
@pytest.mark.parametrize("niter,residual,softmask,win", [
    (0, False, False, 300), (0, True, False, 300), (1, False, False, 300), (1, True, False, 300),
    (1, False, True, 300), (0, False, True, 300), (1, False, False, 40),
])
def test_equivalence_small(small_umx, niter, residual, softmask, win):
    utils = pytest.importorskip("openunmix.utils")
    folder, x = small_umx
    ref_sep = utils.load_separator(str(folder), targets=STEREO_STEMS, niter=niter, residual=residual, wiener_win_len=win)
    ref_sep.softmask = softmask
    ours = load_openunmix(folder, niter=niter, residual=residual, softmask=softmask, wiener_win_len=win)
    assert ours.stems == STEREO_STEMS + (["residual"] if residual else [])
    with torch.no_grad():
        ref, out = ref_sep.eval()(x), ours(x)
    assert out.shape == ref.shape == (2, 4 + residual, 2, x.shape[-1])
    assert ref.abs().amax(-1).min() > 1e-3  # every stem of every item is audible: a real comparison
    diff = (out - ref).abs().max().item()
    print(f"openunmix equivalence niter={niter} residual={residual} softmask={softmask} win={win}: max abs diff {diff:.2e}")
    assert diff <= TOL


def test_equivalence_umxhq_size(tmp_path):
    """At UMX-HQ's real size (hidden 512, 8.89 M parameters a target), built by openunmix.umxhq()
    offline, loaded through banda.models.load_model with the published defaults (niter 1)."""
    openunmix = pytest.importorskip("openunmix")
    ref_sep = openunmix.umxhq(pretrained=False, niter=1, residual=False, wiener_win_len=300).eval()
    for i, target in enumerate(ref_sep.target_models.values()):
        randomize_(target, 10 + i)
    names = {"bass": "bass-8d85a5bd.pth", "drums": "drums-9619578f.pth", "other": "other-b52fbbf7.pth",
             "vocals": "vocals-b62c91ce.pth"}
    folder = write_folder(tmp_path / "umxhq", dict(ref_sep.target_models), UMXHQ, names=names)
    assert resolve_model_path(folder) == folder
    ours = load_model(folder)
    assert ours.stems == ["vocals", "drums", "bass", "other"] and ours.niter == 1 and ours.wiener_win_len == 300
    assert round(sum(p.numel() for p in ours.target_models["vocals"].parameters()) / 1e6, 2) == 8.89
    x = noise(2, 1.5, 44100, seed=1)
    with torch.no_grad():
        ref, out = ref_sep(x), ours(x)
    diff = (out - ref).abs().max().item()
    print(f"openunmix equivalence umxhq size niter=1: max abs diff {diff:.2e}")
    assert ref.abs().amax(-1).min() > 1e-3 and diff <= TOL


@pytest.mark.parametrize("targets,residual", [(None, False), (["speech"], True)])
def test_equivalence_umxse_mono(tmp_path, targets, residual):
    """UMX-SE's layout: 16 kHz, n_fft 1024, hop 512, mono, hidden 256, targets speech/noise,
    published names with an underscore before the hash."""
    openunmix = pytest.importorskip("openunmix")
    utils = pytest.importorskip("openunmix.utils")
    spec = openunmix.umxse_spec(pretrained=False)
    for i, target in enumerate(spec.values()):
        randomize_(target, 20 + i)
    folder = write_folder(tmp_path / "umxse", spec, UMXSE, names={"speech": "speech_f5e0d9f9.pth", "noise": "noise_04a6fc2d.pth"})
    if targets is None:
        ref_sep = openunmix.umxse(pretrained=False, niter=1)
        ref_sep.target_models = torch.nn.ModuleDict(spec)
        ours = load_model(folder)
        assert ours.stems == ["speech", "noise"] and ours.in_channels == 1 and ours.sample_rate == 16000
    else:
        ref_sep = utils.load_separator(str(folder), targets=targets, niter=1, residual=residual)
        ours = load_openunmix(folder, targets=targets, residual=residual)
        assert ours.stems == ["speech", "residual"] and ours.niter == 1
    assert ours.max_bin == 513
    x = noise(1, 2.0, 16000, seed=2)
    with torch.no_grad():
        ref, out = ref_sep.eval()(x), ours(x)
    diff = (out - ref).abs().max().item()
    print(f"openunmix equivalence umxse mono targets={targets} residual={residual}: max abs diff {diff:.2e}")
    assert out.shape == ref.shape == (1, 2, 1, 32000)
    assert ref.abs().amax(-1).min() > 1e-3 and diff <= TOL


# ---------------------------------------------------------------------- model folders (no openunmix needed)
TINY_SEP = dict(nfft=256, nhop=64, sample_rate=8000, nb_channels=2)


def tiny_folder(path, stems=("vocals", "drums"), **kw):
    return write_folder(path, banda_targets(stems, 129, 2, 8, 100), TINY_SEP, **kw)


def test_folder_discovery_and_separator_fields(tmp_path):
    names = {"vocals": "vocals.pth", "bass": "bass-0123abcd.pth", "other": "other.pth", "drums": "drums_deadbeef.pth"}
    folder = tiny_folder(tmp_path / "a", ("other", "bass", "vocals", "drums"), names=names, extra_keys=True)
    model = load_model(folder)
    assert model.stems == ["vocals", "drums", "bass", "other"]  # the usual order, whatever the files' order
    assert (model.niter, model.residual, model.softmask, model.wiener_win_len) == (1, False, False, 300)
    assert (model.sample_rate, model.in_channels, model.stft.n_fft, model.stft.hop_length, model.max_bin) == (8000, 2, 256, 64, 100)
    assert not model.training
    # banda's optional separator.json fields
    folder = tiny_folder(tmp_path / "b", ("a", "b"), extra_sep={"targets": ["b", "a"], "niter": 2, "residual": True,
                                                                  "softmask": True, "wiener_win_len": None})
    model = load_model(folder)
    assert model.stems == ["b", "a", "residual"] and model.targets == ["b", "a"]
    assert (model.niter, model.residual, model.softmask, model.wiener_win_len) == (2, True, True, None)
    # explicit options win; one target without residual: no Wiener filtering by default
    assert load_openunmix(folder, niter=0, residual=False).stems == ["b", "a"]
    with pytest.raises(BandaError, match="niter 2: Wiener filtering needs at least two stems"):
        load_openunmix(folder, targets=["a"], residual=False)  # separator.json asks niter 2 of one stem
    folder_c = tiny_folder(tmp_path / "c", ("vocals",))
    assert load_model(folder_c).niter == 0  # the published default (niter 1) is dropped for a single target
    # full training checkpoints ({"state_dict": ...}) load too, and the weights are the files'
    state = torch.load(weights_file(folder_c, "vocals"))
    torch.save({"state_dict": state, "epoch": 3}, weights_file(folder_c, "vocals"))
    model = load_model(folder_c)
    loaded = model.target_models["vocals"].state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if k in loaded)
    # a loaded folder packs into a banda archive that rebuilds the same model
    torch.save(make_archive(model, "openunmix", model.archive_params), tmp_path / "umx.pth")
    x = noise(2, 0.3, 8000, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path / "umx.pth")(x), model(x))


def weights_file(folder, target):
    (path,) = Path(folder).glob(f"{target}*.pth")
    return path


def test_folder_errors(tmp_path):
    folder = tiny_folder(tmp_path / "ok")
    (tmp_path / "nosep").mkdir()
    for f in folder.iterdir():
        if f.name != "separator.json":
            (tmp_path / "nosep" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(BandaError, match="separator.json: missing"):
        load_model(tmp_path / "nosep")
    with pytest.raises(BandaError, match="no model weights found"):
        load_model(tmp_path)  # neither an exp dir nor an Open-Unmix folder

    def broken(name, edit):
        f = tiny_folder(tmp_path / name)
        edit(f)
        return f

    def edit_state(edit):
        def apply(f):
            state = torch.load(weights_file(f, "drums"))
            edit(state)
            torch.save(state, weights_file(f, "drums"))
        return apply

    with pytest.raises(BandaError, match=r"drums-1a2b3c4e\.pth: fc2\.weight has shape \(8, 8\), the model needs \(8, 16\)"):
        load_model(broken("shape", edit_state(lambda s: s.update({"fc2.weight": torch.zeros(8, 8)}))))
    with pytest.raises(BandaError, match=r"drums-1a2b3c4e\.pth: missing 1 weights, e\.g\. bn2\.running_var"):
        load_model(broken("missing", edit_state(lambda s: s.pop("bn2.running_var"))))

    def args(f):
        record = json.loads((f / "vocals.json").read_text())
        record["args"]["hidden_size"] = 512
        (f / "vocals.json").write_text(json.dumps(record))

    with pytest.raises(BandaError, match=r"vocals\.json: args\.hidden_size = 512 does not fit the weights"):
        load_model(broken("args", args))
    with pytest.raises(BandaError, match="nb_channels 1"):
        load_model(broken("sep", lambda f: (f / "separator.json").write_text(json.dumps(dict(TINY_SEP, nb_channels=1)))))
    with pytest.raises(BandaError, match="no nhop"):
        load_model(broken("sepkey", lambda f: (f / "separator.json").write_text(json.dumps({"nfft": 256, "sample_rate": 8000,
                                                                                              "nb_channels": 2}))))
    with pytest.raises(BandaError, match="several weights files"):
        load_model(broken("dup", lambda f: (f / "vocals.pth").write_bytes(weights_file(f, "vocals").read_bytes())))
    with pytest.raises(BandaError, match="no weights for target 'bass'"):
        load_model(broken("target", lambda f: (f / "separator.json").write_text(json.dumps(dict(TINY_SEP, targets=["bass"])))))
    with pytest.raises(BandaError, match="not an Open-Unmix target state dict"):
        load_model(broken("junk", lambda f: torch.save({"x": torch.zeros(1)}, weights_file(f, "drums"))))


def test_separate_cli_with_a_folder(tmp_path):
    """banda-separate -m <Open-Unmix folder> song.wav (mono 16 kHz model, stereo 8 kHz file)."""
    from banda.bin import separate

    folder = write_folder(tmp_path / "se", banda_targets(["speech", "noise"], 513, 1, 8, 513), UMXSE)
    song = tmp_path / "song.wav"
    sf.write(song, noise(2, 1.3, 8000, seed=3)[0].numpy().T, 8000)
    assert separate.main(["-m", str(folder), str(song), "-o", str(tmp_path / "out"), "--no-progress", "--segment", "1"]) == 0
    for stem in ("speech", "noise"):
        audio, rate = sf.read(tmp_path / "out" / "song" / f"{stem}.wav")
        assert rate == 8000 and audio.shape == (int(1.3 * 8000), 2)


def test_export_round_trip_and_combining(tmp_path):
    a = build_model("openunmix", dict(stems=["vocals"], in_channels=2, sample_rate=8000, n_fft=256, hop_length=64,
                                      hidden_size=8, niter=0, nb_layers=2))
    b = build_model("openunmix", dict(stems=["accompaniment"], in_channels=2, sample_rate=8000, n_fft=256, hop_length=64,
                                      hidden_size=8, niter=0, nb_layers=2))
    for i, m in enumerate((a, b)):
        randomize_(next(iter(m.target_models.values())), 30 + i)
        m.eval()
    export_openunmix(a, tmp_path / "umx")
    x = noise(2, 0.5, 8000, seed=4)
    back = load_model(tmp_path / "umx")
    assert back.stems == ["vocals"] and back.target_models["vocals"].lstm.num_layers == 2
    with torch.no_grad():
        torch.testing.assert_close(back(x), a(x))
    with pytest.raises(BandaError, match="already holds weights"):
        export_openunmix(a, tmp_path / "umx")
    export_openunmix(b, tmp_path / "umx")  # a second target: now a two-target separator with Wiener EM
    both = load_model(tmp_path / "umx")
    assert both.stems == ["vocals", "accompaniment"] and both.niter == 1
    with torch.no_grad():
        y = both(x)
        plain = load_openunmix(tmp_path / "umx", niter=0)(x)
    assert y.shape == plain.shape == (1, 2, 2, 4000) and torch.isfinite(y).all()
    torch.testing.assert_close(plain[:, 0], a(x)[:, 0])  # the same vocals network
    assert (y - plain).abs().max() > 1e-4  # filtered


# ---------------------------------------------------------------------- training
def test_training_path_has_no_wiener_and_learns():
    torch.manual_seed(0)
    model = OpenUnmix(stems=["vocals", "other"], sample_rate=8000, n_fft=256, hop_length=64, hidden_size=8, lstm_dropout=0.0,
                      niter=1)
    x = noise(2, 0.5, 8000, batch=2, seed=5)
    model.train()
    out = model(x)
    spec = model.stft(x)
    plain = model.stft.inverse(model.magnitudes(spec) * torch.exp(1j * spec.angle()).unsqueeze(1), x.shape[-1])
    torch.testing.assert_close(out, plain, rtol=1e-4, atol=1e-5)  # training: mixture phase, never the filter
    target = torch.stack([0.5 * x, 0.5 * x], dim=1)
    loss = LossHandler([{"name": "mse_magnitude", "params": {"n_fft": 256, "hop_length": 64}}])
    total, _ = loss(out, target)
    total.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["target_models.vocals.input_mean"].abs().sum() > 0 and grads["target_models.other.fc1.weight"].abs().sum() > 0
    model.eval()  # inference: the Wiener filter
    with torch.no_grad():
        assert (model(x) - model.stft.inverse(model.magnitudes(model.stft(x)) * torch.exp(1j * model.stft(x).angle()).unsqueeze(1),
                                             x.shape[-1])).abs().max() > 1e-4


def test_trainer_runs_openunmix(tiny_data_dirs, tmp_path):
    from banda.train import Trainer

    cfg = full_train_config(
        tiny_data_dirs, stems=["vocals", "drums"],
        model={"name": "openunmix", "params": {"n_fft": 512, "hop_length": 128, "hidden_size": 8, "nb_layers": 1, "niter": 1}},
        loss=[{"name": "mse_magnitude", "params": {"n_fft": 512, "hop_length": 128}}],
        data={"items_per_epoch": 4}, train={"max_epochs": 1, "best_metric": "loss", "amp": "off"},
    )
    Trainer(cfg, tmp_path / "exp").fit()
    model = load_model(tmp_path / "exp")
    assert isinstance(model, OpenUnmix) and model.stems == ["vocals", "drums"] and model.niter == 1


def test_mse_magnitude_loss():
    g = torch.Generator().manual_seed(0)
    target = 0.1 * torch.randn(2, 1, 2, 4096, generator=g)
    estimate = target + 0.05 * torch.randn(target.shape, generator=g)
    loss = LossHandler([{"name": "mse_magnitude", "params": {"n_fft": 512, "hop_length": 128}}])
    total, terms = loss(estimate, target)
    mag = lambda s: torch.stft(s.reshape(-1, 4096), 512, 128, window=torch.hann_window(512), center=False,  # noqa: E731
                               return_complex=True).abs()
    assert total.item() == pytest.approx(F.mse_loss(mag(estimate), mag(target)).item(), rel=1e-5)  # UMX's loss, one stem
    assert "mse_magnitude" in terms
    assert loss(target, target)[0].item() == 0.0
    est = torch.zeros_like(target, requires_grad=True)
    loss(est, target)[0].backward()
    assert torch.isfinite(est.grad).all()
    with pytest.raises(ConfigError):
        LossHandler([{"name": "mse_magnitude", "params": {"n_fft": 0}}])


def test_input_statistics(tmp_path):
    g = torch.Generator().manual_seed(0)
    tracks = [0.1 * torch.randn(2, 8000, generator=g).numpy(), 0.3 * torch.randn(2, 4000, generator=g).numpy()]
    mean, std = input_statistics(tracks, n_fft=256, hop_length=64)
    from banda.models.stft import STFT

    mags = torch.cat([STFT(256, 64)(torch.from_numpy(t)).abs().mean(0) for t in tracks], dim=1).double()
    np.testing.assert_allclose(mean, mags.mean(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(std, mags.std(1, unbiased=False).numpy(), rtol=1e-4)
    model = OpenUnmix(stems=["vocals"], sample_rate=8000, n_fft=256, hop_length=64, hidden_size=8, niter=0, max_bin=100)
    path = save_input_statistics(model, mean, std, tmp_path / "stats.pth")
    state = torch.load(path)["state_dict"]
    assert set(state) == {"target_models.vocals.input_mean", "target_models.vocals.input_scale"}
    np.testing.assert_allclose(state["target_models.vocals.input_mean"].numpy(), -mean[:100], rtol=1e-6)
    np.testing.assert_allclose(state["target_models.vocals.input_scale"].numpy(), 1 / std[:100], rtol=1e-5)
    assert math.isfinite(float(state["target_models.vocals.input_scale"].max()))
