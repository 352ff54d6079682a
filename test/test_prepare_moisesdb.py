"""MoisesDB preparation (banda.corpora.moisesdb) on a synthetic copy of its exact layout, and the
egs/moisesdb/query1 recipe end to end on it with a tiny Banquet."""
import json
import subprocess

import numpy as np
import pytest
import soundfile as sf
import yaml

from banda.corpora.moisesdb import fold_of, prepare_moisesdb, stem_key
from banda.datadir import ABSENT, read_scp, validate_data_dir
from banda.errors import DataError

from recipe_helpers import REPO, copy_recipe, recipe_env, summary

RATE = 44100
# song -> {stemName: [(trackType, seconds, channels)]}
SONGS = {
    "0a1b-song0": {"vocals": [("lead_female_singer", 2.0, 2), ("background_vocals", 1.5, 1)],
                   "drums": [("kick_drum", 2.0, 1), ("snare_drum", 2.0, 1)], "bass": [("bass_guitar", 2.0, 2)],
                   "guitar": [("clean_electric_guitar", 2.0, 2)]},
    "1c2d-song1": {"vocals": [("lead_male_singer", 2.0, 2)], "drums": [("drum_machine", 2.1, 2)],
                   "bass": [("bass synthesizer (moog etc)", 2.0, 1)]},
    "2e3f-song2": {"vocals": [("lead_male_singer", 2.0, 2)], "drums": [("full_acoustic_drumkit", 2.0, 2)],
                   "bass": [("bass_guitar", 2.0, 2)], "other_keys": [("synth_pad", 2.0, 2)]},
    "3a4b-song3": {"vocals": [("lead_female_singer", 2.0, 2)], "drums": [("kick_drum", 2.0, 2)],
                   "bass": [("bass_guitar", 2.0, 2)], "guitar": [("acoustic_guitar", 2.0, 2)]},
    "4c5d-song4": {"vocals": [("lead_male_singer", 2.0, 2)], "drums": [("kick_drum", 2.0, 2)],
                   "bass": [("bass_guitar", 2.0, 2)]},
    "5e6f-song5": {"vocals": [("lead_female_singer", 2.0, 2)], "drums": [("cymbals", 2.0, 2)],
                   "bass": [("bass_guitar", 2.0, 2)], "piano": [("grand_piano", 2.0, 2)]},
    "6a7b-song6": {"vocals": [("lead_male_singer", 2.0, 2)], "drums": [("kick_drum", 2.0, 2)],
                   "bass": [("bass_guitar", 2.0, 2)]},
    "7c8d-song7": {"vocals": [("lead_female_singer", 2.0, 2)], "drums": [("toms", 2.0, 2)],
                   "bass": [("bass_guitar", 2.0, 2)], "guitar": [("distorted_electric_guitar", 2.0, 2)]},
}
FOLDS = {"0a1b-song0": 1, "1c2d-song1": 1, "2e3f-song2": 2, "3a4b-song3": 3, "4c5d-song4": 4, "5e6f-song5": 4,
         "6a7b-song6": 5, "7c8d-song7": 5}


def make_corpus(root):
    rng = np.random.default_rng(0)
    base = root / "moisesdb_v0.1"
    for song, stems in SONGS.items():
        entries = []
        for k, (stem, tracks) in enumerate(stems.items()):
            items = []
            for j, (kind, seconds, channels) in enumerate(tracks):
                tid = f"{song[:4]}-{k}{j}-track"
                (base / song / stem).mkdir(parents=True, exist_ok=True)
                t = np.arange(int(seconds * RATE)) / RATE
                x = 0.2 * np.sin(2 * np.pi * (110 * (k + 1) + 20 * j) * t) + 0.02 * rng.standard_normal(t.size)
                sf.write(base / song / stem / f"{tid}.wav", np.stack([x] * channels, 1).astype(np.float32), RATE)
                items.append({"id": tid, "extension": "wav", "trackType": kind, "has_bleed": False})
            entries.append({"id": f"{song}-{k}", "stemName": stem, "tracks": items})
        (base / song / "data.json").write_text(json.dumps({"song": song, "artist": "a", "genre": "pop", "stems": entries}))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = make_corpus(tmp_path_factory.mktemp("moisesdb"))
    folds = root / "folds.csv"
    folds.write_text("song_id,split\n" + "".join(f"{s},{f}\n" for s, f in FOLDS.items()))  # Banquet's splits.csv format
    return root, folds


def test_coarse_data_dirs_are_sparse_and_mixtures_are_sums(corpus, tmp_path):
    root, folds = corpus
    counts = prepare_moisesdb(root, tmp_path / "data", tmp_path / "stems", folds=str(folds), bit_depth=32, progress=False)
    assert counts == {"train": 4, "valid": 2, "test": 2}
    train = tmp_path / "data" / "train"
    assert validate_data_dir(train) == []
    guitar, piano = read_scp(train / "guitar.scp"), read_scp(train / "piano.scp")
    assert guitar["1c2d-song1"] == ABSENT and guitar["0a1b-song0"] != ABSENT
    assert set(piano.values()) == {ABSENT}  # piano only in a valid song; the table is there all the same
    mix, rate = sf.read(read_scp(train / "mix.scp")["0a1b-song0"])
    parts = [sf.read(p)[0] for s in ("vocals", "drums", "bass", "guitar")
             for p in [read_scp(train / f"{s}.scp")["0a1b-song0"]]]
    assert rate == RATE and mix.shape == (2 * RATE, 2)
    np.testing.assert_allclose(mix, sum(parts), atol=1e-6)
    # a mono track in a stereo stem, and the shorter background vocals padded with zeros
    vocals = sf.read(read_scp(train / "vocals.scp")["0a1b-song0"])[0]
    assert vocals.shape == (2 * RATE, 2) and np.abs(vocals[int(1.6 * RATE):]).max() > 0
    assert int(read_scp(train / "utt2num_samples")["1c2d-song1"]) == int(2.1 * RATE)  # the longest track


