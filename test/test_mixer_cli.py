"""The learned mixer's command lines: banda-remix --program/--program-file (the output checked
against the hand-computed remix), banda-automix (a tiny untrained mixer: what it prints is what
it applies) and banda-mix-eval (the files and rows it writes); each error one line, exit 2,
nothing written."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from banda.bin.automix import main as automix_main
from banda.bin.mix_eval import main as mix_eval_main
from banda.bin.remix import main as remix_main
from banda.mixing.program import parse_program
from banda.mixing.tools import pan_gains
from banda.models import build_model, make_archive, model_params
from banda.remix import program_remix

from conftest import error_line
from test_mixer_model import RATE, STEMS, make_data_dir, stem_audio, write_mixer_archive

FRAMES = RATE + 321  # a little over 1 s
G6 = 10 ** (-6 / 20)  # change_volume(db=-6)


def run(main, *args):
    return main([str(a) for a in args] + ["--no-progress"])


def write_stems(folder: Path, stems=STEMS, frames=FRAMES, seed=0) -> dict:
    """``<stem>.wav`` (float, stereo, 44.1 kHz) for each stem in ``folder``; returns ``{stem: (2, frames)}``."""
    folder.mkdir(parents=True, exist_ok=True)
    audio = {}
    for s in stems:
        audio[s] = stem_audio(s, frames, seed)
        sf.write(str(folder / f"{s}.wav"), audio[s].T, RATE, subtype="FLOAT")
    return audio


def read(path: Path):
    x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return x.T, rate


def files_in(folder: Path):
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """A stems dir and, outside it, a mixture: the stems' sum plus a residual."""
    root = tmp_path_factory.mktemp("song")
    stems = write_stems(root / "stems")
    residual = 0.01 * np.random.default_rng(7).standard_normal((2, FRAMES)).astype(np.float32)
    mix = sum(stems.values()) + residual
    sf.write(str(root / "mix.wav"), mix.T, RATE, subtype="FLOAT")
    return {"root": root, "dir": root / "stems", "stems": stems, "mix": mix, "mix_path": root / "mix.wav"}


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    root = tmp_path_factory.mktemp("archives")
    params = model_params("bandit", dict(dim=8, n_layers=1, hidden=8, mask_hidden=16), STEMS, RATE, 2)
    torch.manual_seed(0)
    torch.save(make_archive(build_model("bandit", params), "bandit", params), root / "bandit.pth")
    return {"mixer": write_mixer_archive(root / "mixer.pth"), "bandit": root / "bandit.pth"}


# --------------------------------------------------------------------------- banda-remix --program
def test_program_sum_is_the_hand_computed_remix(song, tmp_path):
    out = tmp_path / "out.wav"
    assert run(remix_main, "--stems-dir", song["dir"], "--program", "vocals: change_volume(db=-6)", "--complement", "sum",
               "--clip", "none", "--bit-depth", "32", "-o", out) == 0
    y, rate = read(out)
    s = song["stems"]
    expected = G6 * s["vocals"] + s["drums"] + s["bass"] + s["other"]
    assert rate == RATE and y.shape == (2, FRAMES)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5)
    # without --complement: sum is the default with no --mix
    out2 = tmp_path / "out2.wav"
    assert run(remix_main, "--stems-dir", song["dir"], "--program", "vocals: change_volume(db=-6)",
               "--clip", "none", "--bit-depth", "32", "-o", out2) == 0
    np.testing.assert_array_equal(read(out2)[0], y)


def test_program_with_mix_adds_the_change_to_the_mixture(song, tmp_path):
    out = tmp_path / "out.wav"
    program = "vocals: change_volume(db=-6); bass: change_pan(pan=0.3)"
    assert run(remix_main, "--stems-dir", song["dir"], "--mix", song["mix_path"], "--program", program,
               "--clip", "none", "--bit-depth", "32", "-o", out) == 0
    y, _ = read(out)
    s = song["stems"]
    left, right = pan_gains(0.3)
    panned = s["bass"] * np.array([[left], [right]], dtype=np.float32)
    expected = song["mix"] + (G6 * s["vocals"] - s["vocals"]) + (panned - s["bass"])
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5)
    # the residual stays: not the same as the sum
    assert np.abs(y - (G6 * s["vocals"] + s["drums"] + panned + s["other"])).max() > 1e-3


