"""banda.bsseval (BSS-Eval v4 images in torch) against museval's own code, frame by frame:
random sources (1-5), channels (1, 2), lengths from shorter than a frame to several frames,
silent stretches; the MUSDB18 7-s excerpt and the mir_eval separation data in shared/data;
and banda-evaluate's --bss-eval-backend."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from banda import metrics as M
from banda.bsseval import _fast_size, bss_eval_images_v4, lag_correlations

from conftest import shared_data_dir

TOL_DB = 1e-3
DATA = shared_data_dir()
MUSDB = DATA / "museval_musdb18_7s" / "Music Delta - 80s Rock"
MIR_EVAL = DATA / "mir_eval_separation"


def museval_frames(refs, ests, win, hop):
    """museval's own bss_eval (v4 images) on (nsrc, nchan, n) arrays: {key: (nsrc, nwin)}."""
    res = M._museval_evaluate()(refs.transpose(0, 2, 1), ests.transpose(0, 2, 1), win=win, hop=hop)
    return {k: np.asarray(v, dtype=np.float64).reshape(refs.shape[0], -1) for k, v in zip(M.BSS_EVAL_KEYS, res)}


def assert_equal_frames(ours, theirs, keys=M.BSS_EVAL_KEYS):
    for k in keys:
        a, b = ours[k], theirs[k]
        assert a.shape == b.shape, (k, a.shape, b.shape)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=k)
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b), err_msg=k)
        ok = np.isfinite(a)
        assert np.abs(a[ok] - b[ok]).max(initial=0) <= TOL_DB, (k, np.abs(a[ok] - b[ok]).max())


