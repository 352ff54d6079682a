"""Community RoFormer checkpoints from local files: random-weight checkpoints of the ``bs-roformer``
0.3.9 reference saved as MSST publishes them (a plain state_dict ``.ckpt``) with an MSST YAML
config (``!!python/tuple`` band lists), run by ``banda-separate -m CKPT --model-config YAML``
with the config's chunk size and overlap, equal within 1e-4 to the reference model run through
the same chunked overlap-add; ``banda-pack`` and ``banda-remix`` of such pairs; and the
refusals: malformed configs, other python YAML tags, checkpoints that do not fit, pickled code."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import error_line, read, run_entry_point

from banda.bin.pack import main as pack_main
from banda.bin.remix import main as remix_main
from banda.bin.separate import main as separate_main
from banda.inference import Separator
from test_roformer import SMALL_BANDS, reference_module

RATE = 44100
HOP = 128
CHUNK = HOP * 160  # 0.46 s: a hop multiple, as MSST's chunk sizes are

BS_YAML = """audio:
  chunk_size: {chunk}
  dim_f: 1024
  dim_t: 801
  hop_length: {hop}
  n_fft: 512
  num_channels: 2
  sample_rate: 44100
  min_mean_abs: 0.000
model:
  dim: 32
  depth: 2
  stereo: true
  num_stems: 4
  time_transformer_depth: 1
  freq_transformer_depth: 1
  linear_transformer_depth: 0
  freqs_per_bands: !!python/tuple
    {bands}
  dim_head: 8
  heads: 2
  attn_dropout: 0.1
  ff_dropout: 0.1
  flash_attn: true
  dim_freqs_in: 257
  stft_n_fft: 512
  stft_hop_length: {hop}
  stft_win_length: 512
  stft_normalized: false
  mask_estimator_depth: 2
  multi_stft_resolution_loss_weight: 1.0
  multi_stft_resolutions_window_sizes: !!python/tuple
  - 4096
  - 2048
  - 1024
  multi_stft_hop_size: 147
  multi_stft_normalized: false
training:
  batch_size: 2
  instruments:
  - bass
  - drums
  - other
  - vocals
  target_instrument: null
  use_amp: true
inference:
  batch_size: 1
  dim_t: 801
  num_overlap: 4
""".format(chunk=CHUNK, hop=HOP, bands="\n    ".join(f"- {b}" for b in SMALL_BANDS))

MEL_YAML = """audio:
  chunk_size: {chunk}
  num_channels: 2
  sample_rate: 44100
model:
  dim: 24
  depth: 1
  stereo: true
  num_stems: 1
  time_transformer_depth: 1
  freq_transformer_depth: 1
  num_bands: 16
  dim_head: 8
  heads: 3
  attn_dropout: 0.1
  ff_dropout: 0.1
  flash_attn: true
  dim_freqs_in: 257
  sample_rate: 44100
  stft_n_fft: 512
  stft_hop_length: {hop}
  stft_win_length: 512
  stft_normalized: false
  mask_estimator_depth: 2
  multi_stft_resolutions_window_sizes: !!python/tuple
  - 4096
  - 2048
training:
  instruments:
  - vocals
  - other
  target_instrument: vocals
inference:
  num_overlap: 2