def test_program_file_with_comments_and_line_breaks(song, tmp_path):
    text = ("# turn the vocals down\n"
            "vocals: change_volume(\n"
            "    db=-6)   # by 6 dB\n"
            "\n"
            "drums:   # nothing for the drums\n")
    program_file = tmp_path / "song.mix"
    program_file.write_text(text)
    out = tmp_path / "out.wav"
    assert run(remix_main, "--stems-dir", song["dir"], "--program-file", program_file, "--complement", "sum",
               "--clip", "none", "--bit-depth", "32", "-o", out) == 0
    s = song["stems"]
    np.testing.assert_allclose(read(out)[0], G6 * s["vocals"] + s["drums"] + s["bass"] + s["other"], rtol=0, atol=1e-5)


def test_program_runs_the_full_tool_chain(song, tmp_path):
    """Every tool through the CLI equals the library applying the same program."""
    text = ("vocals: apply_eq(low_gain=3, high_gain=-2) apply_compressor(threshold_db=-30, ratio=3);"
            " drums: apply_reverb(wet=0.2, decay_s=0.3); other: change_pan(pan=-0.4) change_volume(db=2)")
    out = tmp_path / "out.wav"
    assert run(remix_main, "--stems-dir", song["dir"], "--program", text, "--clip", "none", "--bit-depth", "32",
               "-o", out) == 0
    expected = program_remix(song["stems"], parse_program(text), RATE, "sum")
    np.testing.assert_allclose(read(out)[0], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("args,needles", [
    (["--program", "guitar: change_volume(db=-6)"], ["'guitar'", "bass, drums, other, vocals"]),
    (["--program", "vocals: change_volume(db=30)"], ["db=30", "[-60, 24]"]),
    (["--program", "vocals: apply_eq(mid_q=0)"], ["mid_q", "[0.1, 10]"]),
    (["--program", "vocals: change_volume(db -6)"], ["column 26", "'='"]),
    (["--program", "vocals: louder(db=3)"], ["column 9", "unknown tool 'louder'"]),
    (["--program", "vocals: change_volume(gain=3)"], ["'gain'", "db"]),
    (["--program", "vocals: change_volume(db=-6)", "--gain", "vocals=-6"], ["--program", "--gain"]),
    (["--program", "vocals: change_volume(db=-6)", "--preset", "karaoke"], ["--program", "--preset"]),
    (["--program", "vocals: change_volume(db=-6)", "--program-file", "{root}/p.mix"], ["not both"]),
    (["--program-file", "{root}/missing.mix"], ["missing.mix"]),
    (["--program-file", "{root}/bad.mix"], ["bad.mix", "column", "expected ')'"]),
])
def test_program_errors_are_one_line(song, tmp_path, capsys, args, needles):
    (tmp_path / "p.mix").write_text("vocals: change_volume(db=-6)\n")
    (tmp_path / "bad.mix").write_text("vocals: change_volume(db=-6)\nbass: change_volume(db=-6\n")
    args = [a.format(root=tmp_path) for a in args]
    out = tmp_path / "out.wav"
    assert run(remix_main, "--stems-dir", song["dir"], *args, "-o", out) == 2
    captured = capsys.readouterr()
    error_line(captured.err, "banda-remix", *needles)
    assert captured.out == ""
    assert not out.exists()


def test_program_with_a_separating_model(tmp_path, capsys):
    """banda-remix -m MODEL --program: sum_test's stems are the input / 4 (test_remix's model)."""
    from test_remix import archive as remix_archive

    model = remix_archive(tmp_path / "sum.pth", "sum_test", {})
    x = stem_audio("other", 9001, seed=3)
    song = tmp_path / "song.wav"
    sf.write(str(song), x.T, RATE, subtype="FLOAT")
    program = "vocals: change_volume(db=-6); bass: change_volume(db=6)"
    out = tmp_path / "out.wav"
    assert run(remix_main, "-m", model, song, "--program", program, "--clip", "none", "--bit-depth", "32", "-o", out) == 0
    g6 = 10 ** (6 / 20)
    np.testing.assert_allclose(read(out)[0], x + (G6 - 1) * x / 4 + (g6 - 1) * x / 4, rtol=0, atol=1e-5)
    assert run(remix_main, "-m", model, song, "--program", program, "--complement", "sum", "--clip", "none",
               "--bit-depth", "32", "-o", out) == 0
    np.testing.assert_allclose(read(out)[0], (G6 + g6 + 2) * x / 4, rtol=0, atol=1e-5)
    capsys.readouterr()
    assert run(remix_main, "-m", model, song, "--program", "piano: change_volume(db=-6)", "-o", tmp_path / "p.wav") == 2
    error_line(capsys.readouterr().err, "banda-remix", "'piano'", "vocals, drums, bass, other")
    assert not (tmp_path / "p.wav").exists()


# --------------------------------------------------------------------------- banda-automix
def test_automix_print_only_prints_one_program_and_writes_nothing(song, archives, tmp_path, capsys):
    before = files_in(song["root"])
    assert run(automix_main, "-m", archives["mixer"], "--stems-dir", song["dir"], "--print-only") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    program = parse_program(lines[0])  # the language banda-remix --program reads
    assert program.statements or lines[0] == "# no change"
    assert set(program.stems) <= set(STEMS)
    assert files_in(song["root"]) == before
    # a lower threshold: more tools, each value in range (parse_program checked) and rounded to 0.1
    assert run(automix_main, "-m", archives["mixer"], "--stems-dir", song["dir"], "--print-only",
               "--threshold", "0.01") == 0
    program = parse_program(capsys.readouterr().out.strip())
    assert program.stems == STEMS
    for st in program.statements:
        assert [c.tool for c in st.calls] == ["change_volume", "change_pan", "apply_eq"]
        for c in st.calls:
            for _, v in c.params:
                assert abs(v * 10 - round(v * 10)) < 1e-9


def test_automix_writes_the_mix_of_the_program_it_prints(song, archives, tmp_path, capsys):
    out = tmp_path / "auto.wav"
    assert run(automix_main, "-m", archives["mixer"], "--stems-dir", song["dir"], "-o", out, "--threshold", "0.01",
               "--clip", "none", "--bit-depth", "32") == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1
    program = parse_program(printed[0])
    assert program.statements
    y, rate = read(out)
    assert rate == RATE and y.shape == (2, FRAMES)
    expected = program_remix(song["stems"], program, RATE, "sum")
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5)
    # the default output: 16-bit, rescaled into [-1, 1]
    out16 = tmp_path / "auto16.wav"
    assert run(automix_main, "-m", archives["mixer"], "--stems-dir", song["dir"], "-o", out16) == 0
    info = sf.info(str(out16))
    assert info.samplerate == RATE and info.frames == FRAMES and info.channels == 2 and info.subtype == "PCM_16"


