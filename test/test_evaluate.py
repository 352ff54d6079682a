"""banda-evaluate (banda.bin.evaluate): layouts, CSVs, baseline rows, errors, museval end to end."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from banda import scoring
from banda.bin import evaluate as ev
from banda.errors import BandaError

from conftest import REPO, shared_data_dir

RATE = 16000
MUSEVAL_DIR = shared_data_dir() / "museval_musdb18_7s"
TRACK = "Music Delta - 80s Rock"


def wav(path: Path, audio: np.ndarray, rate: int = RATE) -> Path:
    """Write (channels, time) audio as a float32 WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio, dtype=np.float32).T, rate, subtype="FLOAT")
    return path


def read_csv(path: Path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


@pytest.fixture
def tracks(tmp_path):
    """Folder of 2 stereo tracks (stems a, b; 1 s at 16 kHz) and estimates = stem + noise."""
    rng = np.random.default_rng(0)
    ref, est = tmp_path / "ref", tmp_path / "est"
    for t in ("t1", "t2"):
        a = 0.3 * rng.standard_normal((2, RATE))
        b = 0.3 * rng.standard_normal((2, RATE))
        wav(ref / t / "a.wav", a)
        wav(ref / t / "b.wav", b)
        wav(ref / t / "mixture.wav", a + b)
        wav(est / t / "a.wav", a + 0.1 * rng.standard_normal(a.shape))
        wav(est / t / "b.wav", b + 0.1 * rng.standard_normal(b.shape))
    return ref, est


def run_cli(args, capsys):
    rc = ev.main([str(a) for a in args] + ["--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_writes_long_and_summary_with_input_baseline(tracks, tmp_path, capsys):
    ref, est = tracks
    out_dir = tmp_path / "scores"
    rc, out, err = run_cli(["--ref", ref, "--est", est, "-o", out_dir], capsys)
    assert rc == 0, err
    fields, rows = read_csv(out_dir / "long.csv")
    assert fields == ["track", "stem", "metric", "value"]
    # 2 tracks x 2 stems x (sdr, si_sdr) x (model, input)
    assert len(rows) == 16
    assert {r["metric"] for r in rows} == {"sdr", "si_sdr", "input_sdr", "input_si_sdr"}
    fields, summary = read_csv(out_dir / "summary.csv")
    assert fields == ["stem", "metric", "mean", "median", "count", "missing"]
    by = {(r["stem"], r["metric"]): r for r in summary}
    for stem in ("a", "b"):
        assert ("input_si_sdr" in {m for s, m in by if s == stem})
        model, base, impr = (float(by[(stem, m)]["mean"]) for m in ("si_sdr", "input_si_sdr", "si_sdri"))
        assert impr == pytest.approx(model - base)
        assert model > 8 and base < 3
        assert by[(stem, "sdri")]["count"] == "2" and by[(stem, "si_sdr")]["missing"] == "0"
    # printed aligned table includes baseline and improvement rows
    assert "input_si_sdr" in out and "si_sdri" in out
    header = out.splitlines()[0].split()
    assert header == ["stem", "metric", "mean", "median", "count", "missing"]


def test_evaluate_dirs_matches_metrics_directly(tracks):
    from banda import metrics as M

    ref, est = tracks
    long_rows, _ = scoring.evaluate_dirs(ref, est, stems="a", metrics=["si_sdr"], input_baseline=False)
    assert [(r["track"], r["stem"], r["metric"]) for r in long_rows] == [("t1", "a", "si_sdr"), ("t2", "a", "si_sdr")]
    s, _ = sf.read(str(ref / "t1" / "a.wav"), always_2d=True)
    e, _ = sf.read(str(est / "t1" / "a.wav"), always_2d=True)
    assert long_rows[0]["value"] == pytest.approx(M.si_sdr(s.T, e.T))


@pytest.mark.parametrize("jobs", [1, 2])
def test_inverted_polarity_is_reported(tracks, caplog, jobs):
    """An estimate of -stem scores the same SI-SDR as +stem; the evaluation names it in a warning."""
    ref, est = tracks
    a, _ = sf.read(str(est / "t2" / "a.wav"), always_2d=True)
    wav(est / "t2" / "a.wav", -a.T)
    with caplog.at_level("WARNING", logger="banda.evaluate"):
        long_rows, _ = scoring.evaluate_dirs(ref, est, metrics=["si_sdr", "sdr"], jobs=jobs)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("t2: the a estimate has inverted polarity (least-squares scale -0.")
    values = {(r["track"], r["stem"], r["metric"]): r["value"] for r in long_rows}
    assert values[("t2", "a", "si_sdr")] > 8 and values[("t2", "a", "sdr")] < 0  # only uSDR sees the sign


def test_data_dir_layout_and_parallel_jobs(tracks, tmp_path):
    ref, est = tracks
    data = tmp_path / "data"
    data.mkdir()
    for name, fname in (("mix", "mixture"), ("a", "a"), ("b", "b")):
        (data / f"{name}.scp").write_text("".join(f"{t} {ref / t / fname}.wav\n" for t in ("t1", "t2")))
    (data / "utt2num_samples").write_text(f"t1 {RATE}\nt2 {RATE}\n")
    folder_rows, folder_summary = scoring.evaluate_dirs(ref, est)
    data_rows, _ = scoring.evaluate_dirs(data, est, jobs=2)
    assert data_rows == folder_rows
    assert len(folder_summary) == 2 * 2 * 3  # stems x metrics x (model, input, improvement)


def test_missing_estimate_is_one_line_error(tracks, capsys):
    ref, est = tracks
    (est / "t2" / "b.wav").unlink()
    rc, out, err = run_cli(["--ref", ref, "--est", est], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("banda-evaluate: error:") and str(est / "t2" / "b.wav") in lines[0]


def test_unknown_stem_and_metric(tracks, capsys):
    ref, est = tracks
    rc, _, err = run_cli(["--ref", ref, "--est", est, "--stems", "a,vocals"], capsys)
    assert rc == 2 and "'vocals'" in err and str(ref) in err and len(err.strip().splitlines()) == 1
    rc, _, err = run_cli(["--ref", ref, "--est", est, "--metrics", "sdr,foo"], capsys)
    assert rc == 2 and "unknown metric 'foo'" in err


def test_length_tolerance(tracks, capsys):
    ref, est = tracks
    a, _ = sf.read(str(est / "t1" / "a.wav"), always_2d=True)
    wav(est / "t1" / "a.wav", a[:-5].T)  # within tolerance: zero-padded
    rows, _ = scoring.evaluate_dirs(ref, est, metrics="sdr", input_baseline=False)
    assert all(np.isfinite(r["value"]) for r in rows)
    wav(est / "t1" / "a.wav", a[:-1000].T)
    rc, _, err = run_cli(["--ref", ref, "--est", est], capsys)
    assert rc == 2 and str(est / "t1" / "a.wav") in err and "samples" in err
    with pytest.raises(BandaError):
        scoring.evaluate_dirs(ref, est, length_tolerance=999)  # 1000 > 999
    rows, _ = scoring.evaluate_dirs(ref, est, length_tolerance=1000, input_baseline=False)
    assert len(rows) == 8


def test_missing_values_are_counted_not_averaged(tracks):
    ref, est = tracks
    wav(ref / "t2" / "b.wav", np.zeros((2, RATE)))  # silent reference: STOI undefined
    long_rows, summary = scoring.evaluate_dirs(ref, est, stems="b", metrics="stoi")
    t2 = [r for r in long_rows if r["track"] == "t2"]
    assert all(np.isnan(r["value"]) for r in t2)
    by = {r["metric"]: r for r in summary}
    assert by["stoi"]["count"] == 1 and by["stoi"]["missing"] == 1
    t1 = [r["value"] for r in long_rows if r["track"] == "t1" and r["metric"] == "stoi"]
    assert by["stoi"]["mean"] == pytest.approx(t1[0])
    assert by["stoi_delta"]["missing"] == 1


def test_write_results_md(tracks, tmp_path):
    ref, est = tracks
    _, summary = scoring.evaluate_dirs(ref, est)
    path = tmp_path / "RESULTS.md"
    scoring.write_results_md(summary, path, "toy", system="mymodel")
    text = path.read_text()
    assert text.startswith("# toy")
    assert "| system | a | b | mean |" in text
    assert "| mixture (input) |" in text and "| mymodel |" in text
    assert "## sdr" in text and "## si_sdr" in text and "## si_sdri" not in text
    assert "| improvement (si_sdri) |" in text and "| improvement (sdri) |" in text
    # also works from the CSV read back (strings)
    scoring.write_results(tmp_path / "s", [], summary)
    _, rows = read_csv(tmp_path / "s" / "summary.csv")
    scoring.write_results_md(rows, tmp_path / "R2.md", "toy", system="mymodel")
    assert (tmp_path / "R2.md").read_text() == text


def test_python_dash_m_entry_point(tracks):
    ref, est = tracks
    (est / "t1" / "a.wav").unlink()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "banda.bin.evaluate", "--ref", str(ref), "--est", str(est)],
                       capture_output=True, text=True, cwd=REPO, env=env)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "a.wav" in p.stderr


@pytest.mark.skipif(not MUSEVAL_DIR.exists(), reason="museval test data not available")
def test_bss_eval_end_to_end_matches_museval_json(tmp_path, capsys):
    src = MUSEVAL_DIR / TRACK
    stems = {k: sf.read(str(src / f"{k}.wav"), dtype="float32")[0].T for k in ("vocals", "drums", "bass", "other")}
    acc = stems["drums"] + stems["bass"] + stems["other"]
    ref, est = tmp_path / "ref", tmp_path / "est"
    rate = 44100
    wav(ref / TRACK / "vocals.wav", stems["vocals"], rate)
    wav(ref / TRACK / "accompaniment.wav", acc, rate)
    wav(ref / TRACK / "mixture.wav", stems["vocals"] + acc, rate)
    np.random.seed(0)
    wav(est / TRACK / "vocals.wav", np.random.random((300032, 2)).T, rate)
    wav(est / TRACK / "accompaniment.wav", np.random.random((300032, 2)).T, rate)
    out_dir = tmp_path / "scores"
    rc, out, err = run_cli(["--ref", ref, "--est", est, "--metrics", "bss_eval", "--no-input-baseline",
                            "--stems", "vocals,accompaniment", "-o", out_dir], capsys)
    assert rc == 0, err
    _, rows = read_csv(out_dir / "long.csv")
    got = {(r["stem"], r["metric"]): float(r["value"]) for r in rows}
    assert len(got) == 8 and {r["track"] for r in rows} == {TRACK}
    with open(MUSEVAL_DIR / f"{TRACK}.json") as f:
        doc = json.load(f)
    for target in doc["targets"]:
        for key in ("SDR", "ISR", "SIR", "SAR"):
            frames = [fr["metrics"][key] for fr in target["frames"]]
            assert got[(target["name"], f"bss_{key.lower()}")] == pytest.approx(np.median(frames), abs=0.1)
    _, summary = read_csv(out_dir / "summary.csv")
    vocals = {r["metric"]: r for r in summary if r["stem"] == "vocals"}
    # one track: cSDR (median over tracks) is that track's frame median
    assert float(vocals["bss_sdr"]["median"]) == pytest.approx(got[("vocals", "bss_sdr")])
    assert "cSDR" in out


PESQ_DIR = shared_data_dir() / "pesq_ludlows"


@pytest.mark.skipif(not PESQ_DIR.exists(), reason="pesq test data not available")
def test_pesq_end_to_end_matches_documented_scores(tmp_path, capsys):
    """banda-evaluate on python-pesq's own files gives its documented WB and NB scores."""
    clean, rate = sf.read(str(PESQ_DIR / "speech.wav"), dtype="float32")
    noisy, _ = sf.read(str(PESQ_DIR / "speech_bab_0dB.wav"), dtype="float32")
    expected = json.loads((PESQ_DIR / "expected_scores.json").read_text())
    ref, est = tmp_path / "ref", tmp_path / "est"
    wav(ref / "utt" / "speech.wav", clean[None], rate)
    wav(ref / "utt" / "mixture.wav", noisy[None], rate)
    wav(est / "utt" / "speech.wav", noisy[None], rate)
    out_dir = tmp_path / "scores"
    rc, _, err = run_cli(["--ref", ref, "--est", est, "--metrics", "pesq,pesq_nb", "-o", out_dir], capsys)
    assert rc == 0, err
    _, rows = read_csv(out_dir / "long.csv")
    got = {r["metric"]: float(r["value"]) for r in rows}
    pair = expected["pairs"]["speech.wav vs speech_bab_0dB.wav"]
    wb, nb = pair["wb_mos_lqo"], pair["nb_mos_lqo"]
    assert got["pesq"] == pytest.approx(1.0832337141036987, abs=1e-6) == pytest.approx(wb, abs=1e-3)
    assert got["pesq_nb"] == pytest.approx(1.6072081327438354, abs=1e-6) == pytest.approx(nb, abs=1e-3)
    # the mixture is the estimate here, so the baseline equals the score
    assert got["input_pesq"] == pytest.approx(got["pesq"])


STOI_DIR = shared_data_dir() / "pystoi_samples"


@pytest.mark.skipif(not STOI_DIR.exists(), reason="pystoi samples not available")
def test_speech_metrics_end_to_end_match_pystoi_and_pesq(tmp_path, capsys):
    """banda-evaluate on pystoi's sample files gives pystoi 0.4.1's STOI and ESTOI and
    pesq 0.0.4's WB and NB scores (computed_with_*.json) within 1e-4, with the input's own rows."""
    (jpath,) = STOI_DIR.glob("computed_with_*.json")
    expected = json.loads(jpath.read_text())["pairs"]["clean.wav vs mixture.wav"]
    clean, rate = sf.read(str(STOI_DIR / "clean.wav"), dtype="float32")
    mixture, _ = sf.read(str(STOI_DIR / "mixture.wav"), dtype="float32")
    ref, est = tmp_path / "ref", tmp_path / "est"
    wav(ref / "utt" / "speech.wav", clean[None], rate)
    wav(ref / "utt" / "mixture.wav", mixture[None], rate)
    wav(est / "utt" / "speech.wav", mixture[None], rate)
    rc, _, err = run_cli(["--ref", ref, "--est", est, "--metrics", "stoi,estoi,pesq,pesq_nb", "-o", tmp_path / "s"], capsys)
    assert rc == 0, err
    _, rows = read_csv(tmp_path / "s" / "long.csv")
    got = {r["metric"]: float(r["value"]) for r in rows}
    for ours, theirs in (("stoi", "stoi"), ("estoi", "estoi"), ("pesq", "pesq_wb"), ("pesq_nb", "pesq_nb")):
        assert got[ours] == pytest.approx(expected[theirs], abs=1e-4), ours
        assert got["input_" + ours] == pytest.approx(expected[theirs], abs=1e-4), ours


def test_variants_one_report_with_a_variant_column(tracks, tmp_path, capsys):
    """--variants scores data/<set>_<variant> for each variant in one run: long.csv and
    summary.csv start with a variant column, the summary is per variant, RESULTS.md groups."""
    import shutil

    ref, est = tracks
    for v in ("SER", "S"):
        shutil.copytree(ref, tmp_path / f"ref_{v}")
        shutil.copytree(est, tmp_path / f"est_{v}")
    rng = np.random.default_rng(1)  # variant S: a worse estimate of a in t1
    a = sf.read(str(ref / "t1" / "a.wav"), dtype="float32")[0].T
    wav(tmp_path / "est_S" / "t1" / "a.wav", a + 0.5 * rng.standard_normal(a.shape))
    out = tmp_path / "scores"
    rc, printed, err = run_cli(["--ref", tmp_path / "ref_{variant}", "--est", tmp_path / "est_{variant}",
                                "--variants", "SER,S", "--metrics", "si_sdr", "-o", out, "--results-md", tmp_path / "R.md"], capsys)
    assert rc == 0, err
    fields, long_rows = read_csv(out / "long.csv")
    assert fields[0] == "variant" and {r["variant"] for r in long_rows} == {"SER", "S"}
    sfields, summary = read_csv(out / "summary.csv")
    assert sfields[0] == "variant"
    mean = {(r["variant"], r["stem"], r["metric"]): float(r["mean"]) for r in summary}
    direct, _ = scoring.evaluate_dirs(tmp_path / "ref_S", tmp_path / "est_S", metrics="si_sdr")
    want = np.mean([r["value"] for r in direct if r["stem"] == "a" and r["metric"] == "si_sdr"])
    assert mean[("S", "a", "si_sdr")] == pytest.approx(want)
    assert mean[("S", "a", "si_sdr")] < mean[("SER", "a", "si_sdr")] - 3
    assert "variant" in printed.splitlines()[0]
    md = (tmp_path / "R.md").read_text()
    assert "variant SER" in md and "variant S\n" in md


def test_variants_check_every_variant_before_scoring(tracks, tmp_path, capsys):
    import shutil

    ref, est = tracks
    shutil.copytree(ref, tmp_path / "ref_A")
    shutil.copytree(est, tmp_path / "est_A")
    shutil.copytree(ref, tmp_path / "ref_B")  # no est_B
    rc, _, err = run_cli(["--ref", tmp_path / "ref_{variant}", "--est", tmp_path / "est_{variant}",
                          "--variants", "A,B", "-o", tmp_path / "scores"], capsys)
    assert rc == 2 and "est_B" in err and "variant B" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "scores").exists()
    rc, _, err = run_cli(["--ref", ref, "--est", est, "--variants", "A"], capsys)
    assert rc == 2 and "{variant}" in err


def test_per_channel_scores_each_channel_and_their_mean(tmp_path, capsys):
    """--per-channel: rows <stem>.ch<k> score channel k alone; the stem's row is their mean."""
    from banda import metrics as M

    rng = np.random.default_rng(4)
    ref, est = tmp_path / "ref", tmp_path / "est"
    x = 0.3 * rng.standard_normal((3, RATE))
    noise = np.array([0.01, 0.1, 0.5])[:, None] * rng.standard_normal((3, RATE))  # one SNR per channel
    wav(ref / "t1" / "reconstruction.wav", x)
    wav(ref / "t1" / "mixture.wav", x)
    wav(est / "t1" / "reconstruction.wav", x + noise)
    rc, out, _ = run_cli(["--ref", ref, "--est", est, "--metrics", "si_sdr,sdr", "--per-channel", "--no-input-baseline",
                          "-o", tmp_path / "scores"], capsys)
    assert rc == 0
    _, rows = read_csv(tmp_path / "scores" / "long.csv")
    got = {(r["stem"], r["metric"]): float(r["value"]) for r in rows}
    assert {s for s, _ in got} == {"reconstruction", "reconstruction.ch0", "reconstruction.ch1", "reconstruction.ch2"}
    xf = np.asarray(x, np.float32)
    ef = np.asarray(x + noise, np.float32)
    for m, fn in (("si_sdr", M.si_sdr), ("sdr", M.usdr)):
        per = [fn(xf[k:k + 1], ef[k:k + 1]) for k in range(3)]
        for k in range(3):
            assert got[(f"reconstruction.ch{k}", m)] == pytest.approx(per[k], abs=1e-9)
        assert got[("reconstruction", m)] == pytest.approx(np.mean(per), abs=1e-9)
    assert got[("reconstruction.ch0", "si_sdr")] > got[("reconstruction.ch2", "si_sdr")] + 20
    rc, _, err = run_cli(["--ref", ref, "--est", est, "--metrics", "bss_eval", "--per-channel"], capsys)
    assert rc == 2 and "per-channel scoring takes pair metrics only, not bss_eval" in err
