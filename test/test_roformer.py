"""banda's BS-RoFormer and Mel-Band-RoFormer against lucidrains' ``bs-roformer`` 0.3.9 (the
layout of the community's MSST checkpoints): the same state_dict keys and shapes, and the same
outputs within 1e-4 for reduced configurations modelled on the published ones (4-stem stereo,
vocals-only, mono, other mask MLP depths), weights copied from the reference.

The reference's Mel-Band model builds its bands with ``librosa.filters.mel``; librosa is not
installed here, so the test gives it torchaudio's Slaney filterbank (``melscale_fbanks``, an
implementation independent of banda's), and checks banda's band layout against the published
60-band one on its own."""
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

from banda.errors import ConfigError
from banda.models import build_model
from banda.models.roformer import DEFAULT_FREQS_PER_BANDS, BSRoformer


def reference_module(name: str = "bs_roformer"):
    """``bs_roformer.<name>`` without running the package's ``__init__`` (which imports both
    models); for ``mel_band_roformer`` with a ``librosa.filters.mel`` of torchaudio's."""
    if "bs_roformer" not in sys.modules or not hasattr(sys.modules["bs_roformer"], "__path__"):
        spec = importlib.util.find_spec("bs_roformer")
        assert spec is not None, "bs-roformer 0.3.9 is not installed (tools/requirements-reference.txt)"
        package = types.ModuleType("bs_roformer")
        package.__path__ = [str(Path(spec.origin).parent)]
        sys.modules["bs_roformer"] = package
    if name == "mel_band_roformer" and "librosa" not in sys.modules:
        from torchaudio.functional import melscale_fbanks

        def mel(sr, n_fft, n_mels):
            fb = melscale_fbanks(n_fft // 2 + 1, 0.0, sr / 2, n_mels, sr, norm="slaney", mel_scale="slaney")
            return fb.T.contiguous().numpy()

        librosa = types.ModuleType("librosa")
        librosa.filters = types.SimpleNamespace(mel=mel)
        sys.modules["librosa"] = librosa
    return importlib.import_module(f"bs_roformer.{name}")


#: 29 bands for a 512-point STFT (257 bins), shaped like the 62 of the 2048-point default
SMALL_BANDS = (2,) * 8 + (4,) * 8 + (8,) * 8 + (16,) * 4 + (81,)

CONFIGS = {
    # like config_musdb18_bs_roformer (4 stems, stereo, mlp_expansion_factor 4), reduced
    "4stem_stereo": dict(stems=["bass", "drums", "other", "vocals"], in_channels=2, dim=32, depth=2,
                         time_transformer_depth=1, freq_transformer_depth=1, dim_head=8, heads=2),
    # like viperx's vocals BS-RoFormer (1 stem, stereo, 2 time + 2 band layers per depth), reduced
    "vocals_stereo": dict(stems=["vocals"], in_channels=2, dim=24, depth=1, time_transformer_depth=2,
                          freq_transformer_depth=2, dim_head=8, heads=3),
    "mono_deep_masks": dict(stems=["vocals", "other"], in_channels=1, dim=16, depth=1, time_transformer_depth=1,
                            freq_transformer_depth=1, dim_head=8, heads=2, mask_estimator_depth=3),
    "shallow_masks": dict(stems=["vocals"], in_channels=2, dim=16, depth=1, time_transformer_depth=1,
                          freq_transformer_depth=1, dim_head=4, heads=2, mask_estimator_depth=1),
}
STFT = dict(stft_n_fft=512, stft_hop_length=128, stft_win_length=512)


def reference_kwargs(params):
    p = dict(params)
    stems, channels = p.pop("stems"), p.pop("in_channels")
    return dict(p, num_stems=len(stems), stereo=channels == 2, freqs_per_bands=SMALL_BANDS, **STFT)


def pair(name, seed=0):
    """The reference and banda's model with the same (random, non-trivial) weights."""
    ref = reference_module().BSRoformer(**reference_kwargs(CONFIGS[name])).eval()
    torch.manual_seed(seed)
    state = {k: (torch.randn_like(v) * 0.2 if v.dtype.is_floating_point and not k.endswith("rotary_embed.freqs") else v)
             for k, v in ref.state_dict().items()}
    ref.load_state_dict(state)
    ours = BSRoformer(**CONFIGS[name], freqs_per_bands=SMALL_BANDS, **STFT).eval()
    ours.load_state_dict(state, strict=True)
    return ref, ours


@pytest.mark.parametrize("name", list(CONFIGS))
def test_state_dict_layout_equals_the_reference(name):
    ref = reference_module().BSRoformer(**reference_kwargs(CONFIGS[name]))
    ours = BSRoformer(**CONFIGS[name], freqs_per_bands=SMALL_BANDS, **STFT)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    torch.testing.assert_close(ours.state_dict()["layers.0.0.layers.0.0.rotary_embed.freqs"],
                               ref.state_dict()["layers.0.0.layers.0.0.rotary_embed.freqs"])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_outputs_equal_the_reference(name):
    ref, ours = pair(name)
    assert_same_outputs(ref, ours, CONFIGS[name])


def assert_same_outputs(ref, ours, config):
    """Both models on the same random input: equal outputs within 1e-4, of the expected shape."""
    channels, stems = config["in_channels"], len(config["stems"])
    x = torch.randn(2, channels, 128 * 90, generator=torch.Generator().manual_seed(1)) * 0.2
    with torch.no_grad():
        want = ref(x)
        got = ours(x)
    if stems == 1:
        want = want.unsqueeze(1)  # the reference drops the stem axis of a one-stem model
    assert got.shape == (2, stems, channels, x.shape[-1]) == want.shape
    assert want.abs().max() > 1e-3  # not a trivially silent comparison
    assert (got - want).abs().max() <= 1e-4


def test_default_configuration_is_the_papers():
    """The defaults build BS-RoFormer's 62-band layout for a 2048-point STFT (meta device: no memory)."""
    assert len(DEFAULT_FREQS_PER_BANDS) == 62 and sum(DEFAULT_FREQS_PER_BANDS) == 1025
    with torch.device("meta"):
        model = build_model("bs_roformer", dict(stems=["vocals"], in_channels=2, sample_rate=44100))
    state = model.state_dict()
    assert "band_split.to_features.61.1.weight" in state and "band_split.to_features.62.1.weight" not in state
    assert tuple(state["band_split.to_features.61.1.weight"].shape) == (512, 2 * 129 * 2)


@pytest.mark.parametrize("params,needle", [
    (dict(freqs_per_bands=(100, 100)), "freqs_per_bands"),
    (dict(in_channels=3), "mono or stereo"),
    (dict(stems=[]), "stems"),
])
def test_bad_configurations_name_the_problem(params, needle):
    with pytest.raises(ConfigError, match=needle):
        BSRoformer(**dict(dict(stems=["vocals"], dim=8, depth=1, dim_head=4, heads=2), **params))


def test_zero_dc_zeroes_the_dc_bin():
    _, ours = pair("vocals_stereo")
    x = torch.randn(1, 2, 128 * 40, generator=torch.Generator().manual_seed(2)) * 0.2 + 0.3  # a DC offset
    with torch.no_grad():
        plain = ours(x)
        ours.zero_dc = True
        zeroed = ours(x)
    assert (plain - zeroed).abs().max() > 1e-3
    inner = slice(512, -512)  # away from the edges, where the frames overlap fully
    assert zeroed[..., inner].mean(-1).abs().max() < 0.2 * plain[..., inner].mean(-1).abs().max()


# --------------------------------------------------------------------------- Mel-Band-RoFormer
MEL_CONFIGS = {
    # like the vocals Mel-Band-RoFormers (KimberleyJensen's, viperx's): 1 stem, stereo, reduced
    "vocals_stereo": dict(stems=["vocals"], in_channels=2, dim=24, depth=1, time_transformer_depth=1,
                          freq_transformer_depth=1, num_bands=16, dim_head=8, heads=3, mask_estimator_depth=2),
    "2stem_mono": dict(stems=["vocals", "other"], in_channels=1, dim=16, depth=2, time_transformer_depth=1,
                       freq_transformer_depth=1, num_bands=12, dim_head=8, heads=2, mask_estimator_depth=1),
}


def mel_reference_kwargs(params):
    p = dict(params)
    stems, channels = p.pop("stems"), p.pop("in_channels")
    return dict(p, num_stems=len(stems), stereo=channels == 2, sample_rate=44100, **STFT)


def mel_pair(name, seed=0):
    from banda.models.roformer import MelBandRoformer

    ref = reference_module("mel_band_roformer").MelBandRoformer(**mel_reference_kwargs(MEL_CONFIGS[name])).eval()
    torch.manual_seed(seed)
    state = {k: (torch.randn_like(v) * 0.2 if v.dtype.is_floating_point and not k.endswith("rotary_embed.freqs") else v)
             for k, v in ref.state_dict().items()}
    ref.load_state_dict(state)
    ours = MelBandRoformer(**MEL_CONFIGS[name], sample_rate=44100, **STFT).eval()
    ours.load_state_dict(state, strict=True)
    return ref, ours


@pytest.mark.parametrize("name", list(MEL_CONFIGS))
def test_mel_state_dict_layout_and_outputs_equal_the_reference(name):
    ref, ours = mel_pair(name)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    torch.testing.assert_close(ours.freq_indices, ref.freq_indices, rtol=0, atol=0)
    assert_same_outputs(ref, ours, MEL_CONFIGS[name])


def test_mel_bands_of_the_published_configuration():
    """60 bands of a 2048-point STFT at 44.1 kHz: the bins per band of the published models
    (as librosa's filterbank gives them), 1979 band bins over 1025 STFT bins."""
    from banda.models.roformer import mel_band_membership

    member = mel_band_membership(44100, 2048, 60)
    assert member.sum(1).tolist() == [7] + [6] * 14 + [7, 7, 7, 9, 9, 9, 10, 10, 11, 13, 13, 13, 15, 16, 17, 19, 20, 20,
                                                      22, 24, 26, 28, 29, 31, 33, 36, 39, 41, 44, 47, 50, 54, 57, 61,
                                                      66, 71, 76, 80, 86, 93, 99, 105, 113, 122, 130]
    assert int(member.sum()) == 1979 and member.any(0).all() and int(member.sum(0).max()) == 2


def test_skip_connection_adds_every_earlier_layer_output():
    """MSST's skip_connection: with one layer nothing changes; with three, layer i's input is the
    previous output plus the outputs of all layers before i (checked with the model's own layers)."""
    _, ours = pair("4stem_stereo")
    x = torch.randn(1, 2, 128 * 30, generator=torch.Generator().manual_seed(4)) * 0.2
    one = BSRoformer(**dict(CONFIGS["4stem_stereo"], depth=1), freqs_per_bands=SMALL_BANDS, **STFT).eval()
    one.load_state_dict({k: v for k, v in ours.state_dict().items() if not k.startswith("layers.1.")})
    with torch.no_grad():
        plain = one(x)
        one.skip_connection = True
        torch.testing.assert_close(one(x), plain, rtol=0, atol=0)
    z = torch.randn(1, 5, 29, 32, generator=torch.Generator().manual_seed(5))
    layers = list(ours.layers) * 2  # three layers: the two of the model, then the first again
    ours.layers = torch.nn.ModuleList(layers[:3])
    ours.skip_connection = True

    def layer(tf, h):
        b, t, k, d = h.shape
        h = tf[0](h.transpose(1, 2).reshape(b * k, t, d)).reshape(b, k, t, d).transpose(1, 2)
        return tf[1](h.reshape(b * t, k, d)).reshape(b, t, k, d)

    with torch.no_grad():
        o1 = layer(layers[0], z)
        o2 = layer(layers[1], o1 + o1)
        o3 = layer(layers[2], o2 + o1 + o2)
        torch.testing.assert_close(ours._axial(z), o3)


def test_checkpoints_load_strictly_and_the_model_trains():
    """A missing band or a wrong shape is an error naming the key, and the model trains
    (gradients reach every band's parameters) under the separation task's contract."""
    _, ours = pair("4stem_stereo")
    state = ours.state_dict()
    fresh = BSRoformer(**CONFIGS["4stem_stereo"], freqs_per_bands=SMALL_BANDS, **STFT)
    missing = {k: v for k, v in state.items() if k != "band_split.to_features.3.1.weight"}
    with pytest.raises(RuntimeError, match="band_split.to_features.3.1.weight"):
        fresh.load_state_dict(missing)
    wrong = dict(state, **{"mask_estimators.1.to_freqs.28.0.2.bias": torch.zeros(7)})
    with pytest.raises(RuntimeError, match="mask_estimators.1.to_freqs.28.0.2.bias"):
        fresh.load_state_dict(wrong)
    with pytest.raises(RuntimeError, match="band_split.to_features.99.1.weight"):
        fresh.load_state_dict(dict(state, **{"band_split.to_features.99.1.weight": torch.zeros(1)}))
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.state_dict()["band_split.to_features.3.1.weight"],
                               state["band_split.to_features.3.1.weight"])
    fresh.train()
    y = fresh(torch.randn(1, 2, 128 * 20) * 0.1)
    y.square().mean().backward()
    grads = {n: p.grad for n, p in fresh.named_parameters() if n.startswith(("band_split", "mask_estimators"))}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())
