"""banda.inference on the separator's device: the overlap-add against a plain reference, block
reading, the background writer (same bytes, errors, interrupts, nothing left behind) and flat
memory. On a machine with CUDA the device tests run there as well."""
import threading

import numpy as np
import pytest
import soundfile as sf
import torch

import banda.inference as inference
from banda.audio import quantize
from banda.errors import BandaError
from banda.inference import Separator, array_reader, overlap_add, segment_window

DEVICES = ["cpu", "cpu-staged"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def staged(request, monkeypatch):
    """``cpu-staged``: the CPU run as a device apart from the host (a stage on the device, copies
    to and from the host), the code paths of a GPU but pinned memory and events."""
    device = request.node.callspec.params.get("device") if hasattr(request.node, "callspec") else None
    if device == "cpu-staged":
        monkeypatch.setattr(inference, "_off_host", lambda d: True)


def real(device: str) -> str:
    return "cpu" if device == "cpu-staged" else device
GAINS = (1.0, 0.5, -2.0)


def reference(process, x: np.ndarray, segment: int, overlap: float) -> np.ndarray:
    """The whole signal at once in float64: pad by one overlap, add every segment's windowed output,
    divide by the sum of the windows, cut the padding."""
    ov = int(round(segment * overlap))
    hop = segment - ov
    length = x.shape[1]
    n = max(1, int(np.ceil((length + 2 * ov - segment) / hop)) + 1)
    padded = np.zeros((x.shape[0], (n - 1) * hop + segment), dtype=np.float32)
    padded[:, ov:ov + length] = x
    w = segment_window(segment, ov).astype(np.float64)
    acc, wsum = None, np.zeros(padded.shape[1])
    for k in range(n):
        o = process(padded[None, :, k * hop:k * hop + segment])[0].astype(np.float64)
        if acc is None:
            acc = np.zeros(o.shape[:2] + (padded.shape[1],))
        acc[..., k * hop:k * hop + segment] += o * w
        wsum[k * hop:k * hop + segment] += w
    return (acc / wsum)[..., ov:ov + length]


def flip_gain(chunks: np.ndarray) -> np.ndarray:
    """A model whose output depends on the whole segment: each segment reversed in time plus its mean,
    times a gain per stem."""
    out = chunks[..., ::-1] + chunks.mean(-1, keepdims=True)
    return (out[:, None] * np.array(GAINS, dtype=np.float32)[None, :, None, None]).astype(np.float32)


class FlipGain(torch.nn.Module):
    stems, in_channels, sample_rate = ["a", "b", "c"], 2, 1000

    def forward(self, x):
        out = x.flip(-1) + x.mean(-1, keepdim=True)
        return out[:, None] * torch.tensor(GAINS, device=x.device)[None, :, None, None]


def close(y, ref):
    """float32 accumulation: within 1e-6 of the signal's peak."""
    assert y.shape == ref.shape
    err = np.abs(y - ref).max() if y.size else 0.0
    assert err <= 1e-6 * max(1.0, np.abs(ref).max()), err


CASES = [(1, 16, 0.25, 1), (37, 16, 0.0, 2), (1000, 100, 0.25, 3), (999, 100, 0.5, 1), (1234, 64, 0.1, 4),
         (777, 7, 0.5, 2), (3000, 100, 0.75, 3), (4321, 33, 0.9, 8), (50, 100, 0.6, 1), (2500, 128, 0.55, 5)]


@pytest.mark.parametrize("length,segment,overlap,batch_size", CASES)
def test_overlap_add_matches_a_whole_signal_reference(length, segment, overlap, batch_size):
    x = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    ref = reference(flip_gain, x, segment, overlap)
    blocks = list(overlap_add(flip_gain, array_reader(x), length, segment, overlap, batch_size))
    assert [s for s, _ in blocks] == list(np.cumsum([0] + [b.shape[-1] for _, b in blocks[:-1]]))
    close(np.concatenate([b for _, b in blocks], -1), ref)


@pytest.mark.parametrize("device", DEVICES)
def test_random_cases_on_the_device_match_the_reference(device):
    """Random lengths, segments, overlaps (also above 1/2) and batch sizes, through Separator.separate."""
    rng = np.random.default_rng(0)
    for _ in range(25):
        segment = int(rng.integers(4, 200))
        overlap = float(rng.choice([0.0, rng.uniform(0, 0.5), 0.5, rng.uniform(0.5, 0.95)]))
        if not 0 <= int(round(segment * overlap)) < segment:
            continue
        length = int(rng.integers(1, 5 * segment))
        batch_size = int(rng.integers(1, 6))
        x = rng.standard_normal((2, length)).astype(np.float32)
        sep = Separator(FlipGain(), device=real(device), segment=segment / 1000, overlap=overlap, batch_size=batch_size,
                        progress=False)
        assert sep.segment == segment
        close(sep.separate(x), reference(flip_gain, x, segment, overlap))


@pytest.mark.parametrize("device", DEVICES)
def test_identity_is_exact_where_one_segment_covers_a_sample(device):
    """The flat middle of every segment is the model's output as it is (no float32 rounding)."""
    class Identity(torch.nn.Module):
        stems, in_channels, sample_rate = ["x"], 1, 1000

        def forward(self, x):
            return x[:, None]

    x = np.random.default_rng(3).standard_normal((1, 5000)).astype(np.float32)
    sep = Separator(Identity(), device=real(device), segment=0.4, overlap=0.25, batch_size=3, progress=False)
    y = sep.separate(x)[0]
    ov, hop = 100, 300
    flat = np.zeros(5000, dtype=bool)
    for k in range(20):
        flat[max(0, k * hop):max(0, k * hop + hop - ov)] = True  # padded [k hop + ov, (k + 1) hop) minus the padding
    np.testing.assert_array_equal(y[:, flat], x[:, flat])
    close(y, x)


class Pointwise(torch.nn.Module):
    """stem i = x * gain_i (values beyond [-1, 1] with the gains below)."""

    def __init__(self, gains=(1.0, 0.5, -3.0), in_channels=2, sample_rate=8000):
        super().__init__()
        self.stems, self.in_channels, self.sample_rate = ["a", "b", "c"][:len(gains)], in_channels, sample_rate
        self.register_buffer("gains", torch.tensor(gains))

    def forward(self, x):
        return x[:, None] * self.gains[None, :, None, None]


def write_input(path, x, rate=8000, subtype="FLOAT"):
    sf.write(str(path), x.T, rate, subtype=subtype)
    return sf.read(str(path), dtype="float32", always_2d=True)[0].T  # what the separator sees


def old_bytes(tmp_path, y: np.ndarray, rate: int, subtype: str, fmt: str) -> bytes:
    """How the separator wrote an output before: quantize's floats through libsndfile."""
    ref = tmp_path / f"ref.{fmt.lower()}"
    with sf.SoundFile(str(ref), "w", samplerate=rate, channels=y.shape[0], subtype=subtype, format=fmt) as f:
        f.write(quantize(y.T, subtype))
    return ref.read_bytes()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt,bit_depth,in_subtype", [("wav", 16, "PCM_16"), ("wav", 24, "FLOAT"), ("wav", 32, "PCM_24"),
                                                       ("flac", 16, "PCM_24"), ("flac", 24, "PCM_16")])
