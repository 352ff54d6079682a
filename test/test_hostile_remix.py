"""A hostile user against banda-remix: every mistake is one stderr line and exit 2, found before
any work where it can be (``-o`` never overwrites an input, the model is not even loaded), and
nothing is left behind: no output, no temporary file, no folder, also after SIGTERM."""
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import banda.audio
import banda.inference
from banda.bin import remix as remix_cli
from banda.models import build_model, make_archive, model_params

from conftest import REPO, subprocess_env, write
from test_remix import STEMS, audio, models  # noqa: F401 (models: a fixture, used by name)


@pytest.fixture
def work(tmp_path, monkeypatch):
    """Inputs good and bad in ``tmp_path``, its own $TMPDIR, and blocks of 0.01 s so that a fault
    late in a file is found after blocks were written."""
    d = tmp_path
    x = audio(4000)
    write(d / "song.wav", x)
    os.symlink(d / "song.wav", d / "link.wav")
    write(d / "song3.wav", np.concatenate([x, x[:1]]))
    write(d / "empty.wav", x[:, :0])
    late_nan = x.copy()
    late_nan[0, -10] = np.nan
    write(d / "nan_late.wav", late_nan, subtype="FLOAT")
    write(d / "hires.wav", audio(9600, rate=96000), 96000)
    (d / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    (d / "garbage.pth").write_bytes(np.random.default_rng(1).bytes(3000))
    for folder, stems in {"st": {"vocals": x, "drums": 0.5 * x}, "bad": {"vocals": x}, "empty_st": {"vocals": x[:, :0]},
                          "nan_st": {"vocals": x, "drums": late_nan}, "three_st": {"vocals": np.concatenate([x, x[:1]])},
                          "mismatch": {"vocals": x, "drums": x[:, :-1]}, "with_mix": {"vocals": x, "mixture": x}}.items():
        for stem, a in stems.items():
            write(d / folder / f"{stem}.wav", a, subtype="FLOAT")
    (d / "bad" / "drums.wav").write_bytes(b"RIFF" + np.random.default_rng(2).bytes(3000))
    (d / "no_stems").mkdir()
    (d / "no_stems" / "notes.txt").write_text("not audio")
    (d / "c.yaml").write_text("{}\n")
    (d / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d / "tmp"))
    monkeypatch.setattr(banda.audio, "BLOCK_SECONDS", 0.01)
    return d


