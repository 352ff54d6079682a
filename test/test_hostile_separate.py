"""A hostile user against banda-separate, banda-pack and model archives: each fault the
reliability issue found is reproduced here (code from a model file, writes outside ``-o``,
an input overwritten, tracebacks instead of one line, debris after SIGTERM, file modes)."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from banda.bin import pack as pack_cli
from banda.bin.separate import main as separate_main
from banda.bin.remix import main as remix_main
from banda.errors import BandaError
from banda.models import make_archive, read_archive

from conftest import REPO, error_line, read, subprocess_env, write
from conftest import run_entry_point as run
from test_separate import STEMS, audio, files_under, identity_archive


class Hostile:
    """Unpickling this runs a command: the classic malicious ``.pth``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def hostile(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    torch.save({"format": "banda-model", "model": Hostile(marker), "state_dict": {}}, path)
    return path, marker


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return identity_archive(tmp_path_factory.mktemp("m") / "identity.pth")


@pytest.fixture
def song(tmp_path):
    return write(tmp_path / "in" / "song.wav", audio(22050))


# ---------------------------------------------------------------- 1. no code runs from a model file
def test_hostile_archive_is_refused_by_separate(hostile, song, tmp_path, capsys):
    path, marker = hostile
    rc, err = run(separate_main, capsys, "-m", path, song, "-o", tmp_path / "out", "--no-progress")
    error_line(err, None, str(path), "refused", rc=rc)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_hostile_archive_is_refused_by_remix(hostile, song, tmp_path, capsys):
    path, marker = hostile
    rc, err = run(remix_main, capsys, "-m", path, song, "-o", tmp_path / "k.wav", "--preset", "karaoke")
    error_line(err, None, str(path), rc=rc)
    assert not marker.exists()


def test_hostile_archive_is_refused_by_pack(hostile, tmp_path, capsys):
    path, marker = hostile
    rc, err = run(pack_cli.main, capsys, "--exp_dir", tmp_path, "--weights", path.name)
    error_line(err, None, str(path), rc=rc)
    assert not marker.exists()


def test_hostile_archive_is_refused_by_averaging(hostile, model):
    from banda.train import average_archives

    path, marker = hostile
    with pytest.raises(BandaError, match="refused"):
        average_archives([model, path])
    assert not marker.exists()


# ---------------------------------------------------------------- 2-4. every write inside -o, never over an input
def test_mixture_in_the_current_folder_is_named_after_its_folder(model, tmp_path, monkeypatch, capsys):
    track = tmp_path / "Some Track"
    write(track / "mixture.wav", audio(8000))
    out = tmp_path / "out"
    monkeypatch.chdir(track)  # the track used to be named '' and its stems written to /
    rc, err = run(separate_main, capsys, "-m", model, "mixture.wav", "-o", out, "--no-progress")
    assert rc == 0, err
    assert files_under(out) == [f"Some Track/{s}.wav" for s in sorted(STEMS)]


def test_input_is_never_overwritten(model, song, capsys):
    before = song.read_bytes()
    rc, err = run(separate_main, capsys, "-m", model, song, "-o", song.parent, "--filename", "{track}.{ext}",
                  "--stems", "vocals", "--no-progress")
    error_line(err, None, "input", "overwrite", rc=rc)
    assert song.read_bytes() == before


@pytest.mark.parametrize("pattern", ["../{track}/{stem}.{ext}", "/tmp/banda-escape/{track}/{stem}.{ext}", "/", "",
                                     "{track}/../../{stem}.{ext}"])
def test_filename_cannot_escape_the_output_folder(model, song, tmp_path, capsys, pattern):
    out = tmp_path / "deep" / "out"
    rc, err = run(separate_main, capsys, "-m", model, song, "-o", out, "--filename", pattern, "--stems", "vocals",
                  "--no-progress")
    error_line(err, None, "--filename", rc=rc)
    assert files_under(tmp_path) == ["in/song.wav"]
    assert not Path("/tmp/banda-escape").exists()


def test_scp_id_cannot_escape_the_output_folder(model, song, tmp_path, capsys):
    scp = tmp_path / "mix.scp"
    scp.write_text(f"../../../x {song}\n")
    rc, err = run(separate_main, capsys, "-m", model, "--scp", scp, "-o", tmp_path / "out", "--no-progress")
    error_line(err, None, "../../../x", rc=rc)
    assert files_under(tmp_path) == ["in/song.wav", "mix.scp"]


def test_parent_mixture_is_named_after_its_folder(model, tmp_path, monkeypatch, capsys):
    write(tmp_path / "track" / "mixture.wav", audio(8000))
    sub = tmp_path / "track" / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)  # the track used to be named '..' and written to out/../
    rc, err = run(separate_main, capsys, "-m", model, "../mixture.wav", "-o", "out", "--stems", "vocals", "--no-progress")
    assert rc == 0, err
    assert files_under(sub) == ["out/track/vocals.wav"]


