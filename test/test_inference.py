"""banda.inference: overlap-add exactness and streaming, Separator, blockwise resampling."""
import math
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from banda.errors import BandaError
from banda.inference import Separator, array_reader, overlap_add, resample_file, segment_window

GAINS = np.array([1.0, 0.5, -2.0], dtype=np.float32)


def identity(chunks: np.ndarray) -> np.ndarray:
    """(batch, channels, time) -> (batch, 3 stems, channels, time), stem i = input * GAINS[i]."""
    return chunks[:, None] * GAINS[None, :, None, None]


def run(x, segment, overlap, batch_size, process=identity):
    blocks = list(overlap_add(process, array_reader(x), x.shape[1], segment, overlap, batch_size))
    pos = 0
    for start, block in blocks:  # in order and contiguous
        assert start == pos
        assert block.ndim == 3 and block.dtype == np.float32 and block.shape[1] == x.shape[0]
        assert block.shape[2] > 0
        pos += block.shape[2]
    assert pos == x.shape[1]
    return blocks, np.concatenate([b for _, b in blocks], axis=-1)


@pytest.mark.parametrize("length", [1, 50, 99, 100, 101, 1000, 4321])
@pytest.mark.parametrize("segment,overlap", [(100, 0.0), (100, 0.25), (100, 0.5), (64, 0.1), (7, 0.5), (100, 0.75), (33, 0.9)])
def test_overlap_add_identity_is_exact(length, segment, overlap):
    x = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    for batch_size in (1, 2, 3, 8):
        blocks, y = run(x, segment, overlap, batch_size)
        assert y.shape == (3, 2, length)
        # float32 on the device: exact where one segment covers a sample, a few ulp where windows meet
        np.testing.assert_allclose(y, identity(x[None])[0], atol=1e-6, rtol=1e-6)


def test_overlap_add_bad_overlap():
    for overlap in (1.0, -0.1, 1.5):
        with pytest.raises(BandaError, match="overlap"):
            list(overlap_add(identity, array_reader(np.zeros((1, 10), np.float32)), 10, 8, overlap))


def test_segment_window_sums_to_one():
    for segment, ov in [(100, 25), (100, 50), (64, 0), (10, 3)]:
        w = segment_window(segment, ov)
        hop = segment - ov
        total = np.zeros(hop * 20 + segment)
        for k in range(21):
            total[k * hop:k * hop + segment] += w
        np.testing.assert_allclose(total[segment:hop * 20], 1.0, atol=1e-6)
        assert (w > 0).all()


def test_overlap_add_streams():
    """Blocks come out while reading goes on: the reader is never far ahead of the output."""
    length, segment, batch_size = 50_000, 1000, 2
    x = np.random.default_rng(0).standard_normal((1, length)).astype(np.float32)
    reader = array_reader(x)
    furthest = [0]

    def read(start, frames):
        furthest[0] = max(furthest[0], start + frames)
        return reader(start, frames)

    n_blocks = 0
    for start, block in overlap_add(identity, read, length, segment, 0.25, batch_size):
        n_blocks += 1
        assert furthest[0] - (start + block.shape[-1]) <= (batch_size + 1) * segment
    assert n_blocks >= length // (batch_size * segment)


def test_overlap_add_block_count_grows_with_length():
    counts = []
    for length in (10_000, 20_000, 40_000):
        x = np.zeros((1, length), np.float32)
        blocks = list(overlap_add(identity, array_reader(x), length, 1000, 0.25, 1))
        counts.append(len(blocks))
        assert max(b.shape[-1] for _, b in blocks) <= 1000  # each block is at most one segment
    assert counts[0] < counts[1] < counts[2]


def test_overlap_add_memory_is_bounded():
    """tracemalloc peak while streaming does not grow with the input's length."""

    def peak(length):
        x = np.random.default_rng(0).standard_normal((2, length)).astype(np.float32)
        tracemalloc.start()
        try:
            for _ in overlap_add(identity, array_reader(x), length, 4096, 0.25, 2):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = peak(100_000), peak(1_000_000)
    long_input_bytes = 2 * 1_000_000 * 4
    assert long < 1.2 * short + 100_000, (short, long)
    assert long < long_input_bytes / 4, (short, long)


