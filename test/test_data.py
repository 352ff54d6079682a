"""Training and validation datasets over data dirs (banda.data)."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from banda.data import FixedChunkDataset, RandomMixDataset, _db
from banda.datadir import write_scp
from banda.errors import DataError

STEMS = ["vocals", "drums", "bass", "other"]
SR = 44100


def make_data_dir(folder: Path, tracks, sample_rate: int, rates=None) -> Path:
    """``tracks``: ``{id: {stem: (channels, time) array}}``; writes wavs, scps, utt2num_samples and mix."""
    folder.mkdir(parents=True, exist_ok=True)
    tables, lengths = {}, {}
    for tid, stems in tracks.items():
        mix = sum(stems.values())
        rate = (rates or {}).get(tid, sample_rate)
        for name, audio in list(stems.items()) + [("mix", mix)]:
            path = folder / "wav" / tid / f"{name}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), np.asarray(audio, dtype=np.float32).T, rate, subtype="FLOAT")
            tables.setdefault(name, {})[tid] = str(path)
        lengths[tid] = mix.shape[1]
    for name, table in tables.items():
        write_scp(folder / f"{name}.scp", table)
    write_scp(folder / "utt2num_samples", lengths)
    return folder


def noise(seed, channels, n, level=0.1):
    return (level * np.random.default_rng(seed).standard_normal((channels, n))).astype(np.float32)


def random_mix(data_dir, **kw):
    args = dict(seed=0)
    args.update(kw)
    return RandomMixDataset(data_dir, STEMS, SR, 2, 0.5, 6, **args)


# ---------------------------------------------------------------------- RandomMixDataset
def test_random_mix_deterministic_per_epoch_and_index(tiny_data_dirs):
    train = tiny_data_dirs / "train"
    ds = random_mix(train)
    assert len(ds) == 6
    ds.set_epoch(1)
    mix_a, stems_a = ds[3]
    mix_b, stems_b = ds[3]
    assert torch.equal(mix_a, mix_b) and torch.equal(stems_a, stems_b)
    # a fresh dataset (another process, a resumed run) gives the same item
    other = random_mix(train)
    other.set_epoch(1)
    assert torch.equal(other[3][1], stems_a)
    # other index, other epoch, other seed: other chunks
    assert not torch.equal(ds[4][1], stems_a)
    ds.set_epoch(2)
    assert not torch.equal(ds[3][1], stems_a)
    seeded = random_mix(train, seed=1)
    seeded.set_epoch(1)
    assert not torch.equal(seeded[3][1], stems_a)


def test_random_mix_shapes_and_mixture_is_sum(tiny_data_dirs):
    ds = random_mix(tiny_data_dirs / "train", stem_drop=0.3)
    ds.set_epoch(1)
    chunk = int(0.5 * SR)
    for i in range(len(ds)):
        mix, stems = ds[i]
        assert mix.shape == (2, chunk) and stems.shape == (4, 2, chunk)
        assert mix.dtype == torch.float32 and stems.dtype == torch.float32
        assert torch.allclose(mix, stems.sum(0), atol=1e-6)
    mono = RandomMixDataset(tiny_data_dirs / "train", ["bass", "vocals"], SR, 1, 0.25, 2)
    mix, stems = mono[0]
    assert mix.shape == (1, int(0.25 * SR)) and stems.shape == (2, 1, int(0.25 * SR))


def test_random_mix_augmentations(tiny_data_dirs):
    """gain and polarity change the stems; with everything off the chunk is read as-is."""
    plain = random_mix(tiny_data_dirs / "train", gain_db=[0, 0], channel_swap=0, polarity=0)
    flipped = random_mix(tiny_data_dirs / "train", gain_db=[0, 0], channel_swap=0, polarity=1)
    louder = random_mix(tiny_data_dirs / "train", gain_db=[6, 6], channel_swap=0, polarity=0)
    dropped = random_mix(tiny_data_dirs / "train", stem_drop=1.0)
    _, s = plain[0]
    assert torch.allclose(flipped[0][1], -s)
    assert torch.allclose(louder[0][1], s * 10 ** (6 / 20), atol=1e-6)
    assert dropped[0][1].abs().max() == 0


def _mostly_silent_dir(tmp_path, sr=8000, seconds=4.0):
    """2 tracks; ``vocals`` has sound only in its first 0.6 s, the other stems everywhere."""
    n = int(sr * seconds)
    tracks = {}
    for k in range(2):
        stems = {s: noise(10 * k + j, 2, n) for j, s in enumerate(STEMS)}
        stems["vocals"][:, int(0.6 * sr):] = 0.0
        tracks[f"t{k}"] = stems
    return make_data_dir(tmp_path / "silent", tracks, sr)


@pytest.mark.parametrize("random_mix_mode", [True, False])
def test_near_silent_chunks_are_redrawn(tmp_path, random_mix_mode):
    sr = 8000
    data = _mostly_silent_dir(tmp_path, sr)

    def levels(max_redraws):
        ds = RandomMixDataset(data, STEMS, sr, 2, 0.5, 40, seed=0, random_mix=random_mix_mode, gain_db=[0, 0],
                              min_target_db=-30.0, max_redraws=max_redraws)
        ds.set_epoch(1)
        return np.array([_db(ds[i][1][0].numpy()) for i in range(len(ds))])

    without = levels(0)
    assert (without < -30).sum() > 10, "the test data must give silent chunks without redraws"
    with_redraws = levels(40)
    assert (with_redraws >= -30).all(), with_redraws.min()


# ---------------------------------------------------------------------- FixedChunkDataset
def test_fixed_chunks_deterministic_and_real(tiny_data_dirs):
    valid = tiny_data_dirs / "valid"
    a = FixedChunkDataset(valid, STEMS, SR, 2, 1.0)
    b = FixedChunkDataset(valid, STEMS, SR, 2, 1.0)
    assert len(a) == 3  # one 3 s track in 1 s chunks
    assert a.items == b.items
    for i in range(len(a)):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
        mix, stems = a[i]
        assert mix.shape == (2, SR) and stems.shape == (4, 2, SR)
        # the real mixture file, which is the sum of the stems up to 16-bit rounding
        assert torch.allclose(mix, stems.sum(0), atol=1e-3)
    assert [s for _, s in a.items] == [0, SR, 2 * SR]
    limited = FixedChunkDataset(valid, STEMS, SR, 2, 1.0, max_chunks=2)
    assert len(limited) == 2 and limited.items == [a.items[0], a.items[2]]


def test_fixed_chunk_needs_mix(tmp_path):
    data = make_data_dir(tmp_path / "d", {"t0": {s: noise(j, 2, 4000) for j, s in enumerate(STEMS)}}, 8000)
    (data / "mix.scp").unlink()
    with pytest.raises(DataError, match="mix.scp"):
        FixedChunkDataset(data, STEMS, 8000, 2, 0.1)
    RandomMixDataset(data, STEMS, 8000, 2, 0.1, 2)  # training does not need the mixture


# ---------------------------------------------------------------------- data errors
def test_sample_rate_mismatch_names_file(tmp_path):
    tracks = {f"t{k}": {s: noise(k + j, 2, 3000) for j, s in enumerate(STEMS)} for k in range(2)}
    data = make_data_dir(tmp_path / "d22", tracks, 22050)
    for cls, args in ((RandomMixDataset, (0.1, 2)), (FixedChunkDataset, (0.1,))):
        with pytest.raises(DataError) as e:
            cls(data, STEMS, SR, 2, *args)
        assert str(data / "wav" / "t0" / "vocals.wav") in str(e.value) and "22050" in str(e.value)
    # only the second track differs: found when it is read
    mixed = make_data_dir(tmp_path / "mixed", tracks, 22050, rates={"t1": 16000})
    ds = FixedChunkDataset(mixed, STEMS, 22050, 2, 0.1)
    ds[0]
    with pytest.raises(DataError) as e:
        ds[len(ds) - 1]
    assert str(mixed / "wav" / "t1") in str(e.value) and "16000" in str(e.value)


def test_missing_stem_and_length(tmp_path):
    tracks = {"t0": {s: noise(j, 2, 3000) for j, s in enumerate(STEMS)}}
    data = make_data_dir(tmp_path / "d", tracks, 8000)
    with pytest.raises(DataError, match="piano.scp"):
        RandomMixDataset(data, STEMS + ["piano"], 8000, 2, 0.1, 2)
    (data / "utt2num_samples").write_text("other 3000\n")
    with pytest.raises(DataError, match="utt2num_samples"):
        RandomMixDataset(data, STEMS, 8000, 2, 0.1, 2)


# ---------------------------------------------------------------------- RandomChunkDataset
def test_random_chunks_of_the_real_mixture(tmp_path):
    """Random chunks read the real mixture (not the sum of the targets), aligned with the
    targets; reproducible per (seed, epoch, index); short tracks zero-padded."""
    from banda.data import RandomChunkDataset

    s1, s2, n = noise(1, 1, 8000), noise(2, 1, 8000), noise(3, 1, 8000)
    make_data_dir(tmp_path / "d", {"a": {"s1": s1, "s2": s2, "noise": n}, "b": {"s1": s1[:, :1000], "s2": s2[:, :1000],
                                                                           "noise": n[:, :1000]}}, 8000)
    ds = RandomChunkDataset(tmp_path / "d", ["s1", "s2"], 8000, 1, 0.5, 20, seed=3)
    assert len(ds) == 20
    seen_pad = False
    for i in range(20):
        mix, targets = ds[i]
        assert mix.shape == (1, 4000) and targets.shape == (2, 1, 4000)
        # the mixture holds the noise too: it is not the sum of the targets
        residual = mix - targets.sum(0)
        assert residual.abs().max() > 0.01 or mix.abs().max() == 0
        seen_pad |= bool((mix[:, 1000:] == 0).all())
    assert seen_pad
    ds.set_epoch(2)
    again = RandomChunkDataset(tmp_path / "d", ["s1", "s2"], 8000, 1, 0.5, 20, seed=3)
    again.set_epoch(2)
    assert torch.equal(ds[5][0], again[5][0]) and torch.equal(ds[5][1], again[5][1])
    again.set_epoch(3)
    assert not all(torch.equal(ds[i][0], again[i][0]) for i in range(5))