def test_output_folder_inside_the_input_folder_is_not_an_input(model, tmp_path, capsys):
    music = tmp_path / "music"
    write(music / "a.wav", audio(8000))
    for _ in range(2):  # the second run must not separate the first run's stems
        rc, err = run(separate_main, capsys, "-m", model, music, "-o", music / "separated", "--stems", "vocals",
                      "--no-progress")
        assert rc == 0, err
    assert files_under(music) == ["a.wav", "separated/a/vocals.wav"]


def test_track_names_are_checked():
    from banda.tracks import check_track_name

    for bad in ["", ".", "..", "a/b", "a\\b"]:
        with pytest.raises(BandaError, match="track name"):
            check_track_name(bad, "x")
    assert check_track_name("Song (live)", "x") == "Song (live)"


# ---------------------------------------------------------------- 5. one line and exit 2, nothing written
def test_output_folder_that_is_a_file(model, song, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    rc, err = run(separate_main, capsys, "-m", model, song, "-o", tmp_path / "file", "--no-progress")
    error_line(err, None, "is a file", rc=rc)
    rc, err = run(separate_main, capsys, "-m", model, song, "-o", tmp_path / "file" / "sub", "--no-progress")
    error_line(err, None, "-o", rc=rc)


def test_unwritable_output_folder(model, song, tmp_path, capsys):
    rc, err = run(separate_main, capsys, "-m", model, song, "-o", "/proc/banda-out", "--no-progress")
    error_line(err, None, "/proc/banda-out", rc=rc)


@pytest.mark.parametrize("value", ["nan", "inf", "1e9", "1e-5", "-1"])
def test_bad_segment(model, song, tmp_path, capsys, value):
    rc, err = run(separate_main, capsys, "-m", model, song, "-o", tmp_path / "out", "--segment", value, "--no-progress")
    error_line(err, None, "--segment", rc=rc)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option,value", [("--overlap", "nan"), ("-d", "bogus"), ("-d", "meta"), ("--batch-size", "0"),
                                          ("--stems", ","), ("--stems", "guitar"), ("--format", "ogg")])
def test_bad_option(model, song, tmp_path, capsys, option, value):
    rc, err = run(separate_main, capsys, "-m", model, song, "-o", tmp_path / "out", option, value, "--no-progress")
    error_line(err, None, rc=rc)
    assert not (tmp_path / "out").exists()


def test_argparse_errors_are_one_line(capsys):
    rc, err = run(separate_main, capsys, "-m", "x", "--bogus-option")
    assert rc == 2 and len(err) == 1 and "--bogus-option" in err[0], err


def test_too_long_file_name(model, song, tmp_path, capsys):
    rc, err = run(separate_main, capsys, "-m", model, song, "-o", tmp_path / "out", "--filename", "x" * 300 + "{stem}.{ext}",
                  "--no-progress")
    error_line(err, None, "bytes long", rc=rc)
    assert not (tmp_path / "out").exists()