class Pointwise(torch.nn.Module):
    """A model whose output at each sample depends on that sample only: stem i = tanh(gain_i * x)."""

    def __init__(self, stems=("a", "b", "c"), in_channels=2, sample_rate=8000):
        super().__init__()
        self.stems, self.in_channels, self.sample_rate = list(stems), in_channels, sample_rate
        self.register_buffer("gains", torch.tensor([1.0, 0.5, -2.0][:len(self.stems)]))

    def forward(self, x):
        assert x.dim() == 3 and x.shape[1] == self.in_channels
        return torch.tanh(x[:, None] * self.gains[None, :, None, None])


@pytest.mark.parametrize("length", [5, 8000, 8000 * 3 + 17])
def test_separator_matches_whole_signal(length):
    model = Pointwise()
    sep = Separator(model, segment=0.5, overlap=0.25, batch_size=3, progress=False)
    x = np.random.default_rng(1).standard_normal((2, length)).astype(np.float32)
    y = sep.separate(x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)[None])[0].numpy()
    assert y.shape == (3, 2, length)
    np.testing.assert_allclose(y, ref, atol=1e-6, rtol=0)
    sub = sep.separate(x, stems=["c", "a"])
    np.testing.assert_allclose(sub, ref[[2, 0]], atol=1e-6, rtol=0)
    with pytest.raises(BandaError, match="unknown stem 'd'.*a, b, c"):
        sep.separate(x, stems=["d"])


def test_separator_channel_conversion():
    mono_model = Pointwise(in_channels=1)
    sep = Separator(mono_model, segment=0.25, progress=False)
    x = np.random.default_rng(2).standard_normal((2, 3000)).astype(np.float32)
    y = sep.separate(x)
    assert y.shape == (3, 1, 3000)
    np.testing.assert_allclose(y[:, 0], np.tanh(x.mean(0)[None] * GAINS[:, None]), atol=1e-6)
    stereo = Separator(Pointwise(in_channels=2), segment=0.25, progress=False)
    y = stereo.separate(x[:1])
    np.testing.assert_allclose(y[:, 0], y[:, 1])


class Counter:
    def __init__(self):
        self.n = 0

    def update(self, n):
        self.n += n


def test_progress_total_matches_segments():
    sep = Separator(Pointwise(), segment=0.1, overlap=0.3, progress=False)
    for length in (1, 800, 801, 12345):
        bar = Counter()
        x = np.zeros((2, length), np.float32)
        list(overlap_add(identity, array_reader(x), length, sep.segment, sep.overlap, 4, bar))
        assert bar.n == sep._n_segments(length)


@pytest.mark.parametrize("orig,new", [(44100, 48000), (48000, 44100), (44100, 16000)])
def test_resample_file_matches_whole_file(tmp_path, orig, new):
    frames = int(orig * 1.3) + 7
    x = (0.5 * np.random.default_rng(orig + new).standard_normal((frames, 2))).astype(np.float32)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(src), x, orig, subtype="FLOAT")
    resample_file(src, dst, new, block_seconds=0.05)  # ~26 blocks
    y, rate = sf.read(str(dst), dtype="float32")
    ref = AF.resample(torch.from_numpy(np.ascontiguousarray(x.T)), orig, new).numpy().T
    assert rate == new
    assert y.shape == ref.shape == (math.ceil(frames * new / orig), 2)
    assert np.abs(y - ref).max() < 1e-4
    # frames= cuts or zero-pads the output to a given length
    resample_file(src, dst, new, frames=1000, block_seconds=0.05)
    y, _ = sf.read(str(dst), dtype="float32")
    np.testing.assert_allclose(y, ref[:1000], atol=1e-4)
    resample_file(src, dst, new, frames=ref.shape[0] + 50, block_seconds=0.05)
    y, _ = sf.read(str(dst), dtype="float32")
    np.testing.assert_allclose(y[:-50], ref, atol=1e-4)
    assert not y[-50:].any()