@pytest.mark.parametrize("overlap", [0.25, 0.7])
def test_separate_file_writes_the_in_memory_result(tmp_path, device, fmt, bit_depth, in_subtype, overlap):
    """Every output file has the bytes the old writer gave the in-memory separation (quantized on the
    host's rounding, clipped), and the clipped counts and peaks are the in-memory ones."""
    x = (0.6 * np.random.default_rng(bit_depth).standard_normal((2, 8000 * 2 + 123))).astype(np.float32)
    x[0, 100] = 1.0  # exactly full scale: clipped after * -3, not before
    x = write_input(tmp_path / "in.wav", x, subtype=in_subtype)
    sep = Separator(Pointwise(), device=real(device), segment=0.3, overlap=overlap, batch_size=2, progress=False)
    est = sep.separate(x)
    outputs = {s: tmp_path / "out" / f"{s}.{fmt}" for s in ("c", "a")}
    peaks = {}
    clipped = sep.separate_file(tmp_path / "in.wav", outputs, fmt=fmt, bit_depth=bit_depth, peaks=peaks)
    subtype = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}[bit_depth]
    for s, i in (("c", 2), ("a", 0)):
        y = est[i]
        if bit_depth < 32:
            assert outputs[s].read_bytes() == old_bytes(tmp_path, np.clip(y, -1, 1), 8000, subtype, fmt.upper()), s
        else:  # libsndfile stamps float files with the time of writing: compare the samples
            np.testing.assert_array_equal(sf.read(str(outputs[s]), dtype="float32", always_2d=True)[0].T, y)
        assert clipped[s] == (int((np.abs(y) > 1).sum()) if bit_depth < 32 else 0)
        assert peaks[s] == np.abs(y).max()
    assert clipped["c"] > 100 or bit_depth == 32
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in outputs.values())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model_channels,file_channels", [(2, 1), (1, 2), (2, 2)])
def test_channel_conversions_and_complements_match_in_memory(tmp_path, device, model_channels, file_channels):
    """A stem and a ``mixture`` complement (stem muted) in the file's channels, 32-bit float: the
    in-memory separation converted to the file's channels and the remix of banda.remix, exactly."""
    from banda.remix import Complement, remix

    x = (0.3 * np.random.default_rng(file_channels).standard_normal((file_channels, 5000))).astype(np.float32)
    write_input(tmp_path / "in.wav", x)
    sep = Separator(Pointwise(in_channels=model_channels), device=real(device), segment=0.25, overlap=0.25, batch_size=3,
                    progress=False)
    est = sep.separate(x)  # converts x to the model's channels
    if file_channels == 1 and model_channels == 2:
        est = est.mean(1, keepdims=True)
    elif file_channels == 2 and model_channels == 1:
        est = np.repeat(est, 2, axis=1)
    target = Complement("no_b", mode="mixture", stem="b")
    outputs = {"b": tmp_path / "b.wav", "no_b": tmp_path / "no_b.wav"}
    sep.separate_file(tmp_path / "in.wav", outputs, bit_depth=32, complement=target)
    b, no_b = (sf.read(str(outputs[k]), dtype="float32", always_2d=True)[0].T for k in ("b", "no_b"))
    np.testing.assert_array_equal(b, est[1])
    np.testing.assert_array_equal(no_b, remix(est, target.gain_vector(sep.stems), x, "mixture"))