def test_automix_with_the_mixture(song, archives, tmp_path, capsys):
    out = tmp_path / "auto.wav"
    assert run(automix_main, "-m", archives["mixer"], "--stems-dir", song["dir"], "--mix", song["mix_path"],
               "-o", out, "--threshold", "0.01", "--clip", "none", "--bit-depth", "32") == 0
    program = parse_program(capsys.readouterr().out.strip())
    expected = program_remix(song["stems"], program, RATE, "mixture", song["mix"])
    np.testing.assert_allclose(read(out)[0], expected, rtol=0, atol=1e-5)


def test_automix_missing_stem_is_silence_and_left_alone(archives, tmp_path, capsys):
    """A stem of the mixer with no file is silence to it; the program names only stems that
    have a file (it is applied to those), so the mix is written."""
    stems = write_stems(tmp_path / "stems", stems=["vocals", "drums", "other"])
    out = tmp_path / "auto.wav"
    rc = run(automix_main, "-m", archives["mixer"], "--stems-dir", tmp_path / "stems", "-o", out, "--threshold", "0.01",
             "--clip", "none", "--bit-depth", "32")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    program = parse_program(captured.out.strip())
    assert set(program.stems) == {"vocals", "drums", "other"}  # threshold 0.01: every present stem gets calls
    np.testing.assert_allclose(read(out)[0], program_remix(stems, program, RATE, "sum"), rtol=0, atol=1e-5)


