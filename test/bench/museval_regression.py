"""Reproduce museval's own regression numbers with banda's evaluation, and print the differences.

    tools/venv/bin/python test/bench/museval_regression.py [--data ../shared/data]

1. BSS-Eval v4 on the MUSDB18 7-s excerpt ("Music Delta - 80s Rock"): references vocals and
   accompaniment (drums + bass + other), estimates = museval's seeded uniform noise
   (np.random.seed(0); vocals first), every 1 s frame of SDR/ISR/SIR/SAR against the JSON
   museval's test suite ships (peer tolerance 0.1 dB), computed through banda-evaluate.
2. PESQ through banda-evaluate on python-pesq's speech.wav / speech_bab_0dB.wav against its
   documented WB and NB scores.
Prints one JSON object with the largest absolute differences.
"""
import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
TRACK = "Music Delta - 80s Rock"


def _write(path: Path, audio: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio, dtype=np.float32).T, rate, subtype="FLOAT")


def main(argv=None) -> int:
    from banda.bin import evaluate
    from banda.metrics import bss_eval_v4

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="the shared test data folder")
    args = p.parse_args(argv)
    data = Path(args.data)
    src = data / "museval_musdb18_7s"
    stems = {k: sf.read(str(src / TRACK / f"{k}.wav"), dtype="float32")[0].T for k in ("vocals", "drums", "bass", "other")}
    acc = stems["drums"] + stems["bass"] + stems["other"]
    np.random.seed(0)
    est_vocals = np.random.random((300032, 2)).T
    est_acc = np.random.random((300032, 2)).T
    doc = json.loads((src / f"{TRACK}.json").read_text())
    expected = {t["name"]: {k: np.array([f["metrics"][k] for f in t["frames"]]) for k in ("SDR", "ISR", "SIR", "SAR")}
                for t in doc["targets"]}
    # per frame, through the library function banda-evaluate calls
    got = bss_eval_v4(np.stack([stems["vocals"], acc]), np.stack([est_vocals, est_acc]), sample_rate=44100)
    frame_diff = max(float(np.nanmax(np.abs(got[k][i] - expected[name][k])))
                     for i, name in enumerate(("vocals", "accompaniment")) for k in ("SDR", "ISR", "SIR", "SAR"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _write(tmp / "ref" / TRACK / "vocals.wav", stems["vocals"], 44100)
        _write(tmp / "ref" / TRACK / "accompaniment.wav", acc, 44100)
        _write(tmp / "ref" / TRACK / "mixture.wav", stems["vocals"] + acc, 44100)
        _write(tmp / "est" / TRACK / "vocals.wav", est_vocals, 44100)
        _write(tmp / "est" / TRACK / "accompaniment.wav", est_acc, 44100)
        rc = evaluate.main(["--ref", str(tmp / "ref"), "--est", str(tmp / "est"), "--metrics", "bss_eval",
                            "--stems", "vocals,accompaniment", "--no-input-baseline", "-o", str(tmp / "scores"), "--no-progress"])
        assert rc == 0
        with open(tmp / "scores" / "long.csv", newline="") as f:
            rows = {(r["stem"], r["metric"]): float(r["value"]) for r in csv.DictReader(f)}
        median_diff = max(abs(rows[(name, f"bss_{k.lower()}")] - float(np.median(expected[name][k])))
                          for name in ("vocals", "accompaniment") for k in ("SDR", "ISR", "SIR", "SAR"))
        pesq_dir = data / "pesq_ludlows"
        clean, rate = sf.read(str(pesq_dir / "speech.wav"), dtype="float32")
        noisy, _ = sf.read(str(pesq_dir / "speech_bab_0dB.wav"), dtype="float32")
        _write(tmp / "pref" / "utt" / "speech.wav", clean[None], rate)
        _write(tmp / "pref" / "utt" / "mixture.wav", noisy[None], rate)
        _write(tmp / "pest" / "utt" / "speech.wav", noisy[None], rate)
        rc = evaluate.main(["--ref", str(tmp / "pref"), "--est", str(tmp / "pest"), "--metrics", "pesq,pesq_nb",
                            "--no-input-baseline", "-o", str(tmp / "pscores"), "--no-progress"])
        assert rc == 0
        with open(tmp / "pscores" / "long.csv", newline="") as f:
            pesq = {r["metric"]: float(r["value"]) for r in csv.DictReader(f)}
    pair = json.loads((pesq_dir / "expected_scores.json").read_text())["pairs"]["speech.wav vs speech_bab_0dB.wav"]
    out = {
        "museval_frames_max_abs_diff_db": frame_diff,
        "museval_frame_medians_via_cli_max_abs_diff_db": median_diff,
        "museval_tolerance_db": 0.1,
        "pesq_wb": pesq["pesq"], "pesq_wb_expected": pair["wb_mos_lqo"],
        "pesq_nb": pesq["pesq_nb"], "pesq_nb_expected": pair["nb_mos_lqo"],
    }
    print(json.dumps(out, indent=1))
    return 0 if frame_diff <= 0.1 and median_diff <= 0.1 and abs(pesq["pesq"] - pair["wb_mos_lqo"]) < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
