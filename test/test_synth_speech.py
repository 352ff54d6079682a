"""Synthetic two-talker speech in PolSESS's layout: banda.synth_speech and banda.bin.synth_polsess."""
import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from banda import synth_speech
from banda.bin.synth_polsess import main
from banda.errors import ConfigError, DataError
from banda.synth_speech import INFO_FILE, is_indoor, render_utterance, synthesize_polsess

SR = 8000
DURATION = 2.5
COUNTS = {"train": 3, "val": 2, "test": 1}
FOLDERS = ["clean", "event", "mix", "scene", "sp1_reverb", "sp2_reverb", "ev_reverb"]
COLUMNS = ["mixFile", "speaker1File", "speaker2File", "sceneFile", "eventFile", "reverbForSpeaker1",
           "reverbForSpeaker2", "reverbForEvent"]
FOLDER_OF = {"mixFile": "mix", "speaker1File": "clean", "speaker2File": "clean", "sceneFile": "scene",
             "eventFile": "event", "reverbForSpeaker1": "sp1_reverb", "reverbForSpeaker2": "sp2_reverb",
             "reverbForEvent": "ev_reverb"}
REVERB = COLUMNS[5:]


def synth(out, seed=0, **counts):
    counts = {**{f"num_{k}": v for k, v in COUNTS.items()}, **counts}
    return synthesize_polsess(out, duration=DURATION, sample_rate=SR, seed=seed, progress=False, **counts)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("polsess_synth") / "corpus"
    return out, synth(out)