""".format(chunk=CHUNK, hop=HOP)

BS_KWARGS = dict(dim=32, depth=2, stereo=True, num_stems=4, time_transformer_depth=1, freq_transformer_depth=1,
                 freqs_per_bands=SMALL_BANDS, dim_head=8, heads=2, stft_n_fft=512, stft_hop_length=HOP,
                 stft_win_length=512, mask_estimator_depth=2)
MEL_KWARGS = dict(dim=24, depth=1, stereo=True, num_stems=1, time_transformer_depth=1, freq_transformer_depth=1,
                  num_bands=16, dim_head=8, heads=3, sample_rate=44100, stft_n_fft=512, stft_hop_length=HOP,
                  stft_win_length=512, mask_estimator_depth=2)


def random_reference(kind: str, seed: int = 0):
    if kind == "bs":
        ref = reference_module().BSRoformer(**BS_KWARGS)
    else:
        ref = reference_module("mel_band_roformer").MelBandRoformer(**MEL_KWARGS)
    torch.manual_seed(seed)
    state = {k: (torch.randn_like(v) * 0.2 if v.dtype.is_floating_point and not k.endswith("rotary_embed.freqs") else v)
             for k, v in ref.state_dict().items()}
    ref.load_state_dict(state)
    return ref.eval(), state


class _Wrapped(torch.nn.Module):
    """The reference model with banda's separator contract (a stem axis always)."""

    def __init__(self, ref, stems):
        super().__init__()
        self.ref, self.stems, self.sample_rate, self.in_channels = ref, stems, RATE, 2

    def forward(self, x):
        y = self.ref(x)
        return y if y.dim() == 4 else y.unsqueeze(1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("msst")
    out = {"root": root}
    for kind, text in (("bs", BS_YAML), ("mel", MEL_YAML)):
        ref, state = random_reference(kind)
        torch.save(state, root / f"{kind}.ckpt")  # MSST publishes a plain state_dict
        (root / f"{kind}.yaml").write_text(text)
        out[kind] = ref
    rng = np.random.default_rng(3)
    song = (0.2 * rng.standard_normal((2, int(1.3 * RATE)))).astype(np.float32)
    sf.write(str(root / "song.wav"), song.T, RATE, subtype="FLOAT")
    out["song"] = song
    return out


@pytest.mark.parametrize("kind,stems,overlap", [("bs", ["bass", "drums", "other", "vocals"], 0.75),
                                                ("mel", ["vocals"], 0.5)])
def test_separate_equals_the_reference_through_the_same_chunking(files, tmp_path, capsys, kind, stems, overlap):
    root = files["root"]
    rc, err = run_entry_point(separate_main, capsys, "-m", root / f"{kind}.ckpt", "--model-config", root / f"{kind}.yaml",
                              root / "song.wav", "-o", tmp_path / "out", "--bit-depth", "32", "--clip", "none",
                              "--no-progress")
    assert rc == 0, err
    got = {s: read(tmp_path / "out" / "song" / f"{s}.wav") for s in stems}
    assert sorted(p.name for p in (tmp_path / "out" / "song").iterdir()) == sorted(f"{s}.wav" for s in stems)
    # the reference through the same chunked overlap-add, with the config's chunk size and overlap
    sep = Separator(_Wrapped(files[kind], stems), segment=CHUNK / RATE, overlap=overlap, progress=False)
    want = sep.separate(files["song"])
    for i, s in enumerate(stems):
        assert got[s].shape == want[i].shape == files["song"].shape
        assert np.abs(want[i]).max() > 1e-3
        assert np.abs(got[s] - want[i]).max() <= 1e-4, (s, np.abs(got[s] - want[i]).max())


def test_pack_makes_an_archive_that_separates_alike(files, tmp_path, capsys):
    root = files["root"]
    pack = tmp_path / "bs_pack.pth"
    rc, err = run_entry_point(pack_main, capsys, "--checkpoint", root / "bs.ckpt", "--model-config", root / "bs.yaml",
                              "--out", pack)
    assert rc == 0, err
    from banda.models import load_model, read_archive

    archive = read_archive(pack)
    assert archive["model"]["name"] == "bs_roformer" and archive["inference"] == {"segment": CHUNK / RATE,
                                                                                    "overlap": 0.75}
    model = load_model(pack)
    assert model.stems == ["bass", "drums", "other", "vocals"] and model.inference_defaults["overlap"] == 0.75
    for m, extra in (("a", ["-m", pack]), ("b", ["-m", root / "bs.ckpt", "--model-config", root / "bs.yaml"])):
        rc, err = run_entry_point(separate_main, capsys, *extra, root / "song.wav", "-o", tmp_path / m, "--stems",
                                  "vocals", "--bit-depth", "32", "--no-progress")
        assert rc == 0, err
    np.testing.assert_array_equal(read(tmp_path / "a" / "song" / "vocals.wav"), read(tmp_path / "b" / "song" / "vocals.wav"))


def test_remix_a_backing_track_with_a_community_checkpoint(files, tmp_path, capsys):
    root = files["root"]
    out = tmp_path / "karaoke.wav"
    rc, err = run_entry_point(remix_main, capsys, "-m", root / "bs.ckpt", "--model-config", root / "bs.yaml",
                              root / "song.wav", "--preset", "karaoke", "-o", out, "--bit-depth", "32", "--clip", "none",
                              "--no-progress")
    assert rc == 0, err
    rc, err = run_entry_point(separate_main, capsys, "-m", root / "bs.ckpt", "--model-config", root / "bs.yaml",
                              root / "song.wav", "-o", tmp_path / "sep", "--stems", "vocals", "--bit-depth", "32",
                              "--clip", "none", "--no-progress")
    assert rc == 0, err
    vocals = read(tmp_path / "sep" / "song" / "vocals.wav")
    np.testing.assert_allclose(read(out), files["song"] - vocals, atol=1e-5)  # mixture minus vocals


class _Evil:
    """Unpickling this would create a file: the test checks that nothing runs."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def bad_cases(root: Path, tmp: Path):
    text = BS_YAML
    cases = {
        "syntax": (text.replace("  depth: 2\n", "  depth: [2\n"), "invalid YAML"),
        "python tag": (text.replace("target_instrument: null", "target_instrument: !!python/object/apply:os.system "
                                                               "['touch /tmp/banda_yaml_ran']"),
                       "tag:yaml.org,2002:python/object/apply:os.system"),
        "unknown key": (text.replace("  heads: 2\n", "  heads: 2\n  headz: 3\n"), "model.headz"),
        "unsupported": (text.replace("linear_transformer_depth: 0", "linear_transformer_depth: 1"),
                        "model.linear_transformer_depth"),
        "stem count": (text.replace("num_stems: 4", "num_stems: 3"), "num_stems"),
        "not roformer": (text.replace("  freqs_per_bands: !!python/tuple\n    " + "\n    ".join(f"- {b}" for b in SMALL_BANDS)
                                      + "\n", ""), "neither freqs_per_bands"),
        "does not fit": (text.replace("  dim: 32\n", "  dim: 40\n"), "do not fit"),
        "bands do not cover": (text.replace("- 81\n", "- 80\n"), "freqs_per_bands"),
    }
    return cases


@pytest.mark.parametrize("case", ["syntax", "python tag", "unknown key", "unsupported", "stem count", "not roformer",
                                  "does not fit", "bands do not cover"])
def test_bad_config_or_checkpoint_is_one_line(files, tmp_path, capsys, case):
    root = files["root"]
    text, needle = bad_cases(root, tmp_path)[case]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    rc, err = run_entry_point(separate_main, capsys, "-m", root / "bs.ckpt", "--model-config", cfg, root / "song.wav",
                              "-o", tmp_path / "out", "--no-progress")
    line = error_line(err, "banda-separate", needle, rc=rc)
    assert str(cfg) in line or str(root / "bs.ckpt") in line, line
    assert not (tmp_path / "out" / "song").exists()
    assert not Path("/tmp/banda_yaml_ran").exists()


def test_checkpoint_with_pickled_code_is_refused_not_run(files, tmp_path, capsys):
    root = files["root"]
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": _Evil(marker)}, evil)
    runs = ((separate_main, ["-m", evil, "--model-config", root / "bs.yaml", root / "song.wav", "-o", tmp_path / "out",
                             "--no-progress"]),
            (pack_main, ["--checkpoint", evil, "--model-config", root / "bs.yaml", "--out", tmp_path / "p.pth"]))
    for main, args in runs:
        rc, err = run_entry_point(main, capsys, *args)
        error_line(err, None, str(evil), rc=rc)
        assert not marker.exists()
    assert not (tmp_path / "p.pth").exists()