def snapshot(folder: Path) -> dict:
    """Every file (with its contents' hash) and folder under ``folder``, hidden ones too."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def run(capsys, args, work: Path, models) -> tuple:
    """banda-remix in-process with ``{d}``/``{sum}``/``{bandit}`` filled in; (exit code, stderr lines)."""
    argv = [a.format(d=work, **models) for a in args]
    if "-o" not in argv:
        argv += ["-o", str(work / "out" / "o.wav")]
    try:
        rc = remix_cli.main(argv + ["--no-progress"])
    except SystemExit as e:  # argparse's usage errors, as from the console script
        rc = e.code
    return rc, capsys.readouterr().err.strip().splitlines()


M = ["-m", "{sum}", "{d}/song.wav"]
S = ["--stems-dir", "{d}/st"]
BAD_INPUTS = {
    # stem files
    "stem-unreadable": (["--stems-dir", "{d}/bad"], "drums.wav"),
    "stem-empty": (["--stems-dir", "{d}/empty_st"], "empty"),
    "stem-nan-late": (["--stems-dir", "{d}/nan_st"], "NaN"),
    "stem-3-channels": (["--stems-dir", "{d}/three_st"], "3 channels"),
    "stems-lengths-differ": (["--stems-dir", "{d}/mismatch"], "must match"),
    "stems-none": (["--stems-dir", "{d}/no_stems"], "no stem files"),
    "stems-dir-is-a-file": (["--stems-dir", "{d}/song.wav"], "no such folder"),
    "stems-dir-missing": (["--stems-dir", "{d}/nowhere"], "no such folder"),
    "mix-missing": (S + ["--mix", "{d}/nothere.wav"], "nothere.wav"),
    "mix-is-a-folder": (S + ["--mix", "{d}/st"], "st"),
    "mix-garbage": (S + ["--mix", "{d}/garbage.wav"], "garbage.wav"),
    "mix-too-short": (["--stems-dir", "{d}/mismatch", "--mix", "{d}/empty.wav"], "must match"),
    "mixture-complement-without-mix": (S + ["--complement", "mixture"], "--mix"),
    "separator-option-with-stems-dir": (S + ["--segment", "nan"], "--segment"),
    "device-with-stems-dir": (S + ["--device", "cuda"], "--device"),
    # gains and presets
    "gain-words": (S + ["--gain", "vocals=loud"], "loud"),
    "gain-nan": (S + ["--gain", "vocals=nan"], "vocals=nan"),
    "gain-plus-inf": (S + ["--gain", "vocals=inf"], "vocals=inf"),
    "gain-overflow": (S + ["--gain", "vocals=1e30"], "at most"),
    "gain-too-loud-for-float32": (M + ["--gain", "vocals=800"], "at most"),
    "gain-no-db": (S + ["--gain", "vocals"], "STEM=DB"),
    "gain-no-stem": (S + ["--gain", "=3"], "STEM=DB"),
    "gain-commas": (S + ["--gain", ",,=,"], "STEM=DB"),
    "gain-unknown-stem": (M + ["--gain", "guitar=-6"], "valid stems"),
    "preset-unknown": (S + ["--preset", "solo"], "karaoke"),
    "preset-minus-nothing": (S + ["--preset", "minus-"], "minus-"),
    "preset-unknown-stem": (S + ["--preset", "minus-piano"], "piano"),
    # the separator
    "segment-nan": (M + ["--segment", "nan"], "--segment"),
    "segment-inf": (M + ["--segment", "inf"], "--segment"),
    "segment-negative": (M + ["--segment", "-1"], "--segment"),
    "segment-words": (M + ["--segment", "long"], "--segment"),
    "segment-below-stft-window": (["-m", "{bandit}", "{d}/song.wav", "--segment", "0.01"], "STFT window"),
    "overlap-one": (M + ["--overlap", "1"], "--overlap"),
    "overlap-nan": (M + ["--overlap", "nan"], "--overlap"),
    "batch-size-zero": (M + ["--batch-size", "0"], "--batch-size"),
    "device-unknown": (M + ["--device", "tpu"], "tpu"),
    "device-missing-gpu": (M + ["--device", "cuda:99"], "cuda"),
    "amp-unknown": (M + ["--amp", "int8"], "int8"),
    # the model and the song
    "model-missing": (["-m", "{d}/nothere.pth", "{d}/song.wav"], "nothere.pth"),
    "model-garbage": (["-m", "{d}/garbage.pth", "{d}/song.wav"], "garbage.pth"),
    "model-is-a-song": (["-m", "{d}/song.wav", "{d}/song.wav", "-o", "{d}/out/o.wav"], "song.wav"),
    "model-folder-without-weights": (["-m", "{d}/st", "{d}/song.wav"], "st"),
    "song-missing": (["-m", "{sum}", "{d}/nothere.wav"], "nothere.wav"),
    "song-is-a-folder": (["-m", "{sum}", "{d}/st"], "st"),
    "song-garbage": (["-m", "{sum}", "{d}/garbage.wav"], "garbage.wav"),
    "song-empty": (["-m", "{sum}", "{d}/empty.wav"], "empty"),
    "song-3-channels": (["-m", "{sum}", "{d}/song3.wav"], "3 channels"),
    "song-nan-late": (["-m", "{sum}", "{d}/nan_late.wav"], "NaN"),
    # the output's format
    "out-no-extension": (M + ["-o", "{d}/out/o"], "format"),
    "out-ogg": (M + ["-o", "{d}/out/o.ogg"], "ogg"),
    "out-flac-float": (M + ["-o", "{d}/out/o.flac", "--bit-depth", "32"], "--bit-depth 32"),
    "out-mp3-96k": (["-m", "{sum}", "{d}/hires.wav", "-o", "{d}/out/o.mp3"], "96000"),
    "out-empty": (M + ["-o", ""], "-o"),
    # modes and the command line
    "model-and-stems-dir": (M + S, "either"),
    "neither": ([], "either"),
    "model-without-song": (["-m", "{sum}"], "INPUT"),
    "stems-dir-with-song": (S + ["{d}/song.wav"], "--mix"),
    "mix-without-stems-dir": (M + ["--mix", "{d}/song.wav"], "--stems-dir"),
    "clip-unknown": (S + ["--clip", "hard"], "--clip"),
    "bit-depth-8": (S + ["--bit-depth", "8"], "--bit-depth"),
    "unknown-option": (S + ["--louder"], "--louder"),
    "no-out": (S + ["-o"], "-o"),
    # config files
    "config-missing": (S + ["--config", "{d}/nothere.yaml"], "nothere.yaml"),
    "config-binary": (S + ["--config", "{d}/garbage.wav"], "garbage.wav"),
    "config-unknown-key": (S + ["--config", "{d}/cfg/unknown.yaml"], "loudness"),
    "config-gain-number": (S + ["--config", "{d}/cfg/gain_number.yaml"], "--gain"),
    "config-preset-boolean": (S + ["--config", "{d}/cfg/preset_bool.yaml"], "--preset"),
    "config-gain-list": (S + ["--config", "{d}/cfg/gain_list.yaml"], "gain"),
}
CONFIGS = {"unknown.yaml": "loudness: 3\n", "gain_number.yaml": "gain: 5\n", "preset_bool.yaml": "preset: true\n",
           "gain_list.yaml": "gain: [vocals=-3, drums=+1]\n"}


@pytest.mark.filterwarnings("error")  # a warning printed before the error would be a second line
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_leaves_nothing(work, models, capsys, case):
    for name, text in CONFIGS.items():
        (work / "cfg").mkdir(exist_ok=True)
        (work / "cfg" / name).write_text(text)
    args, word = BAD_INPUTS[case]
    before = snapshot(work)
    rc, err = run(capsys, args, work, models)
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("banda-remix: error: "), err
    assert word in err[0], err
    assert snapshot(work) == before  # inputs untouched; no output, temporary file or folder left


OUTPUTS = {
    "the-song": (M + ["-o", "{d}/song.wav"], "is the input"),
    "the-song-by-a-link": (M + ["-o", "{d}/link.wav"], "is the input"),
    "the-song-by-another-path": (M + ["-o", "{d}/st/../song.wav"], "is the input"),
    "the-mix": (S + ["--mix", "{d}/song.wav", "-o", "{d}/song.wav"], "is the input"),
    "a-stem": (S + ["-o", "{d}/st/vocals.wav"], "is the input"),
    "the-unused-mixture": (["--stems-dir", "{d}/with_mix", "-o", "{d}/with_mix/mixture.wav"], "is the input"),
    "the-config": (M + ["--config", "{d}/c.yaml", "-o", "{d}/c.yaml"], "is the input"),
    "a-folder": (M + ["-o", "{d}/st"], "is a folder"),
    "a-folder-with-an-extension": (M + ["-o", "{d}/tmp.wav"], "is a folder"),
    "under-a-file": (M + ["-o", "{d}/song.wav/o.wav"], "is a file"),
    "a-name-too-long": (M + ["-o", "{d}/" + "x" * 300 + ".wav"], "long"),
}


@pytest.mark.parametrize("case", sorted(OUTPUTS))
def test_bad_output_is_refused_before_the_model_loads(work, models, capsys, monkeypatch, case):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before -o was checked")

    monkeypatch.setattr(banda.inference, "build_separator", no_model)
    (work / "tmp.wav").mkdir()
    args, word = OUTPUTS[case]
    before = snapshot(work)
    rc, err = run(capsys, args, work, models)
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("banda-remix: error: ") and word in err[0], err
    assert snapshot(work) == before


def test_interrupted_final_pass_leaves_nothing(work, models, capsys, monkeypatch):
    """SIGTERM (banda's Terminated) while the output itself is written: no output, no temporary
    file, and the output's new folders are gone too."""
    from banda import remix as remix_math
    from banda.cli import Terminated

    calls = []

    def stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # a few blocks in
            raise Terminated()
        return real(*args, **kwargs)

    real = remix_math.prevent_clipping
    monkeypatch.setattr(remix_math, "prevent_clipping", stop)
    before = snapshot(work)
    rc, err = run(capsys, M + ["-o", "{d}/new/deeper/o.wav"], work, models)
    assert rc == 143 and err[-1] == "banda-remix: terminated", err
    assert len(calls) == 3
    assert snapshot(work) == before


SLOW_REMIX = """
import sys, time
from banda.models import MODELS
from test_remix import SumTest
@MODELS.register("slow_test")
class Slow(SumTest):
    def forward(self, x):
        time.sleep(0.05)
        return super().forward(x)
from banda.bin.remix import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("rate", [44100, 48000])
def test_sigterm_mid_remix_leaves_nothing(tmp_path, rate):
    """``python -m banda.bin.remix`` with a slow model, terminated while it separates and writes:
    exit 143, no output, no temporary file in $TMPDIR (at 48 kHz: the resampling's too) or beside
    the output."""
    params = model_params("sum_test", {}, STEMS, 44100, 2)
    torch.save(make_archive(build_model("sum_test", params), "slow_test", params), tmp_path / "slow.pth")
    song = write(tmp_path / "song.wav", audio(rate * 20, rate=rate), rate)
    tmpdir, out = tmp_path / "tmp", tmp_path / "out" / "karaoke.wav"
    tmpdir.mkdir()
    env = subprocess_env(TMPDIR=tmpdir, PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'test'}")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_REMIX, "-m", str(tmp_path / "slow.pth"), str(song), "-o", str(out),
                             "--preset", "karaoke", "--segment", "0.5", "--no-progress"], env=env, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and len(list(tmpdir.iterdir())) < 2:
        time.sleep(0.05)  # the remix's temporary file and the separation's output being written
    assert len(list(tmpdir.iterdir())) >= 2, "the remix never started writing"
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "banda-remix: terminated", err
    assert list(tmpdir.iterdir()) == []
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow.pth", "song.wav", "tmp"]
