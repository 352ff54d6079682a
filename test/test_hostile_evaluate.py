"""Hostile input for banda.metrics and banda-evaluate: silence, all-zero estimates, unwritable
outputs and every kind of bad input is one stderr line and exit code 2, with nothing written."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from banda import metrics as M
from banda import scoring
from banda.bin import evaluate as ev
from conftest import REPO, subprocess_env
from test_evaluate import RATE, read_csv, wav

PAIR_METRICS = [m for m in M.METRICS if m not in M.TRACK_METRICS]


@pytest.fixture
def scene(tmp_path):
    """2 tracks (t1, t2) of stereo stems a, b (2 s at 16 kHz, two BSS-Eval frames), mixture,
    and estimates = stem + noise; returns ``(ref, est)``."""
    rng = np.random.default_rng(0)
    ref, est = tmp_path / "ref", tmp_path / "est"
    for t in ("t1", "t2"):
        a, b = (0.3 * rng.standard_normal((2, 2 * RATE)) for _ in range(2))
        for name, x in (("a", a), ("b", b), ("mixture", a + b)):
            wav(ref / t / f"{name}.wav", x)
        for name, x in (("a", a), ("b", b)):
            wav(est / t / f"{name}.wav", x + 0.1 * rng.standard_normal(x.shape))
    return ref, est


def run_cli(args, capsys):
    """``(exit code, stdout, stderr)`` of ``banda-evaluate args`` in-process (argparse's
    usage errors leave by SystemExit, as they do from the console script)."""
    try:
        rc = ev.main([str(a) for a in args] + ["--no-progress"])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def by_key(rows):
    return {(r["track"], r["stem"], r["metric"]): float(r["value"]) for r in rows}


# --------------------------------------------------------------------------- metrics on silence


def test_is_silent_threshold():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 16000))
    x /= np.sqrt(np.mean(x * x))  # mean power 1
    level = math.sqrt(M.SILENCE_POWER)
    assert M.is_silent(np.zeros((2, 100))) and M.is_silent(np.zeros((1, 0))) and M.is_silent(0.5 * level * x)
    assert not M.is_silent(2 * level * x) and not M.is_silent(x)


@pytest.mark.parametrize("name", PAIR_METRICS)
@pytest.mark.parametrize("scale", [0.0, 1e-7])  # all zeros, and below SILENCE_POWER
def test_silent_reference_is_missing_for_every_pair_metric(name, scale):
    """Was: uSDR -109.6 dB and SI-SDR about -80 dB for a silent reference, averaged in."""
    rng = np.random.default_rng(2)
    ref = scale * rng.standard_normal((1, 16000))
    assert M.is_silent(ref)
    for est in (np.zeros((1, 16000)), rng.standard_normal((1, 16000))):
        assert M.compute_pair_metric(name, ref, est, 16000) is None


def test_silent_estimate_is_missing_where_undefined():
    rng = np.random.default_rng(3)
    s = rng.standard_normal((2, 8000))
    assert M.si_sdr(s, np.zeros_like(s)) is None  # 0/0: no estimate to project
    assert M.si_sdr(s, np.full_like(s, 0.5)) is None  # DC only: silent once zero-mean
    assert M.usdr(s, np.zeros_like(s)) == pytest.approx(0.0)  # defined: error = reference


def bss_inputs(n_src=3, seed=4):
    rng = np.random.default_rng(seed)
    refs = rng.standard_normal((n_src, 2, 40000))
    return refs, refs + 0.3 * rng.standard_normal(refs.shape)


@pytest.mark.parametrize("what", ["reference", "estimate", "anti-phase reference"])
def test_bss_eval_silent_source_does_not_poison_the_others(what):
    """Was: one silent reference made every source NaN; a silent estimate raised in museval."""
    refs, ests = bss_inputs()
    if what == "reference":
        refs[1] = 0
    elif what == "estimate":
        ests[1] = 0
    else:  # museval's own silence test: channel sum zero throughout
        refs[1, 1] = -refs[1, 0]
    out = M.bss_eval_v4(refs, ests, sample_rate=16000)
    rest = M.bss_eval_v4(refs[[0, 2]], ests[[0, 2]], sample_rate=16000)
    for key in M.BSS_EVAL_KEYS:
        assert out[key].shape == (3, 2) and np.isnan(out[key][1]).all()
        np.testing.assert_array_equal(out[key][[0, 2]], rest[key])
        assert np.isfinite(rest[key]).all()


def test_bss_eval_all_or_all_but_one_sources_silent():
    refs, ests = bss_inputs(2)
    out = M.bss_eval_v4(refs, np.zeros_like(ests), sample_rate=16000)
    assert all(out[k].shape == (2, 2) and np.isnan(out[k]).all() for k in M.BSS_EVAL_KEYS)
    ests[1] = 0  # source 0 scored alone: SIR has no interferer (museval: +inf) -> missing
    out = M.bss_eval_v4(refs, ests, sample_rate=16000)
    assert np.isnan(out["SIR"]).all() and np.isfinite(out["SDR"][0]).all() and np.isnan(out["SDR"][1]).all()


# --------------------------------------------------------------------------- banda-evaluate on silence


def test_silent_reference_and_estimate_are_missing_not_averaged(scene, tmp_path, capsys):
    """Was: +116.7 dB SDRi and +126.7 dB SI-SDRi for t2/b, entering the means."""
    ref, est = scene
    for root in (ref, est):
        wav(root / "t2" / "b.wav", np.zeros((2, 2 * RATE)))
    out_dir = tmp_path / "scores"
    rc, _, err = run_cli(["--ref", ref, "--est", est, "-o", out_dir], capsys)
    assert rc == 0, err
    assert "t2: the b reference and estimate are silent; missing: sdr, si_sdr, input_sdr, input_si_sdr" in err
    _, rows = read_csv(out_dir / "long.csv")
    values = by_key(rows)
    for m in ("sdr", "si_sdr", "input_sdr", "input_si_sdr"):
        assert math.isnan(values[("t2", "b", m)]) and math.isfinite(values[("t1", "b", m)])
        assert math.isfinite(values[("t2", "a", m)])
    _, summary = read_csv(out_dir / "summary.csv")
    stats = {(r["stem"], r["metric"]): r for r in summary}
    for m in ("sdr", "si_sdr", "input_sdr", "input_si_sdr", "sdri", "si_sdri"):
        assert (stats[("b", m)]["count"], stats[("b", m)]["missing"]) == ("1", "1"), m
        assert stats[("a", m)]["missing"] == "0"
    for m in ("sdr", "si_sdr"):
        assert float(stats[("b", m)]["mean"]) == pytest.approx(values[("t1", "b", m)])
        impr = float(stats[("b", scoring.improvement_name(m))]["mean"])
        assert impr == pytest.approx(values[("t1", "b", m)] - values[("t1", "b", "input_" + m)]) and impr < 30


def test_bss_eval_silent_reference_scores_the_other_stems(scene):
    """Was: a silent reference of t2/b made bss_* of t2/a NaN too."""
    ref, est = scene
    wav(ref / "t2" / "b.wav", np.zeros((2, 2 * RATE)))
    rows, summary = scoring.evaluate_dirs(ref, est, metrics="bss_eval", input_baseline=False)
    values = by_key(rows)
    alone = by_key(scoring.evaluate_dirs(ref, est, stems="a", metrics="bss_eval", input_baseline=False)[0])
    for m in M.BSS_EVAL_NAMES:
        assert math.isnan(values[("t2", "b", m)]) and math.isfinite(values[("t1", "a", m)])
        assert values[("t2", "a", m)] == alone[("t2", "a", m)] or m == "bss_sir"
        # a alone: no interferer, SIR undefined (museval: +inf) and missing
        assert math.isnan(values[("t2", "a", m)]) == (m == "bss_sir")
    stats = {(r["stem"], r["metric"]): r for r in summary}
    assert (stats[("b", "bss_sdr")]["count"], stats[("b", "bss_sdr")]["missing"]) == (1, 1)
    assert (stats[("a", "bss_sdr")]["count"], stats[("a", "bss_sdr")]["missing"]) == (2, 0)
    assert (stats[("a", "bss_sir")]["count"], stats[("a", "bss_sir")]["missing"]) == (1, 1)


def test_bss_eval_all_zero_estimate_warns_and_goes_on(scene, tmp_path, capsys):
    """Was: museval raised ValueError ('estimated sources should be non-silent') with a traceback."""
    ref, est = scene
    wav(est / "t1" / "a.wav", np.zeros((2, 2 * RATE)))
    out_dir = tmp_path / "scores"
    rc, out, err = run_cli(["--ref", ref, "--est", est, "--metrics", "bss_eval,sdr", "-o", out_dir], capsys)
    assert rc == 0, err
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, err
    assert "t1: the a estimate is silent; missing: bss_sdr, bss_isr, bss_sir, bss_sar" in warnings[0]
    values = by_key(read_csv(out_dir / "long.csv")[1])
    for m in M.BSS_EVAL_NAMES:
        assert math.isnan(values[("t1", "a", m)])
        assert all(math.isfinite(values[k]) for k in (("t2", "a", m), ("t2", "b", m), ("t1", "a", "input_" + m)))
        assert math.isfinite(values[("t1", "b", m)]) == (m != "bss_sir")  # b alone: no interferer
    assert values[("t1", "a", "sdr")] == pytest.approx(0.0, abs=1e-3)  # uSDR of silence is defined
    stats = {(r["stem"], r["metric"]): r for r in read_csv(out_dir / "summary.csv")[1]}
    assert stats[("a", "bss_sdr")]["missing"] == "1" and stats[("a", "bss_sdri")]["missing"] == "1"
    assert "bss_sdr" in out


# --------------------------------------------------------------------------- unwritable outputs


def _make_file(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("not a folder")
    return p


def _read_only(p):
    p.mkdir()
    p.chmod(0o555)
    return p


@pytest.mark.parametrize("case", ["md in a file", "md is a folder", "md in read-only folder",
                                  "out is a file", "out in a file", "out in read-only folder"])
def test_unwritable_output_is_refused_before_scoring(scene, tmp_path, capsys, monkeypatch, case):
    """Was: a traceback from --results-md after long.csv and summary.csv had been written."""
    if "read-only" in case and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ref, est = scene
    out_dir, md = tmp_path / "scores", tmp_path / "RESULTS.md"
    bad = {"md in a file": lambda: _make_file(tmp_path / "f") / "RESULTS.md",
           "md is a folder": lambda: (tmp_path / "dir.md").mkdir() or tmp_path / "dir.md",
           "md in read-only folder": lambda: _read_only(tmp_path / "ro") / "RESULTS.md",
           "out is a file": lambda: _make_file(tmp_path / "scores.txt"),
           "out in a file": lambda: _make_file(tmp_path / "f") / "scores",
           "out in read-only folder": lambda: _read_only(tmp_path / "ro") / "scores"}[case]()
    if case.startswith("md"):
        md = bad
    else:
        out_dir = bad
    monkeypatch.setattr(scoring, "_run_jobs", lambda *a, **k: pytest.fail("scoring started"))
    before = sorted(p for p in tmp_path.rglob("*"))
    rc, out, err = run_cli(["--ref", ref, "--est", est, "-o", out_dir, "--results-md", md], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("banda-evaluate: error: ") and (str(bad) in err or str(bad.parent) in err)
    assert ("--results-md" if case.startswith("md") else "-o") in err
    assert sorted(p for p in tmp_path.rglob("*")) == before and out == ""


# --------------------------------------------------------------------------- bad input: one line, exit 2


def _garbage(path):
    path.write_bytes(b"RIFF\x00\x00garbage, not audio" * 3)


def _nan_samples(path):
    x = np.zeros((2, 2 * RATE), dtype=np.float32)
    x[:, 100] = np.nan
    wav(path, x)


ARGS = "--ref {ref} --est {est}"
#: case -> (arguments, with {ref} and {est} filled in; what to break first, or None; text the error names)
BAD_INPUTS = {
    "missing ref": ("--ref {ref}/nope --est {est}", None, "nope"),
    "ref is a file": ("--ref {ref}/t1/a.wav --est {est}", None, "a.wav"),
    "missing est": ("--ref {ref} --est {est}/nope", None, "nope"),
    "missing --ref": ("--est {est}", None, "--ref"),
    "unknown option": (ARGS + " --frobnicate", None, "--frobnicate"),
    "unknown metric": (ARGS + " --metrics sdr,foo", None, "'foo'"),
    "no metrics": (ARGS + " --metrics ,", None, "metrics"),
    "unknown stem": (ARGS + " --stems a,vocals", None, "'vocals'"),
    "no stems": (ARGS + " --stems ,", None, "stems"),
    "jobs 0": (ARGS + " --jobs 0", None, "jobs"),
    "jobs not a number": (ARGS + " --jobs two", None, "--jobs"),
    "negative tolerance": (ARGS + " --length-tolerance -1", None, "tolerance"),
    "length mismatch": (ARGS, lambda ref, est: wav(est / "t2" / "b.wav", np.ones((2, RATE))), "b.wav"),
    "rate mismatch": (ARGS, lambda ref, est: wav(est / "t2" / "b.wav", np.ones((2, 2 * RATE)), 8000), "sample rate"),
    "channel mismatch": (ARGS, lambda ref, est: wav(est / "t2" / "b.wav", np.ones((1, 2 * RATE))), "channels"),
    "unreadable estimate": (ARGS, lambda ref, est: _garbage(est / "t2" / "b.wav"), "b.wav"),
    "unreadable reference": (ARGS, lambda ref, est: _garbage(ref / "t1" / "a.wav"), "a.wav"),
    "empty reference": (ARGS + f" --length-tolerance {2 * RATE}",
                        lambda ref, est: wav(ref / "t1" / "a.wav", np.zeros((2, 0))), "empty"),
    "missing estimate": (ARGS, lambda ref, est: (est / "t1" / "a.wav").unlink(), "a.wav"),
    "missing mixture": (ARGS, lambda ref, est: (ref / "t1" / "mixture.wav").unlink(), "--no-input-baseline"),
    "NaN samples": (ARGS, lambda ref, est: _nan_samples(est / "t2" / "a.wav"), "NaN"),
    "NaN samples, 2 jobs": (ARGS + " -j 2", lambda ref, est: _nan_samples(est / "t2" / "a.wav"), "NaN"),
}


def bad_input_args(case, ref, est, out_dir):
    """Break the scene as ``case`` says; the command-line arguments of that case."""
    template, breaker, needle = BAD_INPUTS[case]
    if breaker is not None:
        breaker(ref, est)
    return [a.format(ref=ref, est=est) for a in template.split()] + ["-o", str(out_dir)], needle


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(scene, tmp_path, capsys, case):
    ref, est = scene
    out_dir = tmp_path / "scores"
    args, needle = bad_input_args(case, ref, est, out_dir)
    rc, out, err = run_cli(args, capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("banda-evaluate: error: ") and needle in err
    assert not out_dir.exists() and out == ""


@pytest.mark.parametrize("case", ["unreadable estimate", "NaN samples, 2 jobs"])
def test_bad_input_subprocess_is_one_line_without_progress_flag(scene, tmp_path, case):
    """As a real process (stderr not a terminal: no progress bar, no log line before the error)."""
    ref, est = scene
    args, needle = bad_input_args(case, ref, est, tmp_path / "scores")
    p = subprocess.run([sys.executable, "-m", "banda.bin.evaluate", *args], capture_output=True, text=True,
                       cwd=REPO, env=subprocess_env(), timeout=300)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert needle in p.stderr and "Traceback" not in p.stderr and not (tmp_path / "scores").exists()
