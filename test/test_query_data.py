"""banda.query_data: the query sampler's rules, query offsets, absent stems in data dirs."""
import numpy as np
import pytest
import soundfile as sf
import torch

from banda.datadir import ABSENT, validate_data_dir, write_scp
from banda.errors import DataError
from banda.query_data import (QUERY_OFFSETS, QueryDataset, QueryValidDataset, onset_densest_offset,
                              read_query_offsets, write_query_offsets)

RATE = 4000
SECONDS = 8
# track -> stems it holds; guitar only in two tracks, piano in one
LAYOUT = {"t0": ["bass", "drums", "guitar", "vocals"], "t1": ["bass", "drums", "vocals"],
          "t2": ["bass", "drums", "guitar", "piano"], "t3": ["drums", "vocals"]}
STEMS = ["bass", "drums", "guitar", "piano", "vocals"]


def make_dir(root, loud=None):
    """A data dir of distinct noise stems (``-`` where a track lacks one). ``loud``: {stem:
    (start, stop)} seconds where that stem is at full level (else -60 dBFS)."""
    rng = np.random.default_rng(0)
    d = root / "data"
    d.mkdir()
    n = SECONDS * RATE
    scps = {s: {} for s in STEMS + ["mix"]}
    for tid, have in LAYOUT.items():
        mix = np.zeros((n, 2), dtype=np.float32)
        for s in STEMS:
            if s not in have:
                scps[s][tid] = ABSENT
                continue
            x = (0.1 * rng.standard_normal((n, 2))).astype(np.float32)
            if loud and s in loud:
                gain = np.full(n, 1e-3, dtype=np.float32)
                a, b = loud[s]
                gain[int(a * RATE):int(b * RATE)] = 1.0
                x *= gain[:, None]
            path = root / f"{tid}_{s}.wav"
            sf.write(path, x, RATE, subtype="FLOAT")
            scps[s][tid] = str(path)
            mix += x
        sf.write(root / f"{tid}_mix.wav", mix, RATE, subtype="FLOAT")
        scps["mix"][tid] = str(root / f"{tid}_mix.wav")
    for s, table in scps.items():
        write_scp(d / f"{s}.scp", table)
    write_scp(d / "utt2num_samples", {t: n for t in LAYOUT})
    return d


def file_chunk(path, start, frames):
    x, _ = sf.read(path, start=start, frames=frames, dtype="float32", always_2d=True)
    return x.T


def find_source(d, stem, chunk, tracks=LAYOUT):
    """(track, offset) whose ``stem`` file holds ``chunk`` (2, frames), found by correlation."""
    from banda.datadir import read_scp

    scp = read_scp(d / f"{stem}.scp")
    for tid in tracks:
        if scp[tid] == ABSENT:
            continue
        x, _ = sf.read(scp[tid], dtype="float32", always_2d=True)
        x = x.T
        for start in np.flatnonzero(np.abs(x[0, : x.shape[1] - chunk.shape[1] + 1] - chunk[0, 0]) < 1e-7):
            if np.allclose(x[:, start:start + chunk.shape[1]], chunk, atol=1e-6) and np.abs(chunk).max() > 0:
                return tid, int(start)
    return None, None


def test_absent_stems_in_a_data_dir(tmp_path):
    d = make_dir(tmp_path)
    assert validate_data_dir(d) == []
    write_scp(d / "piano.scp", {t: (ABSENT if t != "t1" else str(tmp_path / "nope.wav")) for t in LAYOUT})
    with pytest.raises(DataError, match="piano.scp: id 't1': no such file"):
        validate_data_dir(d)


def test_onset_densest_window():
    rate, n = 8000, 30 * 8000
    rng = np.random.default_rng(1)
    x = 0.001 * rng.standard_normal((1, n)).astype(np.float32)
    for t in np.arange(3.0, 6.0, 1.0):      # sparse clicks early
        x[0, int(t * rate):int(t * rate) + 40] += 0.8
    for t in np.arange(17.0, 23.0, 0.25):   # dense clicks from 17 s to 23 s
        x[0, int(t * rate):int(t * rate) + 40] += 0.8
    start = onset_densest_offset(x, rate, 5.0)
    assert 17.0 - 0.3 <= start / rate <= 18.0 + 0.3, start / rate
    assert onset_densest_offset(x[:, :4 * rate], rate, 5.0) == 0  # shorter than the window


def test_query_offsets_written_once_and_read(tmp_path):
    d = make_dir(tmp_path)
    write_query_offsets(d, seconds=2.0)
    offsets = read_query_offsets(d)
    assert set(offsets) == {(t, s) for t, have in LAYOUT.items() for s in have}
    assert all(0 <= v <= (SECONDS - 2) * RATE for v in offsets.values())
    assert validate_data_dir(d) == []  # an utt2* table the data-dir tools carry
    (d / QUERY_OFFSETS).write_text("t0 bass=x\nt1 -\nt2 -\nt3 -\n")
    with pytest.raises(DataError, match="bass=x"):
        read_query_offsets(d)