def test_fast_size_and_lag_correlations():
    assert [_fast_size(n) for n in (1, 7, 11, 44611, 65536)] == [1, 7, 12, 44800, 65536]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 1000)), rng.standard_normal((2, 1000))
    import torch

    r = lag_correlations(torch.as_tensor(x), torch.as_tensor(y), 5, block=64).numpy()
    # several chunks of blocks, the last one ragged, and a sequence of xs
    r2, r3 = lag_correlations([torch.as_tensor(x), torch.as_tensor(x[:1])], torch.as_tensor(y), 5, block=60, chunk=3)
    for k in range(-4, 5):
        direct = [[sum(x[a, t + k] * y[b, t] for t in range(max(0, -k), min(1000, 1000 - k))) for b in range(2)]
                  for a in range(3)]
        np.testing.assert_allclose(r[:, :, k + 4], direct, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(r2[:, :, k + 4], direct, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(r3[:, :, k + 4], direct[:1], rtol=1e-10, atol=1e-9)


RANDOM_CASES = [  # nsrc, nchan, n, win, silent stretch
    (1, 1, 3000, 1000, None),
    (2, 1, 5000, 1000, None),
    (3, 2, 9000, 2000, (1900, 4700)),
    (5, 1, 4000, 8000, None),        # shorter than a frame: one frame of the whole track
    (4, 2, 6000, 8000, None),
    (2, 2, 12345, 3000, (0, 3100)),  # silence at the start, a ragged end
    (5, 1, 16000, 4000, (8000, 12000)),
]


@pytest.mark.parametrize("nsrc,nchan,n,win,silence", RANDOM_CASES)
def test_random_tracks_equal_museval(nsrc, nchan, n, win, silence):
    """Correlated sources and estimates (leakage, filtering, noise), every frame within 0.001 dB.
    The tracks are longer than the filters' unknowns (nsrc * nchan * 512 samples), where the
    least-squares problem has one solution (below it neither implementation's SIR/SAR mean
    anything: both are rounding noise)."""
    rng = np.random.default_rng(nsrc * 100 + nchan * 10 + n % 7)
    refs = rng.standard_normal((nsrc, nchan, n))
    refs[:, :, :] = np.cumsum(refs, axis=-1) * 0.05 + refs  # some low-pass content
    ests = refs + 0.3 * rng.standard_normal(refs.shape) + 0.2 * np.roll(refs, 1, axis=0)
    ests = ests + 0.5 * np.roll(refs, 3, axis=-1)  # a delayed copy: the filters' job
    if silence is not None:
        refs[0, :, silence[0]:silence[1]] = 0
    ours = bss_eval_images_v4(refs, ests, win, win)
    theirs = museval_frames(refs, ests, win, win)
    assert_equal_frames(ours, theirs)
    if silence is not None:
        assert np.isnan(ours["SDR"]).any()


def test_torch_fft_path_and_frame_batches_equal_museval(monkeypatch):
    """The path the GPU takes (torch's FFT, several frames at once), here on the CPU: without
    scipy, with batches of frames that do not divide the frame count."""
    import banda.bsseval as B

    rng = np.random.default_rng(21)
    refs = rng.standard_normal((3, 2, 11000))
    ests = refs + 0.3 * rng.standard_normal(refs.shape) + 0.2 * np.roll(refs, 2, axis=-1)
    refs[1, :, 4000:6500] = 0
    monkeypatch.setattr(B, "_scipy_fft", lambda: None)
    theirs = museval_frames(refs, ests, 1000, 1000)
    for frame_batch in (1, 3, 32):
        assert_equal_frames(bss_eval_images_v4(refs, ests, 1000, 1000, frame_batch=frame_batch), theirs)


def test_channels_cancelling_is_silence_as_museval():
    """museval calls a source silent where its channel *sum* is 0 at every sample: channels
    that cancel count too."""
    rng = np.random.default_rng(8)
    refs = rng.standard_normal((2, 2, 6000))
    ests = refs + 0.3 * rng.standard_normal(refs.shape)
    refs[0, 1, 2000:4000] = -refs[0, 0, 2000:4000]
    ours, theirs = bss_eval_images_v4(refs, ests, 1000, 1000), museval_frames(refs, ests, 1000, 1000)
    assert np.isnan(ours["SDR"][:, 2:4]).all() and not np.isnan(ours["SDR"][:, :2]).any()
    assert_equal_frames(ours, theirs)


def test_hop_shorter_than_window_equals_museval():
    rng = np.random.default_rng(3)
    refs = rng.standard_normal((2, 2, 7000))
    ests = refs + 0.4 * rng.standard_normal(refs.shape)
    assert_equal_frames(bss_eval_images_v4(refs, ests, 2000, 1500), museval_frames(refs, ests, 2000, 1500))


@pytest.mark.skipif(not MUSDB.is_dir(), reason="shared/data/museval_musdb18_7s is not here")
@pytest.mark.parametrize("stems", [("vocals", "accompaniment"), ("vocals", "drums", "bass", "other")])
def test_musdb_excerpt_equals_museval(stems):
    """The real 7-s MUSDB18 excerpt: the references and museval's regression estimates (seeded
    noise), and a realistic estimate (the reference with leakage from the others)."""
    audio = {k: sf.read(str(MUSDB / f"{k}.wav"), dtype="float32")[0].T.astype(np.float64)
             for k in ("vocals", "drums", "bass", "other")}
    audio["accompaniment"] = audio["drums"] + audio["bass"] + audio["other"]
    refs = np.stack([audio[s] for s in stems])
    np.random.seed(0)
    noise = np.stack([np.random.random(refs.shape[1:][::-1]).T for _ in stems])
    realistic = refs + 0.1 * np.roll(refs, 1, axis=0) + 0.01 * noise
    for ests in ((noise, realistic) if len(stems) == 2 else (realistic,)):
        assert_equal_frames(bss_eval_images_v4(refs, ests, 44100, 44100), museval_frames(refs, ests, 44100, 44100))


@pytest.mark.skipif(not MIR_EVAL.is_dir(), reason="shared/data/mir_eval_separation is not here")
@pytest.mark.parametrize("case", ["01", "02", "03", "05", "06", "07", "08", "09"])
def test_mir_eval_data_equals_museval(case):
    def load(folder):
        files = sorted((MIR_EVAL / folder).glob("*.wav"))
        return np.stack([np.atleast_2d(sf.read(str(f), dtype="float64")[0].T) for f in files])

    refs, ests = load(f"ref{case}"), load(f"est{case}")
    n = min(refs.shape[-1], ests.shape[-1])
    refs, ests = refs[..., :n], ests[..., :n]
    keep = [i for i in range(len(refs)) if M.bss_eval_scorable(refs[i], ests[i])]
    refs, ests = refs[keep], ests[keep]
    win = 2000 if n > 4000 else n  # several frames where the file allows
    assert_equal_frames(bss_eval_images_v4(refs, ests, win, win), museval_frames(refs, ests, win, win))


def test_backends_agree_through_bss_eval_v4():
    rng = np.random.default_rng(11)
    refs = rng.standard_normal((3, 2, 20000))
    ests = refs + 0.5 * rng.standard_normal(refs.shape)
    refs[2, :, 12000:] = 0  # silent frames: NaN for every source
    a = M.bss_eval_v4(refs, ests, sample_rate=8000, backend="banda")
    b = M.bss_eval_v4(refs, ests, sample_rate=8000, backend="museval")
    assert_equal_frames(a, b)
    with pytest.raises(Exception, match="backend"):
        M.bss_eval_v4(refs, ests, sample_rate=8000, backend="fast")


def test_evaluate_cli_backend_and_scoring_json(tmp_path):
    from banda.bin import evaluate

    rng = np.random.default_rng(5)
    rate = 8000
    for track in ("a", "b"):
        refs = {s: rng.standard_normal((2, 12000)) * 0.1 for s in ("x", "y")}
        (tmp_path / "ref" / track).mkdir(parents=True)
        (tmp_path / "est" / track).mkdir(parents=True)
        mix = sum(refs.values())
        sf.write(str(tmp_path / "ref" / track / "mixture.wav"), mix.T, rate, subtype="FLOAT")
        for s, r in refs.items():
            sf.write(str(tmp_path / "ref" / track / f"{s}.wav"), r.T, rate, subtype="FLOAT")
            sf.write(str(tmp_path / "est" / track / f"{s}.wav"), (r + 0.3 * (mix - r)).T, rate, subtype="FLOAT")
    sums = {}
    for backend in ("banda", "museval"):
        out = tmp_path / backend
        rc = evaluate.main(["--ref", str(tmp_path / "ref"), "--est", str(tmp_path / "est"), "--metrics", "bss_eval",
                            "--bss-eval-backend", backend, "--no-progress", "-o", str(out)])
        assert rc == 0
        info = json.loads((out / "scoring.json").read_text())
        assert info == {"metrics": ["bss_eval"], "bss_eval_backend": backend, "bss_eval_device": "cpu"}
        sums[backend] = (out / "long.csv").read_text().splitlines()
    assert len(sums["banda"]) == len(sums["museval"]) > 8
    for a, b in zip(sums["banda"][1:], sums["museval"][1:]):
        *ka, va = a.split(",")
        *kb, vb = b.split(",")
        assert ka == kb and abs(float(va) - float(vb)) <= TOL_DB
    assert Path(tmp_path / "banda" / "summary.csv").is_file()