def test_fine_level_and_default_folds(corpus, tmp_path):
    root, _ = corpus
    prepare_moisesdb(root, tmp_path / "data", tmp_path / "stems", level="fine", coarse=["drums"], progress=False)
    sets = {name: read_scp(tmp_path / "data" / name / "mix.scp") for name in ("train", "valid", "test")
            if (tmp_path / "data" / name).is_dir()}
    assert sum(len(t) for t in sets.values()) == len(SONGS)
    for name, table in sets.items():
        for song in table:
            assert fold_of(song) in {"train": (1, 2, 3), "valid": (4,), "test": (5,)}[name]
        names = {p.stem for p in (tmp_path / "data" / name).glob("*.scp")} - {"mix"}
        # the drums whole (setup C), every other stem by track type, named as Banquet names them
        assert "drums" in names and "kick_drum" not in names and "vocals" not in names
        assert {"lead_female_singer", "bass_guitar", "bass_synthesizer", "grand_piano"} <= names
    with pytest.raises(Exception, match="--coarse: only with --level fine"):
        prepare_moisesdb(root, tmp_path / "d2", tmp_path / "s2", coarse=["drums"], progress=False)


@pytest.mark.parametrize("track_type,key", [
    ("lead male singer", "lead_male_singer"), ("bass synthesizer (moog etc)", "bass_synthesizer"),
    ("bass_synthesizer_(moog_etc)", "bass_synthesizer"), ("organ, electric organ", "organ_electric_organ"),
    ("hi-hat", "hihat"), ("fx/processed sound, scratches, gun shots, explosions etc", "fx"),
    ("banjo, mandolin, ukulele, harp etc", "other_plucked"), ("other (vocoder, beatboxing etc)", "other_vocals"),
    ("contrabass/double bass (bass of instrings)", "double_bass"),
    ("pitched percussion (mallets, glockenspiel, ...)", "pitched_percussion"),
])
def test_fine_names(track_type, key):
    from banda.corpora.moisesdb import fine_key

    assert fine_key(track_type) == key
    assert stem_key("Bass Guitar (Fender)") == "bass_guitar_fender"


def test_bad_layouts_stop_with_the_song_named(tmp_path):
    root = make_corpus(tmp_path / "c")
    song = root / "moisesdb_v0.1" / "1c2d-song1"
    next((song / "bass").glob("*.wav")).unlink()
    with pytest.raises(DataError, match="1c2d-song1.*missing file"):
        prepare_moisesdb(root, tmp_path / "data", tmp_path / "stems", progress=False)
    assert not (tmp_path / "stems").exists() and not (tmp_path / "data").exists()
    (song / "data.json").write_text("{not json")
    with pytest.raises(DataError, match="data.json: not valid JSON"):
        prepare_moisesdb(root, tmp_path / "data", tmp_path / "stems", progress=False)
    folds = tmp_path / "folds.txt"
    folds.write_text("0a1b-song0 7\n")
    with pytest.raises(DataError, match="folds.txt:1: expected"):
        prepare_moisesdb(make_corpus(tmp_path / "d"), tmp_path / "data", tmp_path / "stems", folds=str(folds),
                         progress=False)


TINY = {
    "task": "query", "sample_rate": 44100, "channels": 2, "stems": ["vocals", "drums", "bass"],
    "model": {"name": "banquet", "params": {
        "bands": "v7", "n_bands": None, "dim": 8, "n_layers": 1, "hidden": 8, "mask_hidden": 16, "query_dim": 8,
        "film_hidden": 8, "query_encoder": {"name": "melconv", "params": {"n_mels": 16, "channels": [4]}}}},
    "data": {"chunk_seconds": 0.5, "query_seconds": 1.0, "items_per_epoch": 4, "batch_size": 2, "num_workers": 0,
             "valid_chunk_seconds": 0.5, "valid_max_items": 4, "absent_prob": 0.1},
    "scheduler": {"name": "constant"},
    "train": {"max_epochs": 1, "keep_best": 1, "audio_examples": 1},
}


def test_recipe_end_to_end_on_the_synthetic_copy(corpus, tmp_path):
    root, folds = corpus
    work = copy_recipe(REPO / "egs" / "moisesdb" / "query1", tmp_path / "query1")
    (work / "conf" / "tiny.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    proc = subprocess.run(["./run.sh", "--train_config", "conf/tiny.yaml", "--ngpu", "0", "--query_seconds", "1",
                           "--local_data_args", f"--folds {folds}"], cwd=work, env=recipe_env(MOISESDB=str(root)),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = work / "exp" / "tiny"
    assert (exp / "RESULTS.md").is_file() and (exp / "model_pack.pth").is_file()
    rows = summary(exp)
    assert {(r["stem"], r["metric"]) for r in rows} >= {(s, "si_sdri") for s in ("vocals", "drums", "bass")}
    missing = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "1"], cwd=work, env=recipe_env(MOISESDB=""),
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "MOISESDB" in missing.stderr
