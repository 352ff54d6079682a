"""banda-separate with a query model (Banquet): audio clips, labels and embedding files as
queries, one output per query, and the errors of a wrong or missing query."""
import numpy as np
import pytest
import soundfile as sf
import torch

from banda.bin.separate import main
from banda.models import build_model, make_archive

from conftest import error_line

RATE = 8000
BASE = dict(in_channels=2, sample_rate=RATE, n_fft=256, hop_length=64, bands="musical", n_bands=8, dim=16,
            n_layers=2, hidden=16, mask_hidden=32, query_dim=12)
ENCODER = {"name": "melconv", "params": {"n_fft": 256, "hop_length": 128, "n_mels": 16, "channels": [4, 8]}}


def pack(path, **params):
    torch.manual_seed(0)
    params = dict(BASE, **params)
    model = build_model("banquet", params)
    torch.save(make_archive(model, "banquet", params), path)
    return model.eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("qsep")
    rng = np.random.default_rng(0)
    sf.write(root / "song.wav", (0.1 * rng.standard_normal((RATE * 3 + 123, 2))).astype(np.float32), RATE, subtype="FLOAT")
    sf.write(root / "clip.wav", (0.1 * rng.standard_normal((RATE * 2, 2))).astype(np.float32), RATE, subtype="FLOAT")
    audio = pack(root / "audio.pth", query_encoder=ENCODER)
    pack(root / "label.pth", query="label", labels=["bass", "drums", "guitar"])
    with torch.no_grad():
        clip = torch.from_numpy(sf.read(root / "clip.wav", dtype="float32")[0].T.copy())[None]
        np.save(root / "emb.npy", audio.embed_query(clip)[0].numpy())
    np.save(root / "short.npy", np.zeros(5, dtype=np.float32))
    return root


def run(*args):
    return main([str(a) for a in args] + ["--no-progress"])


def test_audio_and_embedding_queries_write_one_stem_each(files, tmp_path):
    out = tmp_path / "out"
    assert run("-m", files / "audio.pth", files / "song.wav", "-o", out, "--query", f"gtr={files / 'clip.wav'}",
               "--query-embedding", files / "emb.npy", "--bit-depth", "32", "--segment", "1.0") == 0
    gtr, rate = sf.read(out / "song" / "gtr.wav", always_2d=True)
    emb, _ = sf.read(out / "song" / "emb.wav", always_2d=True)
    assert rate == RATE and gtr.shape == (RATE * 3 + 123, 2)
    np.testing.assert_allclose(gtr, emb, atol=1e-6)  # the clip and its stored embedding are the same query
    assert np.abs(gtr).max() > 0