def test_nan_in_the_output_is_written_as_before(tmp_path):
    """Blocks with NaN take the old path (libsndfile converts quantize's floats): the same bytes."""
    class Nan(torch.nn.Module):
        stems, in_channels, sample_rate = ["x"], 1, 8000

        def forward(self, x):
            return torch.where(x > 0.5, torch.nan, x)[:, None]

    x = (0.4 * np.random.default_rng(0).standard_normal((1, 3000))).astype(np.float32)
    write_input(tmp_path / "in.wav", x)
    sep = Separator(Nan(), segment=0.1, progress=False)
    peaks = {}
    out = tmp_path / "x.wav"
    y = sep.separate(x)[0]
    assert np.isnan(y).any() and (np.abs(y) > 1).any()
    assert sep.separate_file(tmp_path / "in.wav", {"x": out}, peaks=peaks) == {"x": int((np.abs(y) > 1).sum())}
    assert np.isnan(peaks["x"])
    assert out.read_bytes() == old_bytes(tmp_path, np.clip(y, -1, 1), 8000, "PCM_16", "WAV")


def test_the_file_is_read_in_large_blocks(tmp_path, monkeypatch):
    x = (0.3 * np.random.default_rng(1).standard_normal((2, 8000 * 20))).astype(np.float32)
    write_input(tmp_path / "in.wav", x, subtype="PCM_16")
    reads = []
    orig = sf.SoundFile.read

    def counting(self, frames=-1, *a, **k):
        reads.append(frames)
        return orig(self, frames, *a, **k)

    monkeypatch.setattr(sf.SoundFile, "read", counting)
    monkeypatch.setattr(inference._audio, "BLOCK_SECONDS", 5.0)
    sep = Separator(Pointwise(), segment=0.2, overlap=0.25, batch_size=2, progress=False)
    sep.separate_file(tmp_path / "in.wav", {"a": tmp_path / "a.wav"}, bit_depth=32)
    assert sep._n_segments(x.shape[1]) > 100
    assert 4 <= len(reads) <= 6, reads  # 20 s in blocks of 5 s (and a batch's span), not a read per segment
    np.testing.assert_array_equal(sf.read(str(tmp_path / "a.wav"), dtype="float32")[0].T,
                                  sep.separate(sf.read(str(tmp_path / "in.wav"), dtype="float32")[0].T)[0])


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("FLAC", "PCM_16"), ("FLAC", "PCM_24")])
def test_integer_reads_are_libsndfile_floats(tmp_path, fmt, subtype):
    x = np.random.default_rng(2).uniform(-1, 1, (3000, 2)).astype(np.float32)
    path = tmp_path / f"in.{fmt.lower()}"
    sf.write(str(path), x, 8000, subtype=subtype, format=fmt)
    with sf.SoundFile(str(path)) as f:
        read, scale = inference._file_blocks(f, "in")
        assert scale != 1.0
        dst = torch.empty(2, 1000)
        inference._copy_in(dst, read(1500, 1000), scale)
    np.testing.assert_array_equal(dst.numpy(), sf.read(str(path), dtype="float32")[0][1500:2500].T)