def test_binary_config(model, song, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(bytes(range(256)))
    rc, err = run(separate_main, capsys, "--config", cfg, "-m", model, song)
    error_line(err, None, str(cfg), rc=rc)


def _archive(tmp_path, name="a.pth", **change):
    params = {"stems": list(STEMS), "in_channels": 2, "sample_rate": 44100, "gains": [1.0, 1.0, 1.0, 1.0]}
    archive = {"format": "banda-model", "format_version": 1, "model": {"name": "identity_test", "params": params},
               "state_dict": {"gains": torch.ones(4)}}
    for key, value in change.items():
        if key == "params":
            params.update(value)
        else:
            archive[key] = value
    torch.save(archive, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("case,words", [
    ("header", "without a model name"),
    ("unknown_param", "unknown config key"),
    ("missing_tensor", "missing"),
    ("wrong_shape", "another shape"),
    ("dotted_stem", "stem name"),
    ("slash_stem", "stem name"),
    ("unknown_model", "unknown model"),
    ("garbage", "not a readable"),
])
def test_bad_archives(tmp_path, song, capsys, case, words):
    if case == "header":
        torch.save({"format": "banda-model"}, tmp_path / "a.pth")
        path = tmp_path / "a.pth"
    elif case == "unknown_param":
        path = _archive(tmp_path, params={"colour": "blue"})
    elif case == "missing_tensor":
        path = _archive(tmp_path, state_dict={})
    elif case == "wrong_shape":
        path = _archive(tmp_path, state_dict={"gains": torch.ones(3)})
    elif case == "dotted_stem":
        path = _archive(tmp_path, params={"stems": ["vo.cals", "drums", "bass", "other"]})
    elif case == "slash_stem":
        path = _archive(tmp_path, params={"stems": ["../x", "drums", "bass", "other"]})
    elif case == "unknown_model":
        path = _archive(tmp_path, model={"name": "nope", "params": {}})
    else:
        path = tmp_path / "a.pth"
        path.write_bytes(b"PK\x03\x04 truncated")
    rc, err = run(separate_main, capsys, "-m", path, song, "-o", tmp_path / "out", "--no-progress")
    error_line(err, None, str(path), words, rc=rc)
    assert not (tmp_path / "out").exists()


def test_pack_refuses_a_tagged_config(model, tmp_path, capsys):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "averaged.pth").write_bytes(model.read_bytes())
    (exp / "config.yaml").write_text("stems: !!python/object/apply:os.system ['touch PWNED']\n")
    rc, err = run(pack_cli.main, capsys, "--exp_dir", exp)
    error_line(err, None, "config.yaml", rc=rc)
    assert not (exp / "model_pack.pth").exists()


def test_openunmix_bad_json_value(tmp_path, song, capsys):
    import json

    folder = tmp_path / "umx"
    folder.mkdir()
    (folder / "separator.json").write_text(json.dumps({"nfft": "abc", "nhop": 1024, "sample_rate": 44100, "nb_channels": 2}))
    rc, err = run(separate_main, capsys, "-m", folder, song, "-o", tmp_path / "out", "--no-progress")
    error_line(err, None, "nfft", rc=rc)


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode == 0


def test_full_disk(model, tmp_path, capsys):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "64k"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        song = write(tmp_path / "song.wav", audio(44100))  # 176 kB of output per stem
        rc, err = run(separate_main, capsys, "-m", model, song, "-o", disk / "out", "--no-progress")
        error_line(err, None, rc=rc)
        assert files_under(disk) == []
    finally:
        subprocess.run(["umount", str(disk)])


# ---------------------------------------------------------------- 6. SIGTERM leaves nothing behind; stale temps go
SLOW_SEPARATE = """
import sys, time, torch
from banda.models import MODELS
from test_separate import IdentityTest
@MODELS.register("slow_test")
class Slow(IdentityTest):
    def forward(self, x):
        time.sleep(0.05)
        return super().forward(x)
from banda.bin.separate import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_leaves_no_debris(tmp_path):
    from banda.models import build_model, model_params

    params = model_params("identity_test", {}, STEMS, 44100, 2)
    archive = make_archive(build_model("identity_test", params), "slow_test", params)
    torch.save(archive, tmp_path / "slow.pth")
    song = write(tmp_path / "song.wav", audio(48000 * 20, rate=48000), rate=48000)  # resampled: temp files in TMPDIR
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "out"
    env = subprocess_env(TMPDIR=tmpdir, PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'test'}")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SEPARATE, "-m", str(tmp_path / "slow.pth"), str(song), "-o", str(out),
                             "--segment", "0.5", "--no-progress"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any(out.rglob(".*.wav")):
        time.sleep(0.05)
    assert any(out.rglob(".*.wav")), "the separation never started writing"
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "banda-separate: terminated"
    assert files_under(out) == [] if out.exists() else True
    assert list(tmpdir.iterdir()) == []


def test_stale_temps_of_dead_processes_are_removed(model, song, tmp_path, capsys):
    from banda import fileio

    out = tmp_path / "out" / "song"
    out.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = fileio._HOST
    stale = out / f".vocals.wav.banda-{host}-{dead.pid}-abc123.wav"
    alive = out / f".drums.wav.banda-{host}-{os.getpid()}-abc123.wav"
    other_host = out / f".bass.wav.banda-otherhost-{dead.pid}-abc123.wav"
    for f in (stale, alive, other_host):
        f.write_bytes(b"x" * 100)
    fileio._swept.clear()
    rc, err = run(separate_main, capsys, "-m", model, song, "-o", tmp_path / "out", "--no-progress")
    assert rc == 0, err
    assert not stale.exists()
    assert alive.exists() and other_host.exists()  # a live process's, another host's: not ours to remove


# ---------------------------------------------------------------- 9. files keep the umask's mode
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_follow_the_umask(model, song, tmp_path, capsys, umask):
    old = os.umask(umask)
    try:
        rc, err = run(separate_main, capsys, "-m", model, song, "-o", tmp_path / "out", "--stems", "vocals", "--no-progress")
    finally:
        os.umask(old)
    assert rc == 0, err
    assert (tmp_path / "out" / "song" / "vocals.wav").stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------- 11. folder runs: --keep-going
def test_keep_going_skips_a_bad_file_and_reports(model, tmp_path, capsys):
    music = tmp_path / "music"
    write(music / "a.wav", audio(8000))
    (music / "b.wav").write_bytes(b"RIFF not really")
    write(music / "c.wav", audio(8000))
    rc, err = run(separate_main, capsys, "-m", model, music, "-o", tmp_path / "out", "--stems", "vocals", "--no-progress")
    error_line(err, None, "b.wav", rc=rc)
    assert not (tmp_path / "out").exists()
    rc, err = run(separate_main, capsys, "-m", model, music, "-o", tmp_path / "out", "--stems", "vocals", "--no-progress",
                  "--keep-going")
    assert rc == 2
    assert "b.wav" in err[0] and "1 of 3 tracks failed" in err[-1], err
    assert files_under(tmp_path / "out") == ["a/vocals.wav", "c/vocals.wav"]
    assert np.allclose(read(tmp_path / "out" / "a" / "vocals.wav"), read(music / "a.wav"), atol=1e-4)