def test_label_queries(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert run("-m", files / "label.pth", files / "song.wav", "-o", out, "--query-label", "bass,drums") == 0
    a, _ = sf.read(out / "song" / "bass.wav")
    b, _ = sf.read(out / "song" / "drums.wav")
    assert a.shape == b.shape and np.abs(a - b).max() > 0
    capsys.readouterr()
    assert run("-m", files / "label.pth", files / "song.wav", "-o", tmp_path / "o2", "--query-label", "piano") == 2
    error_line(capsys.readouterr().err, "banda-separate", "piano", "bass, drums, guitar")
    assert not (tmp_path / "o2" / "song").exists()


@pytest.mark.parametrize("model,args,needles", [
    ("audio.pth", [], ["--query CLIP"]),
    ("audio.pth", ["--query-label", "bass"], ["not labels"]),
    ("audio.pth", ["--query-embedding", "{root}/short.npy"], ["(batch, 12)"]),
    ("audio.pth", ["--query-embedding", "{root}/nope.npy"], ["nope.npy: no such file"]),
    ("audio.pth", ["--query", "{root}/clip.wav", "--query", "{root}/clip.wav"], ["two queries are named 'clip'"]),
    ("label.pth", ["--query", "{root}/clip.wav"], ["not audio"]),
])
def test_query_errors(files, tmp_path, capsys, model, args, needles):
    args = [a.format(root=files) for a in args]
    assert run("-m", files / model, files / "song.wav", "-o", tmp_path / "o", *args) == 2
    error_line(capsys.readouterr().err, "banda-separate", *needles)


def test_query_for_a_fixed_stem_model_is_an_error(files, tmp_path, capsys):
    params = dict(stems=["vocals"], in_channels=2, sample_rate=RATE, n_fft=256, hop_length=64, bands="musical",
                  n_bands=8, dim=16, n_layers=1, hidden=16, mask_hidden=32)
    torch.save(make_archive(build_model("bandit", params), "bandit", params), tmp_path / "bandit.pth")
    assert run("-m", tmp_path / "bandit.pth", files / "song.wav", "-o", tmp_path / "o", "--query-label", "bass") == 2
    error_line(capsys.readouterr().err, "banda-separate", "not a query model", "vocals")


def test_query_plan_never_queries_a_track_with_itself(tmp_path):
    from banda.query_eval import query_plan
    from test_query_data import LAYOUT, make_dir

    d = make_dir(tmp_path)
    plan = query_plan(d, ["bass", "drums", "guitar", "vocals"])
    assert {(t, s) for t, s, *_ in plan} == {(t, s) for t, have in LAYOUT.items() for s in have if s != "piano"}
    for track, stem, match, other_stem, other_track in plan:
        assert match != track and stem in LAYOUT[match]
        assert other_stem != stem and other_track != track and other_stem in LAYOUT[other_track]
    assert ("t0", "guitar", "t2", "vocals", "t1") in plan  # the next track that has it, the next stem type


def test_query_eval_scores_matching_and_mismatched_queries(files, tmp_path, capsys):
    from banda.bin.query_eval import main as query_eval
    from banda.metrics import si_sdr
    from test_query_data import RATE as DATA_RATE, make_dir

    d = make_dir(tmp_path)
    params = dict(BASE, sample_rate=DATA_RATE, query_encoder=ENCODER)
    torch.manual_seed(0)
    torch.save(make_archive(build_model("banquet", params), "banquet", params), tmp_path / "m.pth")
    out = tmp_path / "scores"
    assert query_eval(["-m", str(tmp_path / "m.pth"), "--data", str(d), "-o", str(out), "--stems", "bass,drums,vocals",
                       "--query-seconds", "1", "--segment", "1", "--no-progress"]) == 0
    import csv

    rows = list(csv.DictReader(open(out / "long.csv")))
    got = {(r["track"], r["stem"], r["metric"]): float(r["value"]) for r in rows}
    assert ("t3", "bass", "si_sdr") not in got and ("t3", "vocals", "si_sdr") in got  # t3 has no bass
    for (t, s, m), v in got.items():
        if m == "query_margin":
            assert abs(v - (got[(t, s, "si_sdr")] - got[(t, s, "si_sdr_mismatched")])) < 1e-9
    mix = sf.read(tmp_path / "t1_mix.wav", dtype="float32")[0].T
    ref = sf.read(tmp_path / "t1_drums.wav", dtype="float32")[0].T
    assert abs(got[("t1", "drums", "input_si_sdr")] - si_sdr(ref, mix)) < 1e-6
    summary = {(r["stem"], r["metric"]) for r in csv.DictReader(open(out / "summary.csv"))}
    assert {("vocals", "si_sdri"), ("vocals", "sdri"), ("vocals", "snri"), ("bass", "query_margin"),
            ("drums", "collapsed")} <= summary
    assert got[("t1", "drums", "snr")] == got[("t1", "drums", "sdr")]
    from banda.scoring import results_tables, summarize

    md = "\n".join(results_tables(summarize(rows_as_dicts(rows)), system="m"))
    assert "full-track SNR" in md and "median over tracks" in md and "query margin" in md
    from banda.scoring import _reported

    agg = {"median": 1.0, "mean": 2.0}
    assert [_reported(m, agg) for m in ("snr", "input_snr", "snri", "sdr", "si_sdri")] == [1.0, 1.0, 1.0, 2.0, 2.0]
    capsys.readouterr()
    assert query_eval(["-m", str(tmp_path / "m.pth"), "--data", str(d), "-o", str(tmp_path / "o2"), "--stems", "piano"]) == 2
    error_line(capsys.readouterr().err, "banda-query-eval", "piano", "only in track 't2'")
    assert not (tmp_path / "o2").exists()


def rows_as_dicts(rows):
    return [dict(r, value=float(r["value"])) for r in rows]