def writer_threads():
    return [t for t in threading.enumerate() if t.name.startswith("banda-writer")]


def test_an_error_of_the_writer_thread_is_raised_and_leaves_nothing(tmp_path, monkeypatch):
    x = (0.3 * np.random.default_rng(4).standard_normal((2, 8000 * 3))).astype(np.float32)
    write_input(tmp_path / "in.wav", x)
    calls = []
    orig = sf.SoundFile.write

    def failing(self, data):
        calls.append(threading.current_thread().name)
        if len(calls) == 5:
            raise sf.LibsndfileError(0, prefix="Error writing: the disk is on fire ")
        return orig(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", failing)
    sep = Separator(Pointwise(), segment=0.1, overlap=0.25, batch_size=2, progress=False)
    torch_threads = torch.get_num_threads()
    with pytest.raises(sf.LibsndfileError, match="the disk is on fire"):
        sep.separate_file(tmp_path / "in.wav", {s: tmp_path / "out" / f"{s}.wav" for s in "abc"})
    assert set(calls) == {"banda-writer"}  # written by the thread, raised in the caller
    assert not (tmp_path / "out").exists()  # no outputs, no temporary files, no folder
    assert writer_threads() == []
    assert torch.get_num_threads() == torch_threads


def test_an_interrupt_stops_the_writer_and_leaves_nothing(tmp_path):
    x = (0.3 * np.random.default_rng(5).standard_normal((2, 8000 * 3))).astype(np.float32)
    write_input(tmp_path / "in.wav", x)

    class Interrupted(Pointwise):
        calls = 0

        def forward(self, x):
            Interrupted.calls += 1
            if Interrupted.calls == 6:
                raise KeyboardInterrupt
            return super().forward(x)

    (tmp_path / "out").mkdir()
    sep = Separator(Interrupted(), segment=0.1, overlap=0.25, batch_size=1, progress=False)
    with pytest.raises(KeyboardInterrupt):
        sep.separate_file(tmp_path / "in.wav", {s: tmp_path / "out" / f"{s}.wav" for s in "abc"})
    assert list((tmp_path / "out").iterdir()) == []
    assert writer_threads() == []


def test_memory_is_flat_in_the_length(tmp_path):
    """The buffers a file separation uses (kept by the separator) do not depend on the song's length."""
    sep = Separator(Pointwise(), segment=0.2, overlap=0.25, batch_size=2, progress=False)
    sizes = []
    for seconds in (5, 40):
        x = (0.3 * np.random.default_rng(seconds).standard_normal((2, 8000 * seconds))).astype(np.float32)
        write_input(tmp_path / f"in{seconds}.wav", x)
        sep.separate_file(tmp_path / f"in{seconds}.wav", {"a": tmp_path / f"a{seconds}.wav"})
        sizes.append(sorted((k, len(v)) for k, v in sep._buffers._free.items()))
    assert sizes[0] == sizes[1]
    assert sum(k[0] * n for k, n in sizes[1]) * 4 < 2 * 8000 * 40 * 4  # well below the song itself


def test_bad_overlap_is_refused():
    for overlap in (1.0, -0.1):
        with pytest.raises(BandaError, match="overlap"):
            Separator(Pointwise(), segment=0.1, overlap=overlap, progress=False).separate(np.zeros((2, 100), np.float32))