def test_automix_no_stem_of_the_mixer(archives, tmp_path, capsys):
    write_stems(tmp_path / "stems", stems=["vocals", "drums"])
    for f in (tmp_path / "stems").iterdir():
        f.rename(f.with_name("x" + f.name))
    out = tmp_path / "auto.wav"
    assert run(automix_main, "-m", archives["mixer"], "--stems-dir", tmp_path / "stems", "-o", out) == 2
    captured = capsys.readouterr()
    error_line(captured.err, "banda-automix", "vocals, drums, bass, other", "xdrums, xvocals")
    assert captured.out == "" and not out.exists()


def test_automix_not_a_mixer(song, archives, tmp_path, capsys):
    out = tmp_path / "auto.wav"
    assert run(automix_main, "-m", archives["bandit"], "--stems-dir", song["dir"], "-o", out) == 2
    captured = capsys.readouterr()
    error_line(captured.err, "banda-automix", "not a learned mixer", "'bandit'")
    assert captured.out == "" and not out.exists()


@pytest.mark.parametrize("args,needles", [
    (["--print-only", "-o", "{root}/auto.wav"], ["--print-only", "-o"]),
    ([], ["-o OUT", "--print-only"]),
    (["--print-only", "--threshold", "1.5"], ["--threshold"]),
    (["--print-only", "--tag", "brighter"], ["'brighter'", "no tags"]),
    (["-o", "{root}/auto.wav", "--complement", "mixture"], ["--complement mixture", "--mix"]),
])
def test_automix_option_errors(song, archives, tmp_path, capsys, args, needles):
    args = [a.format(root=tmp_path) for a in args]
    assert run(automix_main, "-m", archives["mixer"], "--stems-dir", song["dir"], *args) == 2
    captured = capsys.readouterr()
    error_line(captured.err, "banda-automix", *needles)
    assert captured.out == "" and not (tmp_path / "auto.wav").exists()


# --------------------------------------------------------------------------- banda-mix-eval
@pytest.fixture(scope="module")
def test_dir(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("mixeval"), tracks=2, seconds=2.0)


