"""Codec data dirs and their datasets: banda.codec_data (write/read/check, SegmentDataset,
FixedSegmentDataset), on tiny multichannel files at several sample rates."""
import numpy as np
import pytest
import soundfile as sf
import torch

import banda.codec_data as codec_data
from banda.audio import resample
from banda.codec_data import (CHANNELS, SAMPLE_RATE, WAV_SCP, FixedSegmentDataset, Item, SegmentDataset,
                              check_codec_data_dir, read_codec_data_dir, write_codec_data_dir)
from banda.datadir import NUM_SAMPLES, read_scp, validate_data_dir
from banda.errors import ConfigError, DataError

RATE = 24000  # the model's rate
# id -> (file rate, channels, seconds)
FILES = {"a48": (48000, 4, 2.0), "b48": (48000, 4, 1.0), "c24": (24000, 4, 1.5), "d44": (44100, 4, 1.2)}


def write_file(path, rate, channels, seconds, seed=0):
    """Noise with a different level and tone per channel, so that channels can be told apart."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    x = np.stack([0.05 * (c + 1) * rng.standard_normal(n) + 0.2 * np.sin(2 * np.pi * (300 + 200 * c) * t)
                  for c in range(channels)])
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x.T.astype(np.float32), rate, subtype="FLOAT")
    return path


def full_reference(path, rate=RATE):
    """The whole file resampled to ``rate``: what every segment must be a piece of."""
    x = sf.read(str(path), dtype="float32", always_2d=True)[0].T.copy()
    return resample(x, sf.info(str(path)).samplerate, rate)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("codec_data")
    files = {key: write_file(root / "wav" / f"{key}.wav", *spec, seed=k) for k, (key, spec) in enumerate(FILES.items())}
    data = root / "data"
    items = write_codec_data_dir(data, files)
    refs = {key: full_reference(path) for key, path in files.items()}
    return {"root": root, "data": data, "files": files, "items": items, "refs": refs}


# --- the data dir ---------------------------------------------------------------------------


def test_write_and_read_data_dir(corpus):
    data, files = corpus["data"], corpus["files"]
    assert sorted(p.name for p in data.iterdir()) == sorted(
        [NUM_SAMPLES, CHANNELS, SAMPLE_RATE, "mix.scp", "reconstruction.scp"])  # no wav.scp: no stem "wav"
    lines = (data / "mix.scp").read_text().splitlines()
    assert [line.split()[0] for line in lines] == sorted(FILES)
    assert read_scp(data / "mix.scp") == {k: str(files[k].resolve()) for k in sorted(FILES)}
    assert read_scp(data / "reconstruction.scp") == read_scp(data / "mix.scp")
    items = read_codec_data_dir(data)
    assert items == corpus["items"]
    for it in items:
        rate, channels, seconds = FILES[it.id]
        assert it == Item(it.id, str(files[it.id].resolve()), int(round(rate * seconds)), channels, rate)
        assert it.duration == pytest.approx(seconds)
    assert validate_data_dir(data) == []  # also a separation-style data dir (mix + reconstruction)
    assert check_codec_data_dir(data, 4, 1.0) == items
    assert check_codec_data_dir(data, 1, 0.5) == items


def test_rewrite_drops_tables_of_an_earlier_run(corpus, tmp_path):
    out = tmp_path / "d"
    write_codec_data_dir(out, corpus["files"], extra_tables={"utt2scene": {k: "x" for k in FILES}})
    assert (out / "utt2scene").read_text().splitlines()[0] == "a48 x"
    write_codec_data_dir(out, {"b48": corpus["files"]["b48"]}, reference_tables=False)
    assert sorted(p.name for p in out.iterdir()) == sorted([WAV_SCP, NUM_SAMPLES, CHANNELS, SAMPLE_RATE])
    assert [it.id for it in read_codec_data_dir(out)] == ["b48"]


def test_write_errors_name_the_file(corpus, tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(DataError, match=f"{missing}: no such audio file"):
        write_codec_data_dir(tmp_path / "d", {"a": corpus["files"]["a48"], "m": missing})
    assert not (tmp_path / "d").exists()  # nothing written
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    with pytest.raises(DataError, match=str(junk)):
        write_codec_data_dir(tmp_path / "d", {"j": junk})
    with pytest.raises(DataError, match="whitespace"):
        write_codec_data_dir(tmp_path / "d", {"a b": corpus["files"]["a48"]})


def copy_dir(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_text(p.read_text())
    return dst


def test_read_errors_name_the_table(corpus, tmp_path):
    d = copy_dir(corpus["data"], tmp_path / "d")
    (d / CHANNELS).unlink()
    with pytest.raises(DataError, match=f"{d / CHANNELS}: no such file"):
        read_codec_data_dir(d)
    d = copy_dir(corpus["data"], tmp_path / "e")
    (d / SAMPLE_RATE).write_text("a48 48000\nb48 48000\nc24 fast\nd44 44100\n")
    with pytest.raises(DataError, match=rf"{d / SAMPLE_RATE}: id 'c24'.*'fast'"):
        read_codec_data_dir(d)
    (d / SAMPLE_RATE).write_text("a48 48000\nb48 48000\nd44 44100\n")
    with pytest.raises(DataError, match=rf"{d / SAMPLE_RATE}: id 'c24' .* is missing"):
        read_codec_data_dir(d)
    with pytest.raises(DataError, match="no such data directory"):
        read_codec_data_dir(tmp_path / "none")
    d = copy_dir(corpus["data"], tmp_path / "f")
    assert read_codec_data_dir(d) == corpus["items"]  # mix.scp is read where there is no wav.scp
    (d / "mix.scp").rename(d / WAV_SCP)
    assert read_codec_data_dir(d) == corpus["items"]
    (d / WAV_SCP).unlink()
    with pytest.raises(DataError, match=f"{d / WAV_SCP}: no such file"):
        read_codec_data_dir(d)


def test_check_names_the_file_with_the_wrong_channel_count(corpus, tmp_path):
    two = write_file(tmp_path / "two.wav", 48000, 2, 1.0)
    d = tmp_path / "d"
    write_codec_data_dir(d, {**corpus["files"], "two": two})
    with pytest.raises(DataError) as e:
        check_codec_data_dir(d, 4, 0.5)
    msg = str(e.value)
    assert str(two.resolve()) in msg and "2 channels" in msg and "channels is 4" in msg and "\n" not in msg
    check_codec_data_dir(d, 1, 0.5)  # one channel of any file
    with pytest.raises(DataError, match=str(two.resolve())):
        SegmentDataset(d, RATE, 4, 0.5, 4)
    with pytest.raises(DataError, match="2 channels"):
        FixedSegmentDataset(d, RATE, 4, 0.5, 4)


def test_check_length_missing_file_and_stale_tables(corpus, tmp_path):
    with pytest.raises(DataError, match=rf"{corpus['files']['b48'].resolve()}: 1.000 s long, shorter than a segment \(1.5 s"):
        check_codec_data_dir(corpus["data"], 4, 1.5)
    f = write_file(tmp_path / "f.wav", 48000, 4, 0.5)
    d = tmp_path / "d"
    write_codec_data_dir(d, {"f": f})
    write_file(f, 48000, 4, 0.25)  # changed since
    with pytest.raises(DataError, match=f"{f.resolve()}: has 12000 samples.*says 24000"):
        check_codec_data_dir(d, 4)
    f.unlink()
    with pytest.raises(DataError, match=f"id 'f': no such file {f.resolve()}"):
        check_codec_data_dir(d, 4)


# --- SegmentDataset ------------------------------------------------------------------------


def test_items_are_exact_resampled_pieces_of_the_files(corpus):
    """48k, 44.1k and 24k files at 24 kHz: every segment equals the same samples of the whole
    file resampled (partial reads lose nothing), of exactly round(seconds * rate) samples."""
    ds = SegmentDataset(corpus["data"], RATE, 4, segment_seconds=0.37, items_per_epoch=24, seed=3)
    assert len(ds) == 24
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        assert list(item) == ["audio"]
        audio = item["audio"]
        assert audio.dtype == torch.float32 and tuple(audio.shape) == (4, 8880)
        seg = ds.segment(i)
        assert seg.channel is None
        ref = corpus["refs"][seg.id][:, seg.start:seg.start + 8880]
        np.testing.assert_allclose(audio.numpy(), ref, atol=1e-5)
        seen.add(seg.id)
    assert seen == set(FILES)


def test_determinism_by_seed_epoch_and_index(corpus):
    a = SegmentDataset(corpus["data"], RATE, 4, 0.25, 16, seed=0)
    b = SegmentDataset(corpus["data"], RATE, 4, 0.25, 16, seed=0)
    for i in (0, 5, 15):
        assert torch.equal(a[i]["audio"], b[i]["audio"])
    assert not torch.equal(a[0]["audio"], a[1]["audio"])
    first = [a.segment(i) for i in range(16)]
    a.set_epoch(1)
    assert [a.segment(i) for i in range(16)] != first
    b.set_epoch(1)
    assert torch.equal(a[3]["audio"], b[3]["audio"])  # a resumed run (or another worker) sees the same item
    a.set_epoch(0)
    assert [a.segment(i) for i in range(16)] == first
    other = SegmentDataset(corpus["data"], RATE, 4, 0.25, 16, seed=1)
    assert [other.segment(i) for i in range(16)] != first
    with pytest.raises(IndexError):
        a[16]


def test_one_channel_mode_draws_random_channels(corpus):
    ds = SegmentDataset(corpus["data"], RATE, 1, 0.2, 40, seed=0)
    channels = set()
    for i in range(12):
        seg = ds.segment(i)
        audio = ds[i]["audio"]
        assert tuple(audio.shape) == (1, 4800)
        np.testing.assert_allclose(audio.numpy(), corpus["refs"][seg.id][seg.channel:seg.channel + 1,
                                                                        seg.start:seg.start + 4800], atol=1e-5)
    channels = {ds.segment(i).channel for i in range(40)}
    assert channels == {0, 1, 2, 3}


def test_files_are_drawn_by_duration(corpus, tmp_path):
    d = tmp_path / "d"
    write_codec_data_dir(d, {"long": write_file(tmp_path / "l.wav", 8000, 1, 4.0),
                             "short": write_file(tmp_path / "s.wav", 16000, 1, 1.0)})
    ds = SegmentDataset(d, 8000, 1, 0.1, 1000)
    share = np.mean([ds.segment(i).id == "long" for i in range(1000)])
    assert 0.74 < share < 0.86  # 4 s of 5


def test_short_files_are_zero_padded(tmp_path):
    d = tmp_path / "d"
    write_codec_data_dir(d, {"s": write_file(tmp_path / "s.wav", 48000, 2, 0.1)})
    audio = SegmentDataset(d, RATE, 2, 0.25, 2)[0]["audio"]
    assert tuple(audio.shape) == (2, 6000)
    assert audio[:, :2300].abs().max() > 0.05 and audio[:, 2500:].abs().max() == 0


def test_reads_only_the_segment(tmp_path, monkeypatch):
    """A 20 s file: each item reads about its segment (plus the resampling margin), never the file."""
    d = tmp_path / "d"
    write_codec_data_dir(d, {"long": write_file(tmp_path / "long.wav", 48000, 2, 20.0)})
    ref = full_reference(tmp_path / "long.wav")
    calls = []
    real = codec_data.read_audio

    def recording(path, start=0, frames=-1, **kw):
        calls.append((start, frames))
        return real(path, start=start, frames=frames, **kw)

    monkeypatch.setattr(codec_data, "read_audio", recording)
    ds = SegmentDataset(d, RATE, 2, 0.5, 8, seed=0)
    for i in range(8):
        seg = ds.segment(i)
        np.testing.assert_allclose(ds[i]["audio"].numpy(), ref[:, seg.start:seg.start + 12000], atol=1e-5)
    assert len(calls) == 8
    for start, frames in calls:
        assert 0 <= start and 24000 <= frames <= 24000 + 100  # 0.5 s at 48 kHz and a margin
    calls.clear()
    fixed = FixedSegmentDataset(d, RATE, 1, 0.5, 3, cache=True)
    for _ in range(2):
        [fixed[i] for i in range(3)]
    assert len(calls) == 3 and all(frames <= 24100 for _, frames in calls)  # cached after the first read


def test_batches_through_a_dataloader(corpus):
    ds = SegmentDataset(corpus["data"], RATE, 4, 0.1, 6)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=0)))
    assert tuple(batch["audio"].shape) == (3, 4, 2400)


def test_bad_options(corpus):
    with pytest.raises(ConfigError, match="channels"):
        SegmentDataset(corpus["data"], RATE, 0, 0.5, 4)
    with pytest.raises(ConfigError, match="sample_rate"):
        SegmentDataset(corpus["data"], 24000.5, 1, 0.5, 4)
    with pytest.raises(ConfigError, match="segment_seconds"):
        SegmentDataset(corpus["data"], RATE, 1, 0.0, 4)
    with pytest.raises(ConfigError, match="items_per_epoch"):
        SegmentDataset(corpus["data"], RATE, 1, 0.5, 0)
    with pytest.raises(ConfigError, match="validation segments"):
        FixedSegmentDataset(corpus["data"], RATE, 1, 0.5, 0)


# --- FixedSegmentDataset --------------------------------------------------------------------


def test_fixed_segments_are_the_same_every_epoch(corpus):
    a = FixedSegmentDataset(corpus["data"], RATE, 1, 0.3, num_segments=10, seed=0)
    b = FixedSegmentDataset(corpus["data"], RATE, 1, 0.3, num_segments=10, seed=0)
    assert len(a) == 10
    first = [a[i]["audio"] for i in range(10)]
    a.set_epoch(5)
    for i in range(10):
        assert torch.equal(a[i]["audio"], first[i]) and torch.equal(b[i]["audio"], first[i])
        assert tuple(first[i].shape) == (1, 7200)
        seg = a.segment(i)
        np.testing.assert_allclose(first[i].numpy(), corpus["refs"][seg.id][seg.channel:seg.channel + 1,
                                                                            seg.start:seg.start + 7200], atol=1e-5)
    assert {a.segment(i).id for i in range(10)} == set(FILES)  # every file represented
    assert len({a.segment(i).channel for i in range(10)}) > 1
    c = FixedSegmentDataset(corpus["data"], RATE, 1, 0.3, num_segments=10, seed=1)
    assert [c.segment(i) for i in range(10)] != [a.segment(i) for i in range(10)]
    multi = FixedSegmentDataset(corpus["data"], RATE, 4, 0.3, num_segments=3)
    assert tuple(multi[2]["audio"].shape) == (4, 7200) and multi.segment(2).channel is None