@pytest.mark.parametrize("rate", [8000, 12000])
@pytest.mark.parametrize("mode", ["mixture", "sum"])
def test_separate_file_writes_a_remix(tmp_path, rate, mode):
    """A Complement with gains (banda-remix -m) is written block by block beside a stem; it is the
    in-memory remix (exactly at the model's rate; with resampling only the change, or the sum, is
    resampled back), and ``peaks`` receives each output's peak."""
    from banda.remix import Complement, remix, weighted_sum

    sep = Separator(Pointwise(), segment=0.05, overlap=0.25, batch_size=2, progress=False)
    x = (0.5 * np.random.default_rng(rate).standard_normal((2, rate + 11))).astype(np.float32)
    sf.write(str(tmp_path / "in.wav"), x.T, rate, subtype="FLOAT")
    target = Complement("remix", mode=mode, gains={"a": 0.0, "c": 2.0})
    outputs = {"remix": tmp_path / "remix.wav", "b": tmp_path / "b.wav"}
    peaks = {}
    sep.separate_file(tmp_path / "in.wav", outputs, bit_depth=32, clip="none", complement=target, peaks=peaks)
    y, b = (sf.read(str(outputs[k]), dtype="float32", always_2d=True)[0].T for k in ("remix", "b"))
    gains = np.array([0.0, 1.0, 2.0])
    if rate == sep.sample_rate:
        est = sep.separate(x)
        np.testing.assert_array_equal(y, remix(est, gains, x, mode))
        np.testing.assert_array_equal(b, est[1])
    else:
        est = sep.separate(AF.resample(torch.from_numpy(x), rate, sep.sample_rate).numpy())
        change = AF.resample(torch.from_numpy(weighted_sum(est, gains - (mode == "mixture"))), sep.sample_rate, rate).numpy()
        np.testing.assert_allclose(y, (x if mode == "mixture" else 0) + change[:, :x.shape[1]], atol=1e-4, rtol=0)
    assert y.shape == b.shape == x.shape
    assert peaks == {"remix": np.abs(y).max(), "b": np.abs(b).max()}


class ToyAutoencoder(torch.nn.Module):
    """An autoencoder (``encode``/``decode``, no ``stems``) of ``in_channels``: halves the
    signal and keeps each channel apart (channel k scaled by 1 / (k + 2))."""

    sample_rate = 8000

    def __init__(self, in_channels: int):
        super().__init__()
        self.in_channels = in_channels

    def encode(self, x):
        return x

    def decode(self, z):
        return z

    def forward(self, x):
        assert x.shape[1] == self.in_channels, x.shape
        scale = 1.0 / (torch.arange(x.shape[1], dtype=x.dtype) + 2)
        return x * (scale[:, None] if self.in_channels > 1 else 0.5)


@pytest.mark.parametrize("model_channels,file_channels", [(1, 1), (1, 5), (4, 4)])
def test_autoencoder_codes_files_of_many_channels(tmp_path, model_channels, file_channels):
    """An autoencoder runs as a separator of one stem, ``reconstruction``: a mono model codes
    each channel of any file on its own, a 4-channel model a 4-channel file as it is."""
    g = np.random.default_rng(0)
    x = (0.3 * g.standard_normal((9000, file_channels))).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 8000, subtype="FLOAT")
    sep = Separator(ToyAutoencoder(model_channels), segment=0.5, overlap=0.25, progress=False)
    assert sep.stems == ["reconstruction"]
    out = tmp_path / "out" / "reconstruction.wav"
    sep.separate_file(tmp_path / "in.wav", {"reconstruction": out}, bit_depth=32)
    y, rate = sf.read(out, dtype="float32", always_2d=True)
    scale = 0.5 if model_channels == 1 else 1.0 / (np.arange(file_channels) + 2)
    assert rate == 8000 and y.shape == x.shape
    np.testing.assert_allclose(y, x * scale, atol=1e-6)
    np.testing.assert_allclose(sep.separate(x.T)[0], (x * scale).T, atol=1e-6)


def test_autoencoder_refuses_a_file_of_another_channel_count(tmp_path):
    sf.write(tmp_path / "in.wav", np.zeros((800, 3), dtype=np.float32), 8000)
    sep = Separator(ToyAutoencoder(4), segment=0.05, progress=False)
    with pytest.raises(BandaError, match=r"in\.wav: has 3 channels; this model codes files of 4"):
        sep.separate_file(tmp_path / "in.wav", {"reconstruction": tmp_path / "o" / "r.wav"})
    assert not (tmp_path / "o").exists()


def test_a_separator_still_refuses_more_than_two_channels(tmp_path):
    sf.write(tmp_path / "in.wav", np.zeros((800, 3), dtype=np.float32), 8000)

    class Sep(torch.nn.Module):
        stems, sample_rate, in_channels = ["a"], 8000, 2

        def forward(self, x):
            return x.unsqueeze(1)

    with pytest.raises(BandaError, match="in.wav"):
        Separator(Sep(), segment=0.05, progress=False).separate_file(tmp_path / "in.wav", {"a": tmp_path / "a.wav"})