def read_csv(path: Path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_mix_eval_writes_the_scores(test_dir, archives, tmp_path, capsys):
    out = tmp_path / "scores"
    assert run(mix_eval_main, "-m", archives["mixer"], "--data", test_dir, "-o", out, "--clips-per-track", "2") == 0
    assert {p.name for p in out.iterdir()} == {"long.csv", "summary.csv", "scoring.json"}
    long = read_csv(out / "long.csv")
    summary = {(r["stem"], r["metric"]): r for r in read_csv(out / "summary.csv")}
    info = json.loads((out / "scoring.json").read_text())
    assert info["scorer"] == "banda-mix-eval" and info["clips_per_track"] == 2
    for key in [("mix", "stft_distance_ratio"), ("mix", "stft_distance"), ("mix", "input_stft_distance"),
                ("all", "volume_error_db"), ("all", "input_volume_error_db")]:
        assert key in summary, key
    for s in STEMS:
        for tool in ("change_volume", "change_pan", "apply_eq"):
            assert (s, f"{tool}_presence_acc") in summary, (s, tool)
    ratio_rows = [r for r in long if (r["stem"], r["metric"]) == ("mix", "stft_distance_ratio")]
    assert len(ratio_rows) == 2 * 2  # tracks x clips per track
    assert len({r["track"] for r in ratio_rows}) == 4
    assert sorted(r["track"][:2] for r in ratio_rows) == ["t0", "t0", "t1", "t1"]  # clip i from track i % tracks
    assert int(summary[("mix", "stft_distance_ratio")]["count"]) == 4
    for r in long:
        if r["metric"].endswith("_presence_acc"):
            assert float(r["value"]) in (0.0, 1.0)
    # every clip has a distorted stem: the distorted mix is away from the original
    assert all(float(r["value"]) > 0 for r in long if r["metric"] == "input_stft_distance")
    # stem "all": one row per (clip, stem)
    all_rows = [r for r in long if (r["stem"], r["metric"]) == ("all", "volume_error_db")]
    assert len(all_rows) == 4 * len(STEMS) and int(summary[("all", "volume_error_db")]["count"]) == 4 * len(STEMS)
    assert "stft_distance_ratio" in capsys.readouterr().out  # the summary table


def test_mix_eval_clips_as_long_as_the_tracks_are_all_counted(test_dir, archives, tmp_path):
    """Clips as long as the tracks all start at 0: still one summary value per clip."""
    out = tmp_path / "scores"
    assert run(mix_eval_main, "-m", archives["mixer"], "--data", test_dir, "-o", out, "--clips-per-track", "2",
               "--seconds", "2") == 0
    long = read_csv(out / "long.csv")
    assert len([r for r in long if (r["stem"], r["metric"]) == ("mix", "stft_distance_ratio")]) == 4
    summary = {(r["stem"], r["metric"]): r for r in read_csv(out / "summary.csv")}
    assert int(summary[("mix", "stft_distance_ratio")]["count"]) == 4
    assert int(summary[("all", "volume_error_db")]["count"]) == 4 * len(STEMS)


def test_mix_eval_is_deterministic(test_dir, archives, tmp_path):
    for name in ("a", "b"):
        assert run(mix_eval_main, "-m", archives["mixer"], "--data", test_dir, "-o", tmp_path / name,
                   "--clips-per-track", "1", "--seed", "3") == 0
    assert (tmp_path / "a" / "long.csv").read_text() == (tmp_path / "b" / "long.csv").read_text()


@pytest.mark.parametrize("model,args,needles", [
    ("bandit", [], ["not a learned mixer", "'bandit'"]),
    ("mixer", ["--clips-per-track", "0"], ["--clips-per-track"]),
    ("mixer", ["--seconds", "0.1"], ["--seconds"]),
    ("mixer", ["--data", "{root}/nowhere"], ["nowhere"]),
])
def test_mix_eval_errors(test_dir, archives, tmp_path, capsys, model, args, needles):
    args = [a.format(root=tmp_path) for a in args]
    out = tmp_path / "scores"
    data = [] if "--data" in args else ["--data", test_dir]
    assert run(mix_eval_main, "-m", archives[model], *data, *args, "-o", out) == 2
    captured = capsys.readouterr()
    error_line(captured.err, "banda-mix-eval", *needles)
    assert not (out / "long.csv").exists() and not (out / "summary.csv").exists()


def test_mix_eval_needs_a_distort_section(test_dir, tmp_path, capsys):
    from test_mixer_model import tiny_mixer

    model, params = tiny_mixer()
    torch.save(make_archive(model, "mixer", params), tmp_path / "bare.pth")  # no training config
    assert run(mix_eval_main, "-m", tmp_path / "bare.pth", "--data", test_dir, "-o", tmp_path / "scores") == 2
    error_line(capsys.readouterr().err, "banda-mix-eval", "distort")


def test_automix_and_mix_eval_with_text_tags(song, test_dir, tmp_path, capsys):
    """A mixer trained with tags: --tag conditions it (another program than without), an unknown
    tag is one line naming the known ones; banda-mix-eval scores it with its tags as in training."""
    tags = {"brighter": {"apply_eq": {"high_gain": 4.0}}, "louder": {"change_volume": {"db": 3.0}}}
    model = write_mixer_archive(tmp_path / "tagged.pth", tags=tags)
    programs = []
    for extra in ([], ["--tag", "brighter"], ["--tag", "louder"]):
        assert run(automix_main, "-m", model, "--stems-dir", song["dir"], "--print-only", "--threshold", "0.01",
                   *extra) == 0
        programs.append(capsys.readouterr().out.strip())
    assert len(set(programs)) == 3, programs  # the tag embedding changes what the model hears
    assert run(automix_main, "-m", model, "--stems-dir", song["dir"], "--print-only", "--tag", "warmer") == 2
    line = error_line(capsys.readouterr().err, "banda-automix")
    assert "unknown tag 'warmer'" in line and "brighter, louder" in line
    out = tmp_path / "scores"
    assert run(mix_eval_main, "-m", model, "--data", test_dir, "-o", out, "--clips-per-track", "4") == 0
    assert any(r["metric"] == "stft_distance_ratio" for r in read_csv(out / "summary.csv"))