def plain(d, **kw):
    args = dict(stems=["bass", "drums", "guitar", "vocals"], sample_rate=RATE, channels=2, chunk_seconds=1.0,
                query_seconds=2.0, items_per_epoch=12, seed=3, gain_db=(0.0, 0.0), channel_swap=0.0, polarity=0.0)
    args.update(kw)
    return QueryDataset(d, **args)


def test_items_query_from_another_song_and_mixture_is_the_sum(tmp_path):
    d = make_dir(tmp_path)
    write_query_offsets(d, seconds=2.0)
    offsets = read_query_offsets(d)
    ds = plain(d)
    for i in range(len(ds)):
        item = ds[i]
        stem = ds.stems[int(item["query_stem"])]
        assert item["mixture"].shape == (2, RATE) and item["target"].shape == (1, 2, RATE)
        assert item["query"].shape == (2, 2 * RATE)
        song, start = find_source(d, stem, item["target"][0].numpy())
        assert song is not None and stem in LAYOUT[song]
        others = [s for s in LAYOUT[song]]
        expected = sum(file_chunk(str(tmp_path / f"{song}_{s}.wav"), start, RATE) for s in others)
        np.testing.assert_allclose(item["mixture"].numpy(), expected, atol=1e-5)
        qsong = next(t for t in LAYOUT if stem in LAYOUT[t] and t != song and np.allclose(
            file_chunk(str(tmp_path / f"{t}_{stem}.wav"), offsets[(t, stem)], 2 * RATE), item["query"].numpy()))
        assert qsong != song
    a, b = ds[5], ds[5]
    assert torch.equal(a["mixture"], b["mixture"]) and torch.equal(a["query"], b["query"])
    ds.set_epoch(1)
    assert not torch.equal(ds[5]["mixture"], a["mixture"])


def test_target_level_rule(tmp_path):
    """Bass is loud only from 5 s to 7 s: every bass target chunk lies there (the others are
    40 dB down, below -36 dBFS)."""
    d = make_dir(tmp_path, loud={"bass": (5.0, 7.0)})
    ds = plain(d, stems=["bass", "drums"], max_redraws=60, items_per_epoch=10, balanced=True)
    for i in range(len(ds)):
        item = ds[i]
        if ds.stems[int(item["query_stem"])] == "bass":
            level = 10 * np.log10(np.mean(item["target"].numpy().astype(np.float64) ** 2))
            assert level > -36, level
    # nothing above -48 dBFS anywhere: the sampler falls back to any chunk instead of failing
    (tmp_path / "quiet").mkdir()
    quiet = plain(make_dir(tmp_path / "quiet", loud={"bass": (0, 0)}), stems=["bass"], max_redraws=2, items_per_epoch=3)
    assert all(quiet[i]["target"].abs().max() > 0 for i in range(3))


def test_absent_query_gives_a_silent_target(tmp_path):
    d = make_dir(tmp_path)
    ds = plain(d, stems=["bass", "guitar", "vocals"], absent_prob=1.0, items_per_epoch=16)
    silent = 0
    for i in range(len(ds)):
        item = ds[i]
        stem = ds.stems[int(item["query_stem"])]
        if item["target"].abs().max() == 0:
            silent += 1
            assert item["mixture"].abs().max() > 0
            assert item["query"].abs().max() > 0  # a real clip of the absent stem type, from a song that has it
        else:  # only t0 holds every asked-for stem: nothing to leave out, so its item is a normal one
            assert find_source(d, stem, item["target"][0].numpy())[0] == "t0"
    assert silent > 0


def test_balanced_cycles_over_stem_types(tmp_path):
    d = make_dir(tmp_path)
    ds = plain(d, balanced=True, items_per_epoch=8)
    asked = [ds.stems[int(ds[i]["query_stem"])] for i in range(8)]
    assert sorted(asked[:4]) == sorted(ds.stems) and sorted(asked[4:]) == sorted(ds.stems)


def test_a_target_stem_needs_two_tracks(tmp_path):
    d = make_dir(tmp_path)
    with pytest.raises(DataError, match="piano.scp: stem 'piano' is in 1 track"):
        plain(d, stems=["bass", "piano"])
    with pytest.raises(DataError, match="no flute.scp"):
        plain(d, stems=["flute"])


def test_valid_items_are_fixed(tmp_path):
    d = make_dir(tmp_path, loud={"bass": (3.0, 5.0)})
    ds = QueryValidDataset(d, ["bass", "guitar"], RATE, 2, chunk_seconds=1.0, query_seconds=2.0)
    assert [(s, st) for s, st, _, _ in ds.items] == [("t0", "bass"), ("t1", "bass"), ("t2", "bass"),
                                                     ("t0", "guitar"), ("t2", "guitar")]
    assert [start for _, _, start, _ in ds.items][:3] == [3 * RATE] * 3
    assert [other for *_, other in ds.items] == ["t1", "t2", "t0", "t2", "t0"]
    item = ds[0]
    assert item["target"].shape == (1, 2, RATE) and int(item["query_stem"]) == 0
    assert torch.equal(ds[3]["query"], ds[3]["query"])
