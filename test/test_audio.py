"""banda.audio: read/write round trips, channel conversion, errors naming the file, resampling, atomic writes."""
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from banda.audio import AudioInfo, audio_info, convert_channels, read_audio, resample, write_audio
from banda.errors import AudioError, BandaError

RATE = 44100


def sine(freq: float, frames: int, rate: int = RATE, channels: int = 2, amp: float = 0.5) -> np.ndarray:
    t = np.arange(frames) / rate
    return np.stack([amp / (c + 1) * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]).astype(np.float32)


def noise(frames: int, channels: int = 2, seed: int = 0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.random.default_rng(seed).uniform(-1, 1, (channels, frames))).astype(np.float32)


def listing(folder: Path):
    """Every entry under ``folder``, hidden ones included."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


@pytest.mark.parametrize("ext,bit_depth,atol", [
    ("wav", 16, 1 / 2 ** 15),
    ("wav", 24, 1 / 2 ** 23),
    ("wav", 32, 0.0),
    ("flac", 16, 1 / 2 ** 15),
    ("flac", 24, 1 / 2 ** 23),
])
def test_lossless_round_trip(tmp_path, ext, bit_depth, atol):
    x = noise(RATE // 4 + 3)
    path = write_audio(tmp_path / f"x.{ext}", x, RATE, bit_depth=bit_depth)
    assert path == tmp_path / f"x.{ext}"
    assert listing(tmp_path) == [f"x.{ext}"]  # no temporary file beside it
    expected_subtype = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}[bit_depth]
    assert sf.info(str(path)).subtype == expected_subtype
    assert sf.info(str(path)).format == ext.upper()
    y, rate = read_audio(path)
    assert rate == RATE and y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() <= atol
    if atol:  # integer formats really quantise (the test can tell the depths apart)
        assert np.abs(y - x).max() > atol / 1000
    assert audio_info(path) == AudioInfo(RATE, x.shape[1], 2)


def test_mp3_round_trip(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} has no MP3 support")
    x = sine(440, RATE // 2 + 11)
    path = write_audio(tmp_path / "x.mp3", x, RATE)
    assert listing(tmp_path) == ["x.mp3"]
    y, rate = read_audio(path)
    assert rate == RATE and y.shape[0] == 2
    assert y.shape[1] == x.shape[1]  # libsndfile keeps the exact length (LAME gapless info)
    for c in range(2):  # lossy, but the same sines
        assert np.corrcoef(x[c], y[c])[0, 1] > 0.99


def test_write_accepts_tensor_and_1d(tmp_path):
    x = noise(1000, channels=1)
    write_audio(tmp_path / "t.wav", torch.from_numpy(x), RATE, bit_depth=32)
    write_audio(tmp_path / "m.wav", x[0], RATE, bit_depth=32)
    for name in ("t.wav", "m.wav"):
        y, _ = read_audio(tmp_path / name)
        np.testing.assert_array_equal(y, x)


def test_read_segment(tmp_path):
    x = noise(5000)
    write_audio(tmp_path / "x.wav", x, RATE, bit_depth=32)
    y, _ = read_audio(tmp_path / "x.wav", start=1000, frames=300)
    np.testing.assert_array_equal(y, x[:, 1000:1300])
    y, _ = read_audio(tmp_path / "x.wav", start=4900)
    np.testing.assert_array_equal(y, x[:, 4900:])


def test_mono_stereo_conversion(tmp_path):
    mono = noise(2000, channels=1)
    stereo = noise(2000, channels=2, seed=1)
    write_audio(tmp_path / "mono.wav", mono, RATE, bit_depth=32)
    write_audio(tmp_path / "stereo.wav", stereo, RATE, bit_depth=32)
    y, _ = read_audio(tmp_path / "mono.wav", channels=2)
    assert y.shape == (2, 2000)
    np.testing.assert_array_equal(y[0], mono[0])
    np.testing.assert_array_equal(y[1], mono[0])
    y, _ = read_audio(tmp_path / "stereo.wav", channels=1)
    assert y.shape == (1, 2000)
    np.testing.assert_allclose(y[0], stereo.mean(0), atol=1e-7)
    y, _ = read_audio(tmp_path / "stereo.wav", channels=2)
    np.testing.assert_array_equal(y, stereo)
    assert convert_channels(mono, 1) is mono


def test_more_than_two_channels(tmp_path):
    x = noise(1000, channels=4)
    path = write_audio(tmp_path / "quad.wav", x, RATE, bit_depth=32)
    with pytest.raises(AudioError, match=r"quad\.wav.*4 channels"):
        read_audio(path)
    with pytest.raises(AudioError, match=r"quad\.wav"):
        read_audio(path, channels=2)
    with pytest.raises(AudioError, match=r"quad\.wav"):
        read_audio(path, channels=1)
    y, _ = read_audio(path, allow_multichannel=True)
    np.testing.assert_array_equal(y, x)
    y, _ = read_audio(path, channels=1, allow_multichannel=True)  # explicit downmix
    np.testing.assert_allclose(y[0], x.mean(0), atol=1e-7)


def test_unreadable_files_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).bytes(4000))
    empty_file = tmp_path / "zero_bytes.wav"
    empty_file.write_bytes(b"")
    missing = tmp_path / "missing.wav"
    for path in (garbage, empty_file, missing):
        with pytest.raises(AudioError, match=path.name) as e:
            read_audio(path)
        assert "\n" not in str(e.value)
        assert isinstance(e.value, BandaError)
        with pytest.raises(AudioError, match=path.name):
            audio_info(path)


def test_empty_audio(tmp_path):
    path = tmp_path / "silent_header.wav"
    sf.write(str(path), np.zeros((0, 2), dtype=np.float32), RATE)
    with pytest.raises(AudioError, match=r"silent_header\.wav.*empty"):
        read_audio(path)
    y, _ = read_audio(path, allow_empty=True)
    assert y.shape == (2, 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = noise(1000)
    x[1, 500] = bad
    path = tmp_path / "nan.wav"
    sf.write(str(path), x.T, RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav.*NaN or infinite"):
        read_audio(path)


@pytest.mark.parametrize("orig,new", [(44100, 48000), (48000, 44100), (44100, 16000), (16000, 44100)])
def test_resample_length_and_frequency(orig, new):
    frames = orig  # one second
    x = sine(1000, frames, rate=orig, channels=1, amp=0.8)
    y = resample(x, orig, new)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    assert abs(y.shape[1] - frames * new / orig) <= 1
    spectrum = np.abs(np.fft.rfft(y[0] * np.hanning(y.shape[1])))
    peak = np.fft.rfftfreq(y.shape[1], 1 / new)[spectrum.argmax()]
    assert abs(peak - 1000) <= 2  # bins are 1 Hz apart
    # amplitude kept, away from the edges
    mid = y[0, new // 4: 3 * new // 4]
    assert abs(np.abs(mid).max() - 0.8) < 0.01
    # torch in, torch out; same rate is a no-op
    t = resample(torch.from_numpy(x), orig, new)
    assert isinstance(t, torch.Tensor) and t.shape == y.shape
    assert resample(x, orig, orig) is x


def test_read_with_sample_rate(tmp_path):
    x = sine(500, 48000, rate=48000, channels=1)
    write_audio(tmp_path / "x.wav", x, 48000, bit_depth=32)
    y, rate = read_audio(tmp_path / "x.wav", sample_rate=RATE)
    assert rate == RATE and y.shape == (1, RATE)


def test_write_nan_is_refused_and_leaves_nothing(tmp_path):
    x = noise(1000)
    x[0, 10] = np.nan
    with pytest.raises(AudioError, match=r"out\.wav.*NaN"):
        write_audio(tmp_path / "out.wav", x, RATE)
    assert listing(tmp_path) == []


def test_write_failure_is_atomic(tmp_path):
    """A writer failure leaves no temporary file and does not touch an existing target."""
    if "MP3" not in sf.available_formats():
        pytest.skip("no MP3 support")
    target = tmp_path / "song.mp3"
    write_audio(target, sine(440, 4000), RATE)
    before = target.read_bytes()
    with pytest.raises(AudioError, match=r"song\.mp3.*(mp3|MPEG)"):  # MPEG has no 7001 Hz
        write_audio(target, sine(440, 4000), 7001)
    assert listing(tmp_path) == ["song.mp3"]
    assert target.read_bytes() == before
    # and a failure inside libsndfile (past the up-front checks) is an AudioError too, with no leftovers
    with pytest.raises(AudioError, match=r"bad\.wav"):
        write_audio(tmp_path / "bad.wav", sine(440, 100), 0)
    assert listing(tmp_path) == ["song.mp3"]


def test_write_option_errors(tmp_path):
    x = noise(100)
    with pytest.raises(AudioError, match="unsupported output format 'ogg'"):
        write_audio(tmp_path / "x.ogg", x, RATE)
    with pytest.raises(AudioError, match="bit depth 32 not possible for flac"):
        write_audio(tmp_path / "x.flac", x, RATE, bit_depth=32)
    with pytest.raises(AudioError, match="shape"):
        write_audio(tmp_path / "x.wav", x[None], RATE)
    write_audio(tmp_path / "x.audio", x, RATE, format="flac")  # format wins over the extension
    assert sf.info(str(tmp_path / "x.audio")).format == "FLAC"
    assert listing(tmp_path) == ["x.audio"]


@pytest.mark.parametrize("ext,bits", [("wav", 16), ("wav", 24), ("flac", 16), ("flac", 24)])
def test_integer_formats_round_to_nearest(tmp_path, ext, bits):
    """libsndfile alone floors float -> PCM in WAV (2424.9998 steps -> 2424); banda rounds to nearest."""
    steps = np.array([10.4, 10.6, -10.4, -10.6, 2424.9998, -22056.002, 0.0, 7.0])
    step = 2.0 ** (1 - bits)
    write_audio(tmp_path / f"q.{ext}", (steps * step)[None], RATE, bit_depth=bits)
    y = sf.read(str(tmp_path / f"q.{ext}"), dtype="float64")[0] / step
    np.testing.assert_array_equal(y, np.rint(steps))


def test_integer_formats_clip(tmp_path):
    x = np.array([[0.5, 1.5, -1.7, -0.25]], dtype=np.float32)
    write_audio(tmp_path / "c.wav", x, RATE, bit_depth=16)
    y, _ = read_audio(tmp_path / "c.wav")
    np.testing.assert_allclose(y, [[0.5, 1.0, -1.0, -0.25]], atol=1 / 2 ** 15)
    write_audio(tmp_path / "f.wav", x, RATE, bit_depth=32)
    y, _ = read_audio(tmp_path / "f.wav")
    np.testing.assert_array_equal(y, x)
    assert os.path.getsize(tmp_path / "f.wav") > os.path.getsize(tmp_path / "c.wav")