def read_rows(split_dir: Path):
    with open(split_dir / f"corpus_PolSESS_C_in_{split_dir.name}_final.csv", newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def read(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert rate == SR and data.shape[1] == 1, path
    return data[:, 0]


def all_files(root: Path):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_layout_and_csv(dataset):
    out, infos = dataset
    assert sorted(p.name for p in out.iterdir()) == sorted(list(COUNTS) + [INFO_FILE])
    assert [i.name for i in infos] == [f"syn_{s}_{k:05d}" for s, n in COUNTS.items() for k in range(n)]
    for split, count in COUNTS.items():
        d = out / split
        assert sorted(p.name for p in d.iterdir()) == sorted(FOLDERS + [f"corpus_PolSESS_C_in_{split}_final.csv"])
        header, rows = read_rows(d)
        assert header == COLUMNS and len(rows) == count
        used = set()
        for row, info in zip(rows, [i for i in infos if i.split == split]):
            assert row["mixFile"] == f"{info.name}.wav"
            assert all(row[c] for c in REVERB) == info.indoor and (any(row[c] for c in REVERB) == info.indoor)
            assert row["speaker1File"] != row["speaker2File"]
            for column, folder in FOLDER_OF.items():
                if row[column]:
                    path = d / folder / row[column]
                    i = sf.info(str(path))
                    assert (i.samplerate, i.channels, i.frames, i.format, i.subtype) == \
                        (SR, 1, int(DURATION * SR), "WAV", "FLOAT"), path
                    used.add(path.relative_to(out))
        assert {p for p in all_files(out) if p.parts[0] == split and p.suffix == ".wav"} == used  # no stray files
    lines = (out / INFO_FILE).read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["name", "split", "kind"] and len(lines) == 1 + sum(COUNTS.values())


def test_mix_is_the_sum_of_its_layers(dataset):
    out, _ = dataset
    for split in COUNTS:
        for row in read_rows(out / split)[1]:
            layers = [read(out / split / FOLDER_OF[c] / row[c]) for c in COLUMNS[1:] if row[c]]
            mix = read(out / split / "mix" / row["mixFile"])
            assert len(layers) == (8 if row["reverbForSpeaker1"] else 5) - 1
            np.testing.assert_allclose(mix, np.sum(layers, axis=0, dtype=np.float64), rtol=0, atol=1e-6)
            assert 1e-3 < np.sqrt(np.mean(mix.astype(np.float64) ** 2)) and np.abs(mix).max() <= 0.9
            for x in layers:
                assert np.abs(x).max() > 1e-4  # no silent layer


def test_indoor_and_outdoor(dataset):
    out, infos = dataset
    assert {i.indoor for i in infos if i.split == "train"} == {True, False}
    assert sum(is_indoor(0, "train", i) for i in range(200)) == 100  # half: one of each pair
    assert {is_indoor(s, "val", 0) for s in range(20)} == {True, False}  # not always the same one first


def test_deterministic(dataset, tmp_path):
    out, _ = dataset
    again = tmp_path / "again"
    synth(again)
    assert all_files(again) == all_files(out)
    for rel in all_files(out):
        assert (again / rel).read_bytes() == (out / rel).read_bytes(), rel
    # an utterance does not depend on how many there are
    fewer = tmp_path / "fewer"
    synth(fewer, num_train=1, num_val=0, num_test=0)
    assert sorted(p.name for p in fewer.iterdir()) == sorted([INFO_FILE, "train"])
    for rel in all_files(fewer / "train"):
        if rel.suffix == ".wav":
            assert (fewer / "train" / rel).read_bytes() == (out / "train" / rel).read_bytes(), rel
    other = tmp_path / "other"
    synth(other, seed=1, num_val=0, num_test=0)
    for folder in ("mix", "clean", "scene", "event"):
        for f in (other / "train" / folder).iterdir():
            assert f.read_bytes() != (out / "train" / folder / f.name).read_bytes(), f


# --- is it speech? -----------------------------------------------------------------------------


def _frames(x, sr, win, hop):
    n, h = int(win * sr), int(hop * sr)
    return np.stack([x[i:i + n] for i in range(0, len(x) - n, h)])


def _power_below(x, sr, f):
    p = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    return p[np.fft.rfftfreq(len(x), 1 / sr) < f].sum() / p.sum()


def _pitch(x, sr):
    """Autocorrelation pitch (Hz) and periodicity of the 40 ms frames within 30 dB of the loudest."""
    frames = _frames(x.astype(np.float64), sr, 0.04, 0.01)
    energy = np.mean(frames ** 2, axis=1)
    lo, hi = int(sr / 400), int(sr / 60)
    f0, strength = [], []
    for fr in frames[energy > energy.max() * 1e-3]:
        fr = fr - fr.mean()
        ac = np.correlate(fr, fr, "full")[len(fr) - 1:]
        ac = ac / (ac[0] + 1e-12) * len(fr) / (len(fr) - np.arange(len(fr)))
        k = lo + int(np.argmax(ac[lo:hi]))
        f0.append(sr / k)
        strength.append(ac[k])
    return np.array(f0), np.array(strength)


def _longest_pause(x, sr):
    """Longest stretch (s) 40 dB below the loudest 20 ms frame, between the first and last active frames."""
    level = 10 * np.log10(np.mean(_frames(x.astype(np.float64), sr, 0.02, 0.01) ** 2, axis=1) + 1e-20)
    active = np.flatnonzero(level > level.max() - 40)
    best = run = 0
    for quiet in level[active[0]:active[-1]] <= level.max() - 40:
        run = run + 1 if quiet else 0
        best = max(best, run)
    return best * 0.01


def _syllabic_modulation(x, sr):
    """Energy of the level envelope's spectrum in 2-8 Hz (syllables) over that in 10-30 Hz."""
    env = np.sqrt(np.mean(_frames(x.astype(np.float64), sr, 0.02, 0.01) ** 2, axis=1))
    p = np.abs(np.fft.rfft(env - env.mean(), 4096)) ** 2
    f = np.fft.rfftfreq(4096, 0.01)
    return p[(f >= 2) & (f <= 8)].sum() / p[(f > 10) & (f <= 30)].sum()


@pytest.mark.parametrize("index", [0, 1])
def test_speech_is_speech_like(index):
    audio16, info = render_utterance(5, "train", index, 6.0, 16000)
    audio8, info8 = render_utterance(5, "train", index, 6.0, SR)
    assert info8 == info
    medians = {}
    for key, base in (("speaker1", info.f0_sp1), ("speaker2", info.f0_sp2)):
        assert 90 <= base <= 250
        assert _power_below(audio16[key], 16000, 4000) > 0.95, key  # telephone band holds the energy
        assert _power_below(audio8[key], SR, 1500) > 0.8, key  # mostly below the third formant
        f0, strength = _pitch(audio8[key], SR)
        voiced = strength > 0.6
        assert voiced.mean() > 0.5, key  # mostly periodic (harmonic) while active
        medians[key] = np.median(f0[voiced])
        assert abs(12 * np.log2(medians[key] / base)) < 3, (key, medians[key], base)  # the talker's pitch
        assert np.std(12 * np.log2(f0[voiced] / medians[key])) > 0.5, key  # intonation: the pitch moves
        assert _longest_pause(audio8[key], SR) >= 0.15, key  # pauses between phrases
        assert _syllabic_modulation(audio8[key], SR) > 5, key  # syllables: 2-8 Hz level changes
    assert abs(12 * np.log2(medians["speaker1"] / medians["speaker2"])) > 2  # two different talkers


def test_a_white_noise_fails_the_speech_checks():
    noise = np.random.default_rng(0).standard_normal(6 * 16000)
    assert _power_below(noise, 16000, 4000) < 0.6
    assert (_pitch(noise[::2], SR)[1] > 0.6).mean() < 0.2
    assert _longest_pause(noise, 16000) < 0.15


def _impulse_response(dry, wet, sr, seconds=0.6):
    """Regularised deconvolution: h with wet ~ dry * h; its causal part and its negative lags."""
    n = len(dry)
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    s = np.fft.rfft(dry.astype(np.float64), nfft)
    power = np.abs(s) ** 2
    h = np.fft.irfft(np.fft.rfft(wet.astype(np.float64), nfft) * np.conj(s) / (power + 1e-3 * power.mean()), nfft)
    return h[: int(seconds * sr)], h[-int(0.05 * sr):]


def test_reverb_layers_are_the_reverberant_part():
    index = next(i for i in range(4) if is_indoor(0, "val", i))
    audio, info = render_utterance(0, "val", index, 4.0, SR)
    assert info.indoor and 0.2 <= info.rt60 <= 0.6
    assert not any(k in render_utterance(0, "val", index ^ 1, 1.0, SR)[0] for k in ("sp1_reverb", "ev_reverb"))
    for dry, wet in (("speaker1", "sp1_reverb"), ("speaker2", "sp2_reverb"), ("event", "ev_reverb")):
        h, negative = _impulse_response(audio[dry], audio[wet], SR)
        total = np.sum(h ** 2)
        direct = np.sum(h[: int(0.001 * SR)] ** 2) / total
        assert direct < 0.01, (wet, direct)  # no direct path: the dry sound is not in the layer
        assert np.sum(negative ** 2) / total < 0.01, wet  # causal
        early, late = np.sum(h[: int(0.1 * SR)] ** 2), np.sum(h[int(0.2 * SR): int(0.3 * SR)] ** 2)
        assert early > 10 * late > 0, wet  # a decaying tail
        power = {k: np.mean(audio[k].astype(np.float64) ** 2) for k in (dry, wet)}
        ratio_db = 10 * np.log10(power[wet] / power[dry])
        assert -15 < ratio_db < 10, (wet, ratio_db)
        # the check can fail: with the dry sound added back (conv(x, rir) itself) the direct path shows
        h_full, _ = _impulse_response(audio[dry], audio[wet] + audio[dry], SR)
        assert np.sum(h_full[: int(0.001 * SR)] ** 2) / np.sum(h_full ** 2) > 0.1, wet


def test_levels():
    for index in range(4):
        audio, info = render_utterance(2, "test", index, 3.0, SR)
        power = {k: np.mean(v.astype(np.float64) ** 2) for k, v in audio.items()}
        background = np.mean((audio["scene"].astype(np.float64) + audio["event"] + audio.get("ev_reverb", 0.0)) ** 2)
        assert abs(10 * np.log10(power["speaker1"] / background) - info.snr_db) < 0.05
        assert -5 <= info.snr_db <= 5 and 2 <= info.sp2_below_db <= 6
        assert abs(10 * np.log10(power["speaker1"] / power["speaker2"]) - info.sp2_below_db) < 0.05


# --- writing -------------------------------------------------------------------------------------


def test_replaces_its_own_dataset_and_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "corpus"
    synth(out, num_train=2, num_val=1, num_test=0)
    before = {rel: (out / rel).read_bytes() for rel in all_files(out)}
    real = synth_speech.render_utterance
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth_speech, "render_utterance", failing)
    with pytest.raises(KeyboardInterrupt):
        synth(out, num_train=3, num_val=0, num_test=1)
    assert {rel: (out / rel).read_bytes() for rel in all_files(out)} == before  # the earlier dataset, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # no temporary folder left
    monkeypatch.setattr(synth_speech, "render_utterance", real)
    synth(out, num_train=1, num_val=0, num_test=1)
    assert sorted(p.name for p in out.iterdir()) == sorted([INFO_FILE, "test", "train"])  # replaced as a whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(synth_speech, "render_utterance", failing)
        calls.clear()
        synth(fresh, num_train=3, num_val=0, num_test=0)
    assert not fresh.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_removes_stale_temporary_folders(tmp_path):
    from banda.fileio import _HOST

    stale = tmp_path / f".corpus.banda-{_HOST}-999999999-abc"  # no such process
    (stale / "train").mkdir(parents=True)
    mine = tmp_path / f".corpus.banda-{_HOST}-{os.getppid()}-abc"  # a live process: kept
    mine.mkdir()
    synth(tmp_path / "corpus", num_train=1, num_val=0, num_test=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["corpus", mine.name])


def test_option_errors(tmp_path):
    for kwargs, message in (({"num_train": -1}, "--num-train"), ({"num_val": 1.5}, "--num-val"),
                            ({"num_train": 0, "num_val": 0, "num_test": 0}, "all 0")):
        with pytest.raises(ConfigError, match=message):
            synth(tmp_path / "x", **kwargs)
    with pytest.raises(ConfigError, match="--duration"):
        synthesize_polsess(tmp_path / "x", 1, 0, 0, duration=0.5)
    with pytest.raises(ConfigError, match="--sample-rate"):
        synthesize_polsess(tmp_path / "x", 1, 0, 0, sample_rate=4000)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a dataset of banda-synth-polsess"):
        synth(foreign, num_train=1)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_cli(tmp_path, capsys):
    out = tmp_path / "corpus"
    code = main(["--out", str(out), "--num-train", "1", "--num-val", "1", "--num-test", "0", "--duration", "1.5",
                 "--seed", "3", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted([INFO_FILE, "train", "val"])
    assert sf.info(str(out / "val" / "mix" / "syn_val_00000.wav")).frames == 1.5 * SR
    capsys.readouterr()
    for argv in (["--duration", "0.5"], ["--sample-rate", "100"]):
        code = main(["--out", str(tmp_path / "other"), "--no-progress", *argv])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("banda-synth-polsess: error:"), lines
    assert not (tmp_path / "other").exists()


def test_readable_by_the_polsess_reader(dataset):
    polsess = pytest.importorskip("banda.corpora.polsess")
    out, infos = dataset
    for split in COUNTS:
        utterances = polsess.read_split(out / split)
        assert [(u.id, u.indoor) for u in utterances] == [(i.name, i.indoor) for i in infos if i.split == split]
        assert {(u.frames, u.sample_rate) for u in utterances} == {(int(DURATION * SR), SR)}
