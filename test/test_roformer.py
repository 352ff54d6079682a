"""banda's BS-RoFormer against lucidrains' ``bs-roformer`` 0.3.9 (the layout of the community's
MSST checkpoints): the same state_dict keys and shapes, and the same outputs within 1e-4 for
reduced configurations modelled on the published ones (4-stem stereo, 1-stem, mono, deeper
mask MLPs), weights copied from the reference."""
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


def reference_module():
    """``bs_roformer.bs_roformer`` without running the package's ``__init__`` (which imports the
    Mel-Band model and with it librosa, not installed here)."""
    if "bs_roformer.bs_roformer" in sys.modules:
        return sys.modules["bs_roformer.bs_roformer"]
    spec = importlib.util.find_spec("bs_roformer")
    assert spec is not None, "bs-roformer 0.3.9 is not installed (tools/requirements-reference.txt)"
    package = types.ModuleType("bs_roformer")
    package.__path__ = [str(Path(spec.origin).parent)]
    sys.modules["bs_roformer"] = package
    return importlib.import_module("bs_roformer.bs_roformer")


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
    channels, stems = CONFIGS[name]["in_channels"], len(CONFIGS[name]["stems"])
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
    assert len(model.band_split.to_features) == 62
    assert model.band_split.to_features[61][1].in_features == 2 * 129 * 2


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
